//! The EBS direct APIs' rules: snapshots written block by block (StartSnapshot,
//! PutSnapshotBlock, CompleteSnapshot) and the block listings and reads of any snapshot.
//! Blocks are 512 KiB, as in AWS.

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::describe::existing;
use crate::idempotency::ClientToken;
use crate::snapshots::{engine_error, Snapshot, SnapshotSource, SnapshotState};
use crate::{Control, Error, Result, Tags};

pub const BLOCK_SIZE: u64 = 512 * 1024;
/// AWS's limit for a snapshot started with the EBS direct APIs: 64 TiB.
const MAX_VOLUME_SIZE_GIB: u64 = 64 * 1024;
/// StartSnapshot's default `Timeout`: an open snapshot idle this long fails, as in AWS.
const DEFAULT_TIMEOUT_MINUTES: u64 = 60;

#[derive(Clone, Debug, Serialize)]
pub struct BlockEntry {
    pub index: u64,
    pub token: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChangedBlock {
    pub index: u64,
    pub first_token: Option<String>,
    pub second_token: Option<String>,
}

/// A page of blocks and the index to continue from.
pub struct BlockPage<T> {
    pub blocks: Vec<T>,
    pub next_index: Option<u64>,
    pub volume_size_gib: u64,
}

fn page<T>(
    mut items: Vec<T>,
    index_of: impl Fn(&T) -> u64,
    start: u64,
    max: usize,
    volume_size_gib: u64,
) -> BlockPage<T> {
    items.retain(|item| index_of(item) >= start);
    let next_index = items.get(max).map(&index_of);
    items.truncate(max);
    BlockPage {
        blocks: items,
        next_index,
        volume_size_gib,
    }
}

impl Control {
    pub async fn start_direct_snapshot(
        &self,
        volume_size_gib: u64,
        parent: Option<&str>,
        description: String,
        tags: Tags,
        client_token: Option<ClientToken>,
        timeout_minutes: Option<u64>,
    ) -> Result<Snapshot> {
        if volume_size_gib == 0 || volume_size_gib > MAX_VOLUME_SIZE_GIB {
            return Err(Error::InvalidParameterValue(format!(
                "The volume size must be between 1 and {MAX_VOLUME_SIZE_GIB} GiB."
            )));
        }
        if let Some(token) = &client_token {
            if let Some(previous) = token.replay(&self.read())? {
                let id = previous.as_str().unwrap_or_default().to_owned();
                return Ok(existing::<Snapshot>(&self.read(), &id)?.clone());
            }
        }
        self.check_snapshot_room(&self.read(), 1)?;
        if let Some(parent) = parent {
            let parent_snapshot = existing::<Snapshot>(&self.read(), parent)?.clone();
            if parent_snapshot.state != SnapshotState::Completed {
                return Err(Error::IncorrectState(format!(
                    "The parent snapshot {parent} is not completed."
                )));
            }
            if parent_snapshot.volume_size_gib > volume_size_gib {
                return Err(Error::InvalidParameterValue(
                    "The volume size cannot be smaller than the parent snapshot's.".into(),
                ));
            }
        }
        let timeout = Duration::from_secs(60 * timeout_minutes.unwrap_or(DEFAULT_TIMEOUT_MINUTES));
        let snapshot = Snapshot {
            snapshot_id: nimbus_core::new_id("snap"),
            volume_id: "vol-ffffffff".into(),
            volume_size_gib,
            state: SnapshotState::Pending,
            progress: 0,
            start_time: nimbus_core::now_millis(),
            description,
            source: SnapshotSource::Direct,
            state_message: None,
            tags,
            create_volume_permissions: Default::default(),
        };
        self.engine()
            .start_snapshot(&snapshot.snapshot_id, volume_size_gib, parent, timeout)
            .await
            .map_err(engine_error)?;
        self.mutate(|txn| {
            if let Some(token) = &client_token {
                token.remember(txn, serde_json::Value::String(snapshot.snapshot_id.clone()))?;
            }
            Ok(txn.put(snapshot.clone())?)
        })?;
        Ok(snapshot)
    }

    fn direct_snapshot(&self, id: &str) -> Result<Snapshot> {
        let snapshot = existing::<Snapshot>(&self.read(), id)?.clone();
        if snapshot.source != SnapshotSource::Direct || snapshot.state != SnapshotState::Pending {
            return Err(Error::IncorrectState(format!(
                "Snapshot {id} does not accept blocks (it is not an open direct snapshot)."
            )));
        }
        Ok(snapshot)
    }

    /// Stores one block after checking its SHA-256 checksum (base64) and length.
    pub async fn put_snapshot_block(
        &self,
        id: &str,
        index: u64,
        data: &[u8],
        checksum_base64: &str,
    ) -> Result<String> {
        let snapshot = self.direct_snapshot(id)?;
        if data.len() as u64 != BLOCK_SIZE {
            return Err(Error::InvalidParameterValue(format!(
                "The block must be exactly {BLOCK_SIZE} bytes."
            )));
        }
        if index >= snapshot.volume_size_gib * crate::volumes::GIB / BLOCK_SIZE {
            return Err(Error::InvalidParameterValue(format!(
                "Block index {index} is beyond the end of the volume."
            )));
        }
        let actual = base64_encode(&Sha256::digest(data));
        if actual != checksum_base64 {
            return Err(Error::InvalidParameterValue(
                "The checksum of the block data does not match x-amz-Checksum.".into(),
            ));
        }
        self.engine()
            .put_block(id, index, data.to_vec())
            .await
            .map_err(engine_error)?;
        Ok(actual)
    }

    pub async fn complete_direct_snapshot(
        &self,
        id: &str,
        changed_blocks: u64,
    ) -> Result<SnapshotState> {
        self.direct_snapshot(id)?;
        self.engine()
            .complete_snapshot(id, changed_blocks)
            .await
            .map_err(engine_error)?;
        self.wake_reconciler();
        Ok(SnapshotState::Pending)
    }

    fn readable_snapshot(&self, id: &str) -> Result<Snapshot> {
        let snapshot = existing::<Snapshot>(&self.read(), id)?.clone();
        if snapshot.state != SnapshotState::Completed {
            return Err(Error::IncorrectState(format!(
                "Snapshot {id} is not completed."
            )));
        }
        Ok(snapshot)
    }

    pub fn list_snapshot_blocks(
        &self,
        id: &str,
        start: u64,
        max: usize,
    ) -> Result<BlockPage<BlockEntry>> {
        let snapshot = self.readable_snapshot(id)?;
        let blocks = self
            .engine()
            .list_blocks(id)
            .map_err(engine_error)?
            .into_iter()
            .map(|block| BlockEntry {
                index: block.index,
                token: block.hash,
            })
            .collect();
        Ok(page(
            blocks,
            |b: &BlockEntry| b.index,
            start,
            max,
            snapshot.volume_size_gib,
        ))
    }

    pub fn list_changed_blocks(
        &self,
        first: Option<&str>,
        second: &str,
        start: u64,
        max: usize,
    ) -> Result<BlockPage<ChangedBlock>> {
        let snapshot = self.readable_snapshot(second)?;
        if let Some(first) = first {
            self.readable_snapshot(first)?;
        }
        let blocks = self
            .engine()
            .list_changed_blocks(first, second)
            .map_err(engine_error)?
            .into_iter()
            .map(|block| ChangedBlock {
                index: block.index,
                first_token: block.first,
                second_token: block.second,
            })
            .collect();
        Ok(page(
            blocks,
            |b: &ChangedBlock| b.index,
            start,
            max,
            snapshot.volume_size_gib,
        ))
    }

    /// One block's data and its base64 SHA-256 checksum. The token (the block's content
    /// address, from a listing) must still name that block.
    pub async fn get_snapshot_block(
        &self,
        id: &str,
        index: u64,
        token: &str,
    ) -> Result<(Vec<u8>, String)> {
        self.readable_snapshot(id)?;
        let current = self.engine().list_blocks(id).map_err(engine_error)?;
        if !current
            .iter()
            .any(|block| block.index == index && block.hash == token)
        {
            return Err(Error::InvalidParameterValue(format!(
                "The block token is not valid for block {index} of {id}."
            )));
        }
        let data = self
            .engine()
            .get_block(id, index)
            .await
            .map_err(engine_error)?;
        let checksum = base64_encode(&Sha256::digest(&data));
        Ok((data, checksum))
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
