//! What the measuring side of nimbus (collectors in `control`) and CloudWatch (the
//! `monitoring` service) share, so that neither imports the other: a datapoint, the sink
//! that stores it, and the EC2 actions an alarm may take.

/// One measured or reported value of a metric at a moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// `AWS/EC2`, `AWS/EBS` or a custom namespace.
    pub namespace: String,
    pub metric_name: String,
    /// Name and value pairs, e.g. `("InstanceId", "i-…")`, in the order AWS lists them.
    pub dimensions: Vec<(String, String)>,
    /// A CloudWatch `StandardUnit`: `Percent`, `Bytes`, `Count`, `Seconds`…
    pub unit: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    pub value: f64,
    /// 1 for high-resolution metrics, 60 for standard ones.
    pub storage_resolution: u32,
}

/// Where samples go: CloudWatch's time-series store.
pub trait MetricSink: Send + Sync {
    fn record(&self, samples: Vec<Sample>);
}

/// The EC2 actions a CloudWatch alarm may take: `arn:aws:automate:REGION:ec2:ACTION`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceAction {
    Stop,
    Terminate,
    Reboot,
    Recover,
}

/// EC2 as an alarm sees it: carries out an action on an instance, as its owner would.
pub trait InstanceActions: Send + Sync {
    fn act(&self, instance_id: &str, action: InstanceAction) -> Result<(), String>;
}

/// An alarm a target tracking policy owns (`TargetTracking-…`), as Auto Scaling asks
/// CloudWatch for it.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyAlarm {
    pub name: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    /// `Average`, `Sum`…
    pub statistic: String,
    pub unit: Option<String>,
    pub period_secs: u32,
    pub evaluation_periods: u32,
    pub threshold: f64,
    /// `GreaterThanThreshold` or `LessThanThreshold`.
    pub comparison: String,
    /// The policy ARN the alarm invokes.
    pub actions: Vec<String>,
}

/// CloudWatch as Auto Scaling sees it: the alarms of target tracking policies.
pub trait PolicyAlarms: Send + Sync {
    /// Creates or replaces `alarm`; returns its ARN.
    fn put_alarm(&self, alarm: &PolicyAlarm) -> Result<String, String>;
    fn delete_alarms(&self, names: &[String]) -> Result<(), String>;
}

/// Why an alarm invokes a scaling policy: it went to (or stays in) ALARM.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyTrigger {
    pub alarm: String,
    /// The alarm's last datapoint, when it has one.
    pub value: Option<f64>,
    pub threshold: f64,
}

/// Auto Scaling as a CloudWatch alarm sees it: runs a scaling policy named by its ARN.
pub trait ScalingPolicies: Send + Sync {
    fn execute(&self, policy_arn: &str, trigger: &PolicyTrigger) -> Result<(), String>;
}
