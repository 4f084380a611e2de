//! The desired state of each VPC for the network driver, computed from the records: its
//! subnets (with whether their route table reaches an attached internet gateway or a NAT
//! gateway, and which ACL guards them), its interfaces (live instances' primary ones and the
//! others), its security groups (group references stay `Peer::Group`; the driver resolves
//! membership), its network ACLs and its DHCP options.

use std::collections::BTreeMap;

use network::{Holder, InterfaceSpec, SecurityGroupSpec, SubnetSpec, VpcSpec};

use super::interfaces::dns_domain;
use super::vpcs::Vpc;
use crate::kinds::Tables;
use crate::vpc::dhcp_options::DhcpOptionsQueries;
use crate::vpc::nat_gateways::NatGatewayQueries;
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::vpc::route_tables::RouteTableQueries;
use crate::State;

/// The spec of every VPC, by ID.
pub fn vpc_specs(state: &State, region: &str) -> BTreeMap<String, VpcSpec> {
    state
        .vpcs()
        .values()
        .map(|vpc| (vpc.vpc_id.clone(), vpc_spec(state, region, vpc)))
        .collect()
}

pub fn vpc_spec(state: &State, region: &str, vpc: &Vpc) -> VpcSpec {
    let vpc_id = &vpc.vpc_id;
    let subnets = state
        .subnets()
        .values()
        .filter(|s| s.vpc_id == *vpc_id)
        .map(|subnet| SubnetSpec {
            subnet_id: subnet.subnet_id.clone(),
            cidr: subnet.cidr,
            internet_route: state
                .route_table_of(subnet)
                .is_some_and(|t| t.routes_to_internet(state)),
            network_acl_id: state
                .network_acls()
                .values()
                .find(|a| a.association_of(&subnet.subnet_id).is_some())
                .map(|a| a.network_acl_id.clone())
                .unwrap_or_default(),
            nat_public_ip: state.nat_public_ip_of(subnet),
        })
        .collect();
    // Every interface, attached or not: an available one keeps its DHCP reservation and
    // rules, so attaching it later changes no address. A NAT gateway's has no device: the
    // namespace translates for it (`SubnetSpec::nat_public_ip`).
    let interfaces = state
        .all_interfaces()
        .into_iter()
        .filter(|e| e.network.vpc_id == *vpc_id)
        // A service's interface with no device (a NAT gateway's) is the namespace's own.
        .filter(|e| e.managed.as_ref().is_none_or(|m| m.node))
        .map(|e| {
            let net = e.network;
            InterfaceSpec {
                interface_id: net.interface_id,
                instance_id: e.attachment.map(|a| a.instance_id),
                subnet_id: net.subnet_id,
                mac: net.mac,
                private_ips: net.private_ips,
                public_ip: net.public_ip,
                security_group_ids: net.security_group_ids,
                source_dest_check: net.source_dest_check,
                holder: if e.managed.as_ref().is_some_and(|m| m.node) {
                    Holder::Node
                } else {
                    Holder::Vm
                },
            }
        })
        .collect();
    let security_groups = state
        .security_groups()
        .values()
        .filter(|g| g.vpc_id == *vpc_id)
        .map(|group| SecurityGroupSpec {
            group_id: group.group_id.clone(),
            ingress: group.ingress.iter().map(|r| r.to_network()).collect(),
            egress: group.egress.iter().map(|r| r.to_network()).collect(),
        })
        .collect();
    let network_acls = state
        .network_acls()
        .values()
        .filter(|a| a.vpc_id == *vpc_id)
        .map(|a| a.to_network())
        .collect();
    VpcSpec {
        vpc_id: vpc_id.clone(),
        cidrs: vpc.cidrs.iter().map(|c| c.cidr).collect(),
        dns_support: vpc.enable_dns_support,
        dns_hostnames: vpc.enable_dns_hostnames,
        dns_domain: dns_domain(region),
        subnets,
        interfaces,
        security_groups,
        network_acls,
        dhcp_options: state.dhcp_options_spec_of(vpc),
        service_names: Vec::new(),
    }
}
