//! Auto Scaling groups: the record, and Create/Update/Delete/DescribeAutoScalingGroups,
//! Suspend/ResumeProcesses and the group's tags.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ec2::TemplateSpec;
use crate::hooks::Hook;
use crate::kinds::Tables;
use crate::members::Member;
use crate::refresh::Refresh;
use crate::schedule::ScheduledAction;
use crate::warm::WarmPool;
use crate::{AutoScaling, AutoScalingError, Result};

/// The processes of a group (SuspendProcesses), all honoured by the fleet reconciler except
/// those that need what nimbus does not have yet (see `docs/compatibility.md`).
pub const PROCESSES: [&str; 9] = [
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "AlarmNotification",
    "AZRebalance",
    "HealthCheck",
    "InstanceRefresh",
    "ReplaceUnhealthy",
    "ScheduledActions",
];

/// The termination policies nimbus carries out.
const TERMINATION_POLICIES: [&str; 3] = ["Default", "OldestInstance", "NewestInstance"];

/// A group tag; `PropagateAtLaunch` ones are put on the instances the group launches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupTag {
    pub key: String,
    pub value: String,
    pub propagate_at_launch: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub arn: String,
    pub template: TemplateSpec,
    /// The template's ID and name as EC2 found them at create or update.
    pub template_id: String,
    pub template_name: String,
    /// `MixedInstancesPolicy` overrides, launched in turn; empty means the template's type.
    pub instance_types: Vec<String>,
    /// Whether the template came through a `MixedInstancesPolicy` (answered the same way).
    pub mixed_instances: bool,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    pub default_cooldown: u32,
    pub default_instance_warmup: Option<u32>,
    /// `VPCZoneIdentifier`, in the user's order, with each subnet's zone.
    pub subnets: Vec<(String, String)>,
    pub zones: Vec<String>,
    pub health_check_type: String,
    pub health_check_grace_period: u32,
    pub termination_policies: Vec<String>,
    pub new_instances_protected_from_scale_in: bool,
    pub tags: Vec<GroupTag>,
    /// Suspended processes, with why (`User suspended at …`).
    pub suspended: BTreeMap<String, String>,
    pub created_ms: i64,
    /// DeleteAutoScalingGroup with `ForceDelete` while members remain: the reconciler
    /// terminates them, then removes the group.
    pub deleting: bool,
    pub members: Vec<Member>,
    /// Launches asked of EC2 and not yet answered with an instance ID, by activity ID; they
    /// count toward capacity, and a restart retries them with the same client token.
    pub launching: Vec<String>,
    /// Why the desired capacity last changed, the first sentence of later activities' causes.
    pub last_change: String,
    /// After a launch EC2 refused, none is tried again before this moment (milliseconds), so a
    /// broken template does not fill the history with a failure a second.
    #[serde(default)]
    pub launch_backoff_until_ms: i64,
    /// When a scaling policy last changed the desired capacity (its cooldown runs from there).
    pub last_scaled_ms: i64,
    /// An Availability Zone rebalancing launch went beyond the desired capacity; a member of
    /// the fullest zone leaves once it is InService.
    #[serde(default)]
    pub rebalancing: bool,
    /// Members taken out of service as unhealthy and not yet replaced: the next launches say so.
    pub replacements_due: u32,
    pub hooks: Vec<Hook>,
    pub scheduled_actions: Vec<ScheduledAction>,
    pub warm_pool: Option<WarmPool>,
    /// Launches into the warm pool not yet answered by EC2, by activity ID.
    pub warm_launching: Vec<String>,
    /// Instance refreshes, newest last.
    pub refreshes: Vec<Refresh>,
    /// `EnableMetricsCollection`: the `AWS/AutoScaling` metrics published, by name.
    pub enabled_metrics: BTreeSet<String>,
    /// Elastic Load Balancing target groups its InService members are registered in.
    #[serde(default)]
    pub target_groups: Vec<String>,
}

impl Group {
    /// Launches from now on use this template (UpdateAutoScalingGroup, an instance refresh).
    pub(crate) fn use_template(
        &mut self,
        choice: TemplateChoice,
        found: crate::ec2::FoundTemplate,
    ) {
        self.template = choice.spec;
        self.template_id = found.id;
        self.template_name = found.name;
        self.instance_types = choice.instance_types;
        self.mixed_instances = choice.mixed;
    }

    pub fn suspended(&self, process: &str) -> bool {
        self.suspended.contains_key(process)
    }

    /// Whether the zones are out of balance by more than one instance, with the group settled
    /// (at its capacity, every member InService, nothing launching).
    pub fn needs_rebalance(&self) -> bool {
        if self.rebalancing || self.suspended("AZRebalance") || !self.launching.is_empty() {
            return false;
        }
        let serving: Vec<&Member> = self.members.iter().filter(|m| m.counts()).collect();
        if serving.len() != self.desired_capacity as usize
            || serving
                .iter()
                .any(|m| m.lifecycle != crate::members::Lifecycle::InService)
        {
            return false;
        }
        let per_zone: Vec<usize> = (self.zones.iter())
            .map(|zone| serving.iter().filter(|m| &m.zone == zone).count())
            .collect();
        match (per_zone.iter().max(), per_zone.iter().min()) {
            (Some(most), Some(fewest)) => most - fewest > 1,
            _ => false,
        }
    }

    /// Members and launches that count toward the desired capacity.
    pub fn capacity(&self) -> usize {
        self.members.iter().filter(|m| m.counts()).count() + self.launching.len()
    }

    pub fn member(&self, instance_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.instance_id == instance_id)
    }

    pub fn member_mut(&mut self, instance_id: &str) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| m.instance_id == instance_id)
    }

    /// Records a new desired capacity and why it changed.
    pub fn set_desired(&mut self, desired: u32, why: &str) {
        if desired != self.desired_capacity {
            self.last_change = format!(
                "At {} {why} changing the desired capacity from {} to {desired}.",
                now_text(),
                self.desired_capacity
            );
        }
        self.desired_capacity = desired;
    }

    fn check_sizes(&self) -> Result<()> {
        if self.min_size > self.max_size {
            return Err(AutoScalingError::Validation(format!(
                "Max bound, {}, must be greater than or equal to min bound, {}",
                self.max_size, self.min_size
            )));
        }
        if self.desired_capacity < self.min_size || self.desired_capacity > self.max_size {
            return Err(AutoScalingError::Validation(format!(
                "Desired capacity:{} must be between the specified min size:{} and max size:{}",
                self.desired_capacity, self.min_size, self.max_size
            )));
        }
        Ok(())
    }

    fn status(&self) -> Option<&'static str> {
        self.deleting.then_some("Delete in progress")
    }

    /// The template as the group names it; `Version` only when the user gave one, as in AWS
    /// (Terraform reads back exactly what it sent).
    pub(crate) fn template_output(&self) -> Value {
        let mut template = json!({
            "LaunchTemplateId": self.template_id,
            "LaunchTemplateName": self.template_name,
        });
        if let Some(version) = &self.template.version {
            template["Version"] = json!(version);
        }
        template
    }

    /// The group as `DescribeAutoScalingGroups` shows it.
    fn output(&self, include_instances: bool) -> Value {
        let mut group = json!({
            "AutoScalingGroupName": self.name,
            "AutoScalingGroupARN": self.arn,
            "MinSize": self.min_size,
            "MaxSize": self.max_size,
            "DesiredCapacity": self.desired_capacity,
            "DefaultCooldown": self.default_cooldown,
            "AvailabilityZones": self.zones,
            "LoadBalancerNames": [],
            "TargetGroupARNs": self.target_groups,
            "TrafficSources": self.target_groups.iter().map(|arn| json!({
                "Identifier": arn,
                "Type": "elbv2",
            })).collect::<Vec<_>>(),
            "HealthCheckType": self.health_check_type,
            "HealthCheckGracePeriod": self.health_check_grace_period,
            "CreatedTime": nimbus_core::iso8601_millis(self.created_ms),
            "SuspendedProcesses": self.suspended.iter().map(|(process, reason)| json!({
                "ProcessName": process,
                "SuspensionReason": reason,
            })).collect::<Vec<_>>(),
            "VPCZoneIdentifier": self.subnets.iter().map(|(subnet, _)| subnet.as_str()).collect::<Vec<_>>().join(","),
            "EnabledMetrics": self.enabled_metrics.iter().map(|metric| json!({
                "Metric": metric,
                "Granularity": "1Minute",
            })).collect::<Vec<_>>(),
            "Tags": self.tags.iter().map(|tag| self.tag_output(tag)).collect::<Vec<_>>(),
            "TerminationPolicies": self.termination_policies,
            "NewInstancesProtectedFromScaleIn": self.new_instances_protected_from_scale_in,
            "ServiceLinkedRoleARN": service_linked_role(self.arn.split(':').nth(4).unwrap_or_default()),
            "CapacityRebalance": false,
            "TrafficSources": [],
        });
        let object = group.as_object_mut().expect("a JSON object");
        if self.mixed_instances {
            object.insert(
                "MixedInstancesPolicy".into(),
                json!({
                    "LaunchTemplate": {
                        "LaunchTemplateSpecification": self.template_output(),
                        "Overrides": self.instance_types.iter().map(|t| json!({ "InstanceType": t })).collect::<Vec<_>>(),
                    },
                    "InstancesDistribution": {
                        "OnDemandAllocationStrategy": "prioritized",
                        "OnDemandBaseCapacity": 0,
                        "OnDemandPercentageAboveBaseCapacity": 100,
                        "SpotAllocationStrategy": "lowest-price",
                    },
                }),
            );
        } else {
            object.insert("LaunchTemplate".into(), self.template_output());
        }
        if include_instances {
            let instances: Vec<Value> = self
                .members
                .iter()
                .filter(|member| !member.in_pool())
                .map(|member| member.output(&self.template_output()))
                .collect();
            object.insert("Instances".into(), Value::Array(instances));
        }
        if let Some(warmup) = self.default_instance_warmup {
            object.insert("DefaultInstanceWarmup".into(), json!(warmup));
        }
        if let Some(pool) = &self.warm_pool {
            object.insert("WarmPoolConfiguration".into(), pool.output());
            let size = self.members.iter().filter(|m| m.warm()).count();
            object.insert("WarmPoolSize".into(), json!(size));
        }
        if let Some(status) = self.status() {
            object.insert("Status".into(), json!(status));
        }
        group
    }

    fn tag_output(&self, tag: &GroupTag) -> Value {
        json!({
            "ResourceId": self.name,
            "ResourceType": "auto-scaling-group",
            "Key": tag.key,
            "Value": tag.value,
            "PropagateAtLaunch": tag.propagate_at_launch,
        })
    }
}

/// The account's Auto Scaling service-linked role, which launches on the groups' behalf.
pub fn service_linked_role(account_id: &str) -> String {
    format!("arn:aws:iam::{account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
}

/// Now, as activity causes write it (`2026-12-07T21:00:00Z`).
pub(crate) fn now_text() -> String {
    let millis = nimbus_core::iso8601_millis(nimbus_core::now_millis());
    match millis.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => millis,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct LaunchTemplateInput {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    version: Option<String>,
}

impl LaunchTemplateInput {
    fn spec(self) -> Result<TemplateSpec> {
        if self.launch_template_id.is_some() == self.launch_template_name.is_some() {
            return Err(AutoScalingError::Validation(
                "Valid requests must contain either launchTemplateId or LaunchTemplateName".into(),
            ));
        }
        Ok(TemplateSpec {
            id: self.launch_template_id,
            name: self.launch_template_name,
            version: self.version,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MixedInstancesPolicyInput {
    launch_template: MixedLaunchTemplate,
    instances_distribution: Option<InstancesDistribution>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MixedLaunchTemplate {
    launch_template_specification: LaunchTemplateInput,
    #[serde(default)]
    overrides: Vec<OverrideInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct OverrideInput {
    instance_type: Option<String>,
}

/// Only on-demand capacity exists in nimbus: a distribution asking for Spot is refused. With
/// every instance on demand, the base capacity and the allocation strategies change nothing,
/// so they are accepted as given.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InstancesDistribution {
    #[serde(rename = "OnDemandAllocationStrategy")]
    _on_demand_allocation_strategy: Option<String>,
    #[serde(rename = "OnDemandBaseCapacity")]
    _on_demand_base_capacity: Option<i64>,
    on_demand_percentage_above_base_capacity: Option<i64>,
    #[serde(rename = "SpotAllocationStrategy")]
    _spot_allocation_strategy: Option<String>,
    #[serde(rename = "SpotInstancePools")]
    _spot_instance_pools: Option<i64>,
    spot_max_price: Option<String>,
}

impl InstancesDistribution {
    fn check(&self) -> Result<()> {
        if self.on_demand_percentage_above_base_capacity.unwrap_or(100) != 100
            || self
                .spot_max_price
                .as_deref()
                .is_some_and(|p| !p.is_empty())
        {
            return Err(AutoScalingError::Validation(
                "InstancesDistribution: Spot Instances are not supported by nimbus; OnDemandPercentageAboveBaseCapacity must be 100".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagInput {
    resource_id: Option<String>,
    resource_type: Option<String>,
    key: String,
    value: Option<String>,
    propagate_at_launch: Option<bool>,
}

impl TagInput {
    fn into_tag(self) -> Result<(Option<String>, GroupTag)> {
        if self
            .resource_type
            .as_deref()
            .is_some_and(|t| t != "auto-scaling-group")
        {
            return Err(AutoScalingError::Validation(
                "ResourceType must be auto-scaling-group".into(),
            ));
        }
        if self.key.is_empty() || self.key.chars().count() > 128 {
            return Err(AutoScalingError::Validation(format!(
                "Tag key '{}' must be between 1 and 128 characters",
                self.key
            )));
        }
        if self.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(AutoScalingError::Validation(format!(
                "Tag keys starting with 'aws:' are reserved for internal use: '{}'",
                self.key
            )));
        }
        Ok((
            self.resource_id,
            GroupTag {
                key: self.key,
                value: self.value.unwrap_or_default(),
                propagate_at_launch: self.propagate_at_launch.unwrap_or(false),
            },
        ))
    }
}

/// The parameters of CreateAutoScalingGroup nimbus honours; any other is refused by name.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateAutoScalingGroupInput {
    auto_scaling_group_name: String,
    launch_template: Option<LaunchTemplateInput>,
    mixed_instances_policy: Option<MixedInstancesPolicyInput>,
    min_size: i64,
    max_size: i64,
    desired_capacity: Option<i64>,
    default_cooldown: Option<i64>,
    #[serde(default)]
    availability_zones: Vec<String>,
    #[serde(rename = "VPCZoneIdentifier")]
    vpc_zone_identifier: Option<String>,
    health_check_type: Option<String>,
    health_check_grace_period: Option<i64>,
    #[serde(default)]
    termination_policies: Vec<String>,
    new_instances_protected_from_scale_in: Option<bool>,
    #[serde(default, rename = "TargetGroupARNs")]
    target_group_arns: Vec<String>,
    #[serde(default)]
    load_balancer_names: Vec<String>,
    #[serde(default)]
    tags: Vec<TagInput>,
    /// Accepted: launches act as the account's service-linked role whatever is named.
    #[serde(rename = "ServiceLinkedRoleARN")]
    _service_linked_role_arn: Option<String>,
    capacity_rebalance: Option<bool>,
    default_instance_warmup: Option<i64>,
    max_instance_lifetime: Option<i64>,
    desired_capacity_type: Option<String>,
    /// Accepted: a reserved, opaque value AWS does not act on either.
    #[serde(rename = "Context")]
    _context: Option<String>,
}

/// The parameters of UpdateAutoScalingGroup nimbus honours; any other is refused by name.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UpdateAutoScalingGroupInput {
    auto_scaling_group_name: String,
    launch_template: Option<LaunchTemplateInput>,
    mixed_instances_policy: Option<MixedInstancesPolicyInput>,
    min_size: Option<i64>,
    max_size: Option<i64>,
    desired_capacity: Option<i64>,
    default_cooldown: Option<i64>,
    availability_zones: Option<Vec<String>>,
    #[serde(rename = "VPCZoneIdentifier")]
    vpc_zone_identifier: Option<String>,
    health_check_type: Option<String>,
    health_check_grace_period: Option<i64>,
    termination_policies: Option<Vec<String>>,
    new_instances_protected_from_scale_in: Option<bool>,
    /// Accepted: launches act as the account's service-linked role whatever is named.
    #[serde(rename = "ServiceLinkedRoleARN")]
    _service_linked_role_arn: Option<String>,
    capacity_rebalance: Option<bool>,
    default_instance_warmup: Option<i64>,
    max_instance_lifetime: Option<i64>,
    desired_capacity_type: Option<String>,
    /// Accepted: a reserved, opaque value AWS does not act on either.
    #[serde(rename = "Context")]
    _context: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteAutoScalingGroupInput {
    auto_scaling_group_name: String,
    #[serde(default)]
    force_delete: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct FilterInput {
    name: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeAutoScalingGroupsInput {
    #[serde(default)]
    auto_scaling_group_names: Vec<String>,
    next_token: Option<String>,
    max_records: Option<i64>,
    #[serde(default)]
    filters: Vec<FilterInput>,
    include_instances: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ProcessesInput {
    auto_scaling_group_name: String,
    #[serde(default)]
    scaling_processes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TagsInput {
    tags: Vec<TagInput>,
}

/// The first of the operation's policies the caller named that nimbus does not carry out.
fn check_termination_policies(policies: &[String]) -> Result<()> {
    match policies
        .iter()
        .find(|p| !TERMINATION_POLICIES.contains(&p.as_str()))
    {
        Some(policy) => Err(AutoScalingError::Validation(format!(
            "TerminationPolicies {policy} is not supported by nimbus (it carries out {})",
            TERMINATION_POLICIES.join(", ")
        ))),
        None => Ok(()),
    }
}

fn check_health_check_type(value: &str) -> Result<()> {
    match value {
        "EC2" | "ELB" => Ok(()),
        "VPC_LATTICE" | "EBS" => Err(AutoScalingError::Validation(format!(
            "HealthCheckType {value} is not supported by nimbus (EC2 and ELB are)"
        ))),
        other => Err(AutoScalingError::Validation(format!(
            "Value {other} for HealthCheckType is not valid: EC2, ELB, VPC_LATTICE or EBS"
        ))),
    }
}

/// Refuses a parameter's value that nimbus does not honour, by name.
fn only_default<T: PartialEq + std::fmt::Debug>(
    name: &str,
    value: Option<T>,
    default: T,
) -> Result<()> {
    match value {
        Some(v) if v != default => Err(AutoScalingError::Validation(format!(
            "{name} {v:?} is not supported by nimbus (only {default:?})"
        ))),
        _ => Ok(()),
    }
}

/// The group options nimbus takes only at their defaults (what Terraform and the SDKs send
/// when the user said nothing); another value is refused by name.
fn check_default_options(
    capacity_rebalance: Option<bool>,
    max_instance_lifetime: Option<i64>,
    desired_capacity_type: Option<&str>,
) -> Result<()> {
    only_default("CapacityRebalance", capacity_rebalance, false)?;
    only_default("MaxInstanceLifetime", max_instance_lifetime, 0)?;
    only_default("DesiredCapacityType", desired_capacity_type, "units")
}

fn size(name: &str, value: i64) -> Result<u32> {
    u32::try_from(value).map_err(|_| {
        AutoScalingError::Validation(format!("{name} must be a whole number of at least 0"))
    })
}

fn optional_size(name: &str, value: Option<i64>) -> Result<Option<u32>> {
    value.map(|v| size(name, v)).transpose()
}

/// The template a create or update names, directly or in its `MixedInstancesPolicy`.
pub(crate) struct TemplateChoice {
    pub(crate) spec: TemplateSpec,
    instance_types: Vec<String>,
    mixed: bool,
}

pub(crate) fn template_choice(
    launch_template: Option<LaunchTemplateInput>,
    mixed: Option<MixedInstancesPolicyInput>,
) -> Result<Option<TemplateChoice>> {
    match (launch_template, mixed) {
        (Some(_), Some(_)) => Err(AutoScalingError::Validation(
            "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.".into(),
        )),
        (Some(template), None) => Ok(Some(TemplateChoice {
            spec: template.spec()?,
            instance_types: Vec::new(),
            mixed: false,
        })),
        (None, Some(policy)) => {
            if let Some(distribution) = &policy.instances_distribution {
                distribution.check()?;
            }
            Ok(Some(TemplateChoice {
                spec: policy.launch_template.launch_template_specification.spec()?,
                instance_types: policy
                    .launch_template
                    .overrides
                    .into_iter()
                    .filter_map(|o| o.instance_type)
                    .collect(),
                mixed: true,
            }))
        }
        (None, None) => Ok(None),
    }
}

fn split_subnets(identifier: &str) -> Vec<String> {
    identifier
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl AutoScaling {
    /// The subnets of `VPCZoneIdentifier` with their zones, and the group's zones.
    async fn placement(
        &self,
        identifier: Option<&str>,
        zones: &[String],
    ) -> Result<(Vec<(String, String)>, Vec<String>)> {
        let ec2 = self.ec2()?;
        match identifier.map(split_subnets).filter(|s| !s.is_empty()) {
            Some(subnets) => {
                let subnet_zones = ec2
                    .subnet_zones(&subnets)
                    .await
                    .map_err(|refusal| AutoScalingError::Validation(refusal.message))?;
                let mut group_zones: Vec<String> = subnet_zones.clone();
                group_zones.sort();
                group_zones.dedup();
                Ok((subnets.into_iter().zip(subnet_zones).collect(), group_zones))
            }
            None if zones.is_empty() => Err(AutoScalingError::Validation(
                "At least one Availability Zone or VPC Subnet is required.".into(),
            )),
            None => {
                let known = ec2
                    .zones()
                    .await
                    .map_err(|refusal| AutoScalingError::Validation(refusal.message))?;
                if let Some(unknown) = zones.iter().find(|z| !known.contains(z)) {
                    return Err(AutoScalingError::Validation(format!(
                        "The availability zone {unknown} is not legal"
                    )));
                }
                Ok((Vec::new(), zones.to_vec()))
            }
        }
    }

    pub(crate) async fn found_template(
        &self,
        spec: &TemplateSpec,
    ) -> Result<crate::ec2::FoundTemplate> {
        self.ec2()?
            .find_template(spec)
            .await
            .map_err(|refusal| AutoScalingError::Validation(refusal.message))
    }

    pub async fn create_group(&self, input: CreateAutoScalingGroupInput) -> Result<Value> {
        check_default_options(
            input.capacity_rebalance,
            input.max_instance_lifetime,
            input.desired_capacity_type.as_deref(),
        )?;
        if !input.load_balancer_names.is_empty() {
            return Err(AutoScalingError::Validation(
                "LoadBalancerNames names Classic Load Balancers, which nimbus does not have (TargetGroupARNs works)".into(),
            ));
        }
        self.check_target_groups(&input.target_group_arns).await?;
        let name = input.auto_scaling_group_name;
        check_name(&name)?;
        let choice = template_choice(input.launch_template, input.mixed_instances_policy)?
            .ok_or_else(|| AutoScalingError::Validation(
                "Valid requests must contain either LaunchTemplate, LaunchConfigurationName, InstanceId or MixedInstancesPolicy parameter.".into(),
            ))?;
        let health_check_type = input.health_check_type.unwrap_or_else(|| "EC2".into());
        check_health_check_type(&health_check_type)?;
        let termination_policies = if input.termination_policies.is_empty() {
            vec!["Default".to_owned()]
        } else {
            input.termination_policies
        };
        check_termination_policies(&termination_policies)?;
        let mut tags = Vec::new();
        for tag in input.tags {
            tags.push(tag.into_tag()?.1);
        }
        tags.sort_by(|a: &GroupTag, b| a.key.cmp(&b.key));
        tags.dedup_by(|a, b| a.key == b.key);
        let min_size = size("MinSize", input.min_size)?;
        let desired = optional_size("DesiredCapacity", input.desired_capacity)?.unwrap_or(min_size);
        let found = self.found_template(&choice.spec).await?;
        let (subnets, zones) = self
            .placement(
                input.vpc_zone_identifier.as_deref(),
                &input.availability_zones,
            )
            .await?;
        let mut group = Group {
            arn: format!(
                "arn:aws:autoscaling:{}:{}:autoScalingGroup:{}:autoScalingGroupName/{name}",
                self.region,
                self.account_id,
                nimbus_core::new_uuid()
            ),
            name: name.clone(),
            template: choice.spec,
            template_id: found.id,
            template_name: found.name,
            instance_types: choice.instance_types,
            mixed_instances: choice.mixed,
            min_size,
            max_size: size("MaxSize", input.max_size)?,
            desired_capacity: 0,
            default_cooldown: optional_size("DefaultCooldown", input.default_cooldown)?
                .unwrap_or(300),
            default_instance_warmup: optional_size(
                "DefaultInstanceWarmup",
                input.default_instance_warmup,
            )?,
            subnets,
            zones,
            health_check_type,
            health_check_grace_period: optional_size(
                "HealthCheckGracePeriod",
                input.health_check_grace_period,
            )?
            .unwrap_or(0),
            termination_policies,
            new_instances_protected_from_scale_in: input
                .new_instances_protected_from_scale_in
                .unwrap_or(false),
            tags,
            suspended: BTreeMap::new(),
            created_ms: nimbus_core::now_millis(),
            deleting: false,
            members: Vec::new(),
            launching: Vec::new(),
            last_change: String::new(),
            launch_backoff_until_ms: 0,
            last_scaled_ms: 0,
            rebalancing: false,
            replacements_due: 0,
            hooks: Vec::new(),
            refreshes: Vec::new(),
            scheduled_actions: Vec::new(),
            warm_pool: None,
            warm_launching: Vec::new(),
            enabled_metrics: BTreeSet::new(),
            target_groups: input.target_group_arns,
        };
        group.set_desired(desired, "a user request created an AutoScalingGroup");
        group.check_sizes()?;
        self.change(|txn| {
            if txn.state().groups().contains_key(&name) {
                return Err(AutoScalingError::AlreadyExists(format!(
                    "AutoScalingGroup by this name already exists - A group with the name {name} already exists"
                )));
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    pub async fn update_group(&self, input: UpdateAutoScalingGroupInput) -> Result<Value> {
        check_default_options(
            input.capacity_rebalance,
            input.max_instance_lifetime,
            input.desired_capacity_type.as_deref(),
        )?;
        if let Some(kind) = &input.health_check_type {
            check_health_check_type(kind)?;
        }
        if let Some(policies) = &input.termination_policies {
            check_termination_policies(policies)?;
        }
        let choice = template_choice(input.launch_template, input.mixed_instances_policy)?;
        let found = match &choice {
            Some(choice) => Some(self.found_template(&choice.spec).await?),
            None => None,
        };
        let placement = match (&input.vpc_zone_identifier, &input.availability_zones) {
            (None, None) => None,
            (identifier, zones) => Some(
                self.placement(identifier.as_deref(), zones.as_deref().unwrap_or_default())
                    .await?,
            ),
        };
        let name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            if let (Some(choice), Some(found)) = (choice, found) {
                group.use_template(choice, found);
            }
            if let Some((subnets, zones)) = placement {
                group.subnets = subnets;
                group.zones = zones;
            }
            if let Some(v) = optional_size("MinSize", input.min_size)? {
                group.min_size = v;
            }
            if let Some(v) = optional_size("MaxSize", input.max_size)? {
                group.max_size = v;
            }
            // As in AWS, a new bound alone moves the desired capacity inside it.
            let desired = match optional_size("DesiredCapacity", input.desired_capacity)? {
                Some(desired) => desired,
                None => group
                    .desired_capacity
                    .clamp(group.min_size, group.max_size.max(group.min_size)),
            };
            let why = format!(
                "a user request update of AutoScalingGroup constraints to min: {}, max: {}, desired: {desired}",
                group.min_size, group.max_size
            );
            group.set_desired(desired, &why);
            if let Some(v) = optional_size("DefaultCooldown", input.default_cooldown)? {
                group.default_cooldown = v;
            }
            if let Some(v) = optional_size("DefaultInstanceWarmup", input.default_instance_warmup)? {
                group.default_instance_warmup = Some(v);
            }
            if let Some(v) = input.health_check_type {
                group.health_check_type = v;
            }
            if let Some(v) = optional_size("HealthCheckGracePeriod", input.health_check_grace_period)? {
                group.health_check_grace_period = v;
            }
            if let Some(v) = input.termination_policies {
                group.termination_policies = if v.is_empty() { vec!["Default".into()] } else { v };
            }
            if let Some(v) = input.new_instances_protected_from_scale_in {
                group.new_instances_protected_from_scale_in = v;
            }
            group.check_sizes()?;
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    pub fn delete_group(&self, input: DeleteAutoScalingGroupInput) -> Result<Value> {
        let name = input.auto_scaling_group_name;
        let deleted = self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            if group.members.is_empty() && group.launching.is_empty() {
                txn.delete::<Group>(&name);
                return Ok(true);
            }
            if !input.force_delete {
                return Err(if group.members.is_empty() {
                    AutoScalingError::ScalingActivityInProgress(
                        "You cannot delete an AutoScalingGroup while there are scaling activities in progress for that group.".into(),
                    )
                } else {
                    AutoScalingError::ResourceInUse(
                        "You cannot delete an AutoScalingGroup while there are instances or pending Spot instance request(s) still in the group.".into(),
                    )
                });
            }
            group.deleting = true;
            group.min_size = 0;
            group.set_desired(0, "a user request deleted the AutoScalingGroup");
            txn.put(group)?;
            Ok(false)
        })?;
        if deleted {
            self.forget_policies(&name);
        }
        Ok(json!({}))
    }

    pub fn describe_groups(&self, input: DescribeAutoScalingGroupsInput) -> Result<Value> {
        let state = self.engine.read();
        let groups: Vec<&Group> = state
            .groups()
            .values()
            .filter(|g| {
                input.auto_scaling_group_names.is_empty()
                    || input.auto_scaling_group_names.contains(&g.name)
            })
            .filter(|g| input.filters.iter().all(|f| matches_filter(g, f)))
            .collect();
        let include_instances = input.include_instances.unwrap_or(true);
        let rows = (groups.into_iter())
            .map(|g| (g.name.clone(), g.output(include_instances)))
            .collect();
        let next_token = input.next_token.as_deref();
        crate::page_of(
            "AutoScalingGroups",
            rows,
            input.max_records,
            next_token,
            (50, 100),
        )
    }

    pub fn set_processes(&self, input: ProcessesInput, suspend: bool) -> Result<Value> {
        let processes: Vec<String> = if input.scaling_processes.is_empty() {
            PROCESSES.iter().map(|p| (*p).to_owned()).collect()
        } else {
            input.scaling_processes
        };
        if let Some(unknown) = processes.iter().find(|p| !PROCESSES.contains(&p.as_str())) {
            return Err(AutoScalingError::Validation(format!(
                "Process {unknown} is not a valid scaling process"
            )));
        }
        let name = input.auto_scaling_group_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &name)?.clone();
            let reason = format!("User suspended at {}", now_text());
            for process in processes {
                if suspend {
                    group.suspended.insert(process, reason.clone());
                } else {
                    group.suspended.remove(&process);
                }
            }
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    /// Answers ValidationError unless the group `name` exists.
    pub fn require_group(&self, name: &str) -> Result<()> {
        existing_group(&self.engine.read(), name).map(|_| ())
    }

    pub fn describe_process_types(&self) -> Value {
        json!({
            "Processes": PROCESSES.iter().map(|p| json!({ "ProcessName": p })).collect::<Vec<_>>(),
        })
    }

    /// CreateOrUpdateTags (`delete` false) and DeleteTags (`delete` true).
    pub fn change_tags(&self, input: TagsInput, delete: bool) -> Result<Value> {
        let mut by_group: BTreeMap<String, Vec<GroupTag>> = BTreeMap::new();
        for tag in input.tags {
            let (resource, tag) = tag.into_tag()?;
            let resource = resource.ok_or_else(|| {
                AutoScalingError::Validation("Tags.member.N.ResourceId is required".into())
            })?;
            by_group.entry(resource).or_default().push(tag);
        }
        self.change(|txn| {
            for (name, tags) in by_group {
                let mut group = existing_group(txn.state(), &name)?.clone();
                for tag in tags {
                    group.tags.retain(|t| t.key != tag.key);
                    if !delete {
                        group.tags.push(tag);
                    }
                }
                group.tags.sort_by(|a, b| a.key.cmp(&b.key));
                if group.tags.len() > 50 {
                    return Err(AutoScalingError::LimitExceeded(
                        "The number of tags for the AutoScalingGroup exceeds the limit of 50"
                            .into(),
                    ));
                }
                txn.put(group)?;
            }
            Ok(())
        })?;
        Ok(json!({}))
    }

    pub fn describe_tags(&self, input: DescribeAutoScalingGroupsInput) -> Result<Value> {
        let state = self.engine.read();
        let mut tags = Vec::new();
        for group in state.groups().values() {
            for tag in &group.tags {
                let matches = input.filters.iter().all(|f| {
                    let values = &f.values;
                    match f.name.as_str() {
                        "auto-scaling-group" => values.contains(&group.name),
                        "key" => values.contains(&tag.key),
                        "value" => values.contains(&tag.value),
                        "propagate-at-launch" => {
                            values.contains(&tag.propagate_at_launch.to_string())
                        }
                        _ => false,
                    }
                });
                if matches {
                    tags.push((
                        format!("{}\n{}", group.name, tag.key),
                        group.tag_output(tag),
                    ));
                }
            }
        }
        let next_token = input.next_token.as_deref();
        crate::page_of("Tags", tags, input.max_records, next_token, (50, 100))
    }
}

/// DescribeAutoScalingGroups's filters: `tag-key`, `tag-value` and `tag:<key>`.
fn matches_filter(group: &Group, filter: &FilterInput) -> bool {
    let values = &filter.values;
    match filter.name.as_str() {
        "tag-key" => group.tags.iter().any(|t| values.contains(&t.key)),
        "tag-value" => group.tags.iter().any(|t| values.contains(&t.value)),
        name => match name.strip_prefix("tag:") {
            Some(key) => group
                .tags
                .iter()
                .any(|t| t.key == key && values.contains(&t.value)),
            None => false,
        },
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 255 || name.contains(':') {
        return Err(AutoScalingError::Validation(format!(
            "AutoScalingGroupName '{name}' is not valid: 1 to 255 characters, without ':'"
        )));
    }
    Ok(())
}

/// The group `name`, or AWS's ValidationError for a missing one.
pub(crate) fn existing_group<'a>(state: &'a engine::State, name: &str) -> Result<&'a Group> {
    state.groups().get(name).ok_or_else(|| {
        AutoScalingError::Validation(format!(
            "AutoScalingGroup name not found - AutoScalingGroup '{name}' not found"
        ))
    })
}
