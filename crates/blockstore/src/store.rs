//! The blockstore handle: volumes on local disk, snapshots in the object store.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use futures::StreamExt;

use crate::direct::OpenSnapshot;
use crate::error::{Error, Result};
use crate::limits::IoLimits;
use crate::objects::{valid_chunk_size, Manifest, ObjectStoreSpec, Objects, SnapshotState};
use crate::pending::PendingRecord;
use crate::private;
use crate::volume::{Volume, VolumeMeta};

/// Tunables of a [`BlockStore`].
#[derive(Clone, Debug)]
pub struct BlockStoreOptions {
    /// Snapshot chunk size of new volumes: a power of two from 4 KiB to 4 MiB.
    /// The default, 512 KiB, equals an EBS direct API block.
    pub chunk_size: u64,
}

impl Default for BlockStoreOptions {
    fn default() -> Self {
        BlockStoreOptions {
            chunk_size: crate::EBS_BLOCK_SIZE,
        }
    }
}

/// What a caller can see of a volume.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeInfo {
    pub id: String,
    pub size_bytes: u64,
    pub limits: IoLimits,
    pub source_snapshot: Option<String>,
    pub created_millis: i64,
    /// Percent of the source snapshot's data copied to the local disk (100 without one).
    pub hydrated_percent: u8,
    /// Bytes the data file occupies on the local disk.
    pub allocated_bytes: u64,
}

/// What a caller can see of a snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct SnapshotStatus {
    pub id: String,
    pub volume_id: Option<String>,
    pub parent: Option<String>,
    pub state: SnapshotState,
    pub progress_percent: u8,
    pub size_bytes: u64,
    pub block_size: u64,
    /// Compressed bytes this snapshot added to the object store.
    pub stored_bytes: u64,
    pub created_millis: i64,
    pub error: Option<String>,
}

pub(crate) struct SnapshotEntry {
    pub manifest: Manifest,
    pub done: u64,
    pub total: u64,
    /// EBS direct API: block indexes written since the snapshot was started.
    pub written: HashSet<u64>,
    /// Set while a snapshot started with the EBS direct API takes blocks.
    pub open: Option<OpenSnapshot>,
}

pub(crate) struct Inner {
    pub data_dir: PathBuf,
    pub options: BlockStoreOptions,
    pub objects: Objects,
    pub volumes: RwLock<HashMap<String, Arc<Volume>>>,
    pub snapshots: Mutex<HashMap<String, SnapshotEntry>>,
    /// Held shared while chunks are being added and exclusively by garbage collection.
    pub gc_lock: tokio::sync::RwLock<()>,
}

/// A cheap, cloneable handle to the blockstore.
#[derive(Clone)]
pub struct BlockStore {
    pub(crate) inner: Arc<Inner>,
}

/// How many chunks move to or from the object store at once.
pub(crate) const TRANSFER_CONCURRENCY: usize = 8;

impl BlockStore {
    pub async fn open(data_dir: &Path, objects: ObjectStoreSpec) -> Result<Self> {
        Self::open_with(data_dir, objects, BlockStoreOptions::default()).await
    }

    /// Opens (or creates) the store, re-opening its volumes and snapshots. Snapshots of
    /// volumes that were pending when the process stopped resume their upload; EBS direct
    /// snapshots left pending cannot finish and turn to `error`.
    pub async fn open_with(
        data_dir: &Path,
        objects: ObjectStoreSpec,
        options: BlockStoreOptions,
    ) -> Result<Self> {
        let cs = options.chunk_size;
        if !valid_chunk_size(cs) {
            return Err(Error::InvalidSize(format!(
                "the chunk size {cs} is not a power of two from 4 KiB to 4 MiB"
            )));
        }
        let objects = Objects::new(&objects)?;
        let volumes_dir = data_dir.join("volumes");
        private::create_dir(&volumes_dir)?;
        let mut volumes = HashMap::new();
        // Snapshots frozen on each volume, in that volume's order (its jobs run in turn).
        let mut frozen: Vec<(Arc<Volume>, PendingRecord)> = Vec::new();
        for entry in std::fs::read_dir(&volumes_dir)? {
            let dir = entry?.path();
            if !dir.join("meta.json").exists() {
                // A creation that never finished.
                std::fs::remove_dir_all(&dir)?;
                continue;
            }
            let volume = Arc::new(Volume::open(dir)?);
            for record in volume.pending_snapshots() {
                frozen.push((volume.clone(), record));
            }
            volumes.insert(volume.id.clone(), volume);
        }
        let mut snapshots = HashMap::new();
        for mut manifest in objects.load_manifests().await? {
            let position = frozen
                .iter()
                .position(|(_, record)| record.snapshot_id == manifest.id);
            match position {
                Some(_) if manifest.state == SnapshotState::Pending => {}
                Some(position) => {
                    // It finished just before the stop: only the volume's record is left.
                    let (volume, record) = frozen.remove(position);
                    let map =
                        (manifest.state == SnapshotState::Completed).then_some(&manifest.chunks);
                    volume.finish_snapshot(&manifest.id, map, &record.chunks)?;
                }
                None if manifest.state == SnapshotState::Pending => {
                    manifest.state = SnapshotState::Error;
                    manifest.error =
                        Some("The service restarted before the snapshot completed.".into());
                    objects.put_manifest(&manifest).await?;
                }
                None => {}
            }
            snapshots.insert(manifest.id.clone(), SnapshotEntry::new(manifest));
        }
        let store = BlockStore {
            inner: Arc::new(Inner {
                data_dir: data_dir.to_path_buf(),
                options,
                objects,
                volumes: RwLock::new(volumes),
                snapshots: Mutex::new(snapshots),
                gc_lock: tokio::sync::RwLock::new(()),
            }),
        };
        for (volume, record) in frozen {
            if store.snapshot_status(&record.snapshot_id).is_none() {
                // Frozen before its upload wrote a first manifest.
                store.register_pending(
                    &record.snapshot_id,
                    Some(&volume.id),
                    0,
                    volume.chunk_size,
                    None,
                )?;
                if let Some(entry) = store.snapshots_guard().get_mut(&record.snapshot_id) {
                    entry.manifest.created_millis = record.created_millis;
                }
            }
            store.queue_snapshot_job(volume, record);
        }
        for volume in store.volumes_guard().values() {
            store.start_hydration(volume.clone());
        }
        Ok(store)
    }

    pub(crate) fn volumes_guard(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Volume>>> {
        self.inner.volumes.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn snapshots_guard(&self) -> MutexGuard<'_, HashMap<String, SnapshotEntry>> {
        self.inner
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn volume(&self, id: &str) -> Result<Arc<Volume>> {
        self.volumes_guard()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::VolumeNotFound(id.to_string()))
    }

    /// A completed snapshot's manifest.
    pub(crate) fn completed_manifest(&self, id: &str) -> Result<Manifest> {
        match self.snapshots_guard().get(id) {
            None => Err(Error::SnapshotNotFound(id.to_string())),
            Some(e) if e.manifest.state != SnapshotState::Completed => {
                Err(Error::SnapshotNotCompleted(id.to_string()))
            }
            Some(e) => Ok(e.manifest.clone()),
        }
    }

    /// Creates a thin volume of `size_bytes` (a multiple of 512), empty or with the content
    /// of a completed snapshot, which is then copied in the background; it is usable at once.
    pub async fn create_volume(
        &self,
        id: &str,
        size_bytes: u64,
        from_snapshot: Option<&str>,
        limits: IoLimits,
    ) -> Result<()> {
        check_id(id)?;
        if size_bytes == 0 || !size_bytes.is_multiple_of(512) {
            return Err(Error::InvalidSize(format!(
                "a volume size must be a positive multiple of 512 bytes, not {size_bytes}"
            )));
        }
        let (chunk_size, base) = match from_snapshot {
            None => (self.inner.options.chunk_size, BTreeMap::new()),
            Some(snap) => {
                let manifest = self.completed_manifest(snap)?;
                if size_bytes < manifest.size {
                    return Err(Error::InvalidSize(format!(
                        "the volume ({size_bytes} bytes) must be at least as large as the snapshot ({} bytes)",
                        manifest.size
                    )));
                }
                (manifest.chunk_size, manifest.chunks)
            }
        };
        let meta = VolumeMeta {
            id: id.to_string(),
            size: size_bytes,
            chunk_size,
            limits,
            source_snapshot: from_snapshot.map(str::to_string),
            base_snapshot: from_snapshot.map(str::to_string),
            created_millis: nimbus_core::now_millis(),
            missing: base.keys().copied().collect(),
        };
        if self.volumes_guard().contains_key(id) {
            return Err(Error::VolumeExists(id.to_string()));
        }
        let dir = self.inner.data_dir.join("volumes").join(id);
        let volume = tokio::task::spawn_blocking(move || Volume::create(dir, meta, base))
            .await?
            .map(Arc::new)?;
        {
            let mut volumes = self
                .inner
                .volumes
                .write()
                .unwrap_or_else(|p| p.into_inner());
            if volumes.contains_key(id) {
                return Err(Error::VolumeExists(id.to_string()));
            }
            volumes.insert(id.to_string(), volume.clone());
        }
        self.start_hydration(volume);
        Ok(())
    }

    /// Copies the rest of the base snapshot into the volume in the background.
    fn start_hydration(&self, volume: Arc<Volume>) {
        let missing = volume.missing_chunks();
        if missing.is_empty() {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let objects = &store.inner.objects;
            let results: Vec<Result<()>> = futures::stream::iter(missing)
                .map(|(chunk, hash)| {
                    let volume = volume.clone();
                    async move {
                        if volume.is_deleted() {
                            return Ok(());
                        }
                        volume.hydrate_chunk(objects, chunk, &hash).await
                    }
                })
                .buffer_unordered(TRANSFER_CONCURRENCY)
                .collect()
                .await;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                tracing::warn!(volume = %volume.id, error = %e, "background hydration failed");
            } else if !volume.is_deleted() {
                if let Err(e) = volume.flush().await {
                    tracing::warn!(volume = %volume.id, error = %e, "saving hydration state failed");
                }
            }
        });
    }

    /// Deletes a volume and frees its space (open NBD connections get errors from now on).
    pub async fn delete_volume(&self, id: &str) -> Result<()> {
        let volume = {
            let mut volumes = self
                .inner
                .volumes
                .write()
                .unwrap_or_else(|p| p.into_inner());
            volumes
                .remove(id)
                .ok_or_else(|| Error::VolumeNotFound(id.to_string()))?
        };
        // Snapshots taken before the deletion still complete.
        let pending_job = volume
            .last_snapshot_job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(job) = pending_job {
            job.await?;
        }
        tokio::task::spawn_blocking(move || volume.destroy()).await?
    }

    /// Grows a volume, also while it is served; new NBD connections see the new size.
    pub async fn resize_volume(&self, id: &str, new_size: u64) -> Result<()> {
        if !new_size.is_multiple_of(512) {
            return Err(Error::InvalidSize(format!(
                "a volume size must be a multiple of 512 bytes, not {new_size}"
            )));
        }
        let volume = self.volume(id)?;
        tokio::task::spawn_blocking(move || volume.grow(new_size)).await?
    }

    /// Changes a volume's IOPS/throughput limits; takes effect at once.
    pub fn set_limits(&self, id: &str, limits: IoLimits) -> Result<()> {
        self.volume(id)?.set_limits(limits)
    }

    pub fn volume_info(&self, id: &str) -> Option<VolumeInfo> {
        let volume = self.volume(id).ok()?;
        let meta = volume.meta();
        let base_chunks = volume.state().base.len();
        let hydrated_percent = (meta.missing.len() * 100)
            .checked_div(base_chunks)
            .map_or(100, |missing| (100 - missing) as u8);
        Some(VolumeInfo {
            id: meta.id,
            size_bytes: meta.size,
            limits: meta.limits,
            source_snapshot: meta.source_snapshot,
            created_millis: meta.created_millis,
            hydrated_percent,
            allocated_bytes: volume.allocated_bytes(),
        })
    }

    /// Bytes an unprivileged writer may still use on the file system holding the data dir
    /// (statvfs `f_bavail`): volumes are thin, so this is what their writes can still take.
    pub fn free_bytes(&self) -> Result<u64> {
        let stat = rustix::fs::statvfs(&self.inner.data_dir).map_err(std::io::Error::from)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// The I/O counters of a volume since it was opened (by this process).
    pub fn counters(&self, id: &str) -> Option<crate::VolumeCounters> {
        self.volumes_guard().get(id).map(|v| v.counters.read())
    }

    /// IDs of all volumes, sorted.
    pub fn list_volumes(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.volumes_guard().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Reads `length` bytes at `offset` (the same path NBD clients use).
    pub async fn read(&self, volume_id: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.volume(volume_id)?
            .read(&self.inner.objects, offset, length)
            .await
    }

    /// Writes `data` at `offset`; with `fua` it is durable when this returns.
    pub async fn write(
        &self,
        volume_id: &str,
        offset: u64,
        data: Vec<u8>,
        fua: bool,
    ) -> Result<()> {
        let length = data.len() as u64;
        self.volume(volume_id)?
            .write(&self.inner.objects, offset, length, Some(data), fua)
            .await
    }

    /// Zeroes a range, releasing its space (TRIM and WRITE_ZEROES).
    pub async fn write_zeroes(
        &self,
        volume_id: &str,
        offset: u64,
        length: u64,
        fua: bool,
    ) -> Result<()> {
        self.volume(volume_id)?
            .write(&self.inner.objects, offset, length, None, fua)
            .await
    }

    /// Makes every completed write to the volume durable.
    pub async fn flush(&self, volume_id: &str) -> Result<()> {
        self.volume(volume_id)?.flush().await
    }
}

impl SnapshotEntry {
    pub fn new(manifest: Manifest) -> Self {
        SnapshotEntry {
            manifest,
            done: 0,
            total: 0,
            written: HashSet::new(),
            open: None,
        }
    }

    pub fn status(&self) -> SnapshotStatus {
        let m = &self.manifest;
        let progress_percent = match m.state {
            SnapshotState::Completed => 100,
            _ if self.total == 0 => 0,
            _ => (self.done * 99 / self.total) as u8,
        };
        SnapshotStatus {
            id: m.id.clone(),
            volume_id: m.volume_id.clone(),
            parent: m.parent.clone(),
            state: m.state,
            progress_percent,
            size_bytes: m.size,
            block_size: m.chunk_size,
            stored_bytes: m.stored_bytes,
            created_millis: m.created_millis,
            error: m.error.clone(),
        }
    }
}

/// IDs name files and objects, so they are kept to a safe alphabet.
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}
