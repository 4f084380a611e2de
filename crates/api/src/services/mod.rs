//! Services served from their botocore models through [`crate::service::ModelService`].

pub(crate) mod autoscaling;
pub(crate) mod elbv2;
pub(crate) mod iam;
pub(crate) mod monitoring;
pub mod ssm;
pub(crate) mod sts;

use axum::http::StatusCode;
use control::iam::IdentityError;

use crate::service::ServiceError;

/// Why an IAM or STS call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IdentityServiceError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
    /// A modeled parameter nimbus does not honour, named.
    #[error("{0}")]
    NotHonoured(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

impl ServiceError for IdentityServiceError {
    /// IAM's and STS's codes: the one place they are named.
    fn aws_code(&self) -> (StatusCode, &'static str) {
        match self {
            IdentityServiceError::NotSupported(_) => {
                (StatusCode::BAD_REQUEST, "UnsupportedOperation")
            }
            IdentityServiceError::NotHonoured(_) => (StatusCode::BAD_REQUEST, "ValidationError"),
            IdentityServiceError::Identity(error) => identity_code(error),
        }
    }
}

/// Reads a call's input into the parameters nimbus honours (see [`crate::service::honoured`]).
fn params<T: serde::de::DeserializeOwned>(
    input: serde_json::Value,
) -> Result<T, IdentityServiceError> {
    crate::service::honoured(input).map_err(IdentityServiceError::NotHonoured)
}

fn identity_code(error: &IdentityError) -> (StatusCode, &'static str) {
    match error {
        IdentityError::NoSuchEntity(_) => (StatusCode::NOT_FOUND, "NoSuchEntity"),
        IdentityError::EntityAlreadyExists(_) => (StatusCode::CONFLICT, "EntityAlreadyExists"),
        IdentityError::DeleteConflict(_) => (StatusCode::CONFLICT, "DeleteConflict"),
        IdentityError::LimitExceeded(_) => (StatusCode::CONFLICT, "LimitExceeded"),
        IdentityError::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationError"),
        IdentityError::MalformedPolicyDocument(_) => {
            (StatusCode::BAD_REQUEST, "MalformedPolicyDocument")
        }
        IdentityError::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDenied"),
        IdentityError::Control(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailure"),
    }
}
