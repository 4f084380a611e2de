//! EBS direct API primitives: build a snapshot block by block, list and read its blocks.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::objects::{Manifest, SnapshotState};
use crate::store::{check_id, BlockStore};
use crate::EBS_BLOCK_SIZE;

/// One block of a snapshot; `hash` (blake3, hex) identifies its content and can serve as
/// the block token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRef {
    pub index: u64,
    pub hash: String,
}

/// A block whose content differs between two snapshots; `None` is a block of zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedBlock {
    pub index: u64,
    pub first: Option<String>,
    pub second: Option<String>,
}

const MAX_VOLUME_GIB: u64 = 64 * 1024;

/// A snapshot started with the EBS direct API that still takes blocks. As in AWS, it fails
/// when no block is written to it, or it is not completed, within its timeout.
pub(crate) struct OpenSnapshot {
    timeout: Duration,
    idle_since: Instant,
}

impl BlockStore {
    /// Starts an empty snapshot of `volume_size_gib` GiB, or one that starts as a copy of a
    /// completed `parent` (which must use 512 KiB blocks), to be filled with
    /// [`Self::put_block`] and failed by [`Self::expire_idle_snapshots`] once idle longer
    /// than `timeout`.
    pub async fn start_snapshot(
        &self,
        snapshot_id: &str,
        volume_size_gib: u64,
        parent: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        check_id(snapshot_id)?;
        if volume_size_gib == 0 || volume_size_gib > MAX_VOLUME_GIB {
            return Err(Error::InvalidSize(format!(
                "a snapshot size must be 1 to {MAX_VOLUME_GIB} GiB, not {volume_size_gib}"
            )));
        }
        let size = volume_size_gib << 30;
        let parent_manifest = match parent {
            Some(p) => {
                let m = self.completed_manifest(p)?;
                if m.chunk_size != EBS_BLOCK_SIZE {
                    return Err(Error::SnapshotsIncompatible(
                        p.to_string(),
                        snapshot_id.to_string(),
                    ));
                }
                Some(m)
            }
            None => None,
        };
        let open = OpenSnapshot {
            timeout,
            idle_since: Instant::now(),
        };
        self.register_pending(snapshot_id, None, size, EBS_BLOCK_SIZE, Some(open))?;
        let manifest = {
            let mut snapshots = self.snapshots_guard();
            let entry = snapshots
                .get_mut(snapshot_id)
                .ok_or_else(|| Error::SnapshotNotFound(snapshot_id.to_string()))?;
            if let Some(p) = parent_manifest {
                let blocks = size.div_ceil(EBS_BLOCK_SIZE);
                entry.manifest.chunks = p.chunks.into_iter().filter(|(i, _)| *i < blocks).collect();
                entry.manifest.parent = Some(p.id);
                entry.manifest.volume_id = p.volume_id;
            }
            entry.manifest.clone()
        };
        // Stored pending, so a restart reports it as failed rather than forgetting it.
        if let Err(e) = self.inner.objects.put_manifest(&manifest).await {
            self.snapshots_guard().remove(snapshot_id);
            return Err(e);
        }
        Ok(())
    }

    fn pending_direct(&self, snapshot_id: &str) -> Result<Manifest> {
        match self.snapshots_guard().get(snapshot_id) {
            None => Err(Error::SnapshotNotFound(snapshot_id.to_string())),
            Some(e) if e.manifest.state != SnapshotState::Pending || e.open.is_none() => {
                Err(Error::SnapshotNotPending(snapshot_id.to_string()))
            }
            Some(e) => Ok(e.manifest.clone()),
        }
    }

    /// Writes one 512 KiB block of a pending snapshot (checksums are the caller's job).
    pub async fn put_block(&self, snapshot_id: &str, index: u64, data: Vec<u8>) -> Result<()> {
        let manifest = self.pending_direct(snapshot_id)?;
        check_index(&manifest, index)?;
        if data.len() as u64 != EBS_BLOCK_SIZE {
            return Err(Error::BlockSize {
                expected: EBS_BLOCK_SIZE as usize,
                got: data.len(),
            });
        }
        let _gc = self.inner.gc_lock.read().await;
        let (_, hash, stored) = self.store_chunk(index, data).await?;
        let mut snapshots = self.snapshots_guard();
        let entry = snapshots
            .get_mut(snapshot_id)
            .filter(|e| e.manifest.state == SnapshotState::Pending)
            .ok_or_else(|| Error::SnapshotNotPending(snapshot_id.to_string()))?;
        match hash {
            Some(hash) => entry.manifest.chunks.insert(index, hash),
            None => entry.manifest.chunks.remove(&index),
        };
        entry.manifest.stored_bytes += stored;
        entry.written.insert(index);
        if let Some(open) = &mut entry.open {
            open.idle_since = Instant::now();
        }
        Ok(())
    }

    /// Completes a snapshot built with [`Self::put_block`] after checking how many distinct
    /// blocks were written.
    pub async fn complete_snapshot(
        &self,
        snapshot_id: &str,
        changed_blocks_count: u64,
    ) -> Result<()> {
        let manifest = {
            let mut snapshots = self.snapshots_guard();
            let entry = snapshots
                .get_mut(snapshot_id)
                .filter(|e| e.manifest.state == SnapshotState::Pending && e.open.is_some())
                .ok_or_else(|| Error::SnapshotNotPending(snapshot_id.to_string()))?;
            let written = entry.written.len() as u64;
            if written != changed_blocks_count {
                return Err(Error::ChangedBlocksCount {
                    expected: changed_blocks_count,
                    got: written,
                });
            }
            let mut manifest = entry.manifest.clone();
            manifest.state = SnapshotState::Completed;
            manifest
        };
        self.inner.objects.put_manifest(&manifest).await?;
        if let Some(entry) = self.snapshots_guard().get_mut(snapshot_id) {
            entry.manifest = manifest;
            entry.open = None;
        }
        Ok(())
    }

    /// Fails the open snapshots that have been idle longer than their timeout at `now`, and
    /// returns their IDs. Their blocks are freed when they are deleted.
    pub async fn expire_idle_snapshots(&self, now: Instant) -> Vec<String> {
        let expired: Vec<Manifest> = {
            let mut snapshots = self.snapshots_guard();
            snapshots
                .values_mut()
                .filter(|e| e.manifest.state == SnapshotState::Pending)
                .filter_map(|entry| {
                    let open = entry.open.as_ref()?;
                    let idle = now.saturating_duration_since(open.idle_since);
                    if idle <= open.timeout {
                        return None;
                    }
                    let minutes = open.timeout.as_secs() / 60;
                    entry.open = None;
                    entry.manifest.state = SnapshotState::Error;
                    entry.manifest.error = Some(format!(
                        "The snapshot was not completed within its timeout of {minutes} minutes."
                    ));
                    Some(entry.manifest.clone())
                })
                .collect()
        };
        for manifest in &expired {
            // A restart fails a pending direct snapshot anyway; this only records why.
            if let Err(error) = self.inner.objects.put_manifest(manifest).await {
                tracing::warn!(snapshot = %manifest.id, %error, "expired snapshot not recorded");
            }
        }
        expired.into_iter().map(|m| m.id).collect()
    }

    /// The non-zero blocks of a completed snapshot, in index order.
    pub fn list_blocks(&self, snapshot_id: &str) -> Result<Vec<BlockRef>> {
        let manifest = self.completed_manifest(snapshot_id)?;
        Ok(manifest
            .chunks
            .into_iter()
            .map(|(index, hash)| BlockRef { index, hash })
            .collect())
    }

    /// Blocks that differ between two completed snapshots (or all non-zero blocks of
    /// `second` when `first` is `None`), in index order.
    pub fn list_changed_blocks(
        &self,
        first: Option<&str>,
        second: &str,
    ) -> Result<Vec<ChangedBlock>> {
        let second_manifest = self.completed_manifest(second)?;
        let first_chunks = match first {
            Some(first) => {
                let m = self.completed_manifest(first)?;
                if m.chunk_size != second_manifest.chunk_size {
                    return Err(Error::SnapshotsIncompatible(
                        first.to_string(),
                        second.to_string(),
                    ));
                }
                m.chunks
            }
            None => Default::default(),
        };
        let indexes: BTreeSet<u64> = first_chunks
            .keys()
            .chain(second_manifest.chunks.keys())
            .copied()
            .collect();
        Ok(indexes
            .into_iter()
            .filter_map(|index| {
                let a = first_chunks.get(&index);
                let b = second_manifest.chunks.get(&index);
                (a != b).then(|| ChangedBlock {
                    index,
                    first: a.cloned(),
                    second: b.cloned(),
                })
            })
            .collect())
    }

    /// The content of one block of a completed snapshot (zeros where nothing was written).
    pub async fn get_block(&self, snapshot_id: &str, index: u64) -> Result<Vec<u8>> {
        let manifest = self.completed_manifest(snapshot_id)?;
        check_index(&manifest, index)?;
        let block_size = manifest.chunk_size as usize;
        let mut data = match manifest.chunks.get(&index) {
            Some(hash) => self.inner.objects.get_chunk(hash, block_size).await?,
            None => Vec::new(),
        };
        data.resize(block_size, 0);
        Ok(data)
    }
}

fn check_index(manifest: &Manifest, index: u64) -> Result<()> {
    let blocks = manifest.chunk_count();
    if index < blocks {
        Ok(())
    } else {
        Err(Error::BlockOutOfRange { index, blocks })
    }
}
