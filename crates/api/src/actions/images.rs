//! DescribeImages, RegisterImage, DeregisterImage, CreateImage.

use control::images::{Image, ImageBlockDevice, RegisterImageRequest};
use control::instances::BlockDeviceMappingInput;
use control::snapshots::Snapshot;
use control::tags::{tags_from_specifications, tags_of_created, TagSpecification};
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, unsupported_parameter, write_tag_set, Response};
use crate::{ApiContext, ApiError};
use control::Tables;

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

pub fn describe_images(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, request): (_, DescribeImages) = describe_request(request, Some("ImageIds"))?;
    let account = context.control.config().account_id.clone();
    let (images, next_token) = context.control.describe_images(&query, &request.owners)?;
    // Only the account itself can launch its images: other users see nothing.
    let launchable_by_others = request
        .executable_users
        .iter()
        .any(|u| u != "self" && *u != account);
    let images = if launchable_by_others {
        Vec::new()
    } else {
        images
    };
    render_page(response, "imagesSet", (images, next_token), |xml, image| {
        write_image(xml, image, &account)
    })
}

fn write_image(xml: &mut awsproto::XmlWriter, image: &Image, owner: &str) {
    xml.leaf("imageId", &image.image_id);
    xml.leaf("imageLocation", &format!("{owner}/{}", image.name));
    xml.leaf("imageState", image.state.as_str());
    xml.leaf("imageOwnerId", owner);
    xml.leaf(
        "creationDate",
        &nimbus_core::iso8601_millis(image.creation_time),
    );
    xml.leaf("isPublic", "false");
    xml.leaf("architecture", "x86_64");
    xml.leaf("imageType", "machine");
    xml.leaf("name", &image.name);
    xml.leaf("description", &image.description);
    xml.leaf("rootDeviceType", "ebs");
    xml.leaf("rootDeviceName", &image.root_device_name);
    xml.start("blockDeviceMapping");
    for device in &image.block_devices {
        xml.start("item");
        xml.leaf("deviceName", &device.device_name);
        xml.start("ebs");
        if let Some(snapshot) = &device.snapshot_id {
            xml.leaf("snapshotId", snapshot);
        }
        xml.leaf("volumeSize", &device.volume_size_gib.to_string());
        xml.leaf(
            "deleteOnTermination",
            &device.delete_on_termination.to_string(),
        );
        xml.leaf("volumeType", &device.volume_type);
        xml.leaf("encrypted", "false");
        xml.end();
        xml.end();
    }
    xml.end();
    xml.leaf("virtualizationType", "hvm");
    write_tag_set(xml, &image.tags);
    xml.leaf("hypervisor", "xen");
    xml.leaf("enaSupport", "true");
    xml.leaf("platformDetails", "Linux/UNIX");
    xml.leaf("usageOperation", "RunInstances");
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

pub fn register_image(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| xml.leaf("imageId", &image.image_id))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeregisterImage {
    image_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn deregister_image(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeregisterImage = input(request)?;
    context
        .control
        .deregister_image(&request.image_id, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
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

pub async fn create_image(
    context: &ApiContext,
    request: Value,
    response: Response<'_>,
) -> Result<String, ApiError> {
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
    response.render(|xml| xml.leaf("imageId", &image.image_id))
}
