//! CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot.

use control::snapshots::Snapshot;
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
    // Only the account itself can restore its snapshots: other users see nothing.
    let restorable_by_others = request
        .restorable_by_user_ids
        .iter()
        .any(|u| u != "self" && *u != account);
    let snapshots = if restorable_by_others {
        Vec::new()
    } else {
        snapshots
    };
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
