//! The default VPC, as in a fresh AWS account: 172.31.0.0/16 with a /20 default subnet per
//! configured zone (172.31.0.0/20, 172.31.16.0/20, …) that maps public IPs on launch, its
//! default security group, an attached internet gateway that the main route table sends
//! 0.0.0.0/0 to, the default network ACL, and the region's default DHCP options set. Made
//! once, at the first start, and again (without the DHCP set) by CreateDefaultVpc /
//! CreateDefaultSubnet after the user deleted it.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::dhcp_options::insert_region_default;
use super::gateways::InternetGateway;
use super::route_tables::{Route, RouteTarget};
use super::subnets::{insert_subnet, Subnet};
use super::vpcs::{insert_vpc, Vpc};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::vpc::security_groups::GroupQueries;
use crate::{Control, Error, Result, Tags, Txn};

const DEFAULT_VPC_CIDR: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(172, 31, 0, 0), 16) {
    Ok(net) => net,
    Err(_) => panic!("172.31.0.0/16 is a network"),
};

/// What was set up for the account once: its default VPC at the first start. A restart does
/// not make the default VPC again after the user deleted it; CreateDefaultVpc does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountSetup {
    pub account_id: String,
}

impl Filterable for AccountSetup {
    const FILTERS: &'static [FilterField<Self>] = &[];
}

/// Makes the default VPC with a default subnet in each of `zones`.
fn insert_default_vpc(txn: &mut Txn, zones: &[String]) -> Result<Vpc> {
    let vpc = insert_vpc(txn, DEFAULT_VPC_CIDR, true, Tags::new())?;
    for zone in zones {
        insert_default_subnet(txn, &vpc.vpc_id, zone)?;
    }
    let gateway = InternetGateway {
        internet_gateway_id: nimbus_core::new_id("igw"),
        attached_vpc: Some(vpc.vpc_id.clone()),
        tags: Tags::new(),
    };
    let mut main = (txn.state().route_tables().values())
        .find(|t| t.vpc_id == vpc.vpc_id && t.is_main())
        .cloned()
        .ok_or_else(|| Error::Internal("the default VPC has no main route table".into()))?;
    main.routes.push(Route {
        destination: Ipv4Net::default(),
        target: RouteTarget::Gateway(gateway.internet_gateway_id.clone()),
    });
    txn.put(gateway)?;
    txn.put(main)?;
    Ok(vpc)
}

/// A default subnet of `zone` in the default VPC `vpc_id`: its first /20 no subnet overlaps,
/// mapping public IPs on launch.
fn insert_default_subnet(txn: &mut Txn, vpc_id: &str, zone: &str) -> Result<Subnet> {
    let taken: Vec<Ipv4Net> = (txn.state().subnets().values())
        .filter(|s| s.vpc_id == vpc_id)
        .map(|s| s.cidr)
        .collect();
    let cidr = (DEFAULT_VPC_CIDR.subnets(20))
        .map_err(|e| Error::Internal(e.to_string()))?
        .find(|candidate| {
            !taken
                .iter()
                .any(|t| t.contains(candidate) || candidate.contains(t))
        })
        .ok_or_else(|| {
            Error::InsufficientAddresses(format!(
                "The default VPC {vpc_id} has no free /20 for a default subnet."
            ))
        })?;
    let subnet = Subnet {
        subnet_id: nimbus_core::new_id("subnet"),
        vpc_id: vpc_id.to_owned(),
        cidr,
        availability_zone: zone.to_owned(),
        default_for_az: true,
        map_public_ip_on_launch: true,
        tags: Tags::new(),
    };
    insert_subnet(txn, subnet.clone())?;
    Ok(subnet)
}

impl Control {
    /// Creates the default VPC at the first start of a data dir (and of one written before
    /// the setup was recorded, unless it has a default VPC); never again after.
    pub fn ensure_default_vpc(&self) -> Result<()> {
        let zones = self.config().zones.clone();
        let region = self.config().region.clone();
        let account_id = self.config().account_id.clone();
        self.mutate(|txn| {
            if txn.state().account_setups().contains_key(&account_id) {
                return Ok(());
            }
            txn.put(AccountSetup { account_id })?;
            if !txn.state().dhcp_options().values().any(|d| d.is_default) {
                insert_region_default(txn, &region)?;
            }
            if txn.state().default_vpc().is_none() {
                insert_default_vpc(txn, &zones)?;
            }
            Ok(())
        })
    }

    /// CreateDefaultVpc: a new default VPC, as at the first start, when the account has none.
    pub fn create_default_vpc(&self, dry_run: bool) -> Result<Vpc> {
        let zones = self.config().zones.clone();
        self.mutate(|txn| {
            if let Some(vpc) = txn.state().default_vpc() {
                return Err(Error::DefaultVpcAlreadyExists(format!(
                    "A Default VPC already exists for this account in this region: {}.",
                    vpc.vpc_id
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            insert_default_vpc(txn, &zones)
        })
    }

    /// CreateDefaultSubnet: a default subnet in `zone` of the default VPC.
    pub fn create_default_subnet(&self, zone: &str, dry_run: bool) -> Result<Subnet> {
        if !self.config().zones.iter().any(|z| z == zone) {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                self.config().zones.join(", ")
            )));
        }
        self.mutate(|txn| {
            let vpc_id = (txn.state().default_vpc())
                .map(|v| v.vpc_id.clone())
                .ok_or_else(|| {
                    Error::DefaultVpcDoesNotExist(
                        "No default VPC exists for this account in this region.".into(),
                    )
                })?;
            let exists = (txn.state().subnets().values())
                .any(|s| s.vpc_id == vpc_id && s.availability_zone == zone && s.default_for_az);
            if exists {
                return Err(Error::DefaultSubnetAlreadyExists(format!(
                    "A Default Subnet already exists in availability zone {zone}."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            insert_default_subnet(txn, &vpc_id, zone)
        })
    }

    /// The default VPC's ID, for DescribeAccountAttributes.
    pub fn default_vpc_id(&self) -> Option<String> {
        self.read().default_vpc().map(|v| v.vpc_id.clone())
    }
}
