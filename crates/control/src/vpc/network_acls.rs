//! Network ACLs: stateless, numbered rules evaluated in ascending order at the subnet
//! boundary; the first match decides and no match denies (the `*` rule EC2 shows as 32767).
//! Every subnet is associated with exactly one ACL: its VPC's default one until
//! ReplaceNetworkAclAssociation moves it.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::route_tables::association_not_found;
use super::vpcs::Vpc;
use super::{parse_cidr, Traffic};
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::idempotency::{create_once, ClientToken};
use crate::kinds::Tables;
use crate::{Control, Error, Result, Tags};

/// DescribeNetworkAcls's MaxResults bounds.
const DESCRIBE_ACLS_PAGING: Paging = Paging::within(5, 100);
/// The rule number EC2 shows for the final deny-everything rule.
pub const DEFAULT_RULE_NUMBER: u16 = 32767;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AclEntry {
    pub rule_number: u16,
    pub egress: bool,
    pub traffic: Traffic,
    pub cidr: Ipv4Net,
    pub allow: bool,
}

impl AclEntry {
    pub fn to_network(&self) -> network::NetworkAclEntry {
        network::NetworkAclEntry {
            rule_number: self.rule_number,
            protocol: self.traffic.to_network(),
            cidr: self.cidr,
            allow: self.allow,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AclAssociation {
    pub association_id: String,
    pub subnet_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkAcl {
    pub network_acl_id: String,
    pub vpc_id: String,
    pub is_default: bool,
    /// The user's numbered entries, both directions; the final deny is implied.
    pub entries: Vec<AclEntry>,
    pub associations: Vec<AclAssociation>,
    pub tags: Tags,
}

impl NetworkAcl {
    fn new(vpc_id: &str, is_default: bool) -> NetworkAcl {
        NetworkAcl {
            network_acl_id: nimbus_core::new_id("acl"),
            vpc_id: vpc_id.to_owned(),
            is_default,
            entries: Vec::new(),
            associations: Vec::new(),
            tags: Tags::new(),
        }
    }

    /// A VPC's default ACL: rule 100 allows everything both ways.
    pub fn default_of(vpc: &Vpc) -> NetworkAcl {
        let mut acl = NetworkAcl::new(&vpc.vpc_id, true);
        for egress in [false, true] {
            acl.entries.push(AclEntry {
                rule_number: 100,
                egress,
                traffic: Traffic::all(),
                cidr: Ipv4Net::default(),
                allow: true,
            });
        }
        acl
    }

    pub fn association_of(&self, subnet_id: &str) -> Option<&AclAssociation> {
        self.associations.iter().find(|a| a.subnet_id == subnet_id)
    }

    pub fn associate(&mut self, subnet_id: &str) -> String {
        let association_id = nimbus_core::new_id("aclassoc");
        self.associations.push(AclAssociation {
            association_id: association_id.clone(),
            subnet_id: subnet_id.to_owned(),
        });
        association_id
    }

    /// One direction's entries in evaluation order.
    pub fn ordered(&self, egress: bool) -> Vec<&AclEntry> {
        let mut entries: Vec<&AclEntry> =
            self.entries.iter().filter(|e| e.egress == egress).collect();
        entries.sort_by_key(|e| e.rule_number);
        entries
    }

    pub fn to_network(&self) -> network::NetworkAclSpec {
        let direction = |egress| {
            self.ordered(egress)
                .into_iter()
                .map(AclEntry::to_network)
                .collect()
        };
        network::NetworkAclSpec {
            network_acl_id: self.network_acl_id.clone(),
            ingress: direction(false),
            egress: direction(true),
        }
    }
}

impl Filterable for NetworkAcl {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("network-acl-id", |a, _| vec![a.network_acl_id.clone()]),
        ("vpc-id", |a, _| vec![a.vpc_id.clone()]),
        ("default", |a, _| vec![a.is_default.to_string()]),
        ("association.subnet-id", |a, _| {
            a.associations.iter().map(|s| s.subnet_id.clone()).collect()
        }),
        ("association.association-id", |a, _| {
            a.associations
                .iter()
                .map(|s| s.association_id.clone())
                .collect()
        }),
        ("association.network-acl-id", |a, _| {
            a.associations
                .iter()
                .map(|_| a.network_acl_id.clone())
                .collect()
        }),
        ("entry.rule-number", |a, _| {
            a.entries
                .iter()
                .map(|e| e.rule_number.to_string())
                .collect()
        }),
        ("entry.cidr", |a, _| {
            a.entries.iter().map(|e| e.cidr.to_string()).collect()
        }),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
    ];
}

/// A numbered entry as CreateNetworkAclEntry and ReplaceNetworkAclEntry take it.
#[derive(Clone, Debug, Default)]
pub struct AclEntryRequest {
    pub rule_number: i64,
    pub egress: bool,
    pub protocol: String,
    pub rule_action: String,
    pub cidr: String,
    pub port_range: Option<(Option<i64>, Option<i64>)>,
    pub icmp: Option<(Option<i64>, Option<i64>)>,
}

fn parse_entry(request: &AclEntryRequest) -> Result<AclEntry> {
    if !(1..DEFAULT_RULE_NUMBER as i64).contains(&request.rule_number) {
        return Err(Error::InvalidParameterValue(format!(
            "Value ({}) for parameter ruleNumber is invalid. Rule numbers must be 1 to 32766.",
            request.rule_number
        )));
    }
    let allow = match request.rule_action.as_str() {
        "allow" => true,
        "deny" => false,
        other => {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter ruleAction is invalid. Expecting allow or deny."
            )))
        }
    };
    let (from, to) = match (&request.port_range, &request.icmp) {
        (Some(range), _) => *range,
        (None, Some(icmp)) => *icmp,
        (None, None) => (None, None),
    };
    Ok(AclEntry {
        rule_number: request.rule_number as u16,
        egress: request.egress,
        traffic: Traffic::parse(&request.protocol, from, to)?,
        cidr: parse_cidr(&request.cidr, "cidrBlock")?,
        allow,
    })
}

fn entry_not_found(acl_id: &str, rule_number: u16, egress: bool) -> Error {
    Error::AclEntryNotFound(format!(
        "The {} entry {rule_number} does not exist in network ACL {acl_id}.",
        if egress { "egress" } else { "ingress" }
    ))
}

impl Control {
    pub fn create_network_acl(
        &self,
        vpc_id: &str,
        tags: Tags,
        token: Option<&ClientToken>,
        dry_run: bool,
    ) -> Result<NetworkAcl> {
        self.mutate(|txn| {
            create_once(txn, token, |txn| {
                existing::<Vpc>(txn.state(), vpc_id)?;
                if dry_run {
                    return Err(Error::DryRunOperation);
                }
                let mut acl = NetworkAcl::new(vpc_id, false);
                acl.tags = tags;
                txn.put(acl.clone())?;
                Ok(acl)
            })
        })
    }

    pub fn describe_network_acls(&self, query: &Query) -> Result<Page<NetworkAcl>> {
        let state = self.read();
        Ok(describe::describe(
            &state,
            self.config(),
            query,
            DESCRIBE_ACLS_PAGING,
            |_| true,
        )?)
    }

    pub fn delete_network_acl(&self, acl_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let acl = existing::<NetworkAcl>(txn.state(), acl_id)?;
            if acl.is_default {
                return Err(Error::InvalidParameterValue(format!(
                    "cannot delete default network ACL {acl_id}"
                )));
            }
            if !acl.associations.is_empty() {
                return Err(Error::DependencyViolation(format!(
                    "The networkAcl '{acl_id}' has dependencies and cannot be deleted."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<NetworkAcl>(acl_id);
            Ok(())
        })
    }

    /// CreateNetworkAclEntry (`replace` false) or ReplaceNetworkAclEntry (`replace` true).
    pub fn put_network_acl_entry(
        &self,
        acl_id: &str,
        request: &AclEntryRequest,
        replace: bool,
        dry_run: bool,
    ) -> Result<()> {
        let entry = parse_entry(request)?;
        self.mutate(|txn| {
            let mut acl = existing::<NetworkAcl>(txn.state(), acl_id)?.clone();
            let position = acl
                .entries
                .iter()
                .position(|e| e.rule_number == entry.rule_number && e.egress == entry.egress);
            match (position, replace) {
                (Some(_), false) => {
                    return Err(Error::AclEntryExists(format!(
                        "The network acl entry identified by {} already exists.",
                        entry.rule_number
                    )))
                }
                (None, true) => {
                    return Err(entry_not_found(acl_id, entry.rule_number, entry.egress))
                }
                _ => {}
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            match position {
                Some(position) => acl.entries[position] = entry,
                None => acl.entries.push(entry),
            }
            Ok(txn.put(acl)?)
        })
    }

    pub fn delete_network_acl_entry(
        &self,
        acl_id: &str,
        rule_number: i64,
        egress: bool,
        dry_run: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let mut acl = existing::<NetworkAcl>(txn.state(), acl_id)?.clone();
            let position = acl
                .entries
                .iter()
                .position(|e| i64::from(e.rule_number) == rule_number && e.egress == egress)
                .ok_or_else(|| {
                    entry_not_found(acl_id, rule_number.clamp(0, 65535) as u16, egress)
                })?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            acl.entries.remove(position);
            Ok(txn.put(acl)?)
        })
    }

    /// Moves a subnet's association to another ACL of its VPC; returns the new association ID.
    pub fn replace_network_acl_association(
        &self,
        association_id: &str,
        acl_id: &str,
        dry_run: bool,
    ) -> Result<String> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut target = existing::<NetworkAcl>(state, acl_id)?.clone();
            let mut current = state
                .network_acls()
                .values()
                .find(|a| {
                    a.associations
                        .iter()
                        .any(|s| s.association_id == association_id)
                })
                .cloned()
                .ok_or_else(|| association_not_found(association_id))?;
            if current.vpc_id != target.vpc_id {
                return Err(Error::InvalidParameterValue(format!(
                    "Network ACL {acl_id} belongs to another VPC than association {association_id}."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let Some(subnet_id) = current
                .associations
                .iter()
                .find(|s| s.association_id == association_id)
                .map(|s| s.subnet_id.clone())
            else {
                return Err(association_not_found(association_id));
            };
            current
                .associations
                .retain(|s| s.association_id != association_id);
            if current.network_acl_id == target.network_acl_id {
                target
                    .associations
                    .retain(|s| s.association_id != association_id);
            } else {
                txn.put(current)?;
            }
            let new_id = target.associate(&subnet_id);
            txn.put(target)?;
            Ok(new_id)
        })
    }
}
