//! Instance refresh: Start/Describe/CancelInstanceRefresh. A rolling refresh replaces every
//! member that was in the group when it started, a batch at a time: it takes out of service
//! only as many as keep `MinHealthyPercentage` of the desired capacity InService and warmed
//! up (at least one when nothing else is in flight, so a refresh of a small group moves on),
//! and the group's usual launches fill the difference with the new configuration.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::groups::{
    existing_group, now_text, template_choice, Group, LaunchTemplateInput,
    MixedInstancesPolicyInput,
};
use crate::members::Lifecycle;
use crate::{AutoScaling, AutoScalingError, Result};

/// Refreshes kept per group, newest last.
const KEPT: usize = 10;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refresh {
    pub id: String,
    /// `InProgress`, `Successful`, `Cancelled`.
    pub status: String,
    pub status_reason: Option<String>,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub min_healthy_percentage: u32,
    pub instance_warmup: Option<u32>,
    pub skip_matching: bool,
    /// The members to replace, as they were at the start.
    pub to_replace: Vec<String>,
    pub replaced: usize,
}

impl Refresh {
    fn output(&self, group: &str) -> Value {
        let total = self.to_replace.len() + self.replaced;
        let mut output = json!({
            "InstanceRefreshId": self.id,
            "AutoScalingGroupName": group,
            "Status": self.status,
            "StartTime": nimbus_core::iso8601_millis(self.start_ms),
            "PercentageComplete": (self.replaced * 100).checked_div(total).unwrap_or(100),
            "InstancesToUpdate": self.to_replace.len(),
            "Preferences": {
                "MinHealthyPercentage": self.min_healthy_percentage,
                "SkipMatching": self.skip_matching,
                "MaxHealthyPercentage": 100,
            },
        });
        if let Some(warmup) = self.instance_warmup {
            output["Preferences"]["InstanceWarmup"] = json!(warmup);
        }
        if let Some(end) = self.end_ms {
            output["EndTime"] = json!(nimbus_core::iso8601_millis(end));
        }
        if let Some(reason) = &self.status_reason {
            output["StatusReason"] = json!(reason);
        }
        output
    }

    fn finish(&mut self, status: &str, reason: &str) {
        self.status = status.into();
        self.status_reason = Some(reason.into());
        self.end_ms = Some(nimbus_core::now_millis());
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PreferencesInput {
    min_healthy_percentage: Option<i64>,
    max_healthy_percentage: Option<i64>,
    instance_warmup: Option<i64>,
    skip_matching: Option<bool>,
    scale_in_protected_instances: Option<String>,
    standby_instances: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DesiredConfigurationInput {
    launch_template: Option<LaunchTemplateInput>,
    mixed_instances_policy: Option<MixedInstancesPolicyInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct StartInstanceRefreshInput {
    auto_scaling_group_name: String,
    strategy: Option<String>,
    preferences: Option<PreferencesInput>,
    desired_configuration: Option<DesiredConfigurationInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeInstanceRefreshesInput {
    auto_scaling_group_name: String,
    #[serde(default)]
    instance_refresh_ids: Vec<String>,
    next_token: Option<String>,
    max_records: Option<i64>,
}

fn validation(message: impl Into<String>) -> AutoScalingError {
    AutoScalingError::Validation(message.into())
}

impl Group {
    fn active_refresh(&mut self) -> Option<&mut Refresh> {
        self.refreshes
            .iter_mut()
            .rev()
            .find(|r| r.status == "InProgress")
    }

    /// Takes the next batch of the active refresh out of service, and ends the refresh once
    /// every member it had to replace is gone and the group is back to its capacity.
    pub(crate) fn refresh_step(&mut self, txn: &mut engine::Txn) -> Result<()> {
        if self.suspended("InstanceRefresh") {
            return Ok(());
        }
        let now = nimbus_core::now_millis();
        let desired = self.desired_capacity as usize;
        let group_warmup = self.default_instance_warmup;
        let members = self.members.clone();
        let Some(refresh) = self.active_refresh() else {
            return Ok(());
        };
        let present: Vec<String> = (refresh.to_replace.iter())
            .filter(|id| {
                members
                    .iter()
                    .any(|m| &m.instance_id == *id && !m.leaving())
            })
            .cloned()
            .collect();
        refresh.replaced += refresh.to_replace.len() - present.len();
        refresh.to_replace = present;
        let warmup_ms = i64::from(refresh.instance_warmup.or(group_warmup).unwrap_or(0)) * 1000;
        let ready = (members.iter())
            .filter(|m| m.lifecycle == Lifecycle::InService && m.healthy)
            .filter(|m| now - m.in_service_ms >= warmup_ms)
            .count();
        if refresh.to_replace.is_empty() {
            if ready >= desired {
                refresh.finish(
                    "Successful",
                    "The instance refresh replaced every instance.",
                );
            }
            return Ok(());
        }
        let min_healthy = (desired * refresh.min_healthy_percentage as usize).div_ceil(100);
        let in_flight = members
            .iter()
            .any(|m| m.lifecycle != Lifecycle::InService || now - m.in_service_ms < warmup_ms);
        let batch = match ready.saturating_sub(min_healthy) {
            0 if !in_flight && ready >= desired => 1,
            n => n,
        };
        let chosen: Vec<String> = refresh.to_replace.iter().take(batch).cloned().collect();
        for id in chosen {
            let cause = format!(
                "At {} an instance was taken out of service in response to an instance refresh.  At {} instance {id} was selected for termination.",
                now_text(),
                now_text()
            );
            self.take_out_of_service(txn, &id, cause)?;
        }
        Ok(())
    }
}

impl AutoScaling {
    pub async fn start_refresh(&self, input: StartInstanceRefreshInput) -> Result<Value> {
        if input.strategy.as_deref().is_some_and(|s| s != "Rolling") {
            return Err(validation("Strategy must be Rolling"));
        }
        let preferences = input.preferences.unwrap_or(PreferencesInput {
            min_healthy_percentage: None,
            max_healthy_percentage: None,
            instance_warmup: None,
            skip_matching: None,
            scale_in_protected_instances: None,
            standby_instances: None,
        });
        let min_healthy = preferences.min_healthy_percentage.unwrap_or(90);
        if !(0..=100).contains(&min_healthy) {
            return Err(validation("MinHealthyPercentage must be between 0 and 100"));
        }
        if preferences.max_healthy_percentage.is_some_and(|m| m != 100) {
            return Err(validation(
                "MaxHealthyPercentage other than 100 (launching before terminating) is not supported by nimbus",
            ));
        }
        if preferences
            .scale_in_protected_instances
            .as_deref()
            .is_some_and(|p| p != "Ignore")
            || preferences
                .standby_instances
                .as_deref()
                .is_some_and(|p| p != "Ignore")
        {
            return Err(validation(
                "ScaleInProtectedInstances and StandbyInstances other than Ignore are not supported by nimbus",
            ));
        }
        let warmup = match preferences.instance_warmup {
            Some(w) => Some(
                u32::try_from(w).map_err(|_| validation("InstanceWarmup must be at least 0"))?,
            ),
            None => None,
        };
        let choice = match input.desired_configuration {
            Some(desired) => {
                template_choice(desired.launch_template, desired.mixed_instances_policy)?
            }
            None => None,
        };
        let found = match &choice {
            Some(choice) => Some(self.found_template(&choice.spec).await?),
            None => None,
        };
        let name = input.auto_scaling_group_name;
        let id = nimbus_core::new_uuid();
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            if group.active_refresh().is_some() {
                return Err(AutoScalingError::InstanceRefreshInProgress(format!(
                    "An Instance Refresh is already in progress and blocks the execution of this Instance Refresh for group {name}."
                )));
            }
            if let (Some(choice), Some(found)) = (choice, found) {
                group.use_template(choice, found);
            }
            let skip_matching = preferences.skip_matching.unwrap_or(false);
            let to_replace = (group.members.iter())
                .filter(|m| !m.leaving())
                .filter(|m| {
                    !skip_matching
                        || m.template_id != group.template_id
                        || m.template_version != group.template.version
                })
                .map(|m| m.instance_id.clone())
                .collect();
            group.refreshes.push(Refresh {
                id: id.clone(),
                status: "InProgress".into(),
                status_reason: None,
                start_ms: nimbus_core::now_millis(),
                end_ms: None,
                min_healthy_percentage: min_healthy as u32,
                instance_warmup: warmup,
                skip_matching,
                to_replace,
                replaced: 0,
            });
            let excess = group.refreshes.len().saturating_sub(KEPT);
            group.refreshes.drain(..excess);
            Ok(txn.put(group)?)
        })?;
        Ok(json!({ "InstanceRefreshId": id }))
    }

    pub fn cancel_refresh(&self, group_name: &str) -> Result<Value> {
        let id = self.change(|txn| {
            let mut group = existing_group(txn.state(), group_name)?.clone();
            let refresh = group.active_refresh().ok_or_else(|| {
                AutoScalingError::ActiveInstanceRefreshNotFound(format!(
                    "No in progress or pending Instance Refresh found for Auto Scaling group {group_name}"
                ))
            })?;
            refresh.finish("Cancelled", "The instance refresh was cancelled by a user request.");
            let id = refresh.id.clone();
            txn.put(group)?;
            Ok(id)
        })?;
        Ok(json!({ "InstanceRefreshId": id }))
    }

    pub fn describe_refreshes(&self, input: DescribeInstanceRefreshesInput) -> Result<Value> {
        let state = self.engine.read();
        let group = existing_group(&state, &input.auto_scaling_group_name)?;
        let refreshes: Vec<(String, Value)> = (group.refreshes.iter().rev())
            .filter(|r| {
                input.instance_refresh_ids.is_empty() || input.instance_refresh_ids.contains(&r.id)
            })
            .map(|r| {
                (
                    format!("{:020}", i64::MAX - r.start_ms),
                    r.output(&group.name),
                )
            })
            .collect();
        let next_token = input.next_token.as_deref();
        crate::page_of(
            "InstanceRefreshes",
            refreshes,
            input.max_records,
            next_token,
            (50, 100),
        )
    }
}
