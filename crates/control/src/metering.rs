//! The collectors: every `metrics_interval_secs` they read what nimbus measures itself and
//! hand it to CloudWatch's store as [`Sample`]s.
//!
//! - `AWS/EC2`, dimension `InstanceId`: CPUUtilization (the VM's CPU time over the interval
//!   and its vCPUs), EBSReadOps/EBSWriteOps/EBSReadBytes/EBSWriteBytes and
//!   DiskReadOps/DiskWriteOps/DiskReadBytes/DiskWriteBytes (the I/O of the instance's
//!   volumes; nimbus has no instance store, so both families count the EBS volumes),
//!   StatusCheckFailed, StatusCheckFailed_Instance and StatusCheckFailed_System.
//! - `AWS/EBS`, dimension `VolumeId`: VolumeReadOps, VolumeWriteOps, VolumeReadBytes,
//!   VolumeWriteBytes, VolumeTotalReadTime, VolumeTotalWriteTime, VolumeIdleTime and
//!   VolumeQueueLength (requests in flight on average over the interval), from the block
//!   store's per-volume counters.
//!
//! Resolution: one collection interval stands for AWS's one-minute period. An instance with
//! detailed monitoring publishes every reading; one with basic monitoring publishes one
//! datapoint per [`BASIC_READINGS`] readings (AWS's five minutes), aggregated as AWS does
//! (sums of counts and bytes, the average of CPUUtilization, the maximum of a status check).
//! EBS publishes every reading, as AWS publishes EBS metrics every minute. Readings taken
//! more often than once a minute are stored as high-resolution datapoints
//! (`StorageResolution` 1).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blockstore::VolumeCounters;
use network::InterfaceCounters;
use nimbus_core::metrics::{MetricSink, Sample};

use crate::catalog::find_instance_type;
use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::volumes::VolumeState;
use crate::Control;

/// Readings aggregated into one datapoint for an instance with basic monitoring.
pub const BASIC_READINGS: u32 = 5;

/// How a metric's readings combine into one datapoint of a longer period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combine {
    Sum,
    Average,
    Maximum,
}

/// The tag Auto Scaling puts on the instances of a group.
const AUTO_SCALING_GROUP_TAG: &str = "aws:autoscaling:groupName";

/// One metric reading before it becomes a [`Sample`].
#[derive(Clone)]
struct Reading {
    name: &'static str,
    unit: &'static str,
    combine: Combine,
    value: f64,
}

/// What the collectors remember between two readings.
#[derive(Default)]
pub struct Collector {
    cpu_usec: HashMap<String, u64>,
    /// The interface counters of each instance at the last reading (they only grow, until
    /// a new tap starts them again).
    network_counters: HashMap<String, InterfaceCounters>,
    volume_counters: HashMap<String, VolumeCounters>,
    /// Basic monitoring: readings summed so far, per instance and metric.
    pending: HashMap<String, Pending>,
}

#[derive(Default)]
struct Pending {
    readings: u32,
    metrics: HashMap<&'static str, Aggregate>,
}

/// One metric's readings within a period.
struct Aggregate {
    unit: &'static str,
    combine: Combine,
    sum: f64,
    maximum: f64,
    count: u32,
}

impl Pending {
    fn add(&mut self, readings: &[Reading]) {
        self.readings += 1;
        for reading in readings {
            let aggregate = self.metrics.entry(reading.name).or_insert(Aggregate {
                unit: reading.unit,
                combine: reading.combine,
                sum: 0.0,
                maximum: f64::MIN,
                count: 0,
            });
            aggregate.sum += reading.value;
            aggregate.maximum = aggregate.maximum.max(reading.value);
            aggregate.count += 1;
        }
    }

    /// The aggregated readings, once a whole period is in.
    fn take_period(&mut self) -> Option<Vec<Reading>> {
        if self.readings < BASIC_READINGS {
            return None;
        }
        let readings = self
            .metrics
            .drain()
            .map(|(name, aggregate)| Reading {
                name,
                unit: aggregate.unit,
                combine: aggregate.combine,
                value: match aggregate.combine {
                    Combine::Sum => aggregate.sum,
                    Combine::Average => aggregate.sum / f64::from(aggregate.count),
                    Combine::Maximum => aggregate.maximum,
                },
            })
            .collect();
        self.readings = 0;
        Some(readings)
    }
}

/// Readings taken more often than once a minute are high-resolution datapoints (AWS's
/// `StorageResolution` 1), so that they can be read back at the period they were taken.
fn storage_resolution(interval: Duration) -> u32 {
    if interval < Duration::from_secs(60) {
        1
    } else {
        60
    }
}

fn sample(
    namespace: &str,
    dimension: (&str, &str),
    reading: Reading,
    at: i64,
    resolution: u32,
) -> Sample {
    Sample {
        namespace: namespace.into(),
        metric_name: reading.name.into(),
        dimensions: vec![(dimension.0.into(), dimension.1.into())],
        unit: reading.unit.into(),
        timestamp_ms: at,
        value: reading.value,
        storage_resolution: resolution,
    }
}

fn reading(name: &'static str, unit: &'static str, combine: Combine, value: f64) -> Reading {
    Reading {
        name,
        unit,
        combine,
        value,
    }
}

/// The growth of every counter since the previous reading (a counter that went back, as
/// after a restart of nimbus, counts from zero).
fn growth(now: &VolumeCounters, before: &VolumeCounters) -> VolumeCounters {
    let delta = |a: u64, b: u64| if a >= b { a - b } else { a };
    VolumeCounters {
        read_ops: delta(now.read_ops, before.read_ops),
        write_ops: delta(now.write_ops, before.write_ops),
        read_bytes: delta(now.read_bytes, before.read_bytes),
        write_bytes: delta(now.write_bytes, before.write_bytes),
        read_time_usec: delta(now.read_time_usec, before.read_time_usec),
        write_time_usec: delta(now.write_time_usec, before.write_time_usec),
        busy_usec: delta(now.busy_usec, before.busy_usec),
    }
}

fn seconds(usec: u64) -> f64 {
    usec as f64 / 1e6
}

fn volume_readings(io: &VolumeCounters, interval: Duration) -> Vec<Reading> {
    let period = interval.as_secs_f64();
    let busy = seconds(io.busy_usec).min(period);
    let waiting = seconds(io.read_time_usec + io.write_time_usec);
    vec![
        reading("VolumeReadOps", "Count", Combine::Sum, io.read_ops as f64),
        reading("VolumeWriteOps", "Count", Combine::Sum, io.write_ops as f64),
        reading(
            "VolumeReadBytes",
            "Bytes",
            Combine::Sum,
            io.read_bytes as f64,
        ),
        reading(
            "VolumeWriteBytes",
            "Bytes",
            Combine::Sum,
            io.write_bytes as f64,
        ),
        reading(
            "VolumeTotalReadTime",
            "Seconds",
            Combine::Sum,
            seconds(io.read_time_usec),
        ),
        reading(
            "VolumeTotalWriteTime",
            "Seconds",
            Combine::Sum,
            seconds(io.write_time_usec),
        ),
        reading("VolumeIdleTime", "Seconds", Combine::Sum, period - busy),
        // Little's law: the requests in flight on average over the period.
        reading(
            "VolumeQueueLength",
            "Count",
            Combine::Average,
            waiting / period.max(f64::EPSILON),
        ),
    ]
}

impl Control {
    /// Reads every running instance and every volume once and sends the samples to `sink`,
    /// `interval` after the previous reading.
    pub async fn collect_metrics(
        &self,
        collector: &mut Collector,
        interval: Duration,
        sink: &dyn MetricSink,
    ) {
        let now = nimbus_core::now_millis();
        let resolution = storage_resolution(interval);
        let (instances, volumes): (Vec<Instance>, Vec<String>) = {
            let state = self.read();
            let instances = state
                .instances()
                .values()
                .filter(|i| i.state == InstanceState::Running)
                .cloned()
                .collect();
            let volumes = state
                .volumes()
                .values()
                .filter(|v| matches!(v.state, VolumeState::InUse | VolumeState::Available))
                .map(|v| v.volume_id.clone())
                .collect();
            (instances, volumes)
        };
        let mut samples = Vec::new();
        let mut volume_io = HashMap::new();
        for volume_id in volumes {
            let Some(counters) = self.engine().counters(&volume_id) else {
                continue;
            };
            let before = collector
                .volume_counters
                .insert(volume_id.clone(), counters);
            // The first reading of a volume only sets where the next one counts from.
            let Some(before) = before else { continue };
            let io = growth(&counters, &before);
            for reading in volume_readings(&io, interval) {
                samples.push(sample(
                    "AWS/EBS",
                    ("VolumeId", &volume_id),
                    reading,
                    now,
                    resolution,
                ));
            }
            volume_io.insert(volume_id, io);
        }
        collector
            .volume_counters
            .retain(|id, _| volume_io.contains_key(id) || self.engine().volume_exists(id));
        for instance in &instances {
            let readings = self.instance_readings(collector, instance, &volume_io, interval);
            let id = instance.instance_id.as_str();
            let readings = if instance.detailed_monitoring {
                collector.pending.remove(id);
                Some(readings)
            } else {
                let pending = collector.pending.entry(id.to_owned()).or_default();
                pending.add(&readings);
                pending.take_period()
            };
            // As in AWS, a group member's metrics are also aggregated by its group.
            let group = instance.tags.get(AUTO_SCALING_GROUP_TAG);
            for reading in readings.into_iter().flatten() {
                if let Some(group) = group {
                    samples.push(sample(
                        "AWS/EC2",
                        ("AutoScalingGroupName", group),
                        reading.clone(),
                        now,
                        resolution,
                    ));
                }
                samples.push(sample(
                    "AWS/EC2",
                    ("InstanceId", id),
                    reading,
                    now,
                    resolution,
                ));
            }
        }
        let running: Vec<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
        collector
            .cpu_usec
            .retain(|id, _| running.contains(&id.as_str()));
        collector
            .pending
            .retain(|id, _| running.contains(&id.as_str()));
        collector
            .network_counters
            .retain(|id, _| running.contains(&id.as_str()));
        if !samples.is_empty() {
            sink.record(samples);
        }
    }

    fn instance_readings(
        &self,
        collector: &mut Collector,
        instance: &Instance,
        volume_io: &HashMap<String, VolumeCounters>,
        interval: Duration,
    ) -> Vec<Reading> {
        let id = &instance.instance_id;
        let mut readings = Vec::new();
        let checks = self.status_checks(instance);
        let failed = |check: bool| if check { 1.0 } else { 0.0 };
        readings.push(reading(
            "StatusCheckFailed",
            "Count",
            Combine::Maximum,
            failed(checks.system.failed() || checks.instance.failed()),
        ));
        readings.push(reading(
            "StatusCheckFailed_Instance",
            "Count",
            Combine::Maximum,
            failed(checks.instance.failed()),
        ));
        readings.push(reading(
            "StatusCheckFailed_System",
            "Count",
            Combine::Maximum,
            failed(checks.system.failed()),
        ));
        let vcpus = find_instance_type(&instance.instance_type).map_or(1, |t| t.vcpus);
        let cpu = self
            .vms
            .get(id)
            .and_then(|running| running.vm.cpu_time_usec());
        if let Some(usec) = cpu {
            if let Some(before) = collector.cpu_usec.insert(id.clone(), usec) {
                let capacity = interval.as_secs_f64() * 1e6 * f64::from(vcpus);
                let used = usec.saturating_sub(before) as f64;
                let percent = (100.0 * used / capacity.max(1.0)).clamp(0.0, 100.0);
                readings.push(reading(
                    "CPUUtilization",
                    "Percent",
                    Combine::Average,
                    percent,
                ));
            }
        }
        let mut disks = VolumeCounters::default();
        let mut measured = false;
        for disk in &instance.disks {
            if let Some(io) = volume_io.get(&disk.volume_id) {
                measured = true;
                disks.read_ops += io.read_ops;
                disks.write_ops += io.write_ops;
                disks.read_bytes += io.read_bytes;
                disks.write_bytes += io.write_bytes;
            }
        }
        if measured {
            for (ebs, disk, unit, value) in [
                ("EBSReadOps", "DiskReadOps", "Count", disks.read_ops),
                ("EBSWriteOps", "DiskWriteOps", "Count", disks.write_ops),
                ("EBSReadBytes", "DiskReadBytes", "Bytes", disks.read_bytes),
                (
                    "EBSWriteBytes",
                    "DiskWriteBytes",
                    "Bytes",
                    disks.write_bytes,
                ),
            ] {
                readings.push(reading(ebs, unit, Combine::Sum, value as f64));
                readings.push(reading(disk, unit, Combine::Sum, value as f64));
            }
        }
        readings.extend(self.network_readings(collector, instance));
        readings
    }

    /// NetworkIn/Out and NetworkPacketsIn/Out since the last reading, from the tap of the
    /// instance's interface.
    fn network_readings(&self, collector: &mut Collector, instance: &Instance) -> Vec<Reading> {
        let Some(network) = instance.live_network() else {
            return Vec::new();
        };
        let Some(now) = self
            .drivers
            .network
            .counters(&network.vpc_id, &network.interface_id)
        else {
            return Vec::new();
        };
        let Some(before) = collector
            .network_counters
            .insert(instance.instance_id.clone(), now)
        else {
            return Vec::new();
        };
        let since = |now: u64, before: u64| now.checked_sub(before).unwrap_or(now) as f64;
        vec![
            reading(
                "NetworkIn",
                "Bytes",
                Combine::Sum,
                since(now.bytes_in, before.bytes_in),
            ),
            reading(
                "NetworkOut",
                "Bytes",
                Combine::Sum,
                since(now.bytes_out, before.bytes_out),
            ),
            reading(
                "NetworkPacketsIn",
                "Count",
                Combine::Sum,
                since(now.packets_in, before.packets_in),
            ),
            reading(
                "NetworkPacketsOut",
                "Count",
                Combine::Sum,
                since(now.packets_out, before.packets_out),
            ),
        ]
    }
}

/// The collectors of CloudWatch's `AWS/EC2` and `AWS/EBS` metrics, every
/// `metrics_interval_secs`.
pub(crate) struct Collectors {
    control: Arc<Control>,
    sink: Arc<dyn MetricSink>,
    /// The last readings, and when they were taken.
    last: tokio::sync::Mutex<(Collector, Instant)>,
}

impl Collectors {
    pub(crate) fn new(control: Arc<Control>, sink: Arc<dyn MetricSink>) -> Collectors {
        Collectors {
            control,
            sink,
            last: tokio::sync::Mutex::new((Collector::default(), Instant::now())),
        }
    }
}

#[async_trait::async_trait]
impl engine::Reconciler for Collectors {
    fn name(&self) -> &'static str {
        "metrics"
    }

    async fn pass(&self) {
        let mut last = self.last.lock().await;
        let (collector, taken) = &mut *last;
        // The real time since the last reading: a late pass must not inflate rates.
        let interval = taken.elapsed().max(Duration::from_millis(1));
        *taken = Instant::now();
        self.control
            .collect_metrics(collector, interval, self.sink.as_ref())
            .await;
    }

    async fn wait(&self) {
        let every = self.control.config().metrics_interval_secs.max(1);
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use blockstore::VolumeCounters;
    use nimbus_core::metrics::{MetricSink, Sample};

    use super::{Collector, BASIC_READINGS};
    use crate::testkit::Harness;

    #[derive(Default)]
    struct RecordingSink(Mutex<Vec<Sample>>);

    impl MetricSink for RecordingSink {
        fn record(&self, samples: Vec<Sample>) {
            self.0.lock().unwrap().extend(samples);
        }
    }

    impl RecordingSink {
        fn take(&self) -> Vec<Sample> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    fn value(samples: &[Sample], name: &str, id: &str) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.metric_name == name && s.dimensions[0].1 == id)
            .map(|s| s.value)
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// A running instance with detailed monitoring: every reading is published.
    async fn monitored_instance() -> (Harness, String) {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.control
            .set_detailed_monitoring(std::slice::from_ref(&id), true, false)
            .unwrap();
        h.settle().await;
        (h, id)
    }

    #[tokio::test]
    async fn cpu_is_the_share_of_the_vcpus_used_over_the_interval() {
        let (h, id) = monitored_instance().await;
        let (sink, mut collector) = (RecordingSink::default(), Collector::default());
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        assert_eq!(
            value(&sink.take(), "CPUUtilization", &id),
            None,
            "no rate from one reading"
        );
        // t3.micro has 2 vCPUs: 1.5 s of CPU in 1 s is 75 %.
        h.hypervisor.burn_cpu(&id, 1_500_000);
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        let samples = sink.take();
        assert_eq!(value(&samples, "CPUUtilization", &id), Some(75.0));
        let cpu = samples
            .iter()
            .find(|s| s.metric_name == "CPUUtilization")
            .unwrap();
        assert_eq!(cpu.namespace, "AWS/EC2");
        assert_eq!(cpu.unit, "Percent");
        assert_eq!(cpu.dimensions, [("InstanceId".to_owned(), id.clone())]);
        assert_eq!(value(&samples, "StatusCheckFailed", &id), Some(0.0));
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        assert_eq!(value(&sink.take(), "CPUUtilization", &id), Some(0.0));
    }

    #[tokio::test]
    async fn volume_io_is_counted_per_interval() {
        let (h, id) = monitored_instance().await;
        let root = h.instance(&id).disks[0].volume_id.clone();
        let (sink, mut collector) = (RecordingSink::default(), Collector::default());
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        sink.take();
        let mib = 1024 * 1024;
        h.blocks.count_io(
            &root,
            VolumeCounters {
                write_ops: 512,
                write_bytes: 64 * mib,
                write_time_usec: 500_000,
                busy_usec: 250_000,
                ..VolumeCounters::default()
            },
        );
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        let samples = sink.take();
        assert_eq!(
            value(&samples, "VolumeWriteBytes", &root),
            Some((64 * mib) as f64)
        );
        assert_eq!(value(&samples, "VolumeWriteOps", &root), Some(512.0));
        assert_eq!(value(&samples, "VolumeTotalWriteTime", &root), Some(0.5));
        assert_eq!(value(&samples, "VolumeIdleTime", &root), Some(0.75));
        assert_eq!(value(&samples, "VolumeQueueLength", &root), Some(0.5));
        assert_eq!(value(&samples, "VolumeReadOps", &root), Some(0.0));
        assert_eq!(
            value(&samples, "EBSWriteBytes", &id),
            Some((64 * mib) as f64)
        );
        assert_eq!(value(&samples, "DiskWriteOps", &id), Some(512.0));
        let ebs = samples
            .iter()
            .find(|s| s.metric_name == "VolumeWriteBytes")
            .unwrap();
        assert_eq!(
            (ebs.namespace.as_str(), ebs.unit.as_str()),
            ("AWS/EBS", "Bytes")
        );
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        assert_eq!(value(&sink.take(), "VolumeWriteBytes", &root), Some(0.0));
    }

    #[tokio::test]
    async fn basic_monitoring_publishes_one_aggregate_per_period() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let (sink, mut collector) = (RecordingSink::default(), Collector::default());
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        for _ in 1..BASIC_READINGS {
            h.hypervisor.burn_cpu(&id, 1_000_000);
            h.control
                .collect_metrics(&mut collector, SECOND, &sink)
                .await;
        }
        let samples = sink.take();
        // Readings 2..=5 used 50 % each, the first gave no rate.
        assert_eq!(value(&samples, "CPUUtilization", &id), Some(50.0));
        assert_eq!(
            samples
                .iter()
                .filter(|s| s.metric_name == "StatusCheckFailed")
                .count(),
            1
        );
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        assert_eq!(value(&sink.take(), "CPUUtilization", &id), None);
    }

    #[tokio::test]
    async fn a_hung_guest_reports_its_instance_check_failed() {
        let (h, id) = monitored_instance().await;
        h.hypervisor.set_paused(&id, true);
        h.control.check_instances().await;
        let (sink, mut collector) = (RecordingSink::default(), Collector::default());
        h.control
            .collect_metrics(&mut collector, SECOND, &sink)
            .await;
        let samples = sink.take();
        assert_eq!(
            value(&samples, "StatusCheckFailed_Instance", &id),
            Some(1.0)
        );
        assert_eq!(value(&samples, "StatusCheckFailed_System", &id), Some(0.0));
        assert_eq!(value(&samples, "StatusCheckFailed", &id), Some(1.0));
    }
}
