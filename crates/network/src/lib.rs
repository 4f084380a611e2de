//! The network driver: what control wants of a VPC on this host, as plain data
//! ([`VpcSpec`]), and the [`NetworkDriver`] trait that makes the host match it.
//!
//! Control computes a whole [`VpcSpec`] from its records and hands it over on every change;
//! a driver converges to it idempotently, so a restart or a missed step is healed by the
//! next apply. The spec says nothing about how the host wires it (namespaces, taps,
//! bridges, nftables, or one day VXLAN across hosts): that is each driver's business.

mod fake;
mod linux;
mod spec;

use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;

use async_trait::async_trait;

pub use fake::FakeNetwork;
pub use linux::{interface_device, node_namespace, LinuxNetwork};
pub use spec::*;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{command} failed: {stderr}")]
    Command { command: String, stderr: String },
    #[error("{0}")]
    Invalid(String),
    #[error("interface {0} is not in any applied VPC")]
    UnknownInterface(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Byte and packet counts of an interface, from the guest's point of view: `in` is what
/// the guest received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
}

#[async_trait]
pub trait NetworkDriver: Send + Sync {
    /// Makes this host's wiring of `vpc` match the spec: addresses, DHCP and DNS, security
    /// groups, network ACLs, public IPs. Idempotent; a rule change never drops an
    /// established flow that the new rules still allow.
    async fn apply_vpc(&self, vpc: &VpcSpec) -> Result<()>;

    /// Removes everything this host has for the VPC. Removing an absent VPC succeeds.
    async fn remove_vpc(&self, vpc_id: &str) -> Result<()>;

    /// The VPCs wired on this host, so that a restart can remove those no longer wanted.
    async fn wired_vpcs(&self) -> Result<Vec<String>>;

    /// Removes the VPCs wired by a nimbus whose data dir no longer exists (a deleted test
    /// server, say): nobody else would ever clean them up. Returns the VPCs removed.
    async fn remove_orphans(&self) -> Result<Vec<String>>;

    /// The tap of an interface of an applied VPC, opened for its VM: the descriptor is
    /// handed to QEMU, which runs unprivileged. The tap goes away when the last descriptor
    /// closes, so a dead VM leaves nothing behind.
    async fn open_tap(&self, vpc_id: &str, interface_id: &str) -> Result<OwnedFd>;

    /// The counters of an interface's tap, if it is up.
    fn counters(&self, vpc_id: &str, interface_id: &str) -> Option<InterfaceCounters>;

    /// A socket listening on 169.254.169.254:80 inside the VPC, for the metadata service;
    /// a connection's peer address is the private IP of the asking interface.
    async fn metadata_listener(&self, vpc_id: &str) -> Result<std::net::TcpListener>;

    /// The parts of the public IP pool that something else on the host holds (another
    /// nimbus's VPCs, a leftover of a dead one, a network or address of the host): an
    /// address there must not be handed out, or the host would route it away from the guest
    /// it is given to.
    fn held_public_ips(&self) -> Result<Vec<ipnet::Ipv4Net>>;

    /// The instance whose interface holds `ip` in the VPC as last applied: the metadata
    /// service answers a connection for the instance its source address belongs to
    /// (anti-spoofing makes that address trustworthy).
    fn instance_at(&self, vpc_id: &str, ip: Ipv4Addr) -> Option<String>;
}

/// The instance of the interface holding `ip` in `vpc`.
fn instance_at(vpc: &VpcSpec, ip: Ipv4Addr) -> Option<String> {
    vpc.interfaces
        .iter()
        .find(|i| i.private_ips.contains(&ip))
        .and_then(|i| i.instance_id.clone())
}
