//! The HTTP front door: SigV4 authentication, the EC2 Query protocol, action dispatch and the
//! AWS error envelope. One endpoint serves every service; the service is read from the SigV4
//! credential scope.

mod actions;
mod auth;
mod ebs;
mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use control::Control;

pub use error::ApiError;

/// Requests larger than this are refused with 413, before any parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a request handler needs.
pub struct ApiContext {
    pub control: Arc<Control>,
}

pub fn router(context: Arc<ApiContext>) -> Router {
    Router::new()
        .route("/_nimbus/health", axum::routing::get(health))
        .fallback(move |request: Request<Body>| {
            let context = context.clone();
            async move { handle(&context, request).await }
        })
}

async fn health() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// A fresh request ID in the UUID form AWS uses.
fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

async fn handle(context: &ApiContext, request: Request<Body>) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, body) = request.into_parts();
    let (action, response) = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => {
            dispatch(
                context,
                &parts.method,
                &parts.uri,
                &parts.headers,
                &body,
                &request_id,
            )
            .await
        }
        Err(_) => (
            "-".to_owned(),
            error_response(
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    format!("Request body must be at most {MAX_BODY_BYTES} bytes."),
                ),
                &request_id,
            ),
        ),
    };
    tracing::info!(
        action = %action,
        status = response.status().as_u16(),
        duration_us = started.elapsed().as_micros() as u64,
        request_id = %request_id,
        "request"
    );
    response
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml;charset=UTF-8")],
        xml,
    )
        .into_response()
}

fn error_response(error: ApiError, request_id: &str) -> Response {
    xml_response(
        error.status,
        awsproto::ec2_error(&error.code, &error.message, request_id),
    )
}

/// Authenticates and runs one request; returns the action name (for the log) with the answer.
async fn dispatch(
    context: &ApiContext,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> (String, Response) {
    let header_pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let raw_query = uri.query().unwrap_or("");
    let request = awsproto::HttpRequestParts {
        method: method.as_str(),
        raw_path: uri.path(),
        raw_query,
        headers: &header_pairs,
        body,
    };
    let auth = match auth::authenticate(context, &request) {
        Ok(authenticated) => {
            tracing::debug!(caller = %authenticated.caller.arn, "authenticated");
            authenticated.auth
        }
        Err(error) => return ("-".to_owned(), error_response(error, request_id)),
    };
    match auth.service.as_str() {
        "ec2" => match actions::ec2_query(context, method, raw_query, body, request_id).await {
            Ok((action, xml)) => (action, xml_response(StatusCode::OK, xml)),
            Err((action, error)) => (action, error_response(error, request_id)),
        },
        "ebs" => ebs::handle(context, method, uri.path(), raw_query, headers, body).await,
        other => (
            "-".to_owned(),
            error_response(
                ApiError::bad_request(
                    "UnsupportedOperation",
                    format!("The service '{other}' is not supported by nimbus."),
                ),
                request_id,
            ),
        ),
    }
}
