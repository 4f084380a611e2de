//! CreateVpc, DeleteVpc, DescribeVpcs, DescribeVpcAttribute, ModifyVpcAttribute,
//! AssociateVpcCidrBlock, DisassociateVpcCidrBlock.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::vpcs::{CidrAssociation, Vpc, VpcAttribute};
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{
    describe_request, input, render_page, unsupported_parameter, write_tag_set, NoOtherParameters,
    Response,
};
use crate::{ApiContext, ApiError};

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

fn write_cidr_association(xml: &mut awsproto::XmlWriter, association: &CidrAssociation) {
    xml.leaf("associationId", &association.association_id);
    xml.leaf("cidrBlock", &association.cidr.to_string());
    xml.start("cidrBlockState");
    xml.leaf("state", "associated");
    xml.end();
}

fn write_vpc(xml: &mut awsproto::XmlWriter, vpc: &Vpc, owner_id: &str) {
    xml.leaf("vpcId", &vpc.vpc_id);
    xml.leaf("ownerId", owner_id);
    xml.leaf("state", "available");
    xml.leaf("cidrBlock", &vpc.primary_cidr().to_string());
    xml.start("cidrBlockAssociationSet");
    for association in &vpc.cidrs {
        xml.start("item");
        write_cidr_association(xml, association);
        xml.end();
    }
    xml.end();
    xml.leaf("dhcpOptionsId", "default");
    xml.leaf("instanceTenancy", "default");
    xml.leaf("isDefault", &vpc.is_default.to_string());
    write_tag_set(xml, &vpc.tags);
}

pub fn create_vpc(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.start("vpc");
        write_vpc(xml, &vpc, owner);
        xml.end();
    })
}

pub fn describe_vpcs(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("VpcIds"))?;
    let page = context.control.describe_vpcs(&query)?;
    let owner = &context.control.config().account_id;
    render_page(response, "vpcSet", page, |xml, vpc| {
        write_vpc(xml, vpc, owner)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct VpcRequest {
    vpc_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_vpc(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: VpcRequest = input(request)?;
    context
        .control
        .delete_vpc(&request.vpc_id, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeVpcAttribute {
    vpc_id: String,
    attribute: String,
}

pub fn describe_vpc_attribute(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DescribeVpcAttribute = input(request)?;
    let attribute = VpcAttribute::parse(&request.attribute)?;
    let value = context.control.vpc_attribute(&request.vpc_id, attribute)?;
    response.render(|xml| {
        xml.leaf("vpcId", &request.vpc_id);
        xml.start(attribute.wire_name());
        xml.leaf("value", &value.to_string());
        xml.end();
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyVpcAttribute {
    vpc_id: String,
    enable_dns_support: Option<BooleanValue>,
    enable_dns_hostnames: Option<BooleanValue>,
}

pub fn modify_vpc_attribute(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ModifyVpcAttribute = input(request)?;
    let (attribute, value) = match (request.enable_dns_support, request.enable_dns_hostnames) {
        (Some(value), None) => (VpcAttribute::EnableDnsSupport, value),
        (None, Some(value)) => (VpcAttribute::EnableDnsHostnames, value),
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
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssociateVpcCidrBlock {
    vpc_id: String,
    cidr_block: Option<String>,
    #[serde(default)]
    amazon_provided_ipv6_cidr_block: bool,
}

pub fn associate_vpc_cidr_block(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.start("cidrBlockAssociation");
        write_cidr_association(xml, &association);
        xml.end();
        xml.leaf("vpcId", &request.vpc_id);
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DisassociateVpcCidrBlock {
    association_id: String,
}

pub fn disassociate_vpc_cidr_block(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DisassociateVpcCidrBlock = input(request)?;
    let (vpc_id, association) = context
        .control
        .disassociate_vpc_cidr_block(&request.association_id)?;
    response.render(|xml| {
        xml.start("cidrBlockAssociation");
        xml.leaf("associationId", &association.association_id);
        xml.leaf("cidrBlock", &association.cidr.to_string());
        xml.start("cidrBlockState");
        xml.leaf("state", "disassociated");
        xml.end();
        xml.end();
        xml.leaf("vpcId", &vpc_id);
    })
}
