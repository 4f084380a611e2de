//! VPCs: CreateVpc (with its main route table, default network ACL and default security
//! group, as AWS makes them), DeleteVpc, DescribeVpcs, Describe/ModifyVpcAttribute and
//! Associate/DisassociateVpcCidrBlock (IPv4).

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::dhcp_options::DhcpOptionsQueries;
use super::network_acls::NetworkAcl;
use super::route_tables::RouteTable;
use super::security_groups::SecurityGroup;
use super::{parse_cidr, CIDR_PREFIXES};
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::{Control, Error, Result, Tags, Txn};

/// DescribeVpcs's MaxResults bounds.
const DESCRIBE_VPCS_PAGING: Paging = Paging::within(5, 1000);
/// AWS allows five IPv4 CIDR blocks per VPC.
const MAX_CIDRS: usize = 5;

/// One IPv4 CIDR block of a VPC; the first is the primary one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CidrAssociation {
    pub association_id: String,
    pub cidr: Ipv4Net,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Vpc {
    pub vpc_id: String,
    /// The primary block first.
    pub cidrs: Vec<CidrAssociation>,
    pub is_default: bool,
    pub enable_dns_support: bool,
    pub enable_dns_hostnames: bool,
    /// Its DHCP options set, or `default` for none. Empty in records from before DHCP
    /// options sets, which get the region's default set at the next start.
    #[serde(default)]
    pub dhcp_options_id: String,
    pub tags: Tags,
}

impl Vpc {
    pub fn primary_cidr(&self) -> Ipv4Net {
        self.cidrs[0].cidr
    }

    pub fn contains(&self, net: &Ipv4Net) -> bool {
        self.cidrs.iter().any(|c| c.cidr.contains(net))
    }
}

impl Filterable for Vpc {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("vpc-id", |v, _| vec![v.vpc_id.clone()]),
        ("cidr", |v, _| vec![v.primary_cidr().to_string()]),
        // Not in EC2's documentation, but EC2 answers it and Ansible's ec2_vpc_net sends it.
        ("cidr-block", |v, _| vec![v.primary_cidr().to_string()]),
        ("cidr-block-association.cidr-block", |v, _| {
            v.cidrs.iter().map(|c| c.cidr.to_string()).collect()
        }),
        ("cidr-block-association.association-id", |v, _| {
            v.cidrs.iter().map(|c| c.association_id.clone()).collect()
        }),
        ("cidr-block-association.state", |_, _| {
            vec!["associated".into()]
        }),
        ("is-default", |v, _| vec![v.is_default.to_string()]),
        ("isDefault", |v, _| vec![v.is_default.to_string()]),
        ("state", |_, _| vec!["available".into()]),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
        ("instance-tenancy", |_, _| vec!["default".into()]),
        ("dhcp-options-id", |v, _| vec![v.dhcp_options_id.clone()]),
    ];
}

/// A VPC attribute DescribeVpcAttribute and ModifyVpcAttribute handle: every one of the
/// model's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VpcAttribute {
    EnableDnsSupport,
    EnableDnsHostnames,
    /// Network Address Usage metrics (CloudWatch `AWS/EC2` `NetworkAddressUsage`), which
    /// nimbus does not publish: always false, and enabling it is refused.
    EnableNetworkAddressUsageMetrics,
}

impl VpcAttribute {
    pub fn parse(name: &str) -> Result<VpcAttribute> {
        match name {
            "enableDnsSupport" => Ok(VpcAttribute::EnableDnsSupport),
            "enableDnsHostnames" => Ok(VpcAttribute::EnableDnsHostnames),
            "enableNetworkAddressUsageMetrics" => {
                Ok(VpcAttribute::EnableNetworkAddressUsageMetrics)
            }
            other => Err(Error::Unsupported(format!(
                "The VPC attribute {other} is not supported by nimbus (see docs/compatibility.md)."
            ))),
        }
    }

    pub fn wire_name(self) -> &'static str {
        match self {
            VpcAttribute::EnableDnsSupport => "enableDnsSupport",
            VpcAttribute::EnableDnsHostnames => "enableDnsHostnames",
            VpcAttribute::EnableNetworkAddressUsageMetrics => "enableNetworkAddressUsageMetrics",
        }
    }
}

/// Refuses a VPC or VPC CIDR block outside AWS's /16–/28.
fn check_vpc_range(cidr: Ipv4Net) -> Result<()> {
    if CIDR_PREFIXES.contains(&cidr.prefix_len()) {
        Ok(())
    } else {
        Err(Error::InvalidVpcRange(format!(
            "The CIDR '{cidr}' is invalid: a VPC block must be between a /16 and a /28."
        )))
    }
}

/// Creates a VPC with what AWS gives every VPC: a main route table with the local route, a
/// default network ACL allowing everything, a default security group, and the region's
/// default DHCP options set.
pub(crate) fn insert_vpc(
    txn: &mut Txn,
    cidr: Ipv4Net,
    is_default: bool,
    tags: Tags,
) -> Result<Vpc> {
    let vpc = Vpc {
        vpc_id: nimbus_core::new_id("vpc"),
        cidrs: vec![CidrAssociation {
            association_id: nimbus_core::new_id("vpc-cidr-assoc"),
            cidr,
        }],
        is_default,
        enable_dns_support: true,
        enable_dns_hostnames: is_default,
        dhcp_options_id: txn.state().dhcp_options_for_new_vpc(),
        tags,
    };
    txn.put(vpc.clone())?;
    txn.put(RouteTable::main_of(&vpc))?;
    txn.put(NetworkAcl::default_of(&vpc))?;
    txn.put(SecurityGroup::default_of(&vpc))?;
    Ok(vpc)
}

impl Control {
    pub fn create_vpc(&self, cidr: &str, tags: Tags, dry_run: bool) -> Result<Vpc> {
        let cidr = parse_cidr(cidr, "cidrBlock")?;
        check_vpc_range(cidr)?;
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let max = self.config().limits.vpcs;
        self.mutate(|txn| {
            // The default VPC counts, as on AWS.
            limits::check(Limit::Vpcs, txn.state().vpcs().len() as u64, 1, max)?;
            insert_vpc(txn, cidr, false, tags)
        })
    }

    pub fn describe_vpcs(&self, query: &Query) -> Result<Page<Vpc>> {
        let state = self.read();
        Ok(describe::describe(
            &state,
            self.config(),
            query,
            DESCRIBE_VPCS_PAGING,
            |_| true,
        )?)
    }

    /// Deletes a VPC that holds nothing but what AWS made with it (main route table, default
    /// network ACL and security group), which go with it.
    pub fn delete_vpc(&self, vpc_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            existing::<Vpc>(state, vpc_id)?;
            let in_vpc = |owner: &str| owner == vpc_id;
            let blocker = state
                .subnets()
                .values()
                .find(|s| in_vpc(&s.vpc_id))
                .map(|s| s.subnet_id.clone())
                .or_else(|| {
                    state
                        .internet_gateways()
                        .values()
                        .find(|g| g.attached_vpc.as_deref() == Some(vpc_id))
                        .map(|g| g.internet_gateway_id.clone())
                })
                .or_else(|| {
                    state
                        .route_tables()
                        .values()
                        .find(|t| in_vpc(&t.vpc_id) && !t.is_main())
                        .map(|t| t.route_table_id.clone())
                })
                .or_else(|| {
                    state
                        .network_acls()
                        .values()
                        .find(|a| in_vpc(&a.vpc_id) && !a.is_default)
                        .map(|a| a.network_acl_id.clone())
                })
                .or_else(|| {
                    state
                        .security_groups()
                        .values()
                        .find(|g| in_vpc(&g.vpc_id) && !g.is_default())
                        .map(|g| g.group_id.clone())
                });
            if let Some(blocker) = blocker {
                return Err(Error::DependencyViolation(format!(
                    "The vpc '{vpc_id}' has dependencies and cannot be deleted ({blocker})."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let tables: Vec<String> = state
                .route_tables()
                .values()
                .filter(|t| in_vpc(&t.vpc_id))
                .map(|t| t.route_table_id.clone())
                .collect();
            let acls: Vec<String> = state
                .network_acls()
                .values()
                .filter(|a| in_vpc(&a.vpc_id))
                .map(|a| a.network_acl_id.clone())
                .collect();
            let groups: Vec<String> = state
                .security_groups()
                .values()
                .filter(|g| in_vpc(&g.vpc_id))
                .map(|g| g.group_id.clone())
                .collect();
            for id in tables {
                txn.delete::<RouteTable>(&id);
            }
            for id in acls {
                txn.delete::<NetworkAcl>(&id);
            }
            for id in groups {
                txn.delete::<SecurityGroup>(&id);
            }
            txn.delete::<Vpc>(vpc_id);
            Ok(())
        })
    }

    pub fn vpc_attribute(&self, vpc_id: &str, attribute: VpcAttribute) -> Result<bool> {
        let state = self.read();
        let vpc = existing::<Vpc>(&state, vpc_id)?;
        Ok(match attribute {
            VpcAttribute::EnableDnsSupport => vpc.enable_dns_support,
            VpcAttribute::EnableDnsHostnames => vpc.enable_dns_hostnames,
            VpcAttribute::EnableNetworkAddressUsageMetrics => false,
        })
    }

    pub fn modify_vpc_attribute(
        &self,
        vpc_id: &str,
        attribute: VpcAttribute,
        value: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let mut vpc = existing::<Vpc>(txn.state(), vpc_id)?.clone();
            match attribute {
                VpcAttribute::EnableDnsSupport => vpc.enable_dns_support = value,
                VpcAttribute::EnableDnsHostnames => vpc.enable_dns_hostnames = value,
                VpcAttribute::EnableNetworkAddressUsageMetrics if value => {
                    return Err(Error::unsupported_parameter(
                        "EnableNetworkAddressUsageMetrics=true",
                    ))
                }
                VpcAttribute::EnableNetworkAddressUsageMetrics => {}
            }
            Ok(txn.put(vpc)?)
        })
    }

    /// Adds a secondary IPv4 block; it may not overlap the VPC's others.
    pub fn associate_vpc_cidr_block(&self, vpc_id: &str, cidr: &str) -> Result<CidrAssociation> {
        let cidr = parse_cidr(cidr, "cidrBlock")?;
        check_vpc_range(cidr)?;
        self.mutate(|txn| {
            let mut vpc = existing::<Vpc>(txn.state(), vpc_id)?.clone();
            if let Some(other) = vpc
                .cidrs
                .iter()
                .find(|c| c.cidr.contains(&cidr) || cidr.contains(&c.cidr))
            {
                return Err(Error::InvalidVpcRange(format!(
                    "The CIDR '{cidr}' conflicts with another CIDR block of the VPC ({}).",
                    other.cidr
                )));
            }
            if vpc.cidrs.len() >= MAX_CIDRS {
                return Err(Error::CidrLimitExceeded(format!(
                    "The VPC '{vpc_id}' already has the maximum of {MAX_CIDRS} CIDR blocks."
                )));
            }
            let association = CidrAssociation {
                association_id: nimbus_core::new_id("vpc-cidr-assoc"),
                cidr,
            };
            vpc.cidrs.push(association.clone());
            txn.put(vpc)?;
            Ok(association)
        })
    }

    /// Removes a secondary block that no subnet uses; returns the VPC and the block.
    pub fn disassociate_vpc_cidr_block(
        &self,
        association_id: &str,
    ) -> Result<(String, CidrAssociation)> {
        self.mutate(|txn| {
            let state = txn.state();
            let not_found = || {
                Error::AssociationNotFound(format!(
                    "The association ID '{association_id}' does not exist"
                ))
            };
            let vpc = state
                .vpcs()
                .values()
                .find(|v| v.cidrs.iter().any(|c| c.association_id == association_id))
                .ok_or_else(not_found)?;
            let position = vpc
                .cidrs
                .iter()
                .position(|c| c.association_id == association_id)
                .ok_or_else(not_found)?;
            let block = vpc.cidrs[position].clone();
            if position == 0 {
                return Err(Error::InvalidCidrBlock(format!(
                    "The vpc {} primary CIDR block {} cannot be disassociated.",
                    vpc.vpc_id, block.cidr
                )));
            }
            if let Some(subnet) = state
                .subnets()
                .values()
                .find(|s| s.vpc_id == vpc.vpc_id && block.cidr.contains(&s.cidr))
            {
                return Err(Error::InvalidCidrBlock(format!(
                    "The CIDR block {} is in use by subnet {}.",
                    block.cidr, subnet.subnet_id
                )));
            }
            let mut vpc = vpc.clone();
            vpc.cidrs.remove(position);
            let vpc_id = vpc.vpc_id.clone();
            txn.put(vpc)?;
            Ok((vpc_id, block))
        })
    }
}
