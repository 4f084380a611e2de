//! The default VPC, as in a fresh AWS account: 172.31.0.0/16 with a /20 default subnet per
//! configured zone (172.31.0.0/20, 172.31.16.0/20, …) that maps public IPs on launch, its
//! default security group, an attached internet gateway that the main route table sends
//! 0.0.0.0/0 to, the default network ACL, and the region's default DHCP options set. Made
//! once, at the first start.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::dhcp_options::insert_region_default;
use super::gateways::InternetGateway;
use super::route_tables::{Route, RouteTarget};
use super::subnets::{insert_subnet, Subnet};
use super::vpcs::insert_vpc;
use crate::kinds::Tables;
use crate::vpc::security_groups::GroupQueries;
use crate::{Control, Error, Result, Tags};

const DEFAULT_VPC_CIDR: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(172, 31, 0, 0), 16) {
    Ok(net) => net,
    Err(_) => panic!("172.31.0.0/16 is a network"),
};

/// The `index`th /20 of the default VPC.
fn default_subnet_cidr(index: usize) -> Result<Ipv4Net> {
    DEFAULT_VPC_CIDR
        .subnets(20)
        .map_err(|e| Error::Internal(e.to_string()))?
        .nth(index)
        .ok_or_else(|| Error::Internal("more zones than default subnets".into()))
}

impl Control {
    /// Creates the default VPC unless the account has one; safe to call on every start.
    pub fn ensure_default_vpc(&self) -> Result<()> {
        let zones = self.config().zones.clone();
        let region = self.config().region.clone();
        self.mutate(|txn| {
            if txn.state().default_vpc().is_some() {
                return Ok(());
            }
            if !txn.state().dhcp_options().values().any(|d| d.is_default) {
                insert_region_default(txn, &region)?;
            }
            let vpc = insert_vpc(txn, DEFAULT_VPC_CIDR, true, Tags::new())?;
            for (index, zone) in zones.iter().enumerate() {
                insert_subnet(
                    txn,
                    Subnet {
                        subnet_id: nimbus_core::new_id("subnet"),
                        vpc_id: vpc.vpc_id.clone(),
                        cidr: default_subnet_cidr(index)?,
                        availability_zone: zone.clone(),
                        default_for_az: true,
                        map_public_ip_on_launch: true,
                        tags: Tags::new(),
                    },
                )?;
            }
            let gateway = InternetGateway {
                internet_gateway_id: nimbus_core::new_id("igw"),
                attached_vpc: Some(vpc.vpc_id.clone()),
                tags: Tags::new(),
            };
            let mut main = txn
                .state()
                .route_tables()
                .values()
                .find(|t| t.vpc_id == vpc.vpc_id && t.is_main())
                .cloned()
                .ok_or_else(|| Error::Internal("the default VPC has no main route table".into()))?;
            main.routes.push(Route {
                destination: Ipv4Net::default(),
                target: RouteTarget::Gateway(gateway.internet_gateway_id.clone()),
            });
            txn.put(gateway)?;
            Ok(txn.put(main)?)
        })
    }

    /// The default VPC's ID, for DescribeAccountAttributes.
    pub fn default_vpc_id(&self) -> Option<String> {
        self.read().default_vpc().map(|v| v.vpc_id.clone())
    }
}
