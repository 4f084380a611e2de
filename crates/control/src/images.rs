//! AMIs: every image is an EBS snapshot plus a root block-device mapping, and for direct
//! kernel boot the kernel and initramfs it starts with (EC2's kernel-id / ramdisk-id).
//! DescribeImages, RegisterImage, DeregisterImage; CreateImage lives with instances.

use serde::{Deserialize, Serialize};

use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::idempotency::{create_once, ClientToken};
use crate::kinds::Tables;
use crate::permissions::Permissions;
use crate::snapshots::{Snapshot, SnapshotState, VolumeSnapshot};
use crate::{Control, Error, Result, State, Tags};

/// DescribeImages's MaxResults bounds.
const DESCRIBE_IMAGES_PAGING: Paging = Paging::within_without_ids(5, 1000, "imagesSet");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageState {
    Pending,
    Available,
    Failed,
}

impl ImageState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageState::Pending => "pending",
            ImageState::Available => "available",
            ImageState::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageBlockDevice {
    pub device_name: String,
    pub snapshot_id: Option<String>,
    pub volume_size_gib: u64,
    pub volume_type: String,
    pub delete_on_termination: bool,
}

/// How an image boots: the kernel and initramfs files nimbus keeps for it, and the command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootFiles {
    pub kernel: String,
    pub initrd: String,
    pub cmdline: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    pub image_id: String,
    pub name: String,
    pub description: String,
    pub state: ImageState,
    pub root_device_name: String,
    pub block_devices: Vec<ImageBlockDevice>,
    pub boot: Option<BootFiles>,
    pub creation_time: i64,
    pub tags: Tags,
    /// Who besides the account may launch it. Absent in older records: nobody.
    #[serde(default)]
    pub launch_permissions: Permissions,
}

impl Image {
    pub fn root_device(&self) -> Option<&ImageBlockDevice> {
        self.block_devices
            .iter()
            .find(|d| d.device_name == self.root_device_name)
    }
}

fn of_devices(image: &Image, field: fn(&ImageBlockDevice) -> String) -> Vec<String> {
    image.block_devices.iter().map(field).collect()
}

impl Filterable for Image {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("image-id", |i, _| vec![i.image_id.clone()]),
        ("name", |i, _| vec![i.name.clone()]),
        ("description", |i, _| vec![i.description.clone()]),
        ("state", |i, _| vec![i.state.as_str().to_owned()]),
        ("architecture", |_, _| vec!["x86_64".into()]),
        ("image-type", |_, _| vec!["machine".into()]),
        ("is-public", |i, _| {
            vec![i.launch_permissions.public.to_string()]
        }),
        ("root-device-type", |_, _| vec!["ebs".into()]),
        ("root-device-name", |i, _| vec![i.root_device_name.clone()]),
        ("virtualization-type", |_, _| vec!["hvm".into()]),
        ("hypervisor", |_, _| vec!["xen".into()]),
        ("owner-alias", |_, _| vec![String::new()]),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
        ("block-device-mapping.device-name", |i, _| {
            of_devices(i, |d| d.device_name.clone())
        }),
        ("block-device-mapping.snapshot-id", |i, _| {
            of_devices(i, |d| d.snapshot_id.clone().unwrap_or_default())
        }),
        ("block-device-mapping.volume-size", |i, _| {
            of_devices(i, |d| d.volume_size_gib.to_string())
        }),
        ("block-device-mapping.volume-type", |i, _| {
            of_devices(i, |d| d.volume_type.clone())
        }),
        ("block-device-mapping.delete-on-termination", |i, _| {
            of_devices(i, |d| d.delete_on_termination.to_string())
        }),
    ];
}

/// Lookups of the working set that the rules of this module answer.
pub trait ImageQueries {
    /// IDs of images whose block devices use `snapshot_id`.
    fn images_using_snapshot<'a>(
        &'a self,
        snapshot_id: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a;
    fn image_by_name(&self, name: &str) -> Option<&Image>;
}

impl ImageQueries for State {
    fn images_using_snapshot<'a>(
        &'a self,
        snapshot_id: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.images()
            .values()
            .filter(move |image| {
                image
                    .block_devices
                    .iter()
                    .any(|d| d.snapshot_id.as_deref() == Some(snapshot_id))
            })
            .map(|image| image.image_id.as_str())
    }

    fn image_by_name(&self, name: &str) -> Option<&Image> {
        self.images().values().find(|image| image.name == name)
    }
}

/// What CopyImage asks for.
pub struct CopyImageRequest {
    pub source_image_id: String,
    pub source_region: String,
    pub name: String,
    pub description: Option<String>,
    /// `CopyImageTags`: the source image's tags under the new image's own.
    pub copy_image_tags: bool,
    pub image_tags: Tags,
    pub snapshot_tags: Tags,
    pub client_token: Option<ClientToken>,
    pub dry_run: bool,
}

/// What RegisterImage asks for.
pub struct RegisterImageRequest {
    pub name: String,
    pub description: String,
    pub root_device_name: String,
    pub block_devices: Vec<ImageBlockDevice>,
    pub boot: Option<BootFiles>,
    pub tags: Tags,
    pub dry_run: bool,
}

fn validate_image_name(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c);
    if name.len() < 3 || name.len() > 128 || !name.chars().all(allowed) {
        return Err(Error::InvalidParameterValue(format!(
            "AMI names must be between 3 and 128 characters long, and may contain letters, numbers, '(', ')', '.', '-', '/' and '_': {name}"
        )));
    }
    Ok(())
}

impl Control {
    pub fn register_image(&self, request: RegisterImageRequest) -> Result<Image> {
        validate_image_name(&request.name)?;
        self.mutate(|txn| {
            if txn.state().image_by_name(&request.name).is_some() {
                return Err(Error::DuplicateImageName(request.name.clone()));
            }
            if !request.block_devices.iter().any(|d| d.device_name == request.root_device_name) {
                return Err(Error::InvalidParameterValue(format!(
                    "The root device name {} has no block device mapping.",
                    request.root_device_name
                )));
            }
            for device in &request.block_devices {
                if let Some(snapshot_id) = &device.snapshot_id {
                    let snapshot = existing::<Snapshot>(txn.state(), snapshot_id)?;
                    if snapshot.state != SnapshotState::Completed {
                        return Err(Error::IncorrectState(format!("Snapshot {snapshot_id} is not completed.")));
                    }
                    if device.volume_size_gib < snapshot.volume_size_gib {
                        return Err(Error::InvalidParameterValue(format!(
                            "Volume of {} GiB for {} is smaller than snapshot {snapshot_id} ({} GiB).",
                            device.volume_size_gib, device.device_name, snapshot.volume_size_gib
                        )));
                    }
                }
            }
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            let image = Image {
                image_id: nimbus_core::new_id("ami"),
                name: request.name.clone(),
                description: request.description.clone(),
                state: ImageState::Available,
                root_device_name: request.root_device_name.clone(),
                block_devices: request.block_devices.clone(),
                boot: request.boot.clone(),
                creation_time: nimbus_core::now_millis(),
                tags: request.tags.clone(),
                launch_permissions: Default::default(),
            };
            txn.put(image.clone())?;
            Ok(image)
        })
    }

    pub fn describe_images(&self, query: &Query, owners: &[String]) -> Result<Page<Image>> {
        let owned = self.owners_include_account(owners);
        Ok(describe::describe(
            &self.read(),
            self.config(),
            query,
            DESCRIBE_IMAGES_PAGING,
            |_| owned,
        )?)
    }

    /// Forgets the image; its snapshots stay (as in EC2, they are deleted separately).
    pub fn deregister_image(&self, id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            existing::<Image>(txn.state(), id)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<Image>(id);
            Ok(())
        })
    }
}

/// The image every boot falls back to when an AMI carries no kernel of its own.
pub const DEFAULT_IMAGE_NAME: &str = "nimbus-minimal";

impl Control {
    /// The kernel and initramfs of the built default image, for AMIs registered from bare snapshots.
    pub fn default_boot_files(&self) -> Option<BootFiles> {
        self.read()
            .image_by_name(DEFAULT_IMAGE_NAME)
            .and_then(|image| image.boot.clone())
    }

    /// Imports a built root filesystem as a completed snapshot and registers an AMI for it,
    /// replacing an earlier image of the same name (used by `nimbus image build`).
    pub async fn import_image(
        &self,
        name: &str,
        description: &str,
        root_fs: &std::path::Path,
        boot: BootFiles,
    ) -> Result<Image> {
        let snapshot_id = nimbus_core::new_id("snap");
        let size_bytes = self
            .engine()
            .import_raw_image(&snapshot_id, root_fs)
            .await
            .map_err(crate::snapshots::engine_error)?;
        let size_gib = size_bytes.div_ceil(crate::volumes::GIB).max(1);
        let now = nimbus_core::now_millis();
        let snapshot = Snapshot {
            snapshot_id: snapshot_id.clone(),
            volume_id: "vol-ffffffff".into(),
            volume_size_gib: size_gib,
            state: SnapshotState::Completed,
            progress: 100,
            start_time: now,
            description: format!("Root filesystem of {name}"),
            source: crate::snapshots::SnapshotSource::Image,
            state_message: None,
            tags: Tags::new(),
            create_volume_permissions: Default::default(),
        };
        let image = Image {
            image_id: nimbus_core::new_id("ami"),
            name: name.to_owned(),
            description: description.to_owned(),
            state: ImageState::Available,
            root_device_name: "/dev/xvda".into(),
            block_devices: vec![ImageBlockDevice {
                device_name: "/dev/xvda".into(),
                snapshot_id: Some(snapshot_id),
                volume_size_gib: size_gib,
                volume_type: "gp3".into(),
                delete_on_termination: true,
            }],
            boot: Some(boot),
            creation_time: now,
            tags: Tags::new(),
            launch_permissions: Default::default(),
        };
        self.mutate(|txn| {
            if let Some(old) = txn.state().image_by_name(name).map(|i| i.image_id.clone()) {
                txn.delete::<Image>(&old);
            }
            txn.put(snapshot.clone())?;
            Ok(txn.put(image.clone())?)
        })?;
        Ok(image)
    }

    /// CreateImage: snapshots every volume of the instance (crash-consistent, at once) and
    /// registers a `pending` AMI that becomes `available` when the snapshots complete.
    pub async fn create_image(
        &self,
        instance_id: &str,
        name: &str,
        description: String,
        image_tags: Tags,
        snapshot_tags: Tags,
        dry_run: bool,
    ) -> Result<Image> {
        validate_image_name(name)?;
        let (instance, source_image, volumes) = {
            let state = self.read();
            let instance = existing::<crate::instances::Instance>(&state, instance_id)?.clone();
            if !matches!(
                instance.state,
                crate::instances::InstanceState::Running | crate::instances::InstanceState::Stopped
            ) {
                return Err(Error::IncorrectInstanceState(format!(
                    "Instance '{instance_id}' is not 'running' or 'stopped'."
                )));
            }
            if state.image_by_name(name).is_some() {
                return Err(Error::DuplicateImageName(name.to_owned()));
            }
            let volumes: Vec<(String, crate::volumes::Volume)> = instance
                .disks
                .iter()
                .filter_map(|d| {
                    state
                        .volumes()
                        .get(&d.volume_id)
                        .map(|v| (d.device_name.clone(), v.clone()))
                })
                .collect();
            (
                instance.clone(),
                state.images().get(&instance.image_id).cloned(),
                volumes,
            )
        };
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        let image_id = nimbus_core::new_id("ami");
        let requests = (volumes.iter())
            .map(|(_, volume)| VolumeSnapshot {
                volume: volume.clone(),
                description: format!("Created by CreateImage({instance_id}) for {image_id}"),
                tags: snapshot_tags.clone(),
            })
            .collect();
        // Every volume at one instant, as one crash-consistent set.
        let snapshots = self.snapshot_volumes(requests, false).await?;
        let block_devices = (volumes.iter().zip(snapshots))
            .map(|((device_name, volume), snapshot)| ImageBlockDevice {
                device_name: device_name.clone(),
                snapshot_id: Some(snapshot.snapshot_id),
                volume_size_gib: volume.size_gib,
                volume_type: volume.volume_type.as_str().to_owned(),
                delete_on_termination: volume
                    .attachments
                    .first()
                    .is_none_or(|a| a.delete_on_termination),
            })
            .collect();
        let image = Image {
            image_id,
            name: name.to_owned(),
            description,
            state: ImageState::Pending,
            root_device_name: instance.root_device_name.clone(),
            block_devices,
            boot: source_image
                .and_then(|i| i.boot)
                .or_else(|| self.default_boot_files()),
            creation_time: nimbus_core::now_millis(),
            tags: image_tags,
            launch_permissions: Default::default(),
        };
        self.mutate(|txn| Ok(txn.put(image.clone())?))?;
        self.wake_reconciler();
        Ok(image)
    }

    /// CopyImage within the region: a new `pending` image whose snapshots are copies of the
    /// source's (the block store copies their data), `available` once the copies complete.
    pub async fn copy_image(&self, request: CopyImageRequest) -> Result<Image> {
        validate_image_name(&request.name)?;
        self.check_source_region(&request.source_region)?;
        let source = {
            let state = self.read();
            if let Some(token) = &request.client_token {
                if let Some(previous) = token.replay(&state)? {
                    let id = previous.as_str().unwrap_or_default();
                    return Ok(existing::<Image>(&state, id)?.clone());
                }
            }
            let source = existing::<Image>(&state, &request.source_image_id)?.clone();
            if source.state != ImageState::Available {
                return Err(Error::IncorrectState(format!(
                    "Image {} is not available.",
                    source.image_id
                )));
            }
            if state.image_by_name(&request.name).is_some() {
                return Err(Error::DuplicateImageName(request.name.clone()));
            }
            source
        };
        if request.dry_run {
            return Err(Error::DryRunOperation);
        }
        let image_id = nimbus_core::new_id("ami");
        let mut block_devices = Vec::new();
        for device in &source.block_devices {
            let snapshot_id = match &device.snapshot_id {
                Some(source_snapshot) => {
                    let description = format!(
                        "Copied for DestinationAmi {image_id} from SourceAmi {} for SourceSnapshot {source_snapshot}",
                        source.image_id
                    );
                    let copy = self
                        .copy_snapshot(
                            source_snapshot,
                            &request.source_region,
                            Some(description),
                            request.snapshot_tags.clone(),
                            false,
                        )
                        .await?;
                    Some(copy.snapshot_id)
                }
                None => None,
            };
            block_devices.push(ImageBlockDevice {
                snapshot_id,
                ..device.clone()
            });
        }
        let mut tags = if request.copy_image_tags {
            source.tags.clone()
        } else {
            Tags::new()
        };
        tags.extend(request.image_tags.clone());
        let image = Image {
            image_id,
            name: request.name.clone(),
            description: request.description.clone().unwrap_or(source.description),
            state: ImageState::Pending,
            root_device_name: source.root_device_name,
            block_devices,
            boot: source.boot,
            creation_time: nimbus_core::now_millis(),
            tags,
            launch_permissions: Default::default(),
        };
        let image = self.mutate(|txn| {
            create_once(txn, request.client_token.as_ref(), |txn| {
                txn.put(image.clone())?;
                Ok::<_, Error>(image.clone())
            })
        })?;
        self.wake_reconciler();
        Ok(image)
    }

    /// Pending images become available when all their snapshots completed (failed if one failed).
    pub(crate) fn reconcile_images(&self) -> Result<()> {
        let pending: Vec<(String, ImageState)> = {
            let state = self.read();
            state
                .images()
                .values()
                .filter(|i| i.state == ImageState::Pending)
                .filter_map(|i| {
                    let states: Vec<Option<SnapshotState>> = i
                        .block_devices
                        .iter()
                        .filter_map(|d| d.snapshot_id.as_ref())
                        .map(|s| state.snapshots().get(s).map(|s| s.state))
                        .collect();
                    if states
                        .iter()
                        .any(|s| matches!(s, None | Some(SnapshotState::Error)))
                    {
                        Some((i.image_id.clone(), ImageState::Failed))
                    } else if states.iter().all(|s| *s == Some(SnapshotState::Completed)) {
                        Some((i.image_id.clone(), ImageState::Available))
                    } else {
                        None
                    }
                })
                .collect()
        };
        for (id, new_state) in pending {
            self.update::<Image>(&id, |i| i.state = new_state)?;
        }
        Ok(())
    }
}
