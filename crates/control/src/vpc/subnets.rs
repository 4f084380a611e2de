//! Subnets: CreateSubnet (inside the VPC, /16–/28, overlapping no other subnet), DeleteSubnet,
//! DescribeSubnets and ModifySubnetAttribute (`MapPublicIpOnLaunch`). A new subnet uses the
//! VPC's main route table and default network ACL until associated otherwise.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::network_acls::NetworkAcl;
use super::vpcs::Vpc;
use super::{parse_cidr, CIDR_PREFIXES};
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::{Control, Error, Result, State, Tags, Txn};

/// DescribeSubnets's MaxResults bounds.
const DESCRIBE_SUBNETS_PAGING: Paging = Paging::within(5, 1000);
/// AWS keeps the network address, base+1 (router), base+2 (DNS), base+3 and the broadcast.
const RESERVED_ADDRESSES: u32 = 5;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr: Ipv4Net,
    pub availability_zone: String,
    pub default_for_az: bool,
    pub map_public_ip_on_launch: bool,
    pub tags: Tags,
}

impl Subnet {
    /// The addresses instances may get: base+4 up to the one before the broadcast.
    pub fn usable(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.cidr.network()) + 4;
        let last = u32::from(self.cidr.broadcast()).saturating_sub(1);
        (first..=last).map(Ipv4Addr::from)
    }

    /// Whether `ip` is one an interface may use in this subnet.
    pub fn is_usable(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip >= u32::from(self.cidr.network()) + 4 && ip < u32::from(self.cidr.broadcast())
    }
}

/// Lookups of the working set that the rules of this module answer.
pub trait SubnetQueries {
    /// Private IPs in use in a subnet.
    fn used_ips(&self, subnet_id: &str) -> Vec<Ipv4Addr>;
    fn available_ip_count(&self, subnet: &Subnet) -> u64;
    /// The default subnet of a zone, if the default VPC has one.
    fn default_subnet(&self, zone: &str) -> Option<&Subnet>;
}

impl SubnetQueries for State {
    fn used_ips(&self, subnet_id: &str) -> Vec<Ipv4Addr> {
        self.interface_networks()
            .filter(|n| n.subnet_id == subnet_id)
            .flat_map(|n| n.private_ips.iter().copied())
            .collect()
    }

    fn available_ip_count(&self, subnet: &Subnet) -> u64 {
        let size = 1u64 << (32 - subnet.cidr.prefix_len());
        size.saturating_sub(
            RESERVED_ADDRESSES as u64 + self.used_ips(&subnet.subnet_id).len() as u64,
        )
    }

    fn default_subnet(&self, zone: &str) -> Option<&Subnet> {
        self.subnets()
            .values()
            .find(|s| s.default_for_az && s.availability_zone == zone)
    }
}

impl Filterable for Subnet {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("subnet-id", |s, _| vec![s.subnet_id.clone()]),
        ("vpc-id", |s, _| vec![s.vpc_id.clone()]),
        ("cidr-block", |s, _| vec![s.cidr.to_string()]),
        ("cidr", |s, _| vec![s.cidr.to_string()]),
        ("cidrBlock", |s, _| vec![s.cidr.to_string()]),
        ("availability-zone", |s, _| {
            vec![s.availability_zone.clone()]
        }),
        ("availabilityZone", |s, _| vec![s.availability_zone.clone()]),
        ("default-for-az", |s, _| vec![s.default_for_az.to_string()]),
        ("defaultForAz", |s, _| vec![s.default_for_az.to_string()]),
        ("map-public-ip-on-launch", |s, _| {
            vec![s.map_public_ip_on_launch.to_string()]
        }),
        ("state", |_, _| vec!["available".into()]),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
    ];
}

/// The checks of CreateSubnet: a /16–/28 block inside the VPC, overlapping no other subnet.
fn check_subnet_cidr(state: &State, vpc: &Vpc, cidr: Ipv4Net) -> Result<()> {
    if !CIDR_PREFIXES.contains(&cidr.prefix_len()) || !vpc.contains(&cidr) {
        return Err(Error::InvalidSubnetRange(format!(
            "The CIDR '{cidr}' is invalid: a subnet must be between a /16 and a /28 and \
             inside its VPC's CIDR blocks."
        )));
    }
    if let Some(other) = state
        .subnets()
        .values()
        .find(|s| s.vpc_id == vpc.vpc_id && (s.cidr.contains(&cidr) || cidr.contains(&s.cidr)))
    {
        return Err(Error::SubnetConflict(format!(
            "The CIDR '{cidr}' conflicts with another subnet ({}).",
            other.subnet_id
        )));
    }
    Ok(())
}

/// Records a subnet and its association with the VPC's default network ACL.
pub(crate) fn insert_subnet(txn: &mut Txn, subnet: Subnet) -> Result<()> {
    let mut acl = txn
        .state()
        .network_acls()
        .values()
        .find(|a| a.vpc_id == subnet.vpc_id && a.is_default)
        .cloned()
        .ok_or_else(|| {
            Error::Internal(format!("VPC {} has no default network ACL", subnet.vpc_id))
        })?;
    acl.associate(&subnet.subnet_id);
    txn.put(acl)?;
    Ok(txn.put(subnet)?)
}

impl Control {
    pub fn create_subnet(
        &self,
        vpc_id: &str,
        cidr: &str,
        zone: Option<&str>,
        tags: Tags,
        dry_run: bool,
    ) -> Result<Subnet> {
        let cidr = parse_cidr(cidr, "cidrBlock")?;
        let zone = match zone {
            Some(zone) if !self.config().zones.iter().any(|z| z == zone) => {
                return Err(Error::UnknownZone(zone.to_owned()))
            }
            Some(zone) => zone.to_owned(),
            None => self
                .config()
                .zones
                .first()
                .cloned()
                .ok_or_else(|| Error::Internal("no availability zone is configured".into()))?,
        };
        self.mutate(|txn| {
            let vpc = existing::<Vpc>(txn.state(), vpc_id)?;
            check_subnet_cidr(txn.state(), vpc, cidr)?;
            let used = txn
                .state()
                .subnets()
                .values()
                .filter(|s| s.vpc_id == vpc_id)
                .count();
            limits::check(
                Limit::SubnetsPerVpc,
                used as u64,
                1,
                self.config().limits.subnets_per_vpc,
            )?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let subnet = Subnet {
                subnet_id: nimbus_core::new_id("subnet"),
                vpc_id: vpc_id.to_owned(),
                cidr,
                availability_zone: zone,
                default_for_az: false,
                map_public_ip_on_launch: false,
                tags,
            };
            insert_subnet(txn, subnet.clone())?;
            Ok(subnet)
        })
    }

    /// DescribeSubnets, each with its available address count.
    pub fn describe_subnets(&self, query: &Query) -> Result<Page<(Subnet, u64)>> {
        let state = self.read();
        let (subnets, next) = describe::describe::<Subnet>(
            &state,
            self.config(),
            query,
            DESCRIBE_SUBNETS_PAGING,
            |_| true,
        )?;
        let rows = subnets
            .into_iter()
            .map(|subnet| {
                let count = state.available_ip_count(&subnet);
                (subnet, count)
            })
            .collect();
        Ok((rows, next))
    }

    pub fn delete_subnet(&self, subnet_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            existing::<Subnet>(txn.state(), subnet_id)?;
            if let Some(network) = txn
                .state()
                .interface_networks()
                .find(|n| n.subnet_id == subnet_id)
            {
                return Err(Error::DependencyViolation(format!(
                    "The subnet '{subnet_id}' has dependencies and cannot be deleted ({}).",
                    network.interface_id
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let acls: Vec<NetworkAcl> = txn
                .state()
                .network_acls()
                .values()
                .filter(|a| a.association_of(subnet_id).is_some())
                .cloned()
                .collect();
            for mut acl in acls {
                acl.associations.retain(|a| a.subnet_id != subnet_id);
                txn.put(acl)?;
            }
            let tables: Vec<_> = txn
                .state()
                .route_tables()
                .values()
                .filter(|t| {
                    t.associations
                        .iter()
                        .any(|a| a.subnet_id.as_deref() == Some(subnet_id))
                })
                .cloned()
                .collect();
            for mut table in tables {
                table
                    .associations
                    .retain(|a| a.subnet_id.as_deref() != Some(subnet_id));
                txn.put(table)?;
            }
            txn.delete::<Subnet>(subnet_id);
            Ok(())
        })
    }

    pub fn modify_subnet_map_public_ip(&self, subnet_id: &str, value: bool) -> Result<()> {
        self.mutate(|txn| {
            let mut subnet = existing::<Subnet>(txn.state(), subnet_id)?.clone();
            subnet.map_public_ip_on_launch = value;
            Ok(txn.put(subnet)?)
        })
    }
}
