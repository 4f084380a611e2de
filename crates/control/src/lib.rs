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
pub mod describe;
pub mod direct;
pub mod drivers;
#[cfg(test)]
mod fake_blocks;
pub mod filter;
pub mod host_stats;
pub mod iam;
pub mod idempotency;
pub mod images;
pub mod instance_reconciler;
pub mod instances;
pub mod keypairs;
pub mod metadata;
pub mod metering;
pub mod network_reconciler;
pub mod pagination;
pub mod reconciler;
pub mod recovery;
pub mod resource;
pub mod snapshots;
pub mod status_checks;
pub mod tags;
#[cfg(test)]
mod testkit;
pub mod volume_types;
pub mod volumes;
pub mod vpc;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use nimbus_core::Config;
use store::{Change, Store, StoreError};

pub use drivers::{BlockDriver, Drivers};
pub use resource::{KindSpec, Resource, ResourceKind, State};

/// Tags of one resource, ordered by key.
pub type Tags = BTreeMap<String, String>;

/// What went wrong in a control operation. Variants say what happened; the API layer of each
/// service chooses the AWS code (`api/src/error.rs` for EC2), reading a kind's codes from its
/// declaration in `resource.rs`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("The {kind} ID '{id}' does not exist")]
    NotFound { kind: ResourceKind, id: String },
    #[error("The {kind} '{id}' already exists.")]
    Duplicate { kind: ResourceKind, id: String },
    /// An ID that cannot name a resource of `kind` (or of any kind, when `None`).
    #[error("{}", malformed_id_message(*kind, id))]
    MalformedId {
        kind: Option<ResourceKind>,
        id: String,
    },
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("The pagination token '{0}' is invalid.")]
    InvalidPaginationToken(String),
    #[error("The following supplied instance types do not exist: [{0}]")]
    UnknownInstanceType(String),
    #[error("Client token '{0}' was used with different parameters.")]
    ClientTokenReused(String),
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    #[error("{0}")]
    TooManyTags(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    MalformedPublicKey(String),
    #[error("The zone '{0}' does not exist.")]
    UnknownZone(String),
    /// The resource is in a state that does not allow the operation.
    #[error("{0}")]
    IncorrectState(String),
    /// A volume modification is still in progress.
    #[error("{0}")]
    ModificationInProgress(String),
    #[error("{0}")]
    VolumeInUse(String),
    #[error("{0}")]
    SnapshotInUse(String),
    #[error("AMI name '{0}' is already in use by an AMI owned by this account.")]
    DuplicateImageName(String),
    #[error("{0}")]
    TooManyInstances(String),
    /// The instance is in a state that does not allow the operation.
    #[error("{0}")]
    IncorrectInstanceState(String),
    /// A volume and an instance are in different availability zones.
    #[error("{0}")]
    VolumeInOtherZone(String),
    /// The volume is not attached where the request says.
    #[error("{0}")]
    NotAttached(String),
    #[error("{0}")]
    OperationNotPermitted(String),
    /// Something still depends on the resource (a VPC with subnets, a group in use…).
    #[error("{0}")]
    DependencyViolation(String),
    /// A VPC CIDR block outside /16–/28, or overlapping the VPC's other blocks.
    #[error("{0}")]
    InvalidVpcRange(String),
    /// A subnet CIDR block outside its VPC or outside /16–/28.
    #[error("{0}")]
    InvalidSubnetRange(String),
    /// A subnet CIDR block overlapping another subnet.
    #[error("{0}")]
    SubnetConflict(String),
    /// A VPC CIDR block that cannot be removed.
    #[error("{0}")]
    InvalidCidrBlock(String),
    #[error("{0}")]
    CidrLimitExceeded(String),
    #[error("{0}")]
    DuplicatePermission(String),
    #[error("{0}")]
    PermissionNotFound(String),
    #[error("{0}")]
    RuleIdNotFound(String),
    #[error("{0}")]
    ReservedGroupName(String),
    /// A default security group.
    #[error("{0}")]
    CannotDelete(String),
    #[error("{0}")]
    AlreadyAssociated(String),
    #[error("{0}")]
    GatewayNotAttached(String),
    #[error("{0}")]
    AssociationNotFound(String),
    #[error("{0}")]
    RouteNotFound(String),
    #[error("{0}")]
    RouteAlreadyExists(String),
    #[error("{0}")]
    AclEntryNotFound(String),
    #[error("{0}")]
    AclEntryExists(String),
    /// A private IP another interface has.
    #[error("{0}")]
    AddressInUse(String),
    #[error("{0}")]
    InsufficientAddresses(String),
    #[error("{0}")]
    AddressNotFound(String),
    #[error("{0}")]
    InterfaceNotFound(String),
    #[error("{0}")]
    MalformedInterfaceId(String),
    /// An attached interface, or an instance's primary one.
    #[error("{0}")]
    InterfaceInUse(String),
    /// No interface has this attachment ID.
    #[error("{0}")]
    InterfaceAttachmentNotFound(String),
    #[error("{0}")]
    PrivateIpLimitExceeded(String),
    /// More network interfaces than an instance can have.
    #[error("{0}")]
    AttachmentLimitExceeded(String),
    /// The public IP pool is exhausted.
    #[error("{0}")]
    AddressLimitExceeded(String),
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn malformed_id_message(kind: Option<ResourceKind>, id: &str) -> String {
    match kind.and_then(|kind| kind.spec().id_prefix) {
        Some(prefix) => format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"),
        None => format!("Invalid id: \"{id}\""),
    }
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
        self.changes.push(Change::Put(resource::record_of(&item)?));
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
    drivers: Drivers,
    reconcile_signal: tokio::sync::Notify,
    vms: instance_reconciler::VmTable,
    statuses: status_checks::StatusTable,
    reconciler_stats: host_stats::ReconcilerStats,
    network_signal: tokio::sync::Notify,
    /// Network-shaping commits so far, and how many of them the reconciler has applied.
    network_changes: std::sync::atomic::AtomicU64,
    network_applied: tokio::sync::watch::Sender<u64>,
    applied_network: tokio::sync::Mutex<network_reconciler::AppliedNetwork>,
    vpc_metadata: metadata::VpcMetadataServers,
}

impl Control {
    pub fn open(config: Config, store: Arc<dyn Store>, drivers: Drivers) -> Result<Control> {
        let state = State::load(store.as_ref())?;
        let control = Control {
            config,
            store,
            state: RwLock::new(state),
            drivers,
            reconcile_signal: tokio::sync::Notify::new(),
            vms: instance_reconciler::VmTable::default(),
            statuses: status_checks::StatusTable::default(),
            reconciler_stats: host_stats::ReconcilerStats::default(),
            network_signal: tokio::sync::Notify::new(),
            network_changes: Default::default(),
            network_applied: tokio::sync::watch::Sender::new(0),
            applied_network: Default::default(),
            vpc_metadata: metadata::VpcMetadataServers::default(),
        };
        control.ensure_default_vpc()?;
        Ok(control)
    }

    /// The block store holding every volume's and snapshot's data.
    pub fn engine(&self) -> &dyn BlockDriver {
        self.drivers.blocks.as_ref()
    }

    fn hypervisor(&self) -> &dyn compute::Hypervisor {
        self.drivers.hypervisor.as_ref()
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
                .map(|()| {
                    if changes.iter().any(network_reconciler::shapes_network) {
                        // Counted under the state lock: a pass that reads the count
                        // afterwards also reads this change.
                        self.network_changes
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        self.wake_network();
                    }
                    value
                })
                .map_err(|e| E::from(Error::from(e))),
            Err(error) => Err(error),
        };
        if committed.is_err() && !changes.is_empty() {
            *state = State::load(self.store.as_ref()).map_err(E::from)?;
        }
        committed
    }
}
