//! dnsmasq per VPC, in the VPC's namespace: DHCP with a static host entry per interface
//! (MAC → primary IP, hostname `ip-a-b-c-d`, router base+1), the options of the VPC's DHCP
//! options set (domain name, name servers, NTP and NetBIOS servers), and the VPC resolver
//! answering `ip-a-b-c-d.<domain>`. It is its own daemon, so it outlives a crash of nimbus
//! and is adopted again through its pid file. Everything is in its one config file, which it
//! reads as root before dropping to `nobody` (who cannot enter nimbus's 0700 data dir, so
//! host files reread on SIGHUP would fail): a change restarts it with no lease file. Every
//! lease is static, so none is lost, and an address freed by one interface is not held back
//! from the next.
//!
//! Leases last [`LEASE_TIME`], as EC2's do: a guest renews at half of it, so a new DHCP
//! options set reaches running guests within half an hour (or at once when the guest renews
//! itself: `kill -USR1` of udhcpc, `dhclient -r && dhclient`).

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::rules::resolver_ip;
use crate::{NameServer, VpcSpec};

/// The files of one VPC's dnsmasq.
pub struct Files {
    pub dir: PathBuf,
}

impl Files {
    pub fn config(&self) -> PathBuf {
        self.dir.join("dnsmasq.conf")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("dnsmasq.pid")
    }
    pub fn leases(&self) -> PathBuf {
        self.dir.join("leases")
    }
}

/// `ip-10-0-1-5`, EC2's private host name.
pub fn host_name(ip: Ipv4Addr) -> String {
    format!("ip-{}", ip.to_string().replace('.', "-"))
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// How long a lease lasts: an hour, as EC2's.
pub const LEASE_TIME: &str = "1h";

/// The dnsmasq config of a VPC (its spec must have passed `check_spec`).
pub fn config(vpc: &VpcSpec, files: &Files) -> String {
    let mut out = format!("# nimbus: the DHCP server and resolver of {}\n", vpc.vpc_id);
    let _ = writeln!(out, "pid-file={}", path_text(&files.pid()));
    let _ = writeln!(out, "dhcp-leasefile={}", path_text(&files.leases()));
    out.push_str("user=nobody\ngroup=nogroup\nno-hosts\nno-resolv\ndhcp-authoritative\n");
    let _ = writeln!(out, "except-interface={}", super::names::UPLINK);
    match resolver_ip(vpc) {
        Some(_) if vpc.dns_support => {
            let _ = writeln!(out, "local=/{}/", vpc.dns_domain);
            if vpc.dns_hostnames {
                out.push_str(&host_records(vpc));
            }
            out.push_str(&service_records(vpc));
        }
        _ => out.push_str("port=0\n"),
    }
    out.push_str(&dhcp_options(vpc));
    for subnet in &vpc.subnets {
        let cidr = subnet.cidr.trunc();
        // The router is the address the request came in on (base+1 on every tap).
        let _ = writeln!(
            out,
            "dhcp-range={},static,{},{LEASE_TIME}",
            cidr.network(),
            cidr.netmask()
        );
    }
    out.push_str(&dhcp_hosts(vpc));
    out
}

fn address_list(ips: impl IntoIterator<Item = Ipv4Addr>) -> String {
    ips.into_iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The `dhcp-option` lines of the VPC's DHCP options set. `AmazonProvidedDNS` is the VPC
/// resolver, which is there only while DNS support is on.
fn dhcp_options(vpc: &VpcSpec) -> String {
    let options = &vpc.dhcp_options;
    let resolver = resolver_ip(vpc).filter(|_| vpc.dns_support);
    let name_servers = options
        .domain_name_servers
        .iter()
        .filter_map(|server| match server {
            NameServer::AmazonProvided => resolver,
            NameServer::Address(ip) => Some(*ip),
        });
    let mut out = String::new();
    if let Some(domain) = &options.domain_name {
        let _ = writeln!(out, "dhcp-option=option:domain-name,\"{domain}\"");
    }
    let name_servers = address_list(name_servers);
    if name_servers.is_empty() {
        // With no value the option is not sent: dnsmasq would offer itself otherwise.
        out.push_str("dhcp-option=option:dns-server\n");
    }
    for (name, ips) in [
        ("dns-server", name_servers),
        (
            "ntp-server",
            address_list(options.ntp_servers.iter().copied()),
        ),
        (
            "netbios-ns",
            address_list(options.netbios_name_servers.iter().copied()),
        ),
    ] {
        if !ips.is_empty() {
            let _ = writeln!(out, "dhcp-option=option:{name},{ips}");
        }
    }
    if let Some(node_type) = options.netbios_node_type {
        let _ = writeln!(out, "dhcp-option=option:netbios-nodetype,{node_type}");
    }
    out
}

/// `dhcp-host=MAC,IP,HOSTNAME,LEASE_TIME` per interface.
fn dhcp_hosts(vpc: &VpcSpec) -> String {
    let mut out = String::new();
    for interface in &vpc.interfaces {
        if let Some(ip) = interface.private_ips.first() {
            let _ = writeln!(
                out,
                "dhcp-host={},{ip},{},{LEASE_TIME}",
                interface.mac,
                host_name(*ip)
            );
        }
    }
    out
}

/// `host-record=FQDN,NAME,IP` per private IP, for the resolver.
fn host_records(vpc: &VpcSpec) -> String {
    let mut out = String::new();
    for ip in vpc.interfaces.iter().flat_map(|i| &i.private_ips) {
        let name = host_name(*ip);
        let _ = writeln!(out, "host-record={name}.{},{name},{ip}", vpc.dns_domain);
    }
    out
}

/// `host-record=NAME,IP` per address of a service's name (a load balancer's `DNSName`),
/// answered whatever `dns_hostnames` says, as AWS's resolver does.
fn service_records(vpc: &VpcSpec) -> String {
    let mut out = String::new();
    for service in &vpc.service_names {
        for ip in &service.ips {
            let _ = writeln!(out, "host-record={},{ip}", service.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DhcpOptionsSpec, InterfaceSpec, SubnetSpec};

    fn spec() -> VpcSpec {
        VpcSpec {
            vpc_id: "vpc-01".into(),
            cidrs: vec!["10.0.0.0/16".parse().expect("cidr")],
            dns_support: true,
            dns_hostnames: true,
            dns_domain: "ec2.internal".into(),
            subnets: vec![SubnetSpec {
                subnet_id: "subnet-0a".into(),
                cidr: "10.0.1.0/24".parse().expect("cidr"),
                internet_route: false,
                network_acl_id: "acl-01".into(),
                nat_public_ip: None,
            }],
            interfaces: vec![InterfaceSpec {
                interface_id: "eni-0a".into(),
                instance_id: None,
                subnet_id: "subnet-0a".into(),
                mac: "02:00:00:00:00:0a".into(),
                private_ips: vec![
                    "10.0.1.10".parse().expect("ip"),
                    "10.0.1.11".parse().expect("ip"),
                ],
                public_ip: None,
                security_group_ids: vec![],
                source_dest_check: true,
                holder: crate::Holder::Vm,
            }],
            security_groups: vec![],
            network_acls: vec![],
            dhcp_options: DhcpOptionsSpec {
                domain_name: Some("ec2.internal".into()),
                domain_name_servers: vec![NameServer::AmazonProvided],
                ..DhcpOptionsSpec::default()
            },
            service_names: vec![crate::ServiceName {
                name: "web-1.us-east-1.elb.amazonaws.com".into(),
                ips: vec!["10.0.1.20".parse().expect("ip")],
            }],
        }
    }

    #[test]
    fn dhcp_gives_each_mac_its_primary_ip_and_ec2_host_name() {
        assert_eq!(
            dhcp_hosts(&spec()),
            "dhcp-host=02:00:00:00:00:0a,10.0.1.10,ip-10-0-1-10,1h\n"
        );
        assert_eq!(
            host_records(&spec()),
            "host-record=ip-10-0-1-10.ec2.internal,ip-10-0-1-10,10.0.1.10\nhost-record=ip-10-0-1-11.ec2.internal,ip-10-0-1-11,10.0.1.11\n"
        );
    }

    #[test]
    fn the_resolver_follows_the_dns_attributes() {
        let files = Files {
            dir: "/run/x".into(),
        };
        let on = config(&spec(), &files);
        assert!(on.contains("dhcp-option=option:dns-server,10.0.0.2\n"));
        assert!(on.contains("host-record=ip-10-0-1-10.ec2.internal,ip-10-0-1-10,10.0.1.10\n"));
        assert!(on.contains("dhcp-host=02:00:00:00:00:0a,10.0.1.10,ip-10-0-1-10,1h\n"));
        assert!(on.contains("dhcp-range=10.0.1.0,static,255.255.255.0,1h\n"));
        assert!(on.contains("dhcp-option=option:domain-name,\"ec2.internal\"\n"));
        assert!(!on.contains("port=0"));

        assert!(on.contains("host-record=web-1.us-east-1.elb.amazonaws.com,10.0.1.20\n"));

        // Without host names, services' names are still answered.
        let mut no_names = spec();
        no_names.dns_hostnames = false;
        let no_names = config(&no_names, &files);
        assert!(!no_names.contains("host-record=ip-"));
        assert!(no_names.contains("host-record=web-1.us-east-1.elb.amazonaws.com,10.0.1.20\n"));

        let mut off = spec();
        off.dns_support = false;
        let off = config(&off, &files);
        assert!(off.contains("port=0\n"));
        assert!(off.contains("dhcp-option=option:dns-server\n"));
    }

    #[test]
    fn a_dhcp_options_set_becomes_dhcp_options() {
        let mut custom = spec();
        custom.dhcp_options = DhcpOptionsSpec {
            domain_name: Some("corp.example.com example.com".into()),
            domain_name_servers: vec![
                NameServer::Address("10.0.0.53".parse().expect("ip")),
                NameServer::AmazonProvided,
            ],
            ntp_servers: vec!["10.0.0.123".parse().expect("ip")],
            netbios_name_servers: vec![
                "10.0.0.7".parse().expect("ip"),
                "10.0.0.8".parse().expect("ip"),
            ],
            netbios_node_type: Some(2),
        };
        assert_eq!(
            dhcp_options(&custom),
            "dhcp-option=option:domain-name,\"corp.example.com example.com\"\n\
             dhcp-option=option:dns-server,10.0.0.53,10.0.0.2\n\
             dhcp-option=option:ntp-server,10.0.0.123\n\
             dhcp-option=option:netbios-ns,10.0.0.7,10.0.0.8\n\
             dhcp-option=option:netbios-nodetype,2\n"
        );
        // The Amazon resolver is not there without DNS support; other servers still are.
        custom.dns_support = false;
        assert!(dhcp_options(&custom).contains("dhcp-option=option:dns-server,10.0.0.53\n"));
        // No options set (`default`): addresses, router and host names only.
        custom.dhcp_options = DhcpOptionsSpec::default();
        assert_eq!(dhcp_options(&custom), "dhcp-option=option:dns-server\n");
    }
}
