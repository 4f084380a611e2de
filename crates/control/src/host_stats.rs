//! What nimbus tells operators about its host (`GET /_nimbus/metrics`): how many VMs run,
//! how many volumes there are, and how many bytes guests moved through NBD. (How the
//! reconcilers keep up is `engine::Passes`.)

use std::collections::BTreeMap;

use crate::kinds::Tables;
use crate::Control;

/// A reading of the host's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostStats {
    pub vms_running: usize,
    /// Volumes by state (`available`, `in-use`, …).
    pub volumes: BTreeMap<&'static str, usize>,
    /// Bytes guests read and wrote through NBD, over the volumes that exist now.
    pub nbd_read_bytes: u64,
    pub nbd_written_bytes: u64,
}

impl Control {
    pub fn host_stats(&self) -> HostStats {
        let mut host = HostStats {
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
