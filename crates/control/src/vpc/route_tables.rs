//! Route tables: every VPC has a main table with its `local` routes; custom tables are
//! associated with subnets explicitly. Routes go to `local`, to an internet gateway or to a
//! NAT gateway; other targets (peering, instances, interfaces…) are refused by name, since
//! nimbus has no data path for them.

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::gateways::InternetGateway;
use super::nat_gateways::{nat_gateway_not_found, NatGateway};
use super::parse_cidr;
use super::subnets::Subnet;
use super::vpcs::Vpc;
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::idempotency::{create_once, ClientToken};
use crate::kinds::Tables;
use crate::{Control, Error, Result, State, Tags};

/// DescribeRouteTables's MaxResults bounds.
const DESCRIBE_ROUTE_TABLES_PAGING: Paging = Paging::within(5, 100);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    Local,
    /// An internet gateway.
    Gateway(String),
    NatGateway(String),
}

impl RouteTarget {
    /// The `gatewayId` EC2 shows (`local` or an internet gateway's).
    pub fn gateway_id(&self) -> Option<&str> {
        match self {
            RouteTarget::Local => Some("local"),
            RouteTarget::Gateway(id) => Some(id),
            RouteTarget::NatGateway(_) => None,
        }
    }

    /// The `natGatewayId` EC2 shows.
    pub fn nat_gateway_id(&self) -> Option<&str> {
        match self {
            RouteTarget::NatGateway(id) => Some(id),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub destination: Ipv4Net,
    pub target: RouteTarget,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteTableAssociation {
    pub association_id: String,
    /// `None` for the main association.
    pub subnet_id: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RouteTable {
    pub route_table_id: String,
    pub vpc_id: String,
    pub routes: Vec<Route>,
    pub associations: Vec<RouteTableAssociation>,
    pub tags: Tags,
}

impl RouteTable {
    fn new(vpc: &Vpc) -> RouteTable {
        RouteTable {
            route_table_id: nimbus_core::new_id("rtb"),
            vpc_id: vpc.vpc_id.clone(),
            routes: vpc
                .cidrs
                .iter()
                .map(|c| Route {
                    destination: c.cidr,
                    target: RouteTarget::Local,
                })
                .collect(),
            associations: Vec::new(),
            tags: Tags::new(),
        }
    }

    pub fn main_of(vpc: &Vpc) -> RouteTable {
        let mut table = RouteTable::new(vpc);
        table.associations.push(RouteTableAssociation {
            association_id: nimbus_core::new_id("rtbassoc"),
            subnet_id: None,
        });
        table
    }

    pub fn is_main(&self) -> bool {
        self.associations.iter().any(|a| a.subnet_id.is_none())
    }

    /// The target of the table's default route (0.0.0.0/0), if it has one.
    pub fn default_target(&self) -> Option<&RouteTarget> {
        self.routes
            .iter()
            .find(|r| r.destination.prefix_len() == 0)
            .map(|r| &r.target)
    }

    /// Whether the table sends 0.0.0.0/0 to an internet gateway attached to its VPC.
    pub fn routes_to_internet(&self, state: &State) -> bool {
        matches!(
            self.default_target(),
            Some(target @ RouteTarget::Gateway(_)) if self.is_active(state, target)
        )
    }

    /// Whether a target carries traffic: an internet gateway while attached to the table's
    /// VPC, a NAT gateway until it is being deleted.
    fn is_active(&self, state: &State, target: &RouteTarget) -> bool {
        match target {
            RouteTarget::Local => true,
            RouteTarget::Gateway(id) => state
                .get::<InternetGateway>(id)
                .is_some_and(|g| g.attached_vpc.as_deref() == Some(&self.vpc_id)),
            RouteTarget::NatGateway(id) => state
                .get::<NatGateway>(id)
                .is_some_and(NatGateway::carries_traffic),
        }
    }

    /// A route's state as EC2 shows it: `blackhole` once its gateway is detached or deleted.
    pub fn route_state(&self, state: &State, route: &Route) -> &'static str {
        if self.is_active(state, &route.target) {
            "active"
        } else {
            "blackhole"
        }
    }
}

impl Filterable for RouteTable {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("route-table-id", |t, _| vec![t.route_table_id.clone()]),
        ("vpc-id", |t, _| vec![t.vpc_id.clone()]),
        ("association.main", |t, _| vec![t.is_main().to_string()]),
        ("association.subnet-id", |t, _| {
            t.associations
                .iter()
                .filter_map(|a| a.subnet_id.clone())
                .collect()
        }),
        ("association.route-table-association-id", |t, _| {
            t.associations
                .iter()
                .map(|a| a.association_id.clone())
                .collect()
        }),
        ("association.route-table-id", |t, _| {
            t.associations
                .iter()
                .map(|_| t.route_table_id.clone())
                .collect()
        }),
        ("route.destination-cidr-block", |t, _| {
            t.routes.iter().map(|r| r.destination.to_string()).collect()
        }),
        ("route.gateway-id", |t, _| {
            t.routes
                .iter()
                .filter_map(|r| r.target.gateway_id().map(str::to_owned))
                .collect()
        }),
        ("route.nat-gateway-id", |t, _| {
            t.routes
                .iter()
                .filter_map(|r| r.target.nat_gateway_id().map(str::to_owned))
                .collect()
        }),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
    ];
}

/// Lookups of the working set that the rules of this module answer.
pub trait RouteTableQueries {
    /// The table that routes a subnet: its explicit association, else its VPC's main table.
    fn route_table_of(&self, subnet: &Subnet) -> Option<&RouteTable>;
}

impl RouteTableQueries for State {
    fn route_table_of(&self, subnet: &Subnet) -> Option<&RouteTable> {
        self.route_tables()
            .values()
            .find(|t| {
                t.associations
                    .iter()
                    .any(|a| a.subnet_id.as_deref() == Some(&subnet.subnet_id))
            })
            .or_else(|| {
                self.route_tables()
                    .values()
                    .find(|t| t.vpc_id == subnet.vpc_id && t.is_main())
            })
    }
}

/// The target a CreateRoute or ReplaceRoute names: an internet gateway or a NAT gateway.
#[derive(Clone, Debug, Default)]
pub struct RouteTargetRequest {
    pub gateway_id: Option<String>,
    pub nat_gateway_id: Option<String>,
    /// The wire name of another target given (InstanceId, VpcPeeringConnectionId…), refused
    /// by name.
    pub other: Option<&'static str>,
}

fn resolve_target(
    state: &State,
    table: &RouteTable,
    request: &RouteTargetRequest,
) -> Result<RouteTarget> {
    if let Some(other) = request.other {
        return Err(Error::Unsupported(format!(
            "Routes to {other} are not supported by nimbus: only internet gateways, NAT \
             gateways and local routes have a data path (see docs/compatibility.md)."
        )));
    }
    let different_networks = |gateway_id: &str| {
        Error::InvalidParameterValue(format!(
            "route table {} and network gateway {gateway_id} belong to different networks",
            table.route_table_id
        ))
    };
    match (&request.gateway_id, &request.nat_gateway_id) {
        (Some(_), Some(_)) => Err(Error::InvalidParameterCombination(
            "Only one of GatewayId and NatGatewayId may be given.".into(),
        )),
        (None, None) => Err(Error::MissingParameter("GatewayId".into())),
        (None, Some(nat_id)) => {
            let nat = existing::<NatGateway>(state, nat_id)?;
            if !nat.carries_traffic() {
                return Err(nat_gateway_not_found(nat_id));
            }
            if nat.vpc_id != table.vpc_id {
                return Err(different_networks(nat_id));
            }
            Ok(RouteTarget::NatGateway(nat_id.clone()))
        }
        (Some(gateway_id), None) => {
            if gateway_id == "local" {
                return Err(Error::InvalidParameterValue(
                    "Local routes cannot be created or replaced.".into(),
                ));
            }
            let gateway = existing::<InternetGateway>(state, gateway_id)?;
            if gateway.attached_vpc.as_deref() != Some(&table.vpc_id) {
                return Err(different_networks(gateway_id));
            }
            Ok(RouteTarget::Gateway(gateway_id.clone()))
        }
    }
}

fn route_not_found(table_id: &str, destination: Ipv4Net) -> Error {
    Error::RouteNotFound(format!(
        "The route identified by {destination} does not exist in route table {table_id}."
    ))
}

impl Control {
    pub fn create_route_table(
        &self,
        vpc_id: &str,
        tags: Tags,
        token: Option<&ClientToken>,
        dry_run: bool,
    ) -> Result<RouteTable> {
        self.mutate(|txn| {
            create_once(txn, token, |txn| {
                let vpc = existing::<Vpc>(txn.state(), vpc_id)?;
                if dry_run {
                    return Err(Error::DryRunOperation);
                }
                let mut table = RouteTable::new(vpc);
                table.tags = tags;
                txn.put(table.clone())?;
                Ok(table)
            })
        })
    }

    pub fn describe_route_tables(&self, query: &Query) -> Result<Page<RouteTable>> {
        let state = self.read();
        Ok(describe::describe(
            &state,
            self.config(),
            query,
            DESCRIBE_ROUTE_TABLES_PAGING,
            |_| true,
        )?)
    }

    pub fn delete_route_table(&self, table_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let table = existing::<RouteTable>(txn.state(), table_id)?;
            if !table.associations.is_empty() {
                return Err(Error::DependencyViolation(format!(
                    "The routeTable '{table_id}' has dependencies and cannot be deleted."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<RouteTable>(table_id);
            Ok(())
        })
    }

    /// CreateRoute (`replace` false: the destination must be new) or ReplaceRoute (`replace`
    /// true: it must exist, and not be the local route).
    pub fn put_route(
        &self,
        table_id: &str,
        destination: &str,
        target: &RouteTargetRequest,
        replace: bool,
        dry_run: bool,
    ) -> Result<()> {
        let destination = parse_cidr(destination, "destinationCidrBlock")?;
        self.mutate(|txn| {
            let state = txn.state();
            let mut table = existing::<RouteTable>(state, table_id)?.clone();
            let target = resolve_target(state, &table, target)?;
            let position = table
                .routes
                .iter()
                .position(|r| r.destination == destination);
            match (position, replace) {
                (Some(_), false) => {
                    return Err(Error::RouteAlreadyExists(format!(
                        "The route identified by {destination} already exists."
                    )))
                }
                (None, true) => return Err(route_not_found(table_id, destination)),
                (Some(p), true) if table.routes[p].target == RouteTarget::Local => {
                    return Err(Error::InvalidParameterValue(
                        "The local route cannot be replaced.".into(),
                    ))
                }
                _ => {}
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let route = Route {
                destination,
                target,
            };
            match position {
                Some(p) => table.routes[p] = route,
                None => table.routes.push(route),
            }
            Ok(txn.put(table)?)
        })
    }

    pub fn delete_route(&self, table_id: &str, destination: &str, dry_run: bool) -> Result<()> {
        let destination = parse_cidr(destination, "destinationCidrBlock")?;
        self.mutate(|txn| {
            let mut table = existing::<RouteTable>(txn.state(), table_id)?.clone();
            let position = table
                .routes
                .iter()
                .position(|r| r.destination == destination)
                .ok_or_else(|| route_not_found(table_id, destination))?;
            if table.routes[position].target == RouteTarget::Local {
                return Err(Error::InvalidParameterValue(format!(
                    "cannot remove local route {destination} in route table {table_id}"
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            table.routes.remove(position);
            Ok(txn.put(table)?)
        })
    }

    /// Associates a subnet explicitly; returns the association ID.
    pub fn associate_route_table(
        &self,
        table_id: &str,
        subnet_id: &str,
        dry_run: bool,
    ) -> Result<String> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut table = existing::<RouteTable>(state, table_id)?.clone();
            let subnet = existing::<Subnet>(state, subnet_id)?;
            if subnet.vpc_id != table.vpc_id {
                return Err(Error::InvalidParameterValue(format!(
                    "Route table {table_id} and subnet {subnet_id} belong to different networks."
                )));
            }
            if let Some(other) = state.route_tables().values().find(|t| {
                t.associations
                    .iter()
                    .any(|a| a.subnet_id.as_deref() == Some(subnet_id))
            }) {
                return Err(Error::AlreadyAssociated(format!(
                    "the specified association for route table {} conflicts with an existing association",
                    other.route_table_id
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let association_id = nimbus_core::new_id("rtbassoc");
            table.associations.push(RouteTableAssociation {
                association_id: association_id.clone(),
                subnet_id: Some(subnet_id.to_owned()),
            });
            txn.put(table)?;
            Ok(association_id)
        })
    }

    pub fn disassociate_route_table(&self, association_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let mut table = txn
                .state()
                .route_tables()
                .values()
                .find(|t| {
                    t.associations
                        .iter()
                        .any(|a| a.association_id == association_id)
                })
                .cloned()
                .ok_or_else(|| association_not_found(association_id))?;
            if table
                .associations
                .iter()
                .any(|a| a.association_id == association_id && a.subnet_id.is_none())
            {
                return Err(Error::InvalidParameterValue(format!(
                    "cannot disassociate the main route table association {association_id}"
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            table
                .associations
                .retain(|a| a.association_id != association_id);
            Ok(txn.put(table)?)
        })
    }
}

impl Control {
    /// Moves an association (a subnet's, or the main one) to another table of the VPC;
    /// returns the new association ID.
    pub fn replace_route_table_association(
        &self,
        association_id: &str,
        table_id: &str,
        dry_run: bool,
    ) -> Result<String> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut target = existing::<RouteTable>(state, table_id)?.clone();
            let mut current = state
                .route_tables()
                .values()
                .find(|t| t.associations.iter().any(|a| a.association_id == association_id))
                .cloned()
                .ok_or_else(|| association_not_found(association_id))?;
            if current.vpc_id != target.vpc_id {
                return Err(Error::InvalidParameterValue(format!(
                    "Route table {table_id} belongs to another VPC than association {association_id}."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let subnet_id = current
                .associations
                .iter()
                .find(|a| a.association_id == association_id)
                .and_then(|a| a.subnet_id.clone());
            current.associations.retain(|a| a.association_id != association_id);
            if current.route_table_id == target.route_table_id {
                target.associations.retain(|a| a.association_id != association_id);
            } else {
                txn.put(current)?;
            }
            let new_id = nimbus_core::new_id("rtbassoc");
            target.associations.push(RouteTableAssociation {
                association_id: new_id.clone(),
                subnet_id,
            });
            txn.put(target)?;
            Ok(new_id)
        })
    }
}

pub(crate) fn association_not_found(association_id: &str) -> Error {
    Error::AssociationNotFound(format!(
        "The association ID '{association_id}' does not exist"
    ))
}
