//! The networking part of RunInstances (`SubnetId`, `SecurityGroupIds`, `SecurityGroups`,
//! `PrivateIpAddress`, `NetworkInterfaces`, `AssociatePublicIpAddress`) and
//! of DescribeInstances (VPC, subnet, addresses, groups, the primary network interface).

use std::net::Ipv4Addr;

use control::idempotency::ClientToken;
use control::instances::Instance;
use control::tags::{tags_of_created, TagSpecification};
use control::vpc::addresses::AddressQueries;
use control::vpc::interfaces::{
    private_dns_name, public_dns_name, InstanceNetwork, InterfaceChange, NetworkRequest,
};
use control::vpc::network_interfaces::InterfaceQueries;
use control::vpc::network_interfaces::{
    CreateInterfaceRequest, ExtraInterface, InterfaceSource, NetworkInterface,
};
use control::{Resource, Tables};
use serde::Deserialize;
use serde_json::{json, Value};

use super::vpcs::BooleanValue;
use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    NoOtherParameters, Output,
};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    (
        "CreateNetworkInterface",
        Handler::Sync(create_network_interface),
    ),
    (
        "DeleteNetworkInterface",
        Handler::Sync(delete_network_interface),
    ),
    (
        "AttachNetworkInterface",
        Handler::Sync(attach_network_interface),
    ),
    (
        "DetachNetworkInterface",
        Handler::Sync(detach_network_interface),
    ),
    (
        "DescribeNetworkInterfaces",
        Handler::Sync(describe_network_interfaces),
    ),
    (
        "ModifyNetworkInterfaceAttribute",
        Handler::Sync(modify_network_interface_attribute),
    ),
    (
        "AssignPrivateIpAddresses",
        Handler::Sync(assign_private_ip_addresses),
    ),
    (
        "UnassignPrivateIpAddresses",
        Handler::Sync(unassign_private_ip_addresses),
    ),
];

/// `NetworkInterfaces.N` of RunInstances.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct NetworkInterfaceInput {
    device_index: Option<i64>,
    subnet_id: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    private_ip_address: Option<String>,
    associate_public_ip_address: Option<bool>,
    delete_on_termination: Option<bool>,
    network_interface_id: Option<String>,
    description: Option<String>,
}

/// The networking members of RunInstances.
pub(super) struct RunNetworkInput {
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    pub security_groups: Vec<String>,
    pub private_ip_address: Option<String>,
    pub network_interfaces: Vec<NetworkInterfaceInput>,
}

impl RunNetworkInput {
    /// The primary interface asked for, from the top-level members or `NetworkInterfaces`
    /// (EC2 refuses both together), and the interfaces at device index 1 and up.
    pub fn into_request(self) -> Result<(NetworkRequest, Vec<ExtraInterface>), ApiError> {
        let mut request = NetworkRequest {
            subnet_id: self.subnet_id,
            security_group_ids: self.security_group_ids,
            security_group_names: self.security_groups,
            private_ip: self.private_ip_address,
            associate_public_ip: None,
        };
        if self.network_interfaces.is_empty() {
            return Ok((request, Vec::new()));
        }
        let several = self.network_interfaces.len() > 1;
        let mut primary = None;
        let mut extras = Vec::new();
        for interface in self.network_interfaces {
            if several && interface.associate_public_ip_address.is_some() {
                return Err(control::Error::InvalidParameterCombination(
                    "The associatePublicIPAddress parameter cannot be specified when launching \
                     with multiple network interfaces."
                        .into(),
                )
                .into());
            }
            match interface.device_index {
                // A lone interface may leave its index out: it can only be the primary one.
                None if !several => primary = Some(interface),
                None => {
                    return Err(control::Error::MissingParameter(
                        "NetworkInterfaces.N.DeviceIndex".into(),
                    )
                    .into())
                }
                Some(0) if primary.is_some() => {
                    return Err(control::Error::InvalidParameterValue(
                        "Each network interface requires a unique device index.".into(),
                    )
                    .into())
                }
                Some(0) => primary = Some(interface),
                Some(index) => extras.push(interface.into_extra(index)?),
            }
        }
        let Some(primary) = primary else {
            return Err(control::Error::InvalidParameterValue(
                "A network interface at device index 0 is required.".into(),
            )
            .into());
        };
        if primary.network_interface_id.is_some() {
            return Err(unsupported_parameter(
                "NetworkInterfaces.N.NetworkInterfaceId (at device index 0)",
            ));
        }
        if primary.description.is_some() {
            return Err(unsupported_parameter(
                "NetworkInterfaces.N.Description (at device index 0)",
            ));
        }
        if primary.delete_on_termination == Some(false) {
            return Err(unsupported_parameter(
                "NetworkInterfaces.N.DeleteOnTermination=false (at device index 0)",
            ));
        }
        let top_level = request.subnet_id.is_some()
            || !request.security_group_ids.is_empty()
            || !request.security_group_names.is_empty()
            || request.private_ip.is_some();
        if top_level {
            return Err(control::Error::InvalidParameterCombination(
                "Network interfaces and an instance-level subnet ID, security groups or private \
                 IP address may not be specified on the same request"
                    .into(),
            )
            .into());
        }
        request.subnet_id = primary.subnet_id;
        request.security_group_ids = primary.groups;
        request.private_ip = primary.private_ip_address;
        request.associate_public_ip = primary.associate_public_ip_address;
        Ok((request, extras))
    }
}

impl NetworkInterfaceInput {
    /// An interface at device index 1 and up: an existing one, or a new one in a subnet.
    fn into_extra(self, device_index: i64) -> Result<ExtraInterface, ApiError> {
        let device_index = u32::try_from(device_index).map_err(|_| {
            control::Error::InvalidParameterValue(format!(
                "Value ({device_index}) for parameter deviceIndex is invalid."
            ))
        })?;
        let source = match (self.network_interface_id, self.subnet_id) {
            (Some(id), None) => {
                if !self.groups.is_empty()
                    || self.private_ip_address.is_some()
                    || self.description.is_some()
                {
                    return Err(control::Error::InvalidParameterCombination(
                        "A network interface ID cannot be given with a subnet, groups, private \
                         IP address or description."
                            .into(),
                    )
                    .into());
                }
                InterfaceSource::Existing(id)
            }
            (None, Some(subnet_id)) => InterfaceSource::New(CreateInterfaceRequest {
                subnet_id,
                security_group_ids: self.groups,
                private_ip: self.private_ip_address,
                description: self.description.unwrap_or_default(),
                ..CreateInterfaceRequest::default()
            }),
            _ => {
                return Err(control::Error::InvalidParameterCombination(
                    "Each network interface needs either a NetworkInterfaceId or a SubnetId."
                        .into(),
                )
                .into())
            }
        };
        Ok(ExtraInterface {
            device_index,
            source,
            delete_on_termination: self.delete_on_termination,
        })
    }
}

fn groups_output(state: &control::State, network: &InstanceNetwork) -> Value {
    (network.security_group_ids.iter())
        .map(|group_id| {
            let name = (state.security_groups().get(group_id)).map(|g| g.group_name.as_str());
            json!({"GroupId": group_id, "GroupName": name.unwrap_or_default()})
        })
        .collect()
}

/// The `groupSet` of an instance (empty once it is terminated).
pub(super) fn group_set_output(state: &control::State, instance: &Instance) -> Value {
    match instance.live_network() {
        Some(network) => groups_output(state, network),
        None => json!([]),
    }
}

fn association_output(public_ip: Option<Ipv4Addr>, region: &str) -> Value {
    json!(public_ip.map(|ip| json!({
        "PublicIp": ip.to_string(),
        "PublicDnsName": public_dns_name(ip, region),
        "IpOwnerId": "amazon",
    })))
}

/// The instance-level networking members of DescribeInstances, for a live instance, with
/// every attached interface; null for a terminated one.
pub(super) fn instance_network_output(
    instance: &Instance,
    state: &control::State,
    config: &nimbus_core::Config,
) -> Value {
    let Some(network) = instance.live_network() else {
        return Value::Null;
    };
    let interfaces: Vec<Value> = (state.interfaces_of(instance).iter())
        .map(|interface| interface_output(interface, state, config))
        .collect();
    let public_ip = state.public_ip_of(instance).map(|ip| ip.to_string());
    json!({
        "SubnetId": network.subnet_id,
        "VpcId": network.vpc_id,
        "PublicIpAddress": public_ip,
        "SourceDestCheck": network.source_dest_check,
        "SecurityGroups": groups_output(state, network),
        "NetworkInterfaces": interfaces,
    })
}

/// One interface, as DescribeInstances, DescribeNetworkInterfaces and
/// CreateNetworkInterface show it (the members of `InstanceNetworkInterface` and
/// `NetworkInterface` share their names).
fn interface_output(
    interface: &NetworkInterface,
    state: &control::State,
    config: &nimbus_core::Config,
) -> Value {
    let region = &config.region;
    let network = &interface.network;
    let public_ip = network.public_ip;
    let managed_attachment = interface.managed.as_ref().map(|managed| {
        // AWS shows a service's interface attached to no instance, owned by the service.
        json!({
            "AttachmentId": network.attachment_id,
            "InstanceOwnerId": managed.requester_id,
            "DeviceIndex": 1,
            "NetworkCardIndex": 0,
            "Status": "attached",
            "DeleteOnTermination": false,
        })
    });
    let attachment = interface.attachment.as_ref().map(|attachment| {
        json!({
            "AttachmentId": network.attachment_id,
            "InstanceId": attachment.instance_id,
            "InstanceOwnerId": config.account_id,
            "DeviceIndex": attachment.device_index,
            "NetworkCardIndex": 0,
            "Status": attachment.status.as_str(),
            "AttachTime": nimbus_core::iso8601_millis(attachment.attach_time),
            "DeleteOnTermination": attachment.delete_on_termination,
        })
    });
    let private_ips: Vec<Value> = (network.private_ips.iter().enumerate())
        .map(|(index, ip)| {
            let primary = index == 0;
            json!({
                "PrivateIpAddress": ip.to_string(),
                "PrivateDnsName": private_dns_name(*ip, region),
                "Primary": primary,
                "Association": association_output(public_ip.filter(|_| primary), region),
            })
        })
        .collect();
    json!({
        "NetworkInterfaceId": network.interface_id,
        "SubnetId": network.subnet_id,
        "VpcId": network.vpc_id,
        "Description": network.description,
        "OwnerId": config.account_id,
        "Status": interface.status(),
        "MacAddress": network.mac,
        "PrivateIpAddress": network.primary_ip().to_string(),
        "PrivateDnsName": private_dns_name(network.primary_ip(), region),
        "SourceDestCheck": network.source_dest_check,
        "Groups": groups_output(state, network),
        "Attachment": attachment.or(managed_attachment),
        "Association": association_output(public_ip, region),
        "PrivateIpAddresses": private_ips,
        "InterfaceType": interface.managed.as_ref().map_or("interface", |m| &m.interface_type),
    })
}

/// An interface as DescribeNetworkInterfaces and CreateNetworkInterface show it.
fn interface_row_output(
    interface: &NetworkInterface,
    state: &control::State,
    config: &nimbus_core::Config,
) -> Value {
    let mut output = interface_output(interface, state, config);
    output["AvailabilityZone"] = json!(interface.availability_zone);
    output["RequesterManaged"] = json!(interface.managed.is_some());
    if let Some(managed) = &interface.managed {
        output["RequesterId"] = json!(managed.requester_id);
    }
    output["TagSet"] = json!(tags_output(&interface.tags));
    output
}

fn describe_network_interfaces(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("NetworkInterfaceIds"))?;
    let page = context.control.describe_network_interfaces(&query)?;
    let state = context.control.read();
    let config = context.control.config();
    Ok(page_output("NetworkInterfaces", page, |row| {
        interface_row_output(&row, &state, config)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateNetworkInterface {
    subnet_id: String,
    #[serde(default)]
    groups: Vec<String>,
    private_ip_address: Option<String>,
    secondary_private_ip_address_count: Option<i64>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn create_network_interface(context: &ApiContext, request: Value) -> Output {
    let token = ClientToken::of_request("CreateNetworkInterface", &request)?;
    let request: CreateNetworkInterface = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, NetworkInterface::KIND)?;
    let interface = context.control.create_network_interface(
        &CreateInterfaceRequest {
            subnet_id: request.subnet_id,
            security_group_ids: request.groups,
            private_ip: request.private_ip_address,
            secondary_ip_count: request.secondary_private_ip_address_count,
            description: request.description,
            tags,
            dry_run: request.dry_run,
        },
        token.as_ref(),
    )?;
    let state = context.control.read();
    let config = context.control.config();
    answer(json!({"NetworkInterface": interface_row_output(&interface, &state, config)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteNetworkInterface {
    network_interface_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_network_interface(context: &ApiContext, request: Value) -> Output {
    let request: DeleteNetworkInterface = input(request)?;
    context
        .control
        .delete_network_interface(&request.network_interface_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AttachNetworkInterface {
    network_interface_id: String,
    instance_id: String,
    device_index: i64,
    network_card_index: Option<i64>,
    #[serde(default)]
    dry_run: bool,
}

fn attach_network_interface(context: &ApiContext, request: Value) -> Output {
    let request: AttachNetworkInterface = input(request)?;
    if request.network_card_index.is_some_and(|card| card != 0) {
        return Err(unsupported_parameter("NetworkCardIndex (other than 0)"));
    }
    let attachment_id = context.control.attach_network_interface(
        &request.network_interface_id,
        &request.instance_id,
        request.device_index,
        request.dry_run,
    )?;
    answer(json!({"AttachmentId": attachment_id, "NetworkCardIndex": 0}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DetachNetworkInterface {
    attachment_id: String,
    /// Nothing to force: the guest is always asked to release the card, with a bounded wait.
    #[serde(default)]
    #[allow(dead_code)]
    force: bool,
    #[serde(default)]
    dry_run: bool,
}

fn detach_network_interface(context: &ApiContext, request: Value) -> Output {
    let request: DetachNetworkInterface = input(request)?;
    context
        .control
        .detach_network_interface(&request.attachment_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifyNetworkInterfaceAttribute {
    network_interface_id: String,
    #[serde(default)]
    groups: Vec<String>,
    source_dest_check: Option<BooleanValue>,
    description: Option<StringValue>,
    attachment: Option<AttachmentChanges>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AttachmentChanges {
    attachment_id: Option<String>,
    delete_on_termination: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StringValue {
    value: Option<String>,
}

fn modify_network_interface_attribute(context: &ApiContext, request: Value) -> Output {
    let request: ModifyNetworkInterfaceAttribute = input(request)?;
    let one_attribute = || {
        ApiError::from(control::Error::InvalidParameterCombination(
            "Exactly one attribute may be modified at a time.".into(),
        ))
    };
    if let Some(attachment) = request.attachment {
        if !request.groups.is_empty()
            || request.source_dest_check.is_some()
            || request.description.is_some()
        {
            return Err(one_attribute());
        }
        let missing = |name: &str| ApiError::from(control::Error::MissingParameter(name.into()));
        context.control.modify_interface_attachment(
            &request.network_interface_id,
            &attachment
                .attachment_id
                .ok_or_else(|| missing("Attachment.AttachmentId"))?,
            attachment
                .delete_on_termination
                .ok_or_else(|| missing("Attachment.DeleteOnTermination"))?,
            request.dry_run,
        )?;
        return answer(Value::Null);
    }
    let change = match (
        request.groups.is_empty(),
        request.source_dest_check,
        request.description,
    ) {
        (false, None, None) => InterfaceChange::Groups(request.groups),
        (true, Some(check), None) => {
            InterfaceChange::SourceDestCheck(check.value.ok_or_else(|| {
                ApiError::from(control::Error::MissingParameter(
                    "SourceDestCheck.Value".into(),
                ))
            })?)
        }
        (true, None, Some(text)) => InterfaceChange::Description(text.value.unwrap_or_default()),
        _ => return Err(one_attribute()),
    };
    context
        .control
        .modify_interface(&request.network_interface_id, change, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssignPrivateIpAddresses {
    network_interface_id: String,
    #[serde(default)]
    private_ip_addresses: Vec<String>,
    secondary_private_ip_address_count: Option<i64>,
    #[serde(default)]
    allow_reassignment: bool,
}

fn assign_private_ip_addresses(context: &ApiContext, request: Value) -> Output {
    let request: AssignPrivateIpAddresses = input(request)?;
    if request.allow_reassignment {
        return Err(unsupported_parameter("AllowReassignment"));
    }
    let assigned = context.control.assign_private_ips(
        &request.network_interface_id,
        &request.private_ip_addresses,
        request.secondary_private_ip_address_count,
    )?;
    let assigned: Vec<Value> = (assigned.iter())
        .map(|ip| json!({"PrivateIpAddress": ip.to_string()}))
        .collect();
    answer(json!({
        "NetworkInterfaceId": request.network_interface_id,
        "AssignedPrivateIpAddresses": assigned,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UnassignPrivateIpAddresses {
    network_interface_id: String,
    #[serde(default)]
    private_ip_addresses: Vec<String>,
}

fn unassign_private_ip_addresses(context: &ApiContext, request: Value) -> Output {
    let request: UnassignPrivateIpAddresses = input(request)?;
    context
        .control
        .unassign_private_ips(&request.network_interface_id, &request.private_ip_addresses)?;
    answer(Value::Null)
}
