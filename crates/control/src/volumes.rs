//! EBS volumes: CreateVolume, DescribeVolumes, DeleteVolume, ModifyVolume and
//! DescribeVolumesModifications. Data lives in the block store; this is the resource's life:
//! `creating → available ⇄ in-use → deleting → (gone)`.

use serde::{Deserialize, Serialize};

use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::idempotency::ClientToken;
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::snapshots::{Snapshot, SnapshotState};
use crate::volume_types::{self, Performance, VolumeType};
use crate::{Control, Error, Result, State, Tags};

/// DescribeVolumes's MaxResults bounds.
const DESCRIBE_VOLUMES_PAGING: Paging = Paging::within_without_ids(5, 500, "volumeSet");
/// DescribeVolumesModifications's MaxResults bounds.
const DESCRIBE_MODIFICATIONS_PAGING: Paging = Paging::within(1, 500);

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

/// Where a volume's attachment to an instance stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
}

impl AttachmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentState::Attaching => "attaching",
            AttachmentState::Attached => "attached",
            AttachmentState::Detaching => "detaching",
        }
    }
}

/// A volume's attachment to an instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    pub state: AttachmentState,
    pub attach_time: i64,
    pub delete_on_termination: bool,
}

/// Where a ModifyVolume stands (`optimizing` is never reported: nimbus applies a
/// modification at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModificationState {
    Modifying,
    Completed,
    Failed,
}

impl ModificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ModificationState::Modifying => "modifying",
            ModificationState::Completed => "completed",
            ModificationState::Failed => "failed",
        }
    }
}

/// The last ModifyVolume of a volume, as DescribeVolumesModifications reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Modification {
    pub state: ModificationState,
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

fn one(value: impl Into<String>) -> Vec<String> {
    vec![value.into()]
}

fn of_attachments(volume: &Volume, field: fn(&Attachment) -> String) -> Vec<String> {
    volume.attachments.iter().map(field).collect()
}

impl Filterable for Volume {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("volume-id", |v, _| one(&v.volume_id)),
        ("size", |v, _| one(v.size_gib.to_string())),
        ("snapshot-id", |v, _| {
            one(v.snapshot_id.clone().unwrap_or_default())
        }),
        ("availability-zone", |v, _| one(&v.availability_zone)),
        ("status", |v, _| one(v.state.as_str())),
        ("create-time", |v, _| {
            one(nimbus_core::iso8601_millis(v.create_time))
        }),
        ("volume-type", |v, _| one(v.volume_type.as_str())),
        ("iops", |v, _| {
            one(v.reported_iops().map(|n| n.to_string()).unwrap_or_default())
        }),
        ("throughput", |v, _| {
            one(v
                .reported_throughput()
                .map(|n| n.to_string())
                .unwrap_or_default())
        }),
        ("encrypted", |_, _| one("false")),
        ("fast-restored", |_, _| one("false")),
        ("multi-attach-enabled", |_, _| one("false")),
        ("attachment.instance-id", |v, _| {
            of_attachments(v, |a| a.instance_id.clone())
        }),
        ("attachment.device", |v, _| {
            of_attachments(v, |a| a.device.clone())
        }),
        ("attachment.status", |v, _| {
            of_attachments(v, |a| a.state.as_str().to_owned())
        }),
        ("attachment.attach-time", |v, _| {
            of_attachments(v, |a| nimbus_core::iso8601_millis(a.attach_time))
        }),
        ("attachment.delete-on-termination", |v, _| {
            of_attachments(v, |a| a.delete_on_termination.to_string())
        }),
    ];
}

/// A volume's last modification, as one row of DescribeVolumesModifications.
#[derive(Clone, Debug)]
pub struct VolumeModification {
    pub volume_id: String,
    pub modification: Modification,
}

impl Filterable for VolumeModification {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("modification-state", |m, _| {
            one(m.modification.state.as_str())
        }),
        ("volume-id", |m, _| one(&m.volume_id)),
        ("target-size", |m, _| {
            one(m.modification.target_size_gib.to_string())
        }),
        ("target-volume-type", |m, _| {
            one(m.modification.target_type.as_str())
        }),
        ("target-iops", |m, _| {
            one(m.modification.target_performance.iops.to_string())
        }),
        ("original-size", |m, _| {
            one(m.modification.original_size_gib.to_string())
        }),
        ("original-volume-type", |m, _| {
            one(m.modification.original_type.as_str())
        }),
        ("original-iops", |m, _| {
            one(m.modification.original_performance.iops.to_string())
        }),
    ];
}

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
    /// Refuses volumes past the account's limits: `adding` new ones (type, GiB), or, with
    /// `replacing`, that volume's new type and size. Volumes are thin, so the host's disk
    /// only has to keep the configured reserve free; sizes count against the limits alone.
    pub(crate) fn check_volume_room(
        &self,
        state: &State,
        adding: &[(VolumeType, u64)],
        replacing: Option<&str>,
    ) -> Result<()> {
        let config = &self.config().limits;
        let others = || {
            state
                .volumes()
                .values()
                .filter(move |v| Some(v.volume_id.as_str()) != replacing)
        };
        limits::check(
            Limit::Volumes,
            others().count() as u64,
            adding.len() as u64,
            config.volumes,
        )?;
        for (volume_type, _) in adding {
            let of_type = |t: &VolumeType| t == volume_type;
            let used = others()
                .filter(|v| of_type(&v.volume_type))
                .map(|v| v.size_gib)
                .sum();
            let more = adding
                .iter()
                .filter(|(t, _)| of_type(t))
                .map(|(_, size)| size)
                .sum();
            let max = config.volume_storage_gib_per_type;
            limits::check(Limit::VolumeStorage(*volume_type), used, more, max)?;
        }
        let free = self.engine().free_bytes().map_err(|error| {
            Error::Internal(format!(
                "cannot read the free space of the data dir: {error}"
            ))
        })?;
        if free < config.free_disk_reserve_gib.saturating_mul(GIB) {
            return Err(Error::InsufficientVolumeCapacity(format!(
                "There is not enough free disk on the host for more volumes ({} MiB free, {} GiB kept in reserve).",
                free / (1024 * 1024),
                config.free_disk_reserve_gib
            )));
        }
        Ok(())
    }

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
            return Err(Error::UnknownZone(zone));
        }
        let volume_type = VolumeType::parse(request.volume_type.as_deref().unwrap_or("gp2"))?;
        self.mutate(|txn| {
            if let Some(token) = &request.client_token {
                if let Some(previous) = token.replay(txn.state())? {
                    let id = previous.as_str().unwrap_or_default();
                    return Ok(existing::<Volume>(txn.state(), id).cloned()?);
                }
            }
            let snapshot_size = match &request.snapshot_id {
                Some(id) => {
                    let snapshot = existing::<Snapshot>(txn.state(), id)?;
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
            self.check_volume_room(txn.state(), &[(volume_type, size_gib)], None)?;
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

    pub fn describe_volumes(&self, query: &Query) -> Result<Page<Volume>> {
        Ok(describe::describe(
            &self.read(),
            self.config(),
            query,
            DESCRIBE_VOLUMES_PAGING,
            |_| true,
        )?)
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
            Ok(txn.put(volume)?)
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
                .is_some_and(|m| m.state == ModificationState::Modifying)
            {
                return Err(Error::ModificationInProgress(format!(
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
            self.check_volume_room(txn.state(), &[(target_type, target_size)], Some(id))?;
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            volume.modification = Some(Modification {
                state: ModificationState::Modifying,
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
        query: &Query,
    ) -> Result<Page<VolumeModification>> {
        let state = self.read();
        for id in &query.ids {
            existing::<Volume>(&state, id)?;
        }
        let rows = state
            .volumes()
            .values()
            .filter(|v| query.ids.is_empty() || query.ids.contains(&v.volume_id))
            .filter_map(|v| {
                Some(VolumeModification {
                    volume_id: v.volume_id.clone(),
                    modification: v.modification.clone()?,
                })
            })
            .collect();
        Ok(describe::describe_rows(
            rows,
            |m| m.volume_id.as_str(),
            self.config(),
            query,
            DESCRIBE_MODIFICATIONS_PAGING,
        )?)
    }
}

fn attached_to(volume: &Volume) -> String {
    volume
        .attachments
        .iter()
        .map(|a| a.instance_id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use nimbus_core::Limits;

    use super::{CreateVolumeRequest, ModificationState, ModifyVolumeRequest, VolumeState, GIB};
    use crate::kinds::Tables;
    use crate::limits::Limit;
    use crate::testkit::Harness;
    use crate::volume_types::VolumeType;
    use crate::Error;

    fn request(size_gib: u64, volume_type: &str) -> CreateVolumeRequest {
        CreateVolumeRequest {
            size_gib: Some(size_gib),
            volume_type: Some(volume_type.into()),
            availability_zone: Some("us-east-1a".into()),
            ..CreateVolumeRequest::default()
        }
    }

    fn refused_limit<T: std::fmt::Debug>(result: crate::Result<T>) -> Limit {
        match result {
            Err(Error::LimitExceeded { limit, .. }) => limit,
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn volumes_are_limited_in_number_and_in_storage_per_type() {
        let h = Harness::with_limits(Limits {
            volumes: 3,
            volume_storage_gib_per_type: 100,
            ..Limits::default()
        })
        .await;
        let create = |size, kind| h.control.create_volume(request(size, kind));
        let big = create(90, "gp3").expect("90 GiB of gp3");
        assert_eq!(
            refused_limit(create(11, "gp3")),
            Limit::VolumeStorage(VolumeType::Gp3)
        );
        create(11, "gp2").expect("gp2 has storage of its own");
        h.settle().await;
        let grow = ModifyVolumeRequest {
            size_gib: Some(101),
            ..ModifyVolumeRequest::default()
        };
        let grown = h.control.modify_volume(&big.volume_id, grow);
        assert_eq!(refused_limit(grown), Limit::VolumeStorage(VolumeType::Gp3));
        create(1, "gp3").expect("the third volume");
        assert_eq!(refused_limit(create(1, "gp2")), Limit::Volumes);
        assert_eq!(h.control.read().volumes().len(), 3);
    }

    #[tokio::test]
    async fn a_volume_is_refused_while_the_disk_is_short_of_its_reserve() {
        let h = Harness::new().await;
        h.blocks.set_free_bytes(GIB - 1);
        let refused = h.control.create_volume(request(1, "gp3"));
        assert!(
            matches!(refused, Err(Error::InsufficientVolumeCapacity(_))),
            "{refused:?}"
        );
        assert!(h.control.read().volumes().is_empty());
        h.blocks.set_free_bytes(GIB);
        // Thin: a volume larger than the free disk is admitted while the reserve is there.
        assert!(h.control.create_volume(request(500, "gp3")).is_ok());
    }

    #[tokio::test]
    async fn a_volume_is_created_then_deleted() {
        let h = Harness::new().await;
        let id = h.create_volume();
        assert_eq!(h.control.read().volumes()[&id].state, VolumeState::Creating);
        h.settle().await;
        assert_eq!(
            h.control.read().volumes()[&id].state,
            VolumeState::Available
        );
        assert_eq!(h.blocks.volume_size(&id), Some(GIB));
        h.control.delete_volume(&id, false).unwrap();
        let again = h.control.delete_volume(&id, false);
        assert!(matches!(again, Err(Error::IncorrectState(_))), "{again:?}");
        h.settle().await;
        assert!(!h.control.read().volumes().contains_key(&id));
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
        assert_eq!(
            h.control.read().volumes()[&id].state,
            VolumeState::Available
        );
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
        let volume = h.control.read().volumes()[&id].clone();
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
            matches!(refused, Err(Error::ModificationInProgress(_))),
            "{refused:?}"
        );
        h.settle().await;
        let volume = h.control.read().volumes()[&id].clone();
        assert_eq!(volume.size_gib, 3);
        assert_eq!(
            volume.modification.map(|m| m.state),
            Some(ModificationState::Completed)
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
        assert!(!h.control.read().volumes().contains_key(&root));
        assert_eq!(h.blocks.volume_size(&root), None, "no data left behind");
        assert_eq!(h.hypervisor.launches(), 0);
    }
}
