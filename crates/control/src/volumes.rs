//! EBS volumes: CreateVolume, DescribeVolumes, DeleteVolume, ModifyVolume and
//! DescribeVolumesModifications. Data lives in the block store; this is the resource's life:
//! `creating → available ⇄ in-use → deleting → (gone)`.

use serde::{Deserialize, Serialize};

use crate::filter::{self, Filter, Filterable};
use crate::idempotency::ClientToken;
use crate::pagination::{paginate, PageBounds};
use crate::snapshots::{Snapshot, SnapshotState};
use crate::volume_types::{self, Performance, VolumeType};
use crate::{Control, Error, Resource, ResourceKind, Result, State, Tags};

pub const GIB: u64 = 1024 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Error,
}

impl VolumeState {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeState::Creating => "creating",
            VolumeState::Available => "available",
            VolumeState::InUse => "in-use",
            VolumeState::Deleting => "deleting",
            VolumeState::Error => "error",
        }
    }
}

/// A volume's attachment to an instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    /// attaching | attached | detaching
    pub state: String,
    pub attach_time: i64,
    pub delete_on_termination: bool,
}

/// The last ModifyVolume of a volume, as DescribeVolumesModifications reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Modification {
    pub state: String,
    pub original_size_gib: u64,
    pub original_type: VolumeType,
    pub original_performance: Performance,
    pub target_size_gib: u64,
    pub target_type: VolumeType,
    pub target_performance: Performance,
    pub start_time: i64,
    pub end_time: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Volume {
    pub volume_id: String,
    pub size_gib: u64,
    pub snapshot_id: Option<String>,
    pub availability_zone: String,
    pub state: VolumeState,
    pub create_time: i64,
    pub volume_type: VolumeType,
    pub performance: Performance,
    /// Whether the caller provisioned IOPS/throughput (reported only then, for types that allow it).
    pub iops_provisioned: bool,
    pub attachments: Vec<Attachment>,
    pub modification: Option<Modification>,
    pub tags: Tags,
}

impl Volume {
    pub fn size_bytes(&self) -> u64 {
        self.size_gib * GIB
    }

    /// IOPS as DescribeVolumes shows them: every type but standard reports its IOPS.
    pub fn reported_iops(&self) -> Option<u64> {
        (self.volume_type != VolumeType::Standard).then_some(self.performance.iops)
    }

    pub fn reported_throughput(&self) -> Option<u64> {
        (self.volume_type == VolumeType::Gp3).then_some(self.performance.throughput_mib)
    }
}

impl Filterable for Volume {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let one = |v: String| Some(vec![v]);
        let attachments =
            |f: &dyn Fn(&Attachment) -> String| Some(self.attachments.iter().map(f).collect());
        match name {
            "volume-id" => one(self.volume_id.clone()),
            "size" => one(self.size_gib.to_string()),
            "snapshot-id" => one(self.snapshot_id.clone().unwrap_or_default()),
            "availability-zone" => one(self.availability_zone.clone()),
            "status" => one(self.state.as_str().to_owned()),
            "create-time" => one(nimbus_core::iso8601_millis(self.create_time)),
            "volume-type" => one(self.volume_type.as_str().to_owned()),
            "iops" => one(self
                .reported_iops()
                .map(|v| v.to_string())
                .unwrap_or_default()),
            "throughput" => one(self
                .reported_throughput()
                .map(|v| v.to_string())
                .unwrap_or_default()),
            "encrypted" | "fast-restored" | "multi-attach-enabled" => one("false".into()),
            "attachment.instance-id" => attachments(&|a| a.instance_id.clone()),
            "attachment.device" => attachments(&|a| a.device.clone()),
            "attachment.status" => attachments(&|a| a.state.clone()),
            "attachment.attach-time" => {
                attachments(&|a| nimbus_core::iso8601_millis(a.attach_time))
            }
            "attachment.delete-on-termination" => {
                attachments(&|a| a.delete_on_termination.to_string())
            }
            _ => None,
        }
    }
    fn tags(&self) -> Option<&Tags> {
        Some(&self.tags)
    }
}

crate::resource!(Volume, ResourceKind::Volume, volume_id, volumes);

/// What CreateVolume asks for, already decoded.
#[derive(Clone, Debug, Default)]
pub struct CreateVolumeRequest {
    pub size_gib: Option<u64>,
    pub snapshot_id: Option<String>,
    pub availability_zone: Option<String>,
    pub volume_type: Option<String>,
    pub iops: Option<u64>,
    pub throughput: Option<u64>,
    pub encrypted: bool,
    pub tags: Tags,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

/// What ModifyVolume asks for.
#[derive(Clone, Debug, Default)]
pub struct ModifyVolumeRequest {
    pub size_gib: Option<u64>,
    pub volume_type: Option<String>,
    pub iops: Option<u64>,
    pub throughput: Option<u64>,
    pub dry_run: bool,
}

impl Control {
    /// Records the volume as `creating`; the reconciler creates its data and makes it `available`.
    pub fn create_volume(&self, request: CreateVolumeRequest) -> Result<Volume> {
        if request.encrypted {
            return Err(Error::Unsupported(
                "Encrypted volumes are not supported by nimbus yet (encryption at rest is planned).".into(),
            ));
        }
        let zone = request
            .availability_zone
            .clone()
            .ok_or_else(|| Error::MissingParameter("AvailabilityZone".into()))?;
        if !self.config().zones.contains(&zone) {
            return Err(Error::InvalidZone(zone));
        }
        let volume_type = VolumeType::parse(request.volume_type.as_deref().unwrap_or("gp2"))?;
        self.mutate(|txn| {
            if let Some(token) = &request.client_token {
                if let Some(previous) = token.replay(txn.state())? {
                    let id = previous.as_str().unwrap_or_default();
                    return txn.state().get::<Volume>(id).cloned().ok_or_else(|| Error::NotFound {
                        kind: ResourceKind::Volume,
                        id: id.to_owned(),
                    });
                }
            }
            let snapshot_size = match &request.snapshot_id {
                Some(id) => {
                    let snapshot = txn.state().get::<Snapshot>(id).ok_or_else(|| Error::NotFound {
                        kind: ResourceKind::Snapshot,
                        id: id.clone(),
                    })?;
                    if snapshot.state != SnapshotState::Completed {
                        return Err(Error::IncorrectState(format!("Snapshot {id} is not completed yet.")));
                    }
                    Some(snapshot.volume_size_gib)
                }
                None => None,
            };
            let size_gib = match (request.size_gib, snapshot_size) {
                (Some(size), Some(minimum)) if size < minimum => {
                    return Err(Error::InvalidParameterValue(format!(
                        "Volume of {size}GiB is smaller than snapshot {}, expect size >= {minimum}GiB",
                        request.snapshot_id.as_deref().unwrap_or_default()
                    )))
                }
                (Some(size), _) => size,
                (None, Some(size)) => size,
                (None, None) => {
                    return Err(Error::MissingParameter("size or snapshotId".into()));
                }
            };
            let performance = volume_types::validate(volume_type, size_gib, request.iops, request.throughput)?;
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            let volume = Volume {
                volume_id: nimbus_core::new_id("vol"),
                size_gib,
                snapshot_id: request.snapshot_id.clone(),
                availability_zone: zone.clone(),
                state: VolumeState::Creating,
                create_time: nimbus_core::now_millis(),
                volume_type,
                performance,
                iops_provisioned: request.iops.is_some(),
                attachments: Vec::new(),
                modification: None,
                tags: request.tags.clone(),
            };
            if let Some(token) = &request.client_token {
                token.remember(txn, serde_json::Value::String(volume.volume_id.clone()))?;
            }
            txn.put(volume.clone())?;
            Ok(volume)
        })
        .inspect(|_| self.wake_reconciler())
    }

    pub fn describe_volumes(
        &self,
        ids: &[String],
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<Volume>, Option<String>)> {
        if !ids.is_empty() && max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter volumeSet cannot be used with the parameter maxResults".into(),
            ));
        }
        let state = self.read();
        let found = select_by_ids(&state, ids, filters)?;
        paginate(
            found,
            |v: &Volume| v.volume_id.as_str(),
            max_results,
            next_token,
            PageBounds { min: 5, max: 500 },
        )
    }

    /// Marks the volume `deleting`; the reconciler frees its data and forgets it.
    pub fn delete_volume(&self, id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let mut volume = existing::<Volume>(txn.state(), id)?.clone();
            match volume.state {
                VolumeState::Available | VolumeState::Error => {}
                // As in EC2: only a volume whose creation finished (or failed) can be deleted.
                VolumeState::Creating => {
                    return Err(Error::IncorrectState(format!(
                        "The volume '{id}' is in the 'creating' state."
                    )))
                }
                VolumeState::InUse => {
                    return Err(Error::VolumeInUse(format!(
                        "Volume {id} is currently attached to {}",
                        attached_to(&volume)
                    )))
                }
                VolumeState::Deleting => {
                    return Err(Error::IncorrectState(format!(
                        "The volume '{id}' is already being deleted."
                    )))
                }
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            volume.state = VolumeState::Deleting;
            txn.put(volume)
        })
        .inspect(|_| self.wake_reconciler())
    }

    /// Validates a modification and records it as `modifying`; the reconciler applies it
    /// (online growth included) and moves it to `completed`.
    pub fn modify_volume(&self, id: &str, request: ModifyVolumeRequest) -> Result<Volume> {
        self.mutate(|txn| {
            let mut volume = existing::<Volume>(txn.state(), id)?.clone();
            if !matches!(volume.state, VolumeState::Available | VolumeState::InUse) {
                return Err(Error::IncorrectState(format!(
                    "Volume {id} is in state {} and cannot be modified.",
                    volume.state.as_str()
                )));
            }
            if volume
                .modification
                .as_ref()
                .is_some_and(|m| m.state == "modifying")
            {
                return Err(Error::IncorrectModificationState(format!(
                    "Volume {id} is already being modified."
                )));
            }
            let target_type = match &request.volume_type {
                Some(name) => VolumeType::parse(name)?,
                None => volume.volume_type,
            };
            let target_size = request.size_gib.unwrap_or(volume.size_gib);
            if target_size < volume.size_gib {
                return Err(Error::InvalidParameterValue(format!(
                    "New size cannot be smaller than existing size {} GiB.",
                    volume.size_gib
                )));
            }
            if request.size_gib.is_none()
                && request.volume_type.is_none()
                && request.iops.is_none()
                && request.throughput.is_none()
            {
                return Err(Error::MissingParameter(
                    "size, volumeType, iops or throughput".into(),
                ));
            }
            // Keep provisioned figures that still apply to the target type.
            let keeps_provisioning = target_type == volume.volume_type && volume.iops_provisioned;
            let iops = request
                .iops
                .or(keeps_provisioning.then_some(volume.performance.iops));
            let throughput = request
                .throughput
                .or((keeps_provisioning && target_type == VolumeType::Gp3)
                    .then_some(volume.performance.throughput_mib));
            let performance = volume_types::validate(target_type, target_size, iops, throughput)?;
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            volume.modification = Some(Modification {
                state: "modifying".into(),
                original_size_gib: volume.size_gib,
                original_type: volume.volume_type,
                original_performance: volume.performance,
                target_size_gib: target_size,
                target_type,
                target_performance: performance,
                start_time: nimbus_core::now_millis(),
                end_time: None,
            });
            volume.iops_provisioned |= request.iops.is_some();
            txn.put(volume.clone())?;
            Ok(volume)
        })
        .inspect(|_| self.wake_reconciler())
    }

    pub fn describe_volumes_modifications(
        &self,
        ids: &[String],
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<Volume>, Option<String>)> {
        let state = self.read();
        let found: Vec<Volume> = select_by_ids::<Volume>(&state, ids, &[])?
            .into_iter()
            .filter(|v| v.modification.is_some())
            .filter(|v| modification_matches(v, filters))
            .collect();
        for filter in filters {
            if !MODIFICATION_FILTERS.contains(&filter.name.as_str()) {
                return Err(Error::InvalidParameterValue(format!(
                    "The filter '{}' is invalid",
                    filter.name
                )));
            }
        }
        paginate(
            found,
            |v: &Volume| v.volume_id.as_str(),
            max_results,
            next_token,
            PageBounds { min: 1, max: 500 },
        )
    }
}

const MODIFICATION_FILTERS: &[&str] = &[
    "modification-state",
    "volume-id",
    "target-size",
    "target-volume-type",
    "target-iops",
    "original-size",
    "original-volume-type",
    "original-iops",
];

fn modification_matches(volume: &Volume, filters: &[Filter]) -> bool {
    let Some(m) = &volume.modification else {
        return false;
    };
    filters.iter().all(|f| {
        let value = match f.name.as_str() {
            "modification-state" => m.state.clone(),
            "volume-id" => volume.volume_id.clone(),
            "target-size" => m.target_size_gib.to_string(),
            "target-volume-type" => m.target_type.as_str().to_owned(),
            "target-iops" => m.target_performance.iops.to_string(),
            "original-size" => m.original_size_gib.to_string(),
            "original-volume-type" => m.original_type.as_str().to_owned(),
            "original-iops" => m.original_performance.iops.to_string(),
            _ => return false,
        };
        f.values.iter().any(|p| filter::wildcard_match(p, &value))
    })
}

fn attached_to(volume: &Volume) -> String {
    volume
        .attachments
        .iter()
        .map(|a| a.instance_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The resource `id` of type `T`, or the NotFound error EC2 gives.
pub fn existing<'a, T: Resource>(state: &'a State, id: &str) -> Result<&'a T> {
    state.get::<T>(id).ok_or_else(|| Error::NotFound {
        kind: T::KIND,
        id: id.to_owned(),
    })
}

/// Resources named by `ids` (all must exist) or all of them, passing `filters`, sorted by ID.
pub fn select_by_ids<T: Resource>(
    state: &State,
    ids: &[String],
    filters: &[Filter],
) -> Result<Vec<T>> {
    if let Some(sample) = T::table(state).values().next() {
        filter::validate_filters(filters, sample)?;
    }
    for id in ids {
        existing::<T>(state, id)?;
    }
    Ok(T::table(state)
        .values()
        .filter(|item| ids.is_empty() || ids.iter().any(|id| id == item.id()))
        .filter(|item| filter::matches(*item, filters))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::{CreateVolumeRequest, ModifyVolumeRequest, VolumeState, GIB};
    use crate::testkit::Harness;
    use crate::Error;

    #[tokio::test]
    async fn a_volume_is_created_then_deleted() {
        let h = Harness::new().await;
        let id = h.create_volume();
        assert_eq!(h.control.read().volumes[&id].state, VolumeState::Creating);
        h.settle().await;
        assert_eq!(h.control.read().volumes[&id].state, VolumeState::Available);
        assert_eq!(h.blocks.volume_size(&id), Some(GIB));
        h.control.delete_volume(&id, false).unwrap();
        let again = h.control.delete_volume(&id, false);
        assert!(matches!(again, Err(Error::IncorrectState(_))), "{again:?}");
        h.settle().await;
        assert!(!h.control.read().volumes.contains_key(&id));
        assert_eq!(h.blocks.volume_size(&id), None);
    }

    #[tokio::test]
    async fn a_creating_volume_cannot_be_deleted_yet() {
        let h = Harness::new().await;
        let id = h.create_volume();
        let refused = h.control.delete_volume(&id, false);
        assert!(
            matches!(refused, Err(Error::IncorrectState(_))),
            "{refused:?}"
        );
        h.settle().await;
        assert_eq!(h.control.read().volumes[&id].state, VolumeState::Available);
    }

    #[tokio::test]
    async fn an_attached_volume_cannot_be_deleted() {
        let h = Harness::new().await;
        let instance = h.run_instance();
        h.settle().await;
        let root = &instance.disks[0].volume_id;
        let refused = h.control.delete_volume(root, false);
        assert!(matches!(refused, Err(Error::VolumeInUse(_))), "{refused:?}");
    }

    #[tokio::test]
    async fn a_volume_from_a_snapshot_takes_its_size() {
        let h = Harness::new().await;
        let source = h.create_volume();
        h.settle().await;
        let snapshot = h.snapshot(&source).await.unwrap();
        h.settle().await;
        let request = CreateVolumeRequest {
            snapshot_id: Some(snapshot.snapshot_id.clone()),
            availability_zone: Some("us-east-1b".into()),
            ..CreateVolumeRequest::default()
        };
        let id = h.control.create_volume(request).unwrap().volume_id;
        h.settle().await;
        let volume = h.control.read().volumes[&id].clone();
        assert_eq!((volume.state, volume.size_gib), (VolumeState::Available, 1));
        let smaller = CreateVolumeRequest {
            snapshot_id: Some(snapshot.snapshot_id),
            size_gib: Some(0),
            availability_zone: Some("us-east-1b".into()),
            ..CreateVolumeRequest::default()
        };
        let refused = h.control.create_volume(smaller);
        assert!(
            matches!(refused, Err(Error::InvalidParameterValue(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn a_modification_grows_the_volume_and_completes() {
        let h = Harness::new().await;
        let id = h.create_volume();
        h.settle().await;
        let request = ModifyVolumeRequest {
            size_gib: Some(3),
            ..ModifyVolumeRequest::default()
        };
        h.control.modify_volume(&id, request.clone()).unwrap();
        let refused = h.control.modify_volume(&id, request);
        assert!(
            matches!(refused, Err(Error::IncorrectModificationState(_))),
            "{refused:?}"
        );
        h.settle().await;
        let volume = h.control.read().volumes[&id].clone();
        assert_eq!(volume.size_gib, 3);
        assert_eq!(
            volume.modification.map(|m| m.state),
            Some("completed".into())
        );
        assert_eq!(h.blocks.volume_size(&id), Some(3 * GIB));
    }

    #[tokio::test]
    async fn volumes_of_an_instance_terminated_while_pending_are_settled() {
        let h = Harness::new().await;
        let instance = h.run_instance();
        let root = instance.disks[0].volume_id.clone();
        h.control
            .terminate_instances(std::slice::from_ref(&instance.instance_id), false)
            .unwrap();
        h.settle().await;
        assert!(!h.control.read().volumes.contains_key(&root));
        assert_eq!(h.blocks.volume_size(&root), None, "no data left behind");
        assert_eq!(h.hypervisor.launches(), 0);
    }
}
