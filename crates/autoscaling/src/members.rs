//! A group's instances: the member record, and DescribeAutoScalingInstances,
//! SetDesiredCapacity, TerminateInstanceInAutoScalingGroup, SetInstanceHealth and
//! SetInstanceProtection.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::activities::{self, Activity, Status};
use crate::groups::{existing_group, now_text, Group};
use crate::hooks::{HookWait, TERMINATING};
use crate::kinds::Tables;
use crate::{AutoScaling, AutoScalingError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lifecycle {
    Pending,
    /// Held by launch lifecycle hooks.
    PendingWait,
    InService,
    /// Held by termination lifecycle hooks.
    TerminatingWait,
    Terminating,
    /// EnterStandby: in the group, out of its capacity and of its health checks.
    Standby,
    /// In the warm pool: launched, held by launch hooks, let go by them (on its way to rest),
    /// then resting.
    WarmedPending,
    WarmedPendingWait,
    WarmedProceed,
    WarmedStopped,
    WarmedRunning,
    WarmedHibernated,
    /// Leaving the warm pool.
    WarmedTerminating,
}

impl Lifecycle {
    fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Pending => "Pending",
            Lifecycle::PendingWait => "Pending:Wait",
            Lifecycle::InService => "InService",
            Lifecycle::TerminatingWait => "Terminating:Wait",
            Lifecycle::Standby => "Standby",
            Lifecycle::WarmedPending => "Warmed:Pending",
            Lifecycle::WarmedPendingWait => "Warmed:Pending:Wait",
            Lifecycle::WarmedProceed => "Warmed:Pending:Proceed",
            Lifecycle::WarmedStopped => "Warmed:Stopped",
            Lifecycle::WarmedRunning => "Warmed:Running",
            Lifecycle::WarmedHibernated => "Warmed:Hibernated",
            Lifecycle::WarmedTerminating => "Warmed:Terminating",
            Lifecycle::Terminating => "Terminating",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Member {
    pub instance_id: String,
    pub instance_type: String,
    pub zone: String,
    pub subnet_id: Option<String>,
    pub lifecycle: Lifecycle,
    pub healthy: bool,
    pub protected: bool,
    pub launched_ms: i64,
    /// When it went InService (instance warmup counts from there).
    #[serde(default)]
    pub in_service_ms: i64,
    /// The template (ID and version as the group named it) it was launched from.
    #[serde(default)]
    pub template_id: String,
    #[serde(default)]
    pub template_version: Option<String>,
    /// The activity that follows this member's launch, then its termination.
    pub activity_id: String,
    /// The lifecycle hooks it waits on, in `Pending:Wait` or `Terminating:Wait`.
    #[serde(default)]
    pub waits: Vec<HookWait>,
}

impl Member {
    /// Whether it counts toward the desired capacity.
    pub fn counts(&self) -> bool {
        matches!(
            self.lifecycle,
            Lifecycle::Pending | Lifecycle::PendingWait | Lifecycle::InService
        )
    }

    /// Whether it is on its way out.
    pub fn leaving(&self) -> bool {
        matches!(
            self.lifecycle,
            Lifecycle::TerminatingWait | Lifecycle::Terminating | Lifecycle::WarmedTerminating
        )
    }

    /// Whether it is in the warm pool, resting or on its way to rest.
    pub fn warm(&self) -> bool {
        matches!(
            self.lifecycle,
            Lifecycle::WarmedPending
                | Lifecycle::WarmedPendingWait
                | Lifecycle::WarmedProceed
                | Lifecycle::WarmedStopped
                | Lifecycle::WarmedRunning
                | Lifecycle::WarmedHibernated
        )
    }

    /// Whether DescribeWarmPool lists it (rather than the group's instances).
    pub fn in_pool(&self) -> bool {
        self.warm() || self.lifecycle == Lifecycle::WarmedTerminating
    }

    fn health_text(&self) -> &'static str {
        if self.healthy {
            "Healthy"
        } else {
            "Unhealthy"
        }
    }

    /// The member as `DescribeAutoScalingGroups` lists it.
    pub fn output(&self, template: &Value) -> Value {
        json!({
            "InstanceId": self.instance_id,
            "InstanceType": self.instance_type,
            "AvailabilityZone": self.zone,
            "LifecycleState": self.lifecycle.as_str(),
            "HealthStatus": self.health_text(),
            "LaunchTemplate": template,
            "ProtectedFromScaleIn": self.protected,
        })
    }
}

impl Group {
    /// Takes `instance_id` out of service: it is terminated, and the activity says why.
    pub fn take_out_of_service(
        &mut self,
        txn: &mut engine::Txn,
        instance_id: &str,
        cause: String,
    ) -> Result<()> {
        let group_view = self.clone();
        let Some(member) = self.member_mut(instance_id) else {
            return Ok(());
        };
        if member.leaving() {
            return Ok(());
        }
        if matches!(
            member.lifecycle,
            Lifecycle::Pending | Lifecycle::PendingWait
        ) {
            // Its launch never reached InService.
            activities::update(txn, &member.activity_id, |a| {
                a.status_message =
                    Some("The instance was taken out of service before it was in service.".into());
                a.set_status(Status::Cancelled, 100);
            })?;
        }
        member.lifecycle = if member.warm() {
            Lifecycle::WarmedTerminating
        } else if group_view.hold_at_hooks(member, TERMINATING) {
            Lifecycle::TerminatingWait
        } else {
            Lifecycle::Terminating
        };
        let mut activity = Activity::new(
            &group_view,
            format!("Terminating EC2 instance: {instance_id}"),
            cause,
            Status::InProgress,
        );
        activity.zone = member.zone.clone();
        activity.subnet_id = member.subnet_id.clone();
        member.activity_id = activity.activity_id.clone();
        activities::record(txn, activity)
    }
}

/// The group an instance belongs to.
fn group_of<'a>(state: &'a engine::State, instance_id: &str) -> Result<&'a Group> {
    state
        .groups()
        .values()
        .find(|g| g.member(instance_id).is_some())
        .ok_or_else(|| {
            AutoScalingError::Validation(format!(
                "Instance Id not found - No managed instance found for instance ID: {instance_id}"
            ))
        })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeAutoScalingInstancesInput {
    #[serde(default)]
    instance_ids: Vec<String>,
    max_records: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetDesiredCapacityInput {
    auto_scaling_group_name: String,
    desired_capacity: i64,
    /// Accepted: a user's SetDesiredCapacity is not held back by policies' cooldowns.
    #[serde(default, rename = "HonorCooldown")]
    _honor_cooldown: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TerminateInstanceInput {
    instance_id: String,
    should_decrement_desired_capacity: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetInstanceHealthInput {
    instance_id: String,
    health_status: String,
    should_respect_grace_period: Option<bool>,
}

/// AttachInstances, DetachInstances, EnterStandby and ExitStandby.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MoveInstancesInput {
    #[serde(default)]
    instance_ids: Vec<String>,
    auto_scaling_group_name: String,
    should_decrement_desired_capacity: Option<bool>,
}

/// Where instances go in a move.
#[derive(Clone, Copy, PartialEq)]
pub enum Move {
    Detach,
    EnterStandby,
    ExitStandby,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetInstanceProtectionInput {
    instance_ids: Vec<String>,
    auto_scaling_group_name: String,
    protected_from_scale_in: bool,
}

impl AutoScaling {
    pub fn describe_instances(&self, input: DescribeAutoScalingInstancesInput) -> Result<Value> {
        let state = self.engine.read();
        let mut rows: Vec<(String, Value)> = Vec::new();
        for group in state.groups().values() {
            for member in &group.members {
                if input.instance_ids.is_empty() || input.instance_ids.contains(&member.instance_id)
                {
                    let mut row = member.output(&group.template_output());
                    row["AutoScalingGroupName"] = json!(group.name);
                    // This action spells health in capitals, unlike DescribeAutoScalingGroups.
                    row["HealthStatus"] = json!(member.health_text().to_ascii_uppercase());
                    rows.push((member.instance_id.clone(), row));
                }
            }
        }
        let next_token = input.next_token.as_deref();
        crate::page_of(
            "AutoScalingInstances",
            rows,
            input.max_records,
            next_token,
            (50, 50),
        )
    }

    pub fn set_desired_capacity(&self, input: SetDesiredCapacityInput) -> Result<Value> {
        let name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            let desired = input.desired_capacity;
            if desired > i64::from(group.max_size) {
                return Err(AutoScalingError::Validation(format!(
                    "New SetDesiredCapacity value {desired} is above max value {} for the AutoScalingGroup.",
                    group.max_size
                )));
            }
            if desired < i64::from(group.min_size) {
                return Err(AutoScalingError::Validation(format!(
                    "New SetDesiredCapacity value {desired} is below min value {} for the AutoScalingGroup.",
                    group.min_size
                )));
            }
            group.set_desired(desired as u32, "a user request explicitly set group desired capacity");
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    pub fn terminate_instance(&self, input: TerminateInstanceInput) -> Result<Value> {
        let id = input.instance_id;
        let activity_id = self.change(|txn| {
            let mut group = group_of(txn.state(), &id)?.clone();
            let mut cause = format!("At {} instance {id} was taken out of service in response to a user request", now_text());
            if input.should_decrement_desired_capacity {
                let desired = group.desired_capacity.saturating_sub(1);
                if desired < group.min_size {
                    return Err(AutoScalingError::Validation(format!(
                        "Currently, desired capacity is {} and min size is {}. Decrementing desired capacity will violate the min size constraint.",
                        group.desired_capacity, group.min_size
                    )));
                }
                cause.push_str(&format!(", shrinking the capacity from {} to {desired}", group.desired_capacity));
                group.desired_capacity = desired;
            }
            cause.push('.');
            group.take_out_of_service(txn, &id, cause)?;
            let activity_id = group.member(&id).map(|m| m.activity_id.clone()).unwrap_or_default();
            txn.put(group)?;
            Ok(activity_id)
        })?;
        let state = self.engine.read();
        let activity = state.activities().get(&activity_id).map(Activity::output);
        Ok(json!({ "Activity": activity }))
    }

    pub fn set_instance_health(&self, input: SetInstanceHealthInput) -> Result<Value> {
        let healthy = match input.health_status.as_str() {
            "Healthy" => true,
            "Unhealthy" => false,
            other => {
                return Err(AutoScalingError::Validation(format!(
                    "Valid instance health states are: [Healthy, Unhealthy]; {other} is not one"
                )))
            }
        };
        let id = input.instance_id;
        self.change(|txn| {
            let mut group = group_of(txn.state(), &id)?.clone();
            let grace_ms = i64::from(group.health_check_grace_period) * 1000;
            let Some(member) = group.member_mut(&id) else {
                return Ok(());
            };
            let in_grace = nimbus_core::now_millis() - member.launched_ms < grace_ms;
            if input.should_respect_grace_period.unwrap_or(true) && in_grace && !healthy {
                // As in AWS: a member still in its grace period is not marked.
                return Ok(());
            }
            member.healthy = healthy;
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    /// AttachInstances: running instances in the group's zones, of no group, join it
    /// InService, and the desired capacity grows by as many.
    pub async fn attach_instances(&self, input: MoveInstancesInput) -> Result<Value> {
        let name = input.auto_scaling_group_name;
        let ids = input.instance_ids;
        let group = existing_group(&self.engine.read(), &name)?.clone();
        if group.desired_capacity as usize + ids.len() > group.max_size as usize {
            return Err(AutoScalingError::Validation(format!(
                "Cannot attach {} instance(s): the desired capacity {} would exceed the group's max size {}.",
                ids.len(),
                group.desired_capacity,
                group.max_size
            )));
        }
        let ec2 = self.ec2()?;
        let views = ec2
            .instances(&ids)
            .await
            .map_err(|e| AutoScalingError::Validation(e.message))?;
        for id in &ids {
            let view = views.iter().find(|v| &v.instance_id == id).ok_or_else(|| {
                AutoScalingError::Validation(format!("Instance {id} is not a valid instance ID."))
            })?;
            if view.state != "running" {
                return Err(AutoScalingError::Validation(format!(
                    "Instance {id} is not in the running state ({})",
                    view.state
                )));
            }
            if !group.zones.contains(&view.zone) {
                return Err(AutoScalingError::Validation(format!(
                    "Instance {id} is in {}, which is not a zone of the group",
                    view.zone
                )));
            }
            if self
                .engine
                .read()
                .groups()
                .values()
                .any(|g| g.member(id).is_some())
            {
                return Err(AutoScalingError::Validation(format!(
                    "The instance {id} is already part of an Auto Scaling group."
                )));
            }
        }
        for id in &ids {
            ec2.set_group(id, Some(&name))
                .await
                .map_err(|e| AutoScalingError::Validation(e.message))?;
        }
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            let from = group.desired_capacity;
            let now = nimbus_core::now_millis();
            for view in views.iter().filter(|v| ids.contains(&v.instance_id)) {
                if group.member(&view.instance_id).is_some() {
                    continue;
                }
                let mut activity = Activity::new(
                    &group,
                    format!("Attaching an existing EC2 instance: {}", view.instance_id),
                    format!(
                        "At {} a user request AttachInstances changing the desired capacity from {from} to {}.",
                        now_text(),
                        from as usize + ids.len()
                    ),
                    Status::Successful,
                );
                activity.set_status(Status::Successful, 100);
                activity.zone = view.zone.clone();
                activity.subnet_id = view.subnet_id.clone();
                group.members.push(Member {
                    instance_id: view.instance_id.clone(),
                    instance_type: view.instance_type.clone(),
                    zone: view.zone.clone(),
                    subnet_id: view.subnet_id.clone(),
                    lifecycle: Lifecycle::InService,
                    healthy: true,
                    protected: group.new_instances_protected_from_scale_in,
                    launched_ms: now,
                    in_service_ms: now,
                    template_id: String::new(),
                    template_version: None,
                    activity_id: activity.activity_id.clone(),
                    waits: Vec::new(),
                });
                activities::record(txn, activity)?;
                group.desired_capacity += 1;
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    /// DetachInstances, EnterStandby and ExitStandby: one activity per instance, answered.
    pub async fn move_instances(&self, input: MoveInstancesInput, to: Move) -> Result<Value> {
        let name = input.auto_scaling_group_name;
        let ids = input.instance_ids;
        let decrement = match (to, input.should_decrement_desired_capacity) {
            (Move::ExitStandby, _) => false,
            (_, Some(decrement)) => decrement,
            (_, None) => {
                return Err(AutoScalingError::Validation(
                    "ShouldDecrementDesiredCapacity is required".into(),
                ))
            }
        };
        let recorded = self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            let mut recorded = Vec::new();
            for id in &ids {
                let member = group.member(id).cloned().ok_or_else(|| {
                    AutoScalingError::Validation(format!(
                        "The instance {id} is not part of Auto Scaling group {name}."
                    ))
                })?;
                let (allowed, description) = match to {
                    Move::Detach => (
                        matches!(member.lifecycle, Lifecycle::InService | Lifecycle::Standby),
                        format!("Detaching EC2 instance: {id}"),
                    ),
                    Move::EnterStandby => (
                        member.lifecycle == Lifecycle::InService,
                        format!("Moving EC2 instance to Standby: {id}"),
                    ),
                    Move::ExitStandby => (
                        member.lifecycle == Lifecycle::Standby,
                        format!("Moving EC2 instance out of Standby: {id}"),
                    ),
                };
                if !allowed {
                    return Err(AutoScalingError::Validation(format!(
                        "The instance {id} is not in the right state ({}) for this operation.",
                        member.lifecycle.as_str()
                    )));
                }
                let from = group.desired_capacity;
                let counted = member.counts();
                if to == Move::ExitStandby {
                    group.desired_capacity += 1;
                } else if decrement && counted {
                    group.desired_capacity = group.desired_capacity.saturating_sub(1);
                }
                if group.desired_capacity < group.min_size || group.desired_capacity > group.max_size {
                    return Err(AutoScalingError::Validation(format!(
                        "This operation would take the desired capacity to {}, outside the group's bounds ({} to {}).",
                        group.desired_capacity, group.min_size, group.max_size
                    )));
                }
                let cause = format!(
                    "At {} a user request {} changing the desired capacity from {from} to {}.",
                    now_text(),
                    match to {
                        Move::Detach => "detached instance(s)",
                        Move::EnterStandby => "moved instance(s) to Standby",
                        Move::ExitStandby => "moved instance(s) out of Standby",
                    },
                    group.desired_capacity
                );
                let mut activity = Activity::new(&group, description, cause, Status::Successful);
                activity.set_status(Status::Successful, 100);
                activity.zone = member.zone.clone();
                activity.subnet_id = member.subnet_id.clone();
                match to {
                    Move::Detach => group.members.retain(|m| &m.instance_id != id),
                    Move::EnterStandby | Move::ExitStandby => {
                        if let Some(member) = group.member_mut(id) {
                            member.lifecycle = if to == Move::EnterStandby {
                                Lifecycle::Standby
                            } else {
                                Lifecycle::InService
                            };
                        }
                    }
                }
                recorded.push(activity.output());
                activities::record(txn, activity)?;
            }
            txn.put(group)?;
            Ok(recorded)
        })?;
        if to == Move::Detach {
            for id in &ids {
                if let Err(refusal) = self.ec2()?.set_group(id, None).await {
                    tracing::warn!(instance = %id, %refusal, "a detached instance keeps its group tag");
                }
            }
        }
        Ok(json!({ "Activities": recorded }))
    }

    pub fn set_instance_protection(&self, input: SetInstanceProtectionInput) -> Result<Value> {
        let name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            for id in &input.instance_ids {
                let member = group.member_mut(id).ok_or_else(|| {
                    AutoScalingError::Validation(format!(
                        "The instance {id} is not part of Auto Scaling group {name}."
                    ))
                })?;
                member.protected = input.protected_from_scale_in;
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }
}
