//! CreateRouteTable, DeleteRouteTable, DescribeRouteTables, CreateRoute, ReplaceRoute,
//! DeleteRoute, AssociateRouteTable, DisassociateRouteTable. Only `local` routes and routes
//! to internet and NAT gateways are served; other targets are refused by name.

use control::idempotency::ClientToken;
use control::tags::{tags_of_created, TagSpecification};
use control::vpc::route_tables::{RouteTable, RouteTarget, RouteTargetRequest};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    NoOtherParameters, Output,
};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateRouteTable", Handler::Sync(create_route_table)),
    ("DescribeRouteTables", Handler::Sync(describe_route_tables)),
    ("DeleteRouteTable", Handler::Sync(delete_route_table)),
    ("CreateRoute", Handler::Sync(create_route)),
    ("ReplaceRoute", Handler::Sync(replace_route)),
    ("DeleteRoute", Handler::Sync(delete_route)),
    ("AssociateRouteTable", Handler::Sync(associate_route_table)),
    (
        "ReplaceRouteTableAssociation",
        Handler::Sync(replace_route_table_association),
    ),
    (
        "DisassociateRouteTable",
        Handler::Sync(disassociate_route_table),
    ),
];

fn route_table_output(state: &control::State, table: &RouteTable, owner: &str) -> Value {
    let routes: Vec<Value> = (table.routes.iter())
        .map(|route| {
            let local = route.target == RouteTarget::Local;
            json!({
                "DestinationCidrBlock": route.destination.to_string(),
                "GatewayId": route.target.gateway_id(),
                "NatGatewayId": route.target.nat_gateway_id(),
                "State": table.route_state(state, route),
                "Origin": if local { "CreateRouteTable" } else { "CreateRoute" },
            })
        })
        .collect();
    let associations: Vec<Value> = (table.associations.iter())
        .map(|association| {
            json!({
                "RouteTableAssociationId": association.association_id,
                "RouteTableId": table.route_table_id,
                "SubnetId": association.subnet_id,
                "Main": association.subnet_id.is_none(),
                "AssociationState": {"State": "associated"},
            })
        })
        .collect();
    json!({
        "RouteTableId": table.route_table_id,
        "VpcId": table.vpc_id,
        "OwnerId": owner,
        "Routes": routes,
        "Associations": associations,
        "PropagatingVgws": [],
        "Tags": tags_output(&table.tags),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateInVpc {
    vpc_id: String,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn create_route_table(context: &ApiContext, request: Value) -> Output {
    let token = ClientToken::of_request("CreateRouteTable", &request)?;
    let request: CreateInVpc = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, RouteTable::KIND)?;
    let table = context.control.create_route_table(
        &request.vpc_id,
        tags,
        token.as_ref(),
        request.dry_run,
    )?;
    let state = context.control.read();
    let owner = &context.control.config().account_id;
    answer(json!({"RouteTable": route_table_output(&state, &table, owner)}))
}

fn describe_route_tables(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("RouteTableIds"))?;
    let page = context.control.describe_route_tables(&query)?;
    let state = context.control.read();
    let owner = &context.control.config().account_id;
    Ok(page_output("RouteTables", page, |table| {
        route_table_output(&state, &table, owner)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteRouteTable {
    route_table_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_route_table(context: &ApiContext, request: Value) -> Output {
    let request: DeleteRouteTable = input(request)?;
    context
        .control
        .delete_route_table(&request.route_table_id, request.dry_run)?;
    answer(Value::Null)
}

/// CreateRoute and ReplaceRoute: the destination and the one target.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RouteRequest {
    route_table_id: String,
    destination_cidr_block: Option<String>,
    destination_ipv6_cidr_block: Option<String>,
    destination_prefix_list_id: Option<String>,
    gateway_id: Option<String>,
    carrier_gateway_id: Option<String>,
    core_network_arn: Option<String>,
    egress_only_internet_gateway_id: Option<String>,
    instance_id: Option<String>,
    local_gateway_id: Option<String>,
    nat_gateway_id: Option<String>,
    network_interface_id: Option<String>,
    transit_gateway_id: Option<String>,
    vpc_endpoint_id: Option<String>,
    vpc_peering_connection_id: Option<String>,
    #[serde(default)]
    local_target: bool,
    #[serde(default)]
    dry_run: bool,
}

impl RouteRequest {
    fn destination(&self) -> Result<&str, ApiError> {
        if self.destination_ipv6_cidr_block.is_some() {
            return Err(unsupported_parameter("DestinationIpv6CidrBlock"));
        }
        if self.destination_prefix_list_id.is_some() {
            return Err(unsupported_parameter("DestinationPrefixListId"));
        }
        self.destination_cidr_block.as_deref().ok_or_else(|| {
            ApiError::from(control::Error::MissingParameter(
                "DestinationCidrBlock".into(),
            ))
        })
    }

    fn target(&self) -> RouteTargetRequest {
        let others = [
            ("CarrierGatewayId", self.carrier_gateway_id.is_some()),
            ("CoreNetworkArn", self.core_network_arn.is_some()),
            (
                "EgressOnlyInternetGatewayId",
                self.egress_only_internet_gateway_id.is_some(),
            ),
            ("InstanceId", self.instance_id.is_some()),
            ("LocalGatewayId", self.local_gateway_id.is_some()),
            ("NetworkInterfaceId", self.network_interface_id.is_some()),
            ("TransitGatewayId", self.transit_gateway_id.is_some()),
            ("VpcEndpointId", self.vpc_endpoint_id.is_some()),
            (
                "VpcPeeringConnectionId",
                self.vpc_peering_connection_id.is_some(),
            ),
            ("LocalTarget", self.local_target),
        ];
        RouteTargetRequest {
            gateway_id: self.gateway_id.clone(),
            nat_gateway_id: self.nat_gateway_id.clone(),
            other: others
                .iter()
                .find(|(_, given)| *given)
                .map(|(name, _)| *name),
        }
    }
}

fn put_route(context: &ApiContext, request: Value, replace: bool) -> Output {
    let request: RouteRequest = input(request)?;
    context.control.put_route(
        &request.route_table_id,
        request.destination()?,
        &request.target(),
        replace,
        request.dry_run,
    )?;
    answer(json!({"Return": true}))
}

fn create_route(context: &ApiContext, request: Value) -> Output {
    put_route(context, request, false)
}

fn replace_route(context: &ApiContext, request: Value) -> Output {
    put_route(context, request, true)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteRoute {
    route_table_id: String,
    destination_cidr_block: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn delete_route(context: &ApiContext, request: Value) -> Output {
    let request: DeleteRoute = input(request)?;
    let destination = request.destination_cidr_block.ok_or_else(|| {
        ApiError::from(control::Error::MissingParameter(
            "DestinationCidrBlock".into(),
        ))
    })?;
    context
        .control
        .delete_route(&request.route_table_id, &destination, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssociateRouteTable {
    route_table_id: String,
    subnet_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn associate_route_table(context: &ApiContext, request: Value) -> Output {
    let request: AssociateRouteTable = input(request)?;
    let subnet_id = request
        .subnet_id
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("SubnetId".into())))?;
    let association_id = context.control.associate_route_table(
        &request.route_table_id,
        &subnet_id,
        request.dry_run,
    )?;
    answer(json!({
        "AssociationId": association_id,
        "AssociationState": {"State": "associated"},
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DisassociateRouteTable {
    association_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn disassociate_route_table(context: &ApiContext, request: Value) -> Output {
    let request: DisassociateRouteTable = input(request)?;
    context
        .control
        .disassociate_route_table(&request.association_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReplaceRouteTableAssociation {
    association_id: String,
    route_table_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn replace_route_table_association(context: &ApiContext, request: Value) -> Output {
    let request: ReplaceRouteTableAssociation = input(request)?;
    let new_id = context.control.replace_route_table_association(
        &request.association_id,
        &request.route_table_id,
        request.dry_run,
    )?;
    answer(json!({
        "NewAssociationId": new_id,
        "AssociationState": {"State": "associated"},
    }))
}
