//! One volume: a sparse raw data file plus small durable metadata.
//!
//! Chunks listed in `missing` still live only in the base snapshot; they are fetched and
//! written locally before any read or write touches them (and by a background task).
//! `dirty` marks chunks written since the last snapshot froze the volume. A snapshot
//! freezes the dirty set into a [`Frozen`] generation; a write to a frozen chunk first
//! copies its old content into memory and a durable log (see `pending.rs`), so the
//! snapshot keeps the moment it was taken, also across a crash.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde::{Deserialize, Serialize};

use crate::data_file::DataFile;
use crate::error::{Error, Result};
use crate::limits::{IoLimits, Throttle};
use crate::objects::Objects;
use crate::pending::{self, PendingRecord, SavedLog};
use crate::private;

/// The durable description of a volume (`meta.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct VolumeMeta {
    pub id: String,
    pub size: u64,
    pub chunk_size: u64,
    pub limits: IoLimits,
    /// The snapshot the volume was created from, if any.
    pub source_snapshot: Option<String>,
    /// The snapshot whose chunk map is `base.json`: the last completed snapshot of this
    /// volume, else its source snapshot.
    pub base_snapshot: Option<String>,
    pub created_millis: i64,
    /// Chunks not yet copied from the base snapshot.
    pub missing: BTreeSet<u64>,
}

/// Chunks in the object store by index, with their hashes (`None`: all zeros, not stored).
pub(crate) type StoredChunks = BTreeMap<u64, Option<String>>;

/// One snapshot's view of chunks that were dirty when it was taken. `None`: the chunk is
/// still unchanged in the data file; `Some`: its content, saved (also in `log`) before a
/// later write.
pub(crate) struct Frozen {
    pub record: PendingRecord,
    /// The frozen chunks not yet in the object store.
    pub chunks: HashMap<u64, Option<Arc<Vec<u8>>>>,
    /// The frozen chunks already in the object store.
    pub stored: StoredChunks,
    log: SavedLog,
}

pub(crate) struct VolumeState {
    pub meta: VolumeMeta,
    pub base: BTreeMap<u64, String>,
    pub dirty: Vec<bool>,
    pub frozen: Vec<Frozen>,
    missing_changed: bool,
}

pub(crate) struct Volume {
    pub id: String,
    pub chunk_size: u64,
    dir: PathBuf,
    file: DataFile,
    state: Mutex<VolumeState>,
    /// Writes hold it shared while they run; a snapshot takes it exclusively for an instant
    /// so that it sees no half-done write.
    write_gate: RwLock<()>,
    /// Serializes metadata writes.
    persist_lock: Mutex<()>,
    pub throttle: Throttle,
    /// What the NBD server did for guests, for CloudWatch.
    pub counters: crate::io_counters::IoCounters,
    deleted: AtomicBool,
    /// The previous snapshot job of this volume: jobs run in order.
    pub last_snapshot_job: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

const DATA_FILE: &str = "data.raw";
/// Writes up to this size run on the calling task (see [`Volume::write`]).
const INLINE_WRITE_MAX: usize = 64 << 10;
const META_FILE: &str = "meta.json";
const BASE_FILE: &str = "base.json";

impl Volume {
    /// Creates the files of a new volume.
    pub fn create(dir: PathBuf, meta: VolumeMeta, base: BTreeMap<u64, String>) -> Result<Self> {
        private::create_dir(&dir)?;
        let file = private::file_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join(DATA_FILE))?;
        file.set_len(meta.size)?;
        file.sync_all()?;
        write_atomic(&dir.join(BASE_FILE), &to_json(&base)?)?;
        write_atomic(&dir.join(META_FILE), &to_json(&meta)?)?;
        // The new directory's own entry in `volumes/`: without it a crash could lose the
        // whole volume although its files were synced.
        if let Some(parent) = dir.parent() {
            File::open(parent)?.sync_all()?;
        }
        Ok(Self::assemble(dir, file, meta, base))
    }

    /// Re-opens a volume after a restart, with the snapshots still pending on it (see
    /// [`Volume::pending_snapshots`]). Which chunks changed since the last snapshot is not
    /// known after a crash, so every local chunk that holds data or had data in the base
    /// counts as dirty (content addressing makes re-uploading unchanged ones cheap).
    pub fn open(dir: PathBuf) -> Result<Self> {
        let meta: VolumeMeta = from_json(&dir.join(META_FILE))?;
        let base: BTreeMap<u64, String> = from_json(&dir.join(BASE_FILE))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(DATA_FILE))?;
        let pending = pending::load(&dir)?;
        let volume = Self::assemble(dir, file, meta, base);
        {
            let mut state = volume.state();
            let allocated = volume
                .file
                .allocated_chunks(state.meta.size, volume.chunk_size)?;
            let VolumeState {
                meta, base, dirty, ..
            } = &mut *state;
            for (chunk, dirty) in dirty.iter_mut().enumerate() {
                let index = chunk as u64;
                // A hole where the base had data was zeroed since: dirty too.
                *dirty = !meta.missing.contains(&index)
                    && (allocated[chunk] || base.contains_key(&index));
            }
            for (record, log, mut logged) in pending {
                let chunks = record
                    .chunks
                    .iter()
                    .filter(|c| !logged.stored.contains_key(c))
                    .map(|c| (*c, logged.saved.remove(c)))
                    .collect();
                state.frozen.push(Frozen {
                    record,
                    chunks,
                    stored: logged.stored.into_iter().collect(),
                    log,
                });
            }
        }
        Ok(volume)
    }

    /// The snapshots frozen on this volume whose upload has not finished, oldest first.
    pub fn pending_snapshots(&self) -> Vec<PendingRecord> {
        self.state()
            .frozen
            .iter()
            .map(|f| f.record.clone())
            .collect()
    }

    fn assemble(dir: PathBuf, file: File, meta: VolumeMeta, base: BTreeMap<u64, String>) -> Self {
        let chunks = meta.size.div_ceil(meta.chunk_size) as usize;
        Volume {
            id: meta.id.clone(),
            chunk_size: meta.chunk_size,
            dir,
            file: DataFile::new(file),
            throttle: Throttle::new(meta.limits),
            counters: Default::default(),
            state: Mutex::new(VolumeState {
                meta,
                base,
                dirty: vec![false; chunks],
                frozen: Vec::new(),
                missing_changed: false,
            }),
            write_gate: RwLock::new(()),
            persist_lock: Mutex::new(()),
            deleted: AtomicBool::new(false),
            last_snapshot_job: Mutex::new(None),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, VolumeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn size(&self) -> u64 {
        self.state().meta.size
    }

    pub fn meta(&self) -> VolumeMeta {
        self.state().meta.clone()
    }

    fn check(&self, offset: u64, length: u64) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::VolumeNotFound(self.id.clone()));
        }
        let size = self.size();
        match offset.checked_add(length) {
            Some(end) if end <= size => Ok(()),
            _ => Err(Error::OutOfRange {
                offset,
                length,
                size,
            }),
        }
    }

    fn chunk_range(&self, offset: u64, length: u64) -> std::ops::RangeInclusive<u64> {
        let last = (offset + length.max(1) - 1) / self.chunk_size;
        offset / self.chunk_size..=last
    }

    pub async fn read(
        self: &Arc<Self>,
        objects: &Objects,
        offset: u64,
        length: u32,
    ) -> Result<Vec<u8>> {
        self.check(offset, length as u64)?;
        self.throttle.admit(length as u64).await;
        self.hydrate_range(objects, offset, length as u64).await?;
        let mut buf = vec![0; length as usize];
        if self.file.read_cached(&mut buf, offset) {
            return Ok(buf);
        }
        let volume = self.clone();
        tokio::task::spawn_blocking(move || {
            volume.file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })
        .await?
    }

    /// Writes `data` (or zeros, by punching a hole, when `data` is `None`).
    pub async fn write(
        self: &Arc<Self>,
        objects: &Objects,
        offset: u64,
        length: u64,
        data: Option<Vec<u8>>,
        fua: bool,
    ) -> Result<()> {
        self.check(offset, length)?;
        self.throttle
            .admit(if data.is_some() { length } else { 0 })
            .await;
        self.hydrate_range(objects, offset, length).await?;
        let small = data.as_ref().is_some_and(|d| d.len() <= INLINE_WRITE_MAX);
        if small && !fua && self.state().frozen.is_empty() {
            // A small buffered write only copies into the page cache: doing it here saves
            // the hand-off to the blocking pool, which costs more than the write.
            return self.write_blocking(offset, length, data, false);
        }
        let volume = self.clone();
        tokio::task::spawn_blocking(move || volume.write_blocking(offset, length, data, fua))
            .await?
    }

    fn write_blocking(
        &self,
        offset: u64,
        length: u64,
        data: Option<Vec<u8>>,
        fua: bool,
    ) -> Result<()> {
        {
            let _gate = self.write_gate.read().unwrap_or_else(|p| p.into_inner());
            self.prepare_write(offset, length)?;
            match data {
                Some(data) => self.file.write_all_at(&data, offset)?,
                None => self.file.punch_hole(offset, length)?,
            }
        }
        if fua {
            self.flush_blocking()?;
        }
        Ok(())
    }

    /// Marks the chunks dirty and saves the content of chunks a pending snapshot still needs.
    fn prepare_write(&self, offset: u64, length: u64) -> Result<()> {
        let mut state = self.state();
        for chunk in self.chunk_range(offset, length) {
            if let Some(dirty) = state.dirty.get_mut(chunk as usize) {
                *dirty = true;
            }
            let needs_copy = state
                .frozen
                .iter()
                .any(|f| matches!(f.chunks.get(&chunk), Some(None)));
            if needs_copy {
                let saved = Arc::new(self.read_chunk_locked(&state, chunk)?);
                for frozen in &mut state.frozen {
                    if let Some(slot @ None) = frozen.chunks.get_mut(&chunk) {
                        frozen.log.append(chunk, &saved)?;
                        *slot = Some(saved.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads one whole chunk (shorter at the end of the volume) from the data file.
    fn read_chunk_locked(&self, state: &VolumeState, chunk: u64) -> Result<Vec<u8>> {
        let start = chunk * self.chunk_size;
        let end = (start + self.chunk_size).min(state.meta.size);
        let mut buf = vec![0; end.saturating_sub(start) as usize];
        self.file.read_exact_at(&mut buf, start)?;
        Ok(buf)
    }

    /// The content a frozen chunk had when snapshot `snapshot_id` was taken. It stays
    /// frozen (later writes keep copying it) until [`Volume::release_frozen_chunks`].
    pub fn frozen_chunk(&self, snapshot_id: &str, chunk: u64, size: u64) -> Result<Vec<u8>> {
        let state = self.state();
        let saved = state
            .frozen
            .iter()
            .find(|f| f.record.snapshot_id == snapshot_id)
            .and_then(|f| f.chunks.get(&chunk).cloned().flatten());
        let mut data = match saved {
            Some(data) => data.to_vec(),
            None => self.read_chunk_locked(&state, chunk)?,
        };
        data.truncate(size.saturating_sub(chunk * self.chunk_size) as usize);
        Ok(data)
    }

    /// What is left of a snapshot's upload: the chunks still to store, and the hashes of
    /// those already stored.
    pub fn frozen_progress(&self, snapshot_id: &str) -> Option<(Vec<u64>, StoredChunks)> {
        let state = self.state();
        let frozen = state
            .frozen
            .iter()
            .find(|f| f.record.snapshot_id == snapshot_id)?;
        let mut remaining: Vec<u64> = frozen.chunks.keys().copied().collect();
        remaining.sort_unstable();
        Some((remaining, frozen.stored.clone()))
    }

    /// Unfreezes chunks whose content the object store now holds, once that is recorded
    /// durably (a resumed upload must not read their newer content).
    pub fn release_frozen_chunks(
        &self,
        snapshot_id: &str,
        stored: Vec<(u64, Option<String>)>,
    ) -> Result<()> {
        let mut state = self.state();
        let Some(frozen) = state
            .frozen
            .iter_mut()
            .find(|f| f.record.snapshot_id == snapshot_id)
        else {
            return Ok(());
        };
        frozen.log.append_stored(&stored)?;
        for (chunk, hash) in stored {
            frozen.chunks.remove(&chunk);
            frozen.stored.insert(chunk, hash);
        }
        Ok(())
    }

    /// Freezes the chunks written since the last snapshot of each volume for its own new
    /// snapshot, waiting for writes in flight to land, and records each durably; answers what
    /// was frozen. The volumes are frozen at one instant (a crash-consistent
    /// set, as CreateSnapshots and CreateImage take): every volume's writes are held (its
    /// write gate, taken in the order of the volumes' directories, so two such freezes cannot
    /// wait on each other) before the first is frozen, and released after the last.
    pub fn freeze_together(
        volumes: &[(&Volume, &str)],
        created_millis: i64,
    ) -> Result<Vec<PendingRecord>> {
        let mut order: Vec<&Volume> = volumes.iter().map(|(volume, _)| *volume).collect();
        order.sort_by(|a, b| a.dir.cmp(&b.dir));
        let _gates: Vec<_> = (order.iter())
            .map(|volume| volume.write_gate.write().unwrap_or_else(|p| p.into_inner()))
            .collect();
        volumes
            .iter()
            .map(|(volume, snapshot_id)| volume.freeze_held(snapshot_id, created_millis))
            .collect()
    }

    /// Freezes this volume once the caller holds its write gate.
    fn freeze_held(&self, snapshot_id: &str, created_millis: i64) -> Result<PendingRecord> {
        let mut state = self.state();
        let record = PendingRecord {
            snapshot_id: snapshot_id.to_string(),
            created_millis,
            size: state.meta.size,
            chunks: state
                .dirty
                .iter()
                .enumerate()
                .filter(|(_, d)| **d)
                .map(|(c, _)| c as u64)
                .collect(),
        };
        let log = pending::create(&self.dir, &record)?;
        state.dirty.iter_mut().for_each(|d| *d = false);
        state.frozen.push(Frozen {
            chunks: record.chunks.iter().map(|c| (*c, None)).collect(),
            stored: BTreeMap::new(),
            record: record.clone(),
            log,
        });
        Ok(record)
    }

    /// Ends a snapshot job: on success its chunk map becomes the new base; on failure its
    /// chunks count as dirty again.
    pub fn finish_snapshot(
        &self,
        snapshot_id: &str,
        outcome: Option<&BTreeMap<u64, String>>,
        frozen_chunks: &[u64],
    ) -> Result<()> {
        {
            let mut state = self.state();
            state.frozen.retain(|f| f.record.snapshot_id != snapshot_id);
            match outcome {
                Some(map) => {
                    // Chunks still missing keep their base content, so the map agrees.
                    state.base = map.clone();
                    state.meta.base_snapshot = Some(snapshot_id.to_string());
                }
                None => {
                    for chunk in frozen_chunks {
                        if let Some(d) = state.dirty.get_mut(*chunk as usize) {
                            *d = true;
                        }
                    }
                }
            }
        }
        if outcome.is_some() {
            self.persist(true)?;
        }
        let _order = self.lock_for_persist()?;
        pending::remove(&self.dir, snapshot_id)
    }

    /// Copies missing chunks in the range from the base snapshot into the data file.
    async fn hydrate_range(
        self: &Arc<Self>,
        objects: &Objects,
        offset: u64,
        length: u64,
    ) -> Result<()> {
        let wanted: Vec<(u64, String)> = {
            let state = self.state();
            if state.meta.missing.is_empty() {
                return Ok(());
            }
            self.chunk_range(offset, length)
                .filter(|c| state.meta.missing.contains(c))
                .filter_map(|c| state.base.get(&c).map(|h| (c, h.clone())))
                .collect()
        };
        for (chunk, hash) in wanted {
            self.hydrate_chunk(objects, chunk, &hash).await?;
        }
        Ok(())
    }

    pub async fn hydrate_chunk(
        self: &Arc<Self>,
        objects: &Objects,
        chunk: u64,
        hash: &str,
    ) -> Result<()> {
        let data = objects.get_chunk(hash, self.chunk_size as usize).await?;
        let volume = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = volume.state();
            if volume.is_deleted() {
                return Err(Error::VolumeNotFound(volume.id.clone()));
            }
            // Another request may have copied it meanwhile, and then written to it.
            if state.meta.missing.remove(&chunk) {
                let start = chunk * volume.chunk_size;
                let end = (start + data.len() as u64).min(state.meta.size);
                let length = end.saturating_sub(start) as usize;
                volume.file.write_all_at(&data[..length], start)?;
                state.missing_changed = true;
            }
            Ok(())
        })
        .await?
    }

    /// The chunks still to copy from the base snapshot, with their hashes.
    pub fn missing_chunks(&self) -> Vec<(u64, String)> {
        let state = self.state();
        state
            .meta
            .missing
            .iter()
            .filter_map(|c| state.base.get(c).map(|h| (*c, h.clone())))
            .collect()
    }

    pub async fn flush(self: &Arc<Self>) -> Result<()> {
        let volume = self.clone();
        tokio::task::spawn_blocking(move || volume.flush_blocking()).await?
    }

    /// Makes every completed write durable: data first, then the metadata that says which
    /// chunks are local, so a restart never re-copies a base chunk over acknowledged data.
    fn flush_blocking(&self) -> Result<()> {
        let _order = self.lock_for_persist()?;
        let meta = {
            let mut state = self.state();
            if !state.missing_changed {
                None
            } else {
                state.missing_changed = false;
                Some(state.meta.clone())
            }
        };
        self.file.sync_data()?;
        if let Some(meta) = meta {
            write_atomic(&self.dir.join(META_FILE), &to_json(&meta)?)?;
        }
        Ok(())
    }

    /// Writes `meta.json` (and `base.json` when asked) durably.
    pub fn persist(&self, with_base: bool) -> Result<()> {
        let _order = self.lock_for_persist()?;
        let (meta, base) = {
            let state = self.state();
            let base = if with_base {
                Some(to_json(&state.base)?)
            } else {
                None
            };
            (to_json(&state.meta)?, base)
        };
        self.file.sync_data()?;
        if let Some(base) = base {
            write_atomic(&self.dir.join(BASE_FILE), &base)?;
        }
        write_atomic(&self.dir.join(META_FILE), &meta)
    }

    /// Takes the metadata lock, unless the volume is being deleted.
    fn lock_for_persist(&self) -> Result<MutexGuard<'_, ()>> {
        let guard = self.persist_lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.is_deleted() {
            return Err(Error::VolumeNotFound(self.id.clone()));
        }
        Ok(guard)
    }

    pub fn set_limits(&self, limits: IoLimits) -> Result<()> {
        self.throttle.set(limits);
        self.state().meta.limits = limits;
        self.persist(false)
    }

    /// Grows the volume; the new space reads as zeros.
    pub fn grow(&self, new_size: u64) -> Result<()> {
        let _gate = self.write_gate.write().unwrap_or_else(|p| p.into_inner());
        {
            let mut state = self.state();
            if new_size < state.meta.size {
                return Err(Error::InvalidSize(format!(
                    "a volume can only grow: {new_size} is less than its size {}",
                    state.meta.size
                )));
            }
            self.file.set_len(new_size)?;
            state.meta.size = new_size;
            let chunks = new_size.div_ceil(self.chunk_size) as usize;
            state.dirty.resize(chunks, false);
        }
        self.persist(false)
    }

    /// Frees the volume's space at once, even while clients still hold it open.
    pub fn destroy(&self) -> Result<()> {
        self.deleted.store(true, Ordering::Release);
        let _gate = self.write_gate.write().unwrap_or_else(|p| p.into_inner());
        let _order = self.persist_lock.lock().unwrap_or_else(|p| p.into_inner());
        let _state = self.state();
        self.file.set_len(0)?;
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn allocated_bytes(&self) -> u64 {
        self.file.allocated_bytes()
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::CorruptMetadata("volume".into(), e.to_string()))
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::CorruptMetadata(path.display().to_string(), e.to_string()))
}

/// Replaces a file durably: write a temporary file, fsync it, rename it, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}
