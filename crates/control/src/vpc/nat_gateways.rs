//! NAT gateways: CreateNatGateway (public, with an elastic IP; or private), DescribeNatGateways
//! and DeleteNatGateway, at most once per client token.
//!
//! A gateway has its own network interface in its subnet (a requester-managed
//! `NetworkInterface` record of type `nat_gateway`, with a private IP of the subnet), and a
//! public one holds its elastic IP, associated with that interface. Both are written in the
//! same transaction as the gateway and released with it.
//!
//! States: `pending` → `available` → `deleting` → `deleted`. A subnet whose route table
//! sends 0.0.0.0/0 to a pending or available public gateway, whose own subnet routes to the
//! internet gateway, leaves the VPC with the gateway's elastic IP as its source
//! (`NatGatewayQueries::nat_public_ip_of`, applied by the network driver). The network
//! reconciler settles the states once the host carries what the records say
//! ([`settle`]): pending becomes available, deleting becomes deleted (the interface goes and
//! the elastic IP is free again). A deleted gateway stays describable for an hour, as in
//! AWS, then its record is removed. A private gateway has the same life but no way out:
//! nimbus has no transit or virtual private gateway for it to reach.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::addresses::{AddressAssociation, ElasticIp};
use super::interfaces::{Allocator, NetworkRequest};
use super::network_interfaces::{ManagedInterface, NetworkInterface};
use super::route_tables::{RouteTableQueries, RouteTarget};
use super::subnets::Subnet;
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::idempotency::{create_once, ClientToken};
use crate::kinds::Tables;
use crate::{Control, Error, Resource, Result, State, Tags, Txn};

/// DescribeNatGateways's MaxResults bounds.
const DESCRIBE_NAT_GATEWAYS_PAGING: Paging = Paging::within(5, 1000);
/// How long a deleted gateway stays describable (AWS: about an hour).
pub const DELETED_VISIBLE_MILLIS: i64 = 60 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatGatewayState {
    Pending,
    Available,
    Deleting,
    Deleted,
}

impl NatGatewayState {
    pub fn as_str(self) -> &'static str {
        match self {
            NatGatewayState::Pending => "pending",
            NatGatewayState::Available => "available",
            NatGatewayState::Deleting => "deleting",
            NatGatewayState::Deleted => "deleted",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectivityType {
    Public,
    Private,
}

impl ConnectivityType {
    /// `public` (the default) or `private`.
    pub fn parse(value: Option<&str>) -> Result<ConnectivityType> {
        match value {
            None | Some("public") => Ok(ConnectivityType::Public),
            Some("private") => Ok(ConnectivityType::Private),
            Some(other) => Err(Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter ConnectivityType is invalid. Valid values: \
                 public, private."
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectivityType::Public => "public",
            ConnectivityType::Private => "private",
        }
    }
}

/// A public gateway's elastic IP and its association with the gateway's interface.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NatElasticIp {
    pub allocation_id: String,
    pub association_id: String,
    pub public_ip: Ipv4Addr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NatGateway {
    pub nat_gateway_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub connectivity_type: ConnectivityType,
    pub state: NatGatewayState,
    /// Its requester-managed interface in the subnet.
    pub interface_id: String,
    pub private_ip: Ipv4Addr,
    pub elastic_ip: Option<NatElasticIp>,
    pub create_time: i64,
    pub delete_time: Option<i64>,
    pub tags: Tags,
}

impl NatGateway {
    /// Whether routes to the gateway carry traffic: until it is being deleted.
    pub fn carries_traffic(&self) -> bool {
        matches!(
            self.state,
            NatGatewayState::Pending | NatGatewayState::Available
        )
    }

    /// A deleted gateway past the hour it stays describable.
    fn expired(&self, now: i64) -> bool {
        self.state == NatGatewayState::Deleted
            && self
                .delete_time
                .is_some_and(|at| now - at >= DELETED_VISIBLE_MILLIS)
    }
}

impl Filterable for NatGateway {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("nat-gateway-id", |n, _| vec![n.nat_gateway_id.clone()]),
        ("state", |n, _| vec![n.state.as_str().into()]),
        ("subnet-id", |n, _| vec![n.subnet_id.clone()]),
        ("vpc-id", |n, _| vec![n.vpc_id.clone()]),
    ];
}

pub(crate) fn nat_gateway_not_found(id: &str) -> Error {
    Error::Engine(engine::Error::not_found(NatGateway::KIND, id))
}

/// Lookups of the working set that the rules of this module answer.
pub trait NatGatewayQueries {
    /// The source address a subnet's traffic leaves the VPC with through the NAT gateway its
    /// route table sends 0.0.0.0/0 to: the elastic IP of a public gateway that carries traffic
    /// and whose own subnet routes to the internet gateway (else it has no way out, as in AWS).
    fn nat_public_ip_of(&self, subnet: &Subnet) -> Option<Ipv4Addr>;
}

impl NatGatewayQueries for State {
    fn nat_public_ip_of(&self, subnet: &Subnet) -> Option<Ipv4Addr> {
        let Some(RouteTarget::NatGateway(id)) = self.route_table_of(subnet)?.default_target()
        else {
            return None;
        };
        let nat = self.get::<NatGateway>(id).filter(|n| n.carries_traffic())?;
        let nat_subnet = self.get::<Subnet>(&nat.subnet_id)?;
        let way_out = self
            .route_table_of(nat_subnet)
            .is_some_and(|t| t.routes_to_internet(self));
        nat.elastic_ip
            .as_ref()
            .filter(|_| way_out)
            .map(|e| e.public_ip)
    }
}

/// What CreateNatGateway asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateNatGatewayRequest {
    pub subnet_id: String,
    pub connectivity_type: Option<String>,
    pub allocation_id: Option<String>,
    pub private_ip: Option<String>,
    pub tags: Tags,
    pub dry_run: bool,
}

/// The elastic IP of a public gateway: it must exist and be free.
fn free_elastic_ip<'a>(
    state: &'a State,
    connectivity: ConnectivityType,
    allocation_id: Option<&str>,
) -> Result<Option<&'a ElasticIp>> {
    match (connectivity, allocation_id) {
        (ConnectivityType::Private, None) => Ok(None),
        (ConnectivityType::Private, Some(_)) => Err(Error::InvalidParameterCombination(
            "A private NAT gateway has no elastic IP: AllocationId is not allowed with \
             ConnectivityType private."
                .into(),
        )),
        (ConnectivityType::Public, None) => Err(Error::MissingParameter(
            "AllocationId (a public NAT gateway needs an elastic IP)".into(),
        )),
        (ConnectivityType::Public, Some(id)) => {
            let address = existing::<ElasticIp>(state, id)?;
            if address.live_association(state).is_some() {
                return Err(Error::AlreadyAssociated(format!(
                    "Elastic IP address [{id}] is already associated"
                )));
            }
            Ok(Some(address))
        }
    }
}

/// The gateway of a CreateNatGateway, its interface and its elastic IP's association, in
/// `txn`.
fn insert_nat_gateway(
    txn: &mut Txn,
    config: &nimbus_core::Config,
    host: &dyn network::NetworkDriver,
    request: &CreateNatGatewayRequest,
) -> Result<NatGateway> {
    let connectivity = ConnectivityType::parse(request.connectivity_type.as_deref())?;
    let state = txn.state();
    let subnet = existing::<Subnet>(state, &request.subnet_id)?.clone();
    let address = free_elastic_ip(state, connectivity, request.allocation_id.as_deref())?.cloned();
    let mut allocator = Allocator::new(state, config, host)?;
    let network_request = NetworkRequest {
        subnet_id: Some(subnet.subnet_id.clone()),
        private_ip: request.private_ip.clone(),
        associate_public_ip: Some(false),
        ..NetworkRequest::default()
    };
    // A NAT gateway's interface is in no security group and forwards others' traffic.
    let mut network = allocator.allocate(&network_request, &subnet, &[])?;
    if request.dry_run {
        return Err(Error::DryRunOperation);
    }
    let nat_gateway_id = nimbus_core::new_id("nat");
    network.source_dest_check = false;
    network.description = format!("Interface for NAT Gateway {nat_gateway_id}");
    network.public_ip = address.as_ref().map(|a| a.public_ip);
    let elastic_ip = address.map(|mut address| {
        let association_id = nimbus_core::new_id("eipassoc");
        address.association = Some(AddressAssociation {
            association_id: association_id.clone(),
            instance_id: None,
            interface_id: network.interface_id.clone(),
            private_ip: network.primary_ip(),
        });
        let elastic_ip = NatElasticIp {
            allocation_id: address.allocation_id.clone(),
            association_id,
            public_ip: address.public_ip,
        };
        (address, elastic_ip)
    });
    let nat = NatGateway {
        nat_gateway_id,
        vpc_id: subnet.vpc_id.clone(),
        subnet_id: subnet.subnet_id.clone(),
        connectivity_type: connectivity,
        state: NatGatewayState::Pending,
        interface_id: network.interface_id.clone(),
        private_ip: network.primary_ip(),
        elastic_ip: elastic_ip.as_ref().map(|(_, e)| e.clone()),
        create_time: nimbus_core::now_millis(),
        delete_time: None,
        tags: request.tags.clone(),
    };
    txn.put(NetworkInterface {
        network,
        availability_zone: subnet.availability_zone.clone(),
        attachment: None,
        tags: Tags::new(),
        managed: Some(ManagedInterface {
            requester_id: "amazon-aws".into(),
            interface_type: "nat_gateway".into(),
            // No device: the VPC's namespace translates the subnets' traffic itself.
            node: false,
        }),
    })?;
    if let Some((address, _)) = elastic_ip {
        txn.put(address)?;
    }
    txn.put(nat.clone())?;
    Ok(nat)
}

/// The gateways of the working set that a network pass settles once it has applied their
/// VPC: pending and deleting ones, with the state the pass saw.
pub(crate) fn unsettled(state: &State) -> Vec<(String, String, NatGatewayState)> {
    state
        .nat_gateways()
        .values()
        .filter(|n| {
            matches!(
                n.state,
                NatGatewayState::Pending | NatGatewayState::Deleting
            )
        })
        .map(|n| (n.vpc_id.clone(), n.nat_gateway_id.clone(), n.state))
        .collect()
}

/// Settles the gateways a network pass saw (`seen`, from [`unsettled`]) in VPCs the host now
/// carries as their records say: pending becomes available, deleting becomes deleted (its
/// interface goes, its elastic IP is free). A gateway whose state moved on since the pass
/// read it is left to the next pass. Deleted gateways past their hour are removed.
pub(crate) fn settle(txn: &mut Txn, seen: &[(String, NatGatewayState)]) -> Result<()> {
    let now = nimbus_core::now_millis();
    for (id, seen_state) in seen {
        let Some(mut nat) = txn.state().get::<NatGateway>(id).cloned() else {
            continue;
        };
        if nat.state != *seen_state {
            continue;
        }
        match nat.state {
            NatGatewayState::Pending => nat.state = NatGatewayState::Available,
            NatGatewayState::Deleting => {
                nat.state = NatGatewayState::Deleted;
                release(txn, &nat)?;
            }
            NatGatewayState::Available | NatGatewayState::Deleted => continue,
        }
        txn.put(nat)?;
    }
    let expired: Vec<String> = txn
        .state()
        .nat_gateways()
        .values()
        .filter(|n| n.expired(now))
        .map(|n| n.nat_gateway_id.clone())
        .collect();
    for id in expired {
        txn.delete::<NatGateway>(&id);
    }
    Ok(())
}

/// Deletes a gateway's interface and frees its elastic IP.
fn release(txn: &mut Txn, nat: &NatGateway) -> Result<()> {
    txn.delete::<NetworkInterface>(&nat.interface_id);
    let Some(elastic_ip) = &nat.elastic_ip else {
        return Ok(());
    };
    if let Some(mut address) = txn
        .state()
        .get::<ElasticIp>(&elastic_ip.allocation_id)
        .cloned()
    {
        let ours = address
            .association
            .as_ref()
            .is_some_and(|a| a.interface_id == nat.interface_id);
        if ours {
            address.association = None;
            txn.put(address)?;
        }
    }
    Ok(())
}

impl Control {
    /// CreateNatGateway (at most once per client token).
    pub fn create_nat_gateway(
        &self,
        request: &CreateNatGatewayRequest,
        token: Option<&ClientToken>,
    ) -> Result<NatGateway> {
        self.mutate(|txn| {
            create_once(txn, token, |txn| {
                insert_nat_gateway(txn, self.config(), self.network(), request)
            })
        })
    }

    /// DescribeNatGateways: deleted gateways stay listed for an hour.
    pub fn describe_nat_gateways(&self, query: &Query) -> Result<Page<NatGateway>> {
        let state = self.read();
        let now = nimbus_core::now_millis();
        Ok(describe::describe(
            &state,
            self.config(),
            query,
            DESCRIBE_NAT_GATEWAYS_PAGING,
            |n: &NatGateway| !n.expired(now),
        )?)
    }

    /// DeleteNatGateway: the gateway is `deleting` until the host no longer carries it; asking
    /// again changes nothing.
    pub fn delete_nat_gateway(&self, nat_gateway_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let mut nat = existing::<NatGateway>(txn.state(), nat_gateway_id)?.clone();
            if nat.expired(nimbus_core::now_millis()) {
                return Err(nat_gateway_not_found(nat_gateway_id));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            if !nat.carries_traffic() {
                return Ok(());
            }
            nat.state = NatGatewayState::Deleting;
            nat.delete_time = Some(nimbus_core::now_millis());
            Ok(txn.put(nat)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Harness;
    use crate::vpc::route_tables::RouteTargetRequest;

    /// A VPC with a public subnet (routed to an internet gateway) and a private one routed to
    /// nothing yet, and a free elastic IP.
    struct Layout {
        vpc_id: String,
        public: String,
        private: String,
        private_routes: String,
        allocation_id: String,
    }

    fn layout(h: &Harness) -> Layout {
        let control = &h.control;
        let vpc_id = control
            .create_vpc("10.40.0.0/16", Tags::new(), false)
            .expect("vpc")
            .vpc_id;
        let subnet = |cidr| {
            control
                .create_subnet(&vpc_id, cidr, Some("us-east-1a"), Tags::new(), false)
                .expect("subnet")
                .subnet_id
        };
        let (public, private) = (subnet("10.40.1.0/24"), subnet("10.40.2.0/24"));
        let igw = control
            .create_internet_gateway(Tags::new(), false)
            .expect("igw")
            .internet_gateway_id;
        control
            .attach_internet_gateway(&igw, &vpc_id, false)
            .expect("attach");
        let table = |subnet: &str| {
            let id = control
                .create_route_table(&vpc_id, Tags::new(), None, false)
                .expect("table")
                .route_table_id;
            control
                .associate_route_table(&id, subnet, false)
                .expect("associate");
            id
        };
        let public_routes = table(&public);
        control
            .put_route(
                &public_routes,
                "0.0.0.0/0",
                &RouteTargetRequest {
                    gateway_id: Some(igw),
                    ..Default::default()
                },
                false,
                false,
            )
            .expect("route");
        let private_routes = table(&private);
        let allocation_id = control
            .allocate_address(Tags::new(), false)
            .expect("eip")
            .allocation_id;
        Layout {
            vpc_id,
            public,
            private,
            private_routes,
            allocation_id,
        }
    }

    fn create(h: &Harness, subnet: &str, allocation_id: &str) -> Result<NatGateway> {
        h.control.create_nat_gateway(
            &CreateNatGatewayRequest {
                subnet_id: subnet.into(),
                allocation_id: Some(allocation_id.into()),
                ..Default::default()
            },
            None,
        )
    }

    fn route_to(h: &Harness, table: &str, nat: &str, replace: bool) -> Result<()> {
        h.control.put_route(
            table,
            "0.0.0.0/0",
            &RouteTargetRequest {
                nat_gateway_id: Some(nat.into()),
                ..Default::default()
            },
            replace,
            false,
        )
    }

    fn nat_ip_of(h: &Harness, layout: &Layout) -> Option<Ipv4Addr> {
        let spec = h.network.applied(&layout.vpc_id).expect("applied");
        spec.subnets
            .iter()
            .find(|s| s.subnet_id == layout.private)
            .and_then(|s| s.nat_public_ip)
    }

    fn state_of(h: &Harness, id: &str) -> NatGatewayState {
        h.control.read().nat_gateways()[id].state
    }

    #[tokio::test]
    async fn a_routed_subnet_leaves_by_the_gateways_address_until_it_is_deleted() {
        let h = Harness::new().await;
        let layout = layout(&h);
        let nat = create(&h, &layout.public, &layout.allocation_id).expect("nat");
        assert_eq!(nat.state, NatGatewayState::Pending);
        let interface = h.control.read().network_interfaces()[&nat.interface_id].clone();
        assert_eq!(interface.interface_type(), "nat_gateway");
        assert_eq!(interface.status(), "in-use");
        assert_eq!(interface.network.subnet_id, layout.public);
        assert_eq!(interface.network.primary_ip(), nat.private_ip);
        let address = h.control.read().elastic_ips()[&layout.allocation_id].clone();
        let public_ip = address.public_ip;
        let association = address.live_association(&h.control.read()).cloned();
        assert_eq!(
            association.map(|a| (a.instance_id, a.interface_id)),
            Some((None, nat.interface_id.clone()))
        );
        h.control.reconcile_network().await;
        assert_eq!(
            state_of(&h, &nat.nat_gateway_id),
            NatGatewayState::Available
        );
        assert_eq!(nat_ip_of(&h, &layout), None, "no route to it yet");

        route_to(&h, &layout.private_routes, &nat.nat_gateway_id, false).expect("route");
        h.control.reconcile_network().await;
        assert_eq!(nat_ip_of(&h, &layout), Some(public_ip));
        let spec = h.network.applied(&layout.vpc_id).expect("applied");
        assert!(
            spec.interfaces
                .iter()
                .all(|i| i.interface_id != nat.interface_id),
            "the gateway's interface has no device"
        );

        // What the gateway uses cannot go from under it.
        let release = h
            .control
            .release_address(Some(&layout.allocation_id), None, false);
        assert!(
            matches!(release, Err(Error::AddressInUse(_))),
            "{release:?}"
        );
        let busy = h.control.delete_subnet(&layout.public, false);
        assert!(
            matches!(busy, Err(Error::DependencyViolation(_))),
            "{busy:?}"
        );
        let eni = h.control.delete_network_interface(&nat.interface_id, false);
        assert!(matches!(eni, Err(Error::InterfaceInUse(_))), "{eni:?}");
        let taken = create(&h, &layout.public, &layout.allocation_id);
        assert!(
            matches!(taken, Err(Error::AlreadyAssociated(_))),
            "{taken:?}"
        );

        h.control
            .delete_nat_gateway(&nat.nat_gateway_id, false)
            .expect("delete");
        assert_eq!(state_of(&h, &nat.nat_gateway_id), NatGatewayState::Deleting);
        h.control.reconcile_network().await;
        assert_eq!(state_of(&h, &nat.nat_gateway_id), NatGatewayState::Deleted);
        assert_eq!(nat_ip_of(&h, &layout), None);
        let state = h.control.read();
        assert!(!state.network_interfaces().contains_key(&nat.interface_id));
        assert!(state.elastic_ips()[&layout.allocation_id]
            .live_association(&state)
            .is_none());
        let table = &state.route_tables()[&layout.private_routes];
        assert_eq!(table.route_state(&state, &table.routes[1]), "blackhole");
        drop(state);
        h.control
            .delete_nat_gateway(&nat.nat_gateway_id, false)
            .expect("deleting again changes nothing");
        h.control
            .release_address(Some(&layout.allocation_id), None, false)
            .expect("free again");
    }

    #[tokio::test]
    async fn a_gateway_without_a_way_out_translates_nothing() {
        let h = Harness::new().await;
        let layout = layout(&h);
        // In the private subnet itself: its subnet has no route to the internet gateway.
        let stranded = create(&h, &layout.private, &layout.allocation_id).expect("nat");
        let other = h
            .control
            .create_route_table(&layout.vpc_id, Tags::new(), None, false);
        let other = other.expect("table").route_table_id;
        route_to(&h, &other, &stranded.nat_gateway_id, false).expect("route");
        h.control.reconcile_network().await;
        assert_eq!(nat_ip_of(&h, &layout), None);

        let private = h
            .control
            .create_nat_gateway(
                &CreateNatGatewayRequest {
                    subnet_id: layout.public.clone(),
                    connectivity_type: Some("private".into()),
                    private_ip: Some("10.40.1.50".into()),
                    ..Default::default()
                },
                None,
            )
            .expect("private nat");
        assert_eq!(private.elastic_ip, None);
        assert_eq!(private.private_ip, Ipv4Addr::new(10, 40, 1, 50));
        route_to(&h, &layout.private_routes, &private.nat_gateway_id, false).expect("route");
        h.control.reconcile_network().await;
        assert_eq!(
            nat_ip_of(&h, &layout),
            None,
            "nimbus has nothing a private NAT reaches"
        );
    }

    #[tokio::test]
    async fn bad_requests_change_nothing() {
        let h = Harness::new().await;
        let layout = layout(&h);
        let request = |connectivity: Option<&str>, allocation: Option<&str>| {
            h.control.create_nat_gateway(
                &CreateNatGatewayRequest {
                    subnet_id: layout.public.clone(),
                    connectivity_type: connectivity.map(str::to_owned),
                    allocation_id: allocation.map(str::to_owned),
                    ..Default::default()
                },
                None,
            )
        };
        let id = layout.allocation_id.as_str();
        assert!(matches!(
            request(None, None),
            Err(Error::MissingParameter(_))
        ));
        assert!(matches!(
            request(Some("private"), Some(id)),
            Err(Error::InvalidParameterCombination(_))
        ));
        assert!(matches!(
            request(Some("sideways"), Some(id)),
            Err(Error::InvalidParameterValue(_))
        ));
        let missing = request(None, Some("eipalloc-0123456789abcdef0"));
        assert!(matches!(missing, Err(Error::Engine(_))), "{missing:?}");
        let unknown_subnet = create(&h, "subnet-0123456789abcdef0", id);
        assert!(matches!(unknown_subnet, Err(Error::Engine(_))));
        let unknown = route_to(&h, &layout.private_routes, "nat-0123456789abcdef0", false);
        assert!(matches!(unknown, Err(Error::Engine(_))), "{unknown:?}");
        let state = h.control.read();
        assert!(state.nat_gateways().is_empty());
        assert!(state.network_interfaces().is_empty());
        drop(state);

        // A client token makes one gateway of two calls.
        let token = ClientToken::new("CreateNatGateway", "t-1", &serde_json::json!({"s": 1}))
            .expect("token");
        let request = CreateNatGatewayRequest {
            subnet_id: layout.public.clone(),
            allocation_id: Some(id.into()),
            ..Default::default()
        };
        let first = h.control.create_nat_gateway(&request, Some(&token));
        let again = h.control.create_nat_gateway(&request, Some(&token));
        let (first, again) = (first.expect("first"), again.expect("replay"));
        assert_eq!(first.nat_gateway_id, again.nat_gateway_id);
        assert_eq!(h.control.read().nat_gateways().len(), 1);
    }

    #[tokio::test]
    async fn a_deleted_gateway_stays_an_hour_and_a_restart_settles_what_was_pending() {
        let h = Harness::new().await;
        let layout = layout(&h);
        let nat = create(&h, &layout.public, &layout.allocation_id).expect("nat");
        let reopened = h.reopen();
        reopened.control.reconcile_network().await;
        assert_eq!(
            state_of(&reopened, &nat.nat_gateway_id),
            NatGatewayState::Available
        );
        reopened
            .control
            .delete_nat_gateway(&nat.nat_gateway_id, false)
            .expect("delete");
        reopened.control.reconcile_network().await;
        // An hour later it is gone.
        let mut old = reopened.control.read().nat_gateways()[&nat.nat_gateway_id].clone();
        old.delete_time = Some(nimbus_core::now_millis() - DELETED_VISIBLE_MILLIS);
        reopened
            .control
            .mutate(|txn| Ok(txn.put(old)?))
            .expect("age it");
        let page = reopened
            .control
            .describe_nat_gateways(&Query::default())
            .expect("describe");
        assert!(page.0.is_empty());
        reopened.control.reconcile_network().await;
        assert!(reopened.control.read().nat_gateways().is_empty());
    }
}
