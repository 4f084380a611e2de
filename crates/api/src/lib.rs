//! The HTTP front door: SigV4 authentication, then the router. One endpoint serves every
//! service; the service is read from the SigV4 credential scope and answers behind the one
//! [`service::Service`] trait, in its own protocol.

mod actions;
mod auth;
mod ebs;
mod ec2_for_autoscaling;
mod ec2_for_elbv2;
mod elbv2_for_autoscaling;
mod encoding;
mod error;
pub mod prometheus;
mod service;
mod services;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use control::Control;

pub use ec2_for_autoscaling::Ec2ForAutoScaling;
pub use ec2_for_elbv2::Ec2ForElbv2;
pub use elbv2_for_autoscaling::Elbv2ForAutoScaling;
pub use error::ApiError;
pub use services::ssm::Ec2Images;

/// Requests larger than this are refused with 413, before any parsing.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything a request handler needs.
pub struct ApiContext {
    pub control: Arc<Control>,
    /// Requests by action and status, for `GET /_nimbus/metrics`.
    pub requests: prometheus::RequestMetrics,
    /// CloudWatch: its store, rules and alarms.
    pub monitoring: Arc<monitoring::Monitoring>,
    /// Auto Scaling: its groups and activities.
    pub autoscaling: Arc<autoscaling::AutoScaling>,
    /// Elastic Load Balancing: its balancers, groups, listeners and rules.
    pub elbv2: Arc<elbv2::Elbv2>,
    /// SSM Parameter Store: the account's parameters and the public image aliases.
    pub ssm: Arc<ssm::Ssm>,
    /// How every reconciler keeps up, for `GET /_nimbus/metrics`.
    pub passes: Arc<engine::Passes>,
}

pub fn router(context: Arc<ApiContext>) -> Router {
    let scraped = context.clone();
    Router::new()
        .route("/_nimbus/health", axum::routing::get(health))
        .route(
            "/_nimbus/metrics",
            axum::routing::get(move || async move { metrics(&scraped) }),
        )
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

fn metrics(context: &ApiContext) -> Response {
    let text = prometheus::render(
        &context.requests,
        &context.passes.figures(),
        &context.control.host_stats(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn handle(context: &ApiContext, request: Request<Body>) -> Response {
    let started = Instant::now();
    let request_id = nimbus_core::new_uuid();
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
    context
        .requests
        .observe(&action, response.status().as_u16(), started.elapsed());
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
    let authenticated = match auth::authenticate(context, &request) {
        Ok(authenticated) => authenticated,
        Err(error) => {
            // The answer goes in the protocol of the service the request was signed for
            // (EC2's when no credential scope is readable).
            let signed_for = awsproto::parse_sigv4(&request)
                .map(|auth| auth.service)
                .unwrap_or_else(|_| "ec2".to_owned());
            let response = match service_for(&signed_for) {
                Some(service) => service.error(&request, request_id, error),
                None => service::error_in_protocol(&signed_for, &request, request_id, &error),
            };
            return ("-".to_owned(), response);
        }
    };
    tracing::debug!(caller = %authenticated.caller.arn, "authenticated");
    let signing_name = authenticated.auth.service.as_str();
    let inflated;
    let request = if encoding::is_gzipped(headers) {
        inflated = match encoding::gunzip(body) {
            Ok(inflated) => inflated,
            Err(error) => {
                let response = match service_for(signing_name) {
                    Some(service) => service.error(&request, request_id, error),
                    None => service::error_in_protocol(signing_name, &request, request_id, &error),
                };
                return ("-".to_owned(), response);
            }
        };
        awsproto::HttpRequestParts {
            body: &inflated,
            ..request
        }
    } else {
        request
    };
    let request = service::ServiceRequest {
        method,
        uri,
        headers,
        wire: &request,
        request_id,
        caller: &authenticated.caller,
    };
    match service_for(signing_name) {
        Some(service) => service.handle(context, &request).await,
        None => service::unknown_service(signing_name, &request),
    }
}

/// The service signed for, by SigV4 signing name.
fn service_for(signing_name: &str) -> Option<&'static dyn service::Service> {
    Some(match signing_name {
        "ec2" => &service::Ec2,
        "ebs" => &service::Ebs,
        "sts" => &services::sts::Sts,
        "iam" => &services::iam::Iam,
        "monitoring" => &services::monitoring::CloudWatch,
        "autoscaling" => &services::autoscaling::AutoScalingService,
        "elasticloadbalancing" => &services::elbv2::Elbv2Service,
        "ssm" => &services::ssm::SsmService,
        _ => return None,
    })
}
