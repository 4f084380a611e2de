//! Elastic Load Balancing v2: application and network load balancers that carry real
//! traffic, their target groups, listeners and rules.
//!
//! The records live in the engine, in their own working set over the same store as EC2's.
//! What a balancer needs of EC2 (its network interfaces in its subnets, the instances it
//! sends to) goes through [`Ec2`], which the api crate answers with EC2's own records, so
//! this crate never reads or writes EC2's tables. The data plane is a
//! [`balancer::BalancerDriver`] (HAProxy): [`BalancerReconciler`] hands it a whole spec per
//! load balancer node on every change and reads back how the targets fare.
//!
//! Operations take botocore's input shapes (read with serde) and answer JSON keyed by the
//! output shape's member names, which the api crate encodes in the Query protocol.

mod actions;
mod arns;
mod attributes;
pub mod ec2;
mod hosts;
mod kinds;
mod listeners;
mod load_balancers;
mod reconciler;
mod spec;
mod tags;
mod target_groups;
mod targets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use balancer::BalancerDriver;
use store::Store;

pub use attributes::Attribute;
pub use ec2::Ec2;
pub use listeners::{
    CreateListenerInput, CreateRuleInput, DescribeListenersInput, DescribeRulesInput,
    ModifyListenerInput, ModifyRuleInput, SetRulePrioritiesInput,
};
pub use load_balancers::{
    CreateLoadBalancerInput, DescribeLoadBalancersInput, SetSecurityGroupsInput,
};
pub use reconciler::BalancerReconciler;
pub use tags::{AddTagsInput, RemoveTagsInput};
pub use target_groups::{
    CreateTargetGroupInput, DescribeTargetGroupsInput, ModifyTargetGroupInput,
};
pub use targets::{DescribeTargetHealthInput, TargetsInput};

/// Why an Elastic Load Balancing call failed; each variant is AWS's error code of the same
/// name, which the api crate writes in one place.
#[derive(Debug, thiserror::Error)]
pub enum Elbv2Error {
    #[error("{0}")]
    ValidationError(String),
    #[error("{0}")]
    LoadBalancerNotFound(String),
    #[error("{0}")]
    TargetGroupNotFound(String),
    #[error("{0}")]
    ListenerNotFound(String),
    #[error("{0}")]
    RuleNotFound(String),
    #[error("{0}")]
    DuplicateLoadBalancerName(String),
    #[error("{0}")]
    DuplicateTargetGroupName(String),
    #[error("{0}")]
    DuplicateListener(String),
    #[error("{0}")]
    PriorityInUse(String),
    #[error("{0}")]
    ResourceInUse(String),
    #[error("{0}")]
    InvalidTarget(String),
    #[error("{0}")]
    InvalidConfigurationRequest(String),
    #[error("{0}")]
    InvalidSubnet(String),
    #[error("{0}")]
    SubnetNotFound(String),
    #[error("{0}")]
    InvalidSecurityGroup(String),
    #[error("{0}")]
    OperationNotPermitted(String),
    #[error("{0}")]
    TargetGroupAssociationLimit(String),
    #[error("{0}")]
    IncompatibleProtocols(String),
    #[error("{0}")]
    UnsupportedProtocol(String),
    #[error("{0}")]
    InvalidLoadBalancerAction(String),
    #[error("{0}")]
    TooManyTags(String),
    /// A value AWS accepts that nimbus does not carry out, named.
    #[error("{0}")]
    Unsupported(String),
    #[error("Elastic Load Balancing's store failed: {0}")]
    Storage(String),
}

impl From<engine::Error> for Elbv2Error {
    fn from(error: engine::Error) -> Elbv2Error {
        match error {
            engine::Error::InvalidPaginationToken(token) => {
                Elbv2Error::ValidationError(format!("The marker '{token}' is not valid"))
            }
            engine::Error::MaxResultsOutOfRange { value, min, max } => Elbv2Error::ValidationError(
                format!("Page size {value} must be between {min} and {max}"),
            ),
            other => Elbv2Error::Storage(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Elbv2Error>;

/// What a Describe answers of `rows` (each with the key it is ordered by): the page
/// `PageSize` asks for (all by default, at most 400), under `member`, with `NextMarker`
/// when more follow.
pub(crate) fn page_of(
    member: &str,
    mut rows: Vec<(String, serde_json::Value)>,
    page_size: Option<i64>,
    marker: Option<&str>,
) -> Result<serde_json::Value> {
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = engine::pagination::paginate(
        rows,
        |(key, _)| key.as_str(),
        Some(page_size.unwrap_or(400)),
        marker,
        engine::pagination::PageBounds { min: 1, max: 400 },
    )?;
    let rows: Vec<serde_json::Value> = page.into_iter().map(|(_, row)| row).collect();
    let mut output = serde_json::json!({ member: rows });
    if let Some(next) = next {
        output["NextMarker"] = serde_json::json!(next);
    }
    Ok(output)
}

/// How targets fare, as the reconciler last read them from the data plane: by target
/// group ID, each target's state (the worst over the balancer's nodes).
pub(crate) type HealthByGroup = BTreeMap<String, BTreeMap<balancer::Target, balancer::TargetState>>;

/// The Elastic Load Balancing service: its working set, the EC2 it reaches and the data
/// plane it drives.
pub struct Elbv2 {
    engine: engine::Engine,
    region: String,
    account_id: String,
    ec2: OnceLock<Arc<dyn Ec2>>,
    driver: Arc<dyn BalancerDriver>,
    /// The hosts file where balancers' DNS names resolve on this host, if any.
    hosts_file: Option<PathBuf>,
    /// Names this server's block in the hosts file (several servers may share a host).
    owner: String,
    health: Mutex<HealthByGroup>,
    creating: Mutex<reconciler::Creating>,
    /// Woken by every change of intent, so the reconciler acts at once.
    wake: tokio::sync::Notify,
}

impl Elbv2 {
    /// Opens the service over `store`, driving `driver`; balancers' names go into
    /// `hosts_file` (a block marked with `owner`).
    pub fn open(
        store: Arc<dyn Store>,
        region: &str,
        account_id: &str,
        driver: Arc<dyn BalancerDriver>,
        hosts_file: Option<PathBuf>,
        owner: &str,
    ) -> Result<Elbv2> {
        Ok(Elbv2 {
            engine: engine::Engine::open(store, kinds::registry())?,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            ec2: OnceLock::new(),
            driver,
            hosts_file,
            owner: owner.to_owned(),
            health: Mutex::new(BTreeMap::new()),
            creating: Mutex::new(Default::default()),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Connects EC2, once, after both services are built.
    pub fn set_ec2(&self, ec2: Arc<dyn Ec2>) {
        let _ = self.ec2.set(ec2);
    }

    fn ec2(&self) -> Result<&dyn Ec2> {
        self.ec2
            .get()
            .map(|ec2| ec2.as_ref())
            .ok_or_else(|| Elbv2Error::Storage("EC2 is not connected yet".into()))
    }

    /// Runs `operation` in one transaction, then wakes the reconciler.
    fn change<R>(&self, operation: impl FnOnce(&mut engine::Txn) -> Result<R>) -> Result<R> {
        let outcome = self.engine.mutate(operation);
        self.wake.notify_one();
        outcome
    }

    fn health(&self) -> std::sync::MutexGuard<'_, HealthByGroup> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn creating(&self) -> std::sync::MutexGuard<'_, reconciler::Creating> {
        self.creating.lock().unwrap_or_else(|e| e.into_inner())
    }
}
