//! The control plane: the rules of every resource (validation, state machines, idempotency),
//! an in-memory working set written through to the [`store::Store`] one transaction per call.
//!
//! Reads take a shared lock on the working set and never touch the database; writes take the
//! exclusive lock, mutate through a [`Txn`] that records every change, and commit those changes
//! in one store transaction before the lock is released. A failed commit reloads the working
//! set from the store, so memory never runs ahead of what is durable.

pub mod attachments;
pub mod catalog;
pub mod credentials;
pub mod direct;
pub mod filter;
pub mod iam;
pub mod idempotency;
pub mod images;
pub mod instance_reconciler;
pub mod instances;
pub mod keypairs;
pub mod metadata;
pub mod pagination;
pub mod reconciler;
pub mod resource;
pub mod snapshots;
pub mod tags;
pub mod volume_types;
pub mod volumes;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use nimbus_core::Config;
use store::{Change, Store, StoreError};

pub use resource::{Resource, ResourceKind, State};

/// Tags of one resource, ordered by key.
pub type Tags = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The {kind} ID '{id}' does not exist")]
    NotFound { kind: ResourceKind, id: String },
    #[error("The {kind} '{id}' already exists.")]
    Duplicate { kind: ResourceKind, id: String },
    #[error("Invalid id: \"{0}\"")]
    InvalidId(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("The pagination token '{0}' is invalid.")]
    InvalidPaginationToken(String),
    #[error("The following supplied instance types do not exist: [{0}]")]
    InvalidInstanceType(String),
    #[error("Client token '{0}' was used with different parameters.")]
    IdempotentParameterMismatch(String),
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    #[error("{0}")]
    TagLimitExceeded(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    InvalidKeyFormat(String),
    #[error("The zone '{0}' does not exist.")]
    InvalidZone(String),
    #[error("{0}")]
    IncorrectState(String),
    #[error("{0}")]
    IncorrectModificationState(String),
    #[error("{0}")]
    VolumeInUse(String),
    #[error("{0}")]
    SnapshotInUse(String),
    #[error("AMI name '{0}' is already in use by an AMI owned by this account.")]
    DuplicateImageName(String),
    #[error("Invalid id: \"{0}\" (expecting \"ami-...\")")]
    InvalidAmiIdMalformed(String),
    #[error("{0}")]
    InstanceLimitExceeded(String),
    #[error("{0}")]
    IncorrectInstanceState(String),
    #[error("{0}")]
    ZoneMismatch(String),
    #[error("{0}")]
    InvalidAttachmentNotFound(String),
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Mutations of the working set inside one API call; committed together or not at all.
pub struct Txn<'a> {
    state: &'a mut State,
    changes: Vec<Change>,
}

impl Txn<'_> {
    pub fn state(&self) -> &State {
        self.state
    }

    /// Inserts or replaces a resource.
    pub fn put<T: Resource>(&mut self, item: T) -> Result<()> {
        let body = serde_json::to_value(&item).map_err(|e| Error::Internal(e.to_string()))?;
        self.changes.push(Change::Put(store::Record {
            kind: T::KIND.as_str().to_owned(),
            id: item.id().to_owned(),
            body,
        }));
        T::table_mut(self.state).insert(item.id().to_owned(), item);
        Ok(())
    }

    pub fn delete<T: Resource>(&mut self, id: &str) {
        if T::table_mut(self.state).remove(id).is_some() {
            self.changes.push(Change::Delete {
                kind: T::KIND.as_str().to_owned(),
                id: id.to_owned(),
            });
        }
    }
}

pub struct Control {
    config: Config,
    store: Arc<dyn Store>,
    state: RwLock<State>,
    engine: blockstore::BlockStore,
    reconcile_signal: tokio::sync::Notify,
    hypervisor: instance_reconciler::Hypervisor,
    accel: tokio::sync::OnceCell<compute::Accel>,
}

impl Control {
    pub fn open(
        config: Config,
        store: Arc<dyn Store>,
        engine: blockstore::BlockStore,
    ) -> Result<Control> {
        let state = State::load(store.as_ref())?;
        Ok(Control {
            config,
            store,
            state: RwLock::new(state),
            engine,
            reconcile_signal: tokio::sync::Notify::new(),
            hypervisor: instance_reconciler::Hypervisor::default(),
            accel: tokio::sync::OnceCell::new(),
        })
    }

    /// The block store holding every volume's and snapshot's data.
    pub fn engine(&self) -> &blockstore::BlockStore {
        &self.engine
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether an `Owners`/`OwnerIds` list includes this account (an empty list means any
    /// owner): every resource here belongs to the one configured account.
    pub fn owners_include_account(&self, owners: &[String]) -> bool {
        owners.is_empty()
            || owners
                .iter()
                .any(|o| o == "self" || *o == self.config.account_id)
    }

    /// A consistent read view of every resource.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-mutated in a way the store
        // disagrees with (see `mutate`), so a poisoned lock is still safe to read.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `operation` against the working set and commits what it changed in one transaction.
    pub fn mutate<R>(&self, operation: impl FnOnce(&mut Txn) -> Result<R>) -> Result<R> {
        self.mutate_with(operation)
    }

    /// [`Control::mutate`] for services whose rules have an error type of their own.
    pub fn mutate_with<R, E: From<Error>>(
        &self,
        operation: impl FnOnce(&mut Txn) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut txn = Txn {
            state: &mut state,
            changes: Vec::new(),
        };
        let outcome = operation(&mut txn);
        let changes = std::mem::take(&mut txn.changes);
        let committed = match outcome {
            Ok(value) if changes.is_empty() => return Ok(value),
            Ok(value) => self
                .store
                .commit(&changes)
                .map(|()| value)
                .map_err(|e| E::from(Error::from(e))),
            Err(error) => Err(error),
        };
        if committed.is_err() && !changes.is_empty() {
            *state = State::load(self.store.as_ref()).map_err(E::from)?;
        }
        committed
    }
}
