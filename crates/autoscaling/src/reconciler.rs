//! The fleet reconciler: brings every group to its desired capacity through EC2. Each pass,
//! per group: finish the launches EC2 has not answered yet, read the members' instances,
//! mark the unhealthy and take them out of service, launch or terminate the difference, and
//! terminate what is leaving.
//!
//! Every change is made on the group as it is in the working set at that moment (never on a
//! copy read before an EC2 call), so a user's change made while EC2 was busy is never undone:
//! the next pass acts on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::activities::{self, Activity, PlannedLaunch, Status};
use crate::ec2::{Ec2, InstanceView, Launch};
use crate::groups::{existing_group, now_text, Group};
use crate::hooks::LAUNCHING;
use crate::kinds::Tables;
use crate::members::{Lifecycle, Member};
use crate::warm::WarmCalls;
use crate::{AutoScaling, Result};

/// What a pass asks of EC2 once its transaction is committed.
struct PassCalls {
    terminate: Vec<String>,
    warm: WarmCalls,
}

/// How long a group waits after EC2 refused a launch before it tries again.
const LAUNCH_BACKOFF: Duration = Duration::from_secs(10);

/// How often a group's instances are looked at when nothing wakes the reconciler.
const TICK: Duration = Duration::from_secs(1);

pub struct FleetReconciler {
    service: Arc<AutoScaling>,
}

impl FleetReconciler {
    pub fn new(service: Arc<AutoScaling>) -> FleetReconciler {
        FleetReconciler { service }
    }
}

#[async_trait]
impl engine::Reconciler for FleetReconciler {
    fn name(&self) -> &'static str {
        "autoscaling"
    }

    async fn pass(&self) {
        let Ok(ec2) = self.service.ec2() else {
            return;
        };
        let names: Vec<String> = self
            .service
            .engine
            .read()
            .groups()
            .keys()
            .cloned()
            .collect();
        for name in names {
            if let Err(error) = self.service.reconcile(ec2, &name).await {
                tracing::warn!(group = %name, %error, "Auto Scaling pass failed; retried next pass");
            }
        }
    }

    async fn wait(&self) {
        let _ = tokio::time::timeout(TICK, self.service.wake.notified()).await;
    }
}

/// Why a member is unhealthy, in the words of the activity that replaces it.
fn unhealthy_reason(
    group: &Group,
    member: &Member,
    view: Option<&InstanceView>,
    elb_unhealthy: bool,
) -> Option<&'static str> {
    if group.suspended("HealthCheck") {
        return None;
    }
    if !member.healthy {
        return Some("a user health-check");
    }
    let state = view.map_or("terminated", |v| v.state.as_str());
    if matches!(
        state,
        "stopping" | "stopped" | "shutting-down" | "terminated"
    ) {
        return Some("an EC2 health check indicating it has been terminated or stopped");
    }
    let grace_over = nimbus_core::now_millis() - member.launched_ms
        >= i64::from(group.health_check_grace_period) * 1000;
    if view.is_some_and(|v| v.impaired) && grace_over {
        return Some("an EC2 instance status checks failure");
    }
    if group.health_check_type == "ELB" && elb_unhealthy && grace_over {
        return Some("an ELB health check failure");
    }
    None
}

/// Where the next launch goes: the zone with the fewest members (then the group's order), and
/// in it the subnet with the fewest.
fn next_placement(group: &Group, planned: &[PlannedLaunch]) -> PlannedLaunch {
    let mut per_zone: BTreeMap<&str, usize> = group.zones.iter().map(|z| (z.as_str(), 0)).collect();
    let mut per_subnet: BTreeMap<&str, usize> = BTreeMap::new();
    let placed = group
        .members
        .iter()
        .filter(|m| m.counts())
        .map(|m| (m.zone.as_str(), m.subnet_id.as_deref()))
        .chain(
            planned
                .iter()
                .map(|p| (p.zone.as_str(), p.subnet_id.as_deref())),
        );
    for (zone, subnet) in placed {
        *per_zone.entry(zone).or_default() += 1;
        if let Some(subnet) = subnet {
            *per_subnet.entry(subnet).or_default() += 1;
        }
    }
    let zone_order = |zone: &str| group.zones.iter().position(|z| z == zone);
    let zone = group
        .zones
        .iter()
        .min_by_key(|z| {
            (
                per_zone.get(z.as_str()).copied().unwrap_or(0),
                zone_order(z),
            )
        })
        .cloned()
        .unwrap_or_default();
    let subnet_id = group
        .subnets
        .iter()
        .filter(|(_, z)| *z == zone)
        .min_by_key(|(s, _)| per_subnet.get(s.as_str()).copied().unwrap_or(0))
        .map(|(s, _)| s.clone());
    PlannedLaunch {
        subnet_id,
        zone,
        instance_type: group.instance_types.first().cloned(),
    }
}

/// The members to terminate to shrink by `count`: from the zone with the most members, then
/// by the group's termination policy. Protected members stay unless the group is deleted.
fn scale_in_choice(group: &Group, count: usize) -> Vec<String> {
    let mut candidates: Vec<&Member> = group
        .members
        .iter()
        .filter(|m| m.counts() && (group.deleting || !m.protected))
        .collect();
    let newest_first = group
        .termination_policies
        .first()
        .is_some_and(|p| p == "NewestInstance");
    let mut chosen = Vec::new();
    while chosen.len() < count && !candidates.is_empty() {
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for member in group
            .members
            .iter()
            .filter(|m| m.counts() && !chosen.contains(&m.instance_id))
        {
            *per_zone.entry(member.zone.as_str()).or_default() += 1;
        }
        let best = candidates
            .iter()
            .enumerate()
            .max_by_key(|(_, m)| {
                let age = if newest_first {
                    m.launched_ms
                } else {
                    -m.launched_ms
                };
                (per_zone.get(m.zone.as_str()).copied().unwrap_or(0), age)
            })
            .map(|(index, _)| index);
        if let Some(index) = best {
            chosen.push(candidates.remove(index).instance_id.clone());
        }
    }
    chosen
}

/// The cause of a launch or termination made for the difference between desired and actual.
fn difference_cause(group: &Group, growing: bool, to: usize) -> String {
    let (verb, action) = if growing {
        ("increasing", "an instance was started")
    } else {
        ("shrinking", "an instance was taken out of service")
    };
    format!(
        "{}  At {} {action} in response to a difference between desired and actual capacity, {verb} the capacity from {} to {to}.",
        group.last_change,
        now_text(),
        group.capacity(),
    )
    .trim_start()
    .to_owned()
}

impl AutoScaling {
    async fn reconcile(&self, ec2: &dyn Ec2, name: &str) -> Result<()> {
        self.finish_launches(ec2, name).await?;
        let ids: Vec<String> = match self.engine.read().groups().get(name) {
            Some(group) => group
                .members
                .iter()
                .map(|m| m.instance_id.clone())
                .collect(),
            None => return Ok(()),
        };
        let views = if ids.is_empty() {
            Vec::new()
        } else {
            ec2.instances(&ids)
                .await
                .map_err(|e| crate::AutoScalingError::Storage(e.to_string()))?
        };
        let views: BTreeMap<String, InstanceView> = views
            .into_iter()
            .map(|v| (v.instance_id.clone(), v))
            .collect();
        let targets = self.read_targets(name).await;
        let elb_unhealthy = AutoScaling::unhealthy_behind_balancers(&targets);
        let Some(calls) = self.observe(name, &views, &elb_unhealthy)? else {
            self.forget_policies(name);
            return Ok(());
        };
        for id in self.sync_targets(name, &targets, calls.terminate).await {
            if let Err(refusal) = ec2.terminate(&id).await {
                tracing::warn!(group = name, instance = %id, %refusal, "termination refused; retried next pass");
            }
        }
        for (id, hibernate) in calls.warm.stop {
            if let Err(refusal) = ec2.stop(&id, hibernate).await {
                tracing::warn!(group = name, instance = %id, %refusal, "a warm instance was not stopped; retried next pass");
            }
        }
        for id in calls.warm.start {
            if let Err(refusal) = ec2.start(&id).await {
                tracing::warn!(group = name, instance = %id, %refusal, "a warm instance was not started; retried next pass");
            }
        }
        if self.plan_launches(name)? > 0 {
            self.finish_launches(ec2, name).await?;
        }
        if let (Some(sink), Some(group)) = (
            self.metric_sink.get(),
            self.engine.read().groups().get(name),
        ) {
            self.publisher.publish(group, sink.as_ref());
        }
        Ok(())
    }

    /// Updates members from what EC2 shows, takes the unhealthy and the surplus out of
    /// service, and removes the group once a forced delete has emptied it. Returns the
    /// members to terminate, or `None` once the group is gone.
    fn observe(
        &self,
        name: &str,
        views: &BTreeMap<String, InstanceView>,
        elb_unhealthy: &BTreeSet<String>,
    ) -> Result<Option<PassCalls>> {
        self.engine.mutate(|txn| {
            let Ok(group) = existing_group(txn.state(), name) else {
                return Ok(None);
            };
            let mut group = group.clone();
            let mut gone = Vec::new();
            for index in 0..group.members.len() {
                let mut member = group.members[index].clone();
                let view = views.get(&member.instance_id);
                let terminated = view.is_none_or(|v| v.state == "terminated");
                if member.leaving() && terminated {
                    activities::update(txn, &member.activity_id, |a| {
                        a.set_status(Status::Successful, 100)
                    })?;
                    gone.push(member.instance_id.clone());
                    continue;
                }
                if member.in_pool() {
                    // Warm instances are the pool's (`warm_step`); one that died just goes.
                    if terminated {
                        gone.push(member.instance_id.clone());
                    }
                    continue;
                }
                let mut abandoned = false;
                let outcome = match member.lifecycle {
                    Lifecycle::PendingWait | Lifecycle::TerminatingWait => member.hooks_outcome(),
                    _ => None,
                };
                match (member.lifecycle, outcome) {
                    (Lifecycle::Pending, _) if view.is_some_and(|v| v.state == "running") => {
                        member.lifecycle = if group.hold_at_hooks(&mut member, LAUNCHING) {
                            Lifecycle::PendingWait
                        } else {
                            Lifecycle::InService
                        };
                    }
                    (Lifecycle::PendingWait, Some("CONTINUE")) => {
                        member.lifecycle = Lifecycle::InService
                    }
                    (Lifecycle::PendingWait, Some(_)) => abandoned = true,
                    (Lifecycle::TerminatingWait, Some(_)) => {
                        member.lifecycle = Lifecycle::Terminating
                    }
                    _ => {}
                }
                if member.lifecycle == Lifecycle::InService
                    && group.members[index].lifecycle != Lifecycle::InService
                {
                    member.in_service_ms = nimbus_core::now_millis();
                    activities::update(txn, &member.activity_id, |a| {
                        a.set_status(Status::Successful, 100)
                    })?;
                }
                group.members[index] = member.clone();
                if abandoned {
                    let cause = format!(
                        "At {} an instance was taken out of service in response to a launch lifecycle action being abandoned.",
                        now_text()
                    );
                    group.take_out_of_service(txn, &member.instance_id, cause)?;
                    continue;
                }
                if member.counts() && !group.suspended("ReplaceUnhealthy") {
                    if let Some(reason) = unhealthy_reason(
                        &group,
                        &member,
                        view,
                        elb_unhealthy.contains(&member.instance_id),
                    ) {
                        group.members[index].healthy = false;
                        group.replacements_due += 1;
                        let cause = format!(
                            "At {} an instance was taken out of service in response to {reason}.",
                            now_text()
                        );
                        group.take_out_of_service(txn, &member.instance_id, cause)?;
                    }
                }
            }
            group.members.retain(|m| !gone.contains(&m.instance_id));
            group.run_due_actions(nimbus_core::now_millis());
            group.refresh_step(txn)?;
            let warm = group.warm_step(txn, views)?;
            let desired = group.desired_capacity as usize;
            let rebalanced_launch_in_flight = group.rebalancing
                && (!group.launching.is_empty()
                    || group.members.iter().any(|m| m.counts() && m.lifecycle != Lifecycle::InService));
            if group.capacity() > desired
                && (group.deleting || !group.suspended("Terminate"))
                && !rebalanced_launch_in_flight
            {
                let surplus = group.capacity() - desired;
                let cause = if group.rebalancing {
                    format!("At {} an instance was taken out of service in response to an Availability Zone rebalancing operation.", now_text())
                } else {
                    difference_cause(&group, false, desired)
                };
                for id in scale_in_choice(&group, surplus) {
                    let cause = format!(
                        "{cause}  At {} instance {id} was selected for termination.",
                        now_text()
                    );
                    group.take_out_of_service(txn, &id, cause)?;
                }
                group.rebalancing = false;
            }
            if group.deleting {
                // Members in Standby go too.
                let standby: Vec<String> = (group.members.iter())
                    .filter(|m| m.lifecycle == Lifecycle::Standby)
                    .map(|m| m.instance_id.clone())
                    .collect();
                for id in standby {
                    let cause = format!("At {} a user request deleted the AutoScalingGroup.", now_text());
                    group.take_out_of_service(txn, &id, cause)?;
                }
            }
            if group.deleting
                && group.members.is_empty()
                && group.launching.is_empty()
                && group.warm_launching.is_empty()
            {
                txn.delete::<Group>(name);
                return Ok(None);
            }
            let terminate = group
                .members
                .iter()
                .filter(|m| matches!(m.lifecycle, Lifecycle::Terminating | Lifecycle::WarmedTerminating))
                .filter(|m| {
                    views
                        .get(&m.instance_id)
                        .is_some_and(|v| v.state != "shutting-down")
                })
                .map(|m| m.instance_id.clone())
                .collect();
            txn.put(group)?;
            Ok(Some(PassCalls { terminate, warm }))
        })
    }

    /// Records the launches the group and its warm pool are short of, each with its activity.
    /// Returns how many.
    fn plan_launches(&self, name: &str) -> Result<usize> {
        self.engine.mutate(|txn| {
            let Ok(group) = existing_group(txn.state(), name) else {
                return Ok(0);
            };
            let mut group = group.clone();
            let desired = group.desired_capacity as usize;
            // Launches still waiting on EC2 count in the zone balance too.
            let mut planned: Vec<PlannedLaunch> = (group.launching.iter())
                .chain(&group.warm_launching)
                .filter_map(|id| txn.state().activities().get(id))
                .filter_map(|a| a.launch.clone())
                .collect();
            let mut count = 0;
            let backing_off = nimbus_core::now_millis() < group.launch_backoff_until_ms;
            if !group.deleting && !group.suspended("Launch") && !backing_off {
                let cause = difference_cause(&group, true, desired);
                // Zones out of balance: one launch beyond the desired capacity, into the zone
                // with the fewest, before one from the zone with the most leaves (AWS's order).
                if group.needs_rebalance() {
                    group.rebalancing = true;
                    let cause = format!("At {} an instance was launched in response to an Availability Zone rebalancing operation.", now_text());
                    let id = plan_one(txn, &group, &mut planned, "Launching a new EC2 instance", cause)?;
                    group.launching.push(id);
                    count += 1;
                }
                while group.capacity() < desired {
                    let cause = if group.replacements_due > 0 {
                        group.replacements_due -= 1;
                        format!("At {} an instance was launched in response to an unhealthy instance needing to be replaced.", now_text())
                    } else {
                        cause.clone()
                    };
                    let id = plan_one(txn, &group, &mut planned, "Launching a new EC2 instance", cause)?;
                    group.launching.push(id);
                    count += 1;
                }
                let pool_cause = format!(
                    "At {} an instance was launched in response to a difference between desired and actual warm pool size, increasing the warm pool size from {} to {}.",
                    now_text(),
                    group.warm_count(),
                    group.warm_target()
                );
                while group.warm_count() < group.warm_target() {
                    let description = "Launching a new EC2 instance into warm pool";
                    let id = plan_one(txn, &group, &mut planned, description, pool_cause.clone())?;
                    group.warm_launching.push(id);
                    count += 1;
                }
            }
            let reset = group.replacements_due > 0 && group.capacity() >= desired;
            if reset {
                group.replacements_due = 0;
            }
            if count > 0 || reset {
                txn.put(group)?;
            }
            Ok(count)
        })
    }

    /// Asks EC2 for every launch the group is waiting on and records what came of each.
    async fn finish_launches(&self, ec2: &dyn Ec2, name: &str) -> Result<()> {
        let pending: Vec<(Activity, Launch)> = {
            let state = self.engine.read();
            let Some(group) = state.groups().get(name) else {
                return Ok(());
            };
            group
                .launching
                .iter()
                .chain(&group.warm_launching)
                .filter_map(|id| state.activities().get(id))
                .filter_map(|activity| {
                    let planned = activity.launch.clone()?;
                    Some((
                        activity.clone(),
                        launch_of(group, &planned, &activity.activity_id),
                    ))
                })
                .collect()
        };
        for (activity, launch) in pending {
            let outcome = ec2.launch(&launch).await;
            let launched = self.engine.mutate(|txn| -> Result<Option<String>> {
                let id = &activity.activity_id;
                let still_wanted = txn.state().groups().get(name).is_some_and(|g| {
                    g.launching.contains(id) || g.warm_launching.contains(id)
                });
                let Ok(group) = existing_group(txn.state(), name) else {
                    return Ok(outcome.as_ref().ok().map(|v| v.instance_id.clone()));
                };
                let mut group = group.clone();
                let into_pool = group.warm_launching.contains(&activity.activity_id);
                group.launching.retain(|id| id != &activity.activity_id);
                group.warm_launching.retain(|id| id != &activity.activity_id);
                match &outcome {
                    Ok(instance) if still_wanted => {
                        let instance_id = &instance.instance_id;
                        group.members.push(Member {
                            instance_id: instance_id.clone(),
                            instance_type: instance.instance_type.clone(),
                            zone: launch.zone.clone(),
                            subnet_id: launch.subnet_id.clone(),
                            lifecycle: if into_pool {
                                Lifecycle::WarmedPending
                            } else {
                                Lifecycle::Pending
                            },
                            healthy: true,
                            protected: group.new_instances_protected_from_scale_in,
                            launched_ms: nimbus_core::now_millis(),
                            activity_id: activity.activity_id.clone(),
                            waits: Vec::new(),
                            in_service_ms: 0,
                            template_id: group.template_id.clone(),
                            template_version: group.template.version.clone(),
                        });
                        activities::update(txn, &activity.activity_id, |a| {
                            a.description = if into_pool {
                                format!("Launching a new EC2 instance into warm pool: {instance_id}")
                            } else {
                                format!("Launching a new EC2 instance: {instance_id}")
                            };
                            a.set_status(Status::PreInService, 30);
                        })?;
                    }
                    Ok(_) => {}
                    Err(refusal) => {
                        group.launch_backoff_until_ms =
                            nimbus_core::now_millis() + LAUNCH_BACKOFF.as_millis() as i64;
                        activities::update(txn, &activity.activity_id, |a| {
                            a.description = format!("Launching a new EC2 instance.  Status Reason: {}. Launching EC2 instance failed.", refusal.message);
                            a.status_message = Some(refusal.message.clone());
                            a.set_status(Status::Failed, 100);
                        })?;
                    }
                }
                txn.put(group)?;
                // An instance launched for a group deleted meanwhile is not kept.
                Ok(outcome.as_ref().ok().filter(|_| !still_wanted).map(|v| v.instance_id.clone()))
            })?;
            if let Some(orphan) = launched {
                let _ = ec2.terminate(&orphan).await;
            }
        }
        Ok(())
    }
}

/// Records one launch of `group` with its activity, placed after those `planned`; returns
/// the activity's ID.
fn plan_one(
    txn: &mut engine::Txn,
    group: &Group,
    planned: &mut Vec<PlannedLaunch>,
    description: &str,
    cause: String,
) -> Result<String> {
    let placement = next_placement(group, planned);
    let mut activity = Activity::new(
        group,
        description.into(),
        cause,
        Status::WaitingForInstanceId,
    );
    activity.zone = placement.zone.clone();
    activity.subnet_id = placement.subnet_id.clone();
    activity.launch = Some(placement.clone());
    let id = activity.activity_id.clone();
    activities::record(txn, activity)?;
    planned.push(placement);
    Ok(id)
}

fn launch_of(group: &Group, planned: &PlannedLaunch, activity_id: &str) -> Launch {
    Launch {
        template: group.template.clone(),
        instance_type: planned.instance_type.clone(),
        subnet_id: planned.subnet_id.clone(),
        zone: planned.zone.clone(),
        tags: group
            .tags
            .iter()
            .filter(|t| t.propagate_at_launch)
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect(),
        group_name: group.name.clone(),
        client_token: activity_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use engine::Reconciler;
    use serde_json::{json, Value};

    use super::*;
    use crate::testkit::service;
    use crate::{AutoScalingError, CreateAutoScalingGroupInput, SetDesiredCapacityInput};

    fn create_input(extra: Value) -> CreateAutoScalingGroupInput {
        let mut input = json!({
            "AutoScalingGroupName": "web",
            "LaunchTemplate": { "LaunchTemplateName": "web", "Version": "$Latest" },
            "MinSize": 0, "MaxSize": 4, "DesiredCapacity": 2,
            "VPCZoneIdentifier": "subnet-a,subnet-b",
            "Tags": [{ "Key": "team", "Value": "blue", "PropagateAtLaunch": true },
                     { "Key": "quiet", "Value": "x", "PropagateAtLaunch": false }],
        });
        input
            .as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        serde_json::from_value(input).expect("input")
    }

    fn group(service: &AutoScaling) -> Group {
        service.engine.read().groups()["web"].clone()
    }

    async fn pass(service: &Arc<AutoScaling>) {
        FleetReconciler::new(service.clone()).pass().await;
    }

    fn set_desired(service: &AutoScaling, desired: i64) {
        let input: SetDesiredCapacityInput = serde_json::from_value(json!({
            "AutoScalingGroupName": "web", "DesiredCapacity": desired,
        }))
        .expect("input");
        service.set_desired_capacity(input).expect("set");
    }

    /// A service with the group `web` (`extra` over the defaults), its launches running and
    /// recorded.
    async fn settled(
        extra: Value,
    ) -> (
        Arc<AutoScaling>,
        Arc<crate::testkit::FakeEc2>,
        tempfile::TempDir,
    ) {
        let (service, fake, dir) = service();
        service
            .create_group(create_input(extra))
            .await
            .expect("create");
        pass(&service).await;
        run_everything(&fake);
        pass(&service).await;
        (service, fake, dir)
    }

    fn run_everything(fake: &crate::testkit::FakeEc2) {
        for id in fake.live() {
            fake.set_state(&id, "running");
        }
    }

    /// One target group whose targets the test moves between states.
    #[derive(Default)]
    struct FakeBalancer(std::sync::Mutex<BTreeMap<String, String>>);

    #[async_trait::async_trait]
    impl crate::LoadBalancing for FakeBalancer {
        async fn check_target_groups(
            &self,
            _: &[String],
        ) -> std::result::Result<(), crate::ec2::Ec2Refusal> {
            Ok(())
        }
        async fn register(
            &self,
            _: &str,
            ids: &[String],
        ) -> std::result::Result<(), crate::ec2::Ec2Refusal> {
            let mut targets = self.0.lock().expect("fake");
            targets.extend(ids.iter().map(|id| (id.clone(), "healthy".to_owned())));
            Ok(())
        }
        async fn deregister(
            &self,
            _: &str,
            ids: &[String],
        ) -> std::result::Result<(), crate::ec2::Ec2Refusal> {
            let mut targets = self.0.lock().expect("fake");
            targets.extend(ids.iter().map(|id| (id.clone(), "draining".to_owned())));
            Ok(())
        }
        async fn target_states(
            &self,
            _: &str,
        ) -> std::result::Result<BTreeMap<String, String>, crate::ec2::Ec2Refusal> {
            Ok(self.0.lock().expect("fake").clone())
        }
    }

    #[tokio::test]
    async fn members_serve_behind_balancers_drain_before_terminating_and_are_replaced_when_unhealthy(
    ) {
        let (service, fake, _dir) = service();
        let balancer = Arc::new(FakeBalancer::default());
        service.set_load_balancing(balancer.clone());
        service
            .create_group(create_input(json!({
                "TargetGroupARNs": ["arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/0123456789abcdef"],
                "HealthCheckType": "ELB",
            })))
            .await
            .expect("create");
        pass(&service).await;
        run_everything(&fake);
        pass(&service).await;
        let targets = || balancer.0.lock().expect("fake").clone();
        assert_eq!(targets().values().filter(|s| *s == "healthy").count(), 2);

        // Scale-in: the leaving member drains first, and is terminated once drained.
        set_desired(&service, 1);
        pass(&service).await;
        pass(&service).await;
        let draining: Vec<String> = targets()
            .into_iter()
            .filter(|(_, s)| s == "draining")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(draining.len(), 1);
        assert_eq!(fake.live().len(), 2, "not terminated while draining");
        balancer.0.lock().expect("fake").remove(&draining[0]);
        pass(&service).await;
        assert_eq!(fake.live().len(), 1);

        // The balancer finds the last member unhealthy: it is replaced.
        let sick = fake.live()[0].clone();
        balancer
            .0
            .lock()
            .expect("fake")
            .insert(sick.clone(), "unhealthy".into());
        pass(&service).await;
        let cause = group(&service)
            .members
            .iter()
            .find(|m| m.instance_id == sick)
            .map(|m| m.lifecycle);
        assert_eq!(cause, Some(Lifecycle::Terminating));
        let activities = service
            .describe_activities(
                serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input"),
            )
            .expect("describe");
        assert!(
            activities
                .to_string()
                .contains("an ELB health check failure"),
            "{activities}"
        );
    }

    #[tokio::test]
    async fn a_group_launches_one_instance_per_zone_and_follows_its_desired_capacity() {
        let (service, fake, _dir) = service();
        service
            .create_group(create_input(json!({})))
            .await
            .expect("create");
        pass(&service).await;
        let launched = fake.launched();
        let mut zones: Vec<&str> = launched.iter().map(|l| l.zone.as_str()).collect();
        zones.sort_unstable();
        assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
        assert!(launched
            .iter()
            .all(|l| l.tags == [("team".to_owned(), "blue".to_owned())]));
        assert!(group(&service)
            .members
            .iter()
            .all(|m| m.lifecycle == Lifecycle::Pending));
        run_everything(&fake);
        pass(&service).await;
        assert!(group(&service)
            .members
            .iter()
            .all(|m| m.lifecycle == Lifecycle::InService));
        set_desired(&service, 3);
        pass(&service).await;
        assert_eq!(group(&service).members.len(), 3);
        run_everything(&fake);
        pass(&service).await;
        set_desired(&service, 0);
        pass(&service).await;
        assert!(fake.live().is_empty());
        pass(&service).await;
        assert!(group(&service).members.is_empty());
        let activities = service
            .describe_activities(
                serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input"),
            )
            .expect("describe");
        let activities = activities["Activities"].as_array().expect("list").clone();
        assert_eq!(activities.len(), 6, "3 launches and 3 terminations");
        assert!(activities.iter().all(|a| a["StatusCode"] == "Successful"));
        let newest = activities[0]["Cause"].as_str().expect("cause");
        assert!(newest.contains("a user request explicitly set group desired capacity changing the desired capacity from 3 to 0."), "{newest}");
        assert!(
            newest.contains("shrinking the capacity from 3 to 0."),
            "{newest}"
        );
    }

    #[tokio::test]
    async fn an_unhealthy_member_is_replaced_and_the_activity_says_why() {
        let (service, fake, _dir) = settled(json!({ "DesiredCapacity": 1 })).await;
        let first = group(&service).members[0].instance_id.clone();
        fake.set_state(&first, "stopped");
        pass(&service).await;
        pass(&service).await;
        let members = group(&service).members;
        assert_eq!(members.len(), 1);
        assert_ne!(members[0].instance_id, first);
        let activities = service
            .describe_activities(serde_json::from_value(json!({})).expect("input"))
            .expect("describe");
        let causes: Vec<&str> = activities["Activities"]
            .as_array()
            .expect("list")
            .iter()
            .map(|a| a["Cause"].as_str().unwrap_or_default())
            .collect();
        assert!(causes[0].contains("an instance was launched in response to an unhealthy instance needing to be replaced"), "{causes:?}");
        assert!(
            causes[1].contains("an EC2 health check indicating it has been terminated or stopped"),
            "{causes:?}"
        );
    }

    #[tokio::test]
    async fn a_launch_interrupted_by_a_restart_is_retried_without_a_second_instance() {
        let (service, fake, dir) = service();
        service
            .create_group(create_input(json!({})))
            .await
            .expect("create");
        assert_eq!(service.plan_launches("web").expect("plan"), 2);
        // EC2 made the instances, but nimbus stopped before recording them.
        let planned: Vec<Launch> = {
            let state = service.engine.read();
            let group = &state.groups()["web"];
            group
                .launching
                .iter()
                .map(|id| {
                    let planned = state.activities()[id].launch.clone().expect("planned");
                    launch_of(group, &planned, id)
                })
                .collect()
        };
        for launch in &planned {
            fake.launch(launch).await.expect("launch");
        }
        drop(service);
        let store =
            Arc::new(store::SqliteStore::open(&dir.path().join("state.db")).expect("store"));
        let reopened =
            Arc::new(AutoScaling::open(store, "us-east-1", "123456789012", 60).expect("open"));
        reopened.set_ec2(fake.clone());
        pass(&reopened).await;
        assert_eq!(fake.launched().len(), 2);
        assert_eq!(group(&reopened).members.len(), 2);
    }

    #[tokio::test]
    async fn a_forced_delete_terminates_protected_members_then_removes_the_group() {
        let (service, fake, _dir) = service();
        service
            .create_group(create_input(
                json!({ "NewInstancesProtectedFromScaleIn": true }),
            ))
            .await
            .expect("create");
        pass(&service).await;
        run_everything(&fake);
        pass(&service).await;
        set_desired(&service, 1);
        pass(&service).await;
        assert_eq!(fake.live().len(), 2, "protected members are not scaled in");
        let refused = service.delete_group(
            serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input"),
        );
        assert!(matches!(refused, Err(AutoScalingError::ResourceInUse(_))));
        service
            .delete_group(
                serde_json::from_value(
                    json!({ "AutoScalingGroupName": "web", "ForceDelete": true }),
                )
                .expect("input"),
            )
            .expect("delete");
        pass(&service).await;
        pass(&service).await;
        assert!(fake.live().is_empty());
        assert!(service.engine.read().groups().is_empty());
    }

    #[tokio::test]
    async fn a_launch_ec2_refuses_is_a_failed_activity() {
        let (service, fake, _dir) = service();
        *fake.refuse_launches.lock().expect("fake") = Some("no capacity".into());
        service
            .create_group(create_input(json!({ "DesiredCapacity": 1 })))
            .await
            .expect("create");
        pass(&service).await;
        let activities = service
            .describe_activities(
                serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input"),
            )
            .expect("describe");
        let activity = &activities["Activities"][0];
        assert_eq!(activity["StatusCode"], "Failed");
        assert_eq!(activity["Progress"], 100);
        assert_eq!(activity["StatusMessage"], "no capacity");
        // The next passes do not try again at once.
        pass(&service).await;
        pass(&service).await;
        let activities = service
            .describe_activities(
                serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input"),
            )
            .expect("describe");
        assert_eq!(activities["Activities"].as_array().map(Vec::len), Some(1));
    }

    #[tokio::test]
    async fn bad_groups_are_refused_with_aws_messages() {
        let (service, _fake, _dir) = service();
        let refused = service
            .create_group(create_input(
                json!({ "MinSize": 5, "MaxSize": 3, "DesiredCapacity": 4 }),
            ))
            .await;
        assert!(
            matches!(&refused, Err(AutoScalingError::Validation(m)) if m == "Max bound, 3, must be greater than or equal to min bound, 5"),
            "{refused:?}"
        );
        let refused = service
            .create_group(create_input(json!({ "DesiredCapacity": 9 })))
            .await;
        assert!(
            matches!(&refused, Err(AutoScalingError::Validation(m)) if m.starts_with("Desired capacity:9 must be between")),
            "{refused:?}"
        );
        let refused = service
            .create_group(create_input(
                json!({ "LaunchTemplate": { "LaunchTemplateName": "missing" } }),
            ))
            .await;
        assert!(
            matches!(&refused, Err(AutoScalingError::Validation(m)) if m.contains("does not exist")),
            "{refused:?}"
        );
        let refused = service
            .create_group(create_input(json!({ "VPCZoneIdentifier": "subnet-zzz" })))
            .await;
        assert!(
            matches!(&refused, Err(AutoScalingError::Validation(m)) if m.contains("subnet-zzz")),
            "{refused:?}"
        );
        service
            .create_group(create_input(json!({})))
            .await
            .expect("create");
        let refused = service.create_group(create_input(json!({}))).await;
        assert!(matches!(refused, Err(AutoScalingError::AlreadyExists(_))));
        assert!(service.engine.read().groups().len() == 1);
    }

    fn hook(service: &AutoScaling, name: &str, transition: &str) {
        let input = serde_json::from_value(json!({
            "AutoScalingGroupName": "web", "LifecycleHookName": name,
            "LifecycleTransition": transition, "HeartbeatTimeout": 60,
        }))
        .expect("input");
        service.put_hook(input).expect("hook");
    }

    fn complete(service: &AutoScaling, name: &str, instance_id: &str, result: &str) {
        let input = serde_json::from_value(json!({
            "AutoScalingGroupName": "web", "LifecycleHookName": name,
            "InstanceId": instance_id, "LifecycleActionResult": result,
        }))
        .expect("input");
        service.lifecycle_action(input, true).expect("complete");
    }

    #[tokio::test]
    async fn lifecycle_hooks_hold_launches_and_terminations_until_completed_or_timed_out() {
        let (service, fake, _dir) = service();
        service
            .create_group(create_input(json!({ "DesiredCapacity": 1 })))
            .await
            .expect("create");
        hook(&service, "warm-up", crate::hooks::LAUNCHING);
        hook(&service, "drain", crate::hooks::TERMINATING);
        pass(&service).await;
        run_everything(&fake);
        pass(&service).await;
        pass(&service).await;
        let first = group(&service).members[0].clone();
        assert_eq!(first.lifecycle, Lifecycle::PendingWait);
        complete(&service, "warm-up", &first.instance_id, "CONTINUE");
        pass(&service).await;
        assert_eq!(group(&service).members[0].lifecycle, Lifecycle::InService);
        // Scale in: the member waits on the termination hook, still running.
        set_desired(&service, 0);
        pass(&service).await;
        assert_eq!(
            group(&service).members[0].lifecycle,
            Lifecycle::TerminatingWait
        );
        assert_eq!(fake.live(), std::slice::from_ref(&first.instance_id));
        complete(&service, "drain", &first.instance_id, "CONTINUE");
        pass(&service).await;
        assert!(fake.live().is_empty());
        // A launch whose hook times out with ABANDON (the default) is replaced.
        set_desired(&service, 1);
        pass(&service).await;
        run_everything(&fake);
        pass(&service).await;
        let waiting = group(&service)
            .members
            .iter()
            .find(|m| m.lifecycle == Lifecycle::PendingWait)
            .cloned()
            .expect("waiting");
        service
            .engine
            .mutate(|txn| -> crate::Result<()> {
                let mut group = txn.state().groups()["web"].clone();
                for wait in &mut group
                    .member_mut(&waiting.instance_id)
                    .expect("member")
                    .waits
                {
                    wait.deadline_ms = 0;
                }
                Ok(txn.put(group)?)
            })
            .expect("expire");
        pass(&service).await;
        let member = group(&service)
            .member(&waiting.instance_id)
            .cloned()
            .expect("member");
        assert!(member.leaving(), "{member:?}");
        let refused = service.lifecycle_action(
            serde_json::from_value(json!({
                "AutoScalingGroupName": "web", "LifecycleHookName": "warm-up",
                "InstanceId": "i-00000000000000000", "LifecycleActionResult": "CONTINUE",
            }))
            .expect("input"),
            true,
        );
        assert!(matches!(refused, Err(AutoScalingError::Validation(_))));
        let bad_timeout = service.put_hook(
            serde_json::from_value(json!({
                "AutoScalingGroupName": "web", "LifecycleHookName": "x",
                "LifecycleTransition": crate::hooks::LAUNCHING, "HeartbeatTimeout": 10,
            }))
            .expect("input"),
        );
        assert!(
            matches!(bad_timeout, Err(AutoScalingError::Validation(m)) if m.contains("between 30 and 7200"))
        );
    }

    #[tokio::test]
    async fn an_instance_refresh_replaces_every_member_keeping_the_minimum_healthy() {
        let (service, fake, _dir) = settled(json!({})).await;
        let before: Vec<String> = group(&service)
            .members
            .iter()
            .map(|m| m.instance_id.clone())
            .collect();
        let input = serde_json::from_value(json!({
            "AutoScalingGroupName": "web",
            "Preferences": { "MinHealthyPercentage": 50, "InstanceWarmup": 0 },
        }))
        .expect("input");
        service.start_refresh(input).await.expect("start");
        let again =
            serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input");
        assert!(matches!(
            service.start_refresh(again).await,
            Err(AutoScalingError::InstanceRefreshInProgress(_))
        ));
        let mut fewest_in_service = usize::MAX;
        for _ in 0..20 {
            pass(&service).await;
            run_everything(&fake);
            let in_service = group(&service)
                .members
                .iter()
                .filter(|m| m.lifecycle == Lifecycle::InService)
                .count();
            fewest_in_service = fewest_in_service.min(in_service);
        }
        let after = group(&service);
        assert_eq!(after.members.len(), 2);
        assert!(after
            .members
            .iter()
            .all(|m| !before.contains(&m.instance_id)));
        assert!(
            fewest_in_service >= 1,
            "MinHealthyPercentage 50 of 2 keeps one InService"
        );
        let refresh = after.refreshes.last().expect("refresh");
        assert_eq!(refresh.status, "Successful");
        assert_eq!(refresh.replaced, 2);
        assert!(matches!(
            service.cancel_refresh("web"),
            Err(AutoScalingError::ActiveInstanceRefreshNotFound(_))
        ));
    }

    #[tokio::test]
    async fn standby_members_are_out_of_capacity_and_attached_ones_in_it() {
        let (service, fake, _dir) = settled(json!({ "DesiredCapacity": 1 })).await;
        let first = group(&service).members[0].instance_id.clone();
        let moved = |id: &str, decrement: bool| -> crate::MoveInstancesInput {
            serde_json::from_value(json!({
                "AutoScalingGroupName": "web", "InstanceIds": [id],
                "ShouldDecrementDesiredCapacity": decrement,
            }))
            .expect("input")
        };
        service
            .move_instances(moved(&first, false), crate::Move::EnterStandby)
            .await
            .expect("standby");
        pass(&service).await;
        let members = group(&service).members;
        assert_eq!(members.len(), 2, "a replacement for the member in Standby");
        assert_eq!(
            group(&service).member(&first).expect("first").lifecycle,
            Lifecycle::Standby
        );
        service
            .move_instances(moved(&first, false), crate::Move::ExitStandby)
            .await
            .expect("exit");
        assert_eq!(group(&service).desired_capacity, 2);
        // An instance from outside joins the group.
        let outsider = fake
            .launch(&launch_of(
                &group(&service),
                &PlannedLaunch {
                    subnet_id: Some("subnet-b".into()),
                    zone: "us-east-1b".into(),
                    instance_type: None,
                },
                "outside",
            ))
            .await
            .expect("launch")
            .instance_id;
        fake.set_state(&outsider, "running");
        let refused = service
            .attach_instances(serde_json::from_value(json!({ "AutoScalingGroupName": "web", "InstanceIds": [outsider, "i-00000000000000099"] })).expect("input"))
            .await;
        assert!(matches!(refused, Err(AutoScalingError::Validation(_))));
        service
            .attach_instances(
                serde_json::from_value(
                    json!({ "AutoScalingGroupName": "web", "InstanceIds": [outsider] }),
                )
                .expect("input"),
            )
            .await
            .expect("attach");
        assert_eq!(group(&service).desired_capacity, 3);
        assert_eq!(
            fake.groups
                .lock()
                .expect("fake")
                .get(&outsider)
                .map(String::as_str),
            Some("web")
        );
        service
            .move_instances(moved(&outsider, true), crate::Move::Detach)
            .await
            .expect("detach");
        assert_eq!(group(&service).desired_capacity, 2);
        assert!(fake.groups.lock().expect("fake").get(&outsider).is_none());
        assert!(
            fake.live().contains(&outsider),
            "a detached instance keeps running"
        );
    }

    #[tokio::test]
    async fn a_scale_out_takes_a_warm_instance_first_and_the_pool_refills() {
        let (service, fake, _dir) = service();
        service
            .create_group(create_input(json!({ "DesiredCapacity": 0, "MaxSize": 2 })))
            .await
            .expect("create");
        let pool = serde_json::from_value(json!({
            "AutoScalingGroupName": "web", "PoolState": "Stopped", "MinSize": 1, "MaxGroupPreparedCapacity": 1,
        }))
        .expect("input");
        service.put_warm_pool(pool).await.expect("pool");
        pass(&service).await;
        let warm = group(&service).members[0].clone();
        assert_eq!(warm.lifecycle, Lifecycle::WarmedPending);
        run_everything(&fake);
        pass(&service).await;
        pass(&service).await;
        assert_eq!(
            group(&service).members[0].lifecycle,
            Lifecycle::WarmedStopped
        );
        set_desired(&service, 1);
        pass(&service).await;
        let taken = group(&service)
            .member(&warm.instance_id)
            .cloned()
            .expect("member");
        assert_eq!(
            taken.lifecycle,
            Lifecycle::Pending,
            "the warm instance itself, started"
        );
        assert_eq!(
            fake.launched().len(),
            2,
            "one more launched to refill the pool"
        );
        run_everything(&fake);
        pass(&service).await;
        assert_eq!(
            group(&service)
                .member(&warm.instance_id)
                .expect("member")
                .lifecycle,
            Lifecycle::InService
        );
        service
            .delete_warm_pool(
                serde_json::from_value(json!({ "AutoScalingGroupName": "web" })).expect("input"),
            )
            .expect("delete");
        for _ in 0..3 {
            pass(&service).await;
        }
        let after = group(&service);
        assert!(after.warm_pool.is_none());
        assert_eq!(after.members.len(), 1);
        assert_eq!(fake.live(), std::slice::from_ref(&warm.instance_id));
    }

    #[tokio::test]
    async fn a_new_zone_is_rebalanced_launching_before_terminating() {
        let (service, fake, _dir) = settled(json!({ "VPCZoneIdentifier": "subnet-a" })).await;
        let update = serde_json::from_value(json!({
            "AutoScalingGroupName": "web", "VPCZoneIdentifier": "subnet-a,subnet-b",
        }))
        .expect("input");
        service.update_group(update).await.expect("update");
        pass(&service).await;
        assert_eq!(
            fake.live().len(),
            3,
            "the launch into the new zone comes first"
        );
        pass(&service).await;
        assert_eq!(fake.live().len(), 3, "nobody leaves before it is InService");
        run_everything(&fake);
        for _ in 0..3 {
            pass(&service).await;
        }
        let mut zones: Vec<String> = group(&service)
            .members
            .iter()
            .map(|m| m.zone.clone())
            .collect();
        zones.sort();
        assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
        assert_eq!(fake.live().len(), 2);
        let activities = service
            .describe_activities(serde_json::from_value(json!({})).expect("input"))
            .expect("describe");
        assert!(activities["Activities"][0]["Cause"]
            .as_str()
            .unwrap_or_default()
            .contains("Availability Zone rebalancing"));
    }

    #[tokio::test]
    async fn a_mixed_instances_policy_launches_its_first_override_on_demand_only() {
        let mixed = |percentage: i64| {
            json!({
                "LaunchTemplate": null,
                "MixedInstancesPolicy": {
                    "LaunchTemplate": {
                        "LaunchTemplateSpecification": { "LaunchTemplateName": "web" },
                        "Overrides": [{ "InstanceType": "t3.small" }, { "InstanceType": "t3.medium" }],
                    },
                    "InstancesDistribution": {
                        "OnDemandAllocationStrategy": "prioritized", "OnDemandBaseCapacity": 0,
                        "OnDemandPercentageAboveBaseCapacity": percentage,
                        "SpotAllocationStrategy": "lowest-price",
                    },
                },
            })
        };
        let (service, fake, _dir) = settled(mixed(100)).await;
        assert!(fake
            .launched()
            .iter()
            .all(|l| l.instance_type.as_deref() == Some("t3.small")));
        assert_eq!(group(&service).members.len(), 2);
        let (spot, _fake, _spot_dir) = crate::testkit::service();
        let refused = spot.create_group(create_input(mixed(50))).await;
        assert!(matches!(refused, Err(AutoScalingError::Validation(m)) if m.contains("Spot")));
    }
}
