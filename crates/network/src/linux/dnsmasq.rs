//! dnsmasq per VPC, in the VPC's namespace: DHCP with a static host entry per interface
//! (MAC → primary IP, hostname `ip-a-b-c-d`, router base+1, resolver base+2) and the VPC
//! resolver answering `ip-a-b-c-d.<domain>`. It is its own daemon, so it outlives a crash
//! of nimbus and is adopted again through its pid file. Everything is in its one config
//! file, which it reads as root before dropping to `nobody` (who cannot enter nimbus's 0700
//! data dir, so host files reread on SIGHUP would fail): a change restarts it with no lease
//! file. Every lease is static, so none is lost, and an address freed by one interface is
//! not held back from the next.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::rules::resolver_ip;
use crate::VpcSpec;

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

/// The dnsmasq config of a VPC (its spec must have passed `check_spec`).
pub fn config(vpc: &VpcSpec, files: &Files) -> String {
    let mut out = format!("# nimbus: the DHCP server and resolver of {}\n", vpc.vpc_id);
    let _ = writeln!(out, "pid-file={}", path_text(&files.pid()));
    let _ = writeln!(out, "dhcp-leasefile={}", path_text(&files.leases()));
    out.push_str("user=nobody\ngroup=nogroup\nno-hosts\nno-resolv\ndhcp-authoritative\n");
    let _ = writeln!(out, "except-interface={}", super::names::UPLINK);
    let _ = writeln!(out, "domain={}", vpc.dns_domain);
    match resolver_ip(vpc) {
        Some(resolver) if vpc.dns_support => {
            let _ = writeln!(out, "local=/{}/", vpc.dns_domain);
            let _ = writeln!(out, "dhcp-option=option:dns-server,{resolver}");
            if vpc.dns_hostnames {
                out.push_str(&host_records(vpc));
            }
        }
        _ => out.push_str("port=0\n"),
    }
    for subnet in &vpc.subnets {
        let cidr = subnet.cidr.trunc();
        // The router is the address the request came in on (base+1 on every tap).
        let _ = writeln!(
            out,
            "dhcp-range={},static,{},infinite",
            cidr.network(),
            cidr.netmask()
        );
    }
    out.push_str(&dhcp_hosts(vpc));
    out
}

/// `dhcp-host=MAC,IP,HOSTNAME,infinite` per interface.
fn dhcp_hosts(vpc: &VpcSpec) -> String {
    let mut out = String::new();
    for interface in &vpc.interfaces {
        if let Some(ip) = interface.private_ips.first() {
            let _ = writeln!(
                out,
                "dhcp-host={},{ip},{},infinite",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InterfaceSpec, SubnetSpec};

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
        }
    }

    #[test]
    fn dhcp_gives_each_mac_its_primary_ip_and_ec2_host_name() {
        assert_eq!(
            dhcp_hosts(&spec()),
            "dhcp-host=02:00:00:00:00:0a,10.0.1.10,ip-10-0-1-10,infinite\n"
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
        assert!(on.contains("dhcp-host=02:00:00:00:00:0a,10.0.1.10,ip-10-0-1-10,infinite\n"));
        assert!(on.contains("dhcp-range=10.0.1.0,static,255.255.255.0,infinite\n"));
        assert!(!on.contains("port=0"));

        let mut no_names = spec();
        no_names.dns_hostnames = false;
        assert!(!config(&no_names, &files).contains("host-record"));

        let mut off = spec();
        off.dns_support = false;
        let off = config(&off, &files);
        assert!(off.contains("port=0\n"));
        assert!(!off.contains("dns-server"));
    }
}
