//! The alarm evaluator: every alarm is looked at once a minute (every period for 10- and
//! 30-second alarms) over its last `EvaluationPeriods` complete periods. `DatapointsToAlarm`
//! of them breaching (M of N) moves it to ALARM; otherwise the datapoints it has move it to
//! OK; `TreatMissingData` says what a missing period counts as (`missing`: nothing, and all
//! missing means INSUFFICIENT_DATA; `ignore`: nothing, and all missing keeps the state;
//! `breaching` and `notBreaching`: as named).
//!
//! The clock is [`crate::Clock`], so tests step time by hand.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::alarms::{stored, Alarm, ALARM, INSUFFICIENT_DATA, OK};
use crate::{Monitoring, Result};

/// How often the evaluator task wakes up.
const TICK: Duration = Duration::from_secs(1);
/// How often aged-out datapoints are deleted.
const COMPACTION_EVERY_TICKS: u64 = 600;

/// One period's value: `None` when the period has no datapoints.
type Evaluated = (i64, Option<f64>, f64);

fn breaches(alarm: &Alarm, value: f64) -> bool {
    match alarm.comparison_operator.as_str() {
        "GreaterThanOrEqualToThreshold" => value >= alarm.threshold,
        "GreaterThanThreshold" => value > alarm.threshold,
        "LessThanThreshold" => value < alarm.threshold,
        _ => value <= alarm.threshold,
    }
}

fn comparison_words(alarm: &Alarm) -> &'static str {
    match alarm.comparison_operator.as_str() {
        "GreaterThanOrEqualToThreshold" => "greater than or equal to",
        "GreaterThanThreshold" => "greater than",
        "LessThanThreshold" => "less than",
        _ => "less than or equal to",
    }
}

/// Seconds between two evaluations of `alarm`.
fn cadence_ms(alarm: &Alarm) -> i64 {
    alarm.period.min(60) * 1000
}

/// The state the periods call for (`None`: keep the current one), with its reason.
fn decide(alarm: &Alarm, periods: &[Evaluated]) -> Option<(&'static str, String)> {
    let n = periods.len();
    let m = alarm
        .datapoints_to_alarm
        .unwrap_or(alarm.evaluation_periods) as usize;
    let treat = alarm.treat_missing_data.as_deref().unwrap_or("missing");
    let present: Vec<f64> = periods.iter().filter_map(|(_, v, _)| *v).collect();
    let missing = n - present.len();
    let mut breaching = present.iter().filter(|v| breaches(alarm, **v)).count();
    match treat {
        "breaching" => breaching += missing,
        "notBreaching" => {}
        _ if present.is_empty() => {
            return (treat == "missing").then(|| {
                (
                    INSUFFICIENT_DATA,
                    format!(
                        "Insufficient Data: {n} datapoint{} {} unknown.",
                        if n == 1 { "" } else { "s" },
                        if n == 1 { "was" } else { "were" }
                    ),
                )
            })
        }
        _ => {}
    }
    let shown: Vec<String> = present.iter().map(|v| format!("{v}")).collect();
    let words = comparison_words(alarm);
    if breaching >= m {
        Some((
            ALARM,
            format!(
                "Threshold Crossed: {breaching} out of the last {n} datapoints [{}] {} {words} \
                 the threshold ({}) (minimum {m} datapoint{} for OK -> ALARM transition).",
                shown.join(", "),
                if breaching == 1 { "was" } else { "were" },
                alarm.threshold,
                if m == 1 { "" } else { "s" },
            ),
        ))
    } else {
        Some((
            OK,
            format!(
                "Threshold Crossed: {} out of the last {n} datapoints [{}] {} not {words} the \
                 threshold ({}) (minimum {m} datapoint{} for ALARM -> OK transition).",
                n - breaching,
                shown.join(", "),
                if n - breaching == 1 { "was" } else { "were" },
                alarm.threshold,
                if m == 1 { "" } else { "s" },
            ),
        ))
    }
}

impl Monitoring {
    /// The last `EvaluationPeriods` complete periods of `alarm`'s metric before `now_ms`.
    fn evaluate(&self, alarm: &Alarm, now_ms: i64) -> Result<Vec<Evaluated>> {
        let period_ms = alarm.period * 1000;
        let end = now_ms.div_euclid(period_ms) * period_ms;
        let start = end - alarm.evaluation_periods * period_ms;
        let series = self.series(&alarm.metric, alarm.unit.as_deref(), start, end, period_ms)?;
        let statistic = alarm.statistic();
        Ok((0..alarm.evaluation_periods)
            .map(|k| {
                let at = start + k * period_ms;
                match series.get(&at) {
                    Some((_, summary)) => (
                        at,
                        statistic.and_then(|s| summary.statistic(s)),
                        summary.count,
                    ),
                    None => (at, None, 0.0),
                }
            })
            .collect())
    }

    /// Evaluates every alarm that is due, records state changes and fires their actions.
    pub fn evaluate_due_alarms(&self) -> Result<()> {
        let now = self.now_ms();
        let mut alarms = self.alarms();
        let mut changed = Vec::new();
        let mut history = Vec::new();
        for alarm in alarms.values_mut() {
            if alarm.next_evaluation_ms > now {
                continue;
            }
            alarm.next_evaluation_ms = now - now.rem_euclid(cadence_ms(alarm)) + cadence_ms(alarm);
            let periods = self.evaluate(alarm, now)?;
            let Some((state, reason)) = decide(alarm, &periods) else {
                continue;
            };
            if state == alarm.state {
                // As in AWS, a scaling policy is invoked again at every evaluation while its
                // alarm stays in ALARM (Auto Scaling's cooldowns keep it from overshooting).
                if state == ALARM && alarm.actions_enabled {
                    let latest = periods.iter().rev().find_map(|p| p.1);
                    self.invoke_scaling_policies(alarm, latest);
                }
                continue;
            }
            let reason_data = json!({
                "version": "1.0",
                "queryDate": nimbus_core::iso8601_millis(now),
                "startDate": nimbus_core::iso8601_millis(periods.first().map_or(now, |p| p.0)),
                "statistic": alarm.statistic_name(),
                "period": alarm.period,
                "recentDatapoints": periods.iter().filter_map(|p| p.1).collect::<Vec<_>>(),
                "threshold": alarm.threshold,
                "evaluatedDatapoints": periods.iter().rev().filter_map(|(at, value, count)| {
                    Some(json!({
                        "timestamp": nimbus_core::iso8601_millis(*at),
                        "sampleCount": count,
                        "value": (*value)?,
                    }))
                }).collect::<Vec<_>>(),
            });
            history.extend(self.change_state(alarm, state, reason, Some(reason_data.to_string())));
            changed.push((alarm.name.clone(), stored(alarm)));
        }
        let documents: Vec<(&str, String)> = changed
            .iter()
            .map(|(name, document)| (name.as_str(), document.clone()))
            .collect();
        if !documents.is_empty() {
            self.store.write_alarms(&documents, &[], &history)?;
        }
        Ok(())
    }
}

/// Evaluates alarms, rolls up new datapoints and compacts the store, every tick.
pub struct AlarmEvaluator {
    monitoring: Arc<Monitoring>,
    ticks: std::sync::atomic::AtomicU64,
}

impl AlarmEvaluator {
    pub fn new(monitoring: Arc<Monitoring>) -> AlarmEvaluator {
        AlarmEvaluator {
            monitoring,
            ticks: Default::default(),
        }
    }
}

#[async_trait::async_trait]
impl engine::Reconciler for AlarmEvaluator {
    fn name(&self) -> &'static str {
        "alarms"
    }

    async fn pass(&self) {
        let ticks = 1 + self
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let compact = ticks.is_multiple_of(COMPACTION_EVERY_TICKS);
        let worker = self.monitoring.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            worker.evaluate_due_alarms()?;
            // Keeps the roll-ups at most a tick behind, so a read rarely folds many rows.
            worker.store.roll_up()?;
            if compact {
                worker.compact()?;
            }
            Ok::<(), crate::MonitoringError>(())
        })
        .await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "alarm evaluation failed"),
            Err(error) => tracing::error!(%error, "alarm evaluation panicked"),
        }
    }

    async fn wait(&self) {
        tokio::time::sleep(TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use nimbus_core::metrics::InstanceAction;
    use serde_json::{json, Value};

    use crate::testing::{harness, input, Harness};

    const INSTANCE: &str = "i-0123456789abcdef0";

    fn put(h: &Harness, value: f64) {
        h.monitoring
            .put_metric_data(input(json!({"Namespace": "App", "MetricData": [{
                "MetricName": "Load", "Value": value, "StorageResolution": 1,
                "Dimensions": [{"Name": "InstanceId", "Value": INSTANCE}]}]})))
            .expect("put");
    }

    fn alarm(h: &Harness, extra: Value) {
        let mut request = json!({
            "AlarmName": "load", "Namespace": "App", "MetricName": "Load",
            "Dimensions": [{"Name": "InstanceId", "Value": INSTANCE}],
            "Statistic": "Maximum", "Period": 10, "EvaluationPeriods": 1, "Threshold": 50.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": ["arn:aws:automate:us-east-1:ec2:stop"],
            "OKActions": ["arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:x:autoScalingGroupName/g:policyName/p"],
        });
        for (key, value) in extra.as_object().expect("object") {
            request[key] = value.clone();
        }
        h.monitoring
            .put_metric_alarm(input(request))
            .expect("alarm");
    }

    fn state(h: &Harness) -> String {
        h.monitoring
            .describe_alarms(input(json!({})))
            .expect("describe")["MetricAlarms"][0]["StateValue"]
            .as_str()
            .expect("state")
            .to_owned()
    }

    /// Puts `value` in the current 10-second period, then lets that period complete and
    /// evaluates.
    fn step(h: &Harness, value: Option<f64>) -> String {
        if let Some(value) = value {
            put(h, value);
        }
        h.clock.advance(10_000);
        h.monitoring.evaluate_due_alarms().expect("evaluate");
        state(h)
    }

    #[test]
    fn goes_ok_alarm_ok_and_acts_on_transitions() {
        let h = harness();
        alarm(&h, json!({}));
        assert_eq!(step(&h, Some(10.0)), "OK");
        assert_eq!(step(&h, Some(90.0)), "ALARM");
        assert_eq!(step(&h, Some(95.0)), "ALARM");
        assert_eq!(step(&h, Some(10.0)), "OK");
        assert_eq!(
            *h.actions.0.lock().expect("lock"),
            [(INSTANCE.to_owned(), InstanceAction::Stop)]
        );
        let history = h
            .monitoring
            .describe_alarm_history(input(
                json!({"AlarmName": "load", "ScanBy": "TimestampAscending"}),
            ))
            .expect("history");
        let summaries: Vec<&str> = history["AlarmHistoryItems"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["HistorySummary"].as_str().expect("summary"))
            .collect();
        assert_eq!(
            summaries,
            [
                "Alarm \"load\" created",
                "Alarm updated from INSUFFICIENT_DATA to OK",
                "Failed to execute action arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:x:autoScalingGroupName/g:policyName/p",
                "Alarm updated from OK to ALARM",
                "Successfully executed action arn:aws:automate:us-east-1:ec2:stop",
                "Alarm updated from ALARM to OK",
                "Failed to execute action arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:x:autoScalingGroupName/g:policyName/p",
            ]
        );
        let described = h
            .monitoring
            .describe_alarms(input(json!({})))
            .expect("describe");
        let data: Value = serde_json::from_str(
            described["MetricAlarms"][0]["StateReasonData"]
                .as_str()
                .expect("data"),
        )
        .expect("json");
        assert_eq!(data["recentDatapoints"], json!([10.0]));
        assert_eq!(data["threshold"], json!(50.0));
    }

    #[test]
    fn m_of_n_and_missing_data() {
        let h = harness();
        alarm(
            &h,
            json!({"EvaluationPeriods": 3, "DatapointsToAlarm": 2, "AlarmActions": [], "OKActions": []}),
        );
        assert_eq!(step(&h, Some(90.0)), "OK");
        assert_eq!(step(&h, Some(10.0)), "OK");
        assert_eq!(step(&h, Some(90.0)), "ALARM");
        // Missing data: the remaining datapoints decide, then all missing is unknown.
        assert_eq!(step(&h, None), "OK");
        assert_eq!(step(&h, None), "OK");
        assert_eq!(step(&h, None), "INSUFFICIENT_DATA");
    }

    #[test]
    fn treat_missing_data_variants() {
        for (treat, expected) in [
            ("breaching", "ALARM"),
            ("notBreaching", "OK"),
            ("ignore", "INSUFFICIENT_DATA"),
            ("missing", "INSUFFICIENT_DATA"),
        ] {
            let h = harness();
            alarm(&h, json!({"TreatMissingData": treat, "AlarmActions": []}));
            assert_eq!(step(&h, None), expected, "{treat}");
        }
        // `ignore` keeps the state it had.
        let h = harness();
        alarm(
            &h,
            json!({"TreatMissingData": "ignore", "AlarmActions": []}),
        );
        assert_eq!(step(&h, Some(99.0)), "ALARM");
        assert_eq!(step(&h, None), "ALARM");
    }

    #[test]
    fn disabled_actions_do_not_fire_and_alarms_survive_restart() {
        let mut h = harness();
        alarm(&h, json!({"ActionsEnabled": false}));
        assert_eq!(step(&h, Some(90.0)), "ALARM");
        assert!(h.actions.0.lock().expect("lock").is_empty());
        h.reopen();
        assert_eq!(state(&h), "ALARM");
        h.monitoring
            .set_actions_enabled(input(json!({"AlarmNames": ["load"]})), true)
            .expect("enable");
        assert_eq!(step(&h, Some(10.0)), "OK");
        assert_eq!(step(&h, Some(90.0)), "ALARM");
        assert_eq!(h.actions.0.lock().expect("lock").len(), 1);
    }
}
