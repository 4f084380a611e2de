//! Per-volume I/O counters for CloudWatch's `AWS/EBS` metrics, kept in the NBD request path
//! with atomics only: operations, bytes and time spent per direction, and how long at least
//! one request was in flight (the volume was busy; the rest of a period it was idle).
//! Counters only grow; a collector takes differences between two readings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A reading of a volume's counters since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VolumeCounters {
    pub read_ops: u64,
    pub write_ops: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    /// Time requests spent from arrival to completion, summed over requests.
    pub read_time_usec: u64,
    pub write_time_usec: u64,
    /// Time with at least one request in flight (finished stretches only).
    pub busy_usec: u64,
}

/// Which way a request moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

pub(crate) struct IoCounters {
    epoch: Instant,
    read_ops: AtomicU64,
    write_ops: AtomicU64,
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    read_time_usec: AtomicU64,
    write_time_usec: AtomicU64,
    busy_usec: AtomicU64,
    in_flight: AtomicU64,
    /// When the current busy stretch began, in µs since `epoch`.
    busy_since_usec: AtomicU64,
}

impl Default for IoCounters {
    fn default() -> Self {
        IoCounters {
            epoch: Instant::now(),
            read_ops: AtomicU64::new(0),
            write_ops: AtomicU64::new(0),
            read_bytes: AtomicU64::new(0),
            write_bytes: AtomicU64::new(0),
            read_time_usec: AtomicU64::new(0),
            write_time_usec: AtomicU64::new(0),
            busy_usec: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            busy_since_usec: AtomicU64::new(0),
        }
    }
}

impl IoCounters {
    fn now_usec(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// A request arrived; hand the returned start to [`IoCounters::finish`].
    pub fn start(&self) -> Instant {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) == 0 {
            self.busy_since_usec
                .store(self.now_usec(), Ordering::Release);
        }
        Instant::now()
    }

    /// A request that moved `bytes` completed.
    pub fn finish(&self, started: Instant, direction: Direction, bytes: u64) {
        let took = started.elapsed().as_micros() as u64;
        let (ops, total, time) = match direction {
            Direction::Read => (&self.read_ops, &self.read_bytes, &self.read_time_usec),
            Direction::Write => (&self.write_ops, &self.write_bytes, &self.write_time_usec),
        };
        ops.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(bytes, Ordering::Relaxed);
        time.fetch_add(took, Ordering::Relaxed);
        self.end_request();
    }

    /// A request that counts toward no direction (flush, an error) completed.
    pub fn end_request(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            let since = self.busy_since_usec.load(Ordering::Acquire);
            self.busy_usec
                .fetch_add(self.now_usec().saturating_sub(since), Ordering::Relaxed);
        }
    }

    pub fn read(&self) -> VolumeCounters {
        VolumeCounters {
            read_ops: self.read_ops.load(Ordering::Relaxed),
            write_ops: self.write_ops.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
            write_bytes: self.write_bytes.load(Ordering::Relaxed),
            read_time_usec: self.read_time_usec.load(Ordering::Relaxed),
            write_time_usec: self.write_time_usec.load(Ordering::Relaxed),
            busy_usec: self.busy_usec.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_count_by_direction() {
        let counters = IoCounters::default();
        let read = counters.start();
        let write = counters.start();
        counters.finish(read, Direction::Read, 4096);
        counters.finish(write, Direction::Write, 65536);
        counters.start();
        counters.end_request();
        let reading = counters.read();
        assert_eq!((reading.read_ops, reading.read_bytes), (1, 4096));
        assert_eq!((reading.write_ops, reading.write_bytes), (1, 65536));
        assert_eq!(counters.in_flight.load(Ordering::Relaxed), 0);
        assert!(reading.busy_usec >= reading.write_time_usec.min(reading.read_time_usec));
    }
}
