//! RunInstances, DescribeInstances, DescribeInstanceStatus, Start/Stop/Reboot/TerminateInstances,
//! Describe/ModifyInstanceAttribute, ModifyInstanceMetadataOptions, GetConsoleOutput.

use std::collections::BTreeMap;

use base64::Engine;
use control::idempotency::ClientToken;
use control::instances::{
    AttributeChange, BlockDeviceMappingInput, Instance, InstanceState, MetadataOptions,
    RunInstancesRequest, ShutdownBehavior,
};
use control::launch_options::LaunchOptionsInput;
use control::launch_templates::TemplateRef;
use control::tags::{tags_from_specifications, TagSpecification};
use control::volumes::Volume;
use control::vpc::addresses::AddressQueries;
use control::vpc::interfaces::public_dns_name;
use control::vpc::network_interfaces::NetworkInterface;
use control::{Control, Resource, Tables};
use serde::Deserialize;
use serde_json::{json, Value};

use super::interfaces::{
    group_set_output, instance_network_output, NetworkInterfaceInput, RunNetworkInput,
};
use super::profile_associations::ProfileInput;
use super::vpcs::BooleanValue;
use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    NoOtherParameters, Output,
};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("RunInstances", Handler::Sync(run_instances)),
    ("DescribeInstances", Handler::Sync(describe_instances)),
    ("StartInstances", Handler::Sync(start_instances)),
    ("StopInstances", Handler::Sync(stop_instances)),
    ("RebootInstances", Handler::Sync(reboot_instances)),
    ("TerminateInstances", Handler::Sync(terminate_instances)),
    (
        "DescribeInstanceAttribute",
        Handler::Sync(describe_instance_attribute),
    ),
    (
        "ModifyInstanceAttribute",
        Handler::Sync(modify_instance_attribute),
    ),
    (
        "ModifyInstanceMetadataOptions",
        Handler::Sync(modify_instance_metadata_options),
    ),
    ("GetConsoleOutput", Handler::Sync(get_console_output)),
    (
        "DescribeInstanceCreditSpecifications",
        Handler::Sync(describe_instance_credit_specifications),
    ),
    (
        "ModifyInstanceCreditSpecification",
        Handler::Sync(modify_instance_credit_specification),
    ),
];

/// One instance's ID with its state before and after a change.
type Transition = (String, InstanceState, InstanceState);

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetadataOptionsInput {
    http_tokens: Option<String>,
    http_put_response_hop_limit: Option<i64>,
    http_endpoint: Option<String>,
    instance_metadata_tags: Option<String>,
    http_protocol_ipv6: Option<String>,
}

impl MetadataOptionsInput {
    fn apply(&self, options: &mut MetadataOptions) -> Result<(), ApiError> {
        if self
            .http_protocol_ipv6
            .as_deref()
            .is_some_and(|v| v == "enabled")
        {
            return Err(unsupported_parameter("HttpProtocolIpv6=enabled"));
        }
        if let Some(v) = &self.http_tokens {
            options.http_tokens = v.clone();
        }
        if let Some(v) = self.http_put_response_hop_limit {
            options.http_put_response_hop_limit = v;
        }
        if let Some(v) = &self.http_endpoint {
            options.http_endpoint = v.clone();
        }
        if let Some(v) = &self.instance_metadata_tags {
            options.instance_metadata_tags = v.clone();
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PlacementInput {
    availability_zone: Option<String>,
    tenancy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RunInstances {
    image_id: Option<String>,
    instance_type: Option<String>,
    min_count: i64,
    max_count: i64,
    key_name: Option<String>,
    user_data: Option<String>,
    #[serde(default)]
    block_device_mappings: Vec<BlockDeviceMappingInput>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    client_token: Option<String>,
    metadata_options: Option<MetadataOptionsInput>,
    placement: Option<PlacementInput>,
    instance_initiated_shutdown_behavior: Option<String>,
    #[serde(default)]
    dry_run: bool,
    iam_instance_profile: Option<ProfileInput>,
    subnet_id: Option<String>,
    #[serde(default)]
    security_group_ids: Vec<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    private_ip_address: Option<String>,
    #[serde(default)]
    network_interfaces: Vec<NetworkInterfaceInput>,
    monitoring: Option<MonitoringInput>,
    maintenance_options: Option<MaintenanceOptionsInput>,
    #[serde(flatten)]
    options: LaunchOptionsInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MonitoringInput {
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MaintenanceOptionsInput {
    auto_recovery: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct LaunchTemplateSpecification {
    launch_template_id: Option<String>,
    launch_template_name: Option<String>,
    version: Option<String>,
}

/// The request's own parameters over the data of the `LaunchTemplate` it names, member by
/// member, as EC2 merges them; the result is read as any RunInstances request, so a template
/// field RunInstances does not honour is refused by name here too.
fn with_launch_template(context: &ApiContext, mut request: Value) -> Result<Value, ApiError> {
    let Some(spec) = request
        .as_object_mut()
        .and_then(|object| object.remove("LaunchTemplate"))
    else {
        return Ok(request);
    };
    let spec: LaunchTemplateSpecification = input(spec)?;
    let template = TemplateRef {
        id: spec.launch_template_id.as_deref(),
        name: spec.launch_template_name.as_deref(),
    };
    let data = (context.control).launch_template_data(template, spec.version.as_deref())?;
    let mut merged = match serde_json::to_value(data) {
        Ok(Value::Object(object)) => object,
        _ => serde_json::Map::new(),
    };
    if let Value::Object(own) = request {
        merged.extend(own);
    }
    Ok(Value::Object(merged))
}

fn run_instances(context: &ApiContext, request: Value) -> Output {
    run_instances_tagged(context, request, control::Tags::new())
}

/// RunInstances with `reserved` tags besides the request's own: the `aws:` ones a service
/// puts on what it launches (Auto Scaling's `aws:autoscaling:groupName`), which no request may.
pub(crate) fn run_instances_tagged(
    context: &ApiContext,
    request: Value,
    reserved: control::Tags,
) -> Output {
    let client_token = ClientToken::of_request("RunInstances", &request)?;
    let request: RunInstances = input(with_launch_template(context, request)?)?;
    let image_id = request
        .image_id
        .as_deref()
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("ImageId".into())))?;
    let image_id = super::image_alias::resolve(context, image_id)?;
    if let Some(placement) = &request.placement {
        if placement.tenancy.as_deref().is_some_and(|t| t != "default") {
            return Err(unsupported_parameter("Placement.Tenancy"));
        }
    }
    let mut metadata_options = MetadataOptions::default();
    if let Some(options) = &request.metadata_options {
        options.apply(&mut metadata_options)?;
    }
    let allowed = [Instance::KIND, Volume::KIND, NetworkInterface::KIND];
    let (network, extra_interfaces) = RunNetworkInput {
        subnet_id: request.subnet_id,
        security_group_ids: request.security_group_ids,
        security_groups: request.security_groups,
        private_ip_address: request.private_ip_address,
        network_interfaces: request.network_interfaces,
    }
    .into_request()?;
    let instances = context.control.run_instances(RunInstancesRequest {
        image_id,
        instance_type: request.instance_type,
        min_count: request.min_count,
        max_count: request.max_count,
        key_name: request.key_name,
        user_data: request.user_data,
        block_device_mappings: request.block_device_mappings,
        instance_tags: tags_from_specifications(
            &request.tag_specifications,
            &allowed,
            Instance::KIND,
        )?
        .into_iter()
        .chain(reserved)
        .collect(),
        volume_tags: tags_from_specifications(&request.tag_specifications, &allowed, Volume::KIND)?,
        interface_tags: tags_from_specifications(
            &request.tag_specifications,
            &allowed,
            NetworkInterface::KIND,
        )?,
        client_token,
        client_token_text: request.client_token,
        metadata_options,
        availability_zone: request.placement.and_then(|p| p.availability_zone),
        shutdown_behavior: request.instance_initiated_shutdown_behavior,
        dry_run: request.dry_run,
        iam_instance_profile: request.iam_instance_profile.map(Into::into),
        network,
        extra_interfaces,
        detailed_monitoring: request.monitoring.is_some_and(|m| m.enabled),
        auto_recovery: request.maintenance_options.and_then(|m| m.auto_recovery),
        options: request.options,
    })?;
    let config = context.control.config();
    let state = context.control.read();
    let members: Vec<&Instance> = instances.iter().collect();
    answer(reservation_output(&members, config, &state))
}

/// One reservation: its ID and owner, and its instances.
fn reservation_output(
    members: &[&Instance],
    config: &nimbus_core::Config,
    state: &control::State,
) -> Value {
    let reservation_id = members
        .first()
        .map(|i| i.reservation_id.as_str())
        .unwrap_or_default();
    let instances: Vec<Value> = (members.iter())
        .map(|instance| instance_output(instance, state, config))
        .collect();
    json!({
        "ReservationId": reservation_id,
        "OwnerId": config.account_id,
        "Groups": [],
        "Instances": instances,
    })
}

/// An `InstanceState`: its code and name.
pub(super) fn state_output(state: InstanceState) -> Value {
    json!({"Code": state.code(), "Name": state.as_str()})
}

pub(super) fn instance_output(
    instance: &Instance,
    state: &control::State,
    config: &nimbus_core::Config,
) -> Value {
    let running = !matches!(instance.state, InstanceState::Terminated);
    let private_dns_name = if running {
        instance.private_dns_name(&config.region)
    } else {
        String::new()
    };
    let public_dns = state
        .public_ip_of(instance)
        .map(|ip| public_dns_name(ip, &config.region))
        .unwrap_or_default();
    let devices: Vec<Value> = (instance.disks.iter())
        .filter_map(|disk| {
            let volume = state.volumes().get(&disk.volume_id)?;
            let attachment = volume.attachments.first()?;
            Some(json!({
                "DeviceName": disk.device_name,
                "Ebs": {
                    "VolumeId": disk.volume_id,
                    "Status": attachment.state.as_str(),
                    "AttachTime": nimbus_core::iso8601_millis(attachment.attach_time),
                    "DeleteOnTermination": attachment.delete_on_termination,
                },
            }))
        })
        .collect();
    let cpu = control::catalog::find_instance_type(&instance.instance_type)
        .map(|t| json!({"CoreCount": t.default_cores(), "ThreadsPerCore": t.threads_per_core()}));
    let mut output = json!({
        "InstanceId": instance.instance_id,
        "ImageId": instance.image_id,
        "State": state_output(instance.state),
        "PrivateDnsName": private_dns_name,
        "PublicDnsName": public_dns,
        "StateTransitionReason": instance.state_transition_reason,
        "KeyName": instance.key_name,
        "AmiLaunchIndex": instance.ami_launch_index,
        "ProductCodes": [],
        "InstanceType": instance.instance_type,
        "LaunchTime": nimbus_core::iso8601_millis(instance.launch_time),
        "Placement": {
            "AvailabilityZone": instance.availability_zone,
            "GroupName": "",
            "Tenancy": "default",
        },
        "Monitoring": {
            "State": control::instances::monitoring_state(instance.detailed_monitoring),
        },
        "PrivateIpAddress": running.then_some(&instance.private_ip),
        "StateReason": instance.state_reason.as_ref().map(|reason| {
            json!({"Code": reason.code, "Message": reason.message})
        }),
        "Architecture": "x86_64",
        "RootDeviceType": "ebs",
        "RootDeviceName": instance.root_device_name,
        "BlockDeviceMappings": devices,
        "VirtualizationType": "hvm",
        "ClientToken": instance.client_token,
        "Tags": tags_output(&instance.tags),
        "Hypervisor": "xen",
        "EbsOptimized": instance.options.ebs_optimized,
        "EnaSupport": true,
        "CpuOptions": cpu,
        "CapacityReservationSpecification": {
            "CapacityReservationPreference":
                instance.options.capacity_reservation_preference.as_str(),
        },
        "HibernationOptions": {"Configured": instance.options.hibernation_configured},
        "EnclaveOptions": {"Enabled": false},
        "PrivateDnsNameOptions": {
            "HostnameType": "ip-name",
            "EnableResourceNameDnsARecord": false,
            "EnableResourceNameDnsAAAARecord": false,
        },
        "MetadataOptions": metadata_options_output(&instance.metadata_options),
        "MaintenanceOptions": {"AutoRecovery": instance.auto_recovery.as_str()},
        "IamInstanceProfile": instance.iam_instance_profile.as_ref().map(|profile| {
            json!({"Arn": profile.arn, "Id": profile.id})
        }),
    });
    if let (Some(members), Value::Object(network)) = (
        output.as_object_mut(),
        instance_network_output(instance, state, config),
    ) {
        members.extend(network);
    }
    output
}

fn metadata_options_output(options: &MetadataOptions) -> Value {
    json!({
        "State": "applied",
        "HttpTokens": options.http_tokens,
        "HttpPutResponseHopLimit": options.http_put_response_hop_limit,
        "HttpEndpoint": options.http_endpoint,
        "HttpProtocolIpv6": "disabled",
        "InstanceMetadataTags": options.instance_metadata_tags,
    })
}

fn describe_instances(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("InstanceIds"))?;
    let (instances, next_token) = context.control.describe_instances(&query)?;
    let mut reservations: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for instance in &instances {
        reservations
            .entry(&instance.reservation_id)
            .or_default()
            .push(instance);
    }
    let reservations: Vec<Vec<&Instance>> = reservations
        .into_values()
        .map(|mut members| {
            members.sort_by_key(|i| i.ami_launch_index);
            members
        })
        .collect();
    let config = context.control.config();
    let state = context.control.read();
    Ok(page_output(
        "Reservations",
        (reservations, next_token),
        |members| reservation_output(&members, config, &state),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InstanceIds {
    #[serde(default)]
    instance_ids: Vec<String>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    hibernate: bool,
    #[serde(default)]
    dry_run: bool,
}

/// The answer of a state change, its `InstanceStateChange`s under `member`.
fn transitions_output(member: &str, changes: &[Transition]) -> Output {
    let changes: Vec<Value> = (changes.iter())
        .map(|(id, before, after)| {
            json!({
                "InstanceId": id,
                "CurrentState": state_output(*after),
                "PreviousState": state_output(*before),
            })
        })
        .collect();
    answer(json!({ member: changes }))
}

fn start_instances(context: &ApiContext, request: Value) -> Output {
    transition(
        context,
        request,
        "StartingInstances",
        Control::start_instances,
    )
}

/// StartInstances and TerminateInstances: a transition with no options.
fn transition(
    context: &ApiContext,
    request: Value,
    member: &str,
    change: fn(&Control, &[String], bool) -> control::Result<Vec<Transition>>,
) -> Output {
    let request: InstanceIds = input(request)?;
    reject_stop_options(&request)?;
    let changes = change(&context.control, &request.instance_ids, request.dry_run)?;
    transitions_output(member, &changes)
}

/// StopInstances; with `Hibernate`, the guests' memory is saved and a start resumes them
/// (`Force` then only applies if the hibernation fails and the guest is shut down instead).
fn stop_instances(context: &ApiContext, request: Value) -> Output {
    let request: InstanceIds = input(request)?;
    let control = &context.control;
    let changes = if request.hibernate {
        control.hibernate_instances(&request.instance_ids, request.force, request.dry_run)?
    } else {
        control.stop_instances(&request.instance_ids, request.force, request.dry_run)?
    };
    transitions_output("StoppingInstances", &changes)
}

fn terminate_instances(context: &ApiContext, request: Value) -> Output {
    transition(
        context,
        request,
        "TerminatingInstances",
        Control::terminate_instances,
    )
}

fn reboot_instances(context: &ApiContext, request: Value) -> Output {
    let request: InstanceIds = input(request)?;
    reject_stop_options(&request)?;
    context
        .control
        .reboot_instances(&request.instance_ids, request.dry_run)?;
    answer(Value::Null)
}

/// Force and Hibernate belong to StopInstances only.
fn reject_stop_options(request: &InstanceIds) -> Result<(), ApiError> {
    if request.force {
        return Err(unsupported_parameter("Force"));
    }
    if request.hibernate {
        return Err(unsupported_parameter("Hibernate"));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeInstanceAttribute {
    instance_id: String,
    attribute: String,
}

fn describe_instance_attribute(context: &ApiContext, request: Value) -> Output {
    let request: DescribeInstanceAttribute = input(request)?;
    let instance = context.control.instance(&request.instance_id)?;
    if request.attribute == "groupSet" {
        let state = context.control.read();
        let groups = group_set_output(&state, &instance);
        return answer(json!({"InstanceId": instance.instance_id, "Groups": groups}));
    }
    let options = &instance.options;
    let (member, value) = match request.attribute.as_str() {
        "instanceType" => ("InstanceType", json!(instance.instance_type)),
        "userData" => ("UserData", json!(instance.user_data)),
        "instanceInitiatedShutdownBehavior" => (
            "InstanceInitiatedShutdownBehavior",
            json!(instance.shutdown_behavior.as_str()),
        ),
        "rootDeviceName" => ("RootDeviceName", json!(instance.root_device_name)),
        "disableApiTermination" => (
            "DisableApiTermination",
            json!(options.disable_api_termination),
        ),
        "disableApiStop" => ("DisableApiStop", json!(options.disable_api_stop)),
        "ebsOptimized" => ("EbsOptimized", json!(options.ebs_optimized)),
        "sourceDestCheck" => (
            "SourceDestCheck",
            json!((instance.live_network()).map(|n| n.source_dest_check)),
        ),
        other => {
            return Err(ApiError::from(control::Error::Unsupported(format!(
                "The instance attribute {other} is not supported by nimbus."
            ))))
        }
    };
    answer(json!({"InstanceId": instance.instance_id, member: {"Value": value}}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AttributeValue {
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyInstanceAttribute {
    instance_id: String,
    instance_type: Option<AttributeValue>,
    user_data: Option<AttributeValue>,
    instance_initiated_shutdown_behavior: Option<AttributeValue>,
    disable_api_termination: Option<BooleanValue>,
    disable_api_stop: Option<BooleanValue>,
    ebs_optimized: Option<BooleanValue>,
    attribute: Option<String>,
    value: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    source_dest_check: Option<BooleanValue>,
    #[serde(default)]
    dry_run: bool,
}

impl ModifyInstanceAttribute {
    /// The one attribute the request changes, given as its own member (`DisableApiStop.Value`)
    /// or as `Attribute` and `Value`; each value as a string, the way `Value` carries it
    /// (`groupSet` carries its groups in `Groups`).
    fn attribute(&self) -> Result<(&str, Option<String>), ApiError> {
        let text = |v: &Option<AttributeValue>| v.as_ref().map(|v| v.value.clone());
        let boolean = |v: &Option<BooleanValue>| v.as_ref().map(|v| v.value.map(|b| b.to_string()));
        let mut given: Vec<(&str, Option<String>)> = [
            ("instanceType", text(&self.instance_type)),
            ("userData", text(&self.user_data)),
            (
                "instanceInitiatedShutdownBehavior",
                text(&self.instance_initiated_shutdown_behavior),
            ),
            (
                "disableApiTermination",
                boolean(&self.disable_api_termination),
            ),
            ("disableApiStop", boolean(&self.disable_api_stop)),
            ("ebsOptimized", boolean(&self.ebs_optimized)),
            ("sourceDestCheck", boolean(&self.source_dest_check)),
            ("groupSet", (!self.groups.is_empty()).then_some(None)),
            (
                self.attribute.as_deref().unwrap_or_default(),
                self.attribute.as_ref().map(|_| self.value.clone()),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
        // `Attribute=groupSet` comes with `Groups`: one attribute named twice.
        given.sort_by_key(|(name, _)| *name);
        given.dedup_by(|a, b| a.0 == b.0);
        match <[_; 1]>::try_from(given) {
            Ok([one]) => Ok(one),
            Err(_) => Err(ApiError::from(control::Error::InvalidParameterCombination(
                "Exactly one attribute can be modified per call.".into(),
            ))),
        }
    }
}

/// A boolean attribute's `Value`: `true` or `false`.
fn boolean_value(name: &str, value: Option<String>) -> Result<bool, ApiError> {
    match value.as_deref() {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ApiError::from(control::Error::InvalidParameterValue(
            format!("Value ({other}) for parameter {name} is invalid. Valid values: true, false."),
        ))),
        None => Err(missing_value(name)),
    }
}

fn missing_value(name: &str) -> ApiError {
    ApiError::from(control::Error::MissingParameter(format!("{name} value")))
}

/// An attribute's new value: `Value` as the attribute reads it.
fn attribute_change(name: &str, value: Option<String>) -> Result<AttributeChange, ApiError> {
    let missing = || missing_value(name);
    let boolean = |value| boolean_value(name, value);
    Ok(match name {
        "instanceType" => AttributeChange::InstanceType(value.ok_or_else(missing)?),
        // The wire value is base64 (a blob); an empty value clears the user data.
        "userData" => AttributeChange::UserData(value.filter(|v| !v.is_empty())),
        "instanceInitiatedShutdownBehavior" => {
            AttributeChange::ShutdownBehavior(ShutdownBehavior::parse(&value.ok_or_else(missing)?)?)
        }
        "disableApiTermination" => AttributeChange::DisableApiTermination(boolean(value)?),
        "disableApiStop" => AttributeChange::DisableApiStop(boolean(value)?),
        "ebsOptimized" => AttributeChange::EbsOptimized(boolean(value)?),
        other => {
            return Err(ApiError::from(control::Error::Unsupported(format!(
                "Modifying the instance attribute {other} is not supported by nimbus."
            ))))
        }
    })
}

fn modify_instance_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ModifyInstanceAttribute = input(request)?;
    let control = &context.control;
    let (id, dry_run) = (&request.instance_id, request.dry_run);
    match request.attribute()? {
        ("groupSet", _) => control.modify_instance_groups(id, &request.groups, dry_run)?,
        ("sourceDestCheck", value) => control.modify_source_dest_check(
            id,
            boolean_value("sourceDestCheck", value)?,
            dry_run,
        )?,
        (name, value) => {
            control.modify_instance_attribute(id, attribute_change(name, value)?, dry_run)?
        }
    }
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyInstanceMetadataOptions {
    instance_id: String,
    #[serde(flatten)]
    options: MetadataOptionsInput,
    #[serde(default)]
    dry_run: bool,
}

fn modify_instance_metadata_options(context: &ApiContext, request: Value) -> Output {
    let request: ModifyInstanceMetadataOptions = input(request)?;
    let mut probe = MetadataOptions::default();
    request.options.apply(&mut probe)?;
    let instance = context.control.modify_metadata_options(
        &request.instance_id,
        |options| {
            // Already validated against a probe above, so applying cannot fail here.
            let _ = request.options.apply(options);
        },
        request.dry_run,
    )?;
    answer(json!({
        "InstanceId": instance.instance_id,
        "InstanceMetadataOptions": metadata_options_output(&instance.metadata_options),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetConsoleOutput {
    instance_id: String,
    /// The answer is always the most recent output, which is what `Latest` asks for.
    #[serde(default, rename = "Latest")]
    _latest: bool,
}

fn get_console_output(context: &ApiContext, request: Value) -> Output {
    let request: GetConsoleOutput = input(request)?;
    // The newest 64 KiB, as EC2 answers, cut on a character boundary by `compute::console`.
    let output = context.control.console_output(&request.instance_id)?;
    answer(json!({
        "InstanceId": request.instance_id,
        "Timestamp": nimbus_core::iso8601_millis(nimbus_core::now_millis()),
        "Output": base64::engine::general_purpose::STANDARD.encode(output),
    }))
}

fn describe_instance_credit_specifications(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("InstanceIds"))?;
    let page = context.control.describe_credit_specifications(&query)?;
    Ok(page_output(
        "InstanceCreditSpecifications",
        page,
        |row| json!({"InstanceId": row.instance_id, "CpuCredits": row.cpu_credits.as_str()}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct InstanceCreditSpecificationInput {
    instance_id: String,
    cpu_credits: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyInstanceCreditSpecification {
    instance_credit_specifications: Vec<InstanceCreditSpecificationInput>,
    /// Setting a credit option twice changes nothing, so a retried call needs no token.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn modify_instance_credit_specification(context: &ApiContext, request: Value) -> Output {
    let request: ModifyInstanceCreditSpecification = input(request)?;
    let changes = (request.instance_credit_specifications.into_iter())
        .map(|spec| {
            let credits = spec.cpu_credits.ok_or_else(|| {
                ApiError::from(control::Error::MissingParameter(
                    "InstanceCreditSpecification.N.CpuCredits".into(),
                ))
            })?;
            Ok((spec.instance_id, credits))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    let outcomes = (context.control).modify_credit_specifications(&changes, request.dry_run)?;
    let mut successful = Vec::new();
    let mut unsuccessful = Vec::new();
    for (instance_id, outcome) in outcomes {
        match outcome {
            Ok(()) => successful.push(json!({"InstanceId": instance_id})),
            Err(error) => {
                let error = ApiError::from(error);
                unsuccessful.push(json!({
                    "InstanceId": instance_id,
                    "Error": {"Code": error.code, "Message": error.message},
                }));
            }
        }
    }
    answer(json!({
        "SuccessfulInstanceCreditSpecifications": successful,
        "UnsuccessfulInstanceCreditSpecifications": unsuccessful,
    }))
}
