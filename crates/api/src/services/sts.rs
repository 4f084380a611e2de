//! AWS STS (Query protocol) over control's identity operations.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::service::{BoxFuture, ModelService, ServiceError};
use crate::ApiContext;

pub(crate) struct Sts;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StsError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
}

impl ServiceError for StsError {
    fn aws_code(&self) -> (StatusCode, &'static str) {
        match self {
            StsError::NotSupported(_) => (StatusCode::BAD_REQUEST, "UnsupportedOperation"),
        }
    }
}

impl ModelService for Sts {
    type Error = StsError;

    fn signing_name(&self) -> &'static str {
        "sts"
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        _caller: &'a awsproto::SigV4Auth,
        operation: &'a str,
        _input: Value,
    ) -> BoxFuture<'a, Result<Value, StsError>> {
        Box::pin(async move {
            match operation {
                "GetCallerIdentity" => {
                    let account = &context.control.config().account_id;
                    Ok(json!({
                        "UserId": account,
                        "Account": account,
                        "Arn": format!("arn:aws:iam::{account}:root"),
                    }))
                }
                other => Err(StsError::NotSupported(other.to_owned())),
            }
        })
    }
}
