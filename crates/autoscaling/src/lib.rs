//! Auto Scaling: groups of real instances that EC2 launches and terminates on the group's
//! behalf, kept at their desired capacity, balanced across zones and replaced when unhealthy.
//!
//! The records (groups with their members, scaling activities) live in the engine, in their
//! own working set over the same store as EC2's. Everything a group does to instances goes
//! through [`Ec2`], which the api crate answers with EC2's own actions, so this crate never
//! reads or writes EC2's tables. [`FleetReconciler`] is the loop that brings each group to its
//! desired capacity; the operations only record intent and wake it.
//!
//! Operations take botocore's input shapes (read with serde) and answer JSON keyed by the
//! output shape's member names, which the api crate encodes in the Query protocol.

mod activities;
mod balancing;
pub mod ec2;
mod groups;
mod hooks;
mod kinds;
mod members;
mod metrics;
mod policies;
mod reconciler;
mod refresh;
mod schedule;
#[cfg(test)]
mod testkit;
mod warm;

use std::sync::{Arc, OnceLock};

use nimbus_core::metrics::{MetricSink, PolicyAlarms};
use store::Store;

pub use activities::DescribeScalingActivitiesInput;
pub use balancing::{DescribeAttachedInput, LoadBalancing, TargetGroupsInput, TrafficSourcesInput};
pub use ec2::Ec2;
pub use groups::{
    service_linked_role, CreateAutoScalingGroupInput, DeleteAutoScalingGroupInput,
    DescribeAutoScalingGroupsInput, ProcessesInput, TagsInput, UpdateAutoScalingGroupInput,
};
pub use hooks::{
    DeleteLifecycleHookInput, DescribeLifecycleHooksInput, LifecycleActionInput,
    PutLifecycleHookInput,
};
pub use members::{
    DescribeAutoScalingInstancesInput, Move, MoveInstancesInput, SetDesiredCapacityInput,
    SetInstanceHealthInput, SetInstanceProtectionInput, TerminateInstanceInput,
};
pub use metrics::MetricsCollectionInput;
pub use policies::{
    alarm_period_secs, DeletePolicyInput, DescribePoliciesInput, ExecutePolicyInput,
    PutScalingPolicyInput,
};
pub use reconciler::FleetReconciler;
pub use refresh::{DescribeInstanceRefreshesInput, StartInstanceRefreshInput};
pub use schedule::{
    DeleteScheduledActionInput, DescribeScheduledActionsInput, PutScheduledActionInput,
};
pub use warm::{DeleteWarmPoolInput, DescribeWarmPoolInput, PutWarmPoolInput};

/// Why an Auto Scaling call failed; the api crate names the AWS code of each in one place.
#[derive(Debug, thiserror::Error)]
pub enum AutoScalingError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    ScalingActivityInProgress(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    InstanceRefreshInProgress(String),
    #[error("{0}")]
    ActiveInstanceRefreshNotFound(String),
    #[error("The NextToken value is invalid: {0}")]
    InvalidNextToken(String),
    #[error("Auto Scaling's store failed: {0}")]
    Storage(String),
}

impl From<engine::Error> for AutoScalingError {
    fn from(error: engine::Error) -> AutoScalingError {
        match error {
            engine::Error::InvalidPaginationToken(token) => {
                AutoScalingError::InvalidNextToken(token)
            }
            engine::Error::MaxResultsOutOfRange { value, min, max } => {
                AutoScalingError::Validation(format!(
                    "MaxRecords {value} is out of range: it must be between {min} and {max}."
                ))
            }
            other => AutoScalingError::Storage(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, AutoScalingError>;

/// What a Describe answers of `rows` (each with the key it is ordered by): the page
/// `MaxRecords` asks for (`bounds.0` when unset, 1 to `bounds.1`) under `member`, with
/// `NextToken` when more follow.
pub(crate) fn page_of(
    member: &str,
    mut rows: Vec<(String, serde_json::Value)>,
    max_records: Option<i64>,
    next_token: Option<&str>,
    bounds: (i64, i64),
) -> Result<serde_json::Value> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = engine::pagination::paginate(
        rows,
        |(key, _)| key.as_str(),
        Some(max_records.unwrap_or(bounds.0)),
        next_token,
        engine::pagination::PageBounds {
            min: 1,
            max: bounds.1,
        },
    )?;
    let rows: Vec<serde_json::Value> = page.into_iter().map(|(_, row)| row).collect();
    let mut output = serde_json::json!({ member: rows });
    if let Some(next) = next {
        output["NextToken"] = serde_json::json!(next);
    }
    Ok(output)
}

/// The Auto Scaling service: its working set and the EC2 it acts through.
pub struct AutoScaling {
    engine: engine::Engine,
    region: String,
    account_id: String,
    ec2: OnceLock<Arc<dyn Ec2>>,
    /// Elastic Load Balancing, where members are registered as targets.
    load_balancing: OnceLock<Arc<dyn LoadBalancing>>,
    /// CloudWatch, where the groups' metrics go.
    metric_sink: OnceLock<Arc<dyn MetricSink>>,
    /// CloudWatch, where target tracking policies' alarms are made.
    policy_alarms: OnceLock<Arc<dyn PolicyAlarms>>,
    /// The period of those alarms (see [`policies`]).
    alarm_period_secs: u32,
    publisher: metrics::Publisher,
    /// Woken by every change of intent, so the fleet reconciler acts at once.
    wake: tokio::sync::Notify,
}

impl AutoScaling {
    /// Opens the service over `store`; target tracking alarms get `alarm_period_secs`.
    pub fn open(
        store: Arc<dyn Store>,
        region: &str,
        account_id: &str,
        alarm_period_secs: u32,
    ) -> Result<AutoScaling> {
        Ok(AutoScaling {
            engine: engine::Engine::open(store, kinds::registry())?,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            ec2: OnceLock::new(),
            load_balancing: OnceLock::new(),
            metric_sink: OnceLock::new(),
            policy_alarms: OnceLock::new(),
            alarm_period_secs,
            publisher: Default::default(),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Connects EC2, once, after both services are built (each needs the other).
    pub fn set_ec2(&self, ec2: Arc<dyn Ec2>) {
        let _ = self.ec2.set(ec2);
    }

    /// Connects Elastic Load Balancing, once.
    pub fn set_load_balancing(&self, load_balancing: Arc<dyn LoadBalancing>) {
        let _ = self.load_balancing.set(load_balancing);
    }

    /// Connects CloudWatch, once: where group metrics go and policies' alarms are made.
    pub fn set_cloudwatch(&self, sink: Arc<dyn MetricSink>, alarms: Arc<dyn PolicyAlarms>) {
        let _ = self.metric_sink.set(sink);
        let _ = self.policy_alarms.set(alarms);
    }

    fn ec2(&self) -> Result<&dyn Ec2> {
        self.ec2
            .get()
            .map(|ec2| ec2.as_ref())
            .ok_or_else(|| AutoScalingError::Storage("EC2 is not connected yet".into()))
    }

    /// Runs `operation` in one transaction, then wakes the fleet reconciler.
    fn change<R>(&self, operation: impl FnOnce(&mut engine::Txn) -> Result<R>) -> Result<R> {
        let outcome = self.engine.mutate(operation);
        self.wake.notify_one();
        outcome
    }
}
