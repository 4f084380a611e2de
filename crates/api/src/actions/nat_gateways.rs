//! CreateNatGateway, DescribeNatGateways, DeleteNatGateway.

use control::idempotency::ClientToken;
use control::tags::{tags_of_created, TagSpecification};
use control::vpc::nat_gateways::{CreateNatGatewayRequest, NatGateway};
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
    ("CreateNatGateway", Handler::Sync(create_nat_gateway)),
    ("DescribeNatGateways", Handler::Sync(describe_nat_gateways)),
    ("DeleteNatGateway", Handler::Sync(delete_nat_gateway)),
];

fn nat_gateway_output(nat: &NatGateway) -> Value {
    let elastic_ip = nat.elastic_ip.as_ref();
    let address = json!({
        "AllocationId": elastic_ip.map(|e| &e.allocation_id),
        "NetworkInterfaceId": nat.interface_id,
        "PrivateIp": nat.private_ip.to_string(),
        "PublicIp": elastic_ip.map(|e| e.public_ip.to_string()),
        "AssociationId": elastic_ip.map(|e| &e.association_id),
        "IsPrimary": true,
        "Status": "succeeded",
    });
    json!({
        "CreateTime": nimbus_core::iso8601_millis(nat.create_time),
        "DeleteTime": nat.delete_time.map(nimbus_core::iso8601_millis),
        "NatGatewayAddresses": [address],
        "NatGatewayId": nat.nat_gateway_id,
        "State": nat.state.as_str(),
        "SubnetId": nat.subnet_id,
        "VpcId": nat.vpc_id,
        "Tags": tags_output(&nat.tags),
        "ConnectivityType": nat.connectivity_type.as_str(),
        "AvailabilityMode": "zonal",
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateNatGateway {
    subnet_id: Option<String>,
    allocation_id: Option<String>,
    connectivity_type: Option<String>,
    private_ip_address: Option<String>,
    availability_mode: Option<String>,
    #[serde(default)]
    secondary_allocation_ids: Vec<String>,
    #[serde(default)]
    secondary_private_ip_addresses: Vec<String>,
    secondary_private_ip_address_count: Option<i64>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

impl CreateNatGateway {
    /// Secondary addresses and regional gateways are refused by name.
    fn check_supported(&self) -> Result<(), ApiError> {
        if self
            .availability_mode
            .as_deref()
            .is_some_and(|m| m != "zonal")
        {
            return Err(unsupported_parameter("AvailabilityMode=regional"));
        }
        let unsupported = [
            (
                "SecondaryAllocationIds",
                !self.secondary_allocation_ids.is_empty(),
            ),
            (
                "SecondaryPrivateIpAddresses",
                !self.secondary_private_ip_addresses.is_empty(),
            ),
            (
                "SecondaryPrivateIpAddressCount",
                self.secondary_private_ip_address_count.is_some(),
            ),
        ];
        match unsupported.iter().find(|(_, given)| *given) {
            Some((name, _)) => Err(unsupported_parameter(name)),
            None => Ok(()),
        }
    }
}

fn create_nat_gateway(context: &ApiContext, request: Value) -> Output {
    let token = ClientToken::of_request("CreateNatGateway", &request)?;
    let request: CreateNatGateway = input(request)?;
    request.check_supported()?;
    let subnet_id = request
        .subnet_id
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("SubnetId".into())))?;
    let tags = tags_of_created(&request.tag_specifications, NatGateway::KIND)?;
    let nat = context.control.create_nat_gateway(
        &CreateNatGatewayRequest {
            subnet_id,
            connectivity_type: request.connectivity_type,
            allocation_id: request.allocation_id,
            private_ip: request.private_ip_address,
            tags,
            dry_run: request.dry_run,
        },
        token.as_ref(),
    )?;
    answer(json!({
        "ClientToken": request._client_token,
        "NatGateway": nat_gateway_output(&nat),
    }))
}

fn describe_nat_gateways(context: &ApiContext, mut request: Value) -> Output {
    // This action alone names its filter list `Filter`.
    if let Some(object) = request.as_object_mut() {
        if let Some(filters) = object.remove("Filter") {
            object.insert("Filters".into(), filters);
        }
    }
    let (query, NoOtherParameters {}) = describe_request(request, Some("NatGatewayIds"))?;
    let page = context.control.describe_nat_gateways(&query)?;
    Ok(page_output("NatGateways", page, |nat| {
        nat_gateway_output(&nat)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteNatGateway {
    nat_gateway_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_nat_gateway(context: &ApiContext, request: Value) -> Output {
    let request: DeleteNatGateway = input(request)?;
    context
        .control
        .delete_nat_gateway(&request.nat_gateway_id, request.dry_run)?;
    answer(json!({"NatGatewayId": request.nat_gateway_id}))
}
