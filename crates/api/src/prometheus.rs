//! `GET /_nimbus/metrics`: nimbus's own health in Prometheus's text exposition format 0.0.4,
//! for operators to scrape. Requests are counted by action and HTTP status with a latency
//! histogram; the counters are atomics, and a series is found under a read lock (taken
//! exclusively only the first time an action/status pair is seen). The host's figures
//! (VMs, volumes, NBD bytes) are read from control, and the reconcilers' from
//! `engine::Passes`, at scrape time.
//!
//! Like `/_nimbus/health` it needs no signature: it shows counts, never resource IDs or
//! request contents, and nimbus listens on loopback unless told otherwise.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use control::host_stats::HostStats;
use engine::PassFigures;

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// Distinct action/status series kept before new ones are counted under `action="other"`:
/// clients choose action names, and a scrape must stay small.
const MAX_SERIES: usize = 1000;

#[derive(Default)]
struct Series {
    count: AtomicU64,
    sum_usec: AtomicU64,
    /// Requests at or under each bucket's bound (cumulative, as Prometheus wants them).
    buckets: [AtomicU64; BUCKETS.len()],
}

/// Requests by action and status.
#[derive(Default)]
pub struct RequestMetrics {
    series: RwLock<HashMap<(String, u16), Arc<Series>>>,
}

impl RequestMetrics {
    fn series(&self, action: &str, status: u16) -> Arc<Series> {
        let key = (action.to_owned(), status);
        if let Some(series) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return series.clone();
        }
        let mut all = self.series.write().unwrap_or_else(|p| p.into_inner());
        let key = if all.len() >= MAX_SERIES && !all.contains_key(&key) {
            ("other".to_owned(), status)
        } else {
            key
        };
        all.entry(key).or_default().clone()
    }

    pub fn observe(&self, action: &str, status: u16, took: Duration) {
        let series = self.series(action, status);
        series.count.fetch_add(1, Ordering::Relaxed);
        series
            .sum_usec
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let seconds = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&series.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn write(&self, out: &mut String) {
        let all: Vec<((String, u16), Arc<Series>)> = {
            let series = self.series.read().unwrap_or_else(|p| p.into_inner());
            let mut all: Vec<_> = series.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            all.sort_by(|a, b| a.0.cmp(&b.0));
            all
        };
        header(
            out,
            "nimbus_requests_total",
            "counter",
            "API requests by action and HTTP status.",
        );
        for ((action, status), series) in &all {
            let labels = format!("action=\"{}\",status=\"{status}\"", escape(action));
            let count = series.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "nimbus_requests_total{{{labels}}} {count}");
        }
        header(
            out,
            "nimbus_request_duration_seconds",
            "histogram",
            "API request latency by action and HTTP status.",
        );
        for ((action, status), series) in &all {
            let labels = format!("action=\"{}\",status=\"{status}\"", escape(action));
            for (bound, bucket) in BUCKETS.iter().zip(&series.buckets) {
                let _ = writeln!(
                    out,
                    "nimbus_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = series.count.load(Ordering::Relaxed);
            let sum = series.sum_usec.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "nimbus_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "nimbus_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "nimbus_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value as the format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// One figure of a reconciler's passes, read at a time in milliseconds since the epoch.
type Reading = fn(&PassFigures, i64) -> f64;

/// Each reconciler's passes, lag and last pass duration, labelled by its name.
fn write_passes(out: &mut String, passes: &BTreeMap<&'static str, PassFigures>) {
    let now_ms = nimbus_core::now_millis();
    let series: [(&str, &str, &str, Reading); 3] = [
        (
            "nimbus_reconciler_passes_total",
            "counter",
            "Reconciler passes since start.",
            |f, _| f.passes as f64,
        ),
        (
            "nimbus_reconciler_lag_seconds",
            "gauge",
            "Seconds since the reconciler's last pass ended.",
            |f, now_ms| (now_ms - f.last_end_ms).max(0) as f64 / 1000.0,
        ),
        (
            "nimbus_reconciler_pass_duration_seconds",
            "gauge",
            "How long the reconciler's last pass took.",
            |f, _| f.last_pass.as_secs_f64(),
        ),
    ];
    for (name, kind, help, reading) in series {
        header(out, name, kind, help);
        for (reconciler, figures) in passes {
            let value = reading(figures, now_ms);
            let _ = writeln!(out, "{name}{{reconciler=\"{reconciler}\"}} {value}");
        }
    }
}

fn write_host(out: &mut String, host: &HostStats) {
    gauge(
        out,
        "nimbus_vms_running",
        "VMs running on this host.",
        host.vms_running,
    );
    header(out, "nimbus_volumes", "gauge", "Volumes by state.");
    for (state, count) in &host.volumes {
        let _ = writeln!(out, "nimbus_volumes{{state=\"{state}\"}} {count}");
    }
    header(
        out,
        "nimbus_nbd_bytes_total",
        "counter",
        "Bytes guests read and wrote through NBD, over the volumes that exist.",
    );
    let _ = writeln!(
        out,
        "nimbus_nbd_bytes_total{{direction=\"read\"}} {}",
        host.nbd_read_bytes
    );
    let _ = writeln!(
        out,
        "nimbus_nbd_bytes_total{{direction=\"write\"}} {}",
        host.nbd_written_bytes
    );
}

/// The whole scrape.
pub fn render(
    requests: &RequestMetrics,
    passes: &BTreeMap<&'static str, PassFigures>,
    host: &HostStats,
) -> String {
    let mut out = String::new();
    requests.write(&mut out);
    write_passes(&mut out, passes);
    write_host(&mut out, host);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_with_a_cumulative_histogram() {
        let metrics = RequestMetrics::default();
        metrics.observe("DescribeInstances", 200, Duration::from_millis(2));
        metrics.observe("DescribeInstances", 200, Duration::from_millis(30));
        metrics.observe("Run\"Odd", 400, Duration::from_millis(1));
        let passes = BTreeMap::from([(
            "storage",
            PassFigures {
                passes: 3,
                ..PassFigures::default()
            },
        )]);
        let text = render(&metrics, &passes, &HostStats::default());
        assert!(text.contains("nimbus_reconciler_passes_total{reconciler=\"storage\"} 3"));
        assert!(
            text.contains("nimbus_requests_total{action=\"DescribeInstances\",status=\"200\"} 2")
        );
        assert!(text.contains("nimbus_requests_total{action=\"Run\\\"Odd\",status=\"400\"} 1"));
        assert!(text.contains(
            "nimbus_request_duration_seconds_bucket{action=\"DescribeInstances\",status=\"200\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains(
            "nimbus_request_duration_seconds_bucket{action=\"DescribeInstances\",status=\"200\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("nimbus_vms_running 0"));
    }

    #[test]
    fn too_many_actions_fold_into_other() {
        let metrics = RequestMetrics::default();
        for n in 0..MAX_SERIES + 5 {
            metrics.observe(&format!("Action{n}"), 400, Duration::from_millis(1));
        }
        let text = render(&metrics, &BTreeMap::new(), &HostStats::default());
        assert!(text.contains("nimbus_requests_total{action=\"other\",status=\"400\"} 5"));
    }
}
