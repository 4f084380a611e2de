//! DescribeInstanceStatus (the observed status checks), MonitorInstances/UnmonitorInstances
//! (detailed monitoring) and ModifyInstanceMaintenanceOptions (auto-recovery).

use control::filter::{wildcard_match, Filter};
use control::instances::Instance;
use control::status_checks::{Check, InstanceChecks};
use serde::Deserialize;
use serde_json::Value;

use super::instances::write_state;
use super::{describe_request, input, unsupported_parameter, write_page, Response};
use crate::{ApiContext, ApiError};

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

pub fn describe_instance_status(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        write_page(
            xml,
            "instanceStatusSet",
            &shown,
            next_token.as_deref(),
            |xml, (instance, checks)| {
                xml.leaf("instanceId", &instance.instance_id);
                xml.leaf("availabilityZone", &instance.availability_zone);
                write_state(xml, "instanceState", instance.state);
                write_check(xml, "systemStatus", checks.system);
                write_check(xml, "instanceStatus", checks.instance);
            },
        )
    })
}

fn write_check(xml: &mut awsproto::XmlWriter, element: &str, check: Check) {
    xml.start(element);
    xml.leaf("status", check.status.as_str());
    xml.start("details");
    xml.start("item");
    xml.leaf("name", "reachability");
    xml.leaf("status", check.status.detail());
    if let Some(since) = check.impaired_since {
        xml.leaf("impairedSince", &nimbus_core::iso8601_millis(since));
    }
    xml.end();
    xml.end();
    xml.end();
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MonitorInstances {
    #[serde(default)]
    instance_ids: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn monitor_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    set_monitoring(context, request, response, true)
}

pub fn unmonitor_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    set_monitoring(context, request, response, false)
}

/// EC2 answers with the transition under way (`pending`, `disabling`); DescribeInstances
/// shows where it lands (`enabled`, `disabled`), which in nimbus is at once.
fn set_monitoring(
    context: &ApiContext,
    request: Value,
    response: Response,
    enabled: bool,
) -> Result<String, ApiError> {
    let request: MonitorInstances = input(request)?;
    let ids =
        context
            .control
            .set_detailed_monitoring(&request.instance_ids, enabled, request.dry_run)?;
    let shown = if enabled { "pending" } else { "disabling" };
    response.render(|xml| {
        xml.start("instancesSet");
        for id in &ids {
            xml.start("item");
            xml.leaf("instanceId", id);
            xml.start("monitoring");
            xml.leaf("state", shown);
            xml.end();
            xml.end();
        }
        xml.end();
    })
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

pub fn modify_instance_maintenance_options(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ModifyInstanceMaintenanceOptions = input(request)?;
    if request.reboot_migration.is_some() {
        return Err(unsupported_parameter("RebootMigration"));
    }
    let instance = context.control.modify_maintenance_options(
        &request.instance_id,
        request.auto_recovery.as_deref(),
        request.dry_run,
    )?;
    response.render(|xml| {
        xml.leaf("instanceId", &instance.instance_id);
        xml.leaf("autoRecovery", instance.auto_recovery.as_str());
    })
}
