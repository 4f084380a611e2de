//! CreateVolume, DescribeVolumes, DeleteVolume, ModifyVolume, DescribeVolumesModifications.

use control::idempotency::ClientToken;
use control::tags::{tags_of_created, TagSpecification};
use control::volumes::{
    CreateVolumeRequest, Modification, ModificationState, ModifyVolumeRequest, Volume,
};
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, write_tag_set, NoOtherParameters, Response};
use crate::{ApiContext, ApiError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateVolume {
    availability_zone: Option<String>,
    size: Option<u64>,
    snapshot_id: Option<String>,
    volume_type: Option<String>,
    iops: Option<u64>,
    throughput: Option<u64>,
    #[serde(default)]
    encrypted: bool,
    #[serde(default)]
    multi_attach_enabled: bool,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    /// Read by `ClientToken::of_request`, with the other parameters it is bound to.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn create_volume(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let client_token = ClientToken::of_request("CreateVolume", &request)?;
    let request: CreateVolume = input(request)?;
    if request.multi_attach_enabled {
        return Err(super::unsupported_parameter("MultiAttachEnabled"));
    }
    let volume = context.control.create_volume(CreateVolumeRequest {
        size_gib: request.size,
        snapshot_id: request.snapshot_id,
        availability_zone: request.availability_zone,
        volume_type: request.volume_type,
        iops: request.iops,
        throughput: request.throughput,
        encrypted: request.encrypted,
        tags: tags_of_created(&request.tag_specifications, Volume::KIND)?,
        client_token,
        dry_run: request.dry_run,
    })?;
    response.render(|xml| write_volume(xml, &volume))
}

fn write_volume(xml: &mut awsproto::XmlWriter, volume: &Volume) {
    xml.start("attachmentSet");
    for attachment in &volume.attachments {
        xml.start("item");
        write_attachment(xml, &volume.volume_id, attachment);
        xml.end();
    }
    xml.end();
    xml.leaf("availabilityZone", &volume.availability_zone);
    xml.leaf(
        "createTime",
        &nimbus_core::iso8601_millis(volume.create_time),
    );
    xml.leaf("encrypted", "false");
    xml.leaf("size", &volume.size_gib.to_string());
    xml.leaf("snapshotId", volume.snapshot_id.as_deref().unwrap_or(""));
    xml.leaf("status", volume.state.as_str());
    xml.leaf("volumeId", &volume.volume_id);
    if let Some(iops) = volume.reported_iops() {
        xml.leaf("iops", &iops.to_string());
    }
    write_tag_set(xml, &volume.tags);
    xml.leaf("volumeType", volume.volume_type.as_str());
    xml.leaf("multiAttachEnabled", "false");
    if let Some(throughput) = volume.reported_throughput() {
        xml.leaf("throughput", &throughput.to_string());
    }
}

pub fn describe_volumes(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("VolumeIds"))?;
    let page = context.control.describe_volumes(&query)?;
    render_page(response, "volumeSet", page, write_volume)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteVolume {
    volume_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_volume(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteVolume = input(request)?;
    context
        .control
        .delete_volume(&request.volume_id, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyVolume {
    volume_id: String,
    size: Option<u64>,
    volume_type: Option<String>,
    iops: Option<u64>,
    throughput: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

pub fn modify_volume(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ModifyVolume = input(request)?;
    let volume = context.control.modify_volume(
        &request.volume_id,
        ModifyVolumeRequest {
            size_gib: request.size,
            volume_type: request.volume_type,
            iops: request.iops,
            throughput: request.throughput,
            dry_run: request.dry_run,
        },
    )?;
    response.render(|xml| {
        xml.start("volumeModification");
        if let Some(modification) = &volume.modification {
            write_modification(xml, &volume.volume_id, modification);
        }
        xml.end();
    })
}

fn write_modification(xml: &mut awsproto::XmlWriter, volume_id: &str, m: &Modification) {
    xml.leaf("volumeId", volume_id);
    xml.leaf("modificationState", m.state.as_str());
    xml.leaf("targetSize", &m.target_size_gib.to_string());
    xml.leaf("targetIops", &m.target_performance.iops.to_string());
    xml.leaf("targetVolumeType", m.target_type.as_str());
    xml.leaf(
        "targetThroughput",
        &m.target_performance.throughput_mib.to_string(),
    );
    xml.leaf("targetMultiAttachEnabled", "false");
    xml.leaf("originalSize", &m.original_size_gib.to_string());
    xml.leaf("originalIops", &m.original_performance.iops.to_string());
    xml.leaf("originalVolumeType", m.original_type.as_str());
    xml.leaf(
        "originalThroughput",
        &m.original_performance.throughput_mib.to_string(),
    );
    xml.leaf("originalMultiAttachEnabled", "false");
    let done = m.state == ModificationState::Completed;
    xml.leaf("progress", if done { "100" } else { "0" });
    xml.leaf("startTime", &nimbus_core::iso8601_millis(m.start_time));
    if let Some(end) = m.end_time {
        xml.leaf("endTime", &nimbus_core::iso8601_millis(end));
    }
}

pub fn describe_volumes_modifications(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("VolumeIds"))?;
    let page = context.control.describe_volumes_modifications(&query)?;
    render_page(response, "volumeModificationSet", page, |xml, row| {
        write_modification(xml, &row.volume_id, &row.modification)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AttachVolume {
    volume_id: String,
    instance_id: String,
    device: String,
    #[serde(default)]
    dry_run: bool,
}

fn write_attachment(
    xml: &mut awsproto::XmlWriter,
    volume_id: &str,
    attachment: &control::volumes::Attachment,
) {
    xml.leaf(
        "attachTime",
        &nimbus_core::iso8601_millis(attachment.attach_time),
    );
    xml.leaf("device", &attachment.device);
    xml.leaf("instanceId", &attachment.instance_id);
    xml.leaf("status", attachment.state.as_str());
    xml.leaf("volumeId", volume_id);
    xml.leaf(
        "deleteOnTermination",
        &attachment.delete_on_termination.to_string(),
    );
}

pub fn attach_volume(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: AttachVolume = input(request)?;
    let attachment = context.control.attach_volume(
        &request.volume_id,
        &request.instance_id,
        &request.device,
        request.dry_run,
    )?;
    response.render(|xml| write_attachment(xml, &request.volume_id, &attachment))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DetachVolume {
    volume_id: String,
    instance_id: Option<String>,
    device: Option<String>,
    /// Detaching always unplugs the device from the VM; a forced detach is the same operation.
    #[serde(default, rename = "Force")]
    _force: bool,
    #[serde(default)]
    dry_run: bool,
}

pub fn detach_volume(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DetachVolume = input(request)?;
    let (_, attachment) = context.control.detach_volume(
        &request.volume_id,
        request.instance_id.as_deref(),
        request.device.as_deref(),
        request.dry_run,
    )?;
    response.render(|xml| write_attachment(xml, &request.volume_id, &attachment))
}
