//! CreateInternetGateway, AttachInternetGateway, DetachInternetGateway, DeleteInternetGateway,
//! DescribeInternetGateways.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::gateways::InternetGateway;
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, write_tag_set, NoOtherParameters, Response};
use crate::{ApiContext, ApiError};

fn write_gateway(xml: &mut awsproto::XmlWriter, gateway: &InternetGateway, owner: &str) {
    xml.leaf("internetGatewayId", &gateway.internet_gateway_id);
    xml.leaf("ownerId", owner);
    xml.start("attachmentSet");
    if let Some(vpc_id) = &gateway.attached_vpc {
        xml.start("item");
        xml.leaf("vpcId", vpc_id);
        xml.leaf("state", "available");
        xml.end();
    }
    xml.end();
    write_tag_set(xml, &gateway.tags);
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateInternetGateway {
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

pub fn create_internet_gateway(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: CreateInternetGateway = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, InternetGateway::KIND)?;
    let gateway = context
        .control
        .create_internet_gateway(tags, request.dry_run)?;
    let owner = &context.control.config().account_id;
    response.render(|xml| {
        xml.start("internetGateway");
        write_gateway(xml, &gateway, owner);
        xml.end();
    })
}

pub fn describe_internet_gateways(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("InternetGatewayIds"))?;
    let page = context.control.describe_internet_gateways(&query)?;
    let owner = &context.control.config().account_id;
    render_page(response, "internetGatewaySet", page, |xml, gateway| {
        write_gateway(xml, gateway, owner)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GatewayAttachment {
    internet_gateway_id: String,
    vpc_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn attach_internet_gateway(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: GatewayAttachment = input(request)?;
    context.control.attach_internet_gateway(
        &request.internet_gateway_id,
        &request.vpc_id,
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("return", "true"))
}

pub fn detach_internet_gateway(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: GatewayAttachment = input(request)?;
    context.control.detach_internet_gateway(
        &request.internet_gateway_id,
        &request.vpc_id,
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteInternetGateway {
    internet_gateway_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_internet_gateway(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteInternetGateway = input(request)?;
    context
        .control
        .delete_internet_gateway(&request.internet_gateway_id, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
}
