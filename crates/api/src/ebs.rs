//! The EBS direct APIs (service `ebs`, REST-JSON): StartSnapshot, PutSnapshotBlock,
//! CompleteSnapshot, ListSnapshotBlocks, ListChangedBlocks, GetSnapshotBlock.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use control::direct::BLOCK_SIZE;
use control::idempotency::ClientToken;
use control::snapshots::Snapshot;
use control::Resource;
use engine::Error as EngineError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ApiContext;

/// What went wrong in an EBS direct API call.
#[derive(Debug, thiserror::Error)]
enum EbsError {
    #[error(transparent)]
    Control(#[from] control::Error),
    /// The request itself is malformed: bad JSON, a missing header, a number that is none.
    #[error("{0}")]
    InvalidRequest(String),
    #[error("No such EBS direct API route.")]
    NoSuchRoute,
}

impl From<EngineError> for EbsError {
    fn from(error: EngineError) -> EbsError {
        EbsError::Control(error.into())
    }
}

const VALIDATION: &str = "ValidationException";
const NOT_FOUND: &str = "ResourceNotFoundException";

/// The EBS direct API's HTTP status, code and `Reason` for each error, from the errors
/// botocore's `ebs` model lists: chosen here and nowhere else.
fn ebs_code(error: &EbsError) -> (StatusCode, &'static str, Option<&'static str>) {
    use control::Error as Control;
    let invalid_value = (
        StatusCode::BAD_REQUEST,
        VALIDATION,
        Some("INVALID_PARAMETER_VALUE"),
    );
    match error {
        EbsError::NoSuchRoute => (StatusCode::NOT_FOUND, NOT_FOUND, None),
        EbsError::InvalidRequest(_) => invalid_value,
        EbsError::Control(error) => match error {
            Control::Engine(EngineError::NotFound { kind, .. }) if *kind == Snapshot::KIND => {
                (StatusCode::NOT_FOUND, NOT_FOUND, Some("SNAPSHOT_NOT_FOUND"))
            }
            Control::Engine(EngineError::NotFound { .. }) => {
                (StatusCode::NOT_FOUND, NOT_FOUND, None)
            }
            Control::Engine(EngineError::MalformedId { .. }) => (
                StatusCode::BAD_REQUEST,
                VALIDATION,
                Some("INVALID_SNAPSHOT_ID"),
            ),
            Control::Engine(EngineError::InvalidPaginationToken(_)) => (
                StatusCode::BAD_REQUEST,
                VALIDATION,
                Some("INVALID_PAGE_TOKEN"),
            ),
            Control::Engine(EngineError::ClientTokenReused(_)) => {
                (StatusCode::CONFLICT, "ConflictException", None)
            }
            Control::IncorrectState(_) => (StatusCode::BAD_REQUEST, VALIDATION, None),
            // The snapshot limit is EC2's, a dependency of EBS direct (botocore's ebs model).
            Control::LimitExceeded { .. } => (
                StatusCode::PAYMENT_REQUIRED,
                "ServiceQuotaExceededException",
                Some("DEPENDENCY_SERVICE_QUOTA_EXCEEDED"),
            ),
            Control::Engine(
                EngineError::Unreadable { .. } | EngineError::Store(_) | EngineError::Internal(_),
            )
            | Control::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerException",
                None,
            ),
            _ => invalid_value,
        },
    }
}

/// Routes one EBS direct API request; returns the operation name (for the log) and the answer.
pub async fn handle(
    context: &ApiContext,
    method: &Method,
    path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> (String, Response) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query = awsproto::parse_form(raw_query.as_bytes()).unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (operation, outcome) = match (method, segments.as_slice()) {
        (&Method::POST, ["snapshots"]) => ("StartSnapshot", start_snapshot(context, body).await),
        (&Method::POST, ["snapshots", "completion", id]) => (
            "CompleteSnapshot",
            complete_snapshot(context, id, headers).await,
        ),
        (&Method::PUT, ["snapshots", id, "blocks", index]) => (
            "PutSnapshotBlock",
            put_block(context, id, index, headers, body).await,
        ),
        (&Method::GET, ["snapshots", id, "blocks"]) => {
            ("ListSnapshotBlocks", list_blocks(context, id, &param))
        }
        (&Method::GET, ["snapshots", id, "changedblocks"]) => {
            ("ListChangedBlocks", list_changed(context, id, &param))
        }
        (&Method::GET, ["snapshots", id, "blocks", index]) => (
            "GetSnapshotBlock",
            get_block(context, id, index, param("blockToken")).await,
        ),
        _ => ("-", Err(EbsError::NoSuchRoute)),
    };
    let response = outcome.unwrap_or_else(json_error);
    (operation.to_owned(), response)
}

/// REST-JSON errors: the code in `x-amzn-ErrorType` and the body, as botocore reads them.
fn json_error(error: EbsError) -> Response {
    let (status, code, reason) = ebs_code(&error);
    if status.is_server_error() {
        tracing::error!(%error, "internal error");
    }
    let mut body = json!({ "Message": error.to_string() });
    if let Some(reason) = reason {
        body["Reason"] = json!(reason);
    }
    (
        status,
        [
            ("x-amzn-ErrorType", code),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn epoch_seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, EbsError> {
    header_text(headers, name)
        .ok_or_else(|| EbsError::InvalidRequest(format!("The header {name} is required.")))
}

fn parse_number(text: &str, what: &str) -> Result<u64, EbsError> {
    text.parse()
        .map_err(|_| EbsError::InvalidRequest(format!("{what} must be a non-negative integer.")))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StartSnapshot {
    volume_size: u64,
    parent_snapshot_id: Option<String>,
    #[serde(default)]
    tags: Vec<TagInput>,
    description: Option<String>,
    /// Read by `ClientToken::of_request`, with the other parameters it is bound to.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    encrypted: bool,
    kms_key_arn: Option<String>,
    timeout: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TagInput {
    key: String,
    #[serde(default)]
    value: String,
}

async fn start_snapshot(context: &ApiContext, body: &[u8]) -> Result<Response, EbsError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| EbsError::InvalidRequest(format!("Malformed JSON body: {e}")))?;
    let client_token = ClientToken::of_request("StartSnapshot", &value)?;
    let request: StartSnapshot = serde_json::from_value(value)
        .map_err(|e| EbsError::InvalidRequest(format!("Invalid StartSnapshot request: {e}")))?;
    if request.encrypted || request.kms_key_arn.is_some() {
        return Err(control::Error::Unsupported(
            "Encrypted snapshots are not supported by nimbus yet.".into(),
        )
        .into());
    }
    if request.timeout.is_some_and(|t| !(10..=4320).contains(&t)) {
        return Err(EbsError::InvalidRequest(
            "Timeout must be between 10 and 4320 minutes.".into(),
        ));
    }
    let tags = request
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    let snapshot = context
        .control
        .start_direct_snapshot(
            request.volume_size,
            request.parent_snapshot_id.as_deref(),
            request.description.unwrap_or_default(),
            tags,
            client_token,
            request.timeout,
        )
        .await?;
    let tags: Vec<Value> = snapshot
        .tags
        .iter()
        .map(|(k, v)| json!({"Key": k, "Value": v}))
        .collect();
    Ok(json_response(
        StatusCode::CREATED,
        json!({
            "SnapshotId": snapshot.snapshot_id,
            "OwnerId": context.control.config().account_id,
            "Status": snapshot.state.as_str(),
            "StartTime": epoch_seconds(snapshot.start_time),
            "VolumeSize": snapshot.volume_size_gib,
            "BlockSize": BLOCK_SIZE,
            "Description": snapshot.description,
            "ParentSnapshotId": request.parent_snapshot_id,
            "Tags": tags,
        }),
    ))
}

async fn put_block(
    context: &ApiContext,
    id: &str,
    index: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, EbsError> {
    let index = parse_number(index, "BlockIndex")?;
    let length = parse_number(
        required_header(headers, "x-amz-data-length")?,
        "x-amz-Data-Length",
    )?;
    if length != body.len() as u64 {
        return Err(EbsError::InvalidRequest(
            "x-amz-Data-Length does not match the body length.".into(),
        ));
    }
    let algorithm = required_header(headers, "x-amz-checksum-algorithm")?;
    if algorithm != "SHA256" {
        return Err(EbsError::InvalidRequest(
            "The only checksum algorithm is SHA256.".into(),
        ));
    }
    let checksum = required_header(headers, "x-amz-checksum")?;
    if let Some(progress) = header_text(headers, "x-amz-progress") {
        if parse_number(progress, "x-amz-Progress")? > 100 {
            return Err(EbsError::InvalidRequest(
                "x-amz-Progress must be between 0 and 100.".into(),
            ));
        }
    }
    let stored = context
        .control
        .put_snapshot_block(id, index, body, checksum)
        .await?;
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&stored) {
        response.headers_mut().insert("x-amz-Checksum", value);
    }
    response.headers_mut().insert(
        "x-amz-Checksum-Algorithm",
        HeaderValue::from_static("SHA256"),
    );
    Ok(response)
}

async fn complete_snapshot(
    context: &ApiContext,
    id: &str,
    headers: &HeaderMap,
) -> Result<Response, EbsError> {
    let changed = parse_number(
        required_header(headers, "x-amz-changedblockscount")?,
        "x-amz-ChangedBlocksCount",
    )?;
    if header_text(headers, "x-amz-checksum").is_some() {
        return Err(EbsError::InvalidRequest(
            "Aggregated snapshot checksums are not supported by nimbus; omit x-amz-Checksum."
                .into(),
        ));
    }
    let state = context
        .control
        .complete_direct_snapshot(id, changed)
        .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        json!({ "Status": state.as_str() }),
    ))
}

/// `maxResults` (100–10000, default 10000) and the starting index from `pageToken` or `startingBlockIndex`.
fn paging<'a>(param: &impl Fn(&str) -> Option<&'a str>) -> Result<(u64, usize), EbsError> {
    let max = match param("maxResults") {
        Some(text) => parse_number(text, "maxResults")?,
        None => 10000,
    };
    if !(100..=10000).contains(&max) {
        return Err(EbsError::InvalidRequest(
            "maxResults must be between 100 and 10000.".into(),
        ));
    }
    let start = match (param("pageToken"), param("startingBlockIndex")) {
        (Some(token), _) => parse_number(token, "pageToken")?,
        (None, Some(index)) => parse_number(index, "startingBlockIndex")?,
        (None, None) => 0,
    };
    Ok((start, max as usize))
}

fn expiry() -> f64 {
    epoch_seconds(nimbus_core::now_millis() + 7 * 24 * 3600 * 1000)
}

fn list_blocks<'a>(
    context: &ApiContext,
    id: &str,
    param: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Response, EbsError> {
    let (start, max) = paging(param)?;
    let page = context.control.list_snapshot_blocks(id, start, max)?;
    let blocks: Vec<Value> = page
        .blocks
        .iter()
        .map(|b| json!({"BlockIndex": b.index, "BlockToken": b.token}))
        .collect();
    let mut body = json!({
        "Blocks": blocks, "ExpiryTime": expiry(), "VolumeSize": page.volume_size_gib, "BlockSize": BLOCK_SIZE,
    });
    if let Some(next) = page.next_index {
        body["NextToken"] = json!(next.to_string());
    }
    Ok(json_response(StatusCode::OK, body))
}

fn list_changed<'a>(
    context: &ApiContext,
    id: &str,
    param: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Response, EbsError> {
    let (start, max) = paging(param)?;
    let page = context
        .control
        .list_changed_blocks(param("firstSnapshotId"), id, start, max)?;
    let blocks: Vec<Value> = page
        .blocks
        .iter()
        .map(|b| {
            let mut entry = json!({ "BlockIndex": b.index });
            if let Some(token) = &b.first_token {
                entry["FirstBlockToken"] = json!(token);
            }
            if let Some(token) = &b.second_token {
                entry["SecondBlockToken"] = json!(token);
            }
            entry
        })
        .collect();
    let mut body = json!({
        "ChangedBlocks": blocks, "ExpiryTime": expiry(), "VolumeSize": page.volume_size_gib, "BlockSize": BLOCK_SIZE,
    });
    if let Some(next) = page.next_index {
        body["NextToken"] = json!(next.to_string());
    }
    Ok(json_response(StatusCode::OK, body))
}

async fn get_block(
    context: &ApiContext,
    id: &str,
    index: &str,
    token: Option<&str>,
) -> Result<Response, EbsError> {
    let index = parse_number(index, "BlockIndex")?;
    let token = token.ok_or_else(|| EbsError::InvalidRequest("blockToken is required.".into()))?;
    let (data, checksum) = context.control.get_snapshot_block(id, index, token).await?;
    let length = data.len().to_string();
    let mut response = Body::from(data).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in [("x-amz-Data-Length", length), ("x-amz-Checksum", checksum)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers.insert(
        "x-amz-Checksum-Algorithm",
        HeaderValue::from_static("SHA256"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons_follow_the_ebs_model() {
        let missing = EbsError::from(EngineError::not_found(
            Snapshot::KIND,
            "snap-0123456789abcdef0",
        ));
        assert_eq!(
            ebs_code(&missing),
            (StatusCode::NOT_FOUND, NOT_FOUND, Some("SNAPSHOT_NOT_FOUND"))
        );
        let reused = EbsError::from(EngineError::ClientTokenReused("t".into()));
        assert_eq!(ebs_code(&reused).1, "ConflictException");
        let header = EbsError::InvalidRequest("The header x is required.".into());
        assert_eq!(
            ebs_code(&header),
            (
                StatusCode::BAD_REQUEST,
                VALIDATION,
                Some("INVALID_PARAMETER_VALUE")
            )
        );
        let internal = EbsError::Control(control::Error::Internal("boom".into()));
        assert_eq!(ebs_code(&internal).1, "InternalServerException");
    }
}
