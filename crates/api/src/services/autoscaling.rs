//! Auto Scaling (`autoscaling`, AWS Query) over the `autoscaling` crate.

use autoscaling::{AutoScaling, AutoScalingError, Move};
use axum::http::StatusCode;
use control::credentials::Caller;
use serde_json::{json, Value};

use crate::service::{honoured, BoxFuture, ModelService, ServiceError};
use crate::ApiContext;

pub(crate) struct AutoScalingService;

/// Why an Auto Scaling call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AutoScalingCallError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
    /// A modeled parameter nimbus does not honour, named.
    #[error("{0}")]
    NotHonoured(String),
    #[error(transparent)]
    AutoScaling(#[from] AutoScalingError),
}

impl ServiceError for AutoScalingCallError {
    /// Auto Scaling's codes: the one place they are named.
    fn aws_code(&self) -> (StatusCode, &'static str) {
        let bad = StatusCode::BAD_REQUEST;
        match self {
            AutoScalingCallError::NotSupported(_) => (bad, "UnsupportedOperation"),
            AutoScalingCallError::NotHonoured(_) => (bad, "ValidationError"),
            AutoScalingCallError::AutoScaling(error) => match error {
                AutoScalingError::Validation(_) => (bad, "ValidationError"),
                AutoScalingError::AlreadyExists(_) => (bad, "AlreadyExists"),
                AutoScalingError::ResourceInUse(_) => (bad, "ResourceInUse"),
                AutoScalingError::ScalingActivityInProgress(_) => {
                    (bad, "ScalingActivityInProgress")
                }
                AutoScalingError::LimitExceeded(_) => (bad, "LimitExceeded"),
                AutoScalingError::InstanceRefreshInProgress(_) => {
                    (bad, "InstanceRefreshInProgress")
                }
                AutoScalingError::ActiveInstanceRefreshNotFound(_) => {
                    (bad, "ActiveInstanceRefreshNotFound")
                }
                AutoScalingError::InvalidNextToken(_) => (bad, "InvalidNextToken"),
                AutoScalingError::Storage(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
                }
            },
        }
    }
}

fn params<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, AutoScalingCallError> {
    honoured(input).map_err(AutoScalingCallError::NotHonoured)
}

/// A group's Classic Load Balancers: none, truthfully, since nimbus has none to attach.
fn no_classic_balancers(
    service: &AutoScaling,
    input: &Value,
) -> Result<Value, AutoScalingCallError> {
    let name = input["AutoScalingGroupName"].as_str().unwrap_or_default();
    service.require_group(name)?;
    Ok(json!({ "LoadBalancers": [] }))
}

async fn run(
    service: &AutoScaling,
    operation: &str,
    input: Value,
) -> Result<Value, AutoScalingCallError> {
    let output = match operation {
        "CreateAutoScalingGroup" => service.create_group(params(input)?).await,
        "UpdateAutoScalingGroup" => service.update_group(params(input)?).await,
        "DeleteAutoScalingGroup" => service.delete_group(params(input)?),
        "DescribeAutoScalingGroups" => service.describe_groups(params(input)?),
        "DescribeAutoScalingInstances" => service.describe_instances(params(input)?),
        "SetDesiredCapacity" => service.set_desired_capacity(params(input)?),
        "TerminateInstanceInAutoScalingGroup" => service.terminate_instance(params(input)?),
        "SetInstanceHealth" => service.set_instance_health(params(input)?),
        "SetInstanceProtection" => service.set_instance_protection(params(input)?),
        "DescribeScalingActivities" => service.describe_activities(params(input)?),
        "SuspendProcesses" => service.set_processes(params(input)?, true),
        "ResumeProcesses" => service.set_processes(params(input)?, false),
        "DescribeScalingProcessTypes" => Ok(service.describe_process_types()),
        "CreateOrUpdateTags" => service.change_tags(params(input)?, false),
        "DeleteTags" => service.change_tags(params(input)?, true),
        "DescribeTags" => service.describe_tags(params(input)?),
        "EnableMetricsCollection" => service.metrics_collection(params(input)?, true),
        "DisableMetricsCollection" => service.metrics_collection(params(input)?, false),
        "DescribeMetricCollectionTypes" => Ok(service.describe_metric_collection_types()),
        "PutScalingPolicy" => service.put_policy(params(input)?),
        "DescribePolicies" => service.describe_policies(params(input)?),
        "DeletePolicy" => service.delete_policy(params(input)?),
        "ExecutePolicy" => service.execute_policy(params(input)?),
        "AttachInstances" => service.attach_instances(params(input)?).await,
        "DetachInstances" => service.move_instances(params(input)?, Move::Detach).await,
        "EnterStandby" => {
            service
                .move_instances(params(input)?, Move::EnterStandby)
                .await
        }
        "ExitStandby" => {
            service
                .move_instances(params(input)?, Move::ExitStandby)
                .await
        }
        "PutScheduledUpdateGroupAction" => service.put_scheduled_action(params(input)?),
        "DescribeScheduledActions" => service.describe_scheduled_actions(params(input)?),
        "DeleteScheduledAction" => service.delete_scheduled_action(params(input)?),
        "StartInstanceRefresh" => service.start_refresh(params(input)?).await,
        "DescribeInstanceRefreshes" => service.describe_refreshes(params(input)?),
        "CancelInstanceRefresh" => {
            let name = input["AutoScalingGroupName"].as_str().unwrap_or_default();
            service.cancel_refresh(name)
        }
        "PutLifecycleHook" => service.put_hook(params(input)?),
        "DescribeLifecycleHooks" => service.describe_hooks(params(input)?),
        "DeleteLifecycleHook" => service.delete_hook(params(input)?),
        "CompleteLifecycleAction" => service.lifecycle_action(params(input)?, true),
        "RecordLifecycleActionHeartbeat" => service.lifecycle_action(params(input)?, false),
        "DescribeLoadBalancers" => {
            return no_classic_balancers(service, &input);
        }
        "DescribeLoadBalancerTargetGroups" => service.describe_target_groups(params(input)?),
        "DescribeTrafficSources" => service.describe_traffic_sources(params(input)?),
        "AttachLoadBalancerTargetGroups" => service.attach_target_groups(params(input)?).await,
        "DetachLoadBalancerTargetGroups" => service.detach_target_groups(params(input)?).await,
        "AttachTrafficSources" => service.attach_traffic_sources(params(input)?).await,
        "DetachTrafficSources" => service.detach_traffic_sources(params(input)?).await,
        "PutWarmPool" => service.put_warm_pool(params(input)?).await,
        "DescribeWarmPool" => service.describe_warm_pool(params(input)?),
        "DeleteWarmPool" => service.delete_warm_pool(params(input)?),
        other => return Err(AutoScalingCallError::NotSupported(other.to_owned())),
    };
    Ok(output?)
}

impl ModelService for AutoScalingService {
    type Error = AutoScalingCallError;

    fn signing_name(&self) -> &'static str {
        "autoscaling"
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        _caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, AutoScalingCallError>> {
        Box::pin(run(&context.autoscaling, operation, input))
    }
}
