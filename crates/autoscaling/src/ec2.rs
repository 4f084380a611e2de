//! EC2 as Auto Scaling sees it: the few operations a group needs, which the api crate
//! answers with EC2's own actions (RunInstances, TerminateInstances, DescribeInstances…), so
//! this crate never reads EC2's tables.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Which launch template a group launches from, as the user named it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub id: Option<String>,
    pub name: Option<String>,
    /// `$Latest`, `$Default` or a number; `$Default` when unset.
    pub version: Option<String>,
}

/// The launch template EC2 found for a [`TemplateSpec`].
#[derive(Clone, Debug, PartialEq)]
pub struct FoundTemplate {
    pub id: String,
    pub name: String,
    /// `HibernationOptions.Configured` in the version named: a `Hibernated` warm pool needs it.
    pub hibernation: bool,
}

/// One instance to launch for a group.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub template: TemplateSpec,
    /// A `MixedInstancesPolicy` override; the template's type when unset.
    pub instance_type: Option<String>,
    /// The subnet (VPC groups) or the zone (EC2-Classic style groups) to launch in.
    pub subnet_id: Option<String>,
    pub zone: String,
    /// The group's tags marked `PropagateAtLaunch`.
    pub tags: Vec<(String, String)>,
    pub group_name: String,
    /// EC2's `ClientToken`: the launch's activity ID, so a launch retried after a restart of
    /// nimbus finds the instance the first try made instead of making a second one.
    pub client_token: String,
}

/// An instance as a group's health check and lifecycle see it.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceView {
    pub instance_id: String,
    pub instance_type: String,
    /// EC2's state name: `pending`, `running`, `stopping`, `stopped`, `shutting-down`,
    /// `terminated`.
    pub state: String,
    /// Whether a status check (system or instance) reports `impaired`.
    pub impaired: bool,
    pub zone: String,
    pub subnet_id: Option<String>,
}

/// Why EC2 refused a call: its code and message, which Auto Scaling quotes.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Ec2Refusal {
    pub code: String,
    pub message: String,
}

#[async_trait]
pub trait Ec2: Send + Sync {
    /// The template `spec` names, checking that its version exists.
    async fn find_template(&self, spec: &TemplateSpec) -> Result<FoundTemplate, Ec2Refusal>;
    /// The zone of each subnet, in the order given; a missing subnet is refused.
    async fn subnet_zones(&self, subnet_ids: &[String]) -> Result<Vec<String>, Ec2Refusal>;
    /// The zones of the region.
    async fn zones(&self) -> Result<Vec<String>, Ec2Refusal>;
    /// Launches one instance.
    async fn launch(&self, launch: &Launch) -> Result<InstanceView, Ec2Refusal>;
    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2Refusal>;
    /// Stops (or hibernates) a warm pool instance.
    async fn stop(&self, instance_id: &str, hibernate: bool) -> Result<(), Ec2Refusal>;
    /// Starts a warm pool instance taken into service.
    async fn start(&self, instance_id: &str) -> Result<(), Ec2Refusal>;
    /// Makes an instance a member of `group` (AttachInstances), or, with `None`, no longer
    /// one (DetachInstances): its `aws:autoscaling:groupName` tag, and its automatic recovery
    /// (a member is replaced by its group, not recovered in place).
    async fn set_group(&self, instance_id: &str, group: Option<&str>) -> Result<(), Ec2Refusal>;
    /// The instances among `ids` that EC2 still knows (terminated ones included while EC2
    /// shows them).
    async fn instances(&self, ids: &[String]) -> Result<Vec<InstanceView>, Ec2Refusal>;
}
