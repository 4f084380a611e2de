//! EC2 Query protocol: decode the form by the EC2 model, run the action, render its XML.

mod catalog;
mod keypairs;
mod tags;

use axum::http::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{ApiContext, ApiError};

/// Runs one EC2 Query request. Returns the action name (for the log) with the XML answer.
pub async fn ec2_query(
    context: &ApiContext,
    method: &Method,
    raw_query: &str,
    body: &[u8],
    request_id: &str,
) -> Result<(String, String), (String, ApiError)> {
    let source = if method == Method::POST {
        body
    } else {
        raw_query.as_bytes()
    };
    let form = awsproto::parse_form(source).map_err(|e| {
        (
            "-".to_owned(),
            ApiError::bad_request("MalformedQueryString", e.to_string()),
        )
    })?;
    let action = match form.iter().find(|(key, _)| key == "Action") {
        Some((_, action)) => action.clone(),
        None => {
            return Err((
                "-".to_owned(),
                ApiError::bad_request(
                    "MissingAction",
                    "The request must contain the parameter Action",
                ),
            ))
        }
    };
    let params: Vec<(String, String)> = form
        .into_iter()
        .filter(|(key, _)| key != "Action" && key != "Version" && !key.starts_with("X-Amz-"))
        .collect();
    match run(context, &action, &params, request_id).await {
        Ok(xml) => Ok((action, xml)),
        Err(error) => Err((action, error)),
    }
}

async fn run(
    context: &ApiContext,
    action: &str,
    params: &[(String, String)],
    request_id: &str,
) -> Result<String, ApiError> {
    if !ec2model::operation_exists(action) {
        return Err(ApiError::bad_request(
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        ));
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
    let response = Response { action, request_id };
    let xml = match action {
        "DescribeRegions" => catalog::describe_regions(context, input, response),
        "DescribeAvailabilityZones" => {
            catalog::describe_availability_zones(context, input, response)
        }
        "DescribeAccountAttributes" => {
            catalog::describe_account_attributes(context, input, response)
        }
        "DescribeInstanceTypes" => catalog::describe_instance_types(context, input, response),
        "CreateKeyPair" => keypairs::create_key_pair(context, input, response).await,
        "ImportKeyPair" => keypairs::import_key_pair(context, input, response),
        "DescribeKeyPairs" => keypairs::describe_key_pairs(context, input, response),
        "DeleteKeyPair" => keypairs::delete_key_pair(context, input, response),
        "CreateTags" => tags::create_tags(context, input, response),
        "DeleteTags" => tags::delete_tags(context, input, response),
        "DescribeTags" => tags::describe_tags(context, input, response),
        _ => return Err(unsupported(action)),
    }?;
    // Read-only actions honour DryRun after the request proved valid; mutating actions check
    // it themselves before changing anything.
    if dry_run && is_read_only(action) {
        return Err(control::Error::DryRunOperation.into());
    }
    Ok(xml)
}

fn is_read_only(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("Get")
}

fn unsupported(action: &str) -> ApiError {
    ApiError::bad_request(
        "UnsupportedOperation",
        format!("The action {action} is not supported by nimbus."),
    )
}

/// A parameter of the EC2 model that nimbus does not honour: rejected, never ignored.
fn unsupported_parameter(name: &str) -> ApiError {
    ApiError::bad_request(
        "UnsupportedOperation",
        format!("The parameter {name} is not supported by nimbus (see docs/compatibility.md)."),
    )
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
            None => ApiError::invalid_value(format!("Invalid request: {message}")),
        }
    })
}

/// Identifies the response being written.
#[derive(Clone, Copy)]
struct Response<'a> {
    action: &'a str,
    request_id: &'a str,
}

impl Response<'_> {
    fn render(self, body: impl FnOnce(&mut awsproto::XmlWriter)) -> Result<String, ApiError> {
        Ok(awsproto::ec2_response(self.action, self.request_id, body))
    }
}

fn write_tag_set(xml: &mut awsproto::XmlWriter, tags: &control::Tags) {
    xml.start("tagSet");
    for (key, value) in tags {
        xml.start("item");
        xml.leaf("key", key);
        xml.leaf("value", value);
        xml.end();
    }
    xml.end();
}
