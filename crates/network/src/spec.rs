//! The desired state of one VPC on the host, computed by control from its records.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VpcSpec {
    pub vpc_id: String,
    /// The primary CIDR first, then associated ones.
    pub cidrs: Vec<Ipv4Net>,
    /// The resolver at base+2 answers when this is on.
    pub dns_support: bool,
    /// The resolver knows `ip-a-b-c-d.<dns_domain>` names when this is on too.
    pub dns_hostnames: bool,
    /// `ec2.internal` in us-east-1, `REGION.compute.internal` elsewhere.
    pub dns_domain: String,
    pub subnets: Vec<SubnetSpec>,
    pub interfaces: Vec<InterfaceSpec>,
    pub security_groups: Vec<SecurityGroupSpec>,
    pub network_acls: Vec<NetworkAclSpec>,
    /// What DHCP hands out besides addresses (the VPC's DHCP options set).
    pub dhcp_options: DhcpOptionsSpec,
    /// Names services give their addresses in the VPC (a load balancer's `DNSName`), which
    /// the resolver answers.
    #[serde(default)]
    pub service_names: Vec<ServiceName>,
}

/// A DNS name and its addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceName {
    /// Lowercase letters, digits, dots and dashes.
    pub name: String,
    pub ips: Vec<Ipv4Addr>,
}

/// The options of a VPC's DHCP options set, as DHCP sends them (RFC 2132). Empty: only
/// addresses, router and host names (the `default` set of no options).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DhcpOptionsSpec {
    /// Option 15: one domain, or several separated by spaces (a search list).
    pub domain_name: Option<String>,
    /// Option 6, in order.
    pub domain_name_servers: Vec<NameServer>,
    /// Option 42.
    pub ntp_servers: Vec<Ipv4Addr>,
    /// Option 44.
    pub netbios_name_servers: Vec<Ipv4Addr>,
    /// Option 46: 1, 2, 4 or 8.
    pub netbios_node_type: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NameServer {
    /// `AmazonProvidedDNS`: the VPC resolver at base+2, while DNS support is on.
    AmazonProvided,
    Address(Ipv4Addr),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubnetSpec {
    pub subnet_id: String,
    pub cidr: Ipv4Net,
    /// The subnet's route table sends 0.0.0.0/0 to an internet gateway attached to the VPC:
    /// public IPs are NATed and instances reach the host and beyond. Without it the subnet
    /// has no way out of the VPC.
    pub internet_route: bool,
    pub network_acl_id: String,
    /// The subnet's route table sends 0.0.0.0/0 to a public NAT gateway that has a way out
    /// (its own subnet routes to the internet gateway): the subnet's addresses leave by the
    /// uplink with this source, the gateway's elastic IP, and nothing comes in through it.
    pub nat_public_ip: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    pub interface_id: String,
    /// The instance the interface is attached to, if any.
    pub instance_id: Option<String>,
    pub subnet_id: String,
    /// `02:xx:xx:xx:xx:xx`, lowercase.
    pub mac: String,
    /// The primary private IP first, then secondary ones.
    pub private_ips: Vec<Ipv4Addr>,
    /// A public or elastic IP NATed to the primary private IP.
    pub public_ip: Option<Ipv4Addr>,
    /// An interface of a VM is in at least one group; a load balancer node's in none is
    /// not filtered at all (a network load balancer without groups, as in AWS).
    pub security_group_ids: Vec<String>,
    /// When on, the interface may send only from its own addresses.
    pub source_dest_check: bool,
    /// What holds the interface on the host.
    #[serde(default)]
    pub holder: Holder,
}

/// What holds an interface on the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Holder {
    /// A VM: its tap is opened by [`crate::NetworkDriver::open_tap`] when the VM starts.
    #[default]
    Vm,
    /// A network namespace of its own that the driver makes and wires to the VPC by a veth
    /// pair (a load balancer node's: [`crate::node_namespace`] names it), so the VPC sees it
    /// exactly as a VM's interface: its groups, ACL and public IP apply.
    Node,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupSpec {
    pub group_id: String,
    /// Allowed sources of traffic to members.
    pub ingress: Vec<SecurityGroupRule>,
    /// Allowed destinations of traffic from members.
    pub egress: Vec<SecurityGroupRule>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub protocol: Protocol,
    /// The peer: the source for ingress, the destination for egress.
    pub peer: Peer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Peer {
    Cidr(Ipv4Net),
    /// Every private IP of the group's member interfaces in this VPC.
    Group(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// `-1`: every protocol and port.
    All,
    /// Inclusive port range.
    Tcp {
        from: u16,
        to: u16,
    },
    Udp {
        from: u16,
        to: u16,
    },
    /// `None` means any type (or any code of the type).
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    /// Another IP protocol number, all of its traffic.
    Other(u8),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkAclSpec {
    pub network_acl_id: String,
    /// Evaluated in ascending rule number; the first match decides; no match denies.
    pub ingress: Vec<NetworkAclEntry>,
    pub egress: Vec<NetworkAclEntry>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkAclEntry {
    pub rule_number: u16,
    pub protocol: Protocol,
    pub cidr: Ipv4Net,
    pub allow: bool,
}
