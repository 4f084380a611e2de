//! CloudWatch: the time-series store (`metrics.db`), CloudWatch's rules for metrics and
//! alarms, and the alarm evaluator.
//!
//! [`Monitoring`] answers the CloudWatch operations (inputs are botocore's shapes, read with
//! serde; outputs are JSON keyed by member names, as the api crate's codecs expect), and is
//! the [`MetricSink`] the collectors push `AWS/EC2` and `AWS/EBS` samples into. Alarm
//! actions on instances go through [`InstanceActions`], which EC2 (`control`) provides, so
//! this crate never imports it.

mod alarms;
mod evaluator;
mod metrics;
mod stats;
mod store;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use base64::Engine;
use nimbus_core::metrics::{
    InstanceActions, MetricSink, PolicyAlarm, PolicyAlarms, Sample, ScalingPolicies,
};

pub use alarms::{
    AlarmNames, DescribeAlarmHistoryInput, DescribeAlarmsForMetricInput, DescribeAlarmsInput,
    PutMetricAlarmInput, SetAlarmStateInput,
};
pub use evaluator::AlarmEvaluator;
pub use metrics::{
    GetMetricDataInput, GetMetricStatisticsInput, ListMetricsInput, PutMetricDataInput,
};

use alarms::Alarm;
use store::{Point, Store};

/// Why a CloudWatch call failed; the api crate names the AWS code of each in one place.
#[derive(Debug, thiserror::Error)]
pub enum MonitoringError {
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("{0}")]
    MissingParameter(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("The NextToken {0} is not valid.")]
    InvalidNextToken(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("CloudWatch's store failed: {0}")]
    Storage(String),
}

pub type Result<T> = std::result::Result<T, MonitoringError>;

/// A metric's identity: namespace, name and dimensions (sorted by name, as CloudWatch
/// treats them as a set).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricKey {
    pub namespace: String,
    pub name: String,
    pub dimensions: Vec<(String, String)>,
}

impl MetricKey {
    pub fn new(namespace: &str, name: &str, mut dimensions: Vec<(String, String)>) -> MetricKey {
        dimensions.sort();
        MetricKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            dimensions,
        }
    }

    /// The value of dimension `name`.
    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where "now" comes from: the wall clock, or a test's.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        nimbus_core::now_millis()
    }
}

/// CloudWatch for one account and region.
pub struct Monitoring {
    store: Store,
    region: String,
    account_id: String,
    clock: Arc<dyn Clock>,
    /// Every alarm, written through to the store on each change.
    alarms: Mutex<BTreeMap<String, Alarm>>,
    instance_actions: OnceLock<Arc<dyn InstanceActions>>,
    scaling_policies: OnceLock<Arc<dyn ScalingPolicies>>,
}

impl Monitoring {
    /// Opens (or creates) `metrics.db` at `path` and loads the alarms.
    pub fn open(
        path: &Path,
        region: &str,
        account_id: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Monitoring> {
        let store = Store::open(path)?;
        let mut alarms = BTreeMap::new();
        for document in store.alarms()? {
            let alarm: Alarm = serde_json::from_str(&document)
                .map_err(|e| MonitoringError::Storage(format!("an alarm in metrics.db: {e}")))?;
            alarms.insert(alarm.name.clone(), alarm);
        }
        Ok(Monitoring {
            store,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            clock,
            alarms: Mutex::new(alarms),
            instance_actions: OnceLock::new(),
            scaling_policies: OnceLock::new(),
        })
    }

    /// Hands over EC2, which carries out alarms' instance actions. Until then such an action
    /// is recorded as failed. Later calls are ignored: EC2 is set once, at startup.
    pub fn set_instance_actions(&self, actions: Arc<dyn InstanceActions>) {
        let _ = self.instance_actions.set(actions);
    }

    /// Hands over Auto Scaling, which runs the scaling policies alarms invoke.
    pub fn set_scaling_policies(&self, policies: Arc<dyn ScalingPolicies>) {
        let _ = self.scaling_policies.set(policies);
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn alarms(&self) -> MutexGuard<'_, BTreeMap<String, Alarm>> {
        self.alarms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Deletes datapoints and history that aged out of their retention.
    pub fn compact(&self) -> Result<()> {
        self.store.compact(self.now_ms())
    }
}

/// The alarms of target tracking policies, made as PutMetricAlarm makes any alarm.
impl PolicyAlarms for Monitoring {
    fn put_alarm(&self, alarm: &PolicyAlarm) -> std::result::Result<String, String> {
        let dimensions: Vec<serde_json::Value> = (alarm.dimensions.iter())
            .map(|(name, value)| serde_json::json!({ "Name": name, "Value": value }))
            .collect();
        let mut input = serde_json::json!({
            "AlarmName": alarm.name,
            "AlarmDescription": "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy.",
            "AlarmActions": alarm.actions,
            "Namespace": alarm.namespace,
            "MetricName": alarm.metric_name,
            "Dimensions": dimensions,
            "Statistic": alarm.statistic,
            "Period": alarm.period_secs,
            "EvaluationPeriods": alarm.evaluation_periods,
            "Threshold": alarm.threshold,
            "ComparisonOperator": alarm.comparison,
        });
        if let Some(unit) = &alarm.unit {
            input["Unit"] = serde_json::json!(unit);
        }
        let input = serde_json::from_value(input).map_err(|e| e.to_string())?;
        self.put_metric_alarm(input).map_err(|e| e.to_string())?;
        Ok(format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{}",
            self.region, self.account_id, alarm.name
        ))
    }

    fn delete_alarms(&self, names: &[String]) -> std::result::Result<(), String> {
        let input = serde_json::from_value(serde_json::json!({ "AlarmNames": names }))
            .map_err(|e| e.to_string())?;
        match self.delete_alarms(input) {
            Ok(_) | Err(MonitoringError::ResourceNotFound(_)) => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    }
}

impl MetricSink for Monitoring {
    fn record(&self, samples: Vec<Sample>) {
        let points: Vec<Point> = samples
            .into_iter()
            .map(|sample| Point {
                key: MetricKey::new(&sample.namespace, &sample.metric_name, sample.dimensions),
                unit: sample.unit,
                timestamp_ms: sample.timestamp_ms,
                storage_resolution: sample.storage_resolution,
                summary: stats::Summary::of_value(sample.value, 1.0),
            })
            .collect();
        if let Err(error) = self.store.put(&points, self.now_ms()) {
            tracing::error!(%error, "measured metrics could not be stored");
        }
    }
}

/// A pagination token: an offset into a stably ordered listing.
fn next_token(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("nimbus:{offset}"))
}

fn read_token(token: Option<&str>) -> Result<usize> {
    let Some(token) = token else {
        return Ok(0);
    };
    base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("nimbus:")?.parse().ok())
        .ok_or_else(|| MonitoringError::InvalidNextToken(token.chars().take(64).collect()))
}

/// A timestamp as the codecs hand it over (ISO 8601), in milliseconds.
fn millis_of(text: &str, parameter: &str) -> Result<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|at| (at.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            MonitoringError::InvalidParameterValue(format!(
                "The value {text} for parameter {parameter} is not a valid timestamp."
            ))
        })
}

/// Dimensions as the shapes carry them.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

fn dimension_pairs(dimensions: &[Dimension]) -> Vec<(String, String)> {
    dimensions
        .iter()
        .map(|d| (d.name.clone(), d.value.clone()))
        .collect()
}

fn dimensions_json(dimensions: &[(String, String)]) -> serde_json::Value {
    dimensions
        .iter()
        .map(|(name, value)| serde_json::json!({ "Name": name, "Value": value }))
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::{Arc, Mutex};

    use nimbus_core::metrics::{InstanceAction, InstanceActions};

    use super::*;

    /// 2026-11-29T00:00:00Z.
    pub const T0: i64 = 1_795_910_400_000;

    pub struct FakeClock(pub AtomicI64);

    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    impl FakeClock {
        pub fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    #[derive(Default)]
    pub struct RecordingActions(pub Mutex<Vec<(String, InstanceAction)>>);

    impl InstanceActions for RecordingActions {
        fn act(
            &self,
            instance_id: &str,
            action: InstanceAction,
        ) -> std::result::Result<(), String> {
            self.0
                .lock()
                .expect("lock")
                .push((instance_id.to_owned(), action));
            Ok(())
        }
    }

    pub struct Harness {
        pub dir: tempfile::TempDir,
        pub clock: Arc<FakeClock>,
        pub actions: Arc<RecordingActions>,
        pub monitoring: Monitoring,
    }

    pub fn harness() -> Harness {
        let dir = tempfile::tempdir().expect("dir");
        let clock = Arc::new(FakeClock(AtomicI64::new(T0)));
        let monitoring = Monitoring::open(
            &dir.path().join("metrics.db"),
            "us-east-1",
            "000000000000",
            clock.clone(),
        )
        .expect("open");
        let actions = Arc::new(RecordingActions::default());
        monitoring.set_instance_actions(actions.clone());
        Harness {
            dir,
            clock,
            actions,
            monitoring,
        }
    }

    impl Harness {
        pub fn reopen(&mut self) {
            self.monitoring = Monitoring::open(
                &self.dir.path().join("metrics.db"),
                "us-east-1",
                "000000000000",
                self.clock.clone(),
            )
            .expect("reopen");
            self.monitoring.set_instance_actions(self.actions.clone());
        }
    }

    pub fn input<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).expect("input")
    }
}
