//! CreateVpc, CreateDefaultVpc, DeleteVpc, DescribeVpcs, DescribeVpcAttribute, ModifyVpcAttribute,
//! AssociateVpcCidrBlock, DisassociateVpcCidrBlock.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::vpcs::{CidrAssociation, Vpc, VpcAttribute};
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
    ("CreateVpc", Handler::Sync(create_vpc)),
    ("CreateDefaultVpc", Handler::Sync(create_default_vpc)),
    ("DescribeVpcs", Handler::Sync(describe_vpcs)),
    ("DeleteVpc", Handler::Sync(delete_vpc)),
    (
        "DescribeVpcAttribute",
        Handler::Sync(describe_vpc_attribute),
    ),
    ("ModifyVpcAttribute", Handler::Sync(modify_vpc_attribute)),
    (
        "AssociateVpcCidrBlock",
        Handler::Sync(associate_vpc_cidr_block),
    ),
    (
        "DisassociateVpcCidrBlock",
        Handler::Sync(disassociate_vpc_cidr_block),
    ),
];

/// `{"Value": bool}`, as EC2 wraps boolean attributes.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct BooleanValue {
    pub value: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateVpc {
    cidr_block: Option<String>,
    #[serde(default)]
    amazon_provided_ipv6_cidr_block: bool,
    instance_tenancy: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

/// A CIDR block association in `state` (`associated`, `disassociated`).
fn cidr_association_output(association: &CidrAssociation, state: &str) -> Value {
    json!({
        "AssociationId": association.association_id,
        "CidrBlock": association.cidr.to_string(),
        "CidrBlockState": {"State": state},
    })
}

fn vpc_output(vpc: &Vpc, owner_id: &str) -> Value {
    let associations: Vec<Value> = (vpc.cidrs.iter())
        .map(|association| cidr_association_output(association, "associated"))
        .collect();
    json!({
        "VpcId": vpc.vpc_id,
        "OwnerId": owner_id,
        "State": "available",
        "CidrBlock": vpc.primary_cidr().to_string(),
        "CidrBlockAssociationSet": associations,
        "DhcpOptionsId": vpc.dhcp_options_id,
        "InstanceTenancy": "default",
        "IsDefault": vpc.is_default,
        "Tags": tags_output(&vpc.tags),
    })
}

fn create_vpc(context: &ApiContext, request: Value) -> Output {
    let request: CreateVpc = input(request)?;
    if request.amazon_provided_ipv6_cidr_block {
        return Err(unsupported_parameter("AmazonProvidedIpv6CidrBlock"));
    }
    if request
        .instance_tenancy
        .as_deref()
        .is_some_and(|t| t != "default")
    {
        return Err(unsupported_parameter("InstanceTenancy"));
    }
    let cidr = request
        .cidr_block
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("CidrBlock".into())))?;
    let tags = tags_of_created(&request.tag_specifications, Vpc::KIND)?;
    let vpc = context.control.create_vpc(&cidr, tags, request.dry_run)?;
    let owner = &context.control.config().account_id;
    answer(json!({"Vpc": vpc_output(&vpc, owner)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateDefaultVpc {
    #[serde(default)]
    dry_run: bool,
}

fn create_default_vpc(context: &ApiContext, request: Value) -> Output {
    let request: CreateDefaultVpc = input(request)?;
    let vpc = context.control.create_default_vpc(request.dry_run)?;
    let owner = &context.control.config().account_id;
    answer(json!({"Vpc": vpc_output(&vpc, owner)}))
}

fn describe_vpcs(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("VpcIds"))?;
    let page = context.control.describe_vpcs(&query)?;
    let owner = &context.control.config().account_id;
    Ok(page_output("Vpcs", page, |vpc| vpc_output(&vpc, owner)))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct VpcRequest {
    vpc_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_vpc(context: &ApiContext, request: Value) -> Output {
    let request: VpcRequest = input(request)?;
    context
        .control
        .delete_vpc(&request.vpc_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeVpcAttribute {
    vpc_id: String,
    attribute: String,
}

fn describe_vpc_attribute(context: &ApiContext, request: Value) -> Output {
    let request: DescribeVpcAttribute = input(request)?;
    let attribute = VpcAttribute::parse(&request.attribute)?;
    let value = context.control.vpc_attribute(&request.vpc_id, attribute)?;
    let member = match attribute {
        VpcAttribute::EnableDnsSupport => "EnableDnsSupport",
        VpcAttribute::EnableDnsHostnames => "EnableDnsHostnames",
        VpcAttribute::EnableNetworkAddressUsageMetrics => "EnableNetworkAddressUsageMetrics",
    };
    answer(json!({"VpcId": request.vpc_id, member: {"Value": value}}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyVpcAttribute {
    vpc_id: String,
    enable_dns_support: Option<BooleanValue>,
    enable_dns_hostnames: Option<BooleanValue>,
    enable_network_address_usage_metrics: Option<BooleanValue>,
}

fn modify_vpc_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ModifyVpcAttribute = input(request)?;
    let (attribute, value) = match (
        request.enable_dns_support,
        request.enable_dns_hostnames,
        request.enable_network_address_usage_metrics,
    ) {
        (Some(value), None, None) => (VpcAttribute::EnableDnsSupport, value),
        (None, Some(value), None) => (VpcAttribute::EnableDnsHostnames, value),
        (None, None, Some(value)) => (VpcAttribute::EnableNetworkAddressUsageMetrics, value),
        _ => {
            return Err(control::Error::InvalidParameterCombination(
                "Exactly one attribute may be modified at a time.".into(),
            )
            .into())
        }
    };
    let value = value.value.ok_or_else(|| {
        ApiError::from(control::Error::MissingParameter(format!(
            "{}.Value",
            attribute.wire_name()
        )))
    })?;
    context
        .control
        .modify_vpc_attribute(&request.vpc_id, attribute, value)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssociateVpcCidrBlock {
    vpc_id: String,
    cidr_block: Option<String>,
    #[serde(default)]
    amazon_provided_ipv6_cidr_block: bool,
}

fn associate_vpc_cidr_block(context: &ApiContext, request: Value) -> Output {
    let request: AssociateVpcCidrBlock = input(request)?;
    if request.amazon_provided_ipv6_cidr_block {
        return Err(unsupported_parameter("AmazonProvidedIpv6CidrBlock"));
    }
    let cidr = request
        .cidr_block
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("CidrBlock".into())))?;
    let association = context
        .control
        .associate_vpc_cidr_block(&request.vpc_id, &cidr)?;
    answer(json!({
        "CidrBlockAssociation": cidr_association_output(&association, "associated"),
        "VpcId": request.vpc_id,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DisassociateVpcCidrBlock {
    association_id: String,
}

fn disassociate_vpc_cidr_block(context: &ApiContext, request: Value) -> Output {
    let request: DisassociateVpcCidrBlock = input(request)?;
    let (vpc_id, association) = context
        .control
        .disassociate_vpc_cidr_block(&request.association_id)?;
    answer(json!({
        "CidrBlockAssociation": cidr_association_output(&association, "disassociated"),
        "VpcId": vpc_id,
    }))
}
