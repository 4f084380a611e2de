//! CreateTags, DeleteTags, DescribeTags.

use control::tags::TagInput;
use control::Control;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, NoOtherParameters, Response};
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
    change_tags(context, request, response, Control::create_tags)
}

pub fn delete_tags(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    change_tags(context, request, response, Control::delete_tags)
}

type TagChange = fn(&Control, &[String], &[TagInput], bool) -> control::Result<()>;

fn change_tags(
    context: &ApiContext,
    request: Value,
    response: Response,
    change: TagChange,
) -> Result<String, ApiError> {
    let request: ChangeTags = input(request)?;
    change(
        &context.control,
        &request.resources,
        &request.tags,
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("return", "true"))
}

pub fn describe_tags(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, None)?;
    let page = context.control.describe_tags(&query)?;
    render_page(response, "tagSet", page, |xml, row| {
        xml.leaf("key", &row.key);
        xml.leaf("resourceId", &row.resource_id);
        xml.leaf("resourceType", row.resource_type.as_str());
        xml.leaf("value", &row.value);
    })
}
