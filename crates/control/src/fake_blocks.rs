//! An in-memory [`BlockDriver`] for unit tests: volumes are sizes, snapshots are block maps.
//! A snapshot taken of a volume is `pending` until its status has been read once, so the
//! reconciler's follow-up is exercised; EBS direct snapshots complete when told to.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use blockstore::{
    BlockRef, ChangedBlock, Error, ExportFilter, IoLimits, Result, SnapshotState, SnapshotStatus,
    VolumeCounters, EBS_BLOCK_SIZE,
};

use crate::drivers::{BlockDriver, VmDisks};

#[derive(Default)]
struct Blocks {
    volumes: HashMap<String, u64>,
    counters: HashMap<String, VolumeCounters>,
    snapshots: HashMap<String, (SnapshotStatus, BTreeMap<u64, Vec<u8>>)>,
    /// The host's free disk as tests set it; unset means plenty.
    free_bytes: Option<u64>,
}

/// The VM sockets being served: path → which exports the VM may open.
type Served = Arc<Mutex<HashMap<PathBuf, ExportFilter>>>;

#[derive(Default)]
pub struct FakeBlocks(Mutex<Blocks>, Served);

/// A fake VM socket: served until dropped.
struct FakeVmDisks(PathBuf, Served);

impl VmDisks for FakeVmDisks {
    fn admit(&self, _pid: i32) {}
}

impl Drop for FakeVmDisks {
    fn drop(&mut self) {
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

impl FakeBlocks {
    fn lock(&self) -> MutexGuard<'_, Blocks> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the VM served on `socket` may open `export`; `None` when nothing is served there.
    pub fn may_open(&self, socket: &Path, export: &str) -> Option<bool> {
        let served = self.1.lock().unwrap_or_else(|p| p.into_inner());
        served.get(socket).map(|may_open| may_open(export))
    }

    pub fn set_free_bytes(&self, bytes: u64) {
        self.lock().free_bytes = Some(bytes);
    }

    pub fn volume_size(&self, id: &str) -> Option<u64> {
        self.lock().volumes.get(id).copied()
    }

    /// A guest did I/O on the volume: its counters grow by `more`.
    pub fn count_io(&self, id: &str, more: VolumeCounters) {
        let mut blocks = self.lock();
        let counters = blocks.counters.entry(id.to_owned()).or_default();
        counters.read_ops += more.read_ops;
        counters.write_ops += more.write_ops;
        counters.read_bytes += more.read_bytes;
        counters.write_bytes += more.write_bytes;
        counters.read_time_usec += more.read_time_usec;
        counters.write_time_usec += more.write_time_usec;
        counters.busy_usec += more.busy_usec;
    }

    fn add_snapshot(&self, id: &str, volume_id: Option<&str>, size: u64, state: SnapshotState) {
        let status = SnapshotStatus {
            id: id.to_owned(),
            volume_id: volume_id.map(str::to_owned),
            parent: None,
            state,
            progress_percent: if state == SnapshotState::Completed {
                100
            } else {
                0
            },
            size_bytes: size,
            block_size: EBS_BLOCK_SIZE,
            stored_bytes: 0,
            created_millis: nimbus_core::now_millis(),
            error: None,
        };
        self.lock()
            .snapshots
            .insert(id.to_owned(), (status, BTreeMap::new()));
    }

    fn completed_blocks(&self, id: &str) -> Result<BTreeMap<u64, Vec<u8>>> {
        match self.lock().snapshots.get(id) {
            None => Err(Error::SnapshotNotFound(id.to_owned())),
            Some((s, _)) if s.state != SnapshotState::Completed => {
                Err(Error::SnapshotNotCompleted(id.to_owned()))
            }
            Some((_, blocks)) => Ok(blocks.clone()),
        }
    }
}

fn hash(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

#[async_trait]
impl BlockDriver for FakeBlocks {
    async fn create_volume(
        &self,
        id: &str,
        size_bytes: u64,
        from_snapshot: Option<&str>,
        _limits: IoLimits,
    ) -> Result<()> {
        tokio::task::yield_now().await;
        if let Some(snapshot) = from_snapshot {
            self.completed_blocks(snapshot)?;
        }
        let mut blocks = self.lock();
        if blocks.volumes.contains_key(id) {
            return Err(Error::VolumeExists(id.to_owned()));
        }
        blocks.volumes.insert(id.to_owned(), size_bytes);
        Ok(())
    }
    fn volume_exists(&self, id: &str) -> bool {
        self.lock().volumes.contains_key(id)
    }
    fn counters(&self, id: &str) -> Option<VolumeCounters> {
        let blocks = self.lock();
        blocks
            .volumes
            .contains_key(id)
            .then(|| blocks.counters.get(id).copied().unwrap_or_default())
    }
    fn free_bytes(&self) -> Result<u64> {
        Ok(self.lock().free_bytes.unwrap_or(u64::MAX))
    }
    async fn delete_volume(&self, id: &str) -> Result<()> {
        tokio::task::yield_now().await;
        self.lock()
            .volumes
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::VolumeNotFound(id.to_owned()))
    }
    async fn resize_volume(&self, id: &str, new_size: u64) -> Result<()> {
        match self.lock().volumes.get_mut(id) {
            Some(size) => {
                *size = new_size;
                Ok(())
            }
            None => Err(Error::VolumeNotFound(id.to_owned())),
        }
    }
    fn set_limits(&self, id: &str, _limits: IoLimits) -> Result<()> {
        self.volume_size(id)
            .map(|_| ())
            .ok_or_else(|| Error::VolumeNotFound(id.to_owned()))
    }
    async fn create_snapshots(&self, pairs: &[(String, String)]) -> Result<()> {
        let sizes = (pairs.iter())
            .map(|(_, volume_id)| {
                self.volume_size(volume_id)
                    .ok_or_else(|| Error::VolumeNotFound(volume_id.to_owned()))
            })
            .collect::<Result<Vec<_>>>()?;
        for ((snapshot_id, volume_id), size) in pairs.iter().zip(sizes) {
            self.add_snapshot(snapshot_id, Some(volume_id), size, SnapshotState::Pending);
        }
        Ok(())
    }
    async fn copy_snapshot(&self, source_id: &str, new_id: &str) -> Result<()> {
        let blocks = self.completed_blocks(source_id)?;
        let size = self.lock().snapshots[source_id].0.size_bytes;
        self.add_snapshot(new_id, None, size, SnapshotState::Completed);
        if let Some(entry) = self.lock().snapshots.get_mut(new_id) {
            entry.1 = blocks;
        }
        Ok(())
    }
    fn snapshot_status(&self, snapshot_id: &str) -> Option<SnapshotStatus> {
        let mut blocks = self.lock();
        let (status, _) = blocks.snapshots.get_mut(snapshot_id)?;
        let reported = status.clone();
        // Uploads of volume snapshots finish after one look.
        if status.state == SnapshotState::Pending && status.volume_id.is_some() {
            status.state = SnapshotState::Completed;
            status.progress_percent = 100;
        }
        Some(reported)
    }
    async fn delete_snapshot(&self, snapshot_id: &str) -> Result<()> {
        self.lock()
            .snapshots
            .remove(snapshot_id)
            .map(|_| ())
            .ok_or_else(|| Error::SnapshotNotFound(snapshot_id.to_owned()))
    }
    async fn expire_idle_snapshots(&self, _now: Instant) -> Vec<String> {
        Vec::new()
    }
    async fn start_snapshot(
        &self,
        snapshot_id: &str,
        volume_size_gib: u64,
        _parent: Option<&str>,
        _timeout: Duration,
    ) -> Result<()> {
        let size = volume_size_gib << 30;
        self.add_snapshot(snapshot_id, None, size, SnapshotState::Pending);
        Ok(())
    }
    async fn put_block(&self, snapshot_id: &str, index: u64, data: Vec<u8>) -> Result<()> {
        match self.lock().snapshots.get_mut(snapshot_id) {
            Some((s, blocks)) if s.state == SnapshotState::Pending => {
                blocks.insert(index, data);
                Ok(())
            }
            Some(_) => Err(Error::SnapshotNotPending(snapshot_id.to_owned())),
            None => Err(Error::SnapshotNotFound(snapshot_id.to_owned())),
        }
    }
    async fn complete_snapshot(&self, snapshot_id: &str, _count: u64) -> Result<()> {
        match self.lock().snapshots.get_mut(snapshot_id) {
            Some((s, _)) => {
                s.state = SnapshotState::Completed;
                s.progress_percent = 100;
                Ok(())
            }
            None => Err(Error::SnapshotNotFound(snapshot_id.to_owned())),
        }
    }
    fn list_blocks(&self, snapshot_id: &str) -> Result<Vec<BlockRef>> {
        Ok(self
            .completed_blocks(snapshot_id)?
            .iter()
            .map(|(index, data)| BlockRef {
                index: *index,
                hash: hash(data),
            })
            .collect())
    }
    fn list_changed_blocks(&self, first: Option<&str>, second: &str) -> Result<Vec<ChangedBlock>> {
        let before = match first {
            Some(id) => self.completed_blocks(id)?,
            None => BTreeMap::new(),
        };
        let after = self.completed_blocks(second)?;
        let mut indexes: Vec<u64> = before.keys().chain(after.keys()).copied().collect();
        indexes.sort_unstable();
        indexes.dedup();
        Ok(indexes
            .into_iter()
            .filter_map(|index| {
                let first = before.get(&index).map(|d| hash(d));
                let second = after.get(&index).map(|d| hash(d));
                (first != second).then_some(ChangedBlock {
                    index,
                    first,
                    second,
                })
            })
            .collect())
    }
    async fn get_block(&self, snapshot_id: &str, index: u64) -> Result<Vec<u8>> {
        Ok(self
            .completed_blocks(snapshot_id)?
            .remove(&index)
            .unwrap_or_else(|| vec![0; EBS_BLOCK_SIZE as usize]))
    }
    async fn import_raw_image(&self, snapshot_id: &str, path: &Path) -> Result<u64> {
        let size = std::fs::metadata(path)?.len().div_ceil(512) * 512;
        self.add_snapshot(snapshot_id, None, size, SnapshotState::Completed);
        Ok(size)
    }
    fn serve_vm(&self, socket: &Path, may_open: ExportFilter) -> Result<Box<dyn VmDisks>> {
        let served = self.1.clone();
        served
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(socket.to_owned(), may_open);
        Ok(Box::new(FakeVmDisks(socket.to_owned(), served)))
    }
}
