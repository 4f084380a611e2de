//! Modify/Describe/ResetImageAttribute and Modify/Describe/ResetSnapshotAttribute: an image's
//! description and launch permission, a snapshot's create-volume permission, and the other
//! attributes AWS models, answered as nimbus has them.

use control::images::Image;
use control::instances::Instance;
use control::permissions::{Grantee, Permissions};
use control::snapshots::Snapshot;
use control::Tables;
use serde::Deserialize;
use serde_json::{json, Value};

use super::images::devices_output;
use super::{answer, input, unsupported_parameter, Handler, Output};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    (
        "ModifyImageAttribute",
        Handler::Sync(modify_image_attribute),
    ),
    (
        "DescribeImageAttribute",
        Handler::Sync(describe_image_attribute),
    ),
    ("ResetImageAttribute", Handler::Sync(reset_image_attribute)),
    (
        "ModifySnapshotAttribute",
        Handler::Sync(modify_snapshot_attribute),
    ),
    (
        "DescribeSnapshotAttribute",
        Handler::Sync(describe_snapshot_attribute),
    ),
    (
        "ResetSnapshotAttribute",
        Handler::Sync(reset_snapshot_attribute),
    ),
];

/// `{"Value": …}`, as EC2 wraps an attribute's value.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AttributeValue {
    value: Option<String>,
}

/// One entry of a launch or create-volume permission; organizations are refused by name.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PermissionInput {
    group: Option<String>,
    user_id: Option<String>,
    organization_arn: Option<String>,
    organizational_unit_arn: Option<String>,
}

/// `{"Add": […], "Remove": […]}`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PermissionChanges {
    #[serde(default)]
    add: Vec<PermissionInput>,
    #[serde(default)]
    remove: Vec<PermissionInput>,
}

fn grantees(entries: &[PermissionInput]) -> Result<Vec<Grantee>, ApiError> {
    entries
        .iter()
        .map(|entry| {
            if entry.organization_arn.is_some() || entry.organizational_unit_arn.is_some() {
                return Err(unsupported_parameter(
                    "OrganizationArn / OrganizationalUnitArn",
                ));
            }
            Ok(Grantee::parse(
                entry.group.as_deref(),
                entry.user_id.as_deref(),
            )?)
        })
        .collect()
}

/// The older form, `OperationType` with `UserIds` and `UserGroups`, as additions or removals.
fn listed_changes(
    operation: Option<&str>,
    user_ids: &[String],
    groups: &[String],
) -> Result<(Vec<Grantee>, Vec<Grantee>), ApiError> {
    let listed = (groups.iter().map(|g| Grantee::parse(Some(g), None)))
        .chain(user_ids.iter().map(|u| Grantee::parse(None, Some(u))))
        .collect::<Result<Vec<_>, _>>()?;
    match operation {
        _ if listed.is_empty() => Ok((Vec::new(), Vec::new())),
        Some("add") => Ok((listed, Vec::new())),
        Some("remove") => Ok((Vec::new(), listed)),
        _ => Err(control::Error::MissingParameter("OperationType".into()).into()),
    }
}

/// A permission as the model's `LaunchPermissionList` / `CreateVolumePermissionList`.
fn permissions_output(permissions: &Permissions) -> Vec<Value> {
    let group = permissions.public.then(|| json!({"Group": "all"}));
    (group.into_iter())
        .chain(permissions.user_ids.iter().map(|id| json!({"UserId": id})))
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyImageAttribute {
    image_id: String,
    attribute: Option<String>,
    value: Option<String>,
    description: Option<AttributeValue>,
    launch_permission: Option<PermissionChanges>,
    operation_type: Option<String>,
    #[serde(default)]
    user_ids: Vec<String>,
    #[serde(default)]
    user_groups: Vec<String>,
    #[serde(default)]
    product_codes: Vec<String>,
    #[serde(default)]
    organization_arns: Vec<String>,
    #[serde(default)]
    organizational_unit_arns: Vec<String>,
    imds_support: Option<AttributeValue>,
    #[serde(default)]
    dry_run: bool,
}

fn modify_image_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ModifyImageAttribute = input(request)?;
    if !request.product_codes.is_empty() {
        return Err(unsupported_parameter("ProductCodes"));
    }
    if !request.organization_arns.is_empty() || !request.organizational_unit_arns.is_empty() {
        return Err(unsupported_parameter(
            "OrganizationArns / OrganizationalUnitArns",
        ));
    }
    if request.imds_support.is_some() {
        return Err(unsupported_parameter("ImdsSupport"));
    }
    let attribute = request.attribute.as_deref();
    let description = match (request.description, attribute) {
        (Some(description), _) => Some(description.value.unwrap_or_default()),
        (None, Some("description")) => Some(request.value.unwrap_or_default()),
        _ => None,
    };
    let changes = request.launch_permission.unwrap_or_default();
    let (mut add, mut remove) = (grantees(&changes.add)?, grantees(&changes.remove)?);
    let (listed_add, listed_remove) = listed_changes(
        request.operation_type.as_deref(),
        &request.user_ids,
        &request.user_groups,
    )?;
    add.extend(listed_add);
    remove.extend(listed_remove);
    if description.is_none() && add.is_empty() && remove.is_empty() {
        return Err(control::Error::MissingParameter(
            "Description, LaunchPermission or Attribute with its values".into(),
        )
        .into());
    }
    context
        .control
        .change_existing::<Image>(&request.image_id, request.dry_run, |image| {
            if let Some(description) = description {
                image.description = description;
            }
            image.launch_permissions.change(&add, &remove);
            Ok(())
        })?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeImageAttribute {
    image_id: String,
    attribute: String,
}

/// When an instance was last launched from `image_id`, among the instances nimbus still has.
fn last_launched(state: &control::State, image_id: &str) -> Option<i64> {
    (state.instances().values())
        .filter(|i: &&Instance| i.image_id == image_id)
        .map(|i| i.launch_time)
        .max()
}

fn describe_image_attribute(context: &ApiContext, request: Value) -> Output {
    let request: DescribeImageAttribute = input(request)?;
    let state = context.control.read();
    let image = control::describe::existing::<Image>(&state, &request.image_id)?;
    let value = |text: Option<String>| text.map_or_else(|| json!({}), |v| json!({"Value": v}));
    let (member, shown) = match request.attribute.as_str() {
        "description" => ("Description", value(Some(image.description.clone()))),
        "launchPermission" => (
            "LaunchPermissions",
            json!(permissions_output(&image.launch_permissions)),
        ),
        "productCodes" => ("ProductCodes", json!([])),
        "blockDeviceMapping" => ("BlockDeviceMappings", json!(devices_output(image))),
        "lastLaunchedTime" => (
            "LastLaunchedTime",
            value(last_launched(&state, &image.image_id).map(nimbus_core::iso8601_millis)),
        ),
        "deregistrationProtection" => ("DeregistrationProtection", value(Some("disabled".into()))),
        // nimbus boots the AMI's own kernel and initramfs directly: there is no separate
        // kernel or RAM disk image, no SR-IOV, UEFI, TPM or IMDS requirement to report.
        "kernel" => ("KernelId", json!({})),
        "ramdisk" => ("RamdiskId", json!({})),
        "sriovNetSupport" => ("SriovNetSupport", json!({})),
        "bootMode" => ("BootMode", json!({})),
        "tpmSupport" => ("TpmSupport", json!({})),
        "uefiData" => ("UefiData", json!({})),
        "imdsSupport" => ("ImdsSupport", json!({})),
        other => {
            return Err(control::Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter attribute is invalid."
            ))
            .into())
        }
    };
    answer(json!({"ImageId": image.image_id, member: shown}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ResetAttribute {
    #[serde(rename = "ImageId", alias = "SnapshotId")]
    resource_id: String,
    attribute: String,
    #[serde(default)]
    dry_run: bool,
}

/// The one attribute a Reset…Attribute action resets.
fn only(attribute: &str, resettable: &str) -> Result<(), ApiError> {
    if attribute == resettable {
        Ok(())
    } else {
        Err(control::Error::InvalidParameterValue(format!(
            "The attribute {attribute} cannot be reset; only {resettable} can."
        ))
        .into())
    }
}

fn reset_image_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ResetAttribute = input(request)?;
    only(&request.attribute, "launchPermission")?;
    context
        .control
        .change_existing::<Image>(&request.resource_id, request.dry_run, |image| {
            image.launch_permissions = Permissions::default();
            Ok(())
        })?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifySnapshotAttribute {
    snapshot_id: String,
    attribute: Option<String>,
    create_volume_permission: Option<PermissionChanges>,
    operation_type: Option<String>,
    #[serde(default)]
    user_ids: Vec<String>,
    #[serde(default)]
    group_names: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

fn modify_snapshot_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ModifySnapshotAttribute = input(request)?;
    if request.attribute.as_deref() == Some("productCodes") {
        return Err(unsupported_parameter("Attribute=productCodes"));
    }
    let changes = request.create_volume_permission.unwrap_or_default();
    let (mut add, mut remove) = (grantees(&changes.add)?, grantees(&changes.remove)?);
    let (listed_add, listed_remove) = listed_changes(
        request.operation_type.as_deref(),
        &request.user_ids,
        &request.group_names,
    )?;
    add.extend(listed_add);
    remove.extend(listed_remove);
    if add.is_empty() && remove.is_empty() {
        return Err(control::Error::MissingParameter(
            "CreateVolumePermission, or OperationType with UserIds or GroupNames".into(),
        )
        .into());
    }
    context.control.change_existing::<Snapshot>(
        &request.snapshot_id,
        request.dry_run,
        |snapshot| {
            snapshot.create_volume_permissions.change(&add, &remove);
            Ok(())
        },
    )?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSnapshotAttribute {
    snapshot_id: String,
    attribute: String,
}

fn describe_snapshot_attribute(context: &ApiContext, request: Value) -> Output {
    let request: DescribeSnapshotAttribute = input(request)?;
    let state = context.control.read();
    let snapshot = control::describe::existing::<Snapshot>(&state, &request.snapshot_id)?;
    let (member, shown) = match request.attribute.as_str() {
        "createVolumePermission" => (
            "CreateVolumePermissions",
            permissions_output(&snapshot.create_volume_permissions),
        ),
        _ => ("ProductCodes", Vec::new()),
    };
    answer(json!({"SnapshotId": snapshot.snapshot_id, member: shown}))
}

fn reset_snapshot_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ResetAttribute = input(request)?;
    only(&request.attribute, "createVolumePermission")?;
    context.control.change_existing::<Snapshot>(
        &request.resource_id,
        request.dry_run,
        |snapshot| {
            snapshot.create_volume_permissions = Permissions::default();
            Ok(())
        },
    )?;
    answer(Value::Null)
}
