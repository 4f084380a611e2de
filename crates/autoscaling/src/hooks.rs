//! Lifecycle hooks: Put/Describe/DeleteLifecycleHook, CompleteLifecycleAction and
//! RecordLifecycleActionHeartbeat. A launching member waits in `Pending:Wait`, a leaving one
//! in `Terminating:Wait`, until every hook of the transition is completed or its heartbeat
//! timeout passes and its default result applies. A launch any hook abandons is terminated.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::groups::{existing_group, Group};
use crate::members::{Lifecycle, Member};
use crate::{AutoScaling, AutoScalingError, Result};

pub const LAUNCHING: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";
/// AWS's bounds and default of `HeartbeatTimeout`, in seconds.
const HEARTBEAT_BOUNDS: (u32, u32) = (30, 7200);
const DEFAULT_HEARTBEAT: u32 = 3600;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub name: String,
    pub transition: String,
    pub heartbeat_timeout: u32,
    /// `CONTINUE` or `ABANDON`.
    pub default_result: String,
    pub metadata: Option<String>,
    pub role_arn: Option<String>,
}

impl Hook {
    fn output(&self, group: &str) -> Value {
        let mut output = json!({
            "LifecycleHookName": self.name,
            "AutoScalingGroupName": group,
            "LifecycleTransition": self.transition,
            "HeartbeatTimeout": self.heartbeat_timeout,
            "GlobalTimeout": (self.heartbeat_timeout * 100).min(172_800),
            "DefaultResult": self.default_result,
        });
        if let Some(metadata) = &self.metadata {
            output["NotificationMetadata"] = json!(metadata);
        }
        if let Some(role) = &self.role_arn {
            output["RoleARN"] = json!(role);
        }
        output
    }
}

/// One hook a member waits on, and how it ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookWait {
    pub hook: String,
    pub token: String,
    pub deadline_ms: i64,
    pub heartbeat_timeout: u32,
    pub default_result: String,
    pub result: Option<String>,
}

impl Group {
    /// Holds `member` at `transition`'s hooks: true when it has to wait.
    pub(crate) fn hold_at_hooks(&self, member: &mut Member, transition: &str) -> bool {
        let now = nimbus_core::now_millis();
        member.waits = (self.hooks.iter())
            .filter(|hook| hook.transition == transition)
            .map(|hook| HookWait {
                hook: hook.name.clone(),
                token: nimbus_core::new_uuid(),
                deadline_ms: now + i64::from(hook.heartbeat_timeout) * 1000,
                heartbeat_timeout: hook.heartbeat_timeout,
                default_result: hook.default_result.clone(),
                result: None,
            })
            .collect();
        !member.waits.is_empty()
    }
}

impl Member {
    /// The outcome of the member's waits once all have ended (the default result for a timed
    /// out one): `CONTINUE` unless any was abandoned.
    pub(crate) fn hooks_outcome(&mut self) -> Option<&'static str> {
        let now = nimbus_core::now_millis();
        for wait in &mut self.waits {
            if wait.result.is_none() && now >= wait.deadline_ms {
                wait.result = Some(wait.default_result.clone());
            }
        }
        if self.waits.iter().any(|w| w.result.is_none()) {
            return None;
        }
        let abandoned = self
            .waits
            .iter()
            .any(|w| w.result.as_deref() == Some("ABANDON"));
        self.waits.clear();
        Some(if abandoned { "ABANDON" } else { "CONTINUE" })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutLifecycleHookInput {
    lifecycle_hook_name: String,
    auto_scaling_group_name: String,
    lifecycle_transition: Option<String>,
    #[serde(rename = "RoleARN")]
    role_arn: Option<String>,
    #[serde(rename = "NotificationTargetARN")]
    notification_target_arn: Option<String>,
    notification_metadata: Option<String>,
    heartbeat_timeout: Option<i64>,
    default_result: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeLifecycleHooksInput {
    auto_scaling_group_name: String,
    #[serde(default)]
    lifecycle_hook_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteLifecycleHookInput {
    lifecycle_hook_name: String,
    auto_scaling_group_name: String,
}

/// CompleteLifecycleAction and RecordLifecycleActionHeartbeat (without a result).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LifecycleActionInput {
    lifecycle_hook_name: String,
    auto_scaling_group_name: String,
    lifecycle_action_token: Option<String>,
    instance_id: Option<String>,
    lifecycle_action_result: Option<String>,
}

fn validation(message: impl Into<String>) -> AutoScalingError {
    AutoScalingError::Validation(message.into())
}

impl AutoScaling {
    pub fn put_hook(&self, input: PutLifecycleHookInput) -> Result<Value> {
        if input
            .notification_target_arn
            .as_deref()
            .is_some_and(|t| !t.is_empty())
        {
            return Err(validation(
                "NotificationTargetARN is not supported by nimbus: it has no SNS or SQS yet (poll DescribeAutoScalingGroups for Pending:Wait)",
            ));
        }
        let timeout = match input.heartbeat_timeout {
            None => DEFAULT_HEARTBEAT,
            Some(t) if t >= i64::from(HEARTBEAT_BOUNDS.0) && t <= i64::from(HEARTBEAT_BOUNDS.1) => {
                t as u32
            }
            Some(t) => {
                return Err(validation(format!(
                    "Heartbeat timeout {t} is out of bounds: it must be between {} and {} seconds",
                    HEARTBEAT_BOUNDS.0, HEARTBEAT_BOUNDS.1
                )))
            }
        };
        let default_result = input.default_result.unwrap_or_else(|| "ABANDON".into());
        if !matches!(default_result.as_str(), "CONTINUE" | "ABANDON") {
            return Err(validation(format!(
                "Valid values for DefaultResult are CONTINUE and ABANDON, not {default_result}"
            )));
        }
        let name = input.lifecycle_hook_name;
        let group_name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &group_name)?.clone();
            let previous = group.hooks.iter().find(|h| h.name == name).cloned();
            let transition = match (input.lifecycle_transition, &previous) {
                (Some(t), _) => t,
                (None, Some(previous)) => previous.transition.clone(),
                (None, None) => return Err(validation("LifecycleTransition is required for a new lifecycle hook")),
            };
            if transition != LAUNCHING && transition != TERMINATING {
                return Err(validation(format!(
                    "Invalid value for LifecycleTransition: {transition} ({LAUNCHING} or {TERMINATING})"
                )));
            }
            if previous.is_none() && group.hooks.len() >= 50 {
                return Err(AutoScalingError::LimitExceeded(
                    "A group may have at most 50 lifecycle hooks".into(),
                ));
            }
            group.hooks.retain(|h| h.name != name);
            group.hooks.push(Hook {
                name,
                transition,
                heartbeat_timeout: timeout,
                default_result,
                metadata: input.notification_metadata,
                role_arn: input.role_arn,
            });
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    pub fn describe_hooks(&self, input: DescribeLifecycleHooksInput) -> Result<Value> {
        let state = self.engine.read();
        let group = existing_group(&state, &input.auto_scaling_group_name)?;
        let hooks: Vec<Value> = (group.hooks.iter())
            .filter(|h| {
                input.lifecycle_hook_names.is_empty()
                    || input.lifecycle_hook_names.contains(&h.name)
            })
            .map(|h| h.output(&group.name))
            .collect();
        Ok(json!({ "LifecycleHooks": hooks }))
    }

    pub fn delete_hook(&self, input: DeleteLifecycleHookInput) -> Result<Value> {
        let name = input.lifecycle_hook_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &input.auto_scaling_group_name)?.clone();
            if !group.hooks.iter().any(|h| h.name == name) {
                return Err(validation(format!(
                    "No Lifecycle Hook found with name {name}"
                )));
            }
            group.hooks.retain(|h| h.name != name);
            // Members waiting on it go on as if it had completed with its default.
            for member in &mut group.members {
                member.waits.retain(|w| w.hook != name);
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    /// CompleteLifecycleAction (`complete`) or RecordLifecycleActionHeartbeat.
    pub fn lifecycle_action(&self, input: LifecycleActionInput, complete: bool) -> Result<Value> {
        let result = if complete {
            match input.lifecycle_action_result.as_deref() {
                Some(r @ ("CONTINUE" | "ABANDON")) => Some(r.to_owned()),
                other => {
                    return Err(validation(format!(
                        "Valid values for LifecycleActionResult are CONTINUE and ABANDON, not {}",
                        other.unwrap_or("nothing")
                    )))
                }
            }
        } else {
            None
        };
        let hook = input.lifecycle_hook_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &input.auto_scaling_group_name)?.clone();
            let wait = group
                .members
                .iter_mut()
                .filter(|m| {
                    matches!(
                        m.lifecycle,
                        Lifecycle::PendingWait
                            | Lifecycle::TerminatingWait
                            | Lifecycle::WarmedPendingWait
                    )
                })
                .filter(|m| {
                    input
                        .instance_id
                        .as_ref()
                        .is_none_or(|id| &m.instance_id == id)
                })
                .flat_map(|m| m.waits.iter_mut())
                .find(|w| {
                    w.hook == hook
                        && w.result.is_none()
                        && input
                            .lifecycle_action_token
                            .as_ref()
                            .is_none_or(|t| &w.token == t)
                })
                .ok_or_else(|| {
                    validation(format!(
                        "No active Lifecycle Action found with instance ID {}",
                        input.instance_id.as_deref().unwrap_or("(none given)")
                    ))
                })?;
            match &result {
                Some(result) => wait.result = Some(result.clone()),
                None => {
                    wait.deadline_ms =
                        nimbus_core::now_millis() + i64::from(wait.heartbeat_timeout) * 1000;
                }
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }
}
