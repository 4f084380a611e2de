//! Groups behind load balancers: a group's target groups get its InService members as
//! targets; a member leaving service is deregistered, and terminated only once its
//! connections have drained; with `HealthCheckType` ELB a member the balancer finds unhealthy
//! is replaced. Elastic Load Balancing is reached only through [`LoadBalancing`], which the
//! api crate answers with the elbv2 service's own operations.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ec2::Ec2Refusal;
use crate::groups::existing_group;
use crate::kinds::Tables;
use crate::members::Lifecycle;
use crate::{AutoScaling, AutoScalingError, Result};

#[async_trait]
pub trait LoadBalancing: Send + Sync {
    /// Checks that every target group exists.
    async fn check_target_groups(&self, arns: &[String]) -> std::result::Result<(), Ec2Refusal>;
    async fn register(
        &self,
        arn: &str,
        instance_ids: &[String],
    ) -> std::result::Result<(), Ec2Refusal>;
    async fn deregister(
        &self,
        arn: &str,
        instance_ids: &[String],
    ) -> std::result::Result<(), Ec2Refusal>;
    /// Every instance registered in the group or draining from it, with its state as
    /// DescribeTargetHealth names it (`initial`, `healthy`, `unhealthy`, `draining`, `unused`…).
    async fn target_states(
        &self,
        arn: &str,
    ) -> std::result::Result<BTreeMap<String, String>, Ec2Refusal>;
}

/// The targets of each of a group's target groups, as read at the start of a pass.
pub(crate) type Targets = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetGroupsInput {
    auto_scaling_group_name: String,
    #[serde(rename = "TargetGroupARNs")]
    target_group_arns: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TrafficSource {
    identifier: String,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TrafficSourcesInput {
    auto_scaling_group_name: String,
    traffic_sources: Vec<TrafficSource>,
    skip_zonal_shift_validation: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeAttachedInput {
    auto_scaling_group_name: String,
    next_token: Option<String>,
    max_records: Option<i64>,
    traffic_source_type: Option<String>,
}

impl TrafficSourcesInput {
    /// The target group ARNs of the sources; other kinds of source are refused by name.
    fn target_groups(self) -> Result<(String, Vec<String>)> {
        if self.skip_zonal_shift_validation == Some(true) {
            return Err(AutoScalingError::Validation(
                "SkipZonalShiftValidation is not supported by nimbus (no zonal shift)".into(),
            ));
        }
        let arns = (self.traffic_sources.into_iter())
            .map(|source| match source.kind.as_deref().unwrap_or("elbv2") {
                "elbv2" => Ok(source.identifier),
                other => Err(AutoScalingError::Validation(format!(
                    "Traffic source type {other} is not supported by nimbus (elbv2 is)"
                ))),
            })
            .collect::<Result<_>>()?;
        Ok((self.auto_scaling_group_name, arns))
    }
}

fn refused(refusal: Ec2Refusal) -> AutoScalingError {
    AutoScalingError::Validation(refusal.message)
}

/// Whether a member serves traffic: InService, not on its way out or standing by.
fn serves(lifecycle: Lifecycle) -> bool {
    lifecycle == Lifecycle::InService
}

impl AutoScaling {
    fn load_balancing(&self) -> Result<&dyn LoadBalancing> {
        self.load_balancing
            .get()
            .map(|lb| lb.as_ref())
            .ok_or_else(|| {
                AutoScalingError::Storage("Elastic Load Balancing is not connected yet".into())
            })
    }

    /// Checks target groups named by CreateAutoScalingGroup and the attach calls.
    pub(crate) async fn check_target_groups(&self, arns: &[String]) -> Result<()> {
        if arns.is_empty() {
            return Ok(());
        }
        self.load_balancing()?
            .check_target_groups(arns)
            .await
            .map_err(refused)
    }

    pub async fn attach_target_groups(&self, input: TargetGroupsInput) -> Result<Value> {
        self.attach(&input.auto_scaling_group_name, input.target_group_arns)
            .await
    }

    pub async fn attach_traffic_sources(&self, input: TrafficSourcesInput) -> Result<Value> {
        let (name, arns) = input.target_groups()?;
        self.attach(&name, arns).await
    }

    async fn attach(&self, name: &str, arns: Vec<String>) -> Result<Value> {
        self.require_group(name)?;
        self.check_target_groups(&arns).await?;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), name)?.clone();
            for arn in arns {
                if !group.target_groups.contains(&arn) {
                    group.target_groups.push(arn);
                }
            }
            txn.put(group)?;
            Ok(json!({}))
        })
    }

    pub async fn detach_target_groups(&self, input: TargetGroupsInput) -> Result<Value> {
        self.detach(&input.auto_scaling_group_name, input.target_group_arns)
            .await
    }

    pub async fn detach_traffic_sources(&self, input: TrafficSourcesInput) -> Result<Value> {
        let (name, arns) = input.target_groups()?;
        self.detach(&name, arns).await
    }

    /// Detaching deregisters the group's members from the target groups (they drain).
    async fn detach(&self, name: &str, arns: Vec<String>) -> Result<Value> {
        let members: Vec<String> = self.change(|txn| {
            let mut group = existing_group(txn.state(), name)?.clone();
            group.target_groups.retain(|arn| !arns.contains(arn));
            let members = group
                .members
                .iter()
                .map(|m| m.instance_id.clone())
                .collect();
            txn.put(group)?;
            Ok(members)
        })?;
        let lb = self.load_balancing()?;
        for arn in &arns {
            let states = lb.target_states(arn).await.map_err(refused)?;
            let registered: Vec<String> = (members.iter())
                .filter(|id| states.get(*id).is_some_and(|s| s != "draining"))
                .cloned()
                .collect();
            if !registered.is_empty() {
                lb.deregister(arn, &registered).await.map_err(refused)?;
            }
        }
        Ok(json!({}))
    }

    pub fn describe_target_groups(&self, input: DescribeAttachedInput) -> Result<Value> {
        self.describe_attached(
            input,
            |arn, state| json!({ "LoadBalancerTargetGroupARN": arn, "State": state }),
            "LoadBalancerTargetGroups",
        )
    }

    pub fn describe_traffic_sources(&self, input: DescribeAttachedInput) -> Result<Value> {
        if input
            .traffic_source_type
            .as_deref()
            .is_some_and(|t| t != "elbv2")
        {
            return Ok(json!({ "TrafficSources": [] }));
        }
        self.describe_attached(input, |arn, state| {
            json!({ "TrafficSource": arn, "Identifier": arn, "Type": "elbv2", "State": state })
        }, "TrafficSources")
    }

    fn describe_attached(
        &self,
        input: DescribeAttachedInput,
        row: impl Fn(&str, &str) -> Value,
        member: &str,
    ) -> Result<Value> {
        let state = self.engine.read();
        let group = existing_group(&state, &input.auto_scaling_group_name)?;
        // `InService` once a member is registered in it, as AWS says after its first check.
        let serving = group.members.iter().any(|m| serves(m.lifecycle));
        let rows = (group.target_groups.iter())
            .map(|arn| {
                (
                    arn.clone(),
                    row(arn, if serving { "InService" } else { "Added" }),
                )
            })
            .collect();
        crate::page_of(
            member,
            rows,
            input.max_records,
            input.next_token.as_deref(),
            (50, 100),
        )
    }

    /// The targets of the group's target groups, read before a pass acts.
    pub(crate) async fn read_targets(&self, name: &str) -> Targets {
        let arns = match self.engine.read().groups().get(name) {
            Some(group) => group.target_groups.clone(),
            None => return Targets::new(),
        };
        let Some(lb) = self.load_balancing.get() else {
            return Targets::new();
        };
        let mut targets = Targets::new();
        for arn in arns {
            match lb.target_states(&arn).await {
                Ok(states) => {
                    targets.insert(arn, states);
                }
                Err(refusal) => {
                    tracing::warn!(group = name, target_group = %arn, %refusal, "target group unreadable this pass")
                }
            }
        }
        targets
    }

    /// Members a load balancer finds unhealthy (for `HealthCheckType` ELB).
    pub(crate) fn unhealthy_behind_balancers(targets: &Targets) -> BTreeSet<String> {
        (targets.values().flatten())
            .filter(|(_, state)| *state == "unhealthy")
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Registers serving members, deregisters leaving ones, and returns the terminations
    /// that may go now: those of members no longer registered or draining anywhere.
    pub(crate) async fn sync_targets(
        &self,
        name: &str,
        targets: &Targets,
        terminate: Vec<String>,
    ) -> Vec<String> {
        let (Some(lb), false) = (self.load_balancing.get(), targets.is_empty()) else {
            return terminate;
        };
        let (serving, leaving): (Vec<String>, Vec<String>) =
            match self.engine.read().groups().get(name) {
                Some(group) => (
                    // SuspendProcesses AddToLoadBalancer: new members are not registered.
                    (group.members.iter())
                        .filter(|m| serves(m.lifecycle) && !group.suspended("AddToLoadBalancer"))
                        .map(|m| m.instance_id.clone())
                        .collect(),
                    group
                        .members
                        .iter()
                        .filter(|m| !serves(m.lifecycle))
                        .map(|m| m.instance_id.clone())
                        .collect(),
                ),
                None => return terminate,
            };
        for (arn, states) in targets {
            let missing: Vec<String> = (serving.iter())
                .filter(|id| states.get(*id).is_none_or(|s| s == "draining"))
                .cloned()
                .collect();
            let registered_leaving: Vec<String> = (leaving.iter().chain(&terminate))
                .filter(|id| states.get(*id).is_some_and(|s| s != "draining"))
                .cloned()
                .collect();
            for (ids, register) in [(missing, true), (registered_leaving, false)] {
                if ids.is_empty() {
                    continue;
                }
                let done = if register {
                    lb.register(arn, &ids).await
                } else {
                    lb.deregister(arn, &ids).await
                };
                if let Err(refusal) = done {
                    tracing::warn!(group = name, target_group = %arn, %refusal, "targets not updated; retried next pass");
                }
            }
        }
        terminate
            .into_iter()
            .filter(|id| targets.values().all(|states| !states.contains_key(id)))
            .collect()
    }
}
