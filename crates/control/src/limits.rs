//! The account's limits (`Config::limits`, AWS's defaults). A creation checks its limit with
//! [`check`] inside the same `mutate` that creates, so a refused call creates nothing: no VPC
//! without its default group, no half of a rule set.

use crate::volume_types::VolumeType;
use crate::{Error, Result};

/// What a limit counts; the API answers each with AWS's code for it (`api/src/error.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Vpcs,
    SubnetsPerVpc,
    SecurityGroupsPerVpc,
    /// Inbound or outbound rules of one group (each direction has its own limit).
    RulesPerGroup,
    GroupsPerInterface,
    ElasticIps,
    NetworkInterfaces,
    Volumes,
    /// GiB of all volumes of one type.
    VolumeStorage(VolumeType),
    Snapshots,
}

impl Limit {
    fn message(self, max: u64) -> String {
        let what = match self {
            Limit::Vpcs => "VPCs",
            Limit::SubnetsPerVpc => "subnets",
            Limit::SecurityGroupsPerVpc => "security groups",
            Limit::RulesPerGroup => "rules per security group",
            Limit::GroupsPerInterface => "security groups per network interface",
            Limit::ElasticIps => "addresses",
            Limit::NetworkInterfaces => "network interfaces",
            Limit::Volumes => "volumes",
            Limit::Snapshots => "snapshots",
            Limit::VolumeStorage(volume_type) => {
                return format!(
                    "You have exceeded your maximum {} storage limit of {max} GiB in this region.",
                    volume_type.as_str()
                )
            }
        };
        format!("The maximum number of {what} has been reached.")
    }
}

/// Refuses adding `adding` to the `used` of what `limit` counts when it would pass `max`.
pub fn check(limit: Limit, used: u64, adding: u64, max: u64) -> Result<()> {
    if used.saturating_add(adding) > max {
        return Err(Error::LimitExceeded {
            limit,
            message: limit.message(max),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nimbus_core::Limits;

    use super::*;
    use crate::kinds::Tables;
    use crate::testkit::Harness;
    use crate::vpc::security_groups::{Direction, GroupRef, IpPermission, IpRange};
    use crate::Tags;

    #[test]
    fn a_limit_admits_up_to_its_maximum() {
        assert!(check(Limit::Vpcs, 4, 1, 5).is_ok());
        let Err(Error::LimitExceeded { limit, message }) = check(Limit::Vpcs, 5, 1, 5) else {
            panic!("the sixth VPC is refused");
        };
        assert_eq!(limit, Limit::Vpcs);
        assert_eq!(message, "The maximum number of VPCs has been reached.");
        assert!(check(Limit::RulesPerGroup, 0, u64::MAX, 60).is_err());
    }

    fn refused<T: std::fmt::Debug>(result: Result<T>) -> Limit {
        match result {
            Err(Error::LimitExceeded { limit, .. }) => limit,
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    fn tcp(ports: &[i64]) -> Vec<IpPermission> {
        ports
            .iter()
            .map(|port| IpPermission {
                ip_protocol: Some("tcp".into()),
                from_port: Some(*port),
                to_port: Some(*port),
                ip_ranges: vec![IpRange {
                    cidr_ip: Some("10.0.0.0/8".into()),
                    description: None,
                }],
                ..IpPermission::default()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_refused_vpc_leaves_no_default_group_acl_or_route_table() {
        let h = Harness::with_limits(Limits {
            vpcs: 2,
            ..Limits::default()
        })
        .await;
        let vpc = |cidr| h.control.create_vpc(cidr, Tags::new(), false);
        vpc("10.1.0.0/16").expect("the second VPC (the default one counts)");
        let counts = |h: &Harness| {
            let state = h.control.read();
            let groups = state.security_groups().len();
            let acls = state.network_acls().len();
            (state.vpcs().len(), groups, acls, state.route_tables().len())
        };
        let before = counts(&h);
        assert_eq!(refused(vpc("10.2.0.0/16")), Limit::Vpcs);
        assert_eq!(counts(&h), before);
    }

    #[tokio::test]
    async fn subnets_and_groups_are_counted_per_vpc() {
        let h = Harness::with_limits(Limits {
            subnets_per_vpc: 1,
            security_groups_per_vpc: 2,
            ..Limits::default()
        })
        .await;
        let vpc = h
            .control
            .create_vpc("10.1.0.0/16", Tags::new(), false)
            .expect("vpc");
        let subnet = |cidr| {
            h.control
                .create_subnet(&vpc.vpc_id, cidr, None, Tags::new(), false)
        };
        subnet("10.1.0.0/24").expect("first subnet");
        assert_eq!(refused(subnet("10.1.1.0/24")), Limit::SubnetsPerVpc);
        let group = |name| {
            h.control
                .create_security_group(name, "d", Some(&vpc.vpc_id), Tags::new(), false)
        };
        // The VPC's default group is the first of two.
        group("one").expect("second group");
        assert_eq!(refused(group("two")), Limit::SecurityGroupsPerVpc);
        // The default VPC has room of its own.
        assert!(h
            .control
            .create_security_group("two", "d", None, Tags::new(), false)
            .is_ok());
    }

    #[tokio::test]
    async fn rules_past_the_limit_add_none_of_the_request() {
        let h = Harness::with_limits(Limits {
            inbound_rules_per_group: 3,
            outbound_rules_per_group: 2,
            ..Limits::default()
        })
        .await;
        let group = h
            .control
            .create_security_group("web", "web", None, Tags::new(), false)
            .expect("group");
        let authorize = |direction, ports: &[i64]| {
            let target = GroupRef::Id(&group.group_id);
            h.control
                .authorize_security_group(direction, target, &tcp(ports), false)
        };
        authorize(Direction::Ingress, &[22, 80]).expect("two rules");
        assert_eq!(
            refused(authorize(Direction::Ingress, &[443, 8080])),
            Limit::RulesPerGroup
        );
        let rules = |direction| {
            let state = h.control.read();
            state.security_groups()[&group.group_id]
                .rules(direction)
                .len()
        };
        assert_eq!(rules(Direction::Ingress), 2);
        authorize(Direction::Ingress, &[443]).expect("the third");
        // A new group's egress already holds its allow-all rule.
        authorize(Direction::Egress, &[53]).expect("the second outbound");
        assert_eq!(
            refused(authorize(Direction::Egress, &[123])),
            Limit::RulesPerGroup
        );
        assert_eq!(rules(Direction::Egress), 2);
    }

    #[tokio::test]
    async fn addresses_interfaces_and_groups_per_interface_have_limits() {
        let h = Harness::with_limits(Limits {
            elastic_ips: 1,
            network_interfaces: 1,
            groups_per_interface: 1,
            ..Limits::default()
        })
        .await;
        h.control
            .allocate_address(Tags::new(), false)
            .expect("one address");
        let second = h.control.allocate_address(Tags::new(), false);
        assert_eq!(refused(second), Limit::ElasticIps);
        assert_eq!(h.control.read().elastic_ips().len(), 1);
        let extra = h
            .control
            .create_security_group("extra", "d", None, Tags::new(), false)
            .expect("group");
        let instance = h.run_instance();
        let default_group = instance
            .network
            .clone()
            .expect("network")
            .security_group_ids;
        let both = [default_group[0].clone(), extra.group_id];
        let modify = h
            .control
            .modify_instance_groups(&instance.instance_id, &both, false);
        assert_eq!(refused(modify), Limit::GroupsPerInterface);
        let again = h
            .control
            .run_instances(crate::instances::RunInstancesRequest {
                image_id: h.image_id.clone(),
                min_count: 1,
                max_count: 1,
                ..Default::default()
            });
        assert_eq!(refused(again), Limit::NetworkInterfaces);
        assert_eq!(h.control.read().instances().len(), 1);
    }
}
