//! The kinds of resources EC2, IAM and STS store, each declared once in the list below and
//! registered into the engine ([`registry`]).
//!
//! A kind's entry names its type, its table accessor on [`engine::State`] (the [`Tables`]
//! trait) and its ID field, and gives its [`engine::KindSpec`]: the EC2 `resource-type` (also
//! the store's kind), the ID prefix, whether it carries tags, the AWS codes for a missing or
//! malformed ID, and the migrations of its stored format. Loading, tags, DescribeTags and ID
//! validation all derive from it, so a new kind is one entry here plus its rules module.

use crate::credentials::TemporaryCredential;
use crate::iam::{InstanceProfile, Role};
use crate::images::Image;
use crate::instances::{self, Instance};
use crate::keypairs::KeyPair;
use crate::launch_templates::LaunchTemplate;
use crate::snapshots::Snapshot;
use crate::volumes::Volume;
use crate::vpc::addresses::ElasticIp;
use crate::vpc::default_vpc::AccountSetup;
use crate::vpc::dhcp_options::DhcpOptions;
use crate::vpc::gateways::InternetGateway;
use crate::vpc::nat_gateways::NatGateway;
use crate::vpc::network_acls::NetworkAcl;
use crate::vpc::network_interfaces::NetworkInterface;
use crate::vpc::route_tables::RouteTable;
use crate::vpc::security_groups::SecurityGroup;
use crate::vpc::subnets::Subnet;
use crate::vpc::vpcs::Vpc;

engine::kinds! {
    pub trait Tables; pub fn registry;
    KeyPair, table key_pairs, id key_pair_id, tags tags {
        name: "key-pair",
        prefix: Some("key"),
        not_found: "InvalidKeyPair.NotFound",
        missing: "The key pair '{id}' does not exist",
        malformed: "InvalidKeyPair.Malformed",
        migrations: &[],
    }
    Volume, table volumes, id volume_id, tags tags {
        name: "volume",
        prefix: Some("vol"),
        not_found: "InvalidVolume.NotFound",
        missing: "The volume '{id}' does not exist.",
        malformed: "InvalidVolumeID.Malformed",
        migrations: &[],
    }
    Snapshot, table snapshots, id snapshot_id, tags tags {
        name: "snapshot",
        prefix: Some("snap"),
        not_found: "InvalidSnapshot.NotFound",
        missing: "The snapshot '{id}' does not exist.",
        malformed: "InvalidSnapshotID.Malformed",
        migrations: &[],
    }
    Image, table images, id image_id, tags tags {
        name: "image",
        prefix: Some("ami"),
        not_found: "InvalidAMIID.NotFound",
        missing: "The image id '[{id}]' does not exist",
        malformed: "InvalidAMIID.Malformed",
        migrations: &[],
    }
    Instance, table instances, id instance_id, tags tags {
        name: "instance",
        prefix: Some("i"),
        not_found: "InvalidInstanceID.NotFound",
        missing: "The instance ID '{id}' does not exist",
        malformed: "InvalidInstanceID.Malformed",
        migrations: &[
            instances::migrate_state_reason,
            instances::migrate_profile_association,
        ],
    }
    Vpc, table vpcs, id vpc_id, tags tags {
        name: "vpc",
        prefix: Some("vpc"),
        not_found: "InvalidVpcID.NotFound",
        missing: "The vpc ID '{id}' does not exist",
        malformed: "InvalidVpcID.Malformed",
        migrations: &[],
    }
    Subnet, table subnets, id subnet_id, tags tags {
        name: "subnet",
        prefix: Some("subnet"),
        not_found: "InvalidSubnetID.NotFound",
        missing: "The subnet ID '{id}' does not exist",
        malformed: "InvalidSubnetID.Malformed",
        migrations: &[],
    }
    SecurityGroup, table security_groups, id group_id, tags tags {
        name: "security-group",
        prefix: Some("sg"),
        not_found: "InvalidGroup.NotFound",
        missing: "The security group '{id}' does not exist",
        malformed: "InvalidGroupId.Malformed",
        migrations: &[],
    }
    InternetGateway, table internet_gateways, id internet_gateway_id, tags tags {
        name: "internet-gateway",
        prefix: Some("igw"),
        not_found: "InvalidInternetGatewayID.NotFound",
        missing: "The internetGateway ID '{id}' does not exist",
        malformed: "InvalidInternetGatewayID.Malformed",
        migrations: &[],
    }
    /// A NAT gateway (see `vpc/nat_gateways.rs`); its interface is a `NetworkInterface`.
    NatGateway, table nat_gateways, id nat_gateway_id, tags tags {
        name: "natgateway",
        prefix: Some("nat"),
        not_found: "NatGatewayNotFound",
        missing: "The NAT gateway '{id}' was not found",
        malformed: "NatGatewayMalformed",
        migrations: &[],
    }
    DhcpOptions, table dhcp_options, id dhcp_options_id, tags tags {
        name: "dhcp-options",
        prefix: Some("dopt"),
        not_found: "InvalidDhcpOptionID.NotFound",
        missing: "The dhcpOption ID '{id}' does not exist",
        malformed: "InvalidDhcpOptionsId.Malformed",
        migrations: &[],
    }
    RouteTable, table route_tables, id route_table_id, tags tags {
        name: "route-table",
        prefix: Some("rtb"),
        not_found: "InvalidRouteTableID.NotFound",
        missing: "The routeTable ID '{id}' does not exist",
        malformed: "InvalidRouteTableID.Malformed",
        migrations: &[],
    }
    NetworkAcl, table network_acls, id network_acl_id, tags tags {
        name: "network-acl",
        prefix: Some("acl"),
        not_found: "InvalidNetworkAclID.NotFound",
        missing: "The networkAcl ID '{id}' does not exist",
        malformed: "InvalidNetworkAclID.Malformed",
        migrations: &[],
    }
    /// A network interface other than an instance's primary one (that one lives in its
    /// instance record, see `vpc/interfaces.rs`).
    NetworkInterface, table network_interfaces, id network.interface_id, tags tags {
        name: "network-interface",
        prefix: Some("eni"),
        not_found: "InvalidNetworkInterfaceID.NotFound",
        missing: "The networkInterface ID '{id}' does not exist",
        malformed: "InvalidNetworkInterfaceID.Malformed",
        migrations: &[],
    }
    ElasticIp, table elastic_ips, id allocation_id, tags tags {
        name: "elastic-ip",
        prefix: Some("eipalloc"),
        not_found: "InvalidAllocationID.NotFound",
        missing: "The allocation ID '{id}' does not exist",
        malformed: "InvalidAllocationID.Malformed",
        migrations: &[],
    }
    LaunchTemplate, table launch_templates, id launch_template_id, tags tags {
        name: "launch-template",
        prefix: Some("lt"),
        not_found: "InvalidLaunchTemplateId.NotFound",
        missing: "The specified launch template, with template ID {id}, does not exist.",
        malformed: "InvalidLaunchTemplateId.Malformed",
        migrations: &[],
    }
    /// An IAM role (see `iam.rs`); IAM's own tags, not EC2's.
    Role, table roles, id role_id, tags untagged {
        name: "iam-role",
        prefix: None,
        not_found: "NoSuchEntity",
        missing: "The role with name {id} cannot be found.",
        malformed: "ValidationError",
        migrations: &[],
    }
    /// An IAM instance profile (see `iam.rs`).
    InstanceProfile, table instance_profiles, id instance_profile_id, tags untagged {
        name: "iam-instance-profile",
        prefix: None,
        not_found: "NoSuchEntity",
        missing: "Instance Profile {id} cannot be found.",
        malformed: "ValidationError",
        migrations: &[],
    }
    /// What was set up for the account once (its first default VPC).
    AccountSetup, table account_setups, id account_id, tags untagged {
        name: "account-setup",
        prefix: None,
        not_found: "InvalidParameterValue",
        missing: "The account {id} has no setup record.",
        malformed: "InvalidParameterValue",
        migrations: &[],
    }
    /// Temporary credentials issued by STS or for an instance profile (see `credentials.rs`).
    TemporaryCredential, table temporary_credentials, id access_key_id, tags untagged {
        name: "sts-credential",
        prefix: None,
        not_found: "InvalidClientTokenId",
        missing: "The security token included in the request is invalid.",
        malformed: "InvalidClientTokenId",
        migrations: &[],
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use engine::{Engine, Kind, Resource, State};
    use store::{Change, Record, SqliteStore, Store};

    use super::*;

    #[test]
    fn taggable_kinds_come_from_the_declarations() {
        let names: Vec<&str> = registry()
            .taggable_kinds()
            .into_iter()
            .map(Kind::as_str)
            .collect();
        assert_eq!(
            names,
            [
                "dhcp-options",
                "elastic-ip",
                "image",
                "instance",
                "internet-gateway",
                "key-pair",
                "launch-template",
                "natgateway",
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
            registry().kind_of_id("i-0123456789abcdef0"),
            Some(Instance::KIND)
        );
        assert_eq!(registry().kind_of_id("ami-0123"), Some(Image::KIND));
        assert_eq!(registry().kind_of_id("token-1"), None);
        let every: Vec<&str> = registry().kinds().map(Kind::as_str).collect();
        assert!(every.contains(&"iam-role") && every.contains(&"client-token"));
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("state.db")).expect("store");
        (dir, Arc::new(store))
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
    fn instances_of_format_1_keep_their_state_reason_as_code_and_message() {
        let (_dir, store) = store();
        store
            .commit(&[Change::Put(instance_format_1(serde_json::json!(
                "Client.UserInitiatedShutdown: User initiated shutdown"
            )))])
            .expect("seed");
        let engine = Engine::open(store.clone(), registry()).expect("load");
        let state = engine.read();
        let instance = state.instances().values().next().expect("instance");
        let reason = instance.state_reason.as_ref().expect("reason");
        assert_eq!(reason.code, "Client.UserInitiatedShutdown");
        assert_eq!(
            reason.message,
            "Client.UserInitiatedShutdown: User initiated shutdown"
        );
        let stored = store.load_kind("instance").expect("stored");
        assert_eq!(stored[0].format, Instance::KIND.spec().format());
        assert_eq!(
            stored[0].body["state_reason"]["code"],
            "Client.UserInitiatedShutdown"
        );
    }

    #[test]
    fn a_record_without_a_reason_migrates_unchanged() {
        let (_dir, store) = store();
        store
            .commit(&[Change::Put(instance_format_1(serde_json::Value::Null))])
            .expect("seed");
        let state = State::load(store.as_ref(), registry()).expect("load");
        assert!(state.instances().values().all(|i| i.state_reason.is_none()));
    }
}
