//! Drives the network driver toward the VPC specs computed from the records.
//!
//! Every committed change to a networking record (VPCs, subnets, groups, gateways, route
//! tables, ACLs, addresses, instances, interfaces, DHCP options: [`NETWORK_KINDS`]) pokes the reconciler
//! through its engine subscription, so a rule change reaches the driver within milliseconds
//! rather than at the next periodic pass. A pass computes every VPC's spec from the latest
//! records and applies each (the driver does nothing for a spec it already applied whose
//! pieces are all on the host, and heals what was removed from outside), and removes the VPCs
//! no longer wanted: those applied before (kept in memory), and after a start those wired on
//! the host. Specs are always computed from the records at the time of the pass, under
//! the applied-spec lock, so the latest records win over an older pass. One VPC failing is
//! logged and retried on the next pass; it never stops the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use network::VpcSpec;

use crate::instances::Instance;
use crate::vpc::addresses::ElasticIp;
use crate::vpc::dhcp_options::DhcpOptions;
use crate::vpc::gateways::InternetGateway;
use crate::vpc::nat_gateways::{self, NatGateway};
use crate::vpc::network_acls::NetworkAcl;
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::vpc::network_interfaces::NetworkInterface;
use crate::vpc::route_tables::RouteTable;
use crate::vpc::security_groups::SecurityGroup;
use crate::vpc::spec::{vpc_spec, vpc_specs};
use crate::vpc::subnets::Subnet;
use crate::vpc::vpcs::Vpc;
use crate::{Control, Error, Kind, Resource, Result};

/// How often the network is reconciled without any change, to heal drift on the host.
const NETWORK_TICK: Duration = Duration::from_secs(30);

/// The VPCs' data plane: after every commit to a kind that shapes it, and on a slow tick.
pub(crate) struct Network(pub(crate) Arc<Control>);

#[async_trait::async_trait]
impl engine::Reconciler for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    async fn pass(&self) {
        self.0.reconcile_network().await;
    }

    async fn wait(&self) {
        tokio::select! {
            _ = self.0.network_changes.changed() => {}
            _ = tokio::time::sleep(NETWORK_TICK) => {}
        }
    }
}

/// What the network reconciler knows of the host: the spec last applied to each VPC, and
/// whether the VPCs wired before this start have been swept.
#[derive(Default)]
pub struct AppliedNetwork {
    specs: BTreeMap<String, VpcSpec>,
    swept: bool,
}

/// What stands for a VPC wired on the host in an unknown state: it equals no wanted spec,
/// so the next pass applies the VPC again, or removes it if it is no longer wanted.
fn unknown_spec(vpc_id: String) -> VpcSpec {
    VpcSpec {
        vpc_id,
        cidrs: Vec::new(),
        dns_support: false,
        dns_hostnames: false,
        dns_domain: String::new(),
        subnets: Vec::new(),
        interfaces: Vec::new(),
        security_groups: Vec::new(),
        network_acls: Vec::new(),
        dhcp_options: Default::default(),
        service_names: Vec::new(),
    }
}

/// The kinds whose records make up VPC specs: the reconciler subscribes to their commits.
pub(crate) const NETWORK_KINDS: &[Kind] = &[
    Vpc::KIND,
    Subnet::KIND,
    SecurityGroup::KIND,
    InternetGateway::KIND,
    RouteTable::KIND,
    NetworkAcl::KIND,
    ElasticIp::KIND,
    Instance::KIND,
    NetworkInterface::KIND,
    NatGateway::KIND,
    DhcpOptions::KIND,
];

/// How long a call waits for the network to enforce its change; past that it answers anyway
/// (the change is committed and the reconciler keeps retrying).
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

impl Control {
    /// Asks the network reconciler to run now.
    /// Sets the names a service gives its addresses in each VPC (all of them, by VPC); the
    /// resolvers follow at the next network pass, which a change starts at once.
    pub fn set_service_names(
        &self,
        names: std::collections::BTreeMap<String, Vec<network::ServiceName>>,
    ) {
        let changed = {
            let mut current = self.service_names.lock().unwrap_or_else(|e| e.into_inner());
            let changed = *current != names;
            *current = names;
            changed
        };
        if changed {
            self.wake_network();
        }
    }

    pub fn wake_network(&self) {
        self.network_changes.wake();
    }

    /// How many network-shaping changes have been committed.
    pub fn network_changes(&self) -> u64 {
        self.network_changes.commits()
    }

    /// Waits until a reconciler pass has covered every network change committed so far
    /// (applied, or failed and logged for a retry), or [`SETTLE_LIMIT`] has passed.
    pub async fn network_settled(&self) {
        let target = self.network_changes();
        let mut applied = self.network_applied.subscribe();
        if tokio::time::timeout(SETTLE_LIMIT, applied.wait_for(|done| *done >= target))
            .await
            .is_err()
        {
            tracing::warn!(target, "the network has not caught up with a change yet");
        }
    }

    /// One pass: apply every VPC whose spec changed, remove VPCs that no longer exist.
    pub async fn reconcile_network(self: &Arc<Self>) {
        let mut applied = self.applied_network.lock().await;
        let covered = self.network_changes();
        let driver = self.drivers.network.clone();
        if !applied.swept {
            match driver.remove_orphans().await {
                Ok(orphans) if !orphans.is_empty() => {
                    tracing::info!(?orphans, "removed the VPCs of data dirs that are gone");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "cannot remove orphaned VPCs"),
            }
            match driver.wired_vpcs().await {
                Ok(wired) => {
                    // Unknown to this process: removed below unless a record still wants it.
                    for vpc_id in wired {
                        applied
                            .specs
                            .entry(vpc_id.clone())
                            .or_insert_with(|| unknown_spec(vpc_id));
                    }
                    applied.swept = true;
                }
                Err(error) => tracing::warn!(%error, "cannot list the wired VPCs; retrying"),
            }
        }
        let (wanted, unsettled) = {
            let state = self.read();
            let mut specs = vpc_specs(&state, &self.config().region);
            let names = self.service_names.lock().unwrap_or_else(|e| e.into_inner());
            for (vpc_id, spec) in specs.iter_mut() {
                spec.service_names = names.get(vpc_id).cloned().unwrap_or_default();
            }
            (specs, nat_gateways::unsettled(&state))
        };
        for (vpc_id, spec) in &wanted {
            // Unchanged specs too: the driver checks what is on the host, and makes again
            // what was removed from outside (a namespace, an uplink, a table).
            match driver.apply_vpc(spec).await {
                Ok(()) => {
                    applied.specs.insert(vpc_id.clone(), spec.clone());
                }
                Err(error) => {
                    // Half applied: the next pass applies the whole spec again, and a
                    // deletion still removes what is there.
                    applied
                        .specs
                        .insert(vpc_id.clone(), unknown_spec(vpc_id.clone()));
                    tracing::warn!(vpc = vpc_id, %error, "applying the VPC failed; retrying");
                }
            }
        }
        for vpc_id in wanted.keys().filter(|id| applied.specs.contains_key(*id)) {
            self.serve_metadata_of(vpc_id).await;
        }
        let gone: Vec<String> = applied
            .specs
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for vpc_id in gone {
            // The metadata listener holds the namespace open.
            self.stop_vpc_metadata(&vpc_id);
            match driver.remove_vpc(&vpc_id).await {
                Ok(()) => {
                    applied.specs.remove(&vpc_id);
                }
                Err(error) => {
                    tracing::warn!(vpc = vpc_id, %error, "removing the VPC failed; retrying")
                }
            }
        }
        // NAT gateways whose VPC the host now carries as the pass read it are settled.
        let settled: Vec<_> = unsettled
            .into_iter()
            .filter(|(vpc_id, _, _)| applied.specs.get(vpc_id) == wanted.get(vpc_id))
            .map(|(_, id, state)| (id, state))
            .collect();
        if let Err(error) = self.mutate(|txn| nat_gateways::settle(txn, &settled)) {
            tracing::warn!(%error, "cannot settle the NAT gateways; retrying");
        }
        self.network_applied.send_if_modified(|done| {
            let newer = covered > *done;
            *done = (*done).max(covered);
            newer
        });
    }

    /// The taps of an instance's interfaces, in device-index order, for its VM: its VPC is
    /// applied first, so the driver knows the interfaces.
    pub(crate) async fn open_nics(
        self: &Arc<Self>,
        instance: &Instance,
    ) -> Result<Vec<compute::NicSpec>> {
        let Some(network) = &instance.network else {
            return Ok(Vec::new());
        };
        self.ensure_vpc_applied(&network.vpc_id).await?;
        // All of an instance's interfaces are in its primary one's VPC (attach checks it).
        let interfaces = self.read().interfaces_of(instance);
        let mut nics = Vec::new();
        for interface in interfaces {
            nics.push(self.open_nic(&interface).await?);
        }
        Ok(nics)
    }

    /// The card of one interface (attached or being attached) for a running VM: the VPC is
    /// applied as it is now, with the interface wired to its instance, before the tap opens.
    pub(crate) async fn hotplug_nic_spec(
        self: &Arc<Self>,
        interface: &NetworkInterface,
    ) -> Result<compute::NicSpec> {
        self.ensure_vpc_applied(&interface.network.vpc_id).await?;
        self.open_nic(interface).await
    }

    async fn open_nic(&self, interface: &NetworkInterface) -> Result<compute::NicSpec> {
        let network = &interface.network;
        let tap = self
            .drivers
            .network
            .open_tap(&network.vpc_id, &network.interface_id)
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "cannot open the tap of {}: {e}",
                    network.interface_id
                ))
            })?;
        Ok(compute::NicSpec {
            device_index: interface.attachment.as_ref().map_or(0, |a| a.device_index),
            mac: network.mac.clone(),
            tap: Arc::new(tap),
        })
    }

    /// Makes sure a VPC is applied as its records are now (before a VM is wired into it).
    async fn ensure_vpc_applied(self: &Arc<Self>, vpc_id: &str) -> Result<()> {
        let mut applied = self.applied_network.lock().await;
        let spec = {
            let state = self.read();
            let vpc = crate::describe::existing::<crate::vpc::vpcs::Vpc>(&state, vpc_id)?;
            vpc_spec(&state, &self.config().region, vpc)
        };
        if applied.specs.get(vpc_id) == Some(&spec) {
            return Ok(());
        }
        if let Err(e) = self.drivers.network.apply_vpc(&spec).await {
            applied
                .specs
                .insert(vpc_id.to_owned(), unknown_spec(vpc_id.to_owned()));
            return Err(Error::Internal(format!("cannot wire VPC {vpc_id}: {e}")));
        }
        applied.specs.insert(vpc_id.to_owned(), spec);
        self.serve_metadata_of(vpc_id).await;
        Ok(())
    }

    /// Starts the metadata service of an applied VPC unless it runs (also after a restart).
    async fn serve_metadata_of(self: &Arc<Self>, vpc_id: &str) {
        if let Err(error) = self.serve_vpc_metadata(vpc_id).await {
            tracing::warn!(vpc = vpc_id, %error, "cannot serve the VPC's metadata; the next pass retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::vpc::subnets::SubnetQueries;
    use std::net::Ipv4Addr;

    use network::{NetworkDriver, Peer, Protocol};

    use crate::testkit::Harness;
    use crate::vpc::addresses::AssociationTarget;
    use crate::vpc::interfaces::{InterfaceChange, NetworkRequest};
    use crate::vpc::security_groups::{Direction, GroupRef, IpPermission, IpRange, RuleSelection};
    use crate::Tags;

    fn default_vpc_id(h: &Harness) -> String {
        h.control.default_vpc_id().expect("default VPC")
    }

    fn tcp_from(port: i64, cidr: &str) -> IpPermission {
        IpPermission {
            ip_protocol: Some("tcp".into()),
            from_port: Some(port),
            to_port: Some(port),
            ip_ranges: vec![IpRange {
                cidr_ip: Some(cidr.into()),
                description: None,
            }],
            ..IpPermission::default()
        }
    }

    #[tokio::test]
    async fn the_default_vpc_is_applied_with_its_internet_route_and_default_group() {
        let h = Harness::new().await;
        h.control.reconcile_network().await;
        let spec = h.network.applied(&default_vpc_id(&h)).expect("applied");
        assert_eq!(spec.subnets.len(), 3);
        assert!(spec.subnets.iter().all(|s| s.internet_route));
        assert_eq!(spec.dns_domain, "ec2.internal");
        let group = &spec.security_groups[0];
        assert_eq!(group.ingress[0].peer, Peer::Group(group.group_id.clone()));
        assert_eq!(group.ingress[0].protocol, Protocol::All);
        let acl = &spec.network_acls[0];
        assert_eq!(acl.ingress.len(), 1);
        assert!(acl.ingress[0].allow);
        assert!(spec
            .subnets
            .iter()
            .all(|s| s.network_acl_id == acl.network_acl_id));
    }

    #[tokio::test]
    async fn rule_changes_reach_the_driver_promptly() {
        let h = Harness::new().await;
        let passes = std::sync::Arc::new(engine::Passes::default());
        let reconcilers = engine::reconciler::run_all(
            vec![std::sync::Arc::new(super::Network(h.control.clone()))],
            passes,
        );
        let vpc_id = default_vpc_id(&h);
        let group = h
            .control
            .create_security_group("web", "web", None, Tags::new(), false)
            .expect("group");
        h.control
            .authorize_security_group(
                Direction::Ingress,
                GroupRef::Id(&group.group_id),
                &[tcp_from(80, "0.0.0.0/0")],
                false,
            )
            .expect("authorize");
        // The mutation wakes the reconciler; no periodic pass is needed.
        let has_rule = |h: &Harness| {
            h.network.applied(&vpc_id).is_some_and(|spec| {
                spec.security_groups.iter().any(|g| {
                    g.group_id == group.group_id
                        && g.ingress
                            .iter()
                            .any(|r| r.protocol == Protocol::Tcp { from: 80, to: 80 })
                })
            })
        };
        while !has_rule(&h) {
            tokio::task::yield_now().await;
        }
        h.control
            .revoke_security_group(
                Direction::Ingress,
                GroupRef::Id(&group.group_id),
                RuleSelection::Permissions(&[tcp_from(80, "0.0.0.0/0")]),
                false,
            )
            .expect("revoke");
        while has_rule(&h) {
            tokio::task::yield_now().await;
        }
        for reconciler in reconcilers {
            reconciler.abort();
        }
    }

    #[tokio::test]
    async fn instances_join_and_leave_their_vpc_spec() {
        let h = Harness::new().await;
        let instance = h.run_instance();
        let network = instance.network.clone().expect("interface");
        assert_eq!(network.primary_ip(), Ipv4Addr::new(172, 31, 0, 4));
        assert!(
            network.public_ip.is_some(),
            "default subnets map public IPs"
        );
        assert!(network.mac.starts_with("02:"));
        h.settle().await;
        assert!(h.hypervisor.is_running(&instance.instance_id));
        let spec = h.network.applied(&network.vpc_id).expect("applied");
        let interface = &spec.interfaces[0];
        assert_eq!(
            interface.instance_id.as_deref(),
            Some(instance.instance_id.as_str())
        );
        assert_eq!(interface.private_ips, vec![network.primary_ip()]);
        assert_eq!(interface.public_ip, network.public_ip);
        assert_eq!(interface.security_group_ids, network.security_group_ids);

        let second = h.run_instance();
        assert_eq!(
            second.network.expect("interface").primary_ip(),
            Ipv4Addr::new(172, 31, 0, 5)
        );
        h.control
            .terminate_instances(std::slice::from_ref(&instance.instance_id), false)
            .expect("terminate");
        h.settle().await;
        h.control.reconcile_network().await;
        let spec = h.network.applied(&network.vpc_id).expect("applied");
        assert_eq!(spec.interfaces.len(), 1);
        assert_ne!(spec.interfaces[0].instance_id, Some(instance.instance_id));
    }

    #[tokio::test]
    async fn a_custom_subnet_allocates_from_its_range_and_honours_a_private_ip() {
        let h = Harness::new().await;
        let vpc = h
            .control
            .create_vpc("10.9.0.0/16", Tags::new(), false)
            .expect("vpc");
        let subnet = h
            .control
            .create_subnet(
                &vpc.vpc_id,
                "10.9.1.0/28",
                Some("us-east-1b"),
                Tags::new(),
                false,
            )
            .expect("subnet");
        let mut request = crate::instances::RunInstancesRequest {
            image_id: h.image_id.clone(),
            min_count: 1,
            max_count: 1,
            network: NetworkRequest {
                subnet_id: Some(subnet.subnet_id.clone()),
                private_ip: Some("10.9.1.9".into()),
                ..NetworkRequest::default()
            },
            ..Default::default()
        };
        let launched = h.control.run_instances(request.clone()).expect("run");
        let network = launched[0].network.clone().expect("interface");
        assert_eq!(network.primary_ip(), Ipv4Addr::new(10, 9, 1, 9));
        assert_eq!(network.public_ip, None);
        assert_eq!(launched[0].availability_zone, "us-east-1b");
        assert!(matches!(
            h.control.run_instances(request.clone()),
            Err(crate::Error::AddressInUse(_))
        ));
        request.network.private_ip = Some("10.9.1.3".into());
        assert!(matches!(
            h.control.run_instances(request.clone()),
            Err(crate::Error::InvalidParameterValue(_))
        ));
        // A /28 has 16 - 5 = 11 usable addresses; one is taken.
        assert_eq!(h.control.read().available_ip_count(&subnet), 10);
        request.network.private_ip = None;
        request.max_count = 20;
        request.min_count = 11;
        assert!(matches!(
            h.control.run_instances(request),
            Err(crate::Error::InsufficientAddresses(_))
        ));
        assert!(matches!(
            h.control.delete_subnet(&subnet.subnet_id, false),
            Err(crate::Error::DependencyViolation(_))
        ));
    }

    #[tokio::test]
    async fn deleted_vpcs_are_removed_and_a_restart_sweeps_leftovers() {
        let h = Harness::new().await;
        let vpc = h
            .control
            .create_vpc("10.8.0.0/16", Tags::new(), false)
            .expect("vpc");
        h.control.reconcile_network().await;
        assert!(h.network.applied(&vpc.vpc_id).is_some());
        h.control.delete_vpc(&vpc.vpc_id, false).expect("delete");
        h.control.reconcile_network().await;
        assert!(h.network.applied(&vpc.vpc_id).is_none());

        // A VPC wired on the host that no record wants any more (deleted while nimbus was down).
        let mut stray = h.network.applied(&default_vpc_id(&h)).expect("applied");
        stray.vpc_id = "vpc-0123456789abcdef0".into();
        h.network.apply_vpc(&stray).await.expect("wire");
        let restarted = h.reopen();
        restarted.control.reconcile_network().await;
        assert!(h.network.applied("vpc-0123456789abcdef0").is_none());
        assert!(h.network.applied(&default_vpc_id(&restarted)).is_some());
        assert_eq!(default_vpc_id(&restarted), default_vpc_id(&h), "made once");
    }

    #[tokio::test]
    async fn membership_and_source_dest_check_changes_are_in_the_spec() {
        let h = Harness::new().await;
        let instance = h.run_instance();
        let group = h
            .control
            .create_security_group("app", "app", None, Tags::new(), false)
            .expect("group");
        h.control
            .modify_instance_groups(
                &instance.instance_id,
                std::slice::from_ref(&group.group_id),
                false,
            )
            .expect("groups");
        h.control
            .modify_source_dest_check(&instance.instance_id, false, false)
            .expect("check");
        h.control.reconcile_network().await;
        let spec = h.network.applied(&default_vpc_id(&h)).expect("applied");
        assert_eq!(
            spec.interfaces[0].security_group_ids,
            vec![group.group_id.clone()]
        );
        assert!(!spec.interfaces[0].source_dest_check);
        assert!(matches!(
            h.control
                .delete_security_group(GroupRef::Id(&group.group_id), false),
            Err(crate::Error::DependencyViolation(_))
        ));
    }

    #[tokio::test]
    async fn public_ips_held_elsewhere_on_the_host_are_never_handed_out() {
        let h = Harness::new().await;
        let pool: ipnet::Ipv4Net = h.control.config().public_ip_pool.parse().expect("pool");
        let mut addresses = pool.hosts();
        let (first, second, third) = (
            addresses.next().expect("first"),
            addresses.next().expect("second"),
            addresses.next().expect("third"),
        );
        // Another nimbus's VPC holds the first address, a leftover's route the second.
        h.network.hold_elsewhere(first.into());
        h.network.hold_elsewhere(second.into());
        let address = h
            .control
            .allocate_address(Tags::new(), false)
            .expect("allocate");
        assert_eq!(address.public_ip, third);
    }

    #[tokio::test]
    async fn an_elastic_ip_moves_between_instances() {
        let h = Harness::new().await;
        let first = h.run_instance();
        let second = h.run_instance();
        let address = h
            .control
            .allocate_address(Tags::new(), false)
            .expect("allocate");
        let to = |instance: &crate::instances::Instance, reassociate| AssociationTarget {
            instance_id: Some(instance.instance_id.clone()),
            allow_reassociation: reassociate,
            ..AssociationTarget::default()
        };
        h.control
            .associate_address(&address.allocation_id, &to(&first, false), false)
            .expect("associate");
        h.control.reconcile_network().await;
        let public_of = |h: &Harness, id: &str| {
            h.network
                .applied(&default_vpc_id(h))
                .and_then(|spec| {
                    spec.interfaces
                        .into_iter()
                        .find(|i| i.instance_id.as_deref() == Some(id))
                })
                .and_then(|i| i.public_ip)
        };
        assert_eq!(public_of(&h, &first.instance_id), Some(address.public_ip));
        assert!(matches!(
            h.control
                .associate_address(&address.allocation_id, &to(&second, false), false),
            Err(crate::Error::AlreadyAssociated(_))
        ));
        h.control
            .associate_address(&address.allocation_id, &to(&second, true), false)
            .expect("move");
        h.control.reconcile_network().await;
        assert_eq!(public_of(&h, &second.instance_id), Some(address.public_ip));
        // The first instance's auto-assigned address was released when the elastic IP came;
        // it was launched with one, so it has a new one now the elastic IP left.
        let first_again = public_of(&h, &first.instance_id).expect("a new public IP");
        assert_ne!(first_again, address.public_ip);
        let association = h
            .control
            .associate_address(&address.allocation_id, &to(&first, true), false)
            .expect("back to the first");
        h.control
            .disassociate_address(Some(&association), None, false)
            .expect("disassociate");
        h.control.reconcile_network().await;
        assert!(public_of(&h, &first.instance_id).is_some_and(|ip| ip != address.public_ip));
        assert!(public_of(&h, &second.instance_id).is_some());
        h.control
            .associate_address(&address.allocation_id, &to(&second, false), false)
            .expect("to the second again");
        assert!(matches!(
            h.control
                .release_address(Some(&address.allocation_id), None, false),
            Err(crate::Error::AddressInUse(_))
        ));
        h.control
            .terminate_instances(std::slice::from_ref(&second.instance_id), false)
            .expect("terminate");
        h.settle().await;
        h.control
            .release_address(Some(&address.allocation_id), None, false)
            .expect("free once its instance is gone");
    }

    #[tokio::test]
    async fn one_failing_vpc_does_not_stop_the_others() {
        let h = Harness::new().await;
        let broken = h
            .control
            .create_vpc("10.1.0.0/16", Tags::new(), false)
            .expect("vpc");
        let fine = h
            .control
            .create_vpc("10.2.0.0/16", Tags::new(), false)
            .expect("vpc");
        h.network.fail_vpc(&broken.vpc_id);
        h.control.reconcile_network().await;
        assert!(h.network.applied(&broken.vpc_id).is_none());
        assert!(h.network.applied(&fine.vpc_id).is_some());
        assert!(h.network.applied(&default_vpc_id(&h)).is_some());
    }

    #[tokio::test]
    async fn secondary_addresses_and_interface_attributes_reach_the_spec() {
        let h = Harness::new().await;
        let instance = h.run_instance();
        let eni = instance.network.expect("interface").interface_id;
        let assigned = h
            .control
            .assign_private_ips(&eni, &["172.31.0.20".into()], None)
            .expect("assign");
        assert_eq!(assigned, vec![Ipv4Addr::new(172, 31, 0, 20)]);
        let counted = h
            .control
            .assign_private_ips(&eni, &[], Some(2))
            .expect("count");
        assert_eq!(
            counted,
            vec![Ipv4Addr::new(172, 31, 0, 5), Ipv4Addr::new(172, 31, 0, 6)]
        );
        assert!(matches!(
            h.control
                .assign_private_ips(&eni, &["172.31.0.20".into()], None),
            Err(crate::Error::AddressInUse(_))
        ));
        h.control
            .unassign_private_ips(&eni, &["172.31.0.5".into()])
            .expect("unassign");
        assert!(matches!(
            h.control.unassign_private_ips(&eni, &["172.31.0.4".into()]),
            Err(crate::Error::InvalidParameterValue(_))
        ));
        h.control
            .modify_interface(&eni, InterfaceChange::SourceDestCheck(false), false)
            .expect("check");
        assert!(matches!(
            h.control.modify_interface(
                "eni-0123456789abcdef0",
                InterfaceChange::SourceDestCheck(true),
                false
            ),
            Err(crate::Error::InterfaceNotFound(_))
        ));
        h.control.reconcile_network().await;
        let spec = h.network.applied(&default_vpc_id(&h)).expect("applied");
        assert_eq!(
            spec.interfaces[0].private_ips,
            vec![
                Ipv4Addr::new(172, 31, 0, 4),
                Ipv4Addr::new(172, 31, 0, 20),
                Ipv4Addr::new(172, 31, 0, 6)
            ]
        );
        assert!(!spec.interfaces[0].source_dest_check);
    }
}
