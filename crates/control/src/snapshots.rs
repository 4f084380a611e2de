//! EBS snapshots: CreateSnapshot (instant; data persisted in the background), DescribeSnapshots,
//! DeleteSnapshot, CopySnapshot. Life: `pending → completed` (or `error`).

use serde::{Deserialize, Serialize};

pub use blockstore::SnapshotState;

use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::images::ImageQueries;
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::volumes::{Volume, VolumeState};
use crate::{Control, Error, Result, State, Tags};

/// DescribeSnapshots's MaxResults bounds.
const DESCRIBE_SNAPSHOTS_PAGING: Paging = Paging::within_without_ids(5, 1000, "snapshotSet");

/// Where a snapshot's data comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotSource {
    Volume,
    Copy {
        source_snapshot_id: String,
    },
    /// Written block by block through the EBS direct APIs (StartSnapshot / PutSnapshotBlock).
    Direct,
    /// Imported from a built image by `nimbus image build`.
    Image,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub snapshot_id: String,
    /// `vol-ffffffff` for snapshots not taken from a volume, as AWS reports them.
    pub volume_id: String,
    pub volume_size_gib: u64,
    pub state: SnapshotState,
    pub progress: u8,
    pub start_time: i64,
    pub description: String,
    pub source: SnapshotSource,
    pub state_message: Option<String>,
    pub tags: Tags,
}

impl Filterable for Snapshot {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("snapshot-id", |s, _| vec![s.snapshot_id.clone()]),
        ("volume-id", |s, _| vec![s.volume_id.clone()]),
        ("volume-size", |s, _| vec![s.volume_size_gib.to_string()]),
        ("status", |s, _| vec![s.state.as_str().to_owned()]),
        ("progress", |s, _| vec![format!("{}%", s.progress)]),
        ("start-time", |s, _| {
            vec![nimbus_core::iso8601_millis(s.start_time)]
        }),
        ("description", |s, _| vec![s.description.clone()]),
        ("encrypted", |_, _| vec!["false".into()]),
        ("storage-tier", |_, _| vec!["standard".into()]),
        ("owner-alias", |_, _| vec![String::new()]),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
    ];
}

impl Control {
    /// Refuses one more snapshot past the account's limit. CreateSnapshot and StartSnapshot
    /// check before the block store starts the snapshot, since that work precedes the record.
    pub(crate) fn check_snapshot_room(&self, state: &State) -> Result<()> {
        let used = state.snapshots().len() as u64;
        limits::check(Limit::Snapshots, used, 1, self.config().limits.snapshots)
    }

    /// Captures the volume now (the block store freezes its state at once) and records the
    /// snapshot as `pending`; the reconciler follows the upload to `completed`.
    pub async fn create_snapshot(
        &self,
        volume_id: &str,
        description: String,
        tags: Tags,
        dry_run: bool,
    ) -> Result<Snapshot> {
        let volume = {
            let state = self.read();
            let volume = existing::<Volume>(&state, volume_id)?.clone();
            self.check_snapshot_room(&state)?;
            volume
        };
        if !matches!(volume.state, VolumeState::Available | VolumeState::InUse) {
            return Err(Error::IncorrectState(format!(
                "Volume {volume_id} is in state {} and cannot be snapshotted.",
                volume.state.as_str()
            )));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let snapshot = Snapshot {
            snapshot_id: nimbus_core::new_id("snap"),
            volume_id: volume_id.to_owned(),
            volume_size_gib: volume.size_gib,
            state: SnapshotState::Pending,
            progress: 0,
            start_time: nimbus_core::now_millis(),
            description,
            source: SnapshotSource::Volume,
            state_message: None,
            tags,
        };
        self.engine()
            .create_snapshot(&snapshot.snapshot_id, volume_id)
            .await
            .map_err(engine_error)?;
        self.mutate(|txn| Ok(txn.put(snapshot.clone())?))?;
        self.wake_reconciler();
        Ok(snapshot)
    }

    pub fn describe_snapshots(&self, query: &Query, owners: &[String]) -> Result<Page<Snapshot>> {
        // Every snapshot here belongs to the one account: other owners (or `amazon`) own nothing.
        let owned = self.owners_include_account(owners);
        Ok(describe::describe(
            &self.read(),
            self.config(),
            query,
            DESCRIBE_SNAPSHOTS_PAGING,
            |_| owned,
        )?)
    }

    pub async fn delete_snapshot(&self, id: &str, dry_run: bool) -> Result<()> {
        {
            let state = self.read();
            let snapshot = existing::<Snapshot>(&state, id)?;
            if let Some(image) = state.images_using_snapshot(id).next() {
                return Err(Error::SnapshotInUse(format!(
                    "The snapshot {id} is currently in use by {image}"
                )));
            }
            if snapshot.state == SnapshotState::Pending {
                return Err(Error::IncorrectState(format!(
                    "Snapshot {id} is still pending."
                )));
            }
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        self.mutate(|txn| {
            txn.delete::<Snapshot>(id);
            Ok(())
        })?;
        // The record is gone first: if freeing the data fails, the orphaned chunks are
        // collected by the next garbage collection rather than leaving a broken snapshot.
        if let Err(error) = self.engine().delete_snapshot(id).await {
            tracing::warn!(snapshot = id, %error, "snapshot data not freed yet");
        }
        Ok(())
    }

    pub async fn copy_snapshot(
        &self,
        source_id: &str,
        source_region: &str,
        description: Option<String>,
        tags: Tags,
        dry_run: bool,
    ) -> Result<Snapshot> {
        if source_region != self.config().region {
            return Err(Error::InvalidParameterValue(format!(
                "Source region {source_region} is not available in nimbus (only {}).",
                self.config().region
            )));
        }
        let source = existing::<Snapshot>(&self.read(), source_id)?.clone();
        if source.state != SnapshotState::Completed {
            return Err(Error::IncorrectState(format!(
                "Snapshot {source_id} is not completed yet."
            )));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let copy = Snapshot {
            snapshot_id: nimbus_core::new_id("snap"),
            volume_id: "vol-ffffffff".into(),
            volume_size_gib: source.volume_size_gib,
            state: SnapshotState::Pending,
            progress: 0,
            start_time: nimbus_core::now_millis(),
            description: description
                .unwrap_or_else(|| format!("[Copied {source_id} from {source_region}]")),
            source: SnapshotSource::Copy {
                source_snapshot_id: source_id.to_owned(),
            },
            state_message: None,
            tags,
        };
        self.mutate(|txn| {
            self.check_snapshot_room(txn.state())?;
            Ok(txn.put(copy.clone())?)
        })?;
        self.wake_reconciler();
        Ok(copy)
    }
}

pub fn engine_error(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("block store: {error}"))
}

#[cfg(test)]
mod tests {
    use super::SnapshotState;
    use crate::kinds::Tables;
    use crate::testkit::Harness;
    use crate::Error;

    #[tokio::test]
    async fn a_snapshot_is_pending_until_its_upload_completes() {
        let h = Harness::new().await;
        let volume = h.create_volume();
        let refused = h.snapshot(&volume).await;
        assert!(
            matches!(refused, Err(Error::IncorrectState(_))),
            "creating: {refused:?}"
        );
        h.settle().await;
        let snapshot = h
            .control
            .create_snapshot(&volume, "daily".into(), Default::default(), false)
            .await
            .unwrap();
        assert_eq!(snapshot.state, SnapshotState::Pending);
        let refused = h
            .control
            .delete_snapshot(&snapshot.snapshot_id, false)
            .await;
        assert!(
            matches!(refused, Err(Error::IncorrectState(_))),
            "pending: {refused:?}"
        );
        h.settle().await;
        let stored = h.control.read().snapshots()[&snapshot.snapshot_id].clone();
        assert_eq!(
            (stored.state, stored.progress),
            (SnapshotState::Completed, 100)
        );
        h.control
            .delete_snapshot(&snapshot.snapshot_id, false)
            .await
            .unwrap();
        assert!(!h
            .control
            .read()
            .snapshots()
            .contains_key(&snapshot.snapshot_id));
    }

    #[tokio::test]
    async fn a_copy_completes_and_the_source_must_be_completed() {
        let h = Harness::new().await;
        let volume = h.create_volume();
        h.settle().await;
        let source = h.snapshot(&volume).await.unwrap();
        let refused = h.copy(&source.snapshot_id, "us-east-1").await;
        assert!(
            matches!(refused, Err(Error::IncorrectState(_))),
            "{refused:?}"
        );
        h.settle().await;
        let copy = h.copy(&source.snapshot_id, "us-east-1").await.unwrap();
        h.settle().await;
        assert_eq!(
            h.control.read().snapshots()[&copy.snapshot_id].state,
            SnapshotState::Completed
        );
        let elsewhere = h.copy(&source.snapshot_id, "eu-west-1").await;
        assert!(
            matches!(elsewhere, Err(Error::InvalidParameterValue(_))),
            "{elsewhere:?}"
        );
    }

    #[tokio::test]
    async fn a_snapshot_an_image_uses_cannot_be_deleted() {
        let h = Harness::new().await;
        let snapshot_id = h.control.read().images()[&h.image_id].block_devices[0]
            .snapshot_id
            .clone()
            .unwrap();
        let refused = h.control.delete_snapshot(&snapshot_id, false).await;
        assert!(
            matches!(refused, Err(Error::SnapshotInUse(_))),
            "{refused:?}"
        );
    }
}
