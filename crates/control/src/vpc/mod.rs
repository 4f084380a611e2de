//! The VPC control plane: VPCs, subnets, security groups, internet and NAT gateways, route
//! tables, network ACLs and DHCP options sets (one module per kind), the default VPC, and the
//! desired network state built from them for the network driver (`spec.rs`, applied by
//! `network_reconciler.rs`).
//!
//! Every string here may end up in the host's nftables or dnsmasq configuration, rendered by
//! the network driver: CIDRs are parsed into `Ipv4Net` (never kept as text), and names and
//! descriptions are held to AWS's own character set, which has no quotes or newlines.

pub mod addresses;
pub mod default_vpc;
pub mod dhcp_options;
pub mod gateways;
pub mod interfaces;
pub mod nat_gateways;
pub mod network_acls;
pub mod network_interfaces;
pub mod route_tables;
pub mod security_groups;
pub mod spec;
pub mod subnets;
pub mod vpcs;

use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::{Error, Result};

/// The prefix lengths AWS allows for VPC and subnet CIDR blocks.
pub const CIDR_PREFIXES: std::ops::RangeInclusive<u8> = 16..=28;

/// Parses a CIDR block strictly: dotted quad, prefix, and the network address itself
/// (`10.0.0.1/16` is refused rather than silently widened).
pub fn parse_cidr(value: &str, parameter: &str) -> Result<Ipv4Net> {
    let invalid = || {
        Error::InvalidParameterValue(format!(
            "Value ({value}) for parameter {parameter} is invalid. This is not a valid CIDR block."
        ))
    };
    let net = Ipv4Net::from_str(value).map_err(|_| invalid())?;
    if net.trunc() != net || net.to_string() != value {
        return Err(invalid());
    }
    Ok(net)
}

/// Characters AWS allows in security group names and descriptions (and rule descriptions):
/// `a-zA-Z0-9`, spaces and `._-:/()#,@[]+=&;{}!$*`.
fn is_aws_text_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c)
}

/// Refuses a name or description outside AWS's character set or longer than `max`.
pub fn check_text(value: &str, parameter: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::InvalidParameterValue(format!(
            "Value for parameter {parameter} is invalid. Length exceeds maximum of {max}."
        )));
    }
    if let Some(bad) = value.chars().find(|c| !is_aws_text_char(*c)) {
        return Err(Error::InvalidParameterValue(format!(
            "Value for parameter {parameter} is invalid. Character '{}' is not allowed: use \
             a-z, A-Z, 0-9, spaces, and ._-:/()#,@[]+=&;{{}}!$*",
            bad.escape_default()
        )));
    }
    Ok(())
}

/// An IP protocol and its port range (or ICMP type and code), normalized as AWS stores it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    /// `tcp`, `udp`, `icmp`, `-1` (everything) or another protocol number.
    pub protocol: String,
    /// The first port, or the ICMP type (`-1` for any); `None` where ports do not apply.
    pub from_port: Option<i32>,
    /// The last port, or the ICMP code (`-1` for any).
    pub to_port: Option<i32>,
}

impl Traffic {
    /// Every protocol and port.
    pub fn all() -> Traffic {
        Traffic {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
        }
    }

    /// Normalizes a protocol (`tcp`/`6`, `udp`/`17`, `icmp`/`1`, `-1`/`all`, a number 0–255)
    /// and checks its ports as EC2 does.
    pub fn parse(protocol: &str, from: Option<i64>, to: Option<i64>) -> Result<Traffic> {
        let invalid = |message: String| Error::InvalidParameterValue(message);
        let protocol = match protocol.to_ascii_lowercase().as_str() {
            "tcp" | "6" => "tcp".to_owned(),
            "udp" | "17" => "udp".to_owned(),
            "icmp" | "1" => "icmp".to_owned(),
            "-1" | "all" => "-1".to_owned(),
            other => match other.parse::<u8>() {
                Ok(number) => number.to_string(),
                Err(_) => {
                    return Err(invalid(format!(
                        "Invalid value '{protocol}' for IP protocol. Unknown protocol."
                    )))
                }
            },
        };
        match protocol.as_str() {
            "tcp" | "udp" => {
                let (Some(from), Some(to)) = (from, to) else {
                    return Err(invalid(format!(
                        "Invalid value for portRange. Must specify both from and to ports with {}.",
                        protocol.to_uppercase()
                    )));
                };
                if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                    return Err(invalid(format!(
                        "Invalid value for portRange: {from}-{to}. Ports must be 0 to 65535, \
                         the first no greater than the last."
                    )));
                }
                Ok(Traffic {
                    protocol,
                    from_port: Some(from as i32),
                    to_port: Some(to as i32),
                })
            }
            "icmp" => {
                let icmp_type = from.unwrap_or(-1);
                let code = to.unwrap_or(-1);
                if !(-1..=255).contains(&icmp_type) || !(-1..=255).contains(&code) {
                    return Err(invalid(format!(
                        "Invalid value for ICMP type or code: {icmp_type}, {code}. Each must be -1 to 255."
                    )));
                }
                Ok(Traffic {
                    protocol,
                    from_port: Some(icmp_type as i32),
                    to_port: Some(code as i32),
                })
            }
            _ => Ok(Traffic {
                protocol,
                from_port: None,
                to_port: None,
            }),
        }
    }

    /// The driver's form of this traffic.
    pub fn to_network(&self) -> network::Protocol {
        let port = |p: Option<i32>| p.unwrap_or(0).clamp(0, 65535) as u16;
        let icmp = |p: Option<i32>| p.filter(|v| *v >= 0).map(|v| v as u8);
        match self.protocol.as_str() {
            "tcp" => network::Protocol::Tcp {
                from: port(self.from_port),
                to: port(self.to_port),
            },
            "udp" => network::Protocol::Udp {
                from: port(self.from_port),
                to: port(self.to_port),
            },
            "icmp" => network::Protocol::Icmp {
                icmp_type: icmp(self.from_port),
                code: if icmp(self.from_port).is_some() {
                    icmp(self.to_port)
                } else {
                    None
                },
            },
            "-1" => network::Protocol::All,
            number => network::Protocol::Other(number.parse().unwrap_or(0)),
        }
    }
}

/// The text form of an optional port for filters.
fn port_text(port: Option<i32>) -> String {
    port.map(|p| p.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_are_parsed_strictly() {
        assert!(parse_cidr("10.0.0.0/16", "cidrBlock").is_ok());
        for bad in [
            "10.0.0.1/16",
            "10.0.0.0/33",
            "10.0.0/16",
            "10.0.0.0",
            "010.0.0.0/16",
            "10.0.0.0/16; flush ruleset",
            " 10.0.0.0/16",
        ] {
            assert!(
                matches!(
                    parse_cidr(bad, "cidrBlock"),
                    Err(Error::InvalidParameterValue(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn text_outside_the_aws_set_is_refused() {
        assert!(check_text("web servers (prod) #1", "GroupDescription", 255).is_ok());
        for bad in [
            "it's",
            "a\"b",
            "new\nline",
            "tab\t",
            "ünï",
            "back`tick",
            "a\\b",
        ] {
            assert!(check_text(bad, "GroupDescription", 255).is_err(), "{bad}");
        }
        assert!(check_text(&"a".repeat(256), "GroupName", 255).is_err());
    }

    #[test]
    fn protocols_and_ports_are_normalized_and_checked() {
        let tcp = Traffic::parse("6", Some(22), Some(22)).expect("tcp");
        assert_eq!(tcp.protocol, "tcp");
        assert_eq!(
            tcp.to_network(),
            network::Protocol::Tcp { from: 22, to: 22 }
        );
        assert_eq!(
            Traffic::parse("all", None, None).expect("all"),
            Traffic::all()
        );
        assert_eq!(
            Traffic::parse("icmp", Some(-1), Some(-1))
                .expect("icmp")
                .to_network(),
            network::Protocol::Icmp {
                icmp_type: None,
                code: None
            }
        );
        assert_eq!(
            Traffic::parse("47", None, None).expect("gre").to_network(),
            network::Protocol::Other(47)
        );
        for (protocol, from, to) in [
            ("tcp", None, None),
            ("tcp", Some(10), Some(5)),
            ("udp", Some(0), Some(65536)),
            ("tcp", Some(-1), Some(80)),
            ("icmp", Some(256), Some(0)),
            ("foo", None, None),
            ("256", None, None),
        ] {
            assert!(
                matches!(
                    Traffic::parse(protocol, from, to),
                    Err(Error::InvalidParameterValue(_))
                ),
                "{protocol} {from:?} {to:?}"
            );
        }
    }
}
