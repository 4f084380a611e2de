//! Elastic IPs: AllocateAddress (from `public_ip_pool`), AssociateAddress (to an instance or
//! its primary interface, replacing its auto-assigned public IP), DisassociateAddress,
//! ReleaseAddress, DescribeAddresses. An association lasts while its instance is not
//! terminated: a terminated instance's address is free again without any background step.
//! A NAT gateway holds its elastic IP through its interface (`nat_gateways.rs`) until it is
//! deleted; the user can neither move nor release it meanwhile.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::interfaces::Allocator;
use crate::describe::{self, existing, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::{Control, Error, Result, State, Tags, Txn};
use nimbus_core::Config;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddressAssociation {
    pub association_id: String,
    /// `None` for a NAT gateway's interface.
    pub instance_id: Option<String>,
    pub interface_id: String,
    pub private_ip: Ipv4Addr,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ElasticIp {
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    pub association: Option<AddressAssociation>,
    pub tags: Tags,
}

impl ElasticIp {
    /// The association, while its instance lives (or its NAT gateway's interface exists).
    pub fn live_association<'a>(&'a self, state: &State) -> Option<&'a AddressAssociation> {
        self.association.as_ref().filter(|a| match &a.instance_id {
            Some(instance_id) => state
                .get::<Instance>(instance_id)
                .is_some_and(|i| i.state != InstanceState::Terminated),
            None => state.network_interfaces().contains_key(&a.interface_id),
        })
    }

    /// Refuses to move or release an address a NAT gateway holds.
    fn check_not_held_by_nat_gateway(&self, state: &State) -> Result<()> {
        match self.live_association(state) {
            Some(a) if a.instance_id.is_none() => Err(Error::AddressInUse(format!(
                "Address {} is in use by the NAT gateway of network interface {}.",
                self.public_ip, a.interface_id
            ))),
            _ => Ok(()),
        }
    }
}

fn association_field(e: &ElasticIp, field: fn(&AddressAssociation) -> String) -> Vec<String> {
    e.association.iter().map(field).collect()
}

impl Filterable for ElasticIp {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("allocation-id", |e, _| vec![e.allocation_id.clone()]),
        ("public-ip", |e, _| vec![e.public_ip.to_string()]),
        ("domain", |_, _| vec!["vpc".into()]),
        ("association-id", |e, _| {
            association_field(e, |a| a.association_id.clone())
        }),
        ("instance-id", |e, _| {
            e.association
                .iter()
                .filter_map(|a| a.instance_id.clone())
                .collect()
        }),
        ("network-interface-id", |e, _| {
            association_field(e, |a| a.interface_id.clone())
        }),
        ("private-ip-address", |e, _| {
            association_field(e, |a| a.private_ip.to_string())
        }),
        ("network-interface-owner-id", |e, config| {
            association_field(e, |_| String::new())
                .into_iter()
                .map(|_| config.account_id.clone())
                .collect()
        }),
    ];
}

/// Lookups of the working set that the rules of this module answer.
pub trait AddressQueries {
    /// The elastic IP associated with a live instance, if any.
    fn elastic_ip_of(&self, instance_id: &str) -> Option<&ElasticIp>;
    /// An instance's public address: its elastic IP, else its auto-assigned public IP.
    fn public_ip_of(&self, instance: &Instance) -> Option<Ipv4Addr>;
}

impl AddressQueries for State {
    fn elastic_ip_of(&self, instance_id: &str) -> Option<&ElasticIp> {
        self.elastic_ips().values().find(|e| {
            e.live_association(self)
                .is_some_and(|a| a.instance_id.as_deref() == Some(instance_id))
        })
    }

    fn public_ip_of(&self, instance: &Instance) -> Option<Ipv4Addr> {
        let network = instance.live_network()?;
        self.elastic_ip_of(&instance.instance_id)
            .map(|e| e.public_ip)
            .or(network.public_ip)
    }
}

/// How AssociateAddress names its target.
#[derive(Clone, Debug, Default)]
pub struct AssociationTarget {
    pub instance_id: Option<String>,
    pub interface_id: Option<String>,
    pub private_ip: Option<String>,
    pub allow_reassociation: bool,
}

fn association_not_found(id: &str) -> Error {
    Error::AssociationNotFound(format!("The association ID '{id}' does not exist"))
}

impl Control {
    pub fn allocate_address(&self, tags: Tags, dry_run: bool) -> Result<ElasticIp> {
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        self.mutate(|txn| {
            let used = txn.state().elastic_ips().len() as u64;
            limits::check(Limit::ElasticIps, used, 1, self.config().limits.elastic_ips)?;
            let public_ip =
                Allocator::new(txn.state(), self.config(), self.network())?.public_ip()?;
            let address = ElasticIp {
                allocation_id: nimbus_core::new_id("eipalloc"),
                public_ip,
                association: None,
                tags,
            };
            txn.put(address.clone())?;
            Ok(address)
        })
    }

    /// Addresses by allocation ID or public IP (each must exist), and the query.
    pub fn describe_addresses(
        &self,
        public_ips: &[String],
        query: &Query,
    ) -> Result<Vec<ElasticIp>> {
        let state = self.read();
        for ip in public_ips {
            if !state
                .elastic_ips()
                .values()
                .any(|e| e.public_ip.to_string() == *ip)
            {
                return Err(Error::AddressNotFound(format!("Address '{ip}' not found.")));
            }
        }
        let (mut found, _) =
            describe::describe::<ElasticIp>(&state, self.config(), query, Paging::UNPAGED, |e| {
                public_ips.is_empty() || public_ips.contains(&e.public_ip.to_string())
            })?;
        for address in &mut found {
            if address.live_association(&state).is_none() {
                address.association = None;
            }
        }
        Ok(found)
    }

    /// Associates an address with an instance's primary interface; returns the association ID.
    pub fn associate_address(
        &self,
        allocation_id: &str,
        target: &AssociationTarget,
        dry_run: bool,
    ) -> Result<String> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut address = existing::<ElasticIp>(state, allocation_id)?.clone();
            let instance = match (&target.instance_id, &target.interface_id) {
                (Some(id), _) => existing::<Instance>(state, id)?,
                // Elastic IPs follow primary interfaces only: the NAT rules of a public IP
                // are the primary interface's (`InterfaceSpec::public_ip`).
                (None, Some(eni)) if state.network_interfaces().contains_key(eni) => {
                    return Err(Error::Unsupported(format!(
                        "Elastic IPs can be associated with primary network interfaces only \
                         ({eni} is not one)."
                    )))
                }
                (None, Some(eni)) => state
                    .instances()
                    .values()
                    .find(|i| i.live_network().is_some_and(|n| n.interface_id == *eni))
                    .ok_or_else(|| {
                        Error::InterfaceNotFound(format!(
                            "The networkInterface ID '{eni}' does not exist"
                        ))
                    })?,
                (None, None) => {
                    return Err(Error::MissingParameter(
                        "InstanceId or NetworkInterfaceId".into(),
                    ))
                }
            }
            .clone();
            let Some(network) = instance.live_network().cloned() else {
                return Err(Error::IncorrectInstanceState(format!(
                    "The instance '{}' is not in a valid state for this operation.",
                    instance.instance_id
                )));
            };
            if let Some(eni) = &target.interface_id {
                if *eni != network.interface_id {
                    return Err(Error::InvalidParameterCombination(
                        "The network interface does not belong to the instance.".into(),
                    ));
                }
            }
            let private_ip = match &target.private_ip {
                Some(text) => network
                    .private_ips
                    .iter()
                    .copied()
                    .find(|ip| ip.to_string() == *text)
                    .ok_or_else(|| {
                        Error::InvalidParameterValue(format!(
                            "The private IP address {text} is not assigned to the interface."
                        ))
                    })?,
                None => network.primary_ip(),
            };
            address.check_not_held_by_nat_gateway(state)?;
            let moved_from = address
                .live_association(state)
                .and_then(|current| current.instance_id.clone())
                .filter(|id| *id != instance.instance_id);
            if let Some(current) = address.live_association(state) {
                let elsewhere = current.instance_id.as_deref() != Some(&instance.instance_id);
                if !target.allow_reassociation && elsewhere {
                    return Err(Error::AlreadyAssociated(format!(
                        "resource {allocation_id} is already associated with associate-id {}",
                        current.association_id
                    )));
                }
            }
            let previous = state
                .elastic_ip_of(&instance.instance_id)
                .filter(|e| e.allocation_id != allocation_id)
                .cloned();
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            // An instance has one public address: another elastic IP comes off it, and its
            // auto-assigned public IP is released, as in EC2.
            if let Some(mut previous) = previous {
                previous.association = None;
                txn.put(previous)?;
            }
            if network.public_ip.is_some() {
                let mut instance = instance.clone();
                if let Some(n) = instance.network.as_mut() {
                    n.public_ip = None;
                }
                txn.put(instance)?;
            }
            let association_id = nimbus_core::new_id("eipassoc");
            address.association = Some(AddressAssociation {
                association_id: association_id.clone(),
                instance_id: Some(instance.instance_id.clone()),
                interface_id: network.interface_id.clone(),
                private_ip,
            });
            txn.put(address)?;
            if let Some(old) = moved_from {
                restore_auto_public_ip(txn, &old, self.config(), self.network())?;
            }
            Ok(association_id)
        })
    }

    /// By association ID or by public IP.
    pub fn disassociate_address(
        &self,
        association_id: Option<&str>,
        public_ip: Option<&str>,
        dry_run: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let address = match (association_id, public_ip) {
                (Some(id), _) => state
                    .elastic_ips()
                    .values()
                    .find(|e| {
                        e.live_association(state)
                            .is_some_and(|a| a.association_id == id)
                    })
                    .ok_or_else(|| association_not_found(id))?,
                (None, Some(ip)) => state
                    .elastic_ips()
                    .values()
                    .find(|e| e.public_ip.to_string() == ip)
                    .ok_or_else(|| Error::AddressNotFound(format!("Address '{ip}' not found.")))?,
                (None, None) => return Err(Error::MissingParameter("AssociationId".into())),
            };
            address.check_not_held_by_nat_gateway(state)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let mut address = address.clone();
            let association = address.association.take();
            txn.put(address)?;
            match association.and_then(|old| old.instance_id) {
                Some(old) => restore_auto_public_ip(txn, &old, self.config(), self.network()),
                None => Ok(()),
            }
        })
    }

    /// By allocation ID or by public IP; an associated address → `InvalidIPAddress.InUse`.
    pub fn release_address(
        &self,
        allocation_id: Option<&str>,
        public_ip: Option<&str>,
        dry_run: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let address = match (allocation_id, public_ip) {
                (Some(id), _) => existing::<ElasticIp>(state, id)?,
                (None, Some(ip)) => state
                    .elastic_ips()
                    .values()
                    .find(|e| e.public_ip.to_string() == ip)
                    .ok_or_else(|| Error::AddressNotFound(format!("Address '{ip}' not found.")))?,
                (None, None) => return Err(Error::MissingParameter("AllocationId".into())),
            };
            address.check_not_held_by_nat_gateway(state)?;
            if let Some(association) = address.live_association(state) {
                return Err(Error::AddressInUse(format!(
                    "Address {} is in use by {}.",
                    address.public_ip,
                    association.instance_id.as_deref().unwrap_or_default()
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let id = address.allocation_id.clone();
            txn.delete::<ElasticIp>(&id);
            Ok(())
        })
    }
}

/// An instance launched with a public IP that an elastic IP displaced gets a new one when
/// the elastic IP leaves it, as in EC2.
fn restore_auto_public_ip(
    txn: &mut Txn,
    instance_id: &str,
    config: &Config,
    host: &dyn network::NetworkDriver,
) -> Result<()> {
    let Some(instance) = txn.state().instances().get(instance_id) else {
        return Ok(());
    };
    let displaced = instance.state != InstanceState::Terminated
        && instance
            .network
            .as_ref()
            .is_some_and(|n| n.auto_public_ip && n.public_ip.is_none());
    if !displaced {
        return Ok(());
    }
    let public_ip = Allocator::new(txn.state(), config, host)?.public_ip()?;
    let mut instance = instance.clone();
    if let Some(network) = instance.network.as_mut() {
        network.public_ip = Some(public_ip);
    }
    Ok(txn.put(instance)?)
}
