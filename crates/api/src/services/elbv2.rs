//! Elastic Load Balancing v2 (`elasticloadbalancing`, AWS Query) over the `elbv2` crate.

use axum::http::StatusCode;
use control::credentials::Caller;
use elbv2::{Elbv2, Elbv2Error};
use serde::Deserialize;
use serde_json::Value;

use crate::service::{honoured, BoxFuture, ModelService, ServiceError};
use crate::ApiContext;

pub(crate) struct Elbv2Service;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Elbv2CallError {
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
    /// A modeled parameter nimbus does not honour, named.
    #[error("{0}")]
    NotHonoured(String),
    #[error(transparent)]
    Elbv2(#[from] Elbv2Error),
}

impl ServiceError for Elbv2CallError {
    /// Elastic Load Balancing's codes: the one place they are named.
    fn aws_code(&self) -> (StatusCode, &'static str) {
        let bad = StatusCode::BAD_REQUEST;
        let error = match self {
            Elbv2CallError::NotSupported(_) => return (bad, "UnsupportedOperation"),
            Elbv2CallError::NotHonoured(_) => return (bad, "ValidationError"),
            Elbv2CallError::Elbv2(error) => error,
        };
        let code = match error {
            Elbv2Error::ValidationError(_) => "ValidationError",
            Elbv2Error::LoadBalancerNotFound(_) => "LoadBalancerNotFound",
            Elbv2Error::TargetGroupNotFound(_) => "TargetGroupNotFound",
            Elbv2Error::ListenerNotFound(_) => "ListenerNotFound",
            Elbv2Error::RuleNotFound(_) => "RuleNotFound",
            Elbv2Error::DuplicateLoadBalancerName(_) => "DuplicateLoadBalancerName",
            Elbv2Error::DuplicateTargetGroupName(_) => "DuplicateTargetGroupName",
            Elbv2Error::DuplicateListener(_) => "DuplicateListener",
            Elbv2Error::PriorityInUse(_) => "PriorityInUse",
            Elbv2Error::ResourceInUse(_) => "ResourceInUse",
            Elbv2Error::InvalidTarget(_) => "InvalidTarget",
            Elbv2Error::InvalidConfigurationRequest(_) => "InvalidConfigurationRequest",
            Elbv2Error::InvalidSubnet(_) => "InvalidSubnet",
            Elbv2Error::SubnetNotFound(_) => "SubnetNotFound",
            Elbv2Error::InvalidSecurityGroup(_) => "InvalidSecurityGroup",
            Elbv2Error::OperationNotPermitted(_) => "OperationNotPermitted",
            Elbv2Error::TargetGroupAssociationLimit(_) => "TargetGroupAssociationLimit",
            Elbv2Error::IncompatibleProtocols(_) => "IncompatibleProtocols",
            Elbv2Error::UnsupportedProtocol(_) => "UnsupportedProtocol",
            Elbv2Error::InvalidLoadBalancerAction(_) => "InvalidLoadBalancerAction",
            Elbv2Error::TooManyTags(_) => "TooManyTags",
            Elbv2Error::Unsupported(_) => "UnsupportedOperation",
            Elbv2Error::Storage(_) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, "InternalFailure")
            }
        };
        (bad, code)
    }
}

fn params<T: serde::de::DeserializeOwned>(input: Value) -> Result<T, Elbv2CallError> {
    honoured(input).map_err(Elbv2CallError::NotHonoured)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByLoadBalancer {
    load_balancer_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByTargetGroup {
    target_group_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByListener {
    listener_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByRule {
    rule_arn: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByResources {
    resource_arns: Vec<String>,
}

/// A Modify…Attributes call: the ARN under its member name, and the attributes.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AttributesInput {
    load_balancer_arn: Option<String>,
    target_group_arn: Option<String>,
    listener_arn: Option<String>,
    attributes: Vec<elbv2::Attribute>,
}

async fn run(service: &Elbv2, operation: &str, input: Value) -> Result<Value, Elbv2CallError> {
    let output = match operation {
        "CreateLoadBalancer" => service.create_load_balancer(params(input)?).await,
        "DescribeLoadBalancers" => service.describe_load_balancers(params(input)?),
        "DeleteLoadBalancer" => {
            let ByLoadBalancer { load_balancer_arn } = params(input)?;
            service.delete_load_balancer(&load_balancer_arn)
        }
        "DescribeLoadBalancerAttributes" => {
            let ByLoadBalancer { load_balancer_arn } = params(input)?;
            service.describe_load_balancer_attributes(&load_balancer_arn)
        }
        "ModifyLoadBalancerAttributes" => {
            let AttributesInput {
                load_balancer_arn,
                attributes,
                ..
            } = params(input)?;
            service
                .modify_load_balancer_attributes(&load_balancer_arn.unwrap_or_default(), attributes)
        }
        "SetSecurityGroups" => service.set_security_groups(params(input)?).await,
        "CreateTargetGroup" => service.create_target_group(params(input)?).await,
        "DescribeTargetGroups" => service.describe_target_groups(params(input)?),
        "ModifyTargetGroup" => service.modify_target_group(params(input)?),
        "DeleteTargetGroup" => {
            let ByTargetGroup { target_group_arn } = params(input)?;
            service.delete_target_group(&target_group_arn)
        }
        "DescribeTargetGroupAttributes" => {
            let ByTargetGroup { target_group_arn } = params(input)?;
            service.describe_target_group_attributes(&target_group_arn)
        }
        "ModifyTargetGroupAttributes" => {
            let AttributesInput {
                target_group_arn,
                attributes,
                ..
            } = params(input)?;
            service
                .modify_target_group_attributes(&target_group_arn.unwrap_or_default(), attributes)
        }
        "RegisterTargets" => service.register_targets(params(input)?).await,
        "DeregisterTargets" => service.deregister_targets(params(input)?),
        "DescribeTargetHealth" => service.describe_target_health(params(input)?).await,
        "CreateListener" => service.create_listener(params(input)?),
        "DescribeListeners" => service.describe_listeners(params(input)?),
        "ModifyListener" => service.modify_listener(params(input)?),
        "DeleteListener" => {
            let ByListener { listener_arn } = params(input)?;
            service.delete_listener(&listener_arn)
        }
        "DescribeListenerAttributes" => {
            let ByListener { listener_arn } = params(input)?;
            service.describe_listener_attributes(&listener_arn)
        }
        "ModifyListenerAttributes" => {
            let AttributesInput {
                listener_arn,
                attributes,
                ..
            } = params(input)?;
            service.modify_listener_attributes(&listener_arn.unwrap_or_default(), attributes)
        }
        "DescribeListenerCertificates" => {
            // No HTTPS listener exists, so no listener has certificates.
            let ByListenerPaged { listener_arn, .. } = params(input)?;
            service.describe_listeners(params(
                serde_json::json!({ "ListenerArns": [listener_arn] }),
            )?)?;
            Ok(serde_json::json!({ "Certificates": [] }))
        }
        "CreateRule" => service.create_rule(params(input)?),
        "DescribeRules" => service.describe_rules(params(input)?),
        "ModifyRule" => service.modify_rule(params(input)?),
        "DeleteRule" => {
            let ByRule { rule_arn } = params(input)?;
            service.delete_rule(&rule_arn)
        }
        "SetRulePriorities" => service.set_rule_priorities(params(input)?),
        "AddTags" => service.add_tags(params(input)?),
        "RemoveTags" => service.remove_tags(params(input)?),
        "DescribeTags" => {
            let ByResources { resource_arns } = params(input)?;
            service.describe_tags(&resource_arns)
        }
        other => return Err(Elbv2CallError::NotSupported(other.to_owned())),
    };
    Ok(output?)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ByListenerPaged {
    listener_arn: String,
    #[serde(rename = "Marker")]
    _marker: Option<String>,
    #[serde(rename = "PageSize")]
    _page_size: Option<i64>,
}

impl ModelService for Elbv2Service {
    type Error = Elbv2CallError;

    fn signing_name(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        _caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, Elbv2CallError>> {
        Box::pin(run(&context.elbv2, operation, input))
    }
}
