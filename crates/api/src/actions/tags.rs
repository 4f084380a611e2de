//! CreateTags, DeleteTags, DescribeTags.

use control::tags::TagInput;
use control::Control;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{answer, describe_request, input, page_output, Handler, NoOtherParameters, Output};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateTags", Handler::Sync(create_tags)),
    ("DeleteTags", Handler::Sync(delete_tags)),
    ("DescribeTags", Handler::Sync(describe_tags)),
];

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

fn create_tags(context: &ApiContext, request: Value) -> Output {
    change_tags(context, request, Control::create_tags)
}

fn delete_tags(context: &ApiContext, request: Value) -> Output {
    change_tags(context, request, Control::delete_tags)
}

type TagChange = fn(&Control, &[String], &[TagInput], bool) -> control::Result<()>;

fn change_tags(context: &ApiContext, request: Value, change: TagChange) -> Output {
    let request: ChangeTags = input(request)?;
    change(
        &context.control,
        &request.resources,
        &request.tags,
        request.dry_run,
    )?;
    answer(Value::Null)
}

fn describe_tags(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, None)?;
    let page = context.control.describe_tags(&query)?;
    Ok(page_output("Tags", page, |row| TagDescription {
        key: row.key,
        resource_id: row.resource_id,
        resource_type: row.resource_type.as_str(),
        value: row.value,
    }))
}

/// The model's `TagDescription`, a struct rather than JSON: DescribeTags pages hold up to
/// 1,000 rows.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TagDescription {
    key: String,
    resource_id: String,
    resource_type: &'static str,
    value: String,
}
