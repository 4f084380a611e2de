//! Network interfaces other than an instance's primary one (elastic network interfaces):
//! made by CreateNetworkInterface, deleted by DeleteNetworkInterface, attached to an instance
//! at device index 1 and up and detached again. Each is a record of its own, so it outlives
//! its attachments; the primary interface stays in its instance record (`interfaces.rs`) and
//! is shown among these as the attachment at device index 0.
//!
//! On a stopped instance attach and detach take effect at once: the cards of a VM are
//! plugged at launch (`network_reconciler::open_nics`). On a running one they are recorded
//! `attaching` / `detaching`, as volumes are, and the instance reconciler hot-plugs or
//! unplugs the card (`instance_reconciler::sync_nics`), then settles the attachment. A stop
//! settles what is pending (an attach holds at the next start, a detach is done), and
//! termination releases the attachments in `finish_termination`; both under the instance's
//! generation fencing. Other states (pending, stopping, shutting-down) are refused, so a
//! launch never reads half of an attach.

use serde::{Deserialize, Serialize};

use super::interfaces::{Allocator, InstanceNetwork, NetworkRequest, MAX_SECONDARY_IPS};
use crate::describe::existing;
use crate::filter::{FilterField, Filterable};
use crate::idempotency::{create_once, ClientToken};
use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::volumes::AttachmentState;
use crate::vpc::addresses::AddressQueries;
use crate::{Error, Result, State, Tags, Txn};
use nimbus_core::Config;

/// The network cards a VM has room for (compute's hot-plug ports for NICs): device indexes
/// 0 to `MAX_INTERFACES - 1`.
pub const MAX_INTERFACES: u32 = compute::NIC_PORTS as u32;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Its addresses, MAC and groups; `attachment_id` is that of its current attachment (a
    /// new one per attach). A user's interfaces never get a public IP of their own; a NAT
    /// gateway's shows its elastic IP.
    pub network: InstanceNetwork,
    pub availability_zone: String,
    pub attachment: Option<InterfaceAttachment>,
    pub tags: Tags,
    /// Set when a service made the interface for itself (a load balancer node's): users see
    /// it in use and cannot attach, detach or delete it.
    #[serde(default)]
    pub managed: Option<ManagedInterface>,
}

/// What a service says of an interface it made for itself, as AWS shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManagedInterface {
    /// AWS's `requesterId` (`amazon-elb`), also its attachment's owner.
    pub requester_id: String,
    /// AWS's `interfaceType` (`interface` for an application load balancer's,
    /// `network_load_balancer`).
    pub interface_type: String,
    /// The data plane holds it in a namespace of its own (`network::Holder::Node`).
    pub node: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAttachment {
    pub instance_id: String,
    pub device_index: u32,
    pub delete_on_termination: bool,
    pub attach_time: i64,
    /// `attaching` / `detaching` while the card of a running instance is being plugged or
    /// unplugged (records from before hot-plug are `attached`).
    #[serde(default = "attached")]
    pub status: AttachmentState,
}

fn attached() -> AttachmentState {
    AttachmentState::Attached
}

/// An interface's attachment as AWS shows it (in DescribeNetworkInterfaces and its
/// `attachment.*` filters): the user's, or, for a service's own interface, one to no
/// instance, owned by the service (as AWS shows a load balancer's).
pub struct ShownAttachment<'a> {
    pub instance_id: Option<&'a str>,
    pub owner_id: &'a str,
    pub device_index: u32,
    pub status: &'static str,
    pub attach_time: Option<i64>,
    pub delete_on_termination: bool,
}

impl NetworkInterface {
    pub fn shown_attachment<'a>(&'a self, account_id: &'a str) -> Option<ShownAttachment<'a>> {
        if let Some(attachment) = &self.attachment {
            return Some(ShownAttachment {
                instance_id: Some(&attachment.instance_id),
                owner_id: account_id,
                device_index: attachment.device_index,
                status: attachment.status.as_str(),
                attach_time: Some(attachment.attach_time),
                delete_on_termination: attachment.delete_on_termination,
            });
        }
        self.managed.as_ref().map(|managed| ShownAttachment {
            instance_id: None,
            owner_id: &managed.requester_id,
            device_index: 1,
            status: "attached",
            attach_time: None,
            delete_on_termination: false,
        })
    }

    /// AWS's `interfaceType`.
    pub fn interface_type(&self) -> &str {
        self.managed
            .as_ref()
            .map_or("interface", |m| &m.interface_type)
    }

    pub fn status(&self) -> &'static str {
        if self.attachment.is_some() || self.managed.is_some() {
            "in-use"
        } else {
            "available"
        }
    }

    /// The primary interface of a live instance, shown as an interface attached at device
    /// index 0 (with the instance's public or elastic IP).
    pub fn primary_of(state: &State, instance: &Instance) -> Option<NetworkInterface> {
        let mut network = instance.live_network()?.clone();
        network.public_ip = state.public_ip_of(instance);
        Some(NetworkInterface {
            network,
            availability_zone: instance.availability_zone.clone(),
            attachment: Some(InterfaceAttachment {
                instance_id: instance.instance_id.clone(),
                device_index: 0,
                delete_on_termination: true,
                attach_time: instance.launch_time,
                status: AttachmentState::Attached,
            }),
            tags: instance.network_tags.clone(),
            managed: None,
        })
    }
}

/// Lookups of the working set that the rules of this module answer.
pub trait InterfaceQueries {
    /// The address part of every interface: live instances' primary ones and the others.
    fn interface_networks(&self) -> impl Iterator<Item = &InstanceNetwork>;
    /// Every interface, primary ones included, by ID.
    fn all_interfaces(&self) -> Vec<NetworkInterface>;
    /// The interfaces of an instance, by device index (the primary one first).
    fn interfaces_of(&self, instance: &Instance) -> Vec<NetworkInterface>;
}

impl InterfaceQueries for State {
    fn interface_networks(&self) -> impl Iterator<Item = &InstanceNetwork> {
        self.instances()
            .values()
            .filter_map(|i| i.live_network())
            .chain(self.network_interfaces().values().map(|e| &e.network))
    }

    fn all_interfaces(&self) -> Vec<NetworkInterface> {
        let mut all: Vec<NetworkInterface> = self
            .instances()
            .values()
            .filter_map(|i| NetworkInterface::primary_of(self, i))
            .chain(self.network_interfaces().values().cloned())
            .collect();
        all.sort_by(|a, b| a.network.interface_id.cmp(&b.network.interface_id));
        all
    }

    fn interfaces_of(&self, instance: &Instance) -> Vec<NetworkInterface> {
        let mut interfaces: Vec<NetworkInterface> = NetworkInterface::primary_of(self, instance)
            .into_iter()
            .chain(
                self.network_interfaces()
                    .values()
                    .filter(|e| {
                        e.attachment
                            .as_ref()
                            .is_some_and(|a| a.instance_id == instance.instance_id)
                    })
                    .cloned(),
            )
            .collect();
        interfaces.sort_by_key(|e| e.attachment.as_ref().map(|a| a.device_index));
        interfaces
    }
}

fn ips(e: &NetworkInterface) -> Vec<String> {
    e.network
        .private_ips
        .iter()
        .map(|ip| ip.to_string())
        .collect()
}

fn of_attachment(
    e: &NetworkInterface,
    config: &Config,
    field: impl Fn(&ShownAttachment) -> String,
) -> Vec<String> {
    e.shown_attachment(&config.account_id)
        .iter()
        .map(field)
        .collect()
}

impl Filterable for NetworkInterface {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("network-interface-id", |e, _| {
            vec![e.network.interface_id.clone()]
        }),
        ("subnet-id", |e, _| vec![e.network.subnet_id.clone()]),
        ("vpc-id", |e, _| vec![e.network.vpc_id.clone()]),
        ("availability-zone", |e, _| {
            vec![e.availability_zone.clone()]
        }),
        ("description", |e, _| vec![e.network.description.clone()]),
        ("attachment.instance-id", |e, config| {
            of_attachment(e, config, |a| a.instance_id.unwrap_or_default().into())
        }),
        ("attachment.instance-owner-id", |e, config| {
            of_attachment(e, config, |a| a.owner_id.into())
        }),
        ("attachment.attachment-id", |e, config| {
            of_attachment(e, config, |_| e.network.attachment_id.clone())
        }),
        ("attachment.device-index", |e, config| {
            of_attachment(e, config, |a| a.device_index.to_string())
        }),
        ("attachment.status", |e, config| {
            of_attachment(e, config, |a| a.status.into())
        }),
        ("attachment.delete-on-termination", |e, config| {
            of_attachment(e, config, |a| a.delete_on_termination.to_string())
        }),
        ("requester-id", |e, _| {
            e.managed.iter().map(|m| m.requester_id.clone()).collect()
        }),
        ("requester-managed", |e, _| {
            vec![e.managed.is_some().to_string()]
        }),
        ("interface-type", |e, _| vec![e.interface_type().into()]),
        ("private-ip-address", |e, _| ips(e)),
        ("addresses.private-ip-address", |e, _| ips(e)),
        ("mac-address", |e, _| vec![e.network.mac.clone()]),
        ("group-id", |e, _| e.network.security_group_ids.clone()),
        ("status", |e, _| vec![e.status().into()]),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
        ("source-dest-check", |e, _| {
            vec![e.network.source_dest_check.to_string()]
        }),
    ];
}

/// What CreateNetworkInterface asks for.
#[derive(Clone, Debug, Default)]
pub struct CreateInterfaceRequest {
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub private_ip: Option<String>,
    pub secondary_ip_count: Option<i64>,
    pub description: String,
    pub tags: Tags,
    pub dry_run: bool,
}

pub(crate) fn check_description(text: &str) -> Result<()> {
    if text.len() > 255 {
        return Err(Error::InvalidParameterValue(
            "Value for parameter description is invalid. Length exceeds maximum of 255.".into(),
        ));
    }
    Ok(())
}

/// Users may look at a service's interface but not change it, as in AWS.
pub(crate) fn refuse_managed(interface: &NetworkInterface) -> Result<()> {
    match &interface.managed {
        Some(managed) => Err(Error::OperationNotPermitted(format!(
            "You are not allowed to manage the network interface '{}': it belongs to {}.",
            interface.network.interface_id, managed.requester_id
        ))),
        None => Ok(()),
    }
}

pub(crate) fn interface_not_found(id: &str) -> Error {
    Error::InterfaceNotFound(format!("The networkInterface ID '{id}' does not exist"))
}

pub(crate) fn check_interface_id(id: &str) -> Result<()> {
    if nimbus_core::is_valid_id(id, "eni") {
        Ok(())
    } else {
        Err(Error::MalformedInterfaceId(format!(
            "Invalid id: \"{id}\" (expecting \"eni-...\")"
        )))
    }
}

/// A new available interface in a subnet, planned with the allocator of `txn`'s state.
pub(crate) fn new_interface(
    txn: &Txn,
    config: &Config,
    host: &dyn network::NetworkDriver,
    request: &CreateInterfaceRequest,
) -> Result<NetworkInterface> {
    check_description(&request.description)?;
    let state = txn.state();
    let mut allocator = Allocator::new(state, config, host)?;
    let network_request = NetworkRequest {
        subnet_id: Some(request.subnet_id.clone()),
        security_group_ids: request.security_group_ids.clone(),
        private_ip: request.private_ip.clone(),
        associate_public_ip: Some(false),
        ..NetworkRequest::default()
    };
    let (subnet, groups) = allocator.placement(&network_request, "")?;
    let mut network = allocator.allocate(&network_request, &subnet, &groups)?;
    match request.secondary_ip_count {
        None => {}
        Some(n) if (1..=MAX_SECONDARY_IPS).contains(&n) => {
            for _ in 0..n {
                let ip = allocator.private_ip(&subnet, None)?;
                network.private_ips.push(ip);
            }
        }
        Some(n) => {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({n}) for parameter secondaryPrivateIpAddressCount is invalid \
                 (1 to {MAX_SECONDARY_IPS})."
            )))
        }
    }
    network.description = request.description.clone();
    Ok(NetworkInterface {
        network,
        availability_zone: subnet.availability_zone.clone(),
        attachment: None,
        tags: request.tags.clone(),
        managed: None,
    })
}

/// What a service asks of an interface it makes for itself.
#[derive(Clone, Debug)]
pub struct ManagedInterfaceRequest {
    pub subnet_id: String,
    /// None at all is allowed here (a network load balancer without groups).
    pub security_group_ids: Vec<String>,
    pub description: String,
    /// A public IP from the pool, as an internet-facing load balancer's nodes have.
    pub public_ip: bool,
    pub managed: ManagedInterface,
}

/// An interface RunInstances attaches besides the primary one.
#[derive(Clone, Debug)]
pub struct ExtraInterface {
    pub device_index: u32,
    pub source: InterfaceSource,
    /// Defaults to true for an interface made for the launch, false for an existing one.
    pub delete_on_termination: Option<bool>,
}

#[derive(Clone, Debug)]
pub enum InterfaceSource {
    /// An available interface.
    Existing(String),
    /// A new interface (`subnet_id` and groups as CreateNetworkInterface takes them).
    New(CreateInterfaceRequest),
}

/// Attaches RunInstances's extra interfaces to the instance just put in `txn`.
pub(crate) fn attach_extras(
    txn: &mut Txn,
    config: &Config,
    host: &dyn network::NetworkDriver,
    instance: &Instance,
    extras: &[ExtraInterface],
    new_interface_tags: &Tags,
) -> Result<()> {
    for extra in extras {
        let (mut interface, created) = match &extra.source {
            InterfaceSource::Existing(id) => {
                check_interface_id(id)?;
                (
                    existing::<NetworkInterface>(txn.state(), id)?.clone(),
                    false,
                )
            }
            InterfaceSource::New(request) => {
                let mut interface = new_interface(txn, config, host, request)?;
                interface.tags.extend(new_interface_tags.clone());
                (interface, true)
            }
        };
        let delete_on_termination = extra.delete_on_termination.unwrap_or(created);
        attach(
            txn.state(),
            &mut interface,
            instance,
            extra.device_index,
            delete_on_termination,
        )?;
        txn.put(interface)?;
    }
    Ok(())
}

/// Checks that `interface` can be attached to `instance` at `device_index` and attaches it
/// (in memory; the caller stores it). Returns the new attachment ID.
pub(crate) fn attach(
    state: &State,
    interface: &mut NetworkInterface,
    instance: &Instance,
    device_index: u32,
    delete_on_termination: bool,
) -> Result<String> {
    let interface_id = interface.network.interface_id.clone();
    let instance_id = &instance.instance_id;
    refuse_managed(interface)?;
    if interface.attachment.is_some() {
        return Err(Error::InterfaceInUse(format!(
            "Interface: [{interface_id}] in use."
        )));
    }
    let Some(primary) = instance.live_network() else {
        return Err(Error::IncorrectInstanceState(format!(
            "The instance '{instance_id}' has no network interface."
        )));
    };
    if primary.vpc_id != interface.network.vpc_id {
        return Err(Error::InvalidParameterValue(format!(
            "The network interface {interface_id} and instance {instance_id} are in different VPCs."
        )));
    }
    if interface.availability_zone != instance.availability_zone {
        return Err(Error::InvalidParameterCombination(format!(
            "You may not attach a network interface to an instance if they are not in the same \
             availability zone ({} and {}).",
            interface.availability_zone, instance.availability_zone
        )));
    }
    if device_index >= MAX_INTERFACES {
        return Err(Error::AttachmentLimitExceeded(format!(
            "Interface count {} exceeds the limit of {MAX_INTERFACES} network interfaces of an \
             instance (device index {device_index}).",
            device_index + 1
        )));
    }
    if state.interfaces_of(instance).iter().any(|e| {
        e.attachment
            .as_ref()
            .is_some_and(|a| a.device_index == device_index)
    }) {
        return Err(Error::InvalidParameterValue(format!(
            "Instance '{instance_id}' already has an interface attached at device index \
             '{device_index}'."
        )));
    }
    let attachment_id = nimbus_core::new_id("eni-attach");
    interface.network.attachment_id = attachment_id.clone();
    interface.attachment = Some(InterfaceAttachment {
        instance_id: instance_id.clone(),
        device_index,
        delete_on_termination,
        attach_time: nimbus_core::now_millis(),
        // A running instance gets the card from the reconciler; a stopped one at its start.
        status: if instance.state == InstanceState::Running {
            AttachmentState::Attaching
        } else {
            AttachmentState::Attached
        },
    });
    Ok(attachment_id)
}

/// Attach and detach act on a stopped instance at once and hot-plug on a running one; in
/// between, the VM's cards are in flux (a launch or a power-off is under way).
fn require_stopped_or_running(instance: &Instance) -> Result<()> {
    if matches!(
        instance.state,
        InstanceState::Stopped | InstanceState::Running
    ) {
        return Ok(());
    }
    Err(Error::IncorrectInstanceState(format!(
        "The instance '{}' is in the '{}' state; network interfaces are attached to and \
         detached from running or stopped instances.",
        instance.instance_id,
        instance.state.as_str()
    )))
}

/// The terminated instance's interfaces: DeleteOnTermination ones are deleted, the others
/// detached (`available`).
pub(crate) fn release_on_termination(txn: &mut Txn, instance_id: &str) -> Result<()> {
    let attached: Vec<NetworkInterface> = txn
        .state()
        .network_interfaces()
        .values()
        .filter(|e| {
            e.attachment
                .as_ref()
                .is_some_and(|a| a.instance_id == instance_id)
        })
        .cloned()
        .collect();
    for mut interface in attached {
        if interface
            .attachment
            .take()
            .is_some_and(|a| a.delete_on_termination)
        {
            txn.delete::<NetworkInterface>(&interface.network.interface_id);
        } else {
            txn.put(interface)?;
        }
    }
    Ok(())
}

impl crate::Control {
    /// CreateNetworkInterface (at most once per client token).
    pub fn create_network_interface(
        &self,
        request: &CreateInterfaceRequest,
        token: Option<&ClientToken>,
    ) -> Result<NetworkInterface> {
        self.mutate(|txn| {
            create_once(txn, token, |txn| {
                let interface = new_interface(txn, self.config(), self.network(), request)?;
                if request.dry_run {
                    return Err(Error::DryRunOperation);
                }
                txn.put(interface.clone())?;
                Ok(interface)
            })
        })
    }

    /// An interface a service makes for itself, in use from the start.
    pub fn create_managed_interface(
        &self,
        request: &ManagedInterfaceRequest,
    ) -> Result<NetworkInterface> {
        check_description(&request.description)?;
        self.mutate(|txn| {
            let mut allocator = Allocator::new(txn.state(), self.config(), self.network())?;
            let network_request = NetworkRequest {
                subnet_id: Some(request.subnet_id.clone()),
                security_group_ids: request.security_group_ids.clone(),
                associate_public_ip: Some(request.public_ip),
                ..NetworkRequest::default()
            };
            let (subnet, groups) = allocator.placement(&network_request, "")?;
            let mut network = allocator.allocate(&network_request, &subnet, &groups)?;
            network.description = request.description.clone();
            if request.security_group_ids.is_empty() {
                // Placement puts a member of no group in the default one; a service's
                // interface may be in none.
                network.security_group_ids.clear();
            }
            let interface = NetworkInterface {
                network,
                availability_zone: subnet.availability_zone.clone(),
                attachment: None,
                tags: Tags::default(),
                managed: Some(request.managed.clone()),
            };
            txn.put(interface.clone())?;
            Ok(interface)
        })
    }

    /// Changes the groups of a service's interface (SetSecurityGroups of a load balancer).
    pub fn set_managed_interface_groups(
        &self,
        interface_id: &str,
        groups: &[String],
    ) -> Result<()> {
        self.mutate(|txn| {
            let mut interface = existing::<NetworkInterface>(txn.state(), interface_id)?.clone();
            if interface.managed.is_none() {
                return Err(interface_not_found(interface_id));
            }
            interface.network.security_group_ids = groups.to_vec();
            Ok(txn.put(interface)?)
        })
    }

    /// Deletes a service's interface; an absent one is no error (a retried deletion).
    pub fn delete_managed_interface(&self, interface_id: &str) -> Result<()> {
        self.mutate(|txn| {
            let managed = txn
                .state()
                .network_interfaces()
                .get(interface_id)
                .is_some_and(|i| i.managed.is_some());
            if managed {
                txn.delete::<NetworkInterface>(interface_id);
            }
            Ok(())
        })
    }

    /// DeleteNetworkInterface: available interfaces only.
    pub fn delete_network_interface(&self, interface_id: &str, dry_run: bool) -> Result<()> {
        check_interface_id(interface_id)?;
        self.mutate(|txn| {
            let state = txn.state();
            let in_use = match state.network_interfaces().get(interface_id) {
                // A service's interface is in use as long as its owner lives.
                Some(interface) => interface.attachment.is_some() || interface.managed.is_some(),
                None => {
                    // A primary interface goes with its instance.
                    if !state
                        .interface_networks()
                        .any(|n| n.interface_id == interface_id)
                    {
                        return Err(interface_not_found(interface_id));
                    }
                    true
                }
            };
            if in_use {
                return Err(Error::InterfaceInUse(format!(
                    "The network interface '{interface_id}' is currently in use."
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<NetworkInterface>(interface_id);
            Ok(())
        })
    }

    /// AttachNetworkInterface: returns the attachment ID.
    pub fn attach_network_interface(
        &self,
        interface_id: &str,
        instance_id: &str,
        device_index: i64,
        dry_run: bool,
    ) -> Result<String> {
        check_interface_id(interface_id)?;
        let device_index = u32::try_from(device_index).map_err(|_| {
            Error::InvalidParameterValue(format!(
                "Value ({device_index}) for parameter deviceIndex is invalid."
            ))
        })?;
        self.mutate(|txn| {
            let state = txn.state();
            let mut interface = existing::<NetworkInterface>(state, interface_id)
                .map_err(|_| {
                    if state
                        .interface_networks()
                        .any(|n| n.interface_id == interface_id)
                    {
                        Error::InterfaceInUse(format!("Interface: [{interface_id}] in use."))
                    } else {
                        interface_not_found(interface_id)
                    }
                })?
                .clone();
            let instance = existing::<Instance>(state, instance_id)?;
            require_stopped_or_running(instance)?;
            let attachment_id = attach(state, &mut interface, instance, device_index, false)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.put(interface)?;
            Ok(attachment_id)
        })
    }

    /// ModifyNetworkInterfaceAttribute `Attachment`: the DeleteOnTermination of an attachment.
    pub fn modify_interface_attachment(
        &self,
        interface_id: &str,
        attachment_id: &str,
        delete_on_termination: bool,
        dry_run: bool,
    ) -> Result<()> {
        check_interface_id(interface_id)?;
        self.mutate(|txn| {
            let state = txn.state();
            let Some(mut interface) = state.network_interfaces().get(interface_id).cloned() else {
                let primary = state
                    .interface_networks()
                    .find(|n| n.interface_id == interface_id)
                    .ok_or_else(|| interface_not_found(interface_id))?;
                // A primary interface is part of its instance's record and goes with it.
                if primary.attachment_id != attachment_id || !delete_on_termination {
                    return Err(Error::Unsupported(format!(
                        "The primary network interface {interface_id} is always deleted with \
                         its instance."
                    )));
                }
                return if dry_run {
                    Err(Error::DryRunOperation)
                } else {
                    Ok(())
                };
            };
            let current = interface.network.attachment_id.clone();
            let Some(attachment) = interface
                .attachment
                .as_mut()
                .filter(|_| current == attachment_id)
            else {
                return Err(Error::InterfaceAttachmentNotFound(format!(
                    "The attachment ID '{attachment_id}' does not exist"
                )));
            };
            attachment.delete_on_termination = delete_on_termination;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            Ok(txn.put(interface)?)
        })
    }

    /// DetachNetworkInterface: at once from a stopped instance, `detaching` from a running
    /// one until the reconciler has unplugged the card. `force` changes nothing: the guest
    /// is always asked to release the card, and a bounded wait is retried.
    pub fn detach_network_interface(&self, attachment_id: &str, dry_run: bool) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let not_found = || {
                Error::InterfaceAttachmentNotFound(format!(
                    "The attachment ID '{attachment_id}' does not exist"
                ))
            };
            if !nimbus_core::is_valid_id(attachment_id, "eni-attach") {
                return Err(not_found());
            }
            let Some(mut interface) = state
                .network_interfaces()
                .values()
                .find(|e| e.attachment.is_some() && e.network.attachment_id == attachment_id)
                .cloned()
            else {
                if state
                    .interface_networks()
                    .any(|n| n.attachment_id == attachment_id)
                {
                    return Err(Error::OperationNotPermitted(format!(
                        "The network interface at device index 0 cannot be detached \
                         ({attachment_id})."
                    )));
                }
                return Err(not_found());
            };
            let Some(attachment) = interface.attachment.as_mut() else {
                return Err(not_found());
            };
            let instance = existing::<Instance>(state, &attachment.instance_id)?;
            require_stopped_or_running(instance)?;
            match attachment.status {
                AttachmentState::Attaching => {
                    return Err(Error::IncorrectState(format!(
                        "The network interface attachment '{attachment_id}' is in the \
                         'attaching' state."
                    )))
                }
                // Asked again while the card is going: nothing more to do.
                AttachmentState::Detaching if !dry_run => return Ok(()),
                _ => {}
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            if instance.state == InstanceState::Running {
                attachment.status = AttachmentState::Detaching;
            } else {
                interface.attachment = None;
            }
            Ok(txn.put(interface)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::instances::RunInstancesRequest;
    use crate::testkit::Harness;
    use crate::vpc::security_groups::GroupQueries;
    use crate::vpc::subnets::SubnetQueries;

    fn create(h: &Harness, subnet_id: &str) -> NetworkInterface {
        h.control
            .create_network_interface(
                &CreateInterfaceRequest {
                    subnet_id: subnet_id.to_owned(),
                    description: "extra".into(),
                    ..CreateInterfaceRequest::default()
                },
                None,
            )
            .expect("create")
    }

    fn interface(h: &Harness, id: &str) -> Option<NetworkInterface> {
        h.control.read().network_interfaces().get(id).cloned()
    }

    /// A running instance in the default subnet of the first zone, and that subnet.
    async fn running_instance(h: &Harness) -> (Instance, String) {
        let instance = h.run_instance();
        h.settle().await;
        let subnet = instance.network.clone().expect("interface").subnet_id;
        (instance, subnet)
    }

    /// A running instance (its ID and primary interface) and an available interface in its
    /// subnet.
    async fn running_instance_and_free_interface(
        h: &Harness,
    ) -> (String, InstanceNetwork, NetworkInterface) {
        let (instance, subnet) = running_instance(h).await;
        let primary = instance.network.clone().expect("interface");
        (instance.instance_id, primary, create(h, &subnet))
    }

    async fn stop(h: &Harness, id: &str) {
        h.control
            .stop_instances(&[id.to_owned()], false, false)
            .expect("stop");
        h.settle().await;
        assert_eq!(h.instance(id).state, InstanceState::Stopped);
    }

    #[tokio::test]
    async fn a_service_interface_is_in_use_wired_as_a_node_and_not_the_users_to_change() {
        let h = Harness::new().await;
        let subnet = h
            .control
            .read()
            .default_subnet("us-east-1a")
            .cloned()
            .expect("subnet");
        let eni = h
            .control
            .create_managed_interface(&ManagedInterfaceRequest {
                subnet_id: subnet.subnet_id.clone(),
                security_group_ids: Vec::new(),
                description: "ELB net/web/50dc6c495c0c9188".into(),
                public_ip: true,
                managed: ManagedInterface {
                    requester_id: "amazon-elb".into(),
                    interface_type: "network_load_balancer".into(),
                    node: true,
                },
            })
            .expect("create");
        let id = eni.network.interface_id.clone();
        assert_eq!(eni.status(), "in-use");
        assert!(eni.network.security_group_ids.is_empty());
        assert!(eni.network.public_ip.is_some());
        let refused = h.control.delete_network_interface(&id, false);
        assert!(
            matches!(refused, Err(Error::InterfaceInUse(_))),
            "{refused:?}"
        );
        let (instance, _) = running_instance(&h).await;
        let refused = h
            .control
            .attach_network_interface(&id, &instance.instance_id, 1, false);
        assert!(
            matches!(refused, Err(Error::OperationNotPermitted(_))),
            "{refused:?}"
        );
        let spec = crate::vpc::spec::vpc_spec(
            &h.control.read(),
            "us-east-1",
            &h.control.read().vpcs()[&subnet.vpc_id],
        );
        let wired = spec.interfaces.iter().find(|i| i.interface_id == id);
        assert_eq!(wired.map(|i| i.holder), Some(network::Holder::Node));
        h.control.delete_managed_interface(&id).expect("delete");
        h.control.delete_managed_interface(&id).expect("again");
        assert!(interface(&h, &id).is_none());
    }

    #[tokio::test]
    async fn a_new_interface_takes_an_address_a_mac_and_the_default_group() {
        let h = Harness::new().await;
        let subnet = h
            .control
            .read()
            .default_subnet("us-east-1a")
            .cloned()
            .expect("subnet");
        let before = h.control.read().available_ip_count(&subnet);
        let eni = create(&h, &subnet.subnet_id);
        assert_eq!(eni.status(), "available");
        assert_eq!(eni.network.primary_ip(), Ipv4Addr::new(172, 31, 0, 4));
        assert!(eni.network.mac.starts_with("02:"));
        assert_eq!(eni.network.public_ip, None);
        assert_eq!(eni.availability_zone, subnet.availability_zone);
        let default_group = h
            .control
            .read()
            .default_group(&subnet.vpc_id)
            .cloned()
            .expect("group");
        assert_eq!(eni.network.security_group_ids, vec![default_group.group_id]);
        assert_eq!(h.control.read().available_ip_count(&subnet), before - 1);
        // The next instance does not get its address, and the VPC spec carries it unattached.
        let instance = h.run_instance();
        assert_eq!(
            instance.network.expect("interface").primary_ip(),
            Ipv4Addr::new(172, 31, 0, 5)
        );
        let spec = crate::vpc::spec::vpc_spec(
            &h.control.read(),
            "us-east-1",
            &h.control.read().vpcs()[&subnet.vpc_id],
        );
        let wired = spec
            .interfaces
            .iter()
            .find(|i| i.interface_id == eni.network.interface_id)
            .expect("in the spec");
        assert_eq!(wired.instance_id, None);
        // A taken address is refused; a subnet's dependencies include the interface.
        let taken = h.control.create_network_interface(
            &CreateInterfaceRequest {
                subnet_id: subnet.subnet_id.clone(),
                private_ip: Some("172.31.0.4".into()),
                ..CreateInterfaceRequest::default()
            },
            None,
        );
        assert!(matches!(taken, Err(Error::AddressInUse(_))), "{taken:?}");
        let busy = h.control.delete_subnet(&subnet.subnet_id, false);
        assert!(
            matches!(busy, Err(Error::DependencyViolation(_))),
            "{busy:?}"
        );
    }

    #[tokio::test]
    async fn delete_takes_available_interfaces_only() {
        let h = Harness::new().await;
        let (instance, subnet) = running_instance(&h).await;
        let primary = instance.network.clone().expect("interface").interface_id;
        let eni = create(&h, &subnet).network.interface_id;
        for (id, check) in [
            (
                "eni-nothex!",
                (|e| matches!(e, Error::MalformedInterfaceId(_))) as fn(&Error) -> bool,
            ),
            ("eni-0123456789abcdef0", |e| {
                matches!(e, Error::InterfaceNotFound(_))
            }),
            (primary.as_str(), |e| matches!(e, Error::InterfaceInUse(_))),
        ] {
            let error = h.control.delete_network_interface(id, false).expect_err(id);
            assert!(check(&error), "{id}: {error:?}");
        }
        stop(&h, &instance.instance_id).await;
        h.control
            .attach_network_interface(&eni, &instance.instance_id, 1, false)
            .expect("attach");
        let attached = h.control.delete_network_interface(&eni, false);
        assert!(
            matches!(attached, Err(Error::InterfaceInUse(_))),
            "{attached:?}"
        );
        let attachment = interface(&h, &eni).expect("eni").network.attachment_id;
        h.control
            .detach_network_interface(&attachment, false)
            .expect("detach");
        h.control
            .delete_network_interface(&eni, false)
            .expect("delete");
        assert!(interface(&h, &eni).is_none());
    }

    #[tokio::test]
    async fn attach_checks_state_index_zone_and_vpc() {
        let h = Harness::new().await;
        let (instance, subnet) = running_instance(&h).await;
        let id = instance.instance_id.clone();
        let eni = create(&h, &subnet).network.interface_id;
        // A VM whose cards are in flux (here: being launched) takes no attach.
        let booting = h.run_instance().instance_id;
        let pending = h.control.attach_network_interface(&eni, &booting, 1, false);
        assert!(
            matches!(pending, Err(Error::IncorrectInstanceState(_))),
            "{pending:?}"
        );
        stop(&h, &id).await;
        let at_zero = h.control.attach_network_interface(&eni, &id, 0, false);
        assert!(
            matches!(at_zero, Err(Error::InvalidParameterValue(_))),
            "{at_zero:?}"
        );
        let too_far = h
            .control
            .attach_network_interface(&eni, &id, MAX_INTERFACES as i64, false);
        assert!(
            matches!(too_far, Err(Error::AttachmentLimitExceeded(_))),
            "{too_far:?}"
        );
        let other_zone = h
            .control
            .read()
            .default_subnet("us-east-1b")
            .cloned()
            .expect("subnet");
        let far = create(&h, &other_zone.subnet_id).network.interface_id;
        let zone = h.control.attach_network_interface(&far, &id, 1, false);
        assert!(
            matches!(zone, Err(Error::InvalidParameterCombination(_))),
            "{zone:?}"
        );
        let vpc = h
            .control
            .create_vpc("10.7.0.0/16", Tags::new(), false)
            .expect("vpc");
        let foreign = h
            .control
            .create_subnet(
                &vpc.vpc_id,
                "10.7.1.0/24",
                Some("us-east-1a"),
                Tags::new(),
                false,
            )
            .expect("subnet");
        let foreign = create(&h, &foreign.subnet_id).network.interface_id;
        let vpc_error = h.control.attach_network_interface(&foreign, &id, 1, false);
        assert!(
            matches!(vpc_error, Err(Error::InvalidParameterValue(_))),
            "{vpc_error:?}"
        );

        let attachment = h
            .control
            .attach_network_interface(&eni, &id, 1, false)
            .expect("attach");
        assert!(attachment.starts_with("eni-attach-"));
        let again = h.control.attach_network_interface(&eni, &id, 2, false);
        assert!(matches!(again, Err(Error::InterfaceInUse(_))), "{again:?}");
        let second = create(&h, &subnet).network.interface_id;
        let taken = h.control.attach_network_interface(&second, &id, 1, false);
        assert!(
            matches!(taken, Err(Error::InvalidParameterValue(_))),
            "{taken:?}"
        );
        let dry = h.control.attach_network_interface(&second, &id, 2, true);
        assert!(matches!(dry, Err(Error::DryRunOperation)), "{dry:?}");
        assert_eq!(interface(&h, &second).expect("eni").status(), "available");
    }

    #[tokio::test]
    async fn an_attached_interface_is_plugged_at_the_next_start_and_leaves_at_detach() {
        let h = Harness::new().await;
        let (id, primary, eni) = running_instance_and_free_interface(&h).await;
        let eni_id = eni.network.interface_id.clone();
        stop(&h, &id).await;
        let attachment = h
            .control
            .attach_network_interface(&eni_id, &id, 1, false)
            .expect("attach");
        h.control
            .start_instances(std::slice::from_ref(&id), false)
            .expect("start");
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Running);
        assert_eq!(
            h.hypervisor.nic_macs(&id),
            vec![primary.mac.clone(), eni.network.mac.clone()],
            "both cards, in device index order"
        );
        let spec = h.network.applied(&primary.vpc_id).expect("applied");
        let wired = spec
            .interfaces
            .iter()
            .find(|i| i.interface_id == eni_id)
            .expect("in the spec");
        assert_eq!(wired.instance_id.as_deref(), Some(id.as_str()));
        let listed = h.control.read().interfaces_of(&h.instance(&id));
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].status(), "in-use");
        let metadata = crate::metadata::instance_metadata(&h.control, &id).expect("metadata");
        let served: Vec<(u32, String)> = metadata
            .interfaces
            .iter()
            .map(|i| (i.device_number, i.interface_id.clone()))
            .collect();
        assert_eq!(
            served,
            vec![(0, primary.interface_id.clone()), (1, eni_id.clone())]
        );
        h.control
            .modify_interface_attachment(&eni_id, &attachment, true, false)
            .expect("delete on termination");
        let dot = interface(&h, &eni_id)
            .and_then(|e| e.attachment)
            .expect("attached");
        assert!(dot.delete_on_termination);
        let stranger = h.control.modify_interface_attachment(
            &eni_id,
            "eni-attach-0123456789abcdef0",
            false,
            false,
        );
        assert!(
            matches!(stranger, Err(Error::InterfaceAttachmentNotFound(_))),
            "{stranger:?}"
        );
        h.control
            .modify_interface_attachment(&eni_id, &attachment, false, false)
            .expect("keep on termination");

        // Detach: not the primary, not an unknown attachment.
        let primary_detach = h
            .control
            .detach_network_interface(&primary.attachment_id, false);
        assert!(
            matches!(primary_detach, Err(Error::OperationNotPermitted(_))),
            "{primary_detach:?}"
        );
        let unknown = h
            .control
            .detach_network_interface("eni-attach-0123456789abcdef0", false);
        assert!(
            matches!(unknown, Err(Error::InterfaceAttachmentNotFound(_))),
            "{unknown:?}"
        );
        stop(&h, &id).await;
        h.control
            .detach_network_interface(&attachment, false)
            .expect("detach");
        h.control
            .start_instances(std::slice::from_ref(&id), false)
            .expect("start");
        h.settle().await;
        assert_eq!(h.hypervisor.nic_macs(&id), vec![primary.mac]);
        assert_eq!(interface(&h, &eni_id).expect("eni").status(), "available");
    }

    #[tokio::test]
    async fn termination_deletes_launch_interfaces_and_frees_the_others() {
        let h = Harness::new().await;
        let subnet = h
            .control
            .read()
            .default_subnet("us-east-1a")
            .cloned()
            .expect("subnet");
        let kept = create(&h, &subnet.subnet_id).network.interface_id;
        let request = RunInstancesRequest {
            image_id: h.image_id.clone(),
            min_count: 1,
            max_count: 1,
            extra_interfaces: vec![
                ExtraInterface {
                    device_index: 1,
                    source: InterfaceSource::Existing(kept.clone()),
                    delete_on_termination: None,
                },
                ExtraInterface {
                    device_index: 2,
                    source: InterfaceSource::New(CreateInterfaceRequest {
                        subnet_id: subnet.subnet_id.clone(),
                        ..CreateInterfaceRequest::default()
                    }),
                    delete_on_termination: None,
                },
            ],
            ..RunInstancesRequest::default()
        };
        let instance = h.control.run_instances(request).expect("run").remove(0);
        h.settle().await;
        let id = instance.instance_id.clone();
        assert_eq!(h.hypervisor.nic_macs(&id).len(), 3);
        let interfaces = h.control.read().interfaces_of(&instance);
        let made = interfaces[2].network.interface_id.clone();
        let dot: Vec<bool> = interfaces
            .iter()
            .map(|e| {
                e.attachment
                    .as_ref()
                    .expect("attached")
                    .delete_on_termination
            })
            .collect();
        assert_eq!(dot, vec![true, false, true]);

        // Two launches may not share one existing interface.
        let twice = h.control.run_instances(RunInstancesRequest {
            image_id: h.image_id.clone(),
            min_count: 1,
            max_count: 1,
            extra_interfaces: vec![ExtraInterface {
                device_index: 1,
                source: InterfaceSource::Existing(kept.clone()),
                delete_on_termination: None,
            }],
            ..RunInstancesRequest::default()
        });
        assert!(matches!(twice, Err(Error::InterfaceInUse(_))), "{twice:?}");
        assert_eq!(
            h.control.read().instances().len(),
            1,
            "nothing of it remains"
        );

        h.control
            .terminate_instances(std::slice::from_ref(&id), false)
            .expect("terminate");
        h.settle().await;
        assert_eq!(interface(&h, &kept).expect("kept").status(), "available");
        assert!(interface(&h, &made).is_none(), "deleted with its instance");
    }

    fn attachment_status(h: &Harness, eni: &str) -> Option<AttachmentState> {
        interface(h, eni)
            .and_then(|e| e.attachment)
            .map(|a| a.status)
    }

    #[tokio::test]
    async fn a_running_instance_gets_the_card_hot_plugged_and_unplugged() {
        let h = Harness::new().await;
        let (id, primary, eni) = running_instance_and_free_interface(&h).await;
        let eni_id = eni.network.interface_id.clone();
        let attachment = h
            .control
            .attach_network_interface(&eni_id, &id, 1, false)
            .expect("attach to a running instance");
        assert_eq!(
            attachment_status(&h, &eni_id),
            Some(AttachmentState::Attaching)
        );
        assert_eq!(interface(&h, &eni_id).expect("eni").status(), "in-use");
        // What is still being attached cannot be detached yet, as in EC2.
        let early = h.control.detach_network_interface(&attachment, false);
        assert!(matches!(early, Err(Error::IncorrectState(_))), "{early:?}");
        h.settle().await;
        assert_eq!(
            attachment_status(&h, &eni_id),
            Some(AttachmentState::Attached)
        );
        assert_eq!(
            h.hypervisor.nic_macs(&id),
            vec![primary.mac.clone(), eni.network.mac.clone()]
        );
        let spec = h.network.applied(&primary.vpc_id).expect("applied");
        let wired = spec
            .interfaces
            .iter()
            .find(|i| i.interface_id == eni_id)
            .expect("in the spec");
        assert_eq!(wired.instance_id.as_deref(), Some(id.as_str()));
        assert_eq!(h.hypervisor.launches(), 1, "plugged, not rebooted");

        h.control
            .detach_network_interface(&attachment, false)
            .expect("detach from a running instance");
        assert_eq!(
            attachment_status(&h, &eni_id),
            Some(AttachmentState::Detaching)
        );
        let busy = h.control.delete_network_interface(&eni_id, false);
        assert!(matches!(busy, Err(Error::InterfaceInUse(_))), "{busy:?}");
        h.control
            .detach_network_interface(&attachment, false)
            .expect("asking again while detaching");
        h.settle().await;
        assert_eq!(attachment_status(&h, &eni_id), None);
        assert_eq!(interface(&h, &eni_id).expect("eni").status(), "available");
        assert_eq!(h.hypervisor.nic_macs(&id), vec![primary.mac]);
        assert_eq!(h.instance(&id).state, InstanceState::Running);
    }

    #[tokio::test]
    async fn a_stop_during_a_hot_plug_wins() {
        let h = Harness::new().await;
        let (id, primary, eni) = running_instance_and_free_interface(&h).await;
        let eni_id = eni.network.interface_id.clone();
        h.control
            .attach_network_interface(&eni_id, &id, 1, false)
            .expect("attach");
        let steps = h.control.start_instance_steps();
        // The card is being plugged (the fake yields inside) when the user stops.
        tokio::task::yield_now().await;
        h.control
            .stop_instances(std::slice::from_ref(&id), false, false)
            .expect("stop");
        for step in steps {
            step.await.expect("step");
        }
        assert_eq!(
            attachment_status(&h, &eni_id),
            Some(AttachmentState::Attaching),
            "the superseded step's outcome is dropped"
        );
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Stopped);
        assert!(!h.hypervisor.is_running(&id));
        // As in EC2 the attachment holds: the card is there at the next start.
        assert_eq!(
            attachment_status(&h, &eni_id),
            Some(AttachmentState::Attached)
        );

        // A detach cut short by a stop is done: the card goes with the VM.
        h.control
            .start_instances(std::slice::from_ref(&id), false)
            .expect("start");
        h.settle().await;
        assert_eq!(
            h.hypervisor.nic_macs(&id),
            vec![primary.mac.clone(), eni.network.mac.clone()]
        );
        let attachment = interface(&h, &eni_id).expect("eni").network.attachment_id;
        h.control
            .detach_network_interface(&attachment, false)
            .expect("detach");
        h.control
            .stop_instances(std::slice::from_ref(&id), false, false)
            .expect("stop");
        h.settle().await;
        assert_eq!(interface(&h, &eni_id).expect("eni").status(), "available");
        h.control
            .start_instances(std::slice::from_ref(&id), false)
            .expect("start");
        h.settle().await;
        assert_eq!(h.hypervisor.nic_macs(&id), vec![primary.mac]);
    }

    #[tokio::test]
    async fn termination_during_a_hot_plug_leaves_nothing_attached() {
        let h = Harness::new().await;
        let (instance, subnet) = running_instance(&h).await;
        let id = instance.instance_id.clone();
        let eni_id = create(&h, &subnet).network.interface_id;
        h.control
            .attach_network_interface(&eni_id, &id, 1, false)
            .expect("attach");
        let steps = h.control.start_instance_steps();
        tokio::task::yield_now().await;
        h.control
            .terminate_instances(std::slice::from_ref(&id), false)
            .expect("terminate");
        for step in steps {
            step.await.expect("step");
        }
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        assert!(!h.hypervisor.is_running(&id));
        assert_eq!(interface(&h, &eni_id).expect("kept").status(), "available");
    }

    #[tokio::test]
    async fn a_restart_takes_up_pending_hot_plugs_from_the_records() {
        let h = Harness::new().await;
        let (id, primary, eni) = running_instance_and_free_interface(&h).await;
        let eni_id = eni.network.interface_id.clone();
        h.control
            .attach_network_interface(&eni_id, &id, 2, false)
            .expect("attach");
        // nimbus restarts before any step ran: the adopted VM gets the card.
        let reopened = h.reopen();
        reopened.settle().await;
        assert_eq!(
            attachment_status(&reopened, &eni_id),
            Some(AttachmentState::Attached)
        );
        assert_eq!(
            h.hypervisor.nic_macs(&id),
            vec![primary.mac.clone(), eni.network.mac.clone()]
        );
        assert_eq!(h.hypervisor.launches(), 1, "adopted, not relaunched");
        let attachment = interface(&reopened, &eni_id)
            .expect("eni")
            .network
            .attachment_id;
        reopened
            .control
            .detach_network_interface(&attachment, false)
            .expect("detach");
        let again = reopened.reopen();
        again.settle().await;
        assert_eq!(attachment_status(&again, &eni_id), None);
        assert_eq!(h.hypervisor.nic_macs(&id), vec![primary.mac]);
    }
}
