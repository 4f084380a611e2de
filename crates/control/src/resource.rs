//! The resource kinds nimbus stores and the working set that holds them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{de::DeserializeOwned, Serialize};
use store::Store;

use crate::credentials::TemporaryCredential;
use crate::filter::Filterable;
use crate::iam::{InstanceProfile, Role};
use crate::idempotency::ClientTokenRecord;
use crate::images::Image;
use crate::instances::Instance;
use crate::keypairs::KeyPair;
use crate::snapshots::Snapshot;
use crate::volumes::Volume;
use crate::{Error, Result, Tags};

/// Every kind of resource, with its ID prefix and its EC2 `resource-type` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    KeyPair,
    Volume,
    Snapshot,
    Image,
    Instance,
    ClientToken,
    Role,
    InstanceProfile,
    TemporaryCredential,
}

impl ResourceKind {
    /// The EC2 `resource-type` (and the store's kind column).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::KeyPair => "key-pair",
            ResourceKind::Volume => "volume",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Image => "image",
            ResourceKind::Instance => "instance",
            ResourceKind::ClientToken => "client-token",
            ResourceKind::Role => "iam-role",
            ResourceKind::InstanceProfile => "iam-instance-profile",
            ResourceKind::TemporaryCredential => "sts-credential",
        }
    }

    pub fn id_prefix(self) -> &'static str {
        match self {
            ResourceKind::KeyPair => "key",
            ResourceKind::Volume => "vol",
            ResourceKind::Snapshot => "snap",
            ResourceKind::Image => "ami",
            ResourceKind::Instance => "i",
            ResourceKind::ClientToken => "token",
            ResourceKind::Role => "AROA",
            ResourceKind::InstanceProfile => "AIPA",
            ResourceKind::TemporaryCredential => "ASIA",
        }
    }

    /// The kind a resource ID names, judged by its prefix.
    pub fn of_id(id: &str) -> Option<ResourceKind> {
        let prefix = id.split_once('-')?.0;
        TAGGABLE
            .iter()
            .copied()
            .find(|kind| kind.id_prefix() == prefix)
    }
}

/// Kinds that carry tags, in the order DescribeTags lists them.
pub const TAGGABLE: &[ResourceKind] = &[
    ResourceKind::Image,
    ResourceKind::Instance,
    ResourceKind::KeyPair,
    ResourceKind::Snapshot,
    ResourceKind::Volume,
];

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored resource: serializable, addressable by ID, kept in one table of the [`State`].
pub trait Resource: Serialize + DeserializeOwned + Clone + Filterable {
    const KIND: ResourceKind;
    fn id(&self) -> &str;
    /// The tags of a taggable resource; `None` for internal records.
    fn tags_mut(&mut self) -> Option<&mut Tags>;
    fn table(state: &State) -> &BTreeMap<String, Self>;
    fn table_mut(state: &mut State) -> &mut BTreeMap<String, Self>;
}

/// Implements [`Resource`] for a tagged type (tags in a `tags` field) kept in
/// `State::$table` and identified by its `$id` field.
#[macro_export]
macro_rules! resource {
    ($type:ty, $kind:expr, $id:ident, $table:ident) => {
        impl $crate::Resource for $type {
            const KIND: $crate::ResourceKind = $kind;
            fn id(&self) -> &str {
                &self.$id
            }
            fn tags_mut(&mut self) -> Option<&mut $crate::Tags> {
                Some(&mut self.tags)
            }
            fn table(state: &$crate::State) -> &std::collections::BTreeMap<String, Self> {
                &state.$table
            }
            fn table_mut(
                state: &mut $crate::State,
            ) -> &mut std::collections::BTreeMap<String, Self> {
                &mut state.$table
            }
        }
    };
}

/// The working set: every resource, by kind, by ID.
#[derive(Default)]
pub struct State {
    pub key_pairs: BTreeMap<String, KeyPair>,
    pub volumes: BTreeMap<String, Volume>,
    pub snapshots: BTreeMap<String, Snapshot>,
    pub images: BTreeMap<String, Image>,
    pub instances: BTreeMap<String, Instance>,
    pub client_tokens: BTreeMap<String, ClientTokenRecord>,
    pub roles: BTreeMap<String, Role>,
    pub instance_profiles: BTreeMap<String, InstanceProfile>,
    pub temporary_credentials: BTreeMap<String, TemporaryCredential>,
}

impl State {
    pub fn load(store: &dyn Store) -> Result<State> {
        let mut state = State::default();
        load_table(store, &mut state.key_pairs)?;
        load_table(store, &mut state.volumes)?;
        load_table(store, &mut state.snapshots)?;
        load_table(store, &mut state.images)?;
        load_table(store, &mut state.instances)?;
        load_table(store, &mut state.client_tokens)?;
        load_table(store, &mut state.roles)?;
        load_table(store, &mut state.instance_profiles)?;
        load_table(store, &mut state.temporary_credentials)?;
        Ok(state)
    }

    pub fn get<T: Resource>(&self, id: &str) -> Option<&T> {
        T::table(self).get(id)
    }
}

fn load_table<T: Resource>(store: &dyn Store, table: &mut BTreeMap<String, T>) -> Result<()> {
    for record in store.load_kind(T::KIND.as_str())? {
        let item: T = serde_json::from_value(record.body).map_err(|e| {
            Error::Internal(format!(
                "stored {} {} is unreadable: {e}",
                T::KIND,
                record.id
            ))
        })?;
        table.insert(record.id, item);
    }
    Ok(())
}
