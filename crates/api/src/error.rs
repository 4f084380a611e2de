//! AWS error codes and HTTP statuses: chosen here and nowhere else.

use axum::http::StatusCode;
use control::{Error as ControlError, ResourceKind};

/// An error as the client will see it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn invalid_value(message: impl Into<String>) -> ApiError {
        ApiError::bad_request("InvalidParameterValue", message)
    }
}

/// The `Invalid<Thing>.NotFound` family, by resource kind.
fn not_found_code(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::KeyPair => "InvalidKeyPair.NotFound",
        ResourceKind::Volume => "InvalidVolume.NotFound",
        ResourceKind::Snapshot => "InvalidSnapshot.NotFound",
        ResourceKind::Image => "InvalidAMIID.NotFound",
        ResourceKind::Instance => "InvalidInstanceID.NotFound",
        ResourceKind::ClientToken
        | ResourceKind::Role
        | ResourceKind::InstanceProfile
        | ResourceKind::TemporaryCredential => "InvalidParameterValue",
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        let message = error.to_string();
        let (status, code) = match &error {
            ControlError::NotFound { kind, .. } => (StatusCode::BAD_REQUEST, not_found_code(*kind)),
            ControlError::Duplicate {
                kind: ResourceKind::KeyPair,
                ..
            } => (StatusCode::BAD_REQUEST, "InvalidKeyPair.Duplicate"),
            ControlError::Duplicate { .. } => (StatusCode::BAD_REQUEST, "InvalidParameterValue"),
            ControlError::InvalidId(_) => (StatusCode::BAD_REQUEST, "InvalidID"),
            ControlError::InvalidParameterValue(_) => {
                (StatusCode::BAD_REQUEST, "InvalidParameterValue")
            }
            ControlError::InvalidParameterCombination(_) => {
                (StatusCode::BAD_REQUEST, "InvalidParameterCombination")
            }
            ControlError::MissingParameter(_) => (StatusCode::BAD_REQUEST, "MissingParameter"),
            ControlError::InvalidPaginationToken(_) => {
                (StatusCode::BAD_REQUEST, "InvalidPaginationToken")
            }
            ControlError::InvalidInstanceType(_) => {
                (StatusCode::BAD_REQUEST, "InvalidInstanceType")
            }
            ControlError::IdempotentParameterMismatch(_) => {
                (StatusCode::BAD_REQUEST, "IdempotentParameterMismatch")
            }
            ControlError::DryRunOperation => (StatusCode::PRECONDITION_FAILED, "DryRunOperation"),
            ControlError::TagLimitExceeded(_) => (StatusCode::BAD_REQUEST, "TagLimitExceeded"),
            ControlError::Unsupported(_) => (StatusCode::BAD_REQUEST, "UnsupportedOperation"),
            ControlError::InvalidKeyFormat(_) => (StatusCode::BAD_REQUEST, "InvalidKey.Format"),
            ControlError::InvalidZone(_) => (StatusCode::BAD_REQUEST, "InvalidZone.NotFound"),
            ControlError::IncorrectState(_) => (StatusCode::BAD_REQUEST, "IncorrectState"),
            ControlError::IncorrectModificationState(_) => {
                (StatusCode::BAD_REQUEST, "IncorrectModificationState")
            }
            ControlError::VolumeInUse(_) => (StatusCode::BAD_REQUEST, "VolumeInUse"),
            ControlError::SnapshotInUse(_) => (StatusCode::BAD_REQUEST, "InvalidSnapshot.InUse"),
            ControlError::DuplicateImageName(_) => {
                (StatusCode::BAD_REQUEST, "InvalidAMIName.Duplicate")
            }
            ControlError::InvalidAmiIdMalformed(_) => {
                (StatusCode::BAD_REQUEST, "InvalidAMIID.Malformed")
            }
            ControlError::InstanceLimitExceeded(_) => {
                (StatusCode::BAD_REQUEST, "InstanceLimitExceeded")
            }
            ControlError::IncorrectInstanceState(_) => {
                (StatusCode::BAD_REQUEST, "IncorrectInstanceState")
            }
            ControlError::ZoneMismatch(_) => {
                (StatusCode::BAD_REQUEST, "InvalidVolume.ZoneMismatch")
            }
            ControlError::InvalidAttachmentNotFound(_) => {
                (StatusCode::BAD_REQUEST, "InvalidAttachment.NotFound")
            }
            ControlError::OperationNotPermitted(_) => {
                (StatusCode::BAD_REQUEST, "OperationNotPermitted")
            }
            ControlError::Store(_) | ControlError::Internal(_) => {
                tracing::error!(%error, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "InternalError")
            }
        };
        ApiError::new(status, code, message)
    }
}

impl From<ec2model::DecodeError> for ApiError {
    fn from(error: ec2model::DecodeError) -> ApiError {
        ApiError::bad_request(error.aws_code(), error.to_string())
    }
}

impl From<awsproto::AuthError> for ApiError {
    fn from(error: awsproto::AuthError) -> ApiError {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        ApiError::new(status, error.aws_code(), error.to_string())
    }
}
