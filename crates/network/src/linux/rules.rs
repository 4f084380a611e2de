//! The nftables ruleset of one VPC namespace, rendered from its spec by pure functions and
//! applied as one `nft -f` transaction (the table is deleted and redefined atomically, and
//! conntrack entries live outside the table, so established flows survive a re-apply).
//!
//! Every guest packet is routed through the namespace, so one `inet` table sees it all:
//! - `prerouting` (before DNAT): anti-spoofing per interface — its own MAC always, its own
//!   IPs when source/dest check is on, DHCP discovery from 0.0.0.0 excepted; no IPv6.
//! - `input`: what guests may ask of the namespace itself: DHCP, DNS at base+2, metadata.
//! - `forward`, three base chains in priority order, a drop in any one is final:
//!   1. `sg_egress`: stateful; the sender's groups must allow the destination (one chain
//!      per group, rules `accept`, so the interface's groups are a union);
//!   2. `nacl`: stateless, only for traffic crossing the subnet boundary, the source
//!      subnet's egress entries then the destination subnet's ingress entries, in rule
//!      number order, first match decides, no match denies;
//!   3. `sg_ingress`: stateful; the receiver's groups must allow the source.
//! - NAT: a public IP arriving on the uplink is DNATed to its primary private IP; that IP
//!   leaving by the uplink is SNATed to the public IP. A subnet routed to a NAT gateway
//!   leaves by the uplink SNATed to the gateway's elastic IP, and nothing is DNATed to it.
//!
//! Group membership is a named set per group, so a rule naming a group costs one lookup
//! however many members it has; each base chain finds an interface's chains through one
//! verdict map keyed by device name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::names::{check_spec, interface_device, nft_name, UPLINK};
use crate::{
    Holder, InterfaceSpec, NetworkAclEntry, Peer, Protocol, Result, SecurityGroupRule, SubnetSpec,
    VpcSpec,
};

/// The table this driver owns in each namespace.
pub const TABLE: &str = "nimbus";

/// The metadata service's address, on the namespace's loopback.
pub const METADATA_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

/// The VPC resolver: base of the primary CIDR + 2.
pub fn resolver_ip(vpc: &VpcSpec) -> Option<Ipv4Addr> {
    let base = u32::from(vpc.cidrs.first()?.network());
    Some(Ipv4Addr::from(base + 2))
}

/// The subnet's router: its base + 1.
pub fn router_ip(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()) + 1)
}

/// Whether an interface's primary IP is NATed to a public one on the uplink.
fn has_way_out(subnet: &SubnetSpec, interface: &InterfaceSpec) -> bool {
    subnet.internet_route && interface.public_ip.is_some()
}

/// The public addresses the uplink holds and the host routes to the VPC: those of
/// interfaces with a way out, and those of the NAT gateways that subnets leave through.
pub fn public_addresses(vpc: &VpcSpec) -> BTreeSet<Ipv4Addr> {
    let interfaces = vpc.interfaces.iter().filter_map(|interface| {
        let subnet = vpc
            .subnets
            .iter()
            .find(|s| s.subnet_id == interface.subnet_id)?;
        interface
            .public_ip
            .filter(|_| has_way_out(subnet, interface))
    });
    let nat_gateways = vpc.subnets.iter().filter_map(|s| s.nat_public_ip);
    interfaces.chain(nat_gateways).collect()
}

/// The source NAT of subnets that leave through a NAT gateway: their addresses become the
/// gateway's on the uplink. Connections from outside find no DNAT, so they end at the
/// namespace's input chain, which drops them.
fn nat_gateway_snat(vpc: &VpcSpec) -> Vec<String> {
    vpc.subnets
        .iter()
        .filter_map(|subnet| {
            let public = subnet.nat_public_ip?;
            Some(format!(
                "oifname \"{UPLINK}\" ip saddr {} snat ip to {public}",
                subnet.cidr.trunc()
            ))
        })
        .collect()
}

enum Direction {
    /// The peer is the source.
    Ingress,
    /// The peer is the destination.
    Egress,
}

impl Direction {
    fn peer_field(&self) -> &'static str {
        match self {
            Direction::Ingress => "ip saddr",
            Direction::Egress => "ip daddr",
        }
    }
}

fn port_match(proto: &str, from: u16, to: u16) -> String {
    match (from, to) {
        (0, 65535) => format!("meta l4proto {proto}"),
        (from, to) if from == to => format!("{proto} dport {from}"),
        (from, to) => format!("{proto} dport {from}-{to}"),
    }
}

/// The match of a protocol, empty for all traffic.
fn protocol_match(protocol: &Protocol) -> String {
    match *protocol {
        Protocol::All => String::new(),
        Protocol::Tcp { from, to } => port_match("tcp", from, to),
        Protocol::Udp { from, to } => port_match("udp", from, to),
        Protocol::Icmp {
            icmp_type: None, ..
        } => "meta l4proto icmp".into(),
        Protocol::Icmp {
            icmp_type: Some(icmp_type),
            code: None,
        } => format!("icmp type {icmp_type}"),
        Protocol::Icmp {
            icmp_type: Some(icmp_type),
            code: Some(code),
        } => format!("icmp type {icmp_type} icmp code {code}"),
        Protocol::Other(number) => format!("meta l4proto {number}"),
    }
}

fn cidr_match(direction: &Direction, cidr: Ipv4Net) -> String {
    let cidr = cidr.trunc();
    if cidr.prefix_len() == 0 {
        "meta nfproto ipv4".into()
    } else {
        format!("{} {cidr}", direction.peer_field())
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn group_rule(direction: &Direction, rule: &SecurityGroupRule) -> Result<String> {
    let peer = match &rule.peer {
        Peer::Cidr(cidr) => cidr_match(direction, *cidr),
        Peer::Group(group) => format!("{} @members_{}", direction.peer_field(), nft_name(group)?),
    };
    Ok(join(&[&peer, &protocol_match(&rule.protocol), "accept"]))
}

fn acl_entry(direction: &Direction, entry: &NetworkAclEntry) -> String {
    let verdict = if entry.allow { "return" } else { "drop" };
    join(&[
        &cidr_match(direction, entry.cidr),
        &protocol_match(&entry.protocol),
        verdict,
    ])
}

/// Private IPs of each group's members, for every group an interface or rule names.
fn group_members(vpc: &VpcSpec) -> BTreeMap<&str, BTreeSet<Ipv4Addr>> {
    let mut members: BTreeMap<&str, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for group in &vpc.security_groups {
        members.entry(&group.group_id).or_default();
        for rule in group.ingress.iter().chain(&group.egress) {
            if let Peer::Group(peer) = &rule.peer {
                members.entry(peer).or_default();
            }
        }
    }
    for interface in &vpc.interfaces {
        for group in &interface.security_group_ids {
            members
                .entry(group)
                .or_default()
                .extend(&interface.private_ips);
        }
    }
    members
}

fn chain(out: &mut String, name: &str, hook: Option<&str>, rules: &[String]) {
    let _ = writeln!(out, "  chain {name} {{");
    if let Some(hook) = hook {
        let _ = writeln!(out, "    {hook}");
    }
    for rule in rules {
        let _ = writeln!(out, "    {rule}");
    }
    out.push_str("  }\n");
}

fn address_list(ips: &[Ipv4Addr]) -> String {
    let ips: Vec<String> = ips.iter().map(Ipv4Addr::to_string).collect();
    format!("{{ {} }}", ips.join(", "))
}

/// One verdict-map rule sending each interface's packets to its chain: a hash lookup, so
/// the per-packet cost does not grow with the number of interfaces.
fn dispatch(field: &str, entries: &[String]) -> Vec<String> {
    if entries.is_empty() {
        return Vec::new();
    }
    vec![format!("{field} vmap {{ {} }}", entries.join(", "))]
}

/// The whole nft script for a VPC: replaces the table in one transaction.
pub fn render(vpc: &VpcSpec) -> Result<String> {
    check_spec(vpc)?;
    let subnets: BTreeMap<&str, &SubnetSpec> = vpc
        .subnets
        .iter()
        .map(|s| (s.subnet_id.as_str(), s))
        .collect();
    let mut out = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    group_sets(&mut out, vpc)?;
    let known_groups = group_chains(&mut out, vpc)?;
    let known_acls = acl_chains(&mut out, vpc)?;
    let mut jumps = Jumps::default();
    for interface in &vpc.interfaces {
        let Some(subnet) = subnets.get(interface.subnet_id.as_str()) else {
            continue;
        };
        let known = (&known_groups, &known_acls);
        interface_chains(&mut out, &mut jumps, interface, subnet, known)?;
    }
    jumps.snat.extend(nat_gateway_snat(vpc));
    hook_chains(&mut out, vpc, &jumps);
    out.push_str("}\n");
    Ok(out)
}

/// The rules that send each interface's packets to its own chains, gathered while they are
/// written and dispatched from the hook chains.
#[derive(Default)]
struct Jumps {
    spoof: Vec<String>,
    egress: Vec<String>,
    acl_out: Vec<String>,
    acl_in: Vec<String>,
    ingress: Vec<String>,
    dnat: Vec<String>,
    snat: Vec<String>,
}

/// One named set per security group: the addresses of its members.
fn group_sets(out: &mut String, vpc: &VpcSpec) -> Result<()> {
    for (group, members) in group_members(vpc) {
        let _ = writeln!(
            out,
            "  set members_{} {{\n    type ipv4_addr",
            nft_name(group)?
        );
        if !members.is_empty() {
            let members: Vec<Ipv4Addr> = members.into_iter().collect();
            let _ = writeln!(out, "    elements = {}", address_list(&members));
        }
        out.push_str("  }\n");
    }
    Ok(())
}

/// Each group's inbound and outbound rules as chains; returns the groups written.
fn group_chains<'a>(out: &mut String, vpc: &'a VpcSpec) -> Result<BTreeSet<&'a str>> {
    for group in &vpc.security_groups {
        let name = nft_name(&group.group_id)?;
        let ingress: Vec<String> = group
            .ingress
            .iter()
            .map(|r| group_rule(&Direction::Ingress, r))
            .collect::<Result<_>>()?;
        let egress: Vec<String> = group
            .egress
            .iter()
            .map(|r| group_rule(&Direction::Egress, r))
            .collect::<Result<_>>()?;
        chain(out, &format!("sg_in_{name}"), None, &ingress);
        chain(out, &format!("sg_out_{name}"), None, &egress);
    }
    Ok(vpc
        .security_groups
        .iter()
        .map(|g| g.group_id.as_str())
        .collect())
}

/// Each network ACL's entries in rule-number order, ending in a drop; returns the ACLs
/// written.
fn acl_chains<'a>(out: &mut String, vpc: &'a VpcSpec) -> Result<BTreeSet<&'a str>> {
    for acl in &vpc.network_acls {
        let name = nft_name(&acl.network_acl_id)?;
        for (direction, entries, prefix) in [
            (Direction::Ingress, &acl.ingress, "acl_in"),
            (Direction::Egress, &acl.egress, "acl_out"),
        ] {
            let mut ordered: Vec<&NetworkAclEntry> = entries.iter().collect();
            ordered.sort_by_key(|e| e.rule_number);
            let mut rules: Vec<String> = ordered.iter().map(|e| acl_entry(&direction, e)).collect();
            rules.push("drop".into());
            chain(out, &format!("{prefix}_{name}"), None, &rules);
        }
    }
    Ok(vpc
        .network_acls
        .iter()
        .map(|a| a.network_acl_id.as_str())
        .collect())
}

/// One interface's chains (anti-spoofing, its groups out and in, its subnet's ACL) and its
/// public address's NAT, with the jumps to them; `known` are the groups and ACLs written.
fn interface_chains(
    out: &mut String,
    jumps: &mut Jumps,
    interface: &InterfaceSpec,
    subnet: &SubnetSpec,
    (known_groups, known_acls): (&BTreeSet<&str>, &BTreeSet<&str>),
) -> Result<()> {
    let device = interface_device(&interface.interface_id)?;
    let way_out = has_way_out(subnet, interface);

    let mut spoof = vec![
        format!("ether saddr != {} drop", interface.mac),
        "meta nfproto ipv6 drop".into(),
    ];
    if interface.source_dest_check {
        spoof.push(format!(
            "ip saddr {} return",
            address_list(&interface.private_ips)
        ));
        spoof.push("ip saddr 0.0.0.0 udp sport 68 udp dport 67 return".into());
        spoof.push("drop".into());
    }
    chain(out, &format!("spoof_{device}"), None, &spoof);
    jumps
        .spoof
        .push(format!("\"{device}\" : jump spoof_{device}"));

    let groups: Vec<String> = interface
        .security_group_ids
        .iter()
        .filter(|g| known_groups.contains(g.as_str()))
        .map(|g| nft_name(g))
        .collect::<Result<_>>()?;
    let mut from = Vec::new();
    match (way_out, subnet.nat_public_ip) {
        (true, _) => {}
        // Through a NAT gateway only the subnet's own addresses, which it translates.
        (false, Some(_)) => from.push(format!(
            "oifname \"{UPLINK}\" ip saddr != {} drop",
            subnet.cidr.trunc()
        )),
        (false, None) => from.push(format!("oifname \"{UPLINK}\" drop")),
    }
    // A node in no group (a network load balancer without groups) is not filtered.
    let unfiltered = interface.holder == Holder::Node && interface.security_group_ids.is_empty();
    let otherwise = if unfiltered { "accept" } else { "drop" };
    from.extend(groups.iter().map(|g| format!("jump sg_out_{g}")));
    from.push(otherwise.into());
    chain(out, &format!("from_{device}"), None, &from);
    jumps
        .egress
        .push(format!("\"{device}\" : jump from_{device}"));

    let mut to = Vec::new();
    if !subnet.internet_route {
        to.push(format!("iifname \"{UPLINK}\" drop"));
    }
    to.extend(groups.iter().map(|g| format!("jump sg_in_{g}")));
    to.push(otherwise.into());
    chain(out, &format!("to_{device}"), None, &to);
    jumps
        .ingress
        .push(format!("\"{device}\" : jump to_{device}"));

    let cidr = subnet.cidr.trunc();
    let (leaving, entering) = if known_acls.contains(subnet.network_acl_id.as_str()) {
        let acl = nft_name(&subnet.network_acl_id)?;
        (format!("jump acl_out_{acl}"), format!("jump acl_in_{acl}"))
    } else {
        // A subnet whose ACL is missing from the spec lets nothing cross its boundary.
        ("drop".to_owned(), "drop".to_owned())
    };
    chain(
        out,
        &format!("nacl_from_{device}"),
        None,
        &[format!("ip daddr != {cidr} {leaving}")],
    );
    chain(
        out,
        &format!("nacl_to_{device}"),
        None,
        &[format!("ip saddr != {cidr} {entering}")],
    );
    jumps
        .acl_out
        .push(format!("\"{device}\" : jump nacl_from_{device}"));
    jumps
        .acl_in
        .push(format!("\"{device}\" : jump nacl_to_{device}"));

    if let (true, Some(public), Some(private)) =
        (way_out, interface.public_ip, interface.private_ips.first())
    {
        jumps.dnat.push(format!(
            "iifname \"{UPLINK}\" ip daddr {public} dnat ip to {private}"
        ));
        jumps.snat.push(format!(
            "oifname \"{UPLINK}\" ip saddr {private} snat ip to {public}"
        ));
    }
    Ok(())
}

/// The chains on netfilter's hooks, which dispatch to the interfaces' chains.
fn hook_chains(out: &mut String, vpc: &VpcSpec, jumps: &Jumps) {
    let mut prerouting = dispatch("iifname", &jumps.spoof);
    prerouting.push(format!("iifname \"{UPLINK}\" meta nfproto ipv6 drop"));
    chain(
        out,
        "prerouting",
        Some("type filter hook prerouting priority -150; policy accept;"),
        &prerouting,
    );

    let mut input = vec![
        "iifname \"lo\" accept".to_string(),
        "ct state established,related accept".into(),
        format!("iifname \"{UPLINK}\" drop"),
        "udp dport 67 accept".into(),
        format!("ip daddr {METADATA_IP} tcp dport 80 accept"),
        "icmp type echo-request accept".into(),
    ];
    if let (true, Some(resolver)) = (vpc.dns_support, resolver_ip(vpc)) {
        input.push(format!(
            "ip daddr {resolver} meta l4proto {{ tcp, udp }} th dport 53 accept"
        ));
    }
    input.push("drop".into());
    chain(
        out,
        "input",
        Some("type filter hook input priority 0; policy accept;"),
        &input,
    );

    let mut egress = vec![
        "ct state established,related accept".to_string(),
        "ct state invalid drop".into(),
    ];
    egress.extend(dispatch("iifname", &jumps.egress));
    chain(
        out,
        "sg_egress",
        Some("type filter hook forward priority 0; policy accept;"),
        &egress,
    );
    chain(
        out,
        "nacl",
        Some("type filter hook forward priority 10; policy accept;"),
        &[
            dispatch("iifname", &jumps.acl_out),
            dispatch("oifname", &jumps.acl_in),
        ]
        .concat(),
    );
    let mut ingress = vec!["ct state established,related accept".to_string()];
    ingress.extend(dispatch("oifname", &jumps.ingress));
    chain(
        out,
        "sg_ingress",
        Some("type filter hook forward priority 20; policy accept;"),
        &ingress,
    );
    chain(
        out,
        "public_in",
        Some("type nat hook prerouting priority -100; policy accept;"),
        &jumps.dnat,
    );
    chain(
        out,
        "public_out",
        Some("type nat hook postrouting priority 100; policy accept;"),
        &jumps.snat,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NetworkAclSpec, SecurityGroupSpec};

    fn net(text: &str) -> Ipv4Net {
        text.parse().expect("test CIDR")
    }

    fn interface(id: &str, subnet: &str, ip: &str, groups: &[&str]) -> InterfaceSpec {
        InterfaceSpec {
            interface_id: id.into(),
            instance_id: None,
            subnet_id: subnet.into(),
            mac: "02:00:00:00:00:01".into(),
            private_ips: vec![ip.parse().expect("test IP")],
            public_ip: None,
            security_group_ids: groups.iter().map(|g| g.to_string()).collect(),
            source_dest_check: true,
            holder: Holder::Vm,
        }
    }

    fn spec() -> VpcSpec {
        VpcSpec {
            vpc_id: "vpc-01".into(),
            cidrs: vec![net("10.0.0.0/16")],
            dns_support: true,
            dns_hostnames: true,
            dns_domain: "ec2.internal".into(),
            subnets: vec![
                SubnetSpec {
                    subnet_id: "subnet-0a".into(),
                    cidr: net("10.0.1.0/24"),
                    internet_route: true,
                    network_acl_id: "acl-01".into(),
                    nat_public_ip: None,
                },
                SubnetSpec {
                    subnet_id: "subnet-0b".into(),
                    cidr: net("10.0.2.0/24"),
                    internet_route: false,
                    network_acl_id: "acl-01".into(),
                    nat_public_ip: None,
                },
            ],
            interfaces: vec![
                InterfaceSpec {
                    public_ip: Some("198.19.0.5".parse().expect("test IP")),
                    ..interface("eni-0a", "subnet-0a", "10.0.1.10", &["sg-01"])
                },
                interface("eni-0b", "subnet-0b", "10.0.2.10", &["sg-01", "sg-02"]),
            ],
            security_groups: vec![
                SecurityGroupSpec {
                    group_id: "sg-01".into(),
                    ingress: vec![
                        SecurityGroupRule {
                            protocol: Protocol::Tcp { from: 22, to: 22 },
                            peer: Peer::Cidr(net("0.0.0.0/0")),
                        },
                        SecurityGroupRule {
                            protocol: Protocol::All,
                            peer: Peer::Group("sg-01".into()),
                        },
                    ],
                    egress: vec![SecurityGroupRule {
                        protocol: Protocol::All,
                        peer: Peer::Cidr(net("0.0.0.0/0")),
                    }],
                },
                SecurityGroupSpec {
                    group_id: "sg-02".into(),
                    ingress: vec![SecurityGroupRule {
                        protocol: Protocol::Udp {
                            from: 1000,
                            to: 2000,
                        },
                        peer: Peer::Cidr(net("10.0.1.77/24")),
                    }],
                    egress: vec![],
                },
            ],
            network_acls: vec![NetworkAclSpec {
                network_acl_id: "acl-01".into(),
                ingress: vec![
                    NetworkAclEntry {
                        rule_number: 200,
                        protocol: Protocol::All,
                        cidr: net("0.0.0.0/0"),
                        allow: true,
                    },
                    NetworkAclEntry {
                        rule_number: 100,
                        protocol: Protocol::Icmp {
                            icmp_type: Some(8),
                            code: None,
                        },
                        cidr: net("10.0.1.0/24"),
                        allow: false,
                    },
                ],
                egress: vec![NetworkAclEntry {
                    rule_number: 100,
                    protocol: Protocol::All,
                    cidr: net("0.0.0.0/0"),
                    allow: true,
                }],
            }],
            dhcp_options: Default::default(),
            service_names: Vec::new(),
        }
    }

    fn chain_body<'a>(script: &'a str, name: &str) -> &'a str {
        let start = script
            .find(&format!("chain {name} {{"))
            .unwrap_or_else(|| panic!("no chain {name} in\n{script}"));
        let rest = &script[start..];
        &rest[..rest.find("\n  }").unwrap_or(rest.len())]
    }

    #[test]
    fn the_table_is_replaced_in_one_transaction_with_state_first() {
        let script = render(&spec()).expect("renders");
        assert!(script
            .starts_with("table inet nimbus\ndelete table inet nimbus\ntable inet nimbus {\n"));
        for base in ["sg_egress", "sg_ingress"] {
            let body = chain_body(&script, base);
            let first_rule = body.lines().nth(2).unwrap_or_default().trim();
            assert_eq!(first_rule, "ct state established,related accept", "{base}");
        }
    }

    #[test]
    fn group_rules_use_member_sets_cidrs_and_port_ranges() {
        let script = render(&spec()).expect("renders");
        assert!(script.contains(
            "set members_sg_01 {\n    type ipv4_addr\n    elements = { 10.0.1.10, 10.0.2.10 }"
        ));
        assert!(script
            .contains("set members_sg_02 {\n    type ipv4_addr\n    elements = { 10.0.2.10 }"));
        let sg1_in = chain_body(&script, "sg_in_sg_01");
        assert!(sg1_in.contains("meta nfproto ipv4 tcp dport 22 accept"));
        assert!(sg1_in.contains("ip saddr @members_sg_01 accept"));
        // Host bits of a CIDR are dropped, as EC2 does.
        assert!(chain_body(&script, "sg_in_sg_02")
            .contains("ip saddr 10.0.1.0/24 udp dport 1000-2000 accept"));
        // An interface's groups are a union, anything else is dropped.
        assert_eq!(
            chain_body(&script, "to_t0b")
                .lines()
                .skip(1)
                .map(str::trim)
                .collect::<Vec<_>>(),
            [
                "iifname \"uplink\" drop",
                "jump sg_in_sg_01",
                "jump sg_in_sg_02",
                "drop"
            ]
        );
        // No egress rule: nothing leaves.
        assert_eq!(chain_body(&script, "sg_out_sg_02").lines().count(), 1);
    }

    #[test]
    fn network_acls_run_in_rule_number_order_and_deny_by_default() {
        let script = render(&spec()).expect("renders");
        let rules: Vec<&str> = chain_body(&script, "acl_in_acl_01")
            .lines()
            .skip(1)
            .map(str::trim)
            .collect();
        assert_eq!(
            rules,
            [
                "ip saddr 10.0.1.0/24 icmp type 8 drop",
                "meta nfproto ipv4 return",
                "drop"
            ]
        );
        assert!(chain_body(&script, "nacl_from_t0a")
            .contains("ip daddr != 10.0.1.0/24 jump acl_out_acl_01"));
        assert!(chain_body(&script, "nacl_to_t0b")
            .contains("ip saddr != 10.0.2.0/24 jump acl_in_acl_01"));
        let nacl = chain_body(&script, "nacl");
        assert!(nacl.contains(
            "iifname vmap { \"t0a\" : jump nacl_from_t0a, \"t0b\" : jump nacl_from_t0b }"
        ));
        assert!(nacl
            .contains("oifname vmap { \"t0a\" : jump nacl_to_t0a, \"t0b\" : jump nacl_to_t0b }"));
    }

    #[test]
    fn spoofing_is_dropped_and_public_ips_are_natted_only_with_a_way_out() {
        let script = render(&spec()).expect("renders");
        let spoof = chain_body(&script, "spoof_t0a");
        assert!(spoof.contains("ether saddr != 02:00:00:00:00:01 drop"));
        assert!(spoof.contains("ip saddr { 10.0.1.10 } return"));
        assert!(spoof.trim_end().ends_with("drop"));
        assert!(chain_body(&script, "public_in")
            .contains("iifname \"uplink\" ip daddr 198.19.0.5 dnat ip to 10.0.1.10"));
        assert!(chain_body(&script, "public_out")
            .contains("oifname \"uplink\" ip saddr 10.0.1.10 snat ip to 198.19.0.5"));
        // The private subnet's interface has no way out.
        assert!(chain_body(&script, "from_t0b").contains("oifname \"uplink\" drop"));
        assert!(!chain_body(&script, "from_t0a").contains("uplink"));

        let mut loose = spec();
        loose.interfaces[0].source_dest_check = false;
        let script = render(&loose).expect("renders");
        assert!(!chain_body(&script, "spoof_t0a").contains("ip saddr"));
    }

    #[test]
    fn a_node_in_no_group_is_not_filtered_and_a_vm_in_none_gets_nothing() {
        let mut vpc = spec();
        vpc.interfaces[0].security_group_ids.clear();
        let script = render(&vpc).expect("renders");
        assert!(chain_body(&script, "to_t0a").trim_end().ends_with("drop"));
        vpc.interfaces[0].holder = Holder::Node;
        let script = render(&vpc).expect("renders");
        assert!(chain_body(&script, "from_t0a")
            .trim_end()
            .ends_with("accept"));
        assert!(chain_body(&script, "to_t0a").trim_end().ends_with("accept"));
    }

    #[test]
    fn a_subnet_routed_to_a_nat_gateway_leaves_by_its_address_and_takes_nothing_in() {
        let mut routed = spec();
        let nat = "198.19.0.9".parse().expect("test IP");
        routed.subnets[1].nat_public_ip = Some(nat);
        let script = render(&routed).expect("renders");
        assert!(chain_body(&script, "public_out")
            .contains("oifname \"uplink\" ip saddr 10.0.2.0/24 snat ip to 198.19.0.9"));
        assert!(!chain_body(&script, "public_in").contains("198.19.0.9"));
        let from = chain_body(&script, "from_t0b");
        assert!(from.contains("oifname \"uplink\" ip saddr != 10.0.2.0/24 drop"));
        assert!(!from.contains("oifname \"uplink\" drop"));
        // New connections from outside are dropped on the way in, as for any private subnet.
        assert!(chain_body(&script, "to_t0b").contains("iifname \"uplink\" drop"));
        assert_eq!(
            public_addresses(&routed),
            BTreeSet::from(["198.19.0.5".parse().expect("test IP"), nat])
        );
        assert_eq!(
            public_addresses(&spec()),
            BTreeSet::from(["198.19.0.5".parse().expect("test IP")])
        );
    }

    #[test]
    fn icmp_and_other_protocols() {
        assert_eq!(
            protocol_match(&Protocol::Icmp {
                icmp_type: None,
                code: None
            }),
            "meta l4proto icmp"
        );
        assert_eq!(
            protocol_match(&Protocol::Icmp {
                icmp_type: Some(3),
                code: Some(4)
            }),
            "icmp type 3 icmp code 4"
        );
        assert_eq!(protocol_match(&Protocol::Other(47)), "meta l4proto 47");
        assert_eq!(
            protocol_match(&Protocol::Tcp { from: 0, to: 65535 }),
            "meta l4proto tcp"
        );
    }

    #[test]
    fn odd_ids_never_reach_the_script() {
        let mut bad = spec();
        bad.security_groups[0].ingress[1].peer = Peer::Group("sg-01 } ; flush ruleset".into());
        assert!(render(&bad).is_err());
        let mut bad = spec();
        bad.interfaces[0].mac = "02:00:00:00:00:01\" drop".into();
        assert!(render(&bad).is_err());
        let mut bad = spec();
        bad.dns_domain = "ec2.internal\nserver=1.1.1.1".into();
        assert!(render(&bad).is_err());
    }
}
