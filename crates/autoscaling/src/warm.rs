//! Warm pools: Put/Describe/DeleteWarmPool. A group keeps instances launched ahead of need,
//! their user data run, then stopped (`Stopped`), left running (`Running`) or hibernated
//! (`Hibernated`: memory saved next to the volumes). A scale-out takes a warm instance first:
//! a running one is InService at once, a stopped or hibernated one is started (a hibernated
//! one resumes where it was, processes and page cache included).
//!
//! The pool holds `MaxGroupPreparedCapacity` (default the group's `MaxSize`) minus the desired
//! capacity, at least its `MinSize`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::activities::{self, Status};
use crate::ec2::InstanceView;
use crate::groups::{existing_group, now_text, Group};
use crate::hooks::LAUNCHING;
use crate::members::Lifecycle;
use crate::{AutoScaling, AutoScalingError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmPool {
    /// `Stopped`, `Running` or `Hibernated`.
    pub pool_state: String,
    pub min_size: u32,
    pub max_group_prepared_capacity: Option<u32>,
    /// DeleteWarmPool: its instances are terminated, then the pool goes.
    pub deleting: bool,
}

impl WarmPool {
    pub(crate) fn output(&self) -> Value {
        let mut output = json!({
            "MinSize": self.min_size,
            "PoolState": self.pool_state,
            "InstanceReusePolicy": { "ReuseOnScaleIn": false },
        });
        if let Some(max) = self.max_group_prepared_capacity {
            output["MaxGroupPreparedCapacity"] = json!(max);
        }
        if self.deleting {
            output["Status"] = json!("PendingDelete");
        }
        output
    }

    /// The warmed state its instances rest in.
    fn resting(&self) -> Lifecycle {
        match self.pool_state.as_str() {
            "Running" => Lifecycle::WarmedRunning,
            "Hibernated" => Lifecycle::WarmedHibernated,
            _ => Lifecycle::WarmedStopped,
        }
    }
}

/// What the EC2 side of a pass does for the warm pool.
#[derive(Debug, Default, PartialEq)]
pub struct WarmCalls {
    /// Warm instances to stop (`hibernate` true: to hibernate).
    pub stop: Vec<(String, bool)>,
    /// Warm instances taken into service, to start.
    pub start: Vec<String>,
}

impl Group {
    /// How many instances the pool should hold now.
    pub(crate) fn warm_target(&self) -> usize {
        match &self.warm_pool {
            Some(pool) if !pool.deleting && !self.deleting => {
                let prepared = pool.max_group_prepared_capacity.unwrap_or(self.max_size);
                (prepared.saturating_sub(self.desired_capacity)).max(pool.min_size) as usize
            }
            _ => 0,
        }
    }

    pub(crate) fn warm_count(&self) -> usize {
        self.members.iter().filter(|m| m.warm()).count() + self.warm_launching.len()
    }

    /// Brings warm instances to rest, takes them into service when the group is short, and
    /// trims the pool to its size; removes a deleted pool once it is empty.
    pub(crate) fn warm_step(
        &mut self,
        txn: &mut engine::Txn,
        views: &std::collections::BTreeMap<String, InstanceView>,
    ) -> Result<WarmCalls> {
        let mut calls = WarmCalls::default();
        let resting = self.warm_pool.as_ref().map(WarmPool::resting);
        for index in 0..self.members.len() {
            let mut member = self.members[index].clone();
            let state = views.get(&member.instance_id).map(|v| v.state.as_str());
            let mut abandoned = false;
            // Launch lifecycle hooks hold a warm instance too (`Warmed:Pending:Wait`), so its
            // user data can finish before it rests.
            if member.lifecycle == Lifecycle::WarmedPending && state == Some("running") {
                member.lifecycle = if self.hold_at_hooks(&mut member, LAUNCHING) {
                    Lifecycle::WarmedPendingWait
                } else {
                    Lifecycle::WarmedProceed
                };
            }
            if member.lifecycle == Lifecycle::WarmedPendingWait {
                match member.hooks_outcome() {
                    Some("CONTINUE") => member.lifecycle = Lifecycle::WarmedProceed,
                    Some(_) => abandoned = true,
                    None => {}
                }
            }
            if let (Lifecycle::WarmedProceed, Some(rest)) = (member.lifecycle, resting) {
                match state {
                    Some("running") if rest == Lifecycle::WarmedRunning => member.lifecycle = rest,
                    Some("running") => calls.stop.push((
                        member.instance_id.clone(),
                        rest == Lifecycle::WarmedHibernated,
                    )),
                    Some("stopped") => member.lifecycle = rest,
                    _ => {}
                }
            }
            let id = member.instance_id.clone();
            self.members[index] = member;
            if abandoned {
                let cause = format!(
                    "At {} an instance was taken out of the warm pool in response to a launch lifecycle action being abandoned.",
                    now_text()
                );
                self.take_out_of_service(txn, &id, cause)?;
            }
        }
        // Scale-out from the pool: running instances first, then the others.
        let short = (self.desired_capacity as usize).saturating_sub(self.capacity());
        if short > 0 && !self.deleting && !self.suspended("Launch") {
            let mut ready: Vec<usize> = (0..self.members.len())
                .filter(|&i| {
                    matches!(
                        self.members[i].lifecycle,
                        Lifecycle::WarmedRunning
                            | Lifecycle::WarmedStopped
                            | Lifecycle::WarmedHibernated
                    )
                })
                .collect();
            ready.sort_by_key(|&i| self.members[i].lifecycle != Lifecycle::WarmedRunning);
            let cause = format!(
                "At {} an instance was taken from the warm pool in response to a difference between desired and actual capacity, increasing the capacity from {} to {}.",
                now_text(),
                self.capacity(),
                self.desired_capacity
            );
            for index in ready.into_iter().take(short) {
                let (id, zone, subnet_id, lifecycle) = {
                    let member = &self.members[index];
                    (
                        member.instance_id.clone(),
                        member.zone.clone(),
                        member.subnet_id.clone(),
                        member.lifecycle,
                    )
                };
                let mut activity = crate::activities::Activity::new(
                    self,
                    format!("Launching a new EC2 instance from warm pool: {id}"),
                    cause.clone(),
                    Status::PreInService,
                );
                activity.zone = zone;
                activity.subnet_id = subnet_id;
                let member = &mut self.members[index];
                member.activity_id = activity.activity_id.clone();
                member.launched_ms = nimbus_core::now_millis();
                if lifecycle != Lifecycle::WarmedRunning {
                    calls.start.push(id);
                }
                member.lifecycle = Lifecycle::Pending;
                activities::record(txn, activity)?;
            }
        }
        // Trim the pool: the newest warm instances go first.
        let excess = self.warm_count().saturating_sub(self.warm_target());
        if excess > 0 {
            let mut warm: Vec<(i64, String)> = (self.members.iter())
                .filter(|m| m.warm())
                .map(|m| (m.launched_ms, m.instance_id.clone()))
                .collect();
            warm.sort_by(|a, b| b.cmp(a));
            for (_, id) in warm.into_iter().take(excess) {
                let cause = format!(
                    "At {} an instance was taken out of the warm pool in response to a warm pool size adjustment.",
                    now_text()
                );
                self.take_out_of_service(txn, &id, cause)?;
            }
        }
        if self.warm_pool.as_ref().is_some_and(|p| p.deleting)
            && self.warm_launching.is_empty()
            && !self.members.iter().any(|m| m.in_pool())
        {
            self.warm_pool = None;
        }
        Ok(calls)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutWarmPoolInput {
    auto_scaling_group_name: String,
    max_group_prepared_capacity: Option<i64>,
    min_size: Option<i64>,
    pool_state: Option<String>,
    instance_reuse_policy: Option<InstanceReusePolicy>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InstanceReusePolicy {
    reuse_on_scale_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeWarmPoolInput {
    auto_scaling_group_name: String,
    max_records: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteWarmPoolInput {
    auto_scaling_group_name: String,
    /// Accepted: warm instances are terminated either way (no lifecycle hook holds them).
    #[serde(default, rename = "ForceDelete")]
    _force_delete: bool,
}

fn validation(message: impl Into<String>) -> AutoScalingError {
    AutoScalingError::Validation(message.into())
}

impl AutoScaling {
    pub async fn put_warm_pool(&self, input: PutWarmPoolInput) -> Result<Value> {
        let pool_state = input.pool_state.unwrap_or_else(|| "Stopped".into());
        if !matches!(pool_state.as_str(), "Stopped" | "Running" | "Hibernated") {
            return Err(validation(format!(
                "PoolState {pool_state} is not valid: Stopped, Running or Hibernated"
            )));
        }
        if input
            .instance_reuse_policy
            .and_then(|p| p.reuse_on_scale_in)
            == Some(true)
        {
            return Err(validation(
                "InstanceReusePolicy.ReuseOnScaleIn is not supported by nimbus",
            ));
        }
        let min_size = u32::try_from(input.min_size.unwrap_or(0))
            .map_err(|_| validation("MinSize must be at least 0"))?;
        // -1 is what the SDKs send to mean "the group's MaxSize".
        let max_prepared = match input.max_group_prepared_capacity {
            None | Some(-1) => None,
            Some(n) => Some(
                u32::try_from(n)
                    .map_err(|_| validation("MaxGroupPreparedCapacity must be -1 or at least 0"))?,
            ),
        };
        let name = input.auto_scaling_group_name;
        if pool_state == "Hibernated" {
            let template = existing_group(&self.engine.read(), &name)?.template.clone();
            if !self.found_template(&template).await?.hibernation {
                return Err(validation(
                    "PoolState Hibernated needs a launch template with HibernationOptions.Configured set to true",
                ));
            }
        }
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            if group.warm_pool.as_ref().is_some_and(|p| p.deleting) {
                return Err(validation("The warm pool is being deleted"));
            }
            if max_prepared.is_some_and(|m| m < min_size) {
                return Err(validation(
                    "MaxGroupPreparedCapacity must be at least the warm pool's MinSize",
                ));
            }
            group.warm_pool = Some(WarmPool {
                pool_state,
                min_size,
                max_group_prepared_capacity: max_prepared,
                deleting: false,
            });
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    pub fn describe_warm_pool(&self, input: DescribeWarmPoolInput) -> Result<Value> {
        let state = self.engine.read();
        let group = existing_group(&state, &input.auto_scaling_group_name)?;
        let template = group.template_output();
        let rows: Vec<(String, Value)> = (group.members.iter())
            .filter(|m| m.in_pool())
            .map(|m| (m.instance_id.clone(), m.output(&template)))
            .collect();
        let next_token = input.next_token.as_deref();
        let mut output =
            crate::page_of("Instances", rows, input.max_records, next_token, (50, 100))?;
        if let Some(pool) = &group.warm_pool {
            output["WarmPoolConfiguration"] = pool.output();
        }
        Ok(output)
    }

    pub fn delete_warm_pool(&self, input: DeleteWarmPoolInput) -> Result<Value> {
        let name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            let pool = group.warm_pool.as_mut().ok_or_else(|| {
                validation(format!("No warm pool found for Auto Scaling group {name}"))
            })?;
            pool.deleting = true;
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }
}
