//! Group metrics (`AWS/AutoScaling`): Enable/DisableMetricsCollection, and their publishing to
//! CloudWatch, once a minute per group as AWS does (the first at once).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use nimbus_core::metrics::{MetricSink, Sample};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::groups::{existing_group, Group};
use crate::members::Lifecycle;
use crate::{AutoScaling, AutoScalingError, Result};

/// The group metrics nimbus measures (no standby or warm pool metrics: those states do not
/// exist in nimbus yet).
pub const GROUP_METRICS: [&str; 7] = [
    "GroupMinSize",
    "GroupMaxSize",
    "GroupDesiredCapacity",
    "GroupInServiceInstances",
    "GroupPendingInstances",
    "GroupTerminatingInstances",
    "GroupTotalInstances",
];

const PUBLISH_EVERY_MS: i64 = 60_000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MetricsCollectionInput {
    auto_scaling_group_name: String,
    #[serde(default)]
    metrics: Vec<String>,
    granularity: Option<String>,
}

/// When each group's metrics were last published.
#[derive(Default)]
pub struct Publisher {
    last_ms: Mutex<BTreeMap<String, i64>>,
}

impl Publisher {
    /// Publishes `group`'s enabled metrics to `sink` if a minute has passed since the last time.
    pub fn publish(&self, group: &Group, sink: &dyn MetricSink) {
        let now = nimbus_core::now_millis();
        let mut last = self.last_ms.lock().unwrap_or_else(|p| p.into_inner());
        if group.enabled_metrics.is_empty() {
            last.remove(&group.name);
            return;
        }
        if last
            .get(&group.name)
            .is_some_and(|at| now - at < PUBLISH_EVERY_MS)
        {
            return;
        }
        last.insert(group.name.clone(), now);
        let count = |lifecycles: &[Lifecycle]| {
            group
                .members
                .iter()
                .filter(|m| lifecycles.contains(&m.lifecycle))
                .count() as f64
        };
        let samples = group
            .enabled_metrics
            .iter()
            .map(|metric| {
                let value = match metric.as_str() {
                    "GroupMinSize" => f64::from(group.min_size),
                    "GroupMaxSize" => f64::from(group.max_size),
                    "GroupDesiredCapacity" => f64::from(group.desired_capacity),
                    "GroupInServiceInstances" => count(&[Lifecycle::InService]),
                    "GroupPendingInstances" => count(&[Lifecycle::Pending, Lifecycle::PendingWait]),
                    "GroupTerminatingInstances" => {
                        count(&[Lifecycle::TerminatingWait, Lifecycle::Terminating])
                    }
                    _ => group.members.len() as f64,
                };
                Sample {
                    namespace: "AWS/AutoScaling".into(),
                    metric_name: metric.clone(),
                    dimensions: vec![("AutoScalingGroupName".into(), group.name.clone())],
                    unit: "None".into(),
                    timestamp_ms: now,
                    value,
                    storage_resolution: 60,
                }
            })
            .collect();
        sink.record(samples);
    }
}

impl AutoScaling {
    pub fn describe_metric_collection_types(&self) -> Value {
        json!({
            "Metrics": GROUP_METRICS.iter().map(|m| json!({ "Metric": m })).collect::<Vec<_>>(),
            "Granularities": [{ "Granularity": "1Minute" }],
        })
    }

    /// EnableMetricsCollection (`enable`) and DisableMetricsCollection.
    pub fn metrics_collection(&self, input: MetricsCollectionInput, enable: bool) -> Result<Value> {
        if enable && input.granularity.as_deref() != Some("1Minute") {
            return Err(AutoScalingError::Validation(
                "Granularity must be 1Minute".into(),
            ));
        }
        let named: BTreeSet<String> = if input.metrics.is_empty() {
            GROUP_METRICS.iter().map(|m| (*m).to_owned()).collect()
        } else {
            input.metrics.into_iter().collect()
        };
        if enable {
            if let Some(unknown) = named.iter().find(|m| !GROUP_METRICS.contains(&m.as_str())) {
                return Err(AutoScalingError::Validation(format!(
                    "Metric {unknown} is not supported by nimbus (it publishes {})",
                    GROUP_METRICS.join(", ")
                )));
            }
        }
        let name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            if enable {
                group.enabled_metrics.extend(named);
            } else {
                group.enabled_metrics.retain(|m| !named.contains(m));
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }
}
