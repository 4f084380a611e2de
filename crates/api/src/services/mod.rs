//! Services served from their botocore models through [`crate::service::ModelService`].

pub(crate) mod iam;
pub(crate) mod sts;

use axum::http::StatusCode;
use control::iam::IdentityError;

/// IAM's and STS's codes for control's identity errors: the one place they are named.
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
