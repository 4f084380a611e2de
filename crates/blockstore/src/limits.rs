//! Per-volume IOPS and throughput limits: a token bucket that may go into debt, so one
//! large request is admitted at once and the following ones wait for the refill.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// I/O limits of one volume; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoLimits {
    pub iops: Option<u64>,
    pub throughput_bytes_per_sec: Option<u64>,
}

impl IoLimits {
    pub const UNLIMITED: IoLimits = IoLimits {
        iops: None,
        throughput_bytes_per_sec: None,
    };

    /// A gp3 volume's baseline: 3,000 IOPS and 125 MiB/s.
    pub const GP3_DEFAULT: IoLimits = IoLimits {
        iops: Some(3_000),
        throughput_bytes_per_sec: Some(125 << 20),
    };
}

/// EBS counts an SSD I/O of up to 256 KiB as one operation; larger ones count as several.
const IO_UNIT: u64 = 256 << 10;
/// How much unused allowance may pile up: a tenth of a second's worth.
const BURST_SECONDS: f64 = 0.1;

pub(crate) struct Throttle {
    state: Mutex<Bucket>,
}

struct Bucket {
    limits: IoLimits,
    ops: f64,
    bytes: f64,
    refilled_at: Instant,
}

impl Throttle {
    pub fn new(limits: IoLimits) -> Self {
        Throttle {
            state: Mutex::new(Bucket {
                limits,
                ops: 0.0,
                bytes: 0.0,
                refilled_at: Instant::now(),
            }),
        }
    }

    pub fn set(&self, limits: IoLimits) {
        if let Ok(mut bucket) = self.state.lock() {
            bucket.limits = limits;
        }
    }

    /// Waits until an I/O of `bytes` fits in the volume's limits.
    pub async fn admit(&self, bytes: u64) {
        let wait = match self.state.lock() {
            Ok(mut bucket) => bucket.take(bytes, Instant::now()),
            Err(_) => Duration::ZERO,
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

impl Bucket {
    fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.refilled_at = now;
        let ops = bytes.div_ceil(IO_UNIT).max(1) as f64;
        let mut wait: f64 = 0.0;
        if let Some(rate) = self.limits.iops.filter(|r| *r > 0) {
            wait = wait.max(spend(&mut self.ops, rate as f64, elapsed, ops));
        }
        if let Some(rate) = self.limits.throughput_bytes_per_sec.filter(|r| *r > 0) {
            wait = wait.max(spend(&mut self.bytes, rate as f64, elapsed, bytes as f64));
        }
        Duration::from_secs_f64(wait)
    }
}

/// Refills `tokens` at `rate` per second, spends `cost` and returns how long to wait to
/// pay off any debt.
fn spend(tokens: &mut f64, rate: f64, elapsed: f64, cost: f64) -> f64 {
    *tokens = (*tokens + elapsed * rate).min(rate * BURST_SECONDS) - cost;
    if *tokens < 0.0 {
        -*tokens / rate
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(limits: IoLimits, now: Instant) -> Bucket {
        Bucket {
            limits,
            ops: 0.0,
            bytes: 0.0,
            refilled_at: now,
        }
    }

    #[test]
    fn requests_beyond_the_rate_wait_in_turn() {
        let now = Instant::now();
        let mut b = bucket(
            IoLimits {
                iops: Some(100),
                throughput_bytes_per_sec: None,
            },
            now,
        );
        assert_eq!(b.take(4096, now), Duration::from_millis(10));
        assert_eq!(b.take(4096, now), Duration::from_millis(20));
        // A second later the debt is paid and a burst of a tenth of a second is allowed.
        assert_eq!(b.take(4096, now + Duration::from_secs(1)), Duration::ZERO);
        // 1 MiB counts as four operations of 256 KiB.
        let mut b = bucket(b.limits, now);
        assert_eq!(b.take(1 << 20, now), Duration::from_millis(40));
    }

    #[test]
    fn throughput_and_unlimited() {
        let now = Instant::now();
        let mut b = bucket(
            IoLimits {
                iops: None,
                throughput_bytes_per_sec: Some(1 << 20),
            },
            now,
        );
        assert_eq!(b.take(256 << 10, now), Duration::from_millis(250));
        let mut b = bucket(IoLimits::UNLIMITED, now);
        assert_eq!(b.take(1 << 30, now), Duration::ZERO);
    }
}
