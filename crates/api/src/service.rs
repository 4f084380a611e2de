//! One handler trait every AWS service sits behind, and the adapter that serves a service from
//! its botocore model: decode in the protocol the client spoke → [`ModelService::call`] with
//! the input keyed by member names → encode the output or the error in that same protocol.
//!
//! A service names its own AWS codes in one `aws_code()` ([`ServiceError`]); the adapter names
//! only the protocol's codes for requests that never reach the service (unknown operation,
//! malformed input).

use std::future::Future;
use std::pin::Pin;

use awsproto::{Answer, ErrorStyle, Protocol, RequestError, ServiceModel, WireError};
use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use control::credentials::Caller;
use serde_json::Value;

use crate::{actions, ebs, error_response, xml_response, ApiContext, ApiError};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The action name (for the request log) and the answer.
pub(crate) type Handled = (String, Response);

/// An authenticated request, as every service receives it.
pub(crate) struct ServiceRequest<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// The request as the protocol codecs read it (headers as text, the body).
    pub wire: &'a awsproto::HttpRequestParts<'a>,
    pub request_id: &'a str,
    pub caller: &'a Caller,
}

pub(crate) trait Service: Sync {
    fn handle<'a>(
        &'a self,
        context: &'a ApiContext,
        request: &'a ServiceRequest<'a>,
    ) -> BoxFuture<'a, Handled>;

    /// `error` (one the request never reached the service with, such as a failed signature)
    /// in this service's protocol; EC2's envelope unless the service says otherwise.
    fn error(
        &self,
        _request: &awsproto::HttpRequestParts,
        request_id: &str,
        error: ApiError,
    ) -> Response {
        error_response(error, request_id)
    }
}

/// An error a service answers: its AWS code and HTTP status, chosen in one place per service.
pub(crate) trait ServiceError: std::fmt::Display {
    fn aws_code(&self) -> (StatusCode, &'static str);
}

/// A service served from its model by [`Service`]'s blanket implementation.
pub(crate) trait ModelService: Sync {
    type Error: ServiceError + Send;

    /// The SigV4 signing name, which is also the name of its model in `awsmodel`.
    fn signing_name(&self) -> &'static str;

    /// The code of a request that could not be decoded; the protocol's own by default.
    fn decode_error_code(&self, failure: &RequestError, protocol: Protocol) -> &'static str {
        failure.aws_code(protocol)
    }

    /// Runs `operation` (one the model carries) on `input`, keyed by member names; the output
    /// is keyed by member names too.
    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, Self::Error>>;
}

fn into_response(answer: Answer) -> Response {
    let mut builder = Response::builder().status(answer.status);
    for (name, value) in answer.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::from(answer.body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn style(model: &ServiceModel) -> ErrorStyle<'_> {
    ErrorStyle {
        xml_namespace: model.metadata.xml_namespace.as_deref(),
        query_compatible: model.metadata.aws_query_compatible.is_some(),
    }
}

/// The protocol the client spoke, when the model lists it; else the model's own.
fn protocol_of(model: &ServiceModel, request: &awsproto::HttpRequestParts) -> Protocol {
    let listed = |protocol: Protocol| {
        let mut names = model.metadata.protocols.iter().map(String::as_str);
        let name = match protocol {
            Protocol::Query => "query",
            Protocol::Json(_) => "json",
            Protocol::RpcV2Cbor => "smithy-rpc-v2-cbor",
            Protocol::RestJson => "rest-json",
            Protocol::RestXml => "rest-xml",
            Protocol::Ec2 => "ec2",
        };
        names.any(|n| n == name) || model.metadata.protocol == name
    };
    let own = Protocol::from_model(
        &model.metadata.protocol,
        model.metadata.json_version.as_deref(),
    )
    .unwrap_or(Protocol::Query);
    awsproto::detect(request)
        .filter(|protocol| listed(*protocol))
        .unwrap_or(own)
}

impl<S: ModelService> Service for S {
    fn handle<'a>(
        &'a self,
        context: &'a ApiContext,
        request: &'a ServiceRequest<'a>,
    ) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            let Some(model) = awsmodel::service(self.signing_name()) else {
                return unknown_service(self.signing_name(), request);
            };
            let wire = request.wire;
            let protocol = protocol_of(model, wire);
            let error = |status: StatusCode, code: &str, message: &str| {
                let error = WireError {
                    status: status.as_u16(),
                    code,
                    message,
                };
                let answer =
                    awsproto::encode_error(protocol, style(model), &error, request.request_id);
                into_response(answer)
            };
            let decoded = match awsproto::decode(model, protocol, wire) {
                Ok(decoded) => decoded,
                Err(failure) => {
                    let code = self.decode_error_code(&failure, protocol);
                    let message = failure.to_string();
                    let action = match &failure {
                        RequestError::NotSupported(name) => name.clone(),
                        _ => "-".to_owned(),
                    };
                    return (action, error(StatusCode::BAD_REQUEST, code, &message));
                }
            };
            let operation = decoded.operation;
            let action = operation.name.to_owned();
            match self
                .call(context, request.caller, operation.name, decoded.input)
                .await
            {
                Ok(output) => {
                    let answer = awsproto::encode_output(
                        model,
                        protocol,
                        &operation,
                        &output,
                        request.request_id,
                    );
                    (action, into_response(answer))
                }
                Err(failure) => {
                    let (status, code) = failure.aws_code();
                    (action, error(status, code, &failure.to_string()))
                }
            }
        })
    }

    fn error(
        &self,
        request: &awsproto::HttpRequestParts,
        request_id: &str,
        error: ApiError,
    ) -> Response {
        error_in_protocol(self.signing_name(), request, request_id, &error)
    }
}

/// Reads a service's input into the parameters it honours. A modeled parameter the service
/// does not honour is refused by name (serde's `deny_unknown_fields`), never ignored.
pub(crate) fn honoured<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, String> {
    serde_json::from_value(input)
        .map_err(|e| format!("This request has a parameter nimbus does not support: {e}."))
}

/// EC2 Query (`api/src/actions`).
pub(crate) struct Ec2;

impl Service for Ec2 {
    fn handle<'a>(
        &'a self,
        context: &'a ApiContext,
        request: &'a ServiceRequest<'a>,
    ) -> BoxFuture<'a, Handled> {
        Box::pin(async move {
            let raw_query = request.uri.query().unwrap_or("");
            let result = actions::ec2_query(
                context,
                request.method,
                raw_query,
                request.wire.body,
                request.request_id,
                request.caller,
            )
            .await;
            match result {
                Ok((action, xml)) => (action, xml_response(StatusCode::OK, xml)),
                Err((action, error)) => (action, error_response(error, request.request_id)),
            }
        })
    }
}

/// The EBS direct APIs (`api/src/ebs.rs`, REST-JSON).
pub(crate) struct Ebs;

impl Service for Ebs {
    fn handle<'a>(
        &'a self,
        context: &'a ApiContext,
        request: &'a ServiceRequest<'a>,
    ) -> BoxFuture<'a, Handled> {
        Box::pin(ebs::handle(
            context,
            request.method,
            request.uri.path(),
            request.uri.query().unwrap_or(""),
            request.headers,
            request.wire.body,
        ))
    }
}

/// A service nimbus does not have (ssm, kms, sqs, s3…): `UnsupportedOperation` in that
/// service's own protocol, so that its client shows the code.
pub(crate) fn unknown_service(signing_name: &str, request: &ServiceRequest) -> Handled {
    let message = format!("The service '{signing_name}' is not supported by nimbus.");
    let error = ApiError::bad_request("UnsupportedOperation", message);
    let response = error_in_protocol(signing_name, request.wire, request.request_id, &error);
    ("-".to_owned(), response)
}

/// `error` in the protocol the request speaks, or else the one the signed-for service's model
/// prefers (AWS Query when nimbus knows neither).
pub(crate) fn error_in_protocol(
    signing_name: &str,
    request: &awsproto::HttpRequestParts,
    request_id: &str,
    error: &ApiError,
) -> Response {
    let known = awsmodel::wire(signing_name);
    let protocol = awsproto::detect(request)
        .or(known.as_ref().map(|wire| wire.protocol))
        .unwrap_or(Protocol::Query);
    let style = known.map(|wire| wire.style).unwrap_or_default();
    let error = WireError {
        status: error.status.as_u16(),
        code: &error.code,
        message: &error.message,
    };
    into_response(awsproto::encode_error(protocol, style, &error, request_id))
}
