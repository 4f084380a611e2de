//! CreateSnapshot, DescribeSnapshots, DeleteSnapshot, CopySnapshot.

use control::snapshots::Snapshot;
use control::tags::{tags_of_created, TagSpecification};
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, write_tag_set, Response};
use crate::{ApiContext, ApiError};

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

pub async fn create_snapshot(
    context: &ApiContext,
    request: Value,
    response: Response<'_>,
) -> Result<String, ApiError> {
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
    response.render(|xml| write_snapshot(xml, &snapshot, owner))
}

fn write_snapshot(xml: &mut awsproto::XmlWriter, snapshot: &Snapshot, owner: &str) {
    xml.leaf("snapshotId", &snapshot.snapshot_id);
    xml.leaf("volumeId", &snapshot.volume_id);
    xml.leaf("status", snapshot.state.as_str());
    if let Some(message) = &snapshot.state_message {
        xml.leaf("statusMessage", message);
    }
    xml.leaf(
        "startTime",
        &nimbus_core::iso8601_millis(snapshot.start_time),
    );
    xml.leaf("progress", &format!("{}%", snapshot.progress));
    xml.leaf("ownerId", owner);
    xml.leaf("volumeSize", &snapshot.volume_size_gib.to_string());
    xml.leaf("description", &snapshot.description);
    xml.leaf("encrypted", "false");
    xml.leaf("storageTier", "standard");
    write_tag_set(xml, &snapshot.tags);
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSnapshots {
    #[serde(default)]
    owner_ids: Vec<String>,
    #[serde(default)]
    restorable_by_user_ids: Vec<String>,
}

pub fn describe_snapshots(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    render_page(
        response,
        "snapshotSet",
        (snapshots, next_token),
        |xml, snapshot| write_snapshot(xml, snapshot, &account),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteSnapshot {
    snapshot_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub async fn delete_snapshot(
    context: &ApiContext,
    request: Value,
    response: Response<'_>,
) -> Result<String, ApiError> {
    let request: DeleteSnapshot = input(request)?;
    context
        .control
        .delete_snapshot(&request.snapshot_id, request.dry_run)
        .await?;
    response.render(|xml| xml.leaf("return", "true"))
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

pub async fn copy_snapshot(
    context: &ApiContext,
    request: Value,
    response: Response<'_>,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.leaf("snapshotId", &copy.snapshot_id);
        write_tag_set(xml, &copy.tags);
    })
}
