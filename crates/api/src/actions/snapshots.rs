//! CreateSnapshot, CreateSnapshots, DescribeSnapshots, DeleteSnapshot, CopySnapshot.

use control::snapshots::{InstanceSnapshotsRequest, Snapshot};
use control::tags::{tags_of_created, TagSpecification};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{answer, describe_request, input, page_output, tags_output, Handler, Output};
use crate::service::BoxFuture;
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateSnapshot", Handler::Async(create_snapshot)),
    ("DescribeSnapshots", Handler::Sync(describe_snapshots)),
    ("DeleteSnapshot", Handler::Async(delete_snapshot)),
    ("CopySnapshot", Handler::Async(copy_snapshot)),
    ("CreateSnapshots", Handler::Async(create_snapshots)),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateSnapshot {
    volume_id: String,
    description: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn create_snapshot(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(create(context, request))
}

async fn create(context: &ApiContext, request: Value) -> Output {
    let request: CreateSnapshot = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, Snapshot::KIND)?;
    let snapshot = context
        .control
        .create_snapshot(
            &request.volume_id,
            request.description.unwrap_or_default(),
            tags,
            request.dry_run,
        )
        .await?;
    let owner = &context.control.config().account_id;
    answer(snapshot_output(&snapshot, owner))
}

fn snapshot_output(snapshot: &Snapshot, owner: &str) -> Value {
    json!({
        "SnapshotId": snapshot.snapshot_id,
        "VolumeId": snapshot.volume_id,
        "State": snapshot.state.as_str(),
        "StateMessage": snapshot.state_message,
        "StartTime": nimbus_core::iso8601_millis(snapshot.start_time),
        "Progress": format!("{}%", snapshot.progress),
        "OwnerId": owner,
        "VolumeSize": snapshot.volume_size_gib,
        "Description": snapshot.description,
        "Encrypted": false,
        "StorageTier": "standard",
        "Tags": tags_output(&snapshot.tags),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSnapshots {
    #[serde(default)]
    owner_ids: Vec<String>,
    #[serde(default)]
    restorable_by_user_ids: Vec<String>,
}

fn describe_snapshots(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeSnapshots) = describe_request(request, Some("SnapshotIds"))?;
    let account = context.control.config().account_id.clone();
    let (snapshots, next_token) = context
        .control
        .describe_snapshots(&query, &request.owner_ids)?;
    // RestorableByUserIds: the snapshots any of those users may make volumes of.
    let snapshots = (snapshots.into_iter())
        .filter(|snapshot| {
            let permissions = &snapshot.create_volume_permissions;
            let users = &request.restorable_by_user_ids;
            users.is_empty() || users.iter().any(|user| permissions.allows(user, &account))
        })
        .collect();
    Ok(page_output(
        "Snapshots",
        (snapshots, next_token),
        |snapshot| snapshot_output(&snapshot, &account),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteSnapshot {
    snapshot_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_snapshot(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(async move {
        let request: DeleteSnapshot = input(request)?;
        context
            .control
            .delete_snapshot(&request.snapshot_id, request.dry_run)
            .await?;
        answer(Value::Null)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CopySnapshot {
    source_snapshot_id: String,
    source_region: String,
    description: Option<String>,
    destination_region: Option<String>,
    /// boto3 adds a presigned request for the source region; copies stay in nimbus's one
    /// region, so there is nothing to fetch with it.
    #[serde(rename = "PresignedUrl")]
    _presigned_url: Option<String>,
    #[serde(default)]
    encrypted: bool,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn copy_snapshot(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(copy(context, request))
}

async fn copy(context: &ApiContext, request: Value) -> Output {
    let request: CopySnapshot = input(request)?;
    if request.encrypted {
        return Err(super::unsupported_parameter("Encrypted"));
    }
    if let Some(region) = &request.destination_region {
        if *region != context.control.config().region {
            return Err(ApiError::from(control::Error::InvalidParameterValue(
                format!("Destination region {region} is not served by nimbus."),
            )));
        }
    }
    let tags = tags_of_created(&request.tag_specifications, Snapshot::KIND)?;
    let copy = context
        .control
        .copy_snapshot(
            &request.source_snapshot_id,
            &request.source_region,
            request.description,
            tags,
            request.dry_run,
        )
        .await?;
    answer(json!({"SnapshotId": copy.snapshot_id, "Tags": tags_output(&copy.tags)}))
}

/// The model's `InstanceSpecification`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InstanceSpecification {
    instance_id: String,
    #[serde(default)]
    exclude_boot_volume: bool,
    #[serde(default)]
    exclude_data_volume_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateSnapshots {
    instance_specification: InstanceSpecification,
    description: Option<String>,
    outpost_arn: Option<String>,
    location: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    copy_tags_from_source: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn create_snapshots(context: &ApiContext, request: Value) -> BoxFuture<'_, Output> {
    Box::pin(snapshots_of_instance(context, request))
}

async fn snapshots_of_instance(context: &ApiContext, request: Value) -> Output {
    let request: CreateSnapshots = input(request)?;
    if request.outpost_arn.is_some() {
        return Err(super::unsupported_parameter("OutpostArn"));
    }
    if request.location.as_deref().is_some_and(|l| l != "regional") {
        return Err(super::unsupported_parameter("Location=local"));
    }
    let instance = request.instance_specification;
    let snapshots = context
        .control
        .create_instance_snapshots(InstanceSnapshotsRequest {
            instance_id: instance.instance_id,
            exclude_boot_volume: instance.exclude_boot_volume,
            excluded_volume_ids: instance.exclude_data_volume_ids,
            description: request.description.unwrap_or_default(),
            tags: tags_of_created(&request.tag_specifications, Snapshot::KIND)?,
            copy_volume_tags: request.copy_tags_from_source.as_deref() == Some("volume"),
            dry_run: request.dry_run,
        })
        .await?;
    let owner = &context.control.config().account_id;
    let shown: Vec<Value> = (snapshots.iter())
        .map(|snapshot| snapshot_output(snapshot, owner))
        .collect();
    answer(json!({"Snapshots": shown}))
}
