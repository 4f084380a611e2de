//! What nimbus tells operators about itself (`GET /_nimbus/metrics`): how its reconciler
//! keeps up, how many VMs run, how many volumes there are, and how many bytes guests moved
//! through NBD. The reconciler's figures are atomics, updated once per pass.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::kinds::Tables;
use crate::Control;

/// The reconciler's passes, as atomics written by the pass and read by a scrape.
#[derive(Default)]
pub struct ReconcilerStats {
    passes: AtomicU64,
    last_pass_end_ms: AtomicU64,
    last_pass_usec: AtomicU64,
}

impl ReconcilerStats {
    pub(crate) fn pass_done(&self, took: Duration) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.last_pass_usec
            .store(took.as_micros() as u64, Ordering::Relaxed);
        self.last_pass_end_ms
            .store(nimbus_core::now_millis().max(0) as u64, Ordering::Relaxed);
    }
}

/// A reading of the host's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostStats {
    pub reconciler_passes: u64,
    /// Seconds since the last reconciler pass ended (`None` before the first).
    pub reconciler_lag_secs: Option<f64>,
    pub reconciler_last_pass_secs: f64,
    pub vms_running: usize,
    /// Volumes by state (`available`, `in-use`, …).
    pub volumes: BTreeMap<&'static str, usize>,
    /// Bytes guests read and wrote through NBD, over the volumes that exist now.
    pub nbd_read_bytes: u64,
    pub nbd_written_bytes: u64,
}

impl Control {
    pub fn host_stats(&self) -> HostStats {
        let stats = &self.reconciler_stats;
        let last_end = stats.last_pass_end_ms.load(Ordering::Relaxed);
        let mut host = HostStats {
            reconciler_passes: stats.passes.load(Ordering::Relaxed),
            reconciler_lag_secs: (last_end > 0)
                .then(|| (nimbus_core::now_millis() as f64 - last_end as f64).max(0.0) / 1000.0),
            reconciler_last_pass_secs: stats.last_pass_usec.load(Ordering::Relaxed) as f64 / 1e6,
            vms_running: self.vms.running_count(),
            ..HostStats::default()
        };
        let volume_ids: Vec<String> = {
            let state = self.read();
            for volume in state.volumes().values() {
                *host.volumes.entry(volume.state.as_str()).or_default() += 1;
            }
            state.volumes().keys().cloned().collect()
        };
        for id in volume_ids {
            if let Some(counters) = self.engine().counters(&id) {
                host.nbd_read_bytes += counters.read_bytes;
                host.nbd_written_bytes += counters.write_bytes;
            }
        }
        host
    }
}

#[cfg(test)]
mod tests {
    use blockstore::VolumeCounters;

    use crate::testkit::Harness;

    #[tokio::test]
    async fn counts_vms_volumes_and_nbd_bytes() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.create_volume();
        h.settle().await;
        let root = h.instance(&id).disks[0].volume_id.clone();
        h.blocks.count_io(
            &root,
            VolumeCounters {
                read_bytes: 4096,
                write_bytes: 8192,
                ..VolumeCounters::default()
            },
        );
        let stats = h.control.host_stats();
        assert_eq!(stats.vms_running, 1);
        assert_eq!(stats.volumes.get("in-use"), Some(&1));
        assert_eq!(stats.volumes.get("available"), Some(&1));
        assert_eq!(
            (stats.nbd_read_bytes, stats.nbd_written_bytes),
            (4096, 8192)
        );
    }
}
