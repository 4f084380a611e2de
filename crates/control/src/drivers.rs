//! What the control plane drives on the host, as traits: the hypervisor (`compute`), the
//! block store and the network (`network`). [`Drivers`] bundles them for
//! [`crate::Control::open`]; nimbus hands it the real ones ([`Drivers::on_host`]) and unit
//! tests the in-memory fakes, so rules and the reconcilers are tested without QEMU or root.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use blockstore::{
    BlockRef, BlockStore, ChangedBlock, ExportFilter, IoLimits, Result, SnapshotStatus, VmSocket,
    VolumeCounters,
};

/// The drivers a [`crate::Control`] acts through.
#[derive(Clone)]
pub struct Drivers {
    pub blocks: Arc<dyn BlockDriver>,
    pub hypervisor: Arc<dyn compute::Hypervisor>,
    pub network: Arc<dyn network::NetworkDriver>,
}

impl Drivers {
    /// This host's block store and QEMU.
    pub fn on_host(blocks: BlockStore, network: Arc<dyn network::NetworkDriver>) -> Drivers {
        Drivers {
            blocks: Arc::new(blocks),
            hypervisor: Arc::new(compute::Qemu::default()),
            network,
        }
    }
}

/// The block store operations control uses: volume and snapshot life, EBS direct blocks,
/// image import. Mirrors `blockstore::BlockStore`, whose docs give each one's contract.
#[async_trait]
pub trait BlockDriver: Send + Sync {
    async fn create_volume(
        &self,
        id: &str,
        size_bytes: u64,
        from_snapshot: Option<&str>,
        limits: IoLimits,
    ) -> Result<()>;
    fn volume_exists(&self, id: &str) -> bool;
    /// The volume's I/O counters (guests' reads and writes through NBD), if it exists.
    fn counters(&self, id: &str) -> Option<VolumeCounters>;
    /// Free bytes on the disk that holds the volumes (CreateVolume keeps a reserve of it).
    fn free_bytes(&self) -> Result<u64>;
    async fn delete_volume(&self, id: &str) -> Result<()>;
    async fn resize_volume(&self, id: &str, new_size: u64) -> Result<()>;
    fn set_limits(&self, id: &str, limits: IoLimits) -> Result<()>;
    /// Captures each `(snapshot, volume)` pair's volume at one instant (crash-consistent).
    async fn create_snapshots(&self, pairs: &[(String, String)]) -> Result<()>;
    async fn copy_snapshot(&self, source_id: &str, new_id: &str) -> Result<()>;
    fn snapshot_status(&self, snapshot_id: &str) -> Option<SnapshotStatus>;
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<()>;
    /// Fails open EBS direct snapshots idle past their timeout; returns their IDs.
    async fn expire_idle_snapshots(&self, now: Instant) -> Vec<String>;
    async fn start_snapshot(
        &self,
        snapshot_id: &str,
        volume_size_gib: u64,
        parent: Option<&str>,
        timeout: Duration,
    ) -> Result<()>;
    async fn put_block(&self, snapshot_id: &str, index: u64, data: Vec<u8>) -> Result<()>;
    async fn complete_snapshot(&self, snapshot_id: &str, changed_blocks_count: u64) -> Result<()>;
    fn list_blocks(&self, snapshot_id: &str) -> Result<Vec<BlockRef>>;
    fn list_changed_blocks(&self, first: Option<&str>, second: &str) -> Result<Vec<ChangedBlock>>;
    async fn get_block(&self, snapshot_id: &str, index: u64) -> Result<Vec<u8>>;
    /// Imports a raw disk image as a completed snapshot; returns its size in bytes.
    async fn import_raw_image(&self, snapshot_id: &str, path: &Path) -> Result<u64>;
    /// Serves one VM's disks, those `may_open` admits, on its own socket at `socket`: QEMU
    /// opens them there, and reconnects there after a restart of nimbus. Served while the
    /// returned value lives.
    fn serve_vm(&self, socket: &Path, may_open: ExportFilter) -> Result<Box<dyn VmDisks>>;
}

/// A VM's disk socket (see [`BlockDriver::serve_vm`]).
pub trait VmDisks: Send + Sync {
    /// Lets the VM's process connect once it runs as its own user.
    fn admit(&self, pid: i32);
}

impl VmDisks for VmSocket {
    fn admit(&self, pid: i32) {
        VmSocket::admit(self, pid)
    }
}

#[async_trait]
impl BlockDriver for BlockStore {
    async fn create_volume(
        &self,
        id: &str,
        size_bytes: u64,
        from_snapshot: Option<&str>,
        limits: IoLimits,
    ) -> Result<()> {
        BlockStore::create_volume(self, id, size_bytes, from_snapshot, limits).await
    }
    fn volume_exists(&self, id: &str) -> bool {
        self.volume_info(id).is_some()
    }
    fn counters(&self, id: &str) -> Option<VolumeCounters> {
        BlockStore::counters(self, id)
    }
    fn free_bytes(&self) -> Result<u64> {
        BlockStore::free_bytes(self)
    }
    async fn delete_volume(&self, id: &str) -> Result<()> {
        BlockStore::delete_volume(self, id).await
    }
    async fn resize_volume(&self, id: &str, new_size: u64) -> Result<()> {
        BlockStore::resize_volume(self, id, new_size).await
    }
    fn set_limits(&self, id: &str, limits: IoLimits) -> Result<()> {
        BlockStore::set_limits(self, id, limits)
    }
    async fn create_snapshots(&self, pairs: &[(String, String)]) -> Result<()> {
        BlockStore::create_snapshots(self, pairs).await
    }
    async fn copy_snapshot(&self, source_id: &str, new_id: &str) -> Result<()> {
        BlockStore::copy_snapshot(self, source_id, new_id).await
    }
    fn snapshot_status(&self, snapshot_id: &str) -> Option<SnapshotStatus> {
        BlockStore::snapshot_status(self, snapshot_id)
    }
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<()> {
        BlockStore::delete_snapshot(self, snapshot_id).await
    }
    async fn expire_idle_snapshots(&self, now: Instant) -> Vec<String> {
        BlockStore::expire_idle_snapshots(self, now).await
    }
    async fn start_snapshot(
        &self,
        snapshot_id: &str,
        volume_size_gib: u64,
        parent: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        BlockStore::start_snapshot(self, snapshot_id, volume_size_gib, parent, timeout).await
    }
    async fn put_block(&self, snapshot_id: &str, index: u64, data: Vec<u8>) -> Result<()> {
        BlockStore::put_block(self, snapshot_id, index, data).await
    }
    async fn complete_snapshot(&self, snapshot_id: &str, changed_blocks_count: u64) -> Result<()> {
        BlockStore::complete_snapshot(self, snapshot_id, changed_blocks_count).await
    }
    fn list_blocks(&self, snapshot_id: &str) -> Result<Vec<BlockRef>> {
        BlockStore::list_blocks(self, snapshot_id)
    }
    fn list_changed_blocks(&self, first: Option<&str>, second: &str) -> Result<Vec<ChangedBlock>> {
        BlockStore::list_changed_blocks(self, first, second)
    }
    async fn get_block(&self, snapshot_id: &str, index: u64) -> Result<Vec<u8>> {
        BlockStore::get_block(self, snapshot_id, index).await
    }
    async fn import_raw_image(&self, snapshot_id: &str, path: &Path) -> Result<u64> {
        BlockStore::import_raw_image(self, snapshot_id, path).await
    }
    fn serve_vm(&self, socket: &Path, may_open: ExportFilter) -> Result<Box<dyn VmDisks>> {
        Ok(Box::new(BlockStore::serve_vm(self, socket, may_open)?))
    }
}
