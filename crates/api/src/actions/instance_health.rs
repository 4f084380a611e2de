//! DescribeInstanceStatus (the observed status checks), MonitorInstances/UnmonitorInstances
//! (detailed monitoring) and ModifyInstanceMaintenanceOptions (auto-recovery).

use control::filter::{wildcard_match, Filter};
use control::instances::Instance;
use control::status_checks::{Check, InstanceChecks};
use serde::Deserialize;
use serde_json::{json, Value};

use super::instances::state_output;
use super::{answer, describe_request, input, page_output, unsupported_parameter, Handler, Output};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    (
        "DescribeInstanceStatus",
        Handler::Sync(describe_instance_status),
    ),
    ("MonitorInstances", Handler::Sync(monitor_instances)),
    ("UnmonitorInstances", Handler::Sync(unmonitor_instances)),
    (
        "ModifyInstanceMaintenanceOptions",
        Handler::Sync(modify_instance_maintenance_options),
    ),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeInstanceStatus {
    #[serde(default)]
    include_all_instances: bool,
}

/// The status filters: what an instance's checks show for each.
fn status_value(name: &str, checks: &InstanceChecks) -> Option<&'static str> {
    Some(match name {
        "system-status.status" => checks.system.status.as_str(),
        "system-status.reachability" => checks.system.status.detail(),
        "instance-status.status" => checks.instance.status.as_str(),
        "instance-status.reachability" => checks.instance.status.detail(),
        _ => return None,
    })
}

fn describe_instance_status(context: &ApiContext, request: Value) -> Output {
    let (mut query, request): (_, DescribeInstanceStatus) =
        describe_request(request, Some("InstanceIds"))?;
    let (status_filters, filters): (Vec<Filter>, Vec<Filter>) =
        query.filters.into_iter().partition(|f| {
            f.name.starts_with("instance-status.") || f.name.starts_with("system-status.")
        });
    if let Some(unknown) = status_filters
        .iter()
        .find(|f| status_value(&f.name, &InstanceChecks::NOT_APPLICABLE).is_none())
    {
        return Err(control::Error::InvalidParameterValue(format!(
            "The filter '{}' is invalid",
            unknown.name
        ))
        .into());
    }
    query.filters = filters;
    let (instances, next_token) = context.control.describe_instances(&query)?;
    let shown: Vec<(&Instance, InstanceChecks)> = instances
        .iter()
        .filter(|i| {
            request.include_all_instances || i.state == control::instances::InstanceState::Running
        })
        .map(|i| (i, context.control.status_checks(i)))
        .filter(|(_, checks)| {
            status_filters.iter().all(|f| {
                let shown = status_value(&f.name, checks).unwrap_or_default();
                f.values.iter().any(|v| wildcard_match(v, shown))
            })
        })
        .collect();
    Ok(page_output(
        "InstanceStatuses",
        (shown, next_token),
        |(instance, checks)| {
            json!({
                "InstanceId": instance.instance_id,
                "AvailabilityZone": instance.availability_zone,
                "InstanceState": state_output(instance.state),
                "SystemStatus": check_output(checks.system),
                "InstanceStatus": check_output(checks.instance),
            })
        },
    ))
}

fn check_output(check: Check) -> Value {
    json!({
        "Status": check.status.as_str(),
        "Details": [{
            "Name": "reachability",
            "Status": check.status.detail(),
            "ImpairedSince": check.impaired_since.map(nimbus_core::iso8601_millis),
        }],
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MonitorInstances {
    #[serde(default)]
    instance_ids: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

fn monitor_instances(context: &ApiContext, request: Value) -> Output {
    set_monitoring(context, request, true)
}

fn unmonitor_instances(context: &ApiContext, request: Value) -> Output {
    set_monitoring(context, request, false)
}

/// EC2 answers with the transition under way (`pending`, `disabling`); DescribeInstances
/// shows where it lands (`enabled`, `disabled`), which in nimbus is at once.
fn set_monitoring(context: &ApiContext, request: Value, enabled: bool) -> Output {
    let request: MonitorInstances = input(request)?;
    let ids =
        context
            .control
            .set_detailed_monitoring(&request.instance_ids, enabled, request.dry_run)?;
    let shown = if enabled { "pending" } else { "disabling" };
    let monitorings: Vec<Value> = (ids.iter())
        .map(|id| json!({"InstanceId": id, "Monitoring": {"State": shown}}))
        .collect();
    answer(json!({"InstanceMonitorings": monitorings}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyInstanceMaintenanceOptions {
    instance_id: String,
    auto_recovery: Option<String>,
    reboot_migration: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn modify_instance_maintenance_options(context: &ApiContext, request: Value) -> Output {
    let request: ModifyInstanceMaintenanceOptions = input(request)?;
    if request.reboot_migration.is_some() {
        return Err(unsupported_parameter("RebootMigration"));
    }
    let instance = context.control.modify_maintenance_options(
        &request.instance_id,
        request.auto_recovery.as_deref(),
        request.dry_run,
    )?;
    answer(json!({
        "InstanceId": instance.instance_id,
        "AutoRecovery": instance.auto_recovery.as_str(),
    }))
}
