//! CreateVolume, DescribeVolumes, DeleteVolume, ModifyVolume, DescribeVolumesModifications,
//! GetEbsEncryptionByDefault, GetEbsDefaultKmsKeyId.

use control::idempotency::ClientToken;
use control::tags::{tags_of_created, TagSpecification};
use control::volumes::{
    CreateVolumeRequest, Modification, ModificationState, ModifyVolumeRequest, Volume,
};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, Handler, NoOtherParameters, Output,
};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateVolume", Handler::Sync(create_volume)),
    ("DescribeVolumes", Handler::Sync(describe_volumes)),
    ("DeleteVolume", Handler::Sync(delete_volume)),
    ("ModifyVolume", Handler::Sync(modify_volume)),
    (
        "DescribeVolumesModifications",
        Handler::Sync(describe_volumes_modifications),
    ),
    ("AttachVolume", Handler::Sync(attach_volume)),
    ("DetachVolume", Handler::Sync(detach_volume)),
    (
        "GetEbsEncryptionByDefault",
        Handler::Sync(get_ebs_encryption_by_default),
    ),
    (
        "GetEbsDefaultKmsKeyId",
        Handler::Sync(get_ebs_default_kms_key_id),
    ),
];

/// nimbus does not encrypt volumes (encrypted volumes are refused by name), so encryption by
/// default is off, as in a new AWS account.
fn get_ebs_encryption_by_default(_context: &ApiContext, request: Value) -> Output {
    let NoOtherParameters {} = input(request)?;
    answer(json!({"EbsEncryptionByDefault": false, "SseType": "none"}))
}

/// What AWS answers for an account that never chose a key: the AWS managed key's alias.
fn get_ebs_default_kms_key_id(_context: &ApiContext, request: Value) -> Output {
    let NoOtherParameters {} = input(request)?;
    answer(json!({"KmsKeyId": "alias/aws/ebs"}))
}

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

fn create_volume(context: &ApiContext, request: Value) -> Output {
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
    answer(volume_output(&volume))
}

fn volume_output(volume: &Volume) -> Value {
    let attachments: Vec<Value> = (volume.attachments.iter())
        .map(|attachment| attachment_output(&volume.volume_id, attachment))
        .collect();
    json!({
        "Attachments": attachments,
        "AvailabilityZone": volume.availability_zone,
        "CreateTime": nimbus_core::iso8601_millis(volume.create_time),
        "Encrypted": false,
        "Size": volume.size_gib,
        "SnapshotId": volume.snapshot_id.as_deref().unwrap_or(""),
        "State": volume.state.as_str(),
        "VolumeId": volume.volume_id,
        "Iops": volume.reported_iops(),
        "Tags": tags_output(&volume.tags),
        "VolumeType": volume.volume_type.as_str(),
        "MultiAttachEnabled": false,
        "Throughput": volume.reported_throughput(),
    })
}

fn describe_volumes(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("VolumeIds"))?;
    let page = context.control.describe_volumes(&query)?;
    Ok(page_output("Volumes", page, |volume| {
        volume_output(&volume)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteVolume {
    volume_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_volume(context: &ApiContext, request: Value) -> Output {
    let request: DeleteVolume = input(request)?;
    context
        .control
        .delete_volume(&request.volume_id, request.dry_run)?;
    answer(Value::Null)
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

fn modify_volume(context: &ApiContext, request: Value) -> Output {
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
    let modification = (volume.modification.as_ref())
        .map_or_else(|| json!({}), |m| modification_output(&volume.volume_id, m));
    answer(json!({"VolumeModification": modification}))
}

fn modification_output(volume_id: &str, m: &Modification) -> Value {
    let done = m.state == ModificationState::Completed;
    json!({
        "VolumeId": volume_id,
        "ModificationState": m.state.as_str(),
        "TargetSize": m.target_size_gib,
        "TargetIops": m.target_performance.iops,
        "TargetVolumeType": m.target_type.as_str(),
        "TargetThroughput": m.target_performance.throughput_mib,
        "TargetMultiAttachEnabled": false,
        "OriginalSize": m.original_size_gib,
        "OriginalIops": m.original_performance.iops,
        "OriginalVolumeType": m.original_type.as_str(),
        "OriginalThroughput": m.original_performance.throughput_mib,
        "OriginalMultiAttachEnabled": false,
        "Progress": if done { 100 } else { 0 },
        "StartTime": nimbus_core::iso8601_millis(m.start_time),
        "EndTime": m.end_time.map(nimbus_core::iso8601_millis),
    })
}

fn describe_volumes_modifications(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("VolumeIds"))?;
    let page = context.control.describe_volumes_modifications(&query)?;
    Ok(page_output("VolumesModifications", page, |row| {
        modification_output(&row.volume_id, &row.modification)
    }))
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

fn attachment_output(volume_id: &str, attachment: &control::volumes::Attachment) -> Value {
    json!({
        "AttachTime": nimbus_core::iso8601_millis(attachment.attach_time),
        "Device": attachment.device,
        "InstanceId": attachment.instance_id,
        "State": attachment.state.as_str(),
        "VolumeId": volume_id,
        "DeleteOnTermination": attachment.delete_on_termination,
    })
}

fn attach_volume(context: &ApiContext, request: Value) -> Output {
    let request: AttachVolume = input(request)?;
    let attachment = context.control.attach_volume(
        &request.volume_id,
        &request.instance_id,
        &request.device,
        request.dry_run,
    )?;
    answer(attachment_output(&request.volume_id, &attachment))
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

fn detach_volume(context: &ApiContext, request: Value) -> Output {
    let request: DetachVolume = input(request)?;
    let (_, attachment) = context.control.detach_volume(
        &request.volume_id,
        request.instance_id.as_deref(),
        request.device.as_deref(),
        request.dry_run,
    )?;
    answer(attachment_output(&request.volume_id, &attachment))
}
