//! The resource kinds nimbus stores, each declared once in the `kinds!` list below, and the
//! working set that holds them.
//!
//! A kind's declaration names its type, its table in [`State`] and its ID field, and gives its
//! [`KindSpec`]: the EC2 `resource-type` (also the store's kind), the ID prefix, whether it
//! carries tags, the AWS codes for a missing or malformed ID, and the migrations of its stored
//! format. Loading, tags, DescribeTags and ID validation all derive from it, so a new kind is
//! one entry here plus its rules module.

use std::collections::BTreeMap;
use std::fmt;

use serde::{de::DeserializeOwned, Serialize};
use store::{Change, Record, Store};

use crate::credentials::TemporaryCredential;
use crate::filter::Filterable;
use crate::iam::{InstanceProfile, Role};
use crate::idempotency::ClientTokenRecord;
use crate::images::Image;
use crate::instances::{self, Instance};
use crate::keypairs::KeyPair;
use crate::snapshots::Snapshot;
use crate::volumes::Volume;
use crate::vpc::addresses::ElasticIp;
use crate::vpc::gateways::InternetGateway;
use crate::vpc::network_acls::NetworkAcl;
use crate::vpc::network_interfaces::NetworkInterface;
use crate::vpc::route_tables::RouteTable;
use crate::vpc::security_groups::SecurityGroup;
use crate::vpc::subnets::Subnet;
use crate::vpc::vpcs::Vpc;
use crate::{Error, Result, Tags};

/// Upgrades a stored document by one format version.
pub type Migration = fn(&mut serde_json::Value) -> std::result::Result<(), String>;

/// What the engine knows about one kind of resource.
#[derive(Debug)]
pub struct KindSpec {
    /// The EC2 `resource-type`, and the store's kind column.
    pub name: &'static str,
    /// The prefix of the kind's AWS IDs (`vol` in `vol-0123…`); `None` for internal records.
    pub id_prefix: Option<&'static str>,
    pub taggable: bool,
    /// The AWS code for a well-formed ID that names nothing.
    pub not_found_code: &'static str,
    /// The AWS code for an ID that cannot be one of this kind.
    pub malformed_code: &'static str,
    /// `migrations[n]` turns a stored document of format `n + 1` into format `n + 2`.
    pub migrations: &'static [Migration],
}

impl KindSpec {
    /// The format version documents of this kind are written in.
    pub fn format(&self) -> u32 {
        self.migrations.len() as u32 + 1
    }
}

/// Runs code for the resource type of a kind chosen at run time (see [`ResourceKind::visit`]).
pub trait KindVisitor {
    type Output;
    fn visit<T: Resource>(self) -> Self::Output;
}

/// A stored resource: serializable, addressable by ID, kept in one table of the [`State`].
/// Implemented by the `kinds!` declaration.
pub trait Resource: Serialize + DeserializeOwned + Clone + Filterable {
    const KIND: ResourceKind;
    fn id(&self) -> &str;
    /// The tags of a taggable resource; `None` for internal records.
    fn tags(&self) -> Option<&Tags>;
    fn tags_mut(&mut self) -> Option<&mut Tags>;
    fn table(state: &State) -> &BTreeMap<String, Self>;
    fn table_mut(state: &mut State) -> &mut BTreeMap<String, Self>;
}

macro_rules! kinds {
    ($(
        $(#[$doc:meta])*
        $variant:ident: $type:ty, table $table:ident, id $($id:ident).+, tags $tags:ident {
            name: $name:literal,
            prefix: $prefix:expr,
            not_found: $not_found:literal,
            malformed: $malformed:literal,
            migrations: $migrations:expr $(,)?
        }
    )*) => {
        /// Every kind of resource nimbus stores.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ResourceKind {
            $($(#[$doc])* $variant,)*
        }

        static SPECS: &[KindSpec] = &[$(KindSpec {
            name: $name,
            id_prefix: $prefix,
            taggable: kinds!(@taggable $tags),
            not_found_code: $not_found,
            malformed_code: $malformed,
            migrations: $migrations,
        },)*];

        impl ResourceKind {
            pub const ALL: &'static [ResourceKind] = &[$(ResourceKind::$variant,)*];

            pub fn spec(self) -> &'static KindSpec {
                &SPECS[self as usize]
            }

            /// Runs `visitor` with this kind's resource type.
            pub fn visit<V: KindVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(ResourceKind::$variant => visitor.visit::<$type>(),)*
                }
            }
        }

        /// The working set: every resource, by kind, by ID.
        #[derive(Default)]
        pub struct State {
            $(pub $table: BTreeMap<String, $type>,)*
        }

        $(impl Resource for $type {
            const KIND: ResourceKind = ResourceKind::$variant;
            fn id(&self) -> &str {
                &self.$($id).+
            }
            kinds!(@tags $tags);
            fn table(state: &State) -> &BTreeMap<String, Self> {
                &state.$table
            }
            fn table_mut(state: &mut State) -> &mut BTreeMap<String, Self> {
                &mut state.$table
            }
        })*
    };
    (@taggable untagged) => { false };
    (@taggable $field:ident) => { true };
    (@tags untagged) => {
        fn tags(&self) -> Option<&Tags> {
            None
        }
        fn tags_mut(&mut self) -> Option<&mut Tags> {
            None
        }
    };
    (@tags $field:ident) => {
        fn tags(&self) -> Option<&Tags> {
            Some(&self.$field)
        }
        fn tags_mut(&mut self) -> Option<&mut Tags> {
            Some(&mut self.$field)
        }
    };
}

kinds! {
    KeyPair: KeyPair, table key_pairs, id key_pair_id, tags tags {
        name: "key-pair",
        prefix: Some("key"),
        not_found: "InvalidKeyPair.NotFound",
        malformed: "InvalidKeyPair.Malformed",
        migrations: &[],
    }
    Volume: Volume, table volumes, id volume_id, tags tags {
        name: "volume",
        prefix: Some("vol"),
        not_found: "InvalidVolume.NotFound",
        malformed: "InvalidVolumeID.Malformed",
        migrations: &[],
    }
    Snapshot: Snapshot, table snapshots, id snapshot_id, tags tags {
        name: "snapshot",
        prefix: Some("snap"),
        not_found: "InvalidSnapshot.NotFound",
        malformed: "InvalidSnapshotID.Malformed",
        migrations: &[],
    }
    Image: Image, table images, id image_id, tags tags {
        name: "image",
        prefix: Some("ami"),
        not_found: "InvalidAMIID.NotFound",
        malformed: "InvalidAMIID.Malformed",
        migrations: &[],
    }
    Instance: Instance, table instances, id instance_id, tags tags {
        name: "instance",
        prefix: Some("i"),
        not_found: "InvalidInstanceID.NotFound",
        malformed: "InvalidInstanceID.Malformed",
        migrations: &[instances::migrate_state_reason],
    }
    Vpc: Vpc, table vpcs, id vpc_id, tags tags {
        name: "vpc",
        prefix: Some("vpc"),
        not_found: "InvalidVpcID.NotFound",
        malformed: "InvalidVpcID.Malformed",
        migrations: &[],
    }
    Subnet: Subnet, table subnets, id subnet_id, tags tags {
        name: "subnet",
        prefix: Some("subnet"),
        not_found: "InvalidSubnetID.NotFound",
        malformed: "InvalidSubnetID.Malformed",
        migrations: &[],
    }
    SecurityGroup: SecurityGroup, table security_groups, id group_id, tags tags {
        name: "security-group",
        prefix: Some("sg"),
        not_found: "InvalidGroup.NotFound",
        malformed: "InvalidGroupId.Malformed",
        migrations: &[],
    }
    InternetGateway: InternetGateway, table internet_gateways, id internet_gateway_id, tags tags {
        name: "internet-gateway",
        prefix: Some("igw"),
        not_found: "InvalidInternetGatewayID.NotFound",
        malformed: "InvalidInternetGatewayID.Malformed",
        migrations: &[],
    }
    RouteTable: RouteTable, table route_tables, id route_table_id, tags tags {
        name: "route-table",
        prefix: Some("rtb"),
        not_found: "InvalidRouteTableID.NotFound",
        malformed: "InvalidRouteTableID.Malformed",
        migrations: &[],
    }
    NetworkAcl: NetworkAcl, table network_acls, id network_acl_id, tags tags {
        name: "network-acl",
        prefix: Some("acl"),
        not_found: "InvalidNetworkAclID.NotFound",
        malformed: "InvalidNetworkAclID.Malformed",
        migrations: &[],
    }
    /// A network interface other than an instance's primary one (that one lives in its
    /// instance record, see `vpc/interfaces.rs`).
    NetworkInterface: NetworkInterface, table network_interfaces, id network.interface_id, tags tags {
        name: "network-interface",
        prefix: Some("eni"),
        not_found: "InvalidNetworkInterfaceID.NotFound",
        malformed: "InvalidNetworkInterfaceID.Malformed",
        migrations: &[],
    }
    ElasticIp: ElasticIp, table elastic_ips, id allocation_id, tags tags {
        name: "elastic-ip",
        prefix: Some("eipalloc"),
        not_found: "InvalidAllocationID.NotFound",
        malformed: "InvalidAllocationID.Malformed",
        migrations: &[],
    }
    /// An IAM role (see `iam.rs`); IAM's own tags, not EC2's.
    Role: Role, table roles, id role_id, tags untagged {
        name: "iam-role",
        prefix: None,
        not_found: "NoSuchEntity",
        malformed: "ValidationError",
        migrations: &[],
    }
    /// An IAM instance profile (see `iam.rs`).
    InstanceProfile: InstanceProfile, table instance_profiles, id instance_profile_id, tags untagged {
        name: "iam-instance-profile",
        prefix: None,
        not_found: "NoSuchEntity",
        malformed: "ValidationError",
        migrations: &[],
    }
    /// Temporary credentials issued by STS or for an instance profile (see `credentials.rs`).
    TemporaryCredential: TemporaryCredential, table temporary_credentials, id access_key_id, tags untagged {
        name: "sts-credential",
        prefix: None,
        not_found: "InvalidClientTokenId",
        malformed: "InvalidClientTokenId",
        migrations: &[],
    }
    /// What the first call with a ClientToken answered (see `idempotency.rs`).
    ClientToken: ClientTokenRecord, table client_tokens, id key, tags untagged {
        name: "client-token",
        prefix: None,
        not_found: "InvalidParameterValue",
        malformed: "InvalidParameterValue",
        migrations: &[],
    }
}

impl ResourceKind {
    /// The EC2 `resource-type` (and the store's kind column).
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// The taggable kind a resource ID names, judged by its prefix.
    pub fn of_id(id: &str) -> Option<ResourceKind> {
        let prefix = id.split_once('-')?.0;
        ResourceKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.spec().taggable && kind.spec().id_prefix == Some(prefix))
    }

    /// Refuses an ID that cannot be one of this kind: AWS IDs are the prefix, a dash and 8 or
    /// 17 lowercase hex digits.
    pub fn check_id(self, id: &str) -> Result<()> {
        let Some(prefix) = self.spec().id_prefix else {
            return Ok(());
        };
        if nimbus_core::is_valid_id(id, prefix) {
            Ok(())
        } else {
            Err(Error::MalformedId {
                kind: Some(self),
                id: id.to_owned(),
            })
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kinds that carry tags, in the order DescribeTags lists them.
pub fn taggable_kinds() -> impl Iterator<Item = ResourceKind> {
    let mut kinds: Vec<ResourceKind> = ResourceKind::ALL
        .iter()
        .copied()
        .filter(|kind| kind.spec().taggable)
        .collect();
    kinds.sort_by_key(|kind| kind.as_str());
    kinds.into_iter()
}

impl State {
    /// Loads every kind, upgrading documents written in an older format and writing the
    /// upgraded documents back in one transaction.
    pub fn load(store: &dyn Store) -> Result<State> {
        let mut state = State::default();
        let mut upgraded = Vec::new();
        for kind in ResourceKind::ALL {
            kind.visit(LoadTable {
                store,
                state: &mut state,
                upgraded: &mut upgraded,
            })?;
        }
        if !upgraded.is_empty() {
            store.commit(&upgraded)?;
        }
        Ok(state)
    }

    pub fn get<T: Resource>(&self, id: &str) -> Option<&T> {
        T::table(self).get(id)
    }
}

/// A resource as the store keeps it, in its kind's current format.
pub fn record_of<T: Resource>(item: &T) -> Result<Record> {
    Ok(Record {
        kind: T::KIND.as_str().to_owned(),
        id: item.id().to_owned(),
        format: T::KIND.spec().format(),
        body: serde_json::to_value(item).map_err(|e| Error::Internal(e.to_string()))?,
    })
}

struct LoadTable<'a> {
    store: &'a dyn Store,
    state: &'a mut State,
    upgraded: &'a mut Vec<Change>,
}

impl KindVisitor for LoadTable<'_> {
    type Output = Result<()>;

    fn visit<T: Resource>(self) -> Result<()> {
        let spec = T::KIND.spec();
        for mut record in self.store.load_kind(spec.name)? {
            let unreadable = |reason: String| {
                Error::Internal(format!(
                    "stored {} {} is unreadable: {reason}",
                    T::KIND,
                    record.id
                ))
            };
            if record.format == 0 || record.format > spec.format() {
                return Err(unreadable(format!(
                    "format {} is not one this nimbus knows (1 to {})",
                    record.format,
                    spec.format()
                )));
            }
            let pending = &spec.migrations[record.format as usize - 1..];
            for migration in pending {
                migration(&mut record.body).map_err(unreadable)?;
            }
            let item: T = serde_json::from_value(record.body.clone())
                .map_err(|e| unreadable(e.to_string()))?;
            if !pending.is_empty() {
                self.upgraded.push(Change::Put(record_of(&item)?));
            }
            T::table_mut(self.state).insert(record.id, item);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_by_the_declared_prefix() {
        assert!(ResourceKind::Volume
            .check_id("vol-0123456789abcdef0")
            .is_ok());
        assert!(ResourceKind::Volume.check_id("vol-ffffffff").is_ok());
        for bad in [
            "vol-",
            "vol-123",
            "snap-0123456789abcdef0",
            "vol-0123456789ABCDEF0",
            "foo",
        ] {
            assert!(
                matches!(
                    ResourceKind::Volume.check_id(bad),
                    Err(Error::MalformedId {
                        kind: Some(ResourceKind::Volume),
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert!(ResourceKind::ClientToken.check_id("anything").is_ok());
    }

    #[test]
    fn taggable_kinds_come_from_the_declarations() {
        let names: Vec<&str> = taggable_kinds().map(ResourceKind::as_str).collect();
        assert_eq!(
            names,
            [
                "elastic-ip",
                "image",
                "instance",
                "internet-gateway",
                "key-pair",
                "network-acl",
                "network-interface",
                "route-table",
                "security-group",
                "snapshot",
                "subnet",
                "volume",
                "vpc"
            ]
        );
        assert_eq!(
            ResourceKind::of_id("i-0123456789abcdef0"),
            Some(ResourceKind::Instance)
        );
        assert_eq!(ResourceKind::of_id("ami-0123"), Some(ResourceKind::Image));
        assert_eq!(ResourceKind::of_id("token-1"), None);
        assert_eq!(ResourceKind::of_id("nothing"), None);
    }

    /// A store holding records in memory, as a test double for SQLite.
    #[derive(Default)]
    struct MemoryStore(std::sync::Mutex<Vec<Record>>);

    impl Store for MemoryStore {
        fn load_kind(&self, kind: &str) -> store::Result<Vec<Record>> {
            let records = self.0.lock().map_err(|_| store::StoreError::Poisoned)?;
            Ok(records.iter().filter(|r| r.kind == kind).cloned().collect())
        }
        fn commit(&self, changes: &[Change]) -> store::Result<()> {
            let mut records = self.0.lock().map_err(|_| store::StoreError::Poisoned)?;
            for change in changes {
                if let Change::Put(record) = change {
                    records.retain(|r| !(r.kind == record.kind && r.id == record.id));
                    records.push(record.clone());
                }
            }
            Ok(())
        }
    }

    /// An instance as the release before format versions wrote it.
    fn instance_format_1(state_reason: serde_json::Value) -> Record {
        Record {
            kind: "instance".into(),
            id: "i-0123456789abcdef0".into(),
            format: 1,
            body: serde_json::json!({
                "ami_launch_index": 0, "availability_zone": "us-east-1a", "client_token": null,
                "disks": [], "force_stop": false, "image_id": "ami-0123456789abcdef0",
                "instance_id": "i-0123456789abcdef0", "instance_type": "t3.micro",
                "key_name": null, "launch_time": 1, "metadata_options": {
                    "http_endpoint": "enabled", "http_put_response_hop_limit": 1,
                    "http_tokens": "optional", "instance_metadata_tags": "disabled"},
                "private_ip": "172.31.0.4", "reboot_requested": false,
                "reservation_id": "r-0123456789abcdef0", "root_device_name": "/dev/xvda",
                "shutdown_behavior": "stop", "state": "stopped",
                "state_reason": state_reason, "state_transition_reason": "",
                "tags": {}, "terminated_at": null, "user_data": null
            }),
        }
    }

    #[test]
    fn older_formats_are_migrated_on_load_and_written_back() {
        let store = MemoryStore::default();
        store
            .commit(&[Change::Put(instance_format_1(serde_json::json!(
                "Client.UserInitiatedShutdown: User initiated shutdown"
            )))])
            .expect("seed");
        let state = State::load(&store).expect("load");
        let instance = state.instances.values().next().expect("instance");
        let reason = instance.state_reason.as_ref().expect("reason");
        assert_eq!(reason.code, "Client.UserInitiatedShutdown");
        assert_eq!(
            reason.message,
            "Client.UserInitiatedShutdown: User initiated shutdown"
        );
        let stored = store.load_kind("instance").expect("stored");
        assert_eq!(stored[0].format, ResourceKind::Instance.spec().format());
        assert_eq!(
            stored[0].body["state_reason"]["code"],
            "Client.UserInitiatedShutdown"
        );
        // Loading again finds nothing left to upgrade.
        let again = State::load(&store).expect("reload");
        assert_eq!(again.instances.len(), 1);
    }

    #[test]
    fn a_record_without_a_reason_migrates_unchanged() {
        let store = MemoryStore::default();
        store
            .commit(&[Change::Put(instance_format_1(serde_json::Value::Null))])
            .expect("seed");
        let state = State::load(&store).expect("load");
        assert!(state.instances.values().all(|i| i.state_reason.is_none()));
    }

    #[test]
    fn a_format_newer_than_known_is_refused() {
        let store = MemoryStore::default();
        let mut record = instance_format_1(serde_json::Value::Null);
        record.format = ResourceKind::Instance.spec().format() + 1;
        store.commit(&[Change::Put(record)]).expect("seed");
        assert!(matches!(State::load(&store), Err(Error::Internal(_))));
    }

    #[test]
    fn every_kind_has_its_own_name_and_prefix() {
        for (i, a) in ResourceKind::ALL.iter().enumerate() {
            for b in &ResourceKind::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
                assert!(a.spec().id_prefix.is_none() || a.spec().id_prefix != b.spec().id_prefix);
            }
        }
    }
}
