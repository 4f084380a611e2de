//! The host names of a VPC's pieces, derived from checked IDs so that nothing a user typed
//! reaches `ip`, nft or dnsmasq.

use crate::{Error, Result, VpcSpec};

/// Longest Linux interface name (IFNAMSIZ less the terminating NUL).
const IFNAME_MAX: usize = 15;

/// The VPC side of the veth pair to the host, inside the namespace.
pub const UPLINK: &str = "uplink";

/// Prefix of every namespace this driver owns, so a restart finds them.
pub const NAMESPACE_PREFIX: &str = "nimbus-";

/// Checks an ID against `^[a-z]+-[0-9a-f]+$` and returns its hex part.
pub fn checked_id(id: &str) -> Result<&str> {
    let invalid = || Error::Invalid(format!("{id:?} is not a resource ID"));
    let (kind, hex) = id.split_once('-').ok_or_else(invalid)?;
    let kind_ok = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase());
    let hex_ok = !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if kind_ok && hex_ok {
        Ok(hex)
    } else {
        Err(invalid())
    }
}

/// `nimbus-vpc-…`: one network namespace per VPC.
pub fn namespace(vpc_id: &str) -> Result<String> {
    checked_id(vpc_id)?;
    Ok(format!("{NAMESPACE_PREFIX}{vpc_id}"))
}

/// `nimbus-node-…`: the namespace of a load balancer node's interface (`Holder::Node`).
pub fn node_namespace(interface_id: &str) -> Result<String> {
    let hex = checked_id(interface_id)?;
    Ok(format!("{NAMESPACE_PREFIX}{NODE_INFIX}{hex}"))
}

const NODE_INFIX: &str = "node-";

/// Whether a namespace is a node's that this driver made.
pub fn is_node_namespace(namespace: &str) -> bool {
    namespace
        .strip_prefix(NAMESPACE_PREFIX)
        .and_then(|rest| rest.strip_prefix(NODE_INFIX))
        .is_some_and(|hex| checked_id(&format!("eni-{hex}")).is_ok())
}

/// The device of a node's interface inside its own namespace.
pub const NODE_DEVICE: &str = "eth0";

/// The VPC of a namespace this driver made.
pub fn vpc_of_namespace(namespace: &str) -> Option<&str> {
    let vpc_id = namespace.strip_prefix(NAMESPACE_PREFIX)?;
    let is_vpc = vpc_id.starts_with("vpc-") && checked_id(vpc_id).is_ok();
    is_vpc.then_some(vpc_id)
}

fn short_name(prefix: &str, id: &str) -> Result<String> {
    let hex = checked_id(id)?;
    let room = IFNAME_MAX - prefix.len();
    Ok(format!("{prefix}{}", &hex[..hex.len().min(room)]))
}

/// The device of an interface inside its VPC's namespace (a tap for a VM).
pub fn interface_device(interface_id: &str) -> Result<String> {
    short_name("t", interface_id)
}

/// The host side of the VPC's veth pair.
pub fn host_veth(vpc_id: &str) -> Result<String> {
    short_name("nv", vpc_id)
}

/// An ID as an nft identifier (`sg-0a1b` → `sg_0a1b`).
pub fn nft_name(id: &str) -> Result<String> {
    checked_id(id)?;
    Ok(id.replace('-', "_"))
}

/// `02:xx:xx:xx:xx:xx`, lowercase.
pub fn checked_mac(mac: &str) -> Result<&str> {
    let octets: Vec<&str> = mac.split(':').collect();
    let ok = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(mac)
    } else {
        Err(Error::Invalid(format!("{mac:?} is not a MAC address")))
    }
}

/// A DHCP domain name is one or more DNS names separated by single spaces, and the NetBIOS
/// node type one of RFC 2132's.
fn check_dhcp_options(options: &crate::DhcpOptionsSpec) -> Result<()> {
    if let Some(domain) = &options.domain_name {
        let names_ok = domain.len() <= 255
            && domain.split(' ').all(|name| {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            });
        if !names_ok {
            return Err(Error::Invalid(format!(
                "{domain:?} is not a DHCP domain name"
            )));
        }
    }
    if let Some(node_type) = options.netbios_node_type {
        if ![1, 2, 4, 8].contains(&node_type) {
            return Err(Error::Invalid(format!(
                "{node_type} is not a NetBIOS node type"
            )));
        }
    }
    Ok(())
}

/// Checks every ID, MAC and name of a spec once, before anything is rendered from it.
pub fn check_spec(vpc: &VpcSpec) -> Result<()> {
    checked_id(&vpc.vpc_id)?;
    let domain_ok = !vpc.dns_domain.is_empty()
        && vpc.dns_domain.len() <= 253
        && vpc
            .dns_domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !domain_ok {
        return Err(Error::Invalid(format!(
            "{:?} is not a DNS domain",
            vpc.dns_domain
        )));
    }
    check_dhcp_options(&vpc.dhcp_options)?;
    for service in &vpc.service_names {
        let name = &service.name;
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !ok {
            return Err(Error::Invalid(format!("{name:?} is not a DNS name")));
        }
    }
    if vpc.cidrs.is_empty() {
        return Err(Error::Invalid(format!("{} has no CIDR", vpc.vpc_id)));
    }
    for subnet in &vpc.subnets {
        checked_id(&subnet.subnet_id)?;
        checked_id(&subnet.network_acl_id)?;
    }
    for interface in &vpc.interfaces {
        checked_id(&interface.interface_id)?;
        checked_id(&interface.subnet_id)?;
        checked_mac(&interface.mac)?;
        if let Some(instance) = &interface.instance_id {
            checked_id(instance)?;
        }
        for group in &interface.security_group_ids {
            checked_id(group)?;
        }
        if interface.private_ips.is_empty() {
            return Err(Error::Invalid(format!(
                "{} has no private IP",
                interface.interface_id
            )));
        }
        if !vpc
            .subnets
            .iter()
            .any(|s| s.subnet_id == interface.subnet_id)
        {
            return Err(Error::Invalid(format!(
                "{} is in {}, which is not in the spec",
                interface.interface_id, interface.subnet_id
            )));
        }
    }
    for group in &vpc.security_groups {
        checked_id(&group.group_id)?;
        for rule in group.ingress.iter().chain(&group.egress) {
            if let crate::Peer::Group(peer) = &rule.peer {
                checked_id(peer)?;
            }
        }
    }
    for acl in &vpc.network_acls {
        checked_id(&acl.network_acl_id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_becoming_names() {
        assert_eq!(checked_id("sg-0a1b").ok(), Some("0a1b"));
        for bad in [
            "sg-",
            "-0a",
            "sg-0A",
            "sg-0a\"; drop",
            "SG-0a",
            "sg0a",
            "sg-0a-1",
        ] {
            assert!(checked_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            interface_device("eni-0123456789abcdef0").ok().as_deref(),
            Some("t0123456789abcd")
        );
        assert_eq!(nft_name("sg-0a1b").ok().as_deref(), Some("sg_0a1b"));
        assert_eq!(vpc_of_namespace("nimbus-vpc-0a"), Some("vpc-0a"));
        assert_eq!(vpc_of_namespace("other"), None);
        assert_eq!(vpc_of_namespace("nimbus-test-a"), None);
        let node = node_namespace("eni-0a1b").unwrap();
        assert_eq!(node, "nimbus-node-0a1b");
        assert!(is_node_namespace(&node) && vpc_of_namespace(&node).is_none());
        assert!(!is_node_namespace("nimbus-vpc-0a1b") && !is_node_namespace("nimbus-node-x;"));
    }

    #[test]
    fn dhcp_domain_names_are_dns_names() {
        let options = |domain: &str| crate::DhcpOptionsSpec {
            domain_name: Some(domain.into()),
            ..Default::default()
        };
        assert!(check_dhcp_options(&options("corp.example.com example.com")).is_ok());
        for bad in ["", "a  b", "a\"b", "a,b", "a\nserver=1.1.1.1", " a"] {
            assert!(check_dhcp_options(&options(bad)).is_err(), "{bad:?}");
        }
        let node = crate::DhcpOptionsSpec {
            netbios_node_type: Some(3),
            ..Default::default()
        };
        assert!(check_dhcp_options(&node).is_err());
    }

    #[test]
    fn macs_are_lowercase_colon_hex() {
        assert!(checked_mac("02:ab:cd:ef:01:23").is_ok());
        for bad in [
            "02:AB:cd:ef:01:23",
            "02:ab:cd:ef:01",
            "02:ab:cd:ef:01:2g",
            "02-ab-cd-ef-01-23",
        ] {
            assert!(checked_mac(bad).is_err(), "{bad}");
        }
    }
}
