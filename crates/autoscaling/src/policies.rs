//! Scaling policies: Put/Describe/DeletePolicy and ExecutePolicy, and their execution when a
//! CloudWatch alarm invokes them ([`ScalingPolicies`]).
//!
//! - Simple and step scaling change the desired capacity by an adjustment, after the
//!   cooldown.
//! - Target tracking owns two CloudWatch alarms, as in AWS (`TargetTracking-<group>-AlarmHigh-…`
//!   above the target for 3 periods, `…-AlarmLow-…` below 90 % of it for 15), and scales
//!   the capacity in proportion to the metric over the target. Their period is the metrics
//!   period of this nimbus (one collection interval stands for AWS's minute).

use nimbus_core::metrics::{PolicyAlarm, PolicyAlarms, PolicyTrigger, ScalingPolicies};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::groups::existing_group;
use crate::kinds::Tables;
use crate::{AutoScaling, AutoScalingError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepAdjustment {
    pub metric_interval_lower_bound: Option<f64>,
    pub metric_interval_upper_bound: Option<f64>,
    pub scaling_adjustment: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MetricDimension {
    pub name: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PredefinedMetric {
    pub predefined_metric_type: String,
    pub resource_label: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CustomizedMetric {
    pub metric_name: String,
    pub namespace: String,
    #[serde(default)]
    pub dimensions: Vec<MetricDimension>,
    pub statistic: String,
    pub unit: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetTracking {
    pub predefined_metric_specification: Option<PredefinedMetric>,
    pub customized_metric_specification: Option<CustomizedMetric>,
    pub target_value: f64,
    #[serde(default)]
    pub disable_scale_in: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Policy {
    pub arn: String,
    pub name: String,
    pub group_name: String,
    /// `SimpleScaling`, `StepScaling` or `TargetTrackingScaling`.
    pub policy_type: String,
    pub adjustment_type: Option<String>,
    pub scaling_adjustment: Option<i64>,
    pub min_adjustment_magnitude: Option<i64>,
    pub cooldown: Option<u32>,
    pub step_adjustments: Vec<StepAdjustment>,
    pub metric_aggregation_type: Option<String>,
    pub estimated_instance_warmup: Option<u32>,
    pub target_tracking: Option<TargetTracking>,
    /// The alarms a target tracking policy owns: name and ARN.
    pub alarms: Vec<(String, String)>,
    pub enabled: bool,
}

impl Policy {
    fn output(&self) -> Value {
        let mut output = json!({
            "AutoScalingGroupName": self.group_name,
            "PolicyName": self.name,
            "PolicyARN": self.arn,
            "PolicyType": self.policy_type,
            "StepAdjustments": self.step_adjustments,
            "Alarms": self.alarms.iter().map(|(name, arn)| json!({ "AlarmName": name, "AlarmARN": arn })).collect::<Vec<_>>(),
            "Enabled": self.enabled,
        });
        let optional = [
            ("AdjustmentType", json!(self.adjustment_type)),
            ("ScalingAdjustment", json!(self.scaling_adjustment)),
            (
                "MinAdjustmentMagnitude",
                json!(self.min_adjustment_magnitude),
            ),
            ("Cooldown", json!(self.cooldown)),
            ("MetricAggregationType", json!(self.metric_aggregation_type)),
            (
                "EstimatedInstanceWarmup",
                json!(self.estimated_instance_warmup),
            ),
            ("TargetTrackingConfiguration", json!(self.target_tracking)),
        ];
        for (key, value) in optional {
            if !value.is_null() {
                output[key] = value;
            }
        }
        output
    }

    /// The capacity this policy asks for, from `desired`, when `trigger` invokes it.
    fn new_capacity(&self, desired: u32, trigger: &PolicyTrigger) -> Option<i64> {
        let desired = i64::from(desired);
        if let Some(target) = &self.target_tracking {
            let value = trigger.value?;
            let high = self
                .alarms
                .first()
                .is_some_and(|(name, _)| name == &trigger.alarm);
            if !high && target.disable_scale_in {
                return None;
            }
            let proportional = (desired.max(1) as f64 * value / target.target_value).ceil() as i64;
            return Some(if high {
                proportional.max(desired + 1)
            } else {
                proportional.min(desired - 1)
            });
        }
        let adjustment = if self.policy_type == "StepScaling" {
            let over = trigger.value? - trigger.threshold;
            self.step_adjustments
                .iter()
                .find(|step| {
                    step.metric_interval_lower_bound
                        .is_none_or(|low| over >= low)
                        && step
                            .metric_interval_upper_bound
                            .is_none_or(|high| over < high)
                })?
                .scaling_adjustment
        } else {
            self.scaling_adjustment?
        };
        Some(match self.adjustment_type.as_deref() {
            Some("ExactCapacity") => adjustment,
            Some("PercentChangeInCapacity") => {
                let change = (desired * adjustment) as f64 / 100.0;
                let change = change.trunc() as i64;
                let magnitude = self.min_adjustment_magnitude.unwrap_or(1).max(1);
                let change = if change.abs() < magnitude {
                    magnitude * adjustment.signum()
                } else {
                    change
                };
                desired + change
            }
            _ => desired + adjustment,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutScalingPolicyInput {
    auto_scaling_group_name: String,
    policy_name: String,
    policy_type: Option<String>,
    adjustment_type: Option<String>,
    min_adjustment_step: Option<i64>,
    min_adjustment_magnitude: Option<i64>,
    scaling_adjustment: Option<i64>,
    cooldown: Option<i64>,
    metric_aggregation_type: Option<String>,
    #[serde(default)]
    step_adjustments: Vec<StepAdjustment>,
    estimated_instance_warmup: Option<i64>,
    target_tracking_configuration: Option<TargetTracking>,
    enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribePoliciesInput {
    auto_scaling_group_name: Option<String>,
    #[serde(default)]
    policy_names: Vec<String>,
    #[serde(default)]
    policy_types: Vec<String>,
    next_token: Option<String>,
    max_records: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeletePolicyInput {
    auto_scaling_group_name: Option<String>,
    policy_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ExecutePolicyInput {
    auto_scaling_group_name: Option<String>,
    policy_name: String,
    honor_cooldown: Option<bool>,
    metric_value: Option<f64>,
    breach_threshold: Option<f64>,
}

/// The period of target tracking alarms when metrics are read every `metrics_interval_secs`:
/// the shortest alarm period CloudWatch allows (10 s, 30 s, then whole minutes) that holds a
/// reading, since one collection interval stands for AWS's one-minute period.
pub fn alarm_period_secs(metrics_interval_secs: u64) -> u32 {
    match metrics_interval_secs {
        0..=10 => 10,
        11..=30 => 30,
        longer => (longer.div_ceil(60) * 60).min(86_400) as u32,
    }
}

fn validation(message: impl Into<String>) -> AutoScalingError {
    AutoScalingError::Validation(message.into())
}

/// The alarm a target tracking policy's alarms are made from: its metric (namespace, name,
/// dimensions, statistic, unit), with name, threshold and periods still to set.
fn alarm_on_tracked_metric(group: &str, target: &TargetTracking) -> Result<PolicyAlarm> {
    let (namespace, metric_name, dimensions, statistic, unit) = match (
        &target.predefined_metric_specification,
        &target.customized_metric_specification,
    ) {
        (Some(predefined), None) if predefined.predefined_metric_type == "ALBRequestCountPerTarget" => {
            // The label is `app/LB/ID/targetgroup/GROUP/ID`: the metric is the group's.
            let label = predefined.resource_label.as_deref().unwrap_or_default();
            let group_part = label
                .find("/targetgroup/")
                .map(|at| &label[at + 1..])
                .filter(|part| part.split('/').count() == 3 && label.starts_with("app/"))
                .ok_or_else(|| {
                    validation(format!(
                        "ResourceLabel '{label}' must be app/LOAD-BALANCER/ID/targetgroup/TARGET-GROUP/ID for ALBRequestCountPerTarget"
                    ))
                })?;
            let by_group = vec![("TargetGroup".to_owned(), group_part.to_owned())];
            ("AWS/ApplicationELB".into(), "RequestCountPerTarget".into(), by_group, "Sum".into(), None)
        }
        (Some(predefined), None) => {
            let name = match predefined.predefined_metric_type.as_str() {
                "ASGAverageCPUUtilization" => "CPUUtilization",
                "ASGAverageNetworkIn" => "NetworkIn",
                "ASGAverageNetworkOut" => "NetworkOut",
                other => {
                    return Err(validation(format!(
                        "PredefinedMetricType {other} is not supported by nimbus (ASGAverageCPUUtilization, ASGAverageNetworkIn, ASGAverageNetworkOut, ALBRequestCountPerTarget)"
                    )))
                }
            };
            let by_group = vec![("AutoScalingGroupName".to_owned(), group.to_owned())];
            ("AWS/EC2".into(), name.into(), by_group, "Average".into(), None)
        }
        (None, Some(custom)) => (
            custom.namespace.clone(),
            custom.metric_name.clone(),
            (custom.dimensions.iter())
                .map(|d| (d.name.clone(), d.value.clone()))
                .collect(),
            custom.statistic.clone(),
            custom.unit.clone(),
        ),
        _ => {
            return Err(validation(
                "TargetTrackingConfiguration needs exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification",
            ))
        }
    };
    Ok(PolicyAlarm {
        name: String::new(),
        namespace,
        metric_name,
        dimensions,
        statistic,
        unit,
        period_secs: 0,
        evaluation_periods: 0,
        threshold: 0.0,
        comparison: String::new(),
        actions: Vec::new(),
    })
}

fn optional_u32(name: &str, value: Option<i64>) -> Result<Option<u32>> {
    value
        .map(|v| u32::try_from(v).map_err(|_| validation(format!("{name} must be at least 0"))))
        .transpose()
}

impl AutoScaling {
    fn policy_alarms(&self) -> Result<&dyn PolicyAlarms> {
        self.policy_alarms
            .get()
            .map(|alarms| alarms.as_ref())
            .ok_or_else(|| AutoScalingError::Storage("CloudWatch is not connected".into()))
    }

    /// The alarms of a target tracking policy, made in CloudWatch; the high one first.
    fn make_alarms(
        &self,
        group: &str,
        arn: &str,
        target: &TargetTracking,
    ) -> Result<Vec<(String, String)>> {
        let template = alarm_on_tracked_metric(group, target)?;
        let suffix = nimbus_core::new_uuid();
        let mut wanted = vec![(
            format!("TargetTracking-{group}-AlarmHigh-{suffix}"),
            "GreaterThanThreshold",
            target.target_value,
            3,
        )];
        if !target.disable_scale_in {
            wanted.push((
                format!("TargetTracking-{group}-AlarmLow-{suffix}"),
                "LessThanThreshold",
                target.target_value * 0.9,
                15,
            ));
        }
        let alarms = self.policy_alarms()?;
        let mut made = Vec::new();
        for (name, comparison, threshold, periods) in wanted {
            let alarm = PolicyAlarm {
                name: name.clone(),
                period_secs: self.alarm_period_secs,
                evaluation_periods: periods,
                threshold,
                comparison: comparison.into(),
                actions: vec![arn.to_owned()],
                ..template.clone()
            };
            let alarm_arn = alarms.put_alarm(&alarm).map_err(validation)?;
            made.push((name, alarm_arn));
        }
        Ok(made)
    }

    fn drop_alarms(&self, alarms: &[(String, String)]) {
        let names: Vec<String> = alarms.iter().map(|(name, _)| name.clone()).collect();
        if names.is_empty() {
            return;
        }
        if let Ok(cloudwatch) = self.policy_alarms() {
            if let Err(error) = cloudwatch.delete_alarms(&names) {
                tracing::warn!(?names, %error, "the alarms of a scaling policy were not deleted");
            }
        }
    }

    pub fn put_policy(&self, input: PutScalingPolicyInput) -> Result<Value> {
        let policy_type = input.policy_type.unwrap_or_else(|| "SimpleScaling".into());
        let group = input.auto_scaling_group_name;
        let name = input.policy_name;
        match policy_type.as_str() {
            "SimpleScaling" if input.scaling_adjustment.is_none() => {
                return Err(validation("ScalingAdjustment is required for SimpleScaling policies"))
            }
            "StepScaling" if input.step_adjustments.is_empty() => {
                return Err(validation("StepAdjustments is required for StepScaling policies"))
            }
            "TargetTrackingScaling" if input.target_tracking_configuration.is_none() => {
                return Err(validation("TargetTrackingConfiguration is required for TargetTrackingScaling policies"))
            }
            "SimpleScaling" | "StepScaling" | "TargetTrackingScaling" => {}
            other => {
                return Err(validation(format!(
                    "PolicyType {other} is not supported by nimbus (SimpleScaling, StepScaling, TargetTrackingScaling)"
                )))
            }
        }
        if let Some(kind) = &input.adjustment_type {
            if !matches!(
                kind.as_str(),
                "ChangeInCapacity" | "ExactCapacity" | "PercentChangeInCapacity"
            ) {
                return Err(validation(format!("Invalid adjustment type {kind}")));
            }
        }
        let previous = {
            let state = self.engine.read();
            existing_group(&state, &group)?;
            find(&state, Some(&group), &name).cloned()
        };
        let arn = previous.as_ref().map(|p| p.arn.clone()).unwrap_or_else(|| {
            format!(
                "arn:aws:autoscaling:{}:{}:scalingPolicy:{}:autoScalingGroupName/{group}:policyName/{name}",
                self.region,
                self.account_id,
                nimbus_core::new_uuid()
            )
        });
        let alarms = match &input.target_tracking_configuration {
            Some(target) => self.make_alarms(&group, &arn, target)?,
            None => Vec::new(),
        };
        if let Some(previous) = &previous {
            self.drop_alarms(&previous.alarms);
        }
        let policy = Policy {
            arn: arn.clone(),
            name,
            group_name: group,
            policy_type,
            adjustment_type: input.adjustment_type,
            scaling_adjustment: input.scaling_adjustment,
            // MinAdjustmentStep is the deprecated name of the same setting.
            min_adjustment_magnitude: input.min_adjustment_magnitude.or(input.min_adjustment_step),
            cooldown: optional_u32("Cooldown", input.cooldown)?,
            step_adjustments: input.step_adjustments,
            metric_aggregation_type: input.metric_aggregation_type,
            estimated_instance_warmup: optional_u32(
                "EstimatedInstanceWarmup",
                input.estimated_instance_warmup,
            )?,
            target_tracking: input.target_tracking_configuration,
            alarms: alarms.clone(),
            enabled: input.enabled.unwrap_or(true),
        };
        self.change(|txn| Ok(txn.put(policy)?))?;
        Ok(json!({
            "PolicyARN": arn,
            "Alarms": alarms.iter().map(|(name, arn)| json!({ "AlarmName": name, "AlarmARN": arn })).collect::<Vec<_>>(),
        }))
    }

    pub fn describe_policies(&self, input: DescribePoliciesInput) -> Result<Value> {
        let state = self.engine.read();
        let policies: Vec<(String, Value)> = state
            .policies()
            .values()
            .filter(|p| {
                input
                    .auto_scaling_group_name
                    .as_ref()
                    .is_none_or(|g| &p.group_name == g)
            })
            .filter(|p| {
                input.policy_names.is_empty()
                    || input
                        .policy_names
                        .iter()
                        .any(|n| n == &p.name || n == &p.arn)
            })
            .filter(|p| {
                input.policy_types.is_empty() || input.policy_types.contains(&p.policy_type)
            })
            .map(|p| (format!("{}\n{}", p.group_name, p.name), p.output()))
            .collect();
        let next_token = input.next_token.as_deref();
        crate::page_of(
            "ScalingPolicies",
            policies,
            input.max_records,
            next_token,
            (50, 100),
        )
    }

    pub fn delete_policy(&self, input: DeletePolicyInput) -> Result<Value> {
        let policy = self.change(|txn| {
            let policy = find(
                txn.state(),
                input.auto_scaling_group_name.as_deref(),
                &input.policy_name,
            )
            .cloned()
            .ok_or_else(|| validation(format!("Policy {} not found", input.policy_name)))?;
            txn.delete::<Policy>(&policy.arn);
            Ok(policy)
        })?;
        self.drop_alarms(&policy.alarms);
        Ok(json!({}))
    }

    /// Forgets the policies of a deleted group, and their alarms.
    pub(crate) fn forget_policies(&self, group: &str) {
        let removed = self.engine.mutate(|txn| -> Result<Vec<Policy>> {
            let policies: Vec<Policy> = txn
                .state()
                .policies()
                .values()
                .filter(|p| p.group_name == group)
                .cloned()
                .collect();
            for policy in &policies {
                txn.delete::<Policy>(&policy.arn);
            }
            Ok(policies)
        });
        match removed {
            Ok(policies) => policies.iter().for_each(|p| self.drop_alarms(&p.alarms)),
            Err(error) => tracing::warn!(group, %error, "the policies of a deleted group remain"),
        }
    }

    pub fn execute_policy(&self, input: ExecutePolicyInput) -> Result<Value> {
        let policy = find(
            &self.engine.read(),
            input.auto_scaling_group_name.as_deref(),
            &input.policy_name,
        )
        .cloned()
        .ok_or_else(|| validation(format!("Policy {} not found", input.policy_name)))?;
        if policy.target_tracking.is_some() {
            return Err(validation(
                "ExecutePolicy is not supported for a target tracking scaling policy.",
            ));
        }
        if policy.policy_type == "StepScaling"
            && (input.metric_value.is_none() || input.breach_threshold.is_none())
        {
            return Err(validation(
                "MetricValue and BreachThreshold are required to execute a step scaling policy.",
            ));
        }
        let trigger = PolicyTrigger {
            alarm: String::new(),
            value: input.metric_value,
            threshold: input.breach_threshold.unwrap_or_default(),
        };
        let why = format!("a user request executed policy {}", policy.name);
        self.run_policy(
            &policy,
            &trigger,
            &why,
            input.honor_cooldown.unwrap_or(false),
        )?;
        Ok(json!({}))
    }

    /// Applies `policy` to its group; a policy in its cooldown does nothing (or, for a user's
    /// ExecutePolicy honouring cooldowns, is refused).
    fn run_policy(
        &self,
        policy: &Policy,
        trigger: &PolicyTrigger,
        why: &str,
        refuse_in_cooldown: bool,
    ) -> Result<()> {
        if !policy.enabled {
            return Ok(());
        }
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &policy.group_name)?.clone();
            let Some(wanted) = policy.new_capacity(group.desired_capacity, trigger) else {
                return Ok(());
            };
            // Target tracking waits for new instances to warm up before it scales out again,
            // and scales in regardless; simple and step scaling wait for their cooldown.
            let waits =
                policy.target_tracking.is_none() || wanted > i64::from(group.desired_capacity);
            let cooldown_ms = i64::from(
                policy
                    .cooldown
                    .or(policy.estimated_instance_warmup)
                    .or(group.default_instance_warmup)
                    .unwrap_or(group.default_cooldown),
            ) * 1000;
            if waits && nimbus_core::now_millis() - group.last_scaled_ms < cooldown_ms {
                return if refuse_in_cooldown {
                    Err(AutoScalingError::ScalingActivityInProgress(
                        "Scaling activity is in progress or the group is in its cooldown period."
                            .into(),
                    ))
                } else {
                    Ok(())
                };
            }
            let desired = wanted.clamp(i64::from(group.min_size), i64::from(group.max_size)) as u32;
            if desired == group.desired_capacity {
                return Ok(());
            }
            group.set_desired(desired, why);
            group.last_scaled_ms = nimbus_core::now_millis();
            Ok(txn.put(group)?)
        })
    }
}

/// A policy by name (within `group` when given) or by ARN.
fn find<'a>(
    state: &'a engine::State,
    group: Option<&str>,
    name_or_arn: &str,
) -> Option<&'a Policy> {
    state.policies().values().find(|p| {
        p.arn == name_or_arn || (p.name == name_or_arn && group.is_none_or(|g| g == p.group_name))
    })
}

impl ScalingPolicies for AutoScaling {
    fn execute(
        &self,
        policy_arn: &str,
        trigger: &PolicyTrigger,
    ) -> std::result::Result<(), String> {
        let policy = self
            .engine
            .read()
            .policies()
            .get(policy_arn)
            .cloned()
            .ok_or_else(|| format!("the scaling policy {policy_arn} does not exist"))?;
        let suspended = crate::kinds::Tables::groups(&*self.engine.read())
            .get(&policy.group_name)
            .is_some_and(|g| g.suspended("AlarmNotification"));
        if suspended {
            return Ok(());
        }
        let why = format!(
            "a monitor alarm {} in state ALARM triggered policy {}",
            trigger.alarm, policy.name
        );
        self.run_policy(&policy, trigger, &why, false)
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(policy_type: &str) -> Policy {
        Policy {
            arn: "arn".into(),
            name: "p".into(),
            group_name: "g".into(),
            policy_type: policy_type.into(),
            adjustment_type: Some("ChangeInCapacity".into()),
            scaling_adjustment: Some(2),
            min_adjustment_magnitude: None,
            cooldown: None,
            step_adjustments: Vec::new(),
            metric_aggregation_type: None,
            estimated_instance_warmup: None,
            target_tracking: None,
            alarms: vec![
                ("high".into(), "arn:high".into()),
                ("low".into(), "arn:low".into()),
            ],
            enabled: true,
        }
    }

    fn trigger(alarm: &str, value: f64, threshold: f64) -> PolicyTrigger {
        PolicyTrigger {
            alarm: alarm.into(),
            value: Some(value),
            threshold,
        }
    }

    #[test]
    fn simple_scaling_adjusts_by_change_exact_or_percent() {
        let mut simple = policy("SimpleScaling");
        assert_eq!(simple.new_capacity(3, &trigger("a", 0.0, 0.0)), Some(5));
        simple.adjustment_type = Some("ExactCapacity".into());
        assert_eq!(simple.new_capacity(3, &trigger("a", 0.0, 0.0)), Some(2));
        simple.adjustment_type = Some("PercentChangeInCapacity".into());
        simple.scaling_adjustment = Some(50);
        assert_eq!(simple.new_capacity(4, &trigger("a", 0.0, 0.0)), Some(6));
        // Less than one instance of change still moves by the minimum magnitude.
        assert_eq!(simple.new_capacity(1, &trigger("a", 0.0, 0.0)), Some(2));
    }

    #[test]
    fn step_scaling_picks_the_step_the_breach_falls_in() {
        let mut step = policy("StepScaling");
        step.step_adjustments = vec![
            StepAdjustment {
                metric_interval_lower_bound: Some(0.0),
                metric_interval_upper_bound: Some(20.0),
                scaling_adjustment: 1,
            },
            StepAdjustment {
                metric_interval_lower_bound: Some(20.0),
                metric_interval_upper_bound: None,
                scaling_adjustment: 3,
            },
        ];
        assert_eq!(step.new_capacity(2, &trigger("a", 60.0, 50.0)), Some(3));
        assert_eq!(step.new_capacity(2, &trigger("a", 90.0, 50.0)), Some(5));
        assert_eq!(step.new_capacity(2, &trigger("a", 40.0, 50.0)), None);
    }

    #[test]
    fn target_tracking_scales_in_proportion_and_honours_disable_scale_in() {
        let mut tracking = policy("TargetTrackingScaling");
        tracking.target_tracking = Some(TargetTracking {
            predefined_metric_specification: None,
            customized_metric_specification: None,
            target_value: 40.0,
            disable_scale_in: false,
        });
        assert_eq!(
            tracking.new_capacity(2, &trigger("high", 100.0, 40.0)),
            Some(5)
        );
        assert_eq!(
            tracking.new_capacity(2, &trigger("high", 41.0, 40.0)),
            Some(3)
        );
        assert_eq!(
            tracking.new_capacity(4, &trigger("low", 10.0, 36.0)),
            Some(1)
        );
        assert_eq!(
            tracking.new_capacity(4, &trigger("low", 35.0, 36.0)),
            Some(3)
        );
        if let Some(target) = tracking.target_tracking.as_mut() {
            target.disable_scale_in = true;
        }
        assert_eq!(tracking.new_capacity(4, &trigger("low", 10.0, 36.0)), None);
    }

    #[test]
    fn alarm_periods_follow_the_metrics_interval() {
        assert_eq!(alarm_period_secs(1), 10);
        assert_eq!(alarm_period_secs(10), 10);
        assert_eq!(alarm_period_secs(20), 30);
        assert_eq!(alarm_period_secs(60), 60);
        assert_eq!(alarm_period_secs(61), 120);
    }
}
