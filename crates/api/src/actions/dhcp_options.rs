//! CreateDhcpOptions, DescribeDhcpOptions, DeleteDhcpOptions, AssociateDhcpOptions.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::dhcp_options::{DhcpConfiguration, DhcpOptions};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, Handler, NoOtherParameters, Output,
};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateDhcpOptions", Handler::Sync(create_dhcp_options)),
    ("DescribeDhcpOptions", Handler::Sync(describe_dhcp_options)),
    ("DeleteDhcpOptions", Handler::Sync(delete_dhcp_options)),
    (
        "AssociateDhcpOptions",
        Handler::Sync(associate_dhcp_options),
    ),
];

fn dhcp_options_output(set: &DhcpOptions, owner: &str) -> Value {
    let configurations: Vec<Value> = (set.configurations.iter())
        .map(|c| {
            let values: Vec<Value> = c.values.iter().map(|v| json!({"Value": v})).collect();
            json!({"Key": c.key, "Values": values})
        })
        .collect();
    json!({
        "OwnerId": owner,
        "Tags": tags_output(&set.tags),
        "DhcpOptionsId": set.dhcp_options_id,
        "DhcpConfigurations": configurations,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct NewConfiguration {
    key: Option<String>,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateDhcpOptions {
    #[serde(default)]
    dhcp_configurations: Vec<NewConfiguration>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn create_dhcp_options(context: &ApiContext, request: Value) -> Output {
    let request: CreateDhcpOptions = input(request)?;
    let configurations = (request.dhcp_configurations.into_iter())
        .map(|c| {
            Ok(DhcpConfiguration {
                key: c
                    .key
                    .ok_or_else(|| control::Error::MissingParameter("Key".into()))?,
                values: c.values,
            })
        })
        .collect::<control::Result<Vec<_>>>()?;
    let tags = tags_of_created(&request.tag_specifications, DhcpOptions::KIND)?;
    let set = context
        .control
        .create_dhcp_options(configurations, tags, request.dry_run)?;
    let owner = &context.control.config().account_id;
    answer(json!({"DhcpOptions": dhcp_options_output(&set, owner)}))
}

fn describe_dhcp_options(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("DhcpOptionsIds"))?;
    let page = context.control.describe_dhcp_options(&query)?;
    let owner = &context.control.config().account_id;
    Ok(page_output("DhcpOptions", page, |set| {
        dhcp_options_output(&set, owner)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteDhcpOptions {
    dhcp_options_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_dhcp_options(context: &ApiContext, request: Value) -> Output {
    let request: DeleteDhcpOptions = input(request)?;
    context
        .control
        .delete_dhcp_options(&request.dhcp_options_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssociateDhcpOptions {
    dhcp_options_id: String,
    vpc_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn associate_dhcp_options(context: &ApiContext, request: Value) -> Output {
    let request: AssociateDhcpOptions = input(request)?;
    context.control.associate_dhcp_options(
        &request.dhcp_options_id,
        &request.vpc_id,
        request.dry_run,
    )?;
    answer(Value::Null)
}
