//! EC2 Query protocol: decode the form by the EC2 model, run the action, render its XML.

mod addresses;
mod attributes;
mod catalog;
mod dhcp_options;
mod gateways;
mod image_alias;
mod images;
mod instance_health;
mod instances;
mod interfaces;
mod keypairs;
mod launch_templates;
mod nat_gateways;
mod network_acls;
mod prefix_lists;
mod profile_associations;
mod route_tables;
mod security_groups;
mod snapshots;
mod subnets;
mod tags;
mod volumes;
mod vpcs;

use std::collections::HashMap;
use std::sync::OnceLock;

use awsproto::EncodeError;
use axum::http::Method;
use control::credentials::Caller;
use control::describe::{Page, Query};
use control::filter::Filter;
use serde::de::DeserializeOwned;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::Ec2Error;
use crate::service::BoxFuture;
use crate::{ApiContext, ApiError};

/// Runs one EC2 Query request. Returns the action name (for the log) with the XML answer.
pub async fn ec2_query(
    context: &ApiContext,
    method: &Method,
    raw_query: &str,
    body: &[u8],
    request_id: &str,
    caller: &Caller,
) -> Result<(String, String), (String, ApiError)> {
    let source = if method == Method::POST {
        body
    } else {
        raw_query.as_bytes()
    };
    let form = awsproto::parse_form(source).map_err(|e| {
        (
            "-".to_owned(),
            ApiError::from(Ec2Error::MalformedQueryString(e.to_string())),
        )
    })?;
    let action = match form.iter().find(|(key, _)| key == "Action") {
        Some((_, action)) => action.clone(),
        None => return Err(("-".to_owned(), ApiError::from(Ec2Error::MissingAction))),
    };
    let params: Vec<(String, String)> = form
        .into_iter()
        .filter(|(key, _)| key != "Action" && key != "Version" && !key.starts_with("X-Amz-"))
        .collect();
    let network_before = context.control.network_changes();
    let outcome = CALLER
        .scope(
            caller.arn.clone(),
            run(context, &action, &params, request_id),
        )
        .await;
    // A call that changed the network answers once the host enforces the change: a revoked
    // rule stops the next packet, a deleted VPC's namespace is gone.
    if context.control.network_changes() != network_before {
        context.control.network_settled().await;
    }
    match outcome {
        Ok(xml) => Ok((action, xml)),
        Err(error) => Err((action, error)),
    }
}

tokio::task_local! {
    /// The ARN of the caller of the EC2 request being answered, for the few answers that name
    /// it (`CreatedBy`); handlers read it through [`caller_arn`] rather than every handler
    /// taking it.
    static CALLER: String;
}

/// The ARN of the caller of the request being answered.
fn caller_arn() -> String {
    CALLER.try_with(String::clone).unwrap_or_default()
}

async fn run(
    context: &ApiContext,
    action: &str,
    params: &[(String, String)],
    request_id: &str,
) -> Result<String, ApiError> {
    if !ec2model::operation_exists(action) {
        return Err(Ec2Error::UnknownAction(action.to_owned()).into());
    }
    if !ec2model::is_modeled(action) {
        return Err(unsupported(action));
    }
    let mut input = ec2model::decode(action, params)?;
    let dry_run = input
        .get("DryRun")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if is_read_only(action) {
        // Read-only handlers do not see DryRun: it is answered below, once the call succeeded.
        if let Some(object) = input.as_object_mut() {
            object.remove("DryRun");
        }
    }
    let Some(handler) = handler(action) else {
        return Err(unsupported(action));
    };
    let output = match handler {
        Handler::Sync(handle) => handle(context, input),
        Handler::Async(handle) => handle(context, input).await,
    }?;
    // Read-only actions honour DryRun after the request proved valid; mutating actions check
    // it themselves before changing anything.
    if dry_run && is_read_only(action) {
        return Err(control::Error::DryRunOperation.into());
    }
    // Every handled action is modeled (`handlers_are_the_model_list` checks).
    let xml = output
        .0
        .encode(action, request_id)
        .ok_or_else(|| unsupported(action))?;
    xml.map_err(|failure| control::Error::Internal(failure.to_string()).into())
}

/// Runs an EC2 action for another service (Auto Scaling) as `caller_arn`: the handler a
/// client's request reaches, on input keyed by member names, answering JSON keyed the same way.
pub(crate) async fn call_as(
    context: &ApiContext,
    caller_arn: &str,
    action: &str,
    input: Value,
) -> Result<Value, ApiError> {
    let handler = handler(action).ok_or_else(|| unsupported(action))?;
    let run = async move {
        match handler {
            Handler::Sync(handle) => handle(context, input),
            Handler::Async(handle) => handle(context, input).await,
        }
    };
    let answer = CALLER.scope(caller_arn.to_owned(), run).await?;
    Ok(answer.0.to_json())
}

/// RunInstances for another service as `caller_arn`, with the `reserved` tags it puts on
/// what it launches.
pub(crate) async fn run_instances_as(
    context: &ApiContext,
    caller_arn: &str,
    input: Value,
    reserved: control::Tags,
) -> Result<Value, ApiError> {
    let run = async move { instances::run_instances_tagged(context, input, reserved) };
    let answer = CALLER.scope(caller_arn.to_owned(), run).await?;
    Ok(answer.0.to_json())
}

/// A handler's answer: a value keyed by the output shape's member names, JSON or a struct
/// that serializes under those names, which `ec2model::encode_output` writes. Large answers
/// are structs: they go to XML without a JSON value per item.
pub(super) struct Answer(Box<dyn Encode + Send>);

/// Encodes an answer of any `Serialize` type behind one pointer.
trait Encode {
    fn encode(&self, action: &str, request_id: &str) -> Option<Result<String, EncodeError>>;
    /// The answer as JSON keyed by member names, for a service that reads EC2's answers.
    fn to_json(&self) -> Value;
}

impl<T: Serialize> Encode for T {
    fn encode(&self, action: &str, request_id: &str) -> Option<Result<String, EncodeError>> {
        ec2model::encode_output(action, self, request_id)
    }

    fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

type Output = Result<Answer, ApiError>;

/// A handler's successful answer.
fn answer(output: impl Serialize + Send + 'static) -> Output {
    Ok(Answer(Box::new(output)))
}

/// An action's handler. It takes the input as `ec2model::decode` checked it against the model
/// (JSON keyed by member names) and reads it into its own `deny_unknown_fields` struct, so a
/// modeled parameter it does not honour is refused by name.
#[derive(Clone, Copy)]
pub(super) enum Handler {
    Sync(fn(&ApiContext, Value) -> Output),
    Async(for<'a> fn(&'a ApiContext, Value) -> BoxFuture<'a, Output>),
}

/// Every action nimbus answers and its handler, one table per module: exactly the actions of
/// `ec2model`'s list (`handlers_are_the_model_list` checks).
const HANDLERS: &[&[(&str, Handler)]] = &[
    catalog::HANDLERS,
    keypairs::HANDLERS,
    launch_templates::HANDLERS,
    tags::HANDLERS,
    volumes::HANDLERS,
    snapshots::HANDLERS,
    images::HANDLERS,
    attributes::HANDLERS,
    instances::HANDLERS,
    instance_health::HANDLERS,
    profile_associations::HANDLERS,
    vpcs::HANDLERS,
    subnets::HANDLERS,
    security_groups::HANDLERS,
    gateways::HANDLERS,
    nat_gateways::HANDLERS,
    dhcp_options::HANDLERS,
    route_tables::HANDLERS,
    network_acls::HANDLERS,
    prefix_lists::HANDLERS,
    interfaces::HANDLERS,
    addresses::HANDLERS,
];

fn handler(action: &str) -> Option<Handler> {
    static TABLE: OnceLock<HashMap<&str, Handler>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        HANDLERS
            .iter()
            .flat_map(|module| module.iter().copied())
            .collect()
    });
    table.get(action).copied()
}

fn is_read_only(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("Get")
}

fn unsupported(action: &str) -> ApiError {
    ApiError::from(control::Error::Unsupported(format!(
        "The action {action} is not supported by nimbus."
    )))
}

/// A parameter of the EC2 model that nimbus does not honour: rejected, never ignored.
fn unsupported_parameter(name: &str) -> ApiError {
    ApiError::from(control::Error::unsupported_parameter(name))
}

/// Decodes the model-shaped request into an action's input struct. Input structs deny unknown
/// fields, so a modeled parameter the handler does not declare is refused by name.
fn input<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|error| {
        let message = error.to_string();
        match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) => unsupported_parameter(field),
            None => ApiError::from(control::Error::InvalidParameterValue(format!(
                "Invalid request: {message}"
            ))),
        }
    })
}

/// The part of a request every Describe action shares: its ID list (named `ids_member` in the
/// model, if the action has one), `Filters`, `MaxResults` and `NextToken`. The rest of the request is decoded into
/// `Rest`, which denies unknown fields, so a modeled parameter nimbus does not honour is
/// refused by name.
fn describe_request<Rest: DeserializeOwned>(
    mut request: Value,
    ids_member: Option<&str>,
) -> Result<(Query, Rest), ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Shared {
        #[serde(default)]
        ids: Vec<String>,
        #[serde(default)]
        filters: Vec<Filter>,
        max_results: Option<i64>,
        next_token: Option<String>,
    }
    let mut shared = serde_json::Map::new();
    if let Some(object) = request.as_object_mut() {
        for member in ["Filters", "MaxResults", "NextToken"] {
            if let Some(value) = object.remove(member) {
                shared.insert(member.to_owned(), value);
            }
        }
        if let Some(ids) = ids_member.and_then(|member| object.remove(member)) {
            shared.insert("Ids".to_owned(), ids);
        }
    }
    let shared: Shared = input(Value::Object(shared))?;
    let query = Query {
        ids: shared.ids,
        filters: shared.filters,
        max_results: shared.max_results,
        next_token: shared.next_token,
    };
    Ok((query, input(request)?))
}

/// A Describe action with no parameters beyond the shared ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOtherParameters {}

/// A resource's tags as the model's `TagList` (`ec2model` decides when an empty one is sent).
fn tags_output(tags: &control::Tags) -> TagList<'_> {
    TagList(tags)
}

/// Tags as the model's `TagList`: `[{"Key": …, "Value": …}]`.
struct TagList<'a>(&'a control::Tags);

impl Serialize for TagList<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        tag_list(self.0, serializer)
    }
}

/// Serializes tags as the model's `TagList`, for answer structs' `Tags` fields.
fn tag_list<S: Serializer>(tags: &control::Tags, serializer: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag<'a> {
        key: &'a str,
        value: &'a str,
    }
    let mut list = serializer.serialize_seq(Some(tags.len()))?;
    for (key, value) in tags {
        list.serialize_element(&Tag { key, value })?;
    }
    list.end()
}

/// A Describe answer: one page of items in the output's list `member`, each as `item` shows
/// it, and its `NextToken`. `item` takes the item, so an answer struct can move its strings
/// rather than copy them.
fn page_output<T, V: Serialize + Send + 'static>(
    member: &'static str,
    (items, next_token): Page<T>,
    item: impl FnMut(T) -> V,
) -> Answer {
    Answer(Box::new(PageOutput {
        member,
        items: items.into_iter().map(item).collect(),
        next_token,
    }))
}

/// `{member: [items], "NextToken": token}`, the output of every Describe action.
struct PageOutput<V> {
    member: &'static str,
    items: Vec<V>,
    next_token: Option<String>,
}

impl<V: Serialize> Serialize for PageOutput<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut output = serializer.serialize_map(None)?;
        output.serialize_entry(self.member, &self.items)?;
        if let Some(token) = &self.next_token {
            output.serialize_entry("NextToken", token)?;
        }
        output.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::HANDLERS;

    /// The dispatch table and the model list name the same actions, each once: a listed action
    /// without a handler, or a handler the list lacks, fails here.
    #[test]
    fn handlers_are_the_model_list() {
        let rows: Vec<&str> = (HANDLERS.iter().flat_map(|module| module.iter()))
            .map(|(name, _)| *name)
            .collect();
        let handled: BTreeSet<&str> = rows.iter().copied().collect();
        assert_eq!(handled.len(), rows.len(), "an action is handled twice");
        let modeled: BTreeSet<&str> = ec2model::modeled_actions().collect();
        assert_eq!(handled, modeled);
    }
}
