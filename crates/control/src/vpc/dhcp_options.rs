//! DHCP options sets: CreateDhcpOptions, DescribeDhcpOptions, DeleteDhcpOptions and
//! AssociateDhcpOptions. A VPC uses one set, or none (`default`); its dnsmasq hands the set's
//! options to guests at their next lease (an hour long, renewed at half: see
//! `docs/network.md`).
//!
//! As in AWS, the region has a default set (`domain-name` = the region's internal domain,
//! `domain-name-servers` = `AmazonProvidedDNS`), made once with the default VPC and given to
//! every new VPC while it exists; it is an ordinary set, which the user may delete once no
//! VPC uses it. Every option is validated here as AWS does, so only DNS names and addresses
//! reach dnsmasq's configuration.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::interfaces::dns_domain;
use super::vpcs::Vpc;
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::{Control, Error, Result, State, Tags, Txn};

/// DescribeDhcpOptions's MaxResults bounds.
const DESCRIBE_DHCP_OPTIONS_PAGING: Paging = Paging::within(5, 1000);
/// What AssociateDhcpOptions takes, and DescribeVpcs shows, for a VPC with no options set.
pub const NO_OPTIONS: &str = "default";
/// AWS's limit of servers per option.
const MAX_SERVERS: usize = 4;
/// The DHCPv6 preferred lease time AWS uses unless told otherwise; nimbus has no IPv6.
const DEFAULT_IPV6_LEASE_TIME: &str = "140";

/// One option of a set: its key and values, as given (and validated).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DhcpConfiguration {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DhcpOptions {
    pub dhcp_options_id: String,
    pub configurations: Vec<DhcpConfiguration>,
    /// The region's default set.
    pub is_default: bool,
    pub tags: Tags,
}

impl DhcpOptions {
    fn values_of(&self, key: &str) -> &[String] {
        self.configurations
            .iter()
            .find(|c| c.key == key)
            .map_or(&[], |c| c.values.as_slice())
    }

    /// The options as DHCP sends them (every value was checked when the set was made).
    pub fn to_network(&self) -> network::DhcpOptionsSpec {
        let addresses = |key| {
            self.values_of(key)
                .iter()
                .filter_map(|v| v.parse().ok())
                .collect()
        };
        network::DhcpOptionsSpec {
            domain_name: self.values_of("domain-name").first().cloned(),
            domain_name_servers: self
                .values_of("domain-name-servers")
                .iter()
                .filter_map(|v| match v.as_str() {
                    "AmazonProvidedDNS" => Some(network::NameServer::AmazonProvided),
                    address => address.parse().ok().map(network::NameServer::Address),
                })
                .collect(),
            ntp_servers: addresses("ntp-servers"),
            netbios_name_servers: addresses("netbios-name-servers"),
            netbios_node_type: self
                .values_of("netbios-node-type")
                .first()
                .and_then(|v| v.parse().ok()),
        }
    }
}

impl Filterable for DhcpOptions {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("dhcp-options-id", |d, _| vec![d.dhcp_options_id.clone()]),
        ("key", |d, _| {
            d.configurations.iter().map(|c| c.key.clone()).collect()
        }),
        ("value", |d, _| {
            d.configurations
                .iter()
                .flat_map(|c| c.values.clone())
                .collect()
        }),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
    ];
}

fn invalid_value(key: &str, value: &str) -> Error {
    Error::InvalidParameterValue(format!("Value ({value}) for parameter {key} is invalid."))
}

/// A domain name option: one value, DNS names separated by single spaces (a search list).
fn check_domain_name(values: &[String]) -> Result<()> {
    let [value] = values else {
        return Err(Error::InvalidParameterValue(
            "The option domain-name takes exactly one value.".into(),
        ));
    };
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 63 * 4
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if value.len() > 255 || !value.split(' ').all(name_ok) {
        return Err(invalid_value("domain-name", value));
    }
    Ok(())
}

/// Up to four IPv4 addresses (or `AmazonProvidedDNS` where `amazon` allows it).
fn check_servers(key: &str, values: &[String], amazon: bool) -> Result<()> {
    if values.is_empty() || values.len() > MAX_SERVERS {
        return Err(Error::InvalidParameterValue(format!(
            "The option {key} takes 1 to {MAX_SERVERS} values."
        )));
    }
    for value in values {
        if amazon && value == "AmazonProvidedDNS" || value.parse::<Ipv4Addr>().is_ok() {
            continue;
        }
        if value.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(Error::unsupported_parameter(&format!(
                "{key} with an IPv6 address (VPCs in nimbus have no IPv6)"
            )));
        }
        return Err(invalid_value(key, value));
    }
    Ok(())
}

fn check_configuration(configuration: &DhcpConfiguration) -> Result<()> {
    let values = &configuration.values;
    match configuration.key.as_str() {
        "domain-name" => check_domain_name(values),
        "domain-name-servers" => check_servers("domain-name-servers", values, true),
        "ntp-servers" => check_servers("ntp-servers", values, false),
        "netbios-name-servers" => check_servers("netbios-name-servers", values, false),
        "netbios-node-type" => match values.as_slice() {
            [value] if ["1", "2", "4", "8"].contains(&value.as_str()) => Ok(()),
            _ => Err(invalid_value("netbios-node-type", &values.join(","))),
        },
        "ipv6-address-preferred-lease-time" => match values.as_slice() {
            [value] if value == DEFAULT_IPV6_LEASE_TIME => Ok(()),
            _ => Err(Error::unsupported_parameter(
                "ipv6-address-preferred-lease-time other than 140 (VPCs in nimbus have no IPv6)",
            )),
        },
        other => Err(invalid_value("key", other)),
    }
}

/// The options of a CreateDhcpOptions, checked as AWS does: known keys, each once.
pub fn parse_configurations(given: Vec<DhcpConfiguration>) -> Result<Vec<DhcpConfiguration>> {
    if given.is_empty() {
        return Err(Error::MissingParameter("DhcpConfiguration".into()));
    }
    for (index, configuration) in given.iter().enumerate() {
        if given[..index].iter().any(|c| c.key == configuration.key) {
            return Err(Error::InvalidParameterValue(format!(
                "The option {} is given more than once.",
                configuration.key
            )));
        }
        check_configuration(configuration)?;
    }
    Ok(given)
}

/// Lookups of the working set that the rules of this module answer.
pub trait DhcpOptionsQueries {
    /// What a VPC's DHCP hands out: its set's options, or none.
    fn dhcp_options_spec_of(&self, vpc: &Vpc) -> network::DhcpOptionsSpec;
    /// The set new VPCs get: the region's default one while it exists, else none.
    fn dhcp_options_for_new_vpc(&self) -> String;
}

impl DhcpOptionsQueries for State {
    fn dhcp_options_spec_of(&self, vpc: &Vpc) -> network::DhcpOptionsSpec {
        self.get::<DhcpOptions>(&vpc.dhcp_options_id)
            .map(DhcpOptions::to_network)
            .unwrap_or_default()
    }

    fn dhcp_options_for_new_vpc(&self) -> String {
        self.dhcp_options()
            .values()
            .find(|d| d.is_default)
            .map_or_else(|| NO_OPTIONS.to_owned(), |d| d.dhcp_options_id.clone())
    }
}

/// Makes the region's default set: its internal domain and the Amazon resolver.
pub(crate) fn insert_region_default(txn: &mut Txn, region: &str) -> Result<String> {
    let set = DhcpOptions {
        dhcp_options_id: nimbus_core::new_id("dopt"),
        configurations: vec![
            DhcpConfiguration {
                key: "domain-name".into(),
                values: vec![dns_domain(region)],
            },
            DhcpConfiguration {
                key: "domain-name-servers".into(),
                values: vec!["AmazonProvidedDNS".into()],
            },
        ],
        is_default: true,
        tags: Tags::new(),
    };
    let id = set.dhcp_options_id.clone();
    txn.put(set)?;
    Ok(id)
}

impl Control {
    pub fn create_dhcp_options(
        &self,
        configurations: Vec<DhcpConfiguration>,
        tags: Tags,
        dry_run: bool,
    ) -> Result<DhcpOptions> {
        let configurations = parse_configurations(configurations)?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let set = DhcpOptions {
            dhcp_options_id: nimbus_core::new_id("dopt"),
            configurations,
            is_default: false,
            tags,
        };
        self.mutate(|txn| Ok(txn.put(set.clone())?))?;
        Ok(set)
    }

    pub fn describe_dhcp_options(&self, query: &Query) -> Result<Page<DhcpOptions>> {
        let state = self.read();
        Ok(describe::describe(
            &state,
            self.config(),
            query,
            DESCRIBE_DHCP_OPTIONS_PAGING,
            |_| true,
        )?)
    }

    /// A set that a VPC uses → `DependencyViolation`.
    pub fn delete_dhcp_options(&self, dhcp_options_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            existing::<DhcpOptions>(state, dhcp_options_id)?;
            if let Some(vpc) = state
                .vpcs()
                .values()
                .find(|v| v.dhcp_options_id == dhcp_options_id)
            {
                return Err(Error::DependencyViolation(format!(
                    "The dhcpOptions '{dhcp_options_id}' has dependencies and cannot be deleted \
                     (used by {}).",
                    vpc.vpc_id
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<DhcpOptions>(dhcp_options_id);
            Ok(())
        })
    }

    /// Gives a VPC a set, or none with `default`; guests get it at their next lease.
    pub fn associate_dhcp_options(
        &self,
        dhcp_options_id: &str,
        vpc_id: &str,
        dry_run: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut vpc = existing::<Vpc>(state, vpc_id)?.clone();
            if dhcp_options_id != NO_OPTIONS {
                existing::<DhcpOptions>(state, dhcp_options_id)?;
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            vpc.dhcp_options_id = dhcp_options_id.to_owned();
            Ok(txn.put(vpc)?)
        })
    }

    /// Gives VPCs recorded before DHCP options sets existed the region's default set (made
    /// now if need be), as they had been using it; safe to call on every start.
    pub fn adopt_vpcs_without_dhcp_options(&self) -> Result<()> {
        let region = self.config().region.clone();
        self.mutate(|txn| {
            let unset: Vec<Vpc> = txn
                .state()
                .vpcs()
                .values()
                .filter(|v| v.dhcp_options_id.is_empty())
                .cloned()
                .collect();
            if unset.is_empty() {
                return Ok(());
            }
            let default = match txn.state().dhcp_options().values().find(|d| d.is_default) {
                Some(set) => set.dhcp_options_id.clone(),
                None => insert_region_default(txn, &region)?,
            };
            for mut vpc in unset {
                vpc.dhcp_options_id = default.clone();
                txn.put(vpc)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vpc::security_groups::GroupQueries;

    fn option(key: &str, values: &[&str]) -> DhcpConfiguration {
        DhcpConfiguration {
            key: key.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn options_are_checked_as_aws_does() {
        let good = vec![
            option("domain-name", &["corp.example.com example.com"]),
            option("domain-name-servers", &["10.0.0.2", "AmazonProvidedDNS"]),
            option("ntp-servers", &["169.254.169.123"]),
            option("netbios-name-servers", &["10.0.0.5"]),
            option("netbios-node-type", &["2"]),
            option("ipv6-address-preferred-lease-time", &["140"]),
        ];
        let set = DhcpOptions {
            dhcp_options_id: "dopt-01".into(),
            configurations: parse_configurations(good).expect("valid"),
            is_default: false,
            tags: Tags::new(),
        };
        let spec = set.to_network();
        assert_eq!(
            spec.domain_name.as_deref(),
            Some("corp.example.com example.com")
        );
        assert_eq!(
            spec.domain_name_servers,
            vec![
                network::NameServer::Address(Ipv4Addr::new(10, 0, 0, 2)),
                network::NameServer::AmazonProvided
            ]
        );
        assert_eq!(spec.netbios_node_type, Some(2));

        for (bad, unsupported) in [
            (vec![option("domain-name", &["a.com", "b.com"])], false),
            (vec![option("domain-name", &["bad_name.com"])], false),
            (
                vec![option("domain-name", &["a.com\nserver=1.1.1.1"])],
                false,
            ),
            (vec![option("domain-name", &["a..com"])], false),
            (vec![option("domain-name-servers", &["10.0.0.300"])], false),
            (
                vec![option(
                    "domain-name-servers",
                    &["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5"],
                )],
                false,
            ),
            (vec![option("ntp-servers", &["AmazonProvidedDNS"])], false),
            (vec![option("ntp-servers", &[])], false),
            (vec![option("netbios-node-type", &["3"])], false),
            (vec![option("nonsense", &["x"])], false),
            (
                vec![
                    option("domain-name", &["a.com"]),
                    option("domain-name", &["b.com"]),
                ],
                false,
            ),
            (vec![], false),
            (vec![option("ntp-servers", &["fd00:ec2::123"])], true),
            (
                vec![option("ipv6-address-preferred-lease-time", &["1440"])],
                true,
            ),
        ] {
            let error = parse_configurations(bad.clone()).expect_err("refused");
            assert_eq!(
                matches!(error, Error::Unsupported(_)),
                unsupported,
                "{bad:?}: {error:?}"
            );
        }
    }

    #[tokio::test]
    async fn vpcs_get_the_regions_default_set_and_their_guests_its_options() {
        let h = crate::testkit::Harness::new().await;
        let control = &h.control;
        let default_vpc = control.read().default_vpc().cloned().expect("default VPC");
        let default_set = control.read().dhcp_options()[&default_vpc.dhcp_options_id].clone();
        assert!(default_set.is_default);
        assert_eq!(
            default_set.to_network(),
            network::DhcpOptionsSpec {
                domain_name: Some("ec2.internal".into()),
                domain_name_servers: vec![network::NameServer::AmazonProvided],
                ..Default::default()
            }
        );
        let vpc = control
            .create_vpc("10.41.0.0/16", Tags::new(), false)
            .expect("vpc");
        assert_eq!(vpc.dhcp_options_id, default_set.dhcp_options_id);

        let custom = control
            .create_dhcp_options(
                vec![option("domain-name", &["corp.example.com"])],
                Tags::new(),
                false,
            )
            .expect("set");
        control
            .associate_dhcp_options(&custom.dhcp_options_id, &vpc.vpc_id, false)
            .expect("associate");
        control.reconcile_network().await;
        let applied = |h: &crate::testkit::Harness| {
            h.network
                .applied(&vpc.vpc_id)
                .expect("applied")
                .dhcp_options
        };
        assert_eq!(applied(&h).domain_name.as_deref(), Some("corp.example.com"));
        let busy = control.delete_dhcp_options(&custom.dhcp_options_id, false);
        assert!(
            matches!(busy, Err(Error::DependencyViolation(_))),
            "{busy:?}"
        );
        control
            .associate_dhcp_options(NO_OPTIONS, &vpc.vpc_id, false)
            .expect("none");
        control.reconcile_network().await;
        assert_eq!(applied(&h), network::DhcpOptionsSpec::default());
        control
            .delete_dhcp_options(&custom.dhcp_options_id, false)
            .expect("delete");
        let unknown = control.associate_dhcp_options("dopt-0123456789abcdef0", &vpc.vpc_id, false);
        assert!(matches!(unknown, Err(Error::Engine(_))), "{unknown:?}");
    }

    #[tokio::test]
    async fn vpcs_recorded_before_dhcp_options_sets_get_the_default_one() {
        let h = crate::testkit::Harness::new().await;
        let vpc = h
            .control
            .create_vpc("10.42.0.0/16", Tags::new(), false)
            .expect("vpc");
        // As an older nimbus wrote it (no field), with no default set either.
        let mut old = vpc.clone();
        old.dhcp_options_id = String::new();
        let sets: Vec<String> = h.control.read().dhcp_options().keys().cloned().collect();
        h.control
            .mutate(|txn| {
                for id in &sets {
                    txn.delete::<DhcpOptions>(id);
                }
                Ok(txn.put(old)?)
            })
            .expect("age it");
        let reopened = h.reopen();
        let state = reopened.control.read();
        let adopted = &state.vpcs()[&vpc.vpc_id].dhcp_options_id;
        assert!(state.dhcp_options()[adopted].is_default);
        assert_eq!(state.dhcp_options().len(), 1);
    }
}
