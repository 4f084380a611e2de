//! Point-in-time snapshots: instant freeze, background incremental upload, copy, delete and
//! garbage collection of chunks, and import of raw images.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use crate::direct::OpenSnapshot;
use crate::error::{Error, Result};
use crate::objects::{Manifest, SnapshotState};
use crate::pending::PendingRecord;
use crate::store::{check_id, BlockStore, SnapshotEntry, SnapshotStatus, TRANSFER_CONCURRENCY};
use crate::volume::Volume;

/// How often a failed upload is retried (after 2, 4, 8 and 16 s) before the snapshot fails;
/// a stop during the waits leaves it to resume at the next start.
const UPLOAD_RETRIES: u32 = 4;
/// Stored chunks are recorded (one log sync) and released from copy-on-write this many at once.
const RELEASE_BATCH: usize = 16;

impl BlockStore {
    /// Captures the volume as it is now and returns at once; the changed chunks are
    /// uploaded in the background (see [`BlockStore::snapshot_status`]).
    pub async fn create_snapshot(&self, snapshot_id: &str, volume_id: &str) -> Result<()> {
        self.create_snapshots(&[(snapshot_id.to_owned(), volume_id.to_owned())])
            .await
    }

    /// Captures several volumes at one instant, each as the snapshot paired with it (a
    /// crash-consistent set: see [`Volume::freeze_together`]), and returns at once; their
    /// chunks are uploaded in the background. Nothing is captured when one cannot be.
    pub async fn create_snapshots(&self, pairs: &[(String, String)]) -> Result<()> {
        let mut volumes = Vec::with_capacity(pairs.len());
        for (snapshot_id, volume_id) in pairs {
            check_id(snapshot_id)?;
            volumes.push(self.volume(volume_id)?);
        }
        let forget = |registered: &[(String, String)]| {
            let mut snapshots = self.snapshots_guard();
            for (snapshot_id, _) in registered {
                snapshots.remove(snapshot_id);
            }
        };
        for (index, ((snapshot_id, volume_id), volume)) in pairs.iter().zip(&volumes).enumerate() {
            let registered =
                self.register_pending(snapshot_id, Some(volume_id), 0, volume.chunk_size, None);
            if let Err(e) = registered {
                forget(&pairs[..index]);
                return Err(e);
            }
        }
        let created = self.manifest_of(&pairs[0].0)?.created_millis;
        let frozen_volumes = volumes.clone();
        let ids: Vec<String> = pairs
            .iter()
            .map(|(snapshot_id, _)| snapshot_id.clone())
            .collect();
        let frozen = tokio::task::spawn_blocking(move || {
            let together: Vec<(&Volume, &str)> = (frozen_volumes.iter())
                .zip(&ids)
                .map(|(volume, id)| (volume.as_ref(), id.as_str()))
                .collect();
            Volume::freeze_together(&together, created)
        })
        .await
        .map_err(Error::from)
        .and_then(|frozen| frozen);
        let records = match frozen {
            Ok(records) => records,
            Err(e) => {
                forget(pairs);
                return Err(e);
            }
        };
        for (volume, record) in volumes.into_iter().zip(records) {
            self.queue_snapshot_job(volume, record);
        }
        Ok(())
    }

    /// Uploads a frozen snapshot after the volume's earlier snapshot jobs.
    pub(crate) fn queue_snapshot_job(&self, volume: Arc<Volume>, record: PendingRecord) {
        if let Some(entry) = self.snapshots_guard().get_mut(&record.snapshot_id) {
            entry.manifest.size = record.size;
            entry.total = record.chunks.len() as u64;
        }
        let mut last_job = volume
            .last_snapshot_job
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let previous = last_job.take();
        let store = self.clone();
        let job_volume = volume.clone();
        *last_job = Some(tokio::spawn(async move {
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            store
                .run_snapshot_job(job_volume, record.snapshot_id, record.chunks, record.size)
                .await;
        }));
    }

    /// Adds a pending snapshot to the catalog, failing if the ID is taken.
    pub(crate) fn register_pending(
        &self,
        snapshot_id: &str,
        volume_id: Option<&str>,
        size: u64,
        chunk_size: u64,
        open: Option<OpenSnapshot>,
    ) -> Result<()> {
        let mut snapshots = self.snapshots_guard();
        if snapshots.contains_key(snapshot_id) {
            return Err(Error::SnapshotExists(snapshot_id.to_string()));
        }
        let mut entry = SnapshotEntry::new(Manifest {
            id: snapshot_id.to_string(),
            volume_id: volume_id.map(str::to_string),
            parent: None,
            size,
            chunk_size,
            chunks: BTreeMap::new(),
            state: SnapshotState::Pending,
            created_millis: nimbus_core::now_millis(),
            stored_bytes: 0,
            error: None,
        });
        entry.open = open;
        snapshots.insert(snapshot_id.to_string(), entry);
        Ok(())
    }

    async fn run_snapshot_job(&self, volume: Arc<Volume>, id: String, frozen: Vec<u64>, size: u64) {
        let _gc = self.inner.gc_lock.read().await;
        let mut retries = 0;
        let outcome = loop {
            match self.upload_frozen(&volume, &id, size).await {
                // The stored chunks are recorded: the next start resumes from there.
                Err(Error::Stopping) => return,
                Err(e) if retries < UPLOAD_RETRIES => {
                    retries += 1;
                    tracing::warn!(snapshot = %id, error = %e, retries, "snapshot upload failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1 << retries)).await;
                }
                outcome => break outcome,
            }
        };
        let (map, result) = match outcome {
            Ok(manifest) => {
                let map = manifest.chunks.clone();
                let saved = self.inner.objects.put_manifest(&manifest).await;
                self.set_manifest(manifest);
                (Some(map), saved)
            }
            Err(e) => (None, Err(e)),
        };
        if let Err(e) = &result {
            tracing::warn!(snapshot = %id, error = %e, "snapshot failed");
            let failed = self.snapshots_guard().get_mut(&id).map(|entry| {
                entry.manifest.state = SnapshotState::Error;
                entry.manifest.error = Some(e.to_string());
                entry.manifest.clone()
            });
            if let Some(failed) = failed {
                let _ = self.inner.objects.put_manifest(&failed).await;
            }
        }
        let finished =
            volume.finish_snapshot(&id, map.as_ref().filter(|_| result.is_ok()), &frozen);
        if let Err(e) = finished {
            tracing::warn!(snapshot = %id, error = %e, "saving the new snapshot base failed");
        }
    }

    fn set_manifest(&self, manifest: Manifest) {
        if let Some(entry) = self.snapshots_guard().get_mut(&manifest.id) {
            entry.manifest = manifest;
        }
    }

    /// Uploads the frozen chunks not stored yet and returns the completed manifest.
    async fn upload_frozen(&self, volume: &Arc<Volume>, id: &str, size: u64) -> Result<Manifest> {
        let (mut chunks, parent) = {
            let state = volume.state();
            (state.base.clone(), state.meta.base_snapshot.clone())
        };
        let chunk_count = size.div_ceil(volume.chunk_size);
        chunks.retain(|index, _| *index < chunk_count);
        let (remaining, stored) = volume
            .frozen_progress(id)
            .ok_or_else(|| Error::SnapshotNotFound(id.to_string()))?;
        let mut manifest = {
            let mut snapshots = self.snapshots_guard();
            let entry = snapshots
                .get_mut(id)
                .ok_or_else(|| Error::SnapshotNotFound(id.to_string()))?;
            entry.manifest.parent = parent;
            entry.done = stored.len() as u64;
            entry.manifest.clone()
        };
        self.inner.objects.put_manifest(&manifest).await?;
        let uploads = futures::stream::iter(remaining)
            .map(|chunk| {
                let volume = volume.clone();
                let id = id.to_string();
                async move {
                    let data =
                        tokio::task::spawn_blocking(move || volume.frozen_chunk(&id, chunk, size))
                            .await??;
                    self.store_chunk(chunk, data).await
                }
            })
            .buffer_unordered(TRANSFER_CONCURRENCY);
        futures::pin_mut!(uploads);
        let mut all_stored = stored;
        let mut unreleased = Vec::new();
        loop {
            let next = uploads.try_next().await?;
            let finished = next.is_none();
            if let Some((chunk, hash, bytes)) = next {
                manifest.stored_bytes += bytes;
                unreleased.push((chunk, hash));
                if let Some(entry) = self.snapshots_guard().get_mut(id) {
                    entry.done += 1;
                }
            }
            // Released in batches: each release syncs the snapshot's log once.
            if unreleased.len() >= RELEASE_BATCH || (finished && !unreleased.is_empty()) {
                let batch = std::mem::take(&mut unreleased);
                all_stored.extend(batch.iter().cloned());
                let releasing = volume.clone();
                let snapshot = id.to_string();
                tokio::task::spawn_blocking(move || {
                    releasing.release_frozen_chunks(&snapshot, batch)
                })
                .await??;
            }
            if finished {
                break;
            }
        }
        for (chunk, hash) in all_stored {
            match hash {
                Some(hash) => chunks.insert(chunk, hash),
                None => chunks.remove(&chunk),
            };
        }
        manifest.chunks = chunks;
        manifest.state = SnapshotState::Completed;
        Ok(manifest)
    }

    /// Uploads one chunk unless it is all zeros; returns its index, hash and stored bytes.
    pub(crate) async fn store_chunk(
        &self,
        chunk: u64,
        data: Vec<u8>,
    ) -> Result<(u64, Option<String>, u64)> {
        if data.iter().all(|b| *b == 0) {
            return Ok((chunk, None, 0));
        }
        let (hash, stored) = self.inner.objects.put_chunk(Arc::new(data)).await?;
        Ok((chunk, Some(hash), stored))
    }

    pub fn snapshot_status(&self, snapshot_id: &str) -> Option<SnapshotStatus> {
        self.snapshots_guard()
            .get(snapshot_id)
            .map(SnapshotEntry::status)
    }

    /// All snapshots, sorted by ID.
    pub fn list_snapshots(&self) -> Vec<SnapshotStatus> {
        let mut all: Vec<SnapshotStatus> = self
            .snapshots_guard()
            .values()
            .map(SnapshotEntry::status)
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Copies a completed snapshot; the copy shares its chunks, so it completes at once.
    pub async fn copy_snapshot(&self, source_id: &str, new_id: &str) -> Result<()> {
        check_id(new_id)?;
        let mut manifest = self.completed_manifest(source_id)?;
        manifest.id = new_id.to_string();
        manifest.stored_bytes = 0;
        manifest.created_millis = nimbus_core::now_millis();
        {
            let mut snapshots = self.snapshots_guard();
            if snapshots.contains_key(new_id) {
                return Err(Error::SnapshotExists(new_id.to_string()));
            }
            snapshots.insert(new_id.to_string(), SnapshotEntry::new(manifest.clone()));
        }
        if let Err(e) = self.inner.objects.put_manifest(&manifest).await {
            self.snapshots_guard().remove(new_id);
            return Err(e);
        }
        Ok(())
    }

    /// Deletes a completed (or failed) snapshot and the chunks nothing else uses.
    pub async fn delete_snapshot(&self, snapshot_id: &str) -> Result<()> {
        {
            let mut snapshots = self.snapshots_guard();
            match snapshots.get(snapshot_id) {
                None => return Err(Error::SnapshotNotFound(snapshot_id.to_string())),
                Some(e) if e.manifest.state == SnapshotState::Pending => {
                    return Err(Error::SnapshotNotCompleted(snapshot_id.to_string()))
                }
                Some(_) => snapshots.remove(snapshot_id),
            };
        }
        self.inner.objects.delete_manifest(snapshot_id).await?;
        self.collect_garbage().await.map(|_| ())
    }

    /// Deletes chunks that no snapshot and no volume (as its base) refers to; returns how many.
    pub async fn collect_garbage(&self) -> Result<u64> {
        let _gc = self.inner.gc_lock.write().await;
        let mut used: HashSet<String> = HashSet::new();
        for entry in self.snapshots_guard().values() {
            used.extend(entry.manifest.chunks.values().cloned());
        }
        for volume in self.volumes_guard().values() {
            used.extend(volume.state().base.values().cloned());
        }
        let mut deleted = 0;
        for chunk in self.inner.objects.list_chunks().await? {
            if !used.contains(&chunk) {
                self.inner.objects.delete_chunk(&chunk).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Stores a raw disk image as a completed snapshot (for AMIs); returns its size in bytes
    /// (the file's length rounded up to 512).
    pub async fn import_raw_image(&self, snapshot_id: &str, path: &Path) -> Result<u64> {
        check_id(snapshot_id)?;
        let file = Arc::new(std::fs::File::open(path)?);
        let file_len = file.metadata()?.len();
        let size = file_len.div_ceil(512) * 512;
        if size == 0 {
            return Err(Error::InvalidSize("the image file is empty".into()));
        }
        let chunk_size = self.inner.options.chunk_size;
        self.register_pending(snapshot_id, None, size, chunk_size, None)?;
        let chunk_count = size.div_ceil(chunk_size);
        if let Some(entry) = self.snapshots_guard().get_mut(snapshot_id) {
            entry.total = chunk_count;
        }
        let result = async {
            let _gc = self.inner.gc_lock.read().await;
            let uploads = futures::stream::iter(0..chunk_count)
                .map(|chunk| {
                    let file = file.clone();
                    async move {
                        let data = tokio::task::spawn_blocking(move || {
                            let start = chunk * chunk_size;
                            let mut buf =
                                vec![0; (file_len.min(start + chunk_size) - start) as usize];
                            file.read_exact_at(&mut buf, start).map(|_| buf)
                        })
                        .await??;
                        self.store_chunk(chunk, data).await
                    }
                })
                .buffer_unordered(TRANSFER_CONCURRENCY);
            futures::pin_mut!(uploads);
            let mut manifest = self.manifest_of(snapshot_id)?;
            while let Some((chunk, hash, stored)) = uploads.try_next().await? {
                if let Some(hash) = hash {
                    manifest.chunks.insert(chunk, hash);
                }
                manifest.stored_bytes += stored;
                if let Some(entry) = self.snapshots_guard().get_mut(snapshot_id) {
                    entry.done += 1;
                }
            }
            manifest.state = SnapshotState::Completed;
            self.inner.objects.put_manifest(&manifest).await?;
            self.set_manifest(manifest);
            Ok(size)
        }
        .await;
        if result.is_err() {
            self.snapshots_guard().remove(snapshot_id);
        }
        result
    }

    fn manifest_of(&self, id: &str) -> Result<Manifest> {
        self.snapshots_guard()
            .get(id)
            .map(|e| e.manifest.clone())
            .ok_or_else(|| Error::SnapshotNotFound(id.to_string()))
    }
}
