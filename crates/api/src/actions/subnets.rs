//! CreateSubnet, CreateDefaultSubnet, DeleteSubnet, DescribeSubnets, ModifySubnetAttribute
//! (`MapPublicIpOnLaunch`).

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::subnets::Subnet;
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::vpcs::BooleanValue;
use super::{
    answer, describe_request, input, page_output, tags_output, Handler, NoOtherParameters, Output,
};
use crate::{ApiContext, ApiError};
use control::vpc::subnets::SubnetQueries;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateSubnet", Handler::Sync(create_subnet)),
    ("CreateDefaultSubnet", Handler::Sync(create_default_subnet)),
    ("DescribeSubnets", Handler::Sync(describe_subnets)),
    ("DeleteSubnet", Handler::Sync(delete_subnet)),
    (
        "ModifySubnetAttribute",
        Handler::Sync(modify_subnet_attribute),
    ),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateSubnet {
    vpc_id: String,
    cidr_block: Option<String>,
    availability_zone: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn subnet_output(context: &ApiContext, subnet: &Subnet, available: u64) -> Value {
    let config = context.control.config();
    json!({
        "SubnetId": subnet.subnet_id,
        "SubnetArn": format!(
            "arn:aws:ec2:{}:{}:subnet/{}",
            config.region, config.account_id, subnet.subnet_id
        ),
        "State": "available",
        "VpcId": subnet.vpc_id,
        "CidrBlock": subnet.cidr.to_string(),
        "AvailableIpAddressCount": available,
        "AvailabilityZone": subnet.availability_zone,
        "DefaultForAz": subnet.default_for_az,
        "MapPublicIpOnLaunch": subnet.map_public_ip_on_launch,
        "MapCustomerOwnedIpOnLaunch": false,
        "AssignIpv6AddressOnCreation": false,
        "OwnerId": config.account_id,
        "EnableDns64": false,
        "Ipv6Native": false,
        "PrivateDnsNameOptionsOnLaunch": {
            "HostnameType": "ip-name",
            "EnableResourceNameDnsARecord": false,
            "EnableResourceNameDnsAAAARecord": false,
        },
        "Tags": tags_output(&subnet.tags),
    })
}

fn create_subnet(context: &ApiContext, request: Value) -> Output {
    let request: CreateSubnet = input(request)?;
    let cidr = request
        .cidr_block
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("CidrBlock".into())))?;
    let tags = tags_of_created(&request.tag_specifications, Subnet::KIND)?;
    let subnet = context.control.create_subnet(
        &request.vpc_id,
        &cidr,
        request.availability_zone.as_deref(),
        tags,
        request.dry_run,
    )?;
    let available = context.control.read().available_ip_count(&subnet);
    answer(json!({"Subnet": subnet_output(context, &subnet, available)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateDefaultSubnet {
    availability_zone: Option<String>,
    availability_zone_id: Option<String>,
    #[serde(default)]
    ipv6_native: bool,
    #[serde(default)]
    dry_run: bool,
}

fn create_default_subnet(context: &ApiContext, request: Value) -> Output {
    let request: CreateDefaultSubnet = input(request)?;
    if request.ipv6_native {
        return Err(super::unsupported_parameter("Ipv6Native"));
    }
    let by_id = (request.availability_zone_id.as_deref()).and_then(|id| {
        let zones = context.control.availability_zones();
        zones
            .into_iter()
            .find(|z| z.zone_id == id)
            .map(|z| z.zone_name)
    });
    let zone = (request.availability_zone.or(by_id)).ok_or_else(|| {
        ApiError::from(control::Error::MissingParameter(
            "AvailabilityZone or a known AvailabilityZoneId".into(),
        ))
    })?;
    let subnet = context
        .control
        .create_default_subnet(&zone, request.dry_run)?;
    let available = context.control.read().available_ip_count(&subnet);
    answer(json!({"Subnet": subnet_output(context, &subnet, available)}))
}

fn describe_subnets(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("SubnetIds"))?;
    let page = context.control.describe_subnets(&query)?;
    Ok(page_output("Subnets", page, |(subnet, available)| {
        subnet_output(context, &subnet, available)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteSubnet {
    subnet_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_subnet(context: &ApiContext, request: Value) -> Output {
    let request: DeleteSubnet = input(request)?;
    context
        .control
        .delete_subnet(&request.subnet_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifySubnetAttribute {
    subnet_id: String,
    map_public_ip_on_launch: Option<BooleanValue>,
}

fn modify_subnet_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ModifySubnetAttribute = input(request)?;
    let value = request
        .map_public_ip_on_launch
        .and_then(|v| v.value)
        .ok_or_else(|| {
            ApiError::from(control::Error::MissingParameter(
                "MapPublicIpOnLaunch.Value".into(),
            ))
        })?;
    context
        .control
        .modify_subnet_map_public_ip(&request.subnet_id, value)?;
    answer(Value::Null)
}
