//! Metric alarms: their definition and validation (PutMetricAlarm), the describe and delete
//! operations, state changes (SetAlarmState and the evaluator's) with their history items,
//! and the actions a state change fires.

use nimbus_core::metrics::{InstanceAction, PolicyTrigger};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::stats::Statistic;
use crate::store::{HistoryItem, HistoryQuery};
use crate::{
    dimension_pairs, dimensions_json, millis_of, next_token, read_token, Dimension, MetricKey,
    Monitoring, MonitoringError, Result,
};

const MAX_EVALUATION_SECONDS: i64 = 86_400;
const MAX_ACTIONS: usize = 5;
const DEFAULT_DESCRIBE_PAGE: usize = 50;
const DEFAULT_HISTORY_PAGE: usize = 100;

pub const OK: &str = "OK";
pub const ALARM: &str = "ALARM";
pub const INSUFFICIENT_DATA: &str = "INSUFFICIENT_DATA";

/// A metric alarm as stored in `metrics.db` (one JSON document per alarm: alarms are few
/// and read whole).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Alarm {
    pub name: String,
    pub description: Option<String>,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub metric: MetricKey,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub period: i64,
    pub unit: Option<String>,
    pub evaluation_periods: i64,
    pub datapoints_to_alarm: Option<i64>,
    pub threshold: f64,
    pub comparison_operator: String,
    pub treat_missing_data: Option<String>,
    pub evaluate_low_sample_count_percentile: Option<String>,
    pub configuration_updated_ms: i64,
    pub state: String,
    pub state_reason: String,
    pub state_reason_data: Option<String>,
    pub state_updated_ms: i64,
    pub state_transitioned_ms: i64,
    /// When the evaluator next looks at the alarm (not stored: every alarm is due at start).
    #[serde(skip)]
    pub next_evaluation_ms: i64,
}

/// What an action ARN asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum AlarmAction {
    Instance(InstanceAction),
    ScalingPolicy,
}

impl Serialize for MetricKey {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        (&self.namespace, &self.name, &self.dimensions).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MetricKey {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let (namespace, name, dimensions) = Deserialize::deserialize(deserializer)?;
        Ok(MetricKey {
            namespace,
            name,
            dimensions,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutMetricAlarmInput {
    alarm_name: String,
    alarm_description: Option<String>,
    actions_enabled: Option<bool>,
    #[serde(rename = "OKActions", default)]
    ok_actions: Vec<String>,
    #[serde(default)]
    alarm_actions: Vec<String>,
    #[serde(default)]
    insufficient_data_actions: Vec<String>,
    metric_name: Option<String>,
    namespace: Option<String>,
    statistic: Option<String>,
    extended_statistic: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    period: Option<i64>,
    unit: Option<String>,
    evaluation_periods: i64,
    datapoints_to_alarm: Option<i64>,
    threshold: Option<f64>,
    comparison_operator: String,
    treat_missing_data: Option<String>,
    evaluate_low_sample_count_percentile: Option<String>,
    metrics: Option<Value>,
    threshold_metric_id: Option<String>,
    #[serde(default)]
    tags: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeAlarmsInput {
    #[serde(default)]
    alarm_names: Vec<String>,
    alarm_name_prefix: Option<String>,
    #[serde(default)]
    alarm_types: Vec<String>,
    state_value: Option<String>,
    action_prefix: Option<String>,
    max_records: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeAlarmsForMetricInput {
    metric_name: String,
    namespace: String,
    statistic: Option<String>,
    extended_statistic: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    period: Option<i64>,
    unit: Option<String>,
}

/// DeleteAlarms, EnableAlarmActions and DisableAlarmActions.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AlarmNames {
    alarm_names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetAlarmStateInput {
    alarm_name: String,
    state_value: String,
    state_reason: String,
    state_reason_data: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeAlarmHistoryInput {
    alarm_name: Option<String>,
    #[serde(default)]
    alarm_types: Vec<String>,
    history_item_type: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    max_records: Option<i64>,
    next_token: Option<String>,
    scan_by: Option<String>,
}

fn invalid(message: String) -> MonitoringError {
    MonitoringError::InvalidParameterValue(message)
}

fn validation(message: String) -> MonitoringError {
    MonitoringError::Validation(message)
}

/// The newest datapoint the alarm's last evaluation saw (its reason data's
/// `recentDatapoints`), which a target tracking policy scales by.
fn latest_datapoint(alarm: &Alarm) -> Option<f64> {
    let data: Value = serde_json::from_str(alarm.state_reason_data.as_deref()?).ok()?;
    data["recentDatapoints"].as_array()?.last()?.as_f64()
}

fn trigger(alarm: &Alarm, value: Option<f64>) -> PolicyTrigger {
    PolicyTrigger {
        alarm: alarm.name.clone(),
        value,
        threshold: alarm.threshold,
    }
}

/// `arn:aws:automate:REGION:ec2:ACTION` in this region, or an Auto Scaling policy ARN.
pub(crate) fn parse_action(arn: &str, region: &str) -> Option<AlarmAction> {
    if let Some(action) = arn
        .strip_prefix("arn:aws:automate:")
        .and_then(|rest| rest.strip_prefix(region))
        .and_then(|rest| rest.strip_prefix(":ec2:"))
    {
        return Some(AlarmAction::Instance(match action {
            "stop" => InstanceAction::Stop,
            "terminate" => InstanceAction::Terminate,
            "reboot" => InstanceAction::Reboot,
            "recover" => InstanceAction::Recover,
            _ => return None,
        }));
    }
    let policy = arn
        .strip_prefix("arn:aws:autoscaling:")
        .and_then(|rest| rest.strip_prefix(region))
        .and_then(|rest| rest.strip_prefix(':'))?;
    let (account, resource) = policy.split_once(':')?;
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    (account_ok && resource.starts_with("scalingPolicy:")).then_some(AlarmAction::ScalingPolicy)
}

impl Alarm {
    fn actions(&self) -> impl Iterator<Item = &String> {
        self.ok_actions
            .iter()
            .chain(&self.alarm_actions)
            .chain(&self.insufficient_data_actions)
    }

    /// The statistic the alarm evaluates.
    pub fn statistic(&self) -> Option<Statistic> {
        self.statistic
            .as_deref()
            .or(self.extended_statistic.as_deref())
            .and_then(Statistic::parse)
    }

    pub fn statistic_name(&self) -> &str {
        self.statistic
            .as_deref()
            .or(self.extended_statistic.as_deref())
            .unwrap_or_default()
    }

    pub fn to_json(&self, monitoring: &Monitoring) -> Value {
        let mut alarm = json!({
            "AlarmName": self.name,
            "AlarmArn": monitoring.alarm_arn(&self.name),
            "AlarmConfigurationUpdatedTimestamp": nimbus_core::iso8601_millis(self.configuration_updated_ms),
            "ActionsEnabled": self.actions_enabled,
            "OKActions": self.ok_actions,
            "AlarmActions": self.alarm_actions,
            "InsufficientDataActions": self.insufficient_data_actions,
            "StateValue": self.state,
            "StateReason": self.state_reason,
            "StateUpdatedTimestamp": nimbus_core::iso8601_millis(self.state_updated_ms),
            "StateTransitionedTimestamp": nimbus_core::iso8601_millis(self.state_transitioned_ms),
            "MetricName": self.metric.name,
            "Namespace": self.metric.namespace,
            "Dimensions": dimensions_json(&self.metric.dimensions),
            "Period": self.period,
            "EvaluationPeriods": self.evaluation_periods,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison_operator,
        });
        let optional = [
            (
                "AlarmDescription",
                self.description.clone().map(Value::from),
            ),
            (
                "StateReasonData",
                self.state_reason_data.clone().map(Value::from),
            ),
            ("Statistic", self.statistic.clone().map(Value::from)),
            (
                "ExtendedStatistic",
                self.extended_statistic.clone().map(Value::from),
            ),
            ("Unit", self.unit.clone().map(Value::from)),
            (
                "DatapointsToAlarm",
                self.datapoints_to_alarm.map(Value::from),
            ),
            (
                "TreatMissingData",
                self.treat_missing_data.clone().map(Value::from),
            ),
            (
                "EvaluateLowSampleCountPercentile",
                self.evaluate_low_sample_count_percentile
                    .clone()
                    .map(Value::from),
            ),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                alarm[name] = value;
            }
        }
        alarm
    }
}

fn history_item(
    alarm: &str,
    at_ms: i64,
    item_type: &str,
    summary: String,
    data: Value,
) -> HistoryItem {
    HistoryItem {
        alarm_name: alarm.to_owned(),
        timestamp_ms: at_ms,
        item_type: item_type.to_owned(),
        summary,
        data: data.to_string(),
    }
}

impl Monitoring {
    pub(crate) fn alarm_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{name}",
            self.region, self.account_id
        )
    }

    fn check_actions(&self, input: &PutMetricAlarmInput, metric: &MetricKey) -> Result<()> {
        for (list, name) in [
            (&input.ok_actions, "OKActions"),
            (&input.alarm_actions, "AlarmActions"),
            (&input.insufficient_data_actions, "InsufficientDataActions"),
        ] {
            if list.len() > MAX_ACTIONS {
                return Err(validation(format!(
                    "The collection {name} must not have a size greater than {MAX_ACTIONS}."
                )));
            }
            for arn in list {
                match parse_action(arn, &self.region) {
                    None => {
                        return Err(validation(format!(
                            "Invalid action {arn} in {name}: nimbus accepts \
                             arn:aws:automate:{}:ec2:stop|terminate|reboot|recover and Auto \
                             Scaling policy ARNs of this region.",
                            self.region
                        )))
                    }
                    Some(AlarmAction::Instance(_)) if metric.dimension("InstanceId").is_none() => {
                        return Err(validation(format!(
                            "Invalid use of EC2 action {arn}: an EC2 action can only be used \
                             with alarms on metrics that have an InstanceId dimension."
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    pub fn put_metric_alarm(&self, input: PutMetricAlarmInput) -> Result<Value> {
        if input.metrics.is_some() || input.threshold_metric_id.is_some() {
            return Err(validation(
                "Alarms on metric math (Metrics, ThresholdMetricId) are not supported by \
                 nimbus; give MetricName, Namespace, Statistic and Period."
                    .into(),
            ));
        }
        if !input.tags.is_empty() {
            return Err(validation(
                "The parameter Tags is not supported by nimbus for alarms.".into(),
            ));
        }
        let (Some(metric_name), Some(namespace), Some(period), Some(threshold)) = (
            &input.metric_name,
            &input.namespace,
            input.period,
            input.threshold,
        ) else {
            return Err(MonitoringError::MissingParameter(
                "A metric alarm needs MetricName, Namespace, Period and Threshold.".into(),
            ));
        };
        match (&input.statistic, &input.extended_statistic) {
            (Some(statistic), None) => match Statistic::parse(statistic) {
                Some(Statistic::Percentile(_)) | None => {
                    return Err(invalid(format!(
                        "The value {statistic} for parameter Statistic is not one of \
                         SampleCount, Average, Sum, Minimum, Maximum."
                    )))
                }
                Some(_) => {}
            },
            (None, Some(extended)) => {
                if !matches!(Statistic::parse(extended), Some(Statistic::Percentile(_))) {
                    return Err(invalid(format!(
                        "The value {extended} for parameter ExtendedStatistic is not a \
                         percentile pNN.NN."
                    )));
                }
            }
            _ => {
                return Err(MonitoringError::InvalidParameterCombination(
                    "Exactly one of Statistic and ExtendedStatistic must be specified.".into(),
                ))
            }
        }
        let metric = MetricKey::new(namespace, metric_name, dimension_pairs(&input.dimensions));
        let high_resolution = matches!(period, 10 | 30);
        if period <= 0 || !(high_resolution || period % 60 == 0) {
            return Err(invalid(format!(
                "The parameter Period must be 10, 30 or a multiple of 60 (got {period})."
            )));
        }
        if high_resolution && self.store.storage_resolution(&metric)? == Some(60) {
            return Err(invalid(format!(
                "The parameter Period must be a multiple of 60 for the standard-resolution \
                 metric {namespace} {metric_name}: periods of 10 and 30 seconds need a \
                 high-resolution metric (StorageResolution 1)."
            )));
        }
        let evaluated = input.evaluation_periods.checked_mul(period);
        if input.evaluation_periods < 1 || evaluated.is_none_or(|s| s > MAX_EVALUATION_SECONDS) {
            return Err(validation(
                "EvaluationPeriods must be at least 1, and EvaluationPeriods times Period at \
                 most one day (86400 seconds)."
                    .into(),
            ));
        }
        if let Some(m) = input.datapoints_to_alarm {
            if m < 1 || m > input.evaluation_periods {
                return Err(validation(format!(
                    "DatapointsToAlarm ({m}) must be between 1 and EvaluationPeriods ({}).",
                    input.evaluation_periods
                )));
            }
        }
        if !matches!(
            input.comparison_operator.as_str(),
            "GreaterThanOrEqualToThreshold"
                | "GreaterThanThreshold"
                | "LessThanThreshold"
                | "LessThanOrEqualToThreshold"
        ) {
            return Err(validation(format!(
                "The comparison operator {} is not supported by nimbus: anomaly detection \
                 bands need metric math.",
                input.comparison_operator
            )));
        }
        if let Some(treat) = &input.treat_missing_data {
            if !matches!(
                treat.as_str(),
                "missing" | "ignore" | "breaching" | "notBreaching"
            ) {
                return Err(validation(format!(
                    "The value {treat} for TreatMissingData must be one of missing, ignore, \
                     breaching, notBreaching."
                )));
            }
        }
        if let Some(low) = &input.evaluate_low_sample_count_percentile {
            if !matches!(low.as_str(), "evaluate" | "ignore") {
                return Err(validation(format!(
                    "The value {low} for EvaluateLowSampleCountPercentile must be evaluate or \
                     ignore."
                )));
            }
        }
        self.check_actions(&input, &metric)?;
        let now = self.now_ms();
        let mut alarms = self.alarms();
        let previous = alarms.get(&input.alarm_name).cloned();
        let mut alarm = Alarm {
            name: input.alarm_name.clone(),
            description: input.alarm_description,
            actions_enabled: input.actions_enabled.unwrap_or(true),
            ok_actions: input.ok_actions,
            alarm_actions: input.alarm_actions,
            insufficient_data_actions: input.insufficient_data_actions,
            metric,
            statistic: input.statistic,
            extended_statistic: input.extended_statistic,
            period,
            unit: input.unit,
            evaluation_periods: input.evaluation_periods,
            datapoints_to_alarm: input.datapoints_to_alarm,
            threshold,
            comparison_operator: input.comparison_operator,
            treat_missing_data: input.treat_missing_data,
            evaluate_low_sample_count_percentile: input.evaluate_low_sample_count_percentile,
            configuration_updated_ms: now,
            state: INSUFFICIENT_DATA.into(),
            state_reason: "Unchecked: Initial alarm creation".into(),
            state_reason_data: None,
            state_updated_ms: now,
            state_transitioned_ms: now,
            next_evaluation_ms: 0,
        };
        // An update keeps the alarm's state (as AWS does) and is evaluated afresh.
        if let Some(previous) = &previous {
            alarm.state = previous.state.clone();
            alarm.state_reason = previous.state_reason.clone();
            alarm.state_reason_data = previous.state_reason_data.clone();
            alarm.state_updated_ms = previous.state_updated_ms;
            alarm.state_transitioned_ms = previous.state_transitioned_ms;
        }
        let (kind, verb, key) = match previous {
            None => ("Create", "created", "createdAlarm"),
            Some(_) => ("Update", "updated", "updatedAlarm"),
        };
        let item = history_item(
            &alarm.name,
            now,
            "ConfigurationUpdate",
            format!("Alarm \"{}\" {verb}", alarm.name),
            json!({ "version": "1.0", "type": kind, key: alarm.to_json(self) }),
        );
        self.store
            .write_alarms(&[(&alarm.name, stored(&alarm))], &[], &[item])?;
        alarms.insert(alarm.name.clone(), alarm);
        Ok(json!({}))
    }

    pub fn describe_alarms(&self, input: DescribeAlarmsInput) -> Result<Value> {
        if !input.alarm_names.is_empty() && input.alarm_name_prefix.is_some() {
            return Err(MonitoringError::InvalidParameterCombination(
                "AlarmNames and AlarmNamePrefix are mutually exclusive.".into(),
            ));
        }
        let limit = page_size(input.max_records, DEFAULT_DESCRIBE_PAGE, 100)?;
        let offset = read_token(input.next_token.as_deref())?;
        let wants_metric_alarms =
            input.alarm_types.is_empty() || input.alarm_types.iter().any(|t| t == "MetricAlarm");
        let alarms = self.alarms();
        let matching: Vec<&Alarm> = alarms
            .values()
            .filter(|alarm| {
                wants_metric_alarms
                    && (input.alarm_names.is_empty() || input.alarm_names.contains(&alarm.name))
                    && input
                        .alarm_name_prefix
                        .as_ref()
                        .is_none_or(|prefix| alarm.name.starts_with(prefix.as_str()))
                    && input.state_value.as_ref().is_none_or(|s| *s == alarm.state)
                    && input.action_prefix.as_ref().is_none_or(|prefix| {
                        alarm.actions().any(|a| a.starts_with(prefix.as_str()))
                    })
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|alarm| alarm.to_json(self))
            .collect();
        let mut output = json!({ "MetricAlarms": page, "CompositeAlarms": [] });
        if offset.saturating_add(limit) < matching.len() {
            output["NextToken"] = json!(next_token(offset.saturating_add(limit)));
        }
        Ok(output)
    }

    pub fn describe_alarms_for_metric(&self, input: DescribeAlarmsForMetricInput) -> Result<Value> {
        let metric = MetricKey::new(
            &input.namespace,
            &input.metric_name,
            dimension_pairs(&input.dimensions),
        );
        let alarms = self.alarms();
        let matching: Vec<Value> = alarms
            .values()
            .filter(|alarm| {
                alarm.metric == metric
                    && input
                        .statistic
                        .as_ref()
                        .is_none_or(|s| alarm.statistic.as_ref() == Some(s))
                    && input
                        .extended_statistic
                        .as_ref()
                        .is_none_or(|s| alarm.extended_statistic.as_ref() == Some(s))
                    && input.period.is_none_or(|p| p == alarm.period)
                    && input
                        .unit
                        .as_ref()
                        .is_none_or(|u| alarm.unit.as_ref() == Some(u))
            })
            .map(|alarm| alarm.to_json(self))
            .collect();
        Ok(json!({ "MetricAlarms": matching }))
    }

    pub fn delete_alarms(&self, input: AlarmNames) -> Result<Value> {
        let mut alarms = self.alarms();
        if let Some(missing) = input.alarm_names.iter().find(|n| !alarms.contains_key(*n)) {
            return Err(MonitoringError::ResourceNotFound(format!(
                "The alarm {missing} does not exist."
            )));
        }
        let now = self.now_ms();
        let items: Vec<HistoryItem> = input
            .alarm_names
            .iter()
            .map(|name| {
                history_item(
                    name,
                    now,
                    "ConfigurationUpdate",
                    format!("Alarm \"{name}\" deleted"),
                    json!({ "version": "1.0", "type": "Delete" }),
                )
            })
            .collect();
        let names: Vec<&str> = input.alarm_names.iter().map(String::as_str).collect();
        self.store.write_alarms(&[], &names, &items)?;
        for name in &input.alarm_names {
            alarms.remove(name);
        }
        Ok(json!({}))
    }

    /// Enable/DisableAlarmActions; names that are not alarms are passed over, as in AWS.
    pub fn set_actions_enabled(&self, input: AlarmNames, enabled: bool) -> Result<Value> {
        let mut alarms = self.alarms();
        let mut changed = Vec::new();
        for name in &input.alarm_names {
            if let Some(alarm) = alarms.get(name) {
                let mut alarm = alarm.clone();
                alarm.actions_enabled = enabled;
                changed.push(alarm);
            }
        }
        let documents: Vec<(&str, String)> = changed
            .iter()
            .map(|a| (a.name.as_str(), stored(a)))
            .collect();
        self.store.write_alarms(&documents, &[], &[])?;
        for alarm in changed {
            alarms.insert(alarm.name.clone(), alarm);
        }
        Ok(json!({}))
    }

    pub fn set_alarm_state(&self, input: SetAlarmStateInput) -> Result<Value> {
        if !matches!(input.state_value.as_str(), OK | ALARM | INSUFFICIENT_DATA) {
            return Err(invalid(format!(
                "The value {} for parameter StateValue is invalid.",
                input.state_value
            )));
        }
        if let Some(data) = &input.state_reason_data {
            if serde_json::from_str::<Value>(data).is_err() {
                return Err(invalid(
                    "The parameter StateReasonData must be valid JSON.".into(),
                ));
            }
        }
        let mut alarms = self.alarms();
        let Some(alarm) = alarms.get(&input.alarm_name) else {
            return Err(MonitoringError::ResourceNotFound(format!(
                "The alarm {} does not exist.",
                input.alarm_name
            )));
        };
        let mut alarm = alarm.clone();
        let items = self.change_state(
            &mut alarm,
            &input.state_value,
            input.state_reason,
            input.state_reason_data,
        );
        self.store
            .write_alarms(&[(&alarm.name, stored(&alarm))], &[], &items)?;
        alarms.insert(alarm.name.clone(), alarm);
        Ok(json!({}))
    }

    /// Moves `alarm` to `state` (a no-op when it is there already) and fires the actions of
    /// the new state; returns the history items to record.
    pub(crate) fn change_state(
        &self,
        alarm: &mut Alarm,
        state: &str,
        reason: String,
        reason_data: Option<String>,
    ) -> Vec<HistoryItem> {
        if alarm.state == state {
            return Vec::new();
        }
        let now = self.now_ms();
        let mut new_state = json!({ "stateValue": state, "stateReason": reason });
        if let Some(data) = reason_data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
        {
            new_state["stateReasonData"] = data;
        }
        let data = json!({
            "version": "1.0",
            "oldState": { "stateValue": alarm.state, "stateReason": alarm.state_reason },
            "newState": new_state,
        });
        let mut items = vec![history_item(
            &alarm.name,
            now,
            "StateUpdate",
            format!("Alarm updated from {} to {state}", alarm.state),
            data,
        )];
        alarm.state = state.to_owned();
        alarm.state_reason = reason;
        alarm.state_reason_data = reason_data;
        alarm.state_updated_ms = now;
        alarm.state_transitioned_ms = now;
        if alarm.actions_enabled {
            let actions = match state {
                ALARM => &alarm.alarm_actions,
                OK => &alarm.ok_actions,
                _ => &alarm.insufficient_data_actions,
            };
            for arn in actions {
                items.push(self.fire(alarm, arn, now));
            }
        }
        items
    }

    /// Invokes again the scaling policies among the alarm actions of `alarm`, which stays in
    /// ALARM; `value` is its latest datapoint.
    pub(crate) fn invoke_scaling_policies(&self, alarm: &Alarm, value: Option<f64>) {
        let Some(autoscaling) = self.scaling_policies.get() else {
            return;
        };
        for arn in &alarm.alarm_actions {
            if parse_action(arn, &self.region) == Some(AlarmAction::ScalingPolicy) {
                if let Err(error) = autoscaling.execute(arn, &trigger(alarm, value)) {
                    tracing::warn!(alarm = %alarm.name, %arn, %error, "scaling policy not invoked");
                }
            }
        }
    }

    /// Carries out one action and says how it went, as an `Action` history item.
    fn fire(&self, alarm: &Alarm, arn: &str, now: i64) -> HistoryItem {
        let outcome = match parse_action(arn, &self.region) {
            Some(AlarmAction::Instance(action)) => {
                match (
                    alarm.metric.dimension("InstanceId"),
                    self.instance_actions.get(),
                ) {
                    (Some(instance), Some(ec2)) => ec2.act(instance, action),
                    (None, _) => Err("the alarm's metric has no InstanceId dimension".into()),
                    (_, None) => Err("EC2 is not available to carry out alarm actions".into()),
                }
            }
            Some(AlarmAction::ScalingPolicy) => match self.scaling_policies.get() {
                Some(autoscaling) => {
                    autoscaling.execute(arn, &trigger(alarm, latest_datapoint(alarm)))
                }
                None => Err("Auto Scaling is not available to carry out alarm actions".into()),
            },
            None => Err("nimbus does not know this action".into()),
        };
        let (summary, data) = match outcome {
            Ok(()) => (
                format!("Successfully executed action {arn}"),
                json!({ "actionState": "Succeeded", "stateUpdateTimestamp": now, "notificationResource": arn }),
            ),
            Err(error) => {
                tracing::warn!(alarm = %alarm.name, %arn, %error, "alarm action failed");
                (
                    format!("Failed to execute action {arn}"),
                    json!({ "actionState": "Failed", "stateUpdateTimestamp": now, "notificationResource": arn, "error": error }),
                )
            }
        };
        history_item(&alarm.name, now, "Action", summary, data)
    }

    pub fn describe_alarm_history(&self, input: DescribeAlarmHistoryInput) -> Result<Value> {
        if !input.alarm_types.is_empty() && !input.alarm_types.iter().any(|t| t == "MetricAlarm") {
            return Ok(json!({ "AlarmHistoryItems": [] }));
        }
        if let Some(kind) = &input.history_item_type {
            if !matches!(
                kind.as_str(),
                "ConfigurationUpdate" | "StateUpdate" | "Action"
            ) {
                return Err(invalid(format!(
                    "The value {kind} for parameter HistoryItemType is not one nimbus records."
                )));
            }
        }
        let ascending = match input.scan_by.as_deref() {
            None | Some("TimestampDescending") => false,
            Some("TimestampAscending") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "The value {other} for parameter ScanBy is invalid."
                )))
            }
        };
        let offset = read_token(input.next_token.as_deref())?;
        let limit = page_size(input.max_records, DEFAULT_HISTORY_PAGE, 100)?;
        let query = HistoryQuery {
            alarm_name: input.alarm_name,
            item_type: input.history_item_type,
            start_ms: input
                .start_date
                .as_deref()
                .map(|d| millis_of(d, "StartDate"))
                .transpose()?,
            end_ms: input
                .end_date
                .as_deref()
                .map(|d| millis_of(d, "EndDate"))
                .transpose()?,
            ascending,
            offset,
            limit,
        };
        let (items, more) = self.store.history(&query)?;
        let items: Vec<Value> = items
            .iter()
            .map(|item| {
                json!({
                    "AlarmName": item.alarm_name,
                    "AlarmType": "MetricAlarm",
                    "Timestamp": nimbus_core::iso8601_millis(item.timestamp_ms),
                    "HistoryItemType": item.item_type,
                    "HistorySummary": item.summary,
                    "HistoryData": item.data,
                })
            })
            .collect();
        let mut output = json!({ "AlarmHistoryItems": items });
        if more {
            output["NextToken"] = json!(next_token(offset.saturating_add(limit)));
        }
        Ok(output)
    }
}

/// An alarm as its stored document.
pub(crate) fn stored(alarm: &Alarm) -> String {
    serde_json::to_string(alarm).unwrap_or_default()
}

fn page_size(requested: Option<i64>, default: usize, max: i64) -> Result<usize> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) => Err(invalid(format!(
            "The value {n} for parameter MaxRecords must be between 1 and {max}."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{harness, input};

    fn alarm(extra: Value) -> PutMetricAlarmInput {
        let mut request = json!({
            "AlarmName": "cpu-high", "Namespace": "App", "MetricName": "Load",
            "Dimensions": [{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}],
            "Statistic": "Average", "Period": 60, "EvaluationPeriods": 1, "Threshold": 50.0,
            "ComparisonOperator": "GreaterThanThreshold",
        });
        for (key, value) in extra.as_object().expect("object") {
            request[key] = value.clone();
        }
        input(request)
    }

    #[test]
    fn parses_action_arns() {
        assert_eq!(
            parse_action("arn:aws:automate:us-east-1:ec2:stop", "us-east-1"),
            Some(AlarmAction::Instance(InstanceAction::Stop))
        );
        assert_eq!(
            parse_action(
                "arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:1a2b:autoScalingGroupName/g:policyName/p",
                "us-east-1"
            ),
            Some(AlarmAction::ScalingPolicy)
        );
        for bad in [
            "arn:aws:automate:eu-west-1:ec2:stop",
            "arn:aws:automate:us-east-1:ec2:hibernate",
            "arn:aws:sns:us-east-1:000000000000:topic",
            "arn:aws:autoscaling:us-east-1:000:scalingPolicy:x",
        ] {
            assert_eq!(parse_action(bad, "us-east-1"), None, "{bad}");
        }
    }

    #[test]
    fn validates_alarms_as_cloudwatch_does() {
        let h = harness();
        let refused = |extra: Value| {
            h.monitoring
                .put_metric_alarm(alarm(extra))
                .expect_err("refused")
                .to_string()
        };
        assert!(refused(json!({"Period": 45})).contains("Period"));
        assert!(refused(json!({"EvaluationPeriods": 1441})).contains("one day"));
        assert!(
            refused(json!({"Period": 9_223_372_036_854_775_800_i64, "EvaluationPeriods": 2}))
                .contains("one day")
        );
        assert!(
            refused(json!({"EvaluationPeriods": 2, "DatapointsToAlarm": 3}))
                .contains("DatapointsToAlarm")
        );
        assert!(
            refused(json!({"AlarmActions": ["arn:aws:sns:us-east-1:000000000000:t"]}))
                .contains("Invalid action")
        );
        assert!(
            refused(json!({"ComparisonOperator": "GreaterThanUpperThreshold"})).contains("anomaly")
        );
        assert!(refused(
            json!({"Dimensions": [], "AlarmActions": ["arn:aws:automate:us-east-1:ec2:stop"]})
        )
        .contains("InstanceId"));
        h.monitoring
            .put_metric_data(input(json!({"Namespace": "App", "MetricData": [{
                "MetricName": "Load", "Value": 1.0,
                "Dimensions": [{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}]}]})))
            .expect("standard-resolution metric");
        assert!(refused(json!({"Period": 10})).contains("high-resolution"));
        h.monitoring
            .put_metric_alarm(alarm(
                json!({"AlarmActions": ["arn:aws:automate:us-east-1:ec2:stop"]}),
            ))
            .expect("valid alarm");
    }

    #[test]
    fn describes_sets_state_and_deletes_with_history() {
        let mut h = harness();
        h.monitoring
            .put_metric_alarm(alarm(json!({})))
            .expect("put");
        h.monitoring
            .put_metric_alarm(alarm(json!({"AlarmName": "disk-full"})))
            .expect("put");
        let described = h
            .monitoring
            .describe_alarms(input(json!({"AlarmNamePrefix": "cpu"})))
            .expect("describe");
        assert_eq!(described["MetricAlarms"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            described["MetricAlarms"][0]["StateValue"],
            json!("INSUFFICIENT_DATA")
        );
        h.monitoring
            .set_alarm_state(input(
                json!({"AlarmName": "cpu-high", "StateValue": "ALARM", "StateReason": "testing"}),
            ))
            .expect("set");
        h.reopen();
        let described = h
            .monitoring
            .describe_alarms(input(json!({"StateValue": "ALARM"})))
            .expect("describe");
        assert_eq!(described["MetricAlarms"][0]["AlarmName"], json!("cpu-high"));
        let page = h
            .monitoring
            .describe_alarms(input(json!({"MaxRecords": 1})))
            .expect("page");
        assert!(page["NextToken"].is_string());
        let history = h
            .monitoring
            .describe_alarm_history(input(json!({"AlarmName": "cpu-high"})))
            .expect("history");
        let kinds: Vec<&str> = history["AlarmHistoryItems"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["HistoryItemType"].as_str().expect("type"))
            .collect();
        assert_eq!(kinds, ["StateUpdate", "ConfigurationUpdate"]);
        let refused = h
            .monitoring
            .delete_alarms(input(json!({"AlarmNames": ["cpu-high", "nope"]})));
        assert!(matches!(refused, Err(MonitoringError::ResourceNotFound(_))));
        h.monitoring
            .delete_alarms(input(json!({"AlarmNames": ["cpu-high"]})))
            .expect("delete");
        let left = h
            .monitoring
            .describe_alarms(input(json!({})))
            .expect("describe");
        assert_eq!(left["MetricAlarms"][0]["AlarmName"], json!("disk-full"));
    }
}
