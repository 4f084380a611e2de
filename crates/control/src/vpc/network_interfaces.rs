//! Network interfaces other than an instance's primary one (elastic network interfaces):
//! made by CreateNetworkInterface, deleted by DeleteNetworkInterface, attached to an instance
//! at device index 1 and up and detached again. Each is a record of its own, so it outlives
//! its attachments; the primary interface stays in its instance record (`interfaces.rs`) and
//! is shown among these as the attachment at device index 0.
//!
//! Attach and detach act on stopped instances only: the interfaces of a VM are its taps
//! plugged in at launch (`network_reconciler::open_nics`), and hot-plugging is not done.
//! Because a launch reads the attachments when the instance leaves `stopped`, and attach and
//! detach refuse every other state inside the same transaction that checks it, no step of
//! the instance reconciler can see half of an attach; termination settles the attachments
//! in `finish_termination`, under the instance's generation fencing.

use serde::{Deserialize, Serialize};

use super::interfaces::{Allocator, InstanceNetwork, NetworkRequest, MAX_SECONDARY_IPS};
use crate::describe::existing;
use crate::filter::{FilterField, Filterable};
use crate::instances::{Instance, InstanceState};
use crate::{Error, Result, State, Tags, Txn};

/// The network cards a VM has room for (compute's hot-plug ports for NICs): device indexes
/// 0 to `MAX_INTERFACES - 1`.
pub const MAX_INTERFACES: u32 = compute::NIC_PORTS as u32;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// Its addresses, MAC and groups; `attachment_id` is that of its current attachment (a
    /// new one per attach). Such interfaces never get a public IP of their own.
    pub network: InstanceNetwork,
    pub availability_zone: String,
    pub attachment: Option<InterfaceAttachment>,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InterfaceAttachment {
    pub instance_id: String,
    pub device_index: u32,
    pub delete_on_termination: bool,
    pub attach_time: i64,
}

impl NetworkInterface {
    pub fn status(&self) -> &'static str {
        if self.attachment.is_some() {
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
            }),
            tags: Tags::new(),
        })
    }
}

impl State {
    /// The address part of every interface: live instances' primary ones and the others.
    pub fn interface_networks(&self) -> impl Iterator<Item = &InstanceNetwork> {
        self.instances
            .values()
            .filter_map(|i| i.live_network())
            .chain(self.network_interfaces.values().map(|e| &e.network))
    }

    /// Every interface, primary ones included, by ID.
    pub fn all_interfaces(&self) -> Vec<NetworkInterface> {
        let mut all: Vec<NetworkInterface> = self
            .instances
            .values()
            .filter_map(|i| NetworkInterface::primary_of(self, i))
            .chain(self.network_interfaces.values().cloned())
            .collect();
        all.sort_by(|a, b| a.network.interface_id.cmp(&b.network.interface_id));
        all
    }

    /// The interfaces of an instance, by device index (the primary one first).
    pub fn interfaces_of(&self, instance: &Instance) -> Vec<NetworkInterface> {
        let mut interfaces: Vec<NetworkInterface> = NetworkInterface::primary_of(self, instance)
            .into_iter()
            .chain(
                self.network_interfaces
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

fn of_attachment(e: &NetworkInterface, field: impl Fn(&InterfaceAttachment) -> String) -> Vec<String> {
    e.attachment.iter().map(field).collect()
}

impl Filterable for NetworkInterface {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("network-interface-id", |e, _| {
            vec![e.network.interface_id.clone()]
        }),
        ("subnet-id", |e, _| vec![e.network.subnet_id.clone()]),
        ("vpc-id", |e, _| vec![e.network.vpc_id.clone()]),
        ("availability-zone", |e, _| vec![e.availability_zone.clone()]),
        ("description", |e, _| vec![e.network.description.clone()]),
        ("attachment.instance-id", |e, _| {
            of_attachment(e, |a| a.instance_id.clone())
        }),
        ("attachment.attachment-id", |e, _| {
            of_attachment(e, |_| e.network.attachment_id.clone())
        }),
        ("attachment.device-index", |e, _| {
            of_attachment(e, |a| a.device_index.to_string())
        }),
        ("attachment.status", |e, _| {
            of_attachment(e, |_| "attached".into())
        }),
        ("attachment.delete-on-termination", |e, _| {
            of_attachment(e, |a| a.delete_on_termination.to_string())
        }),
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
pub(crate) fn new_interface(txn: &Txn, pool: &str, request: &CreateInterfaceRequest) -> Result<NetworkInterface> {
    check_description(&request.description)?;
    let state = txn.state();
    let mut allocator = Allocator::new(state, pool)?;
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
    })
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
    if state
        .interfaces_of(instance)
        .iter()
        .any(|e| e.attachment.as_ref().is_some_and(|a| a.device_index == device_index))
    {
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
    });
    Ok(attachment_id)
}

/// Attach and detach take effect at the next start: a VM's network cards are fixed.
fn require_stopped(instance: &Instance) -> Result<()> {
    if instance.state == InstanceState::Stopped {
        return Ok(());
    }
    Err(Error::IncorrectInstanceState(format!(
        "The instance '{}' is in the '{}' state; network interfaces are attached to and \
         detached from stopped instances only (no hot-plug).",
        instance.instance_id,
        instance.state.as_str()
    )))
}

/// The terminated instance's interfaces: DeleteOnTermination ones are deleted, the others
/// detached (`available`).
pub(crate) fn release_on_termination(txn: &mut Txn, instance_id: &str) -> Result<()> {
    let attached: Vec<NetworkInterface> = txn
        .state()
        .network_interfaces
        .values()
        .filter(|e| e.attachment.as_ref().is_some_and(|a| a.instance_id == instance_id))
        .cloned()
        .collect();
    for mut interface in attached {
        if interface.attachment.take().is_some_and(|a| a.delete_on_termination) {
            txn.delete::<NetworkInterface>(&interface.network.interface_id);
        } else {
            txn.put(interface)?;
        }
    }
    Ok(())
}

impl crate::Control {
    /// CreateNetworkInterface.
    pub fn create_network_interface(&self, request: &CreateInterfaceRequest) -> Result<NetworkInterface> {
        let pool = self.config().public_ip_pool.clone();
        self.mutate(|txn| {
            let interface = new_interface(txn, &pool, request)?;
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.put(interface.clone())?;
            Ok(interface)
        })
    }

    /// DeleteNetworkInterface: available interfaces only.
    pub fn delete_network_interface(&self, interface_id: &str, dry_run: bool) -> Result<()> {
        check_interface_id(interface_id)?;
        self.mutate(|txn| {
            let state = txn.state();
            let in_use = match state.network_interfaces.get(interface_id) {
                Some(interface) => interface.attachment.is_some(),
                None => {
                    // A primary interface goes with its instance.
                    if !state.interface_networks().any(|n| n.interface_id == interface_id) {
                        return Err(Error::InterfaceNotFound(format!(
                            "The networkInterface ID '{interface_id}' does not exist"
                        )));
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
                    if state.interface_networks().any(|n| n.interface_id == interface_id) {
                        Error::InterfaceInUse(format!("Interface: [{interface_id}] in use."))
                    } else {
                        Error::InterfaceNotFound(format!(
                            "The networkInterface ID '{interface_id}' does not exist"
                        ))
                    }
                })?
                .clone();
            let instance = existing::<Instance>(state, instance_id)?;
            let attachment_id = attach(state, &mut interface, instance, device_index, false)?;
            require_stopped(instance)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.put(interface)?;
            Ok(attachment_id)
        })
    }

    /// DetachNetworkInterface. `force` changes nothing: the instance is stopped.
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
                .network_interfaces
                .values()
                .find(|e| e.attachment.is_some() && e.network.attachment_id == attachment_id)
                .cloned()
            else {
                if state.interface_networks().any(|n| n.attachment_id == attachment_id) {
                    return Err(Error::OperationNotPermitted(format!(
                        "The network interface at device index 0 cannot be detached \
                         ({attachment_id})."
                    )));
                }
                return Err(not_found());
            };
            let instance_id = interface
                .attachment
                .as_ref()
                .map(|a| a.instance_id.clone())
                .unwrap_or_default();
            require_stopped(existing::<Instance>(state, &instance_id)?)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            interface.attachment = None;
            txn.put(interface)
        })
    }
}
