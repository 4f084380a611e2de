//! DescribeImages, RegisterImage, DeregisterImage, CreateImage, CopyImage.

use control::idempotency::ClientToken;
use control::images::{CopyImageRequest, Image, ImageBlockDevice, RegisterImageRequest};
use control::instances::BlockDeviceMappingInput;
use control::snapshots::Snapshot;
use control::tags::{tags_from_specifications, tags_of_created, TagSpecification};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    Output,
};
use crate::service::BoxFuture;
use crate::{ApiContext, ApiError};
use control::Tables;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("DescribeImages", Handler::Sync(describe_images)),
    ("RegisterImage", Handler::Sync(register_image)),
    ("DeregisterImage", Handler::Sync(deregister_image)),
    ("CreateImage", Handler::Async(create_image)),
    ("CopyImage", Handler::Async(copy_image)),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeImages {
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    executable_users: Vec<String>,
    /// nimbus images are never deprecated or disabled, so these change nothing.
    #[serde(default, rename = "IncludeDeprecated")]
    _include_deprecated: bool,
    #[serde(default, rename = "IncludeDisabled")]
    _include_disabled: bool,
}

fn describe_images(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeImages) = describe_request(request, Some("ImageIds"))?;
    let account = context.control.config().account_id.clone();
    let (images, next_token) = context.control.describe_images(&query, &request.owners)?;
    // ExecutableUsers: the images any of those users may launch.
    let images = (images.into_iter())
        .filter(|image| {
            let permissions = &image.launch_permissions;
            let users = &request.executable_users;
            users.is_empty() || users.iter().any(|user| permissions.allows(user, &account))
        })
        .collect();
    Ok(page_output("Images", (images, next_token), |image| {
        image_output(&image, &account)
    }))
}

/// An image's block devices as the model's `BlockDeviceMappingList`.
pub(super) fn devices_output(image: &Image) -> Vec<Value> {
    (image.block_devices.iter())
        .map(|device| {
            json!({
                "DeviceName": device.device_name,
                "Ebs": {
                    "SnapshotId": device.snapshot_id,
                    "VolumeSize": device.volume_size_gib,
                    "DeleteOnTermination": device.delete_on_termination,
                    "VolumeType": device.volume_type,
                    "Encrypted": false,
                },
            })
        })
        .collect()
}

fn image_output(image: &Image, owner: &str) -> Value {
    json!({
        "ImageId": image.image_id,
        "ImageLocation": format!("{owner}/{}", image.name),
        "State": image.state.as_str(),
        "OwnerId": owner,
        "CreationDate": nimbus_core::iso8601_millis(image.creation_time),
        "Public": image.launch_permissions.public,
        "Architecture": "x86_64",
        "ImageType": "machine",
        "Name": image.name,
        "Description": image.description,
        "RootDeviceType": "ebs",
        "RootDeviceName": image.root_device_name,
        "BlockDeviceMappings": devices_output(image),
        "VirtualizationType": "hvm",
        "Tags": tags_output(&image.tags),
        "Hypervisor": "xen",
        "EnaSupport": true,
        "PlatformDetails": "Linux/UNIX",
        "UsageOperation": "RunInstances",
    })
}

fn image_devices(mappings: &[BlockDeviceMappingInput]) -> Result<Vec<ImageBlockDevice>, ApiError> {
    mappings
        .iter()
        .filter(|m| m.no_device.is_none())
        .map(|m| {
            let device_name = m.device_name.clone().ok_or_else(|| {
                ApiError::from(control::Error::MissingParameter(
                    "BlockDeviceMapping.N.DeviceName".into(),
                ))
            })?;
            let ebs = m.ebs.clone().ok_or_else(|| {
                ApiError::from(control::Error::InvalidParameterValue(format!(
                    "Device {device_name} needs an Ebs mapping."
                )))
            })?;
            if ebs.encrypted == Some(true) {
                return Err(unsupported_parameter("Ebs.Encrypted"));
            }
            if ebs.iops.is_some() || ebs.throughput.is_some() {
                return Err(unsupported_parameter(
                    "Ebs.Iops / Ebs.Throughput in image mappings",
                ));
            }
            Ok(ImageBlockDevice {
                device_name,
                volume_size_gib: ebs.volume_size.unwrap_or(0),
                snapshot_id: ebs.snapshot_id,
                volume_type: ebs.volume_type.unwrap_or_else(|| "gp2".into()),
                delete_on_termination: ebs.delete_on_termination.unwrap_or(true),
            })
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RegisterImage {
    name: String,
    description: Option<String>,
    root_device_name: Option<String>,
    #[serde(default)]
    block_device_mappings: Vec<BlockDeviceMappingInput>,
    architecture: Option<String>,
    virtualization_type: Option<String>,
    #[serde(default, rename = "EnaSupport")]
    _ena_support: bool,
    boot_mode: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn register_image(context: &ApiContext, request: Value) -> Output {
    let request: RegisterImage = input(request)?;
    if request
        .architecture
        .as_deref()
        .is_some_and(|a| a != "x86_64")
    {
        return Err(unsupported_parameter("Architecture (only x86_64)"));
    }
    if request
        .virtualization_type
        .as_deref()
        .is_some_and(|v| v != "hvm")
    {
        return Err(unsupported_parameter("VirtualizationType (only hvm)"));
    }
    if request
        .boot_mode
        .as_deref()
        .is_some_and(|m| m != "legacy-bios")
    {
        return Err(unsupported_parameter(
            "BootMode (nimbus boots its kernel directly)",
        ));
    }
    let mut block_devices = image_devices(&request.block_device_mappings)?;
    let root_device_name = request
        .root_device_name
        .clone()
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("RootDeviceName".into())))?;
    // A size left out means the snapshot's size.
    for device in &mut block_devices {
        if device.volume_size_gib == 0 {
            if let Some(snapshot) = device.snapshot_id.as_deref() {
                device.volume_size_gib = context
                    .control
                    .read()
                    .snapshots()
                    .get(snapshot)
                    .map(|s| s.volume_size_gib)
                    .unwrap_or(0);
            }
        }
    }
    let image = context.control.register_image(RegisterImageRequest {
        name: request.name,
        description: request.description.unwrap_or_default(),
        root_device_name,
        block_devices,
        boot: context.control.default_boot_files(),
        tags: tags_of_created(&request.tag_specifications, Image::KIND)?,
        dry_run: request.dry_run,
    })?;
    answer(json!({"ImageId": image.image_id}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeregisterImage {
    image_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn deregister_image(context: &ApiContext, request: Value) -> Output {
    let request: DeregisterImage = input(request)?;
    context
        .control
        .deregister_image(&request.image_id, request.dry_run)?;
    answer(json!({"Return": true}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateImage {
    instance_id: String,
    name: String,
    description: Option<String>,
    /// nimbus never reboots for CreateImage: snapshots are crash-consistent (docs/compatibility.md).
    #[serde(default, rename = "NoReboot")]
    _no_reboot: bool,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn create_image(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(create(context, request))
}

async fn create(context: &ApiContext, request: Value) -> Output {
    let request: CreateImage = input(request)?;
    let allowed = [Image::KIND, Snapshot::KIND];
    let image = context
        .control
        .create_image(
            &request.instance_id,
            &request.name,
            request.description.unwrap_or_default(),
            tags_from_specifications(&request.tag_specifications, &allowed, Image::KIND)?,
            tags_from_specifications(&request.tag_specifications, &allowed, Snapshot::KIND)?,
            request.dry_run,
        )
        .await?;
    answer(json!({"ImageId": image.image_id}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CopyImage {
    source_image_id: String,
    source_region: String,
    name: String,
    description: Option<String>,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    encrypted: bool,
    kms_key_id: Option<String>,
    destination_outpost_arn: Option<String>,
    #[serde(default)]
    copy_image_tags: bool,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    snapshot_copy_completion_duration_minutes: Option<i64>,
    destination_availability_zone: Option<String>,
    destination_availability_zone_id: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn copy_image(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(copy(context, request))
}

async fn copy(context: &ApiContext, request: Value) -> Output {
    let client_token = ClientToken::of_request("CopyImage", &request)?;
    let request: CopyImage = input(request)?;
    let refused = [
        ("Encrypted", request.encrypted),
        ("KmsKeyId", request.kms_key_id.is_some()),
        (
            "DestinationOutpostArn",
            request.destination_outpost_arn.is_some(),
        ),
        (
            "SnapshotCopyCompletionDurationMinutes",
            request.snapshot_copy_completion_duration_minutes.is_some(),
        ),
        (
            "DestinationAvailabilityZone",
            request.destination_availability_zone.is_some()
                || request.destination_availability_zone_id.is_some(),
        ),
    ];
    if let Some((name, _)) = refused.iter().find(|(_, given)| *given) {
        return Err(unsupported_parameter(name));
    }
    let allowed = [Image::KIND, Snapshot::KIND];
    let image = context
        .control
        .copy_image(CopyImageRequest {
            source_image_id: request.source_image_id,
            source_region: request.source_region,
            name: request.name,
            description: request.description,
            copy_image_tags: request.copy_image_tags,
            image_tags: tags_from_specifications(
                &request.tag_specifications,
                &allowed,
                Image::KIND,
            )?,
            snapshot_tags: tags_from_specifications(
                &request.tag_specifications,
                &allowed,
                Snapshot::KIND,
            )?,
            client_token,
            dry_run: request.dry_run,
        })
        .await?;
    answer(json!({"ImageId": image.image_id}))
}
