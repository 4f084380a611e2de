//! CreateTags, DeleteTags, DescribeTags.

use control::filter::Filter;
use control::tags::TagInput;
use serde::Deserialize;
use serde_json::Value;

use super::{input, write_page, Response};
use crate::{ApiContext, ApiError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ChangeTags {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    tags: Vec<TagInput>,
    #[serde(default)]
    dry_run: bool,
}

pub fn create_tags(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ChangeTags = input(request)?;
    context
        .control
        .create_tags(&request.resources, &request.tags, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
}

pub fn delete_tags(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ChangeTags = input(request)?;
    context
        .control
        .delete_tags(&request.resources, &request.tags, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeTags {
    #[serde(default)]
    filters: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

pub fn describe_tags(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DescribeTags = input(request)?;
    let (rows, next_token) = context.control.describe_tags(
        &request.filters,
        request.max_results,
        request.next_token.as_deref(),
    )?;
    response.render(|xml| {
        write_page(xml, "tagSet", &rows, next_token.as_deref(), |xml, row| {
            xml.leaf("key", &row.key);
            xml.leaf("resourceId", &row.resource_id);
            xml.leaf("resourceType", row.resource_type.as_str());
            xml.leaf("value", &row.value);
        })
    })
}
