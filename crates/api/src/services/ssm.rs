//! SSM Parameter Store (`ssm`, AWS JSON 1.1) over the `ssm` crate, and EC2's images as
//! Parameter Store reads them.

use std::sync::Arc;

use axum::http::StatusCode;
use control::credentials::Caller;
use control::images::{ImageQueries, ImageState};
use control::{Control, Tables};
use serde_json::Value;
use ssm::{Ssm, SsmError};

use crate::service::{honoured, BoxFuture, ModelService, ServiceError};
use crate::ApiContext;

pub(crate) struct SsmService;

/// Why a Parameter Store call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SsmCallError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
    /// A modeled parameter nimbus does not honour, named.
    #[error("{0}")]
    NotHonoured(String),
    #[error(transparent)]
    Ssm(#[from] SsmError),
}

impl ServiceError for SsmCallError {
    /// Parameter Store's codes: the one place they are named.
    fn aws_code(&self) -> (StatusCode, &'static str) {
        let bad = StatusCode::BAD_REQUEST;
        let error = match self {
            SsmCallError::NotSupported(_) | SsmCallError::NotHonoured(_) => {
                return (bad, "UnsupportedOperation")
            }
            SsmCallError::Ssm(error) => error,
        };
        match error {
            SsmError::Validation(_) => (bad, "ValidationException"),
            SsmError::AccessDenied(_) => (bad, "AccessDeniedException"),
            SsmError::ParameterNotFound(_) => (bad, "ParameterNotFound"),
            SsmError::ParameterAlreadyExists => (bad, "ParameterAlreadyExists"),
            SsmError::ParameterVersionNotFound(_) => (bad, "ParameterVersionNotFound"),
            SsmError::ParameterVersionLabelLimitExceeded(_) => {
                (bad, "ParameterVersionLabelLimitExceeded")
            }
            SsmError::ParameterMaxVersionLimitExceeded(_) => {
                (bad, "ParameterMaxVersionLimitExceeded")
            }
            SsmError::ParameterLimitExceeded(_) => (bad, "ParameterLimitExceeded"),
            SsmError::ParameterPatternMismatch(_) => (bad, "ParameterPatternMismatchException"),
            SsmError::InvalidAllowedPattern(_) => (bad, "InvalidAllowedPatternException"),
            SsmError::HierarchyLevelLimitExceeded(_) => {
                (bad, "HierarchyLevelLimitExceededException")
            }
            SsmError::InvalidFilterKey(_) => (bad, "InvalidFilterKey"),
            SsmError::InvalidFilterOption(_) => (bad, "InvalidFilterOption"),
            SsmError::InvalidFilterValue(_) => (bad, "InvalidFilterValue"),
            SsmError::InvalidNextToken(_) => (bad, "InvalidNextToken"),
            SsmError::InvalidResourceId(_) => (bad, "InvalidResourceId"),
            SsmError::InvalidResourceType(_) => (bad, "InvalidResourceType"),
            SsmError::TooManyTags(_) => (bad, "TooManyTagsError"),
            SsmError::Unsupported(_) => (bad, "UnsupportedOperation"),
            SsmError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
        }
    }
}

fn params<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, SsmCallError> {
    honoured(input).map_err(SsmCallError::NotHonoured)
}

fn run(ssm: &Ssm, caller: &str, operation: &str, input: Value) -> Result<Value, SsmCallError> {
    let output = match operation {
        "PutParameter" => ssm.put_parameter(params(input)?, caller),
        "GetParameter" => ssm.get_parameter(params(input)?),
        "GetParameters" => ssm.get_parameters(params(input)?),
        "GetParametersByPath" => ssm.get_parameters_by_path(params(input)?),
        "GetParameterHistory" => ssm.get_parameter_history(params(input)?),
        "DescribeParameters" => ssm.describe_parameters(params(input)?),
        "DeleteParameter" => ssm.delete_parameter(params(input)?),
        "DeleteParameters" => ssm.delete_parameters(params(input)?),
        "LabelParameterVersion" => ssm.label_parameter_version(params(input)?),
        "UnlabelParameterVersion" => ssm.unlabel_parameter_version(params(input)?),
        "AddTagsToResource" => ssm.add_tags(params(input)?),
        "RemoveTagsFromResource" => ssm.remove_tags(params(input)?),
        "ListTagsForResource" => ssm.list_tags(params(input)?),
        other => return Err(SsmCallError::NotSupported(other.to_owned())),
    };
    Ok(output?)
}

impl ModelService for SsmService {
    type Error = SsmCallError;

    fn signing_name(&self) -> &'static str {
        "ssm"
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, SsmCallError>> {
        Box::pin(async move {
            let ssm = context.ssm.clone();
            let (caller, operation) = (caller.arn.clone(), operation.to_owned());
            // A write commits to SQLite: keep it off the async workers.
            tokio::task::spawn_blocking(move || run(&ssm, &caller, &operation, input))
                .await
                .unwrap_or_else(|e| {
                    Err(SsmError::Storage(format!("the SSM call panicked: {e}")).into())
                })
        })
    }
}

/// EC2's images, as Parameter Store's public parameters and `aws:ec2:image` values read them.
pub struct Ec2Images(pub Arc<Control>);

impl ssm::Images for Ec2Images {
    fn by_name(&self, name: &str) -> Option<(String, i64)> {
        let state = self.0.read();
        let image = state.image_by_name(name)?;
        (image.state == ImageState::Available)
            .then(|| (image.image_id.clone(), image.creation_time))
    }

    fn exists(&self, image_id: &str) -> bool {
        self.0.read().images().contains_key(image_id)
    }
}
