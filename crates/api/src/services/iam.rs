//! AWS IAM roles and instance profiles (Query protocol) over control's identity operations.

use axum::http::StatusCode;
use serde_json::Value;

use crate::service::{BoxFuture, ModelService, ServiceError};
use crate::ApiContext;

pub(crate) struct Iam;

#[derive(Debug, thiserror::Error)]
pub(crate) enum IamError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
}

impl ServiceError for IamError {
    fn aws_code(&self) -> (StatusCode, &'static str) {
        match self {
            IamError::NotSupported(_) => (StatusCode::BAD_REQUEST, "UnsupportedOperation"),
        }
    }
}

impl ModelService for Iam {
    type Error = IamError;

    fn signing_name(&self) -> &'static str {
        "iam"
    }

    fn call<'a>(
        &'a self,
        _context: &'a ApiContext,
        _caller: &'a awsproto::SigV4Auth,
        operation: &'a str,
        _input: Value,
    ) -> BoxFuture<'a, Result<Value, IamError>> {
        Box::pin(async move { Err(IamError::NotSupported(operation.to_owned())) })
    }
}
