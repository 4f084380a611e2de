//! EBS snapshots: CreateSnapshot (instant; data persisted in the background), DescribeSnapshots,
//! DeleteSnapshot, CopySnapshot. Life: `pending → completed` (or `error`).

use serde::{Deserialize, Serialize};

pub use blockstore::SnapshotState;

use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::images::ImageQueries;
use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::permissions::Permissions;
use crate::volumes::{Volume, VolumeState};
use crate::{Control, Error, Result, State, Tags};

/// DescribeSnapshots's MaxResults bounds.
const DESCRIBE_SNAPSHOTS_PAGING: Paging = Paging::within_without_ids(5, 1000, "snapshotSet");

/// What CreateSnapshots asks for.
pub struct InstanceSnapshotsRequest {
    pub instance_id: String,
    pub exclude_boot_volume: bool,
    pub excluded_volume_ids: Vec<String>,
    pub description: String,
    /// Tags of every snapshot (over its volume's, with `copy_volume_tags`).
    pub tags: Tags,
    /// `CopyTagsFromSource=volume`.
    pub copy_volume_tags: bool,
    pub dry_run: bool,
}

/// One volume to capture, with its snapshot's description and tags.
pub(crate) struct VolumeSnapshot {
    pub volume: Volume,
    pub description: String,
    pub tags: Tags,
}

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
    /// Who besides the account may make volumes of it. Absent in older records: nobody.
    #[serde(default)]
    pub create_volume_permissions: Permissions,
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
    /// Refuses `count` more snapshots past the account's limit. Snapshots are checked before
    /// the block store starts them, since that work precedes the record.
    pub(crate) fn check_snapshot_room(&self, state: &State, count: u64) -> Result<()> {
        let used = state.snapshots().len() as u64;
        limits::check(
            Limit::Snapshots,
            used,
            count,
            self.config().limits.snapshots,
        )
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
        let volume = existing::<Volume>(&self.read(), volume_id)?.clone();
        let request = VolumeSnapshot {
            volume,
            description,
            tags,
        };
        let mut taken = self.snapshot_volumes(vec![request], dry_run).await?;
        Ok(taken.remove(0))
    }

    /// Captures `requests`' volumes at one instant (a crash-consistent set: the block store
    /// holds every volume's writes before it freezes the first) and records one `pending`
    /// snapshot of each, in one transaction; the reconciler follows the uploads.
    pub(crate) async fn snapshot_volumes(
        &self,
        requests: Vec<VolumeSnapshot>,
        dry_run: bool,
    ) -> Result<Vec<Snapshot>> {
        self.check_snapshot_room(&self.read(), requests.len() as u64)?;
        for VolumeSnapshot { volume, .. } in &requests {
            if !matches!(volume.state, VolumeState::Available | VolumeState::InUse) {
                return Err(Error::IncorrectState(format!(
                    "Volume {} is in state {} and cannot be snapshotted.",
                    volume.volume_id,
                    volume.state.as_str()
                )));
            }
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let start_time = nimbus_core::now_millis();
        let snapshots: Vec<Snapshot> = (requests.into_iter())
            .map(|request| Snapshot {
                snapshot_id: nimbus_core::new_id("snap"),
                volume_id: request.volume.volume_id,
                volume_size_gib: request.volume.size_gib,
                state: SnapshotState::Pending,
                progress: 0,
                start_time,
                description: request.description,
                source: SnapshotSource::Volume,
                state_message: None,
                tags: request.tags,
                create_volume_permissions: Default::default(),
            })
            .collect();
        let pairs: Vec<(String, String)> = (snapshots.iter())
            .map(|s| (s.snapshot_id.clone(), s.volume_id.clone()))
            .collect();
        self.engine()
            .create_snapshots(&pairs)
            .await
            .map_err(engine_error)?;
        self.mutate(|txn| {
            for snapshot in &snapshots {
                txn.put(snapshot.clone())?;
            }
            Ok(())
        })?;
        self.wake_reconciler();
        Ok(snapshots)
    }

    /// A copy's `SourceRegion`: nimbus serves one region, so a copy from another is refused
    /// by name.
    pub(crate) fn check_source_region(&self, source_region: &str) -> Result<()> {
        let region = &self.config().region;
        if source_region == region {
            Ok(())
        } else {
            Err(Error::unsupported_parameter(&format!(
                "SourceRegion={source_region} (nimbus serves the one region {region})"
            )))
        }
    }

    /// CreateSnapshots: the instance's volumes (less the boot volume or the data volumes
    /// excluded) at one instant, one snapshot each.
    pub async fn create_instance_snapshots(
        &self,
        request: InstanceSnapshotsRequest,
    ) -> Result<Vec<Snapshot>> {
        let requests = {
            let state = self.read();
            let instance = existing::<Instance>(&state, &request.instance_id)?;
            if !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Stopped | InstanceState::Stopping
            ) {
                return Err(Error::IncorrectInstanceState(format!(
                    "Instance '{}' is not 'running' or 'stopped'.",
                    instance.instance_id
                )));
            }
            if let Some(stranger) = (request.excluded_volume_ids.iter())
                .find(|id| !instance.disks.iter().any(|d| d.volume_id == **id))
            {
                return Err(Error::InvalidParameterValue(format!(
                    "The volume {stranger} in ExcludeDataVolumeIds is not attached to {}.",
                    instance.instance_id
                )));
            }
            let taken = (instance.disks.iter())
                .filter(|d| {
                    !(request.exclude_boot_volume && d.device_name == instance.root_device_name)
                })
                .filter(|d| !request.excluded_volume_ids.contains(&d.volume_id));
            let mut requests = Vec::new();
            for disk in taken {
                let volume = existing::<Volume>(&state, &disk.volume_id)?.clone();
                let mut tags = if request.copy_volume_tags {
                    volume.tags.clone()
                } else {
                    Tags::new()
                };
                tags.extend(request.tags.clone());
                requests.push(VolumeSnapshot {
                    volume,
                    description: request.description.clone(),
                    tags,
                });
            }
            requests
        };
        if requests.is_empty() {
            return Err(Error::InvalidParameterValue(format!(
                "Instance {} has no volume left to snapshot once the exclusions are applied.",
                request.instance_id
            )));
        }
        self.snapshot_volumes(requests, request.dry_run).await
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
        self.check_source_region(source_region)?;
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
            create_volume_permissions: Default::default(),
        };
        self.mutate(|txn| {
            self.check_snapshot_room(txn.state(), 1)?;
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
            matches!(&elsewhere, Err(Error::Unsupported(m)) if m.contains("SourceRegion")),
            "{elsewhere:?}"
        );
    }

    fn instance_snapshots(instance_id: &str) -> super::InstanceSnapshotsRequest {
        super::InstanceSnapshotsRequest {
            instance_id: instance_id.into(),
            exclude_boot_volume: false,
            excluded_volume_ids: Vec::new(),
            description: "set".into(),
            tags: [("set".to_string(), "1".to_string())].into(),
            copy_volume_tags: true,
            dry_run: false,
        }
    }

    #[tokio::test]
    async fn an_instance_s_volumes_are_snapshotted_together_with_exclusions() {
        let h = Harness::new().await;
        let instance = h.run_instance().instance_id;
        h.settle().await;
        let root = h.instance(&instance).disks[0].volume_id.clone();
        h.control
            .change_existing::<crate::volumes::Volume>(&root, false, |v| {
                v.tags.insert("role".into(), "root".into());
                Ok(())
            })
            .unwrap();
        let taken = h
            .control
            .create_instance_snapshots(instance_snapshots(&instance))
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].volume_id, root);
        let tags: Vec<(&str, &str)> = (taken[0].tags.iter())
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(tags, [("role", "root"), ("set", "1")]);
        let no_boot = super::InstanceSnapshotsRequest {
            exclude_boot_volume: true,
            ..instance_snapshots(&instance)
        };
        let refused = h.control.create_instance_snapshots(no_boot).await;
        assert!(
            matches!(refused, Err(Error::InvalidParameterValue(_))),
            "{refused:?}"
        );
        let stranger = super::InstanceSnapshotsRequest {
            excluded_volume_ids: vec![h.create_volume()],
            ..instance_snapshots(&instance)
        };
        let refused = h.control.create_instance_snapshots(stranger).await;
        assert!(
            matches!(refused, Err(Error::InvalidParameterValue(_))),
            "{refused:?}"
        );
        h.settle().await;
        assert_eq!(
            h.control.read().snapshots()[&taken[0].snapshot_id].state,
            SnapshotState::Completed
        );
    }

    #[tokio::test]
    async fn a_copied_image_has_copies_of_its_snapshots_and_becomes_available() {
        let h = Harness::new().await;
        let request = |name: &str, region: &str| crate::images::CopyImageRequest {
            source_image_id: h.image_id.clone(),
            source_region: region.into(),
            name: name.into(),
            description: None,
            copy_image_tags: false,
            image_tags: Default::default(),
            snapshot_tags: Default::default(),
            client_token: None,
            dry_run: false,
        };
        let elsewhere = h.control.copy_image(request("copy", "eu-west-1")).await;
        assert!(
            matches!(elsewhere, Err(Error::Unsupported(_))),
            "{elsewhere:?}"
        );
        let copy = h
            .control
            .copy_image(request("copy", "us-east-1"))
            .await
            .unwrap();
        assert_eq!(copy.state, crate::images::ImageState::Pending);
        let source = h.control.read().images()[&h.image_id].clone();
        assert_ne!(
            copy.block_devices[0].snapshot_id,
            source.block_devices[0].snapshot_id
        );
        h.settle().await;
        assert_eq!(
            h.control.read().images()[&copy.image_id].state,
            crate::images::ImageState::Available
        );
        let twice = h.control.copy_image(request("copy", "us-east-1")).await;
        assert!(
            matches!(twice, Err(Error::DuplicateImageName(_))),
            "{twice:?}"
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
