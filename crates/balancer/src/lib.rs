//! The load balancer driver: what the elbv2 service wants of a load balancer on this host,
//! as plain data ([`BalancerSpec`]), and the [`BalancerDriver`] trait that makes the host
//! match it and reports how its targets fare.
//!
//! - [`HaproxyBalancers`] is the real driver: one unprivileged HAProxy per balancer in its
//!   VPC's network namespace, configured from [`render`], its targets set through the
//!   runtime API without reloads, re-adopted after a restart of nimbus (`docs/balancer.md`).
//! - [`FakeBalancers`] keeps specs in memory, for the elbv2 service's unit tests.
//!
//! Nothing here knows about ARNs or Auto Scaling: the elbv2 service turns
//! its records into a spec on every change and hands over the whole of it, as control does
//! with the network driver's `VpcSpec`.

mod fake;
mod haproxy;
mod render;
mod rules;
mod spec;

use async_trait::async_trait;

pub use fake::FakeBalancers;
pub use haproxy::HaproxyBalancers;
/// The bench (`bench/loadbalancer`) renders the same config for a bare HAProxy to compare.
pub use render::{render, Layout};
pub use rules::*;
pub use spec::*;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Invalid(String),
    #[error("HAProxy's runtime API refused {command:?}: {answer}")]
    Runtime { command: String, answer: String },
    #[error("load balancer {0} is not applied on this host")]
    UnknownBalancer(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// How a target fares, as DescribeTargetHealth reports it (the elbv2 service adds the
/// states the driver cannot know: `unused`, `unavailable`, and registration in progress).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Registered, passing its first health checks (`Elb.InitialHealthChecking`).
    Initial,
    Healthy,
    Unhealthy(UnhealthyReason),
    /// Deregistered, its connections finishing (`Target.DeregistrationInProgress`).
    Draining,
}

/// Why a target is unhealthy, as AWS's reason codes say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnhealthyReason {
    /// `Target.Timeout`: the check got no answer in time (a security group that drops the
    /// balancer's packets looks like this).
    Timeout,
    /// `Target.ResponseCodeMismatch`: an HTTP answer with a code the matcher refuses.
    ResponseCodeMismatch,
    /// `Target.FailedHealthChecks`: refused connections and every other failure.
    Failed,
}

/// One target of one group and how it fares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    pub target_group_id: String,
    pub target: Target,
    pub state: TargetState,
}

/// The data plane of load balancers on one host, driven by the elbv2 service's reconciler.
#[async_trait]
pub trait BalancerDriver: Send + Sync {
    /// Makes the balancer carry traffic as `spec` says: its listeners on its addresses,
    /// each target group with its targets. Idempotent and cheap when nothing changed, so
    /// the reconciler calls it on every pass; a balancer whose process died is started
    /// again. Targets added start `initial`; targets removed drain for their group's
    /// deregistration delay. Target changes never interrupt traffic to other targets.
    async fn apply(&self, spec: &BalancerSpec) -> Result<()>;

    /// Stops the balancer and removes everything it had on this host. Removing an absent
    /// balancer succeeds.
    async fn remove(&self, balancer_id: &str) -> Result<()>;

    /// The balancers this host runs (applied by this process or found from before a
    /// restart), so that the reconciler removes those no record wants any more.
    async fn balancers(&self) -> Result<Vec<String>>;

    /// How each target of the balancer's groups fares, draining ones included (a target
    /// deregistered and no longer listed has finished draining). Also finishes the drains
    /// whose delay has passed.
    async fn target_health(&self, balancer_id: &str) -> Result<Vec<TargetHealth>>;
}
