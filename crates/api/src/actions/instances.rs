//! RunInstances, DescribeInstances, DescribeInstanceStatus, Start/Stop/Reboot/TerminateInstances,
//! Describe/ModifyInstanceAttribute, ModifyInstanceMetadataOptions, GetConsoleOutput.

use std::collections::BTreeMap;

use base64::Engine;
use control::idempotency::ClientToken;
use control::instances::{
    BlockDeviceMappingInput, Instance, InstanceState, MetadataOptions, RunInstancesRequest,
};
use control::tags::{tags_from_specifications, TagSpecification};
use control::vpc::interfaces::public_dns_name;
use control::{Control, ResourceKind};
use serde::Deserialize;
use serde_json::{json, Value};

use super::interfaces::{
    write_group_set, write_instance_network, NetworkInterfaceInput, RunNetworkInput,
};
use super::vpcs::BooleanValue;
use super::{
    describe_request, input, render_page, unsupported_parameter, write_page, write_tag_set,
    NoOtherParameters, Response,
};
use crate::{ApiContext, ApiError};

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
    iam_instance_profile: Option<IamInstanceProfileInput>,
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
struct IamInstanceProfileInput {
    arn: Option<String>,
    name: Option<String>,
}

pub fn run_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let client_token = ClientToken::of_request("RunInstances", &request)?;
    let request: RunInstances = input(request)?;
    let image_id = request
        .image_id
        .clone()
        .ok_or_else(|| ApiError::from(control::Error::MissingParameter("ImageId".into())))?;
    if let Some(placement) = &request.placement {
        if placement.tenancy.as_deref().is_some_and(|t| t != "default") {
            return Err(unsupported_parameter("Placement.Tenancy"));
        }
    }
    let mut metadata_options = MetadataOptions::default();
    if let Some(options) = &request.metadata_options {
        options.apply(&mut metadata_options)?;
    }
    let allowed = [
        ResourceKind::Instance,
        ResourceKind::Volume,
        ResourceKind::NetworkInterface,
    ];
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
            ResourceKind::Instance,
        )?,
        volume_tags: tags_from_specifications(
            &request.tag_specifications,
            &allowed,
            ResourceKind::Volume,
        )?,
        interface_tags: tags_from_specifications(
            &request.tag_specifications,
            &allowed,
            ResourceKind::NetworkInterface,
        )?,
        client_token,
        client_token_text: request.client_token,
        metadata_options,
        availability_zone: request.placement.and_then(|p| p.availability_zone),
        shutdown_behavior: request.instance_initiated_shutdown_behavior,
        dry_run: request.dry_run,
        iam_instance_profile: request.iam_instance_profile.map(|profile| {
            control::credentials::InstanceProfileSpecification {
                arn: profile.arn,
                name: profile.name,
            }
        }),
        network,
        extra_interfaces,
        detailed_monitoring: request.monitoring.is_some_and(|m| m.enabled),
        auto_recovery: request.maintenance_options.and_then(|m| m.auto_recovery),
    })?;
    let config = context.control.config();
    let state = context.control.read();
    let members: Vec<&Instance> = instances.iter().collect();
    response.render(|xml| write_reservation(xml, &members, config, &state))
}

/// One reservation: its ID and owner, and its instances.
fn write_reservation(
    xml: &mut awsproto::XmlWriter,
    members: &[&Instance],
    config: &nimbus_core::Config,
    state: &control::State,
) {
    let reservation_id = members
        .first()
        .map(|i| i.reservation_id.as_str())
        .unwrap_or_default();
    xml.leaf("reservationId", reservation_id);
    xml.leaf("ownerId", &config.account_id);
    xml.start("groupSet");
    xml.end();
    write_page(xml, "instancesSet", members, None, |xml, instance| {
        write_instance(xml, instance, state, config)
    });
}

/// An `InstanceState`: its code and name.
pub(super) fn state_output(state: InstanceState) -> Value {
    json!({"Code": state.code(), "Name": state.as_str()})
}

pub(super) fn write_state(xml: &mut awsproto::XmlWriter, element: &str, state: InstanceState) {
    xml.start(element);
    xml.leaf("code", &state.code().to_string());
    xml.leaf("name", state.as_str());
    xml.end();
}

fn write_instance(
    xml: &mut awsproto::XmlWriter,
    instance: &Instance,
    state: &control::State,
    config: &nimbus_core::Config,
) {
    let running = !matches!(instance.state, InstanceState::Terminated);
    xml.leaf("instanceId", &instance.instance_id);
    xml.leaf("imageId", &instance.image_id);
    write_state(xml, "instanceState", instance.state);
    xml.leaf(
        "privateDnsName",
        if running {
            instance.private_dns_name(&config.region)
        } else {
            String::new()
        }
        .as_str(),
    );
    let public_dns = state
        .public_ip_of(instance)
        .map(|ip| public_dns_name(ip, &config.region))
        .unwrap_or_default();
    xml.leaf("dnsName", &public_dns);
    xml.leaf("reason", &instance.state_transition_reason);
    if let Some(key) = &instance.key_name {
        xml.leaf("keyName", key);
    }
    xml.leaf("amiLaunchIndex", &instance.ami_launch_index.to_string());
    xml.start("productCodes");
    xml.end();
    xml.leaf("instanceType", &instance.instance_type);
    xml.leaf(
        "launchTime",
        &nimbus_core::iso8601_millis(instance.launch_time),
    );
    xml.start("placement");
    xml.leaf("availabilityZone", &instance.availability_zone);
    xml.leaf("groupName", "");
    xml.leaf("tenancy", "default");
    xml.end();
    xml.start("monitoring");
    xml.leaf(
        "state",
        control::instances::monitoring_state(instance.detailed_monitoring),
    );
    xml.end();
    if running {
        xml.leaf("privateIpAddress", &instance.private_ip);
    }
    write_instance_network(xml, instance, state, config);
    if let Some(reason) = &instance.state_reason {
        xml.start("stateReason");
        xml.leaf("code", &reason.code);
        xml.leaf("message", &reason.message);
        xml.end();
    }
    xml.leaf("architecture", "x86_64");
    xml.leaf("rootDeviceType", "ebs");
    xml.leaf("rootDeviceName", &instance.root_device_name);
    xml.start("blockDeviceMapping");
    for disk in &instance.disks {
        let Some(volume) = state.volumes.get(&disk.volume_id) else {
            continue;
        };
        let Some(attachment) = volume.attachments.first() else {
            continue;
        };
        xml.start("item");
        xml.leaf("deviceName", &disk.device_name);
        xml.start("ebs");
        xml.leaf("volumeId", &disk.volume_id);
        xml.leaf("status", attachment.state.as_str());
        xml.leaf(
            "attachTime",
            &nimbus_core::iso8601_millis(attachment.attach_time),
        );
        xml.leaf(
            "deleteOnTermination",
            &attachment.delete_on_termination.to_string(),
        );
        xml.end();
        xml.end();
    }
    xml.end();
    xml.leaf("virtualizationType", "hvm");
    if let Some(token) = &instance.client_token {
        xml.leaf("clientToken", token);
    }
    write_tag_set(xml, &instance.tags);
    xml.leaf("hypervisor", "xen");
    xml.leaf("ebsOptimized", "false");
    xml.leaf("enaSupport", "true");
    if let Some(instance_type) = control::catalog::find_instance_type(&instance.instance_type) {
        xml.start("cpuOptions");
        xml.leaf("coreCount", &instance_type.vcpus.div_ceil(2).to_string());
        xml.leaf(
            "threadsPerCore",
            if instance_type.vcpus > 1 { "2" } else { "1" },
        );
        xml.end();
    }
    write_metadata_options(xml, "metadataOptions", &instance.metadata_options);
    xml.start("maintenanceOptions");
    xml.leaf("autoRecovery", instance.auto_recovery.as_str());
    xml.end();
    if let Some(profile) = &instance.iam_instance_profile {
        xml.start("iamInstanceProfile");
        xml.leaf("arn", &profile.arn);
        xml.leaf("id", &profile.id);
        xml.end();
    }
}

fn write_metadata_options(xml: &mut awsproto::XmlWriter, element: &str, options: &MetadataOptions) {
    xml.start(element);
    xml.leaf("state", "applied");
    xml.leaf("httpTokens", &options.http_tokens);
    xml.leaf(
        "httpPutResponseHopLimit",
        &options.http_put_response_hop_limit.to_string(),
    );
    xml.leaf("httpEndpoint", &options.http_endpoint);
    xml.leaf("httpProtocolIpv6", "disabled");
    xml.leaf("instanceMetadataTags", &options.instance_metadata_tags);
    xml.end();
}

pub fn describe_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    render_page(
        response,
        "reservationSet",
        (reservations, next_token),
        |xml, members| write_reservation(xml, members, config, &state),
    )
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

fn render_transitions(response: Response, changes: &[Transition]) -> Result<String, ApiError> {
    response.render(|xml| {
        xml.start("instancesSet");
        for (id, before, after) in changes {
            xml.start("item");
            xml.leaf("instanceId", id);
            write_state(xml, "currentState", *after);
            write_state(xml, "previousState", *before);
            xml.end();
        }
        xml.end();
    })
}

pub fn start_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    transition(context, request, response, Control::start_instances)
}

/// StartInstances and TerminateInstances: a transition with no options.
fn transition(
    context: &ApiContext,
    request: Value,
    response: Response,
    change: fn(&Control, &[String], bool) -> control::Result<Vec<Transition>>,
) -> Result<String, ApiError> {
    let request: InstanceIds = input(request)?;
    reject_stop_options(&request)?;
    let changes = change(&context.control, &request.instance_ids, request.dry_run)?;
    render_transitions(response, &changes)
}

pub fn stop_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: InstanceIds = input(request)?;
    if request.hibernate {
        return Err(unsupported_parameter("Hibernate"));
    }
    let changes =
        context
            .control
            .stop_instances(&request.instance_ids, request.force, request.dry_run)?;
    render_transitions(response, &changes)
}

pub fn terminate_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    transition(context, request, response, Control::terminate_instances)
}

pub fn reboot_instances(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: InstanceIds = input(request)?;
    reject_stop_options(&request)?;
    context
        .control
        .reboot_instances(&request.instance_ids, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
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

pub fn describe_instance_attribute(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DescribeInstanceAttribute = input(request)?;
    let instance = context.control.instance(&request.instance_id)?;
    if request.attribute == "groupSet" {
        let state = context.control.read();
        return response.render(|xml| {
            xml.leaf("instanceId", &instance.instance_id);
            write_group_set(xml, &state, &instance);
        });
    }
    let value = match request.attribute.as_str() {
        "instanceType" => Some(instance.instance_type.clone()),
        "userData" => instance.user_data.clone(),
        "instanceInitiatedShutdownBehavior" => Some(instance.shutdown_behavior.as_str().to_owned()),
        "rootDeviceName" => Some(instance.root_device_name.clone()),
        "disableApiTermination" | "disableApiStop" => Some("false".into()),
        "sourceDestCheck" => instance
            .live_network()
            .map(|n| n.source_dest_check.to_string()),
        other => {
            return Err(ApiError::from(control::Error::Unsupported(format!(
                "The instance attribute {other} is not supported by nimbus."
            ))))
        }
    };
    response.render(|xml| {
        xml.leaf("instanceId", &instance.instance_id);
        xml.start(&request.attribute);
        if let Some(value) = &value {
            xml.leaf("value", value);
        }
        xml.end();
    })
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
    attribute: Option<String>,
    value: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    source_dest_check: Option<BooleanValue>,
    #[serde(default)]
    dry_run: bool,
}

pub fn modify_instance_attribute(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ModifyInstanceAttribute = input(request)?;
    let control = &context.control;
    if !request.groups.is_empty() {
        control.modify_instance_groups(&request.instance_id, &request.groups, request.dry_run)?;
        return response.render(|xml| xml.leaf("return", "true"));
    }
    if let Some(check) = &request.source_dest_check {
        let value = check.value.ok_or_else(|| {
            ApiError::from(control::Error::MissingParameter(
                "SourceDestCheck.Value".into(),
            ))
        })?;
        control.modify_source_dest_check(&request.instance_id, value, request.dry_run)?;
        return response.render(|xml| xml.leaf("return", "true"));
    }
    let (attribute, value) = match (
        &request.instance_type,
        &request.user_data,
        &request.attribute,
    ) {
        (Some(v), None, None) => ("instanceType", v.value.clone()),
        (None, Some(v), None) => ("userData", v.value.clone()),
        (None, None, Some(name)) => (name.as_str(), request.value.clone()),
        _ => {
            return Err(ApiError::from(control::Error::InvalidParameterCombination(
                "Exactly one attribute can be modified per call.".into(),
            )))
        }
    };
    match attribute {
        "instanceType" => {
            let value = value.ok_or_else(|| {
                ApiError::from(control::Error::MissingParameter(
                    "InstanceType.Value".into(),
                ))
            })?;
            control.modify_instance_type(&request.instance_id, &value, request.dry_run)?;
        }
        "userData" => {
            // The wire value is base64 (a blob); an empty value clears the user data.
            let value = value.filter(|v| !v.is_empty());
            control.modify_user_data(&request.instance_id, value, request.dry_run)?;
        }
        other => {
            return Err(ApiError::from(control::Error::Unsupported(format!(
                "Modifying the instance attribute {other} is not supported by nimbus."
            ))))
        }
    }
    response.render(|xml| xml.leaf("return", "true"))
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

pub fn modify_instance_metadata_options(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.leaf("instanceId", &instance.instance_id);
        write_metadata_options(xml, "instanceMetadataOptions", &instance.metadata_options);
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetConsoleOutput {
    instance_id: String,
    /// The answer is always the most recent output, which is what `Latest` asks for.
    #[serde(default, rename = "Latest")]
    _latest: bool,
}

pub fn get_console_output(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: GetConsoleOutput = input(request)?;
    let output = context.control.console_output(&request.instance_id)?;
    // EC2 returns at most 64 KiB: the most recent output.
    let limit = 64 * 1024;
    let tail = if output.len() > limit {
        &output[output.len() - limit..]
    } else {
        &output[..]
    };
    response.render(|xml| {
        xml.leaf("instanceId", &request.instance_id);
        xml.leaf(
            "timestamp",
            &nimbus_core::iso8601_millis(nimbus_core::now_millis()),
        );
        xml.leaf(
            "output",
            &base64::engine::general_purpose::STANDARD.encode(tail),
        );
    })
}
