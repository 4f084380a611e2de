//! CloudWatch (`monitoring`: Smithy RPC v2 CBOR, JSON 1.0 and Query) over the `monitoring`
//! crate. CloudWatch is `awsQueryCompatible`: its codes are the Query ones in every protocol.

use awsproto::{InputError, RequestError};
use axum::http::StatusCode;
use control::credentials::Caller;
use monitoring::{Monitoring, MonitoringError};
use serde_json::Value;

use crate::service::{honoured, BoxFuture, ModelService, ServiceError};
use crate::ApiContext;

pub(crate) struct CloudWatch;

/// Why a CloudWatch call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CloudWatchError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
    /// A modeled parameter nimbus does not honour, named.
    #[error("{0}")]
    NotHonoured(String),
    #[error(transparent)]
    Monitoring(#[from] MonitoringError),
}

impl ServiceError for CloudWatchError {
    /// CloudWatch's codes: the one place they are named.
    fn aws_code(&self) -> (StatusCode, &'static str) {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            CloudWatchError::NotSupported(_) => (bad, "UnsupportedOperation"),
            CloudWatchError::NotHonoured(_) => (bad, "InvalidParameterValue"),
            CloudWatchError::Monitoring(error) => match error {
                MonitoringError::InvalidParameterValue(_) => (bad, "InvalidParameterValue"),
                MonitoringError::InvalidParameterCombination(_) => {
                    (bad, "InvalidParameterCombination")
                }
                MonitoringError::MissingParameter(_) => (bad, "MissingParameter"),
                MonitoringError::Validation(_) => (bad, "ValidationError"),
                MonitoringError::ResourceNotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFound"),
                MonitoringError::InvalidNextToken(_) => (bad, "InvalidNextToken"),
                MonitoringError::LimitExceeded(_) => (bad, "LimitExceeded"),
                MonitoringError::Storage(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "InternalServiceError")
                }
            },
        }
    }
}

fn params<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, CloudWatchError> {
    honoured(input).map_err(CloudWatchError::NotHonoured)
}

fn run(cloudwatch: &Monitoring, operation: &str, input: Value) -> Result<Value, CloudWatchError> {
    let output = match operation {
        "PutMetricData" => cloudwatch.put_metric_data(params(input)?),
        "GetMetricData" => cloudwatch.get_metric_data(params(input)?),
        "GetMetricStatistics" => cloudwatch.get_metric_statistics(params(input)?),
        "ListMetrics" => cloudwatch.list_metrics(params(input)?),
        "PutMetricAlarm" => cloudwatch.put_metric_alarm(params(input)?),
        "DescribeAlarms" => cloudwatch.describe_alarms(params(input)?),
        "DescribeAlarmsForMetric" => cloudwatch.describe_alarms_for_metric(params(input)?),
        "DeleteAlarms" => cloudwatch.delete_alarms(params(input)?),
        "SetAlarmState" => cloudwatch.set_alarm_state(params(input)?),
        "EnableAlarmActions" => cloudwatch.set_actions_enabled(params(input)?, true),
        "DisableAlarmActions" => cloudwatch.set_actions_enabled(params(input)?, false),
        "DescribeAlarmHistory" => cloudwatch.describe_alarm_history(params(input)?),
        other => return Err(CloudWatchError::NotSupported(other.to_owned())),
    };
    Ok(output?)
}

impl ModelService for CloudWatch {
    type Error = CloudWatchError;

    fn signing_name(&self) -> &'static str {
        "monitoring"
    }

    /// Values that do not fit their shape (NaN and infinities included) are CloudWatch's
    /// `InvalidParameterValue` in every protocol; a missing member is `MissingParameter`.
    fn decode_error_code(
        &self,
        failure: &RequestError,
        protocol: awsproto::Protocol,
    ) -> &'static str {
        match failure {
            RequestError::Input(InputError::InvalidValue(_) | InputError::Constraint(_)) => {
                "InvalidParameterValue"
            }
            RequestError::Input(InputError::MissingMember(_)) => "MissingParameter",
            other => other.aws_code(protocol),
        }
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        _caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, CloudWatchError>> {
        Box::pin(async move {
            let monitoring = context.monitoring.clone();
            let operation = operation.to_owned();
            // SQLite work (a commit per PutMetricData) stays off the async workers.
            tokio::task::spawn_blocking(move || run(&monitoring, &operation, input))
                .await
                .unwrap_or_else(|e| {
                    Err(
                        MonitoringError::Storage(format!("the CloudWatch call panicked: {e}"))
                            .into(),
                    )
                })
        })
    }
}
