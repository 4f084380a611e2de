//! An instance's primary network interface: its subnet, private IP (from the subnet, never
//! one in use or reserved), MAC, public IP (from `public_ip_pool`), security groups and
//! source/destination check. It is kept inside the instance record, so it is written in the
//! same transaction as the instance it belongs to and goes away with it. Other interfaces
//! (`network_interfaces.rs`) share its address part and allocator, and the changes below
//! (groups, description, secondary addresses) apply to any interface.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::network_interfaces::{
    check_description, check_interface_id, interface_not_found, refuse_managed, NetworkInterface,
};
use super::security_groups::GroupRef;
use super::subnets::Subnet;
use crate::describe::existing;
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::vpc::security_groups::GroupQueries;
use crate::vpc::subnets::SubnetQueries;
use crate::{Error, Result, State};
use nimbus_core::{Config, Limits};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceNetwork {
    pub interface_id: String,
    pub attachment_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// `02:xx:xx:xx:xx:xx`, unique among interfaces.
    pub mac: String,
    /// The primary private IP first.
    pub private_ips: Vec<Ipv4Addr>,
    pub public_ip: Option<Ipv4Addr>,
    /// Launched with a public IP: one that an elastic IP displaced comes back (a new one)
    /// when the elastic IP is disassociated, as in EC2. Absent in older records.
    #[serde(default)]
    pub auto_public_ip: bool,
    pub security_group_ids: Vec<String>,
    pub source_dest_check: bool,
    /// Absent in records written before ModifyNetworkInterfaceAttribute existed.
    #[serde(default)]
    pub description: String,
}

/// What ModifyNetworkInterfaceAttribute changes (one attribute per call, as EC2).
#[derive(Clone, Debug)]
pub enum InterfaceChange {
    Groups(Vec<String>),
    SourceDestCheck(bool),
    Description(String),
}

/// AWS's limit of secondary private IPv4 addresses on a small instance's interface.
pub(crate) const MAX_SECONDARY_IPS: i64 = 10;

impl InstanceNetwork {
    pub fn primary_ip(&self) -> Ipv4Addr {
        self.private_ips[0]
    }
}

/// What RunInstances asks of the primary interface.
#[derive(Clone, Debug, Default)]
pub struct NetworkRequest {
    pub subnet_id: Option<String>,
    pub security_group_ids: Vec<String>,
    /// Group names, in the default VPC.
    pub security_group_names: Vec<String>,
    pub private_ip: Option<String>,
    pub associate_public_ip: Option<bool>,
}

/// `ip-a-b-c-d.ec2.internal` in us-east-1, `ip-a-b-c-d.REGION.compute.internal` elsewhere.
pub fn private_dns_name(ip: Ipv4Addr, region: &str) -> String {
    format!(
        "ip-{}.{}",
        ip.to_string().replace('.', "-"),
        dns_domain(region)
    )
}

pub fn dns_domain(region: &str) -> String {
    if region == "us-east-1" {
        "ec2.internal".to_owned()
    } else {
        format!("{region}.compute.internal")
    }
}

/// `ec2-a-b-c-d.compute-1.amazonaws.com` in us-east-1, `ec2-a-b-c-d.REGION.compute.amazonaws.com`
/// elsewhere.
pub fn public_dns_name(ip: Ipv4Addr, region: &str) -> String {
    let dashed = ip.to_string().replace('.', "-");
    if region == "us-east-1" {
        format!("ec2-{dashed}.compute-1.amazonaws.com")
    } else {
        format!("ec2-{dashed}.{region}.compute.amazonaws.com")
    }
}

/// Plans interfaces: the primary ones of `count` instances in one RunInstances call, or a
/// standalone one.
pub struct Allocator<'a> {
    state: &'a State,
    limits: &'a Limits,
    /// Interfaces in the state plus those this allocator has planned.
    interfaces: u64,
    pool: Ipv4Net,
    /// Asked which of the pool's addresses the host gives to others (once, when needed).
    host: &'a dyn network::NetworkDriver,
    held_on_host: Option<Vec<Ipv4Net>>,
    taken_ips: BTreeSet<Ipv4Addr>,
    taken_public: BTreeSet<Ipv4Addr>,
    taken_macs: BTreeSet<String>,
}

impl<'a> Allocator<'a> {
    pub fn new(
        state: &'a State,
        config: &'a Config,
        host: &'a dyn network::NetworkDriver,
    ) -> Result<Allocator<'a>> {
        let public_ip_pool = &config.public_ip_pool;
        let pool = Ipv4Net::from_str(public_ip_pool).map_err(|_| {
            Error::Internal(format!(
                "public_ip_pool '{public_ip_pool}' is not a CIDR block"
            ))
        })?;
        Ok(Allocator {
            state,
            limits: &config.limits,
            interfaces: state.interface_networks().count() as u64,
            pool,
            host,
            held_on_host: None,
            taken_ips: BTreeSet::new(),
            taken_public: state
                .interface_networks()
                .filter_map(|n| n.public_ip)
                .chain(state.elastic_ips().values().map(|e| e.public_ip))
                .collect(),
            taken_macs: state.interface_networks().map(|n| n.mac.clone()).collect(),
        })
    }

    /// The subnet and groups of a request, checked: the subnet (or the zone's default one),
    /// and groups of the subnet's VPC (its default group when none is named).
    pub fn placement(&self, request: &NetworkRequest, zone: &str) -> Result<(Subnet, Vec<String>)> {
        let subnet = match &request.subnet_id {
            Some(id) => existing::<Subnet>(self.state, id)?.clone(),
            None => self.state.default_subnet(zone).cloned().ok_or_else(|| {
                Error::MissingParameter(format!("SubnetId (there is no default subnet in {zone})"))
            })?,
        };
        let mut groups = Vec::new();
        for id in &request.security_group_ids {
            groups.push(self.state.find_group(GroupRef::Id(id), None)?.clone());
        }
        for name in &request.security_group_names {
            groups.push(
                self.state
                    .find_group(GroupRef::Name(name), Some(&subnet.vpc_id))?
                    .clone(),
            );
        }
        if let Some(other) = groups.iter().find(|g| g.vpc_id != subnet.vpc_id) {
            return Err(Error::InvalidParameterValue(format!(
                "Security group {} and subnet {} belong to different networks.",
                other.group_id, subnet.subnet_id
            )));
        }
        let mut ids: Vec<String> = groups.into_iter().map(|g| g.group_id).collect();
        ids.dedup();
        if ids.is_empty() {
            let default = self.state.default_group(&subnet.vpc_id).ok_or_else(|| {
                Error::Internal(format!(
                    "VPC {} has no default security group",
                    subnet.vpc_id
                ))
            })?;
            ids.push(default.group_id.clone());
        }
        check_groups_per_interface(&ids, self.limits)?;
        Ok((subnet, ids))
    }

    /// One instance's interface in `subnet`.
    pub fn allocate(
        &mut self,
        request: &NetworkRequest,
        subnet: &Subnet,
        groups: &[String],
    ) -> Result<InstanceNetwork> {
        limits::check(
            Limit::NetworkInterfaces,
            self.interfaces,
            1,
            self.limits.network_interfaces,
        )?;
        self.interfaces += 1;
        let ip = self.private_ip(subnet, request.private_ip.as_deref())?;
        let public_ip = if request
            .associate_public_ip
            .unwrap_or(subnet.map_public_ip_on_launch)
        {
            Some(self.public_ip()?)
        } else {
            None
        };
        let mac = self.mac();
        Ok(InstanceNetwork {
            interface_id: nimbus_core::new_id("eni"),
            attachment_id: nimbus_core::new_id("eni-attach"),
            vpc_id: subnet.vpc_id.clone(),
            subnet_id: subnet.subnet_id.clone(),
            mac,
            private_ips: vec![ip],
            auto_public_ip: public_ip.is_some(),
            public_ip,
            security_group_ids: groups.to_vec(),
            source_dest_check: true,
            description: String::new(),
        })
    }

    /// A private address of `subnet`: `requested` if it is usable and free, else the lowest
    /// free one.
    pub fn private_ip(&mut self, subnet: &Subnet, requested: Option<&str>) -> Result<Ipv4Addr> {
        let used: BTreeSet<Ipv4Addr> = self.state.used_ips(&subnet.subnet_id).into_iter().collect();
        let ip = match requested {
            Some(text) => {
                let ip = Ipv4Addr::from_str(text).map_err(|_| {
                    Error::InvalidParameterValue(format!(
                        "Value ({text}) for parameter privateIpAddress is invalid."
                    ))
                })?;
                if !subnet.is_usable(ip) {
                    return Err(Error::InvalidParameterValue(format!(
                        "Address {ip} does not fall within the subnet's address range or is reserved."
                    )));
                }
                if used.contains(&ip) || self.taken_ips.contains(&ip) {
                    return Err(Error::AddressInUse(format!("Address {ip} is in use.")));
                }
                ip
            }
            None => subnet
                .usable()
                .find(|ip| !used.contains(ip) && !self.taken_ips.contains(ip))
                .ok_or_else(|| {
                    Error::InsufficientAddresses(format!(
                        "There are not enough free addresses in subnet '{}' to satisfy the request.",
                        subnet.subnet_id
                    ))
                })?,
        };
        self.taken_ips.insert(ip);
        Ok(ip)
    }

    /// The lowest free address of the pool (its network and broadcast addresses excluded):
    /// held by none of this server's records, and by nothing else on the host (another
    /// nimbus, a leftover of a dead one), which would have the host route it elsewhere.
    pub fn public_ip(&mut self) -> Result<Ipv4Addr> {
        if self.held_on_host.is_none() {
            let held = self.host.held_public_ips().map_err(|e| {
                Error::Internal(format!("cannot read which public IPs the host holds: {e}"))
            })?;
            self.held_on_host = Some(held);
        }
        let held = self.held_on_host.as_deref().unwrap_or_default();
        let ip = self
            .pool
            .hosts()
            .find(|ip| !self.taken_public.contains(ip) && !held.iter().any(|n| n.contains(ip)))
            .ok_or_else(|| {
                Error::AddressLimitExceeded(format!(
                    "The public IP pool {} has no free address.",
                    self.pool
                ))
            })?;
        self.taken_public.insert(ip);
        Ok(ip)
    }

    /// A random locally administered MAC not used by another interface.
    fn mac(&mut self) -> String {
        loop {
            let bytes: [u8; 5] = rand::random();
            let mac = format!(
                "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]
            );
            if self.taken_macs.insert(mac.clone()) {
                return mac;
            }
        }
    }
}

/// DescribeNetworkInterfaces's MaxResults bounds.
const DESCRIBE_INTERFACES_PAGING: crate::describe::Paging =
    crate::describe::Paging::within_without_ids(5, 1000, "NetworkInterfaceId");

impl crate::Control {
    /// DescribeNetworkInterfaces: the primary interfaces of live instances and the others.
    pub fn describe_network_interfaces(
        &self,
        query: &crate::describe::Query,
    ) -> Result<crate::describe::Page<NetworkInterface>> {
        let state = self.read();
        let mut rows = state.all_interfaces();
        for id in &query.ids {
            check_interface_id(id)?;
            if !rows.iter().any(|r| r.network.interface_id == *id) {
                return Err(interface_not_found(id));
            }
        }
        rows.retain(|r| query.ids.is_empty() || query.ids.contains(&r.network.interface_id));
        Ok(crate::describe::describe_resources(
            rows,
            self.config(),
            query,
            DESCRIBE_INTERFACES_PAGING,
        )?)
    }

    /// ModifyNetworkInterfaceAttribute: groups, source/destination check or description.
    pub fn modify_interface(
        &self,
        interface_id: &str,
        change: InterfaceChange,
        dry_run: bool,
    ) -> Result<()> {
        if let InterfaceChange::Groups(groups) = &change {
            if groups.is_empty() {
                return Err(Error::MissingParameter("GroupId".into()));
            }
        }
        self.modify_interface_network(interface_id, dry_run, |state, network| match change {
            InterfaceChange::Groups(groups) => {
                set_groups(state, &self.config().limits, network, &groups)
            }
            InterfaceChange::SourceDestCheck(value) => {
                network.source_dest_check = value;
                Ok(())
            }
            InterfaceChange::Description(text) => {
                check_description(&text)?;
                network.description = text;
                Ok(())
            }
        })
    }

    /// AssignPrivateIpAddresses: the named addresses, or `count` free ones, as secondaries.
    pub fn assign_private_ips(
        &self,
        interface_id: &str,
        requested: &[String],
        count: Option<i64>,
    ) -> Result<Vec<Ipv4Addr>> {
        let mut assigned = Vec::new();
        self.modify_interface_network(interface_id, false, |state, network| {
            let subnet = existing::<Subnet>(state, &network.subnet_id)?;
            let mut allocator = Allocator::new(state, self.config(), self.network())?;
            let wanted: Vec<Option<&str>> = match count {
                Some(n) if requested.is_empty() && (1..=MAX_SECONDARY_IPS).contains(&n) => {
                    vec![None; n as usize]
                }
                None if !requested.is_empty() => requested.iter().map(|r| Some(r.as_str())).collect(),
                _ => {
                    return Err(Error::InvalidParameterCombination(format!(
                        "Give either PrivateIpAddresses or SecondaryPrivateIpAddressCount                          (1 to {MAX_SECONDARY_IPS})."
                    )))
                }
            };
            if network.private_ips.len() + wanted.len() > MAX_SECONDARY_IPS as usize + 1 {
                return Err(Error::PrivateIpLimitExceeded(format!(
                    "An interface may have at most {MAX_SECONDARY_IPS} secondary private addresses."
                )));
            }
            for ip in wanted {
                let ip = allocator.private_ip(subnet, ip)?;
                network.private_ips.push(ip);
                assigned.push(ip);
            }
            Ok(())
        })?;
        Ok(assigned)
    }

    /// UnassignPrivateIpAddresses: secondary addresses only.
    pub fn unassign_private_ips(&self, interface_id: &str, addresses: &[String]) -> Result<()> {
        self.modify_interface_network(interface_id, false, |_, network| {
            for text in addresses {
                let position = network
                    .private_ips
                    .iter()
                    .skip(1)
                    .position(|ip| ip.to_string() == *text)
                    .ok_or_else(|| {
                        Error::InvalidParameterValue(format!(
                            "Some of the specified addresses are not assigned to interface                              {interface_id} as secondary addresses: {text}"
                        ))
                    })?;
                network.private_ips.remove(position + 1);
            }
            Ok(())
        })
    }

    /// ModifyInstanceAttribute `groupSet`: the primary interface's groups, all of its VPC.
    pub fn modify_instance_groups(
        &self,
        instance_id: &str,
        group_ids: &[String],
        dry_run: bool,
    ) -> Result<()> {
        if group_ids.is_empty() {
            return Err(Error::MissingParameter("GroupId".into()));
        }
        self.modify_instance_network(instance_id, dry_run, |state, network| {
            set_groups(state, &self.config().limits, network, group_ids)
        })
    }

    /// ModifyInstanceAttribute `sourceDestCheck`.
    pub fn modify_source_dest_check(
        &self,
        instance_id: &str,
        value: bool,
        dry_run: bool,
    ) -> Result<()> {
        self.modify_instance_network(instance_id, dry_run, |_, network| {
            network.source_dest_check = value;
            Ok(())
        })
    }

    /// Changes an interface, primary (in its instance's record) or not.
    fn modify_interface_network(
        &self,
        interface_id: &str,
        dry_run: bool,
        change: impl FnOnce(&State, &mut InstanceNetwork) -> Result<()>,
    ) -> Result<()> {
        check_interface_id(interface_id)?;
        let standalone = self.read().network_interfaces().contains_key(interface_id);
        if !standalone {
            let instance_id = self
                .read()
                .instances()
                .values()
                .find(|i| {
                    i.live_network()
                        .is_some_and(|n| n.interface_id == interface_id)
                })
                .map(|i| i.instance_id.clone())
                .ok_or_else(|| interface_not_found(interface_id))?;
            return self.modify_instance_network(&instance_id, dry_run, change);
        }
        self.mutate(|txn| {
            let mut interface = existing::<NetworkInterface>(txn.state(), interface_id)?.clone();
            refuse_managed(&interface)?;
            change(txn.state(), &mut interface.network)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            Ok(txn.put(interface)?)
        })
    }

    fn modify_instance_network(
        &self,
        instance_id: &str,
        dry_run: bool,
        change: impl FnOnce(&State, &mut InstanceNetwork) -> Result<()>,
    ) -> Result<()> {
        self.mutate(|txn| {
            let mut instance =
                existing::<crate::instances::Instance>(txn.state(), instance_id)?.clone();
            let Some(network) = instance.live_network().cloned() else {
                return Err(Error::IncorrectInstanceState(format!(
                    "The instance '{instance_id}' has no network interface."
                )));
            };
            let mut network = network;
            change(txn.state(), &mut network)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            instance.network = Some(network);
            Ok(txn.put(instance)?)
        })
    }
}

fn check_groups_per_interface(group_ids: &[String], limits: &Limits) -> Result<()> {
    let groups = group_ids.len() as u64;
    limits::check(
        Limit::GroupsPerInterface,
        0,
        groups,
        limits.groups_per_interface,
    )
}

/// Sets an interface's groups, all of its VPC.
fn set_groups(
    state: &State,
    limits: &Limits,
    network: &mut InstanceNetwork,
    group_ids: &[String],
) -> Result<()> {
    for id in group_ids {
        let group = state.find_group(GroupRef::Id(id), None)?;
        if group.vpc_id != network.vpc_id {
            return Err(Error::InvalidParameterValue(format!(
                "Security group {id} and interface {} belong to different networks.",
                network.interface_id
            )));
        }
    }
    let mut ids = group_ids.to_vec();
    ids.dedup();
    check_groups_per_interface(&ids, limits)?;
    network.security_group_ids = ids;
    Ok(())
}
