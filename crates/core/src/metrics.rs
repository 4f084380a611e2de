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
