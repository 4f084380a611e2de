//! CreateLaunchTemplate, DescribeLaunchTemplates, DeleteLaunchTemplate, ModifyLaunchTemplate,
//! CreateLaunchTemplateVersion, DescribeLaunchTemplateVersions, DeleteLaunchTemplateVersions,
//! GetLaunchTemplateData.

use control::idempotency::ClientToken;
use control::launch_templates::{
    LaunchTemplate, LaunchTemplateData, NewVersion, TemplateRef, VersionQuery, VersionRow,
};
use control::tags::{tags_of_created, TagSpecification};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, caller_arn, describe_request, image_alias, input, page_output, tags_output, Handler,
    Output,
};
use control::Tables;

use crate::ApiContext;
use crate::ApiError;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    (
        "GetLaunchTemplateData",
        Handler::Sync(get_launch_template_data),
    ),
    (
        "CreateLaunchTemplate",
        Handler::Sync(create_launch_template),
    ),
    (
        "DescribeLaunchTemplates",
        Handler::Sync(describe_launch_templates),
    ),
    (
        "DeleteLaunchTemplate",
        Handler::Sync(delete_launch_template),
    ),
    (
        "ModifyLaunchTemplate",
        Handler::Sync(modify_launch_template),
    ),
    (
        "CreateLaunchTemplateVersion",
        Handler::Sync(create_launch_template_version),
    ),
    (
        "DescribeLaunchTemplateVersions",
        Handler::Sync(describe_launch_template_versions),
    ),
    (
        "DeleteLaunchTemplateVersions",
        Handler::Sync(delete_launch_template_versions),
    ),
];

/// A template's summary (the model's `LaunchTemplate`).
fn template_output(template: &LaunchTemplate) -> Value {
    json!({
        "LaunchTemplateId": template.launch_template_id,
        "LaunchTemplateName": template.launch_template_name,
        "CreateTime": nimbus_core::iso8601_millis(template.create_time),
        "CreatedBy": template.created_by,
        "DefaultVersionNumber": template.default_version,
        "LatestVersionNumber": template.latest_version(),
        "Tags": tags_output(&template.tags),
    })
}

/// One version (the model's `LaunchTemplateVersion`); its data has the member names of
/// `ResponseLaunchTemplateData`.
fn version_output(row: &VersionRow) -> Value {
    json!({
        "LaunchTemplateId": row.launch_template_id,
        "LaunchTemplateName": row.launch_template_name,
        "VersionNumber": row.version.version_number,
        "VersionDescription": row.version.description,
        "CreateTime": nimbus_core::iso8601_millis(row.version.create_time),
        "CreatedBy": row.version.created_by,
        "DefaultVersion": row.is_default,
        "LaunchTemplateData": row.version.data,
    })
}

/// The new version's parts: a field of `LaunchTemplateData` RunInstances does not honour is
/// refused by name; an image alias must name an image parameter.
fn new_version(
    context: &ApiContext,
    description: Option<String>,
    data: Value,
) -> Result<NewVersion, ApiError> {
    let data = input::<LaunchTemplateData>(data)?;
    if let Some(image_id) = &data.image_id {
        image_alias::check_for_template(context, image_id)?;
    }
    Ok(NewVersion {
        description,
        data,
        created_by: caller_arn(),
    })
}

/// With `ResolveAlias`, a version's image alias shows as the AMI it names now.
fn resolved(
    context: &ApiContext,
    mut row: VersionRow,
    resolve_alias: bool,
) -> Result<VersionRow, ApiError> {
    if let Some(image_id) = row.version.data.image_id.as_mut().filter(|_| resolve_alias) {
        *image_id = image_alias::resolve(context, image_id)?;
    }
    Ok(row)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateLaunchTemplate {
    launch_template_name: String,
    version_description: Option<String>,
    launch_template_data: Value,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn create_launch_template(context: &ApiContext, request: Value) -> Output {
    let token = ClientToken::of_request("CreateLaunchTemplate", &request)?;
    let request: CreateLaunchTemplate = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, LaunchTemplate::KIND)?;
    let version = new_version(
        context,
        request.version_description,
        request.launch_template_data,
    )?;
    let template = context.control.create_launch_template(
        &request.launch_template_name,
        version,
        tags,
        token.as_ref(),
        request.dry_run,
    )?;
    answer(json!({"LaunchTemplate": template_output(&template)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeLaunchTemplates {
    #[serde(default)]
    launch_template_names: Vec<String>,
}

fn describe_launch_templates(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeLaunchTemplates) =
        describe_request(request, Some("LaunchTemplateIds"))?;
    let page = context
        .control
        .describe_launch_templates(&request.launch_template_names, &query)?;
    Ok(page_output("LaunchTemplates", page, |template| {
        template_output(&template)
    }))
}

/// The template a request names by `LaunchTemplateId` or `LaunchTemplateName`.
fn target<'a>(id: &'a Option<String>, name: &'a Option<String>) -> TemplateRef<'a> {
    TemplateRef {
        id: id.as_deref(),
        name: name.as_deref(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteLaunchTemplate {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn delete_launch_template(context: &ApiContext, request: Value) -> Output {
    let request: DeleteLaunchTemplate = input(request)?;
    let template = context.control.delete_launch_template(
        target(&request.launch_template_id, &request.launch_template_name),
        request.dry_run,
    )?;
    answer(json!({"LaunchTemplate": template_output(&template)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyLaunchTemplate {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
    default_version: Option<String>,
    /// Accepted: setting the default version again changes nothing.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
}

fn modify_launch_template(context: &ApiContext, request: Value) -> Output {
    let request: ModifyLaunchTemplate = input(request)?;
    let template = context.control.modify_launch_template(
        target(&request.launch_template_id, &request.launch_template_name),
        request.default_version.as_deref(),
        request.dry_run,
    )?;
    answer(json!({"LaunchTemplate": template_output(&template)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateLaunchTemplateVersion {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
    source_version: Option<String>,
    version_description: Option<String>,
    launch_template_data: Value,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    resolve_alias: bool,
}

fn create_launch_template_version(context: &ApiContext, request: Value) -> Output {
    let token = ClientToken::of_request("CreateLaunchTemplateVersion", &request)?;
    let request: CreateLaunchTemplateVersion = input(request)?;
    let version = new_version(
        context,
        request.version_description,
        request.launch_template_data,
    )?;
    let created = context.control.create_launch_template_version(
        target(&request.launch_template_id, &request.launch_template_name),
        request.source_version.as_deref(),
        version,
        token.as_ref(),
        request.dry_run,
    )?;
    let created = resolved(context, created, request.resolve_alias)?;
    answer(json!({"LaunchTemplateVersion": version_output(&created)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeLaunchTemplateVersions {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    #[serde(default)]
    versions: Vec<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    #[serde(default)]
    resolve_alias: bool,
}

fn version_number(member: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::from(control::Error::InvalidParameterValue(format!(
                    "{member} must be a version number, not '{v}'."
                )))
            })
        })
        .transpose()
}

fn describe_launch_template_versions(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeLaunchTemplateVersions) = describe_request(request, None)?;
    let named = request.launch_template_id.is_some() || request.launch_template_name.is_some();
    let versions = VersionQuery {
        template: named.then_some(target(
            &request.launch_template_id,
            &request.launch_template_name,
        )),
        versions: &request.versions,
        min_version: version_number("MinVersion", request.min_version.as_deref())?,
        max_version: version_number("MaxVersion", request.max_version.as_deref())?,
    };
    let (rows, next_token) = context
        .control
        .describe_launch_template_versions(&versions, &query)?;
    let rows = (rows.into_iter())
        .map(|row| resolved(context, row, request.resolve_alias))
        .collect::<Result<Vec<_>, _>>()?;
    let page = (rows, next_token);
    Ok(page_output("LaunchTemplateVersions", page, |row| {
        version_output(&row)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteLaunchTemplateVersions {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
    versions: Vec<String>,
}

fn delete_launch_template_versions(context: &ApiContext, request: Value) -> Output {
    let request: DeleteLaunchTemplateVersions = input(request)?;
    let outcome = context.control.delete_launch_template_versions(
        target(&request.launch_template_id, &request.launch_template_name),
        &request.versions,
        request.dry_run,
    )?;
    let id = &outcome.template.launch_template_id;
    let name = &outcome.template.launch_template_name;
    let deleted: Vec<Value> = (outcome.deleted.iter())
        .map(|number| {
            json!({"LaunchTemplateId": id, "LaunchTemplateName": name, "VersionNumber": number})
        })
        .collect();
    let refused: Vec<Value> = (outcome.refused.iter())
        .map(|(version, code, message)| {
            json!({
                "LaunchTemplateId": id,
                "LaunchTemplateName": name,
                "VersionNumber": version.parse::<u64>().ok(),
                "ResponseError": {"Code": code, "Message": message},
            })
        })
        .collect();
    answer(json!({
        "SuccessfullyDeletedLaunchTemplateVersions": deleted,
        "UnsuccessfullyDeletedLaunchTemplateVersions": refused,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetLaunchTemplateData {
    instance_id: String,
    #[serde(default)]
    dry_run: bool,
}

/// The launch parameters of an instance as launch template data, read from what
/// DescribeInstances shows of it, its volumes and its options.
fn get_launch_template_data(context: &ApiContext, request: Value) -> Output {
    let request: GetLaunchTemplateData = input(request)?;
    let state = context.control.read();
    let instance =
        control::describe::existing::<control::instances::Instance>(&state, &request.instance_id)?;
    if request.dry_run {
        return Err(control::Error::DryRunOperation.into());
    }
    let shown = super::instances::instance_output(instance, &state, context.control.config());
    let mut data = serde_json::Map::new();
    let copied = [
        "ImageId",
        "InstanceType",
        "KeyName",
        "EbsOptimized",
        "CpuOptions",
        "MetadataOptions",
        "MaintenanceOptions",
        "HibernationOptions",
        "EnclaveOptions",
        "CapacityReservationSpecification",
        "PrivateDnsNameOptions",
    ];
    for key in copied {
        if let Some(value) = shown.get(key).filter(|v| !v.is_null()) {
            data.insert(key.into(), value.clone());
        }
    }
    data.insert(
        "Placement".into(),
        json!({ "AvailabilityZone": shown["Placement"]["AvailabilityZone"], "Tenancy": "default" }),
    );
    data.insert(
        "Monitoring".into(),
        json!({ "Enabled": shown["Monitoring"]["State"] == "enabled" }),
    );
    if let Some(arn) = shown["IamInstanceProfile"]["Arn"].as_str() {
        data.insert("IamInstanceProfile".into(), json!({ "Arn": arn }));
    }
    data.insert(
        "InstanceInitiatedShutdownBehavior".into(),
        json!(instance.shutdown_behavior.as_str()),
    );
    data.insert(
        "DisableApiTermination".into(),
        json!(instance.options.disable_api_termination),
    );
    data.insert(
        "DisableApiStop".into(),
        json!(instance.options.disable_api_stop),
    );
    if let Some(user_data) = &instance.user_data {
        data.insert("UserData".into(), json!(user_data));
    }
    let instance_type = control::catalog::find_instance_type(&instance.instance_type);
    if let Some(credits) = instance_type.and_then(|t| instance.options.cpu_credits(t)) {
        data.insert(
            "CreditSpecification".into(),
            json!({ "CpuCredits": credits.as_str() }),
        );
    }
    if !instance.tags.is_empty() {
        data.insert(
            "TagSpecifications".into(),
            json!([{ "ResourceType": "instance", "Tags": tags_output(&instance.tags) }]),
        );
    }
    let devices: Vec<Value> = (instance.disks.iter())
        .filter_map(|disk| {
            let volume = state.volumes().get(&disk.volume_id)?;
            let attachment = volume.attachments.first()?;
            let mut ebs = json!({
                "VolumeSize": volume.size_gib,
                "VolumeType": volume.volume_type.as_str(),
                "DeleteOnTermination": attachment.delete_on_termination,
                "Encrypted": false,
            });
            if let Some(iops) = volume.reported_iops() {
                ebs["Iops"] = json!(iops);
            }
            if let Some(snapshot) = &volume.snapshot_id {
                ebs["SnapshotId"] = json!(snapshot);
            }
            Some(json!({ "DeviceName": disk.device_name, "Ebs": ebs }))
        })
        .collect();
    data.insert("BlockDeviceMappings".into(), json!(devices));
    let interfaces: Vec<Value> = (shown["NetworkInterfaces"].as_array().into_iter().flatten())
        .map(|interface| {
            let groups: Vec<&Value> = (interface["Groups"].as_array().into_iter().flatten())
                .map(|g| &g["GroupId"])
                .collect();
            json!({
                "DeviceIndex": interface["Attachment"]["DeviceIndex"],
                "DeleteOnTermination": interface["Attachment"]["DeleteOnTermination"],
                "SubnetId": interface["SubnetId"],
                "Groups": groups,
                "Description": interface["Description"],
            })
        })
        .collect();
    data.insert("NetworkInterfaces".into(), json!(interfaces));
    answer(json!({ "LaunchTemplateData": data }))
}
