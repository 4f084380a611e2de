//! CreateInternetGateway, AttachInternetGateway, DetachInternetGateway, DeleteInternetGateway,
//! DescribeInternetGateways.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::gateways::InternetGateway;
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, Handler, NoOtherParameters, Output,
};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    (
        "CreateInternetGateway",
        Handler::Sync(create_internet_gateway),
    ),
    (
        "DescribeInternetGateways",
        Handler::Sync(describe_internet_gateways),
    ),
    (
        "AttachInternetGateway",
        Handler::Sync(attach_internet_gateway),
    ),
    (
        "DetachInternetGateway",
        Handler::Sync(detach_internet_gateway),
    ),
    (
        "DeleteInternetGateway",
        Handler::Sync(delete_internet_gateway),
    ),
];

fn gateway_output(gateway: &InternetGateway, owner: &str) -> Value {
    let attachments: Vec<Value> = (gateway.attached_vpc.iter())
        .map(|vpc_id| json!({"VpcId": vpc_id, "State": "available"}))
        .collect();
    json!({
        "InternetGatewayId": gateway.internet_gateway_id,
        "OwnerId": owner,
        "Attachments": attachments,
        "Tags": tags_output(&gateway.tags),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateInternetGateway {
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn create_internet_gateway(context: &ApiContext, request: Value) -> Output {
    let request: CreateInternetGateway = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, InternetGateway::KIND)?;
    let gateway = context
        .control
        .create_internet_gateway(tags, request.dry_run)?;
    let owner = &context.control.config().account_id;
    answer(json!({"InternetGateway": gateway_output(&gateway, owner)}))
}

fn describe_internet_gateways(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("InternetGatewayIds"))?;
    let page = context.control.describe_internet_gateways(&query)?;
    let owner = &context.control.config().account_id;
    Ok(page_output("InternetGateways", page, |gateway| {
        gateway_output(&gateway, owner)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GatewayAttachment {
    internet_gateway_id: String,
    vpc_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn attach_internet_gateway(context: &ApiContext, request: Value) -> Output {
    let request: GatewayAttachment = input(request)?;
    context.control.attach_internet_gateway(
        &request.internet_gateway_id,
        &request.vpc_id,
        request.dry_run,
    )?;
    answer(Value::Null)
}

fn detach_internet_gateway(context: &ApiContext, request: Value) -> Output {
    let request: GatewayAttachment = input(request)?;
    context.control.detach_internet_gateway(
        &request.internet_gateway_id,
        &request.vpc_id,
        request.dry_run,
    )?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteInternetGateway {
    internet_gateway_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_internet_gateway(context: &ApiContext, request: Value) -> Output {
    let request: DeleteInternetGateway = input(request)?;
    context
        .control
        .delete_internet_gateway(&request.internet_gateway_id, request.dry_run)?;
    answer(Value::Null)
}
