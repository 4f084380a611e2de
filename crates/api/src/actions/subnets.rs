//! CreateSubnet, DeleteSubnet, DescribeSubnets, ModifySubnetAttribute (`MapPublicIpOnLaunch`).

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::subnets::Subnet;
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::vpcs::BooleanValue;
use super::{describe_request, input, render_page, write_tag_set, NoOtherParameters, Response};
use crate::{ApiContext, ApiError};
use control::vpc::subnets::SubnetQueries;

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

fn write_subnet(
    xml: &mut awsproto::XmlWriter,
    context: &ApiContext,
    subnet: &Subnet,
    available: u64,
) {
    let config = context.control.config();
    xml.leaf("subnetId", &subnet.subnet_id);
    xml.leaf(
        "subnetArn",
        &format!(
            "arn:aws:ec2:{}:{}:subnet/{}",
            config.region, config.account_id, subnet.subnet_id
        ),
    );
    xml.leaf("state", "available");
    xml.leaf("vpcId", &subnet.vpc_id);
    xml.leaf("cidrBlock", &subnet.cidr.to_string());
    xml.leaf("availableIpAddressCount", &available.to_string());
    xml.leaf("availabilityZone", &subnet.availability_zone);
    xml.leaf("defaultForAz", &subnet.default_for_az.to_string());
    xml.leaf(
        "mapPublicIpOnLaunch",
        &subnet.map_public_ip_on_launch.to_string(),
    );
    xml.leaf("mapCustomerOwnedIpOnLaunch", "false");
    xml.leaf("assignIpv6AddressOnCreation", "false");
    xml.leaf("ownerId", &config.account_id);
    xml.leaf("enableDns64", "false");
    xml.leaf("ipv6Native", "false");
    xml.start("privateDnsNameOptionsOnLaunch");
    xml.leaf("hostnameType", "ip-name");
    xml.leaf("enableResourceNameDnsARecord", "false");
    xml.leaf("enableResourceNameDnsAAAARecord", "false");
    xml.end();
    write_tag_set(xml, &subnet.tags);
}

pub fn create_subnet(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.start("subnet");
        write_subnet(xml, context, &subnet, available);
        xml.end();
    })
}

pub fn describe_subnets(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("SubnetIds"))?;
    let page = context.control.describe_subnets(&query)?;
    render_page(response, "subnetSet", page, |xml, (subnet, available)| {
        write_subnet(xml, context, subnet, *available)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteSubnet {
    subnet_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_subnet(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteSubnet = input(request)?;
    context
        .control
        .delete_subnet(&request.subnet_id, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifySubnetAttribute {
    subnet_id: String,
    map_public_ip_on_launch: Option<BooleanValue>,
}

pub fn modify_subnet_attribute(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| xml.leaf("return", "true"))
}
