//! The Linux driver: one network namespace per VPC, routed taps, nftables, dnsmasq, and a
//! veth pair to the host for public IPs. See `docs/network.md` for the design.
//!
//! Inside a VPC's namespace:
//! - each interface is a device named after it (a tap for a VM) with the subnet's router
//!   (base+1) as a no-prefix-route address, proxy ARP on, and a /32 route per private IP:
//!   every guest packet, even within a subnet, is routed through the namespace and so seen
//!   by one nft table (`rules.rs`);
//! - the loopback holds the resolver (VPC base+2) and the metadata address;
//! - `uplink` is the VPC end of the veth pair; it holds the VPC's public IPs, which the
//!   host routes to it, and is the default route.
//!
//! Everything is converged idempotently from the spec, and what survives a crash of nimbus
//! (namespaces, taps held by QEMU, the veth, dnsmasq) is adopted by the next apply.

mod dnsmasq;
mod host;
mod host_guard;
mod names;
mod owners;
mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use ipnet::Ipv4Net;

pub use names::{interface_device, node_namespace};

use crate::{Error, Holder, InterfaceCounters, NetworkDriver, Result, VpcSpec};
use host::{host_routes, in_namespace, ip_batch, ip_json, run};
use host_guard::{HostTable, TABLE_PREFIX};
use names::{host_veth, namespace, NODE_DEVICE, UPLINK};
use rules::{router_ip, METADATA_IP};

/// The one host table all servers shared before each had its own; removed at start.
const LEGACY_HOST_TABLE: &str = "nimbus_host";

/// The nft table of a VPC's namespace (`rules.rs`).
const VPC_TABLE: &str = "nimbus";

pub struct LinuxNetwork {
    state_dir: PathBuf,
    public_ip_pool: Ipv4Net,
    /// Networks beyond the host that route the pool back to it: traffic to them keeps its
    /// public source; elsewhere it is masqueraded behind the host's address.
    routed_back: Vec<Ipv4Net>,
    /// What guests may reach of the host and its attached networks, by the operator's word.
    reachable_from_guests: Vec<Ipv4Net>,
    /// The spec last applied to each VPC by this process.
    applied: Mutex<BTreeMap<String, VpcSpec>>,
    /// The host table this process last loaded (`host_guard.rs`).
    host_script: Mutex<Option<String>>,
    /// One change at a time: applies, removals and taps of a VPC touch the same devices.
    changing: tokio::sync::Mutex<()>,
}

fn ns_path(namespace: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(namespace)
}

/// Stops what runs in the namespace (its dnsmasq), then deletes the host's veth (its peer
/// and the host routes through it go with it) and the namespace (its taps go with it; QEMU's
/// descriptors then carry nothing).
async fn tear_down(ns: &str, veth: Option<&str>) -> Result<()> {
    if ns_path(ns).exists() {
        let pids = run("ip", &["netns", "pids", ns], None).await?;
        for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                stop(pid).await;
            }
        }
    }
    if let Some(veth) = veth {
        if ip_json(None, &["link", "show", "dev", veth]).await.is_ok() {
            ip_batch(None, &[format!("link del {veth}")]).await?;
        }
    }
    if ns_path(ns).exists() {
        run("ip", &["netns", "del", ns], None).await?;
    }
    owners::forget(ns)
}

fn remove_if_present(path: &std::path::Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The namespaces this driver made on the host, by any nimbus, with their VPCs.
fn vpc_namespaces() -> Result<Vec<(String, String)>> {
    let entries = match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let vpc_id = names::vpc_of_namespace(&name)?.to_owned();
            Some((name, vpc_id))
        })
        .collect())
}

/// The load balancer nodes' namespaces on the host, by any nimbus, with the directory of
/// the VPC each belongs to (from its owner marker; none when the marker is missing).
fn node_namespaces() -> Result<Vec<(String, Option<PathBuf>)>> {
    let entries = match std::fs::read_dir("/run/netns") {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| names::is_node_namespace(name))
        .map(|name| {
            let owner = owners::read(&name).map(|owner| owner.dir);
            (name, owner)
        })
        .collect())
}

/// Removes the node namespaces whose VPC directory is `vpc_dir` (all of a removed VPC's)
/// or, with none, those whose VPC directory is gone (a deleted server's), except `keep`.
async fn remove_nodes(vpc_dir: Option<&std::path::Path>, keep: &BTreeSet<String>) -> Result<()> {
    for (node, owner) in node_namespaces()? {
        let Some(owner) = owner else { continue };
        let gone = match vpc_dir {
            Some(dir) => owner == dir,
            None => !owner.exists(),
        };
        if gone && !keep.contains(&node) {
            tear_down(&node, None).await?;
        }
    }
    Ok(())
}

/// Deletes, in the VPC namespace `ns`, the veth ends of node namespaces about to go: the
/// kernel destroys a deleted namespace's devices later, while the VPC's next steps run.
async fn unplug_nodes(ns: &str, vpc_dir: &std::path::Path, keep: &BTreeSet<String>) -> Result<()> {
    for (node, owner) in node_namespaces()? {
        if owner.as_deref() != Some(vpc_dir) || keep.contains(&node) {
            continue;
        }
        let Some(hex) = node.rsplit('-').next() else {
            continue;
        };
        let device = interface_device(&format!("eni-{hex}"))?;
        if ip_json(Some(ns), &["link", "show", "dev", &device])
            .await
            .is_ok()
        {
            ip_batch(Some(ns), &[format!("link del {device}")]).await?;
        }
    }
    Ok(())
}

/// Whether the VPC's veth pair is there (its host end is in the host's `/sys`; removing
/// either end removes both).
fn uplink_exists(vpc_id: &str) -> bool {
    host_veth(vpc_id).is_ok_and(|veth| std::path::Path::new("/sys/class/net").join(veth).exists())
}

/// `ip -j` fields as strings.
fn field<'a>(value: &'a serde_json::Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or_default()
}

/// The nft tables of the `inet` family, in a namespace or on the host.
async fn inet_tables(namespace: Option<&str>) -> Result<Vec<String>> {
    let listed = match namespace {
        Some(ns) => {
            run(
                "ip",
                &["netns", "exec", ns, "nft", "-j", "list", "tables", "inet"],
                None,
            )
            .await?
        }
        None => run("nft", &["-j", "list", "tables", "inet"], None).await?,
    };
    let listed: serde_json::Value = serde_json::from_str(&listed)
        .map_err(|e| Error::Invalid(format!("nft printed odd JSON: {e}")))?;
    Ok(listed["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["table"]["name"].as_str().map(str::to_owned))
        .collect())
}

/// Whether a guest's device (a tap: it lives only while its VM holds it) is in the namespace.
async fn serves_guests(ns: &str) -> Result<bool> {
    let links = ip_json(Some(ns), &["link", "show"]).await?;
    Ok(links.iter().any(|l| field(l, "ifname").starts_with('t')))
}

/// Removes what servers that are gone left on the host: the VPC namespaces whose owner's
/// directory is gone, or whose owner's process ended and no guest device is in them (their
/// owner makes them again when it starts); then the host tables whose owner's directory is
/// gone, or whose owner ended and has no VPC left (a table guards its owner's uplinks), and
/// the legacy shared table. What `keep` (a server's state dir) owns is left alone, as is
/// anything without an owner marker (nobody is known to own it). Returns the VPCs removed.
async fn sweep_leftovers(keep: Option<&std::path::Path>) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (ns, vpc_id) in vpc_namespaces()? {
        let Some(owner) = owners::read(&ns) else {
            continue;
        };
        if keep.is_some() && owner.dir.parent() == keep {
            continue;
        }
        if owner.dir_gone() || (owner.process_ended() && !serves_guests(&ns).await?) {
            tear_down(&ns, Some(&host_veth(&vpc_id)?)).await?;
            removed.push(vpc_id);
        }
    }
    remove_nodes(None, &BTreeSet::new()).await?;
    let vpc_owners: Vec<owners::Owner> = vpc_namespaces()?
        .iter()
        .filter_map(|(ns, _)| owners::read(ns))
        .collect();
    for name in inet_tables(None).await? {
        let owner = owners::read(&name).filter(|_| name.starts_with(TABLE_PREFIX));
        let abandoned = owner.is_some_and(|owner| {
            let has_vpcs = vpc_owners
                .iter()
                .any(|m| m.dir.parent() == Some(&owner.dir));
            Some(owner.dir.as_path()) != keep
                && (owner.dir_gone() || (owner.process_ended() && !has_vpcs))
        });
        if name == LEGACY_HOST_TABLE || abandoned {
            delete_host_table(&name).await?;
        }
    }
    owners::forget_strays()?;
    Ok(removed)
}

async fn delete_host_table(name: &str) -> Result<()> {
    run("nft", &["delete", "table", "inet", name], None).await?;
    owners::forget(name)
}

impl LinuxNetwork {
    /// A driver keeping its per-VPC files (dnsmasq's) under `state_dir`, routing public IPs
    /// from `public_ip_pool`. Guests reach nothing of the host and its attached networks
    /// until [`LinuxNetwork::reachable_from_guests`] says otherwise.
    pub fn new(state_dir: PathBuf, public_ip_pool: Ipv4Net) -> LinuxNetwork {
        LinuxNetwork {
            state_dir,
            public_ip_pool,
            routed_back: Vec::new(),
            reachable_from_guests: Vec::new(),
            applied: Mutex::new(BTreeMap::new()),
            host_script: Mutex::new(None),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// Networks beyond the host that route `public_ip_pool` back to it (a lab router, a
    /// test's namespace): what public and elastic IPs send there keeps its source address,
    /// as the internet sees an EC2 public IP, instead of being masqueraded.
    pub fn with_routed_back(mut self, networks: Vec<Ipv4Net>) -> LinuxNetwork {
        self.routed_back = networks.iter().map(Ipv4Net::trunc).collect();
        self
    }

    /// Removes what nimbus servers that are gone left on the host (`nimbus sweep`, the test
    /// suite's end): as [`NetworkDriver::remove_orphans`] does at a server's start.
    pub async fn sweep_leftovers() -> Result<Vec<String>> {
        sweep_leftovers(None).await
    }

    /// The operator's exceptions to the host guard: networks of the host (or attached to
    /// it) that guests with a way out may reach (`host_guard.rs`).
    pub fn reachable_from_guests(mut self, networks: Vec<Ipv4Net>) -> LinuxNetwork {
        self.reachable_from_guests = networks;
        self
    }

    /// Brings the VPC's namespace, uplink, devices, rules and dnsmasq to `vpc`.
    async fn converge(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        // The namespace's own settings and the uplink are made once by this process (a
        // restart adopts them here); later applies, one per launch or rule change, converge
        // only what specs change. Every process spawned is on the way to a VM's first boot.
        let settled = self
            .applied()
            .get(&vpc.vpc_id)
            .is_some_and(|known| known.cidrs == vpc.cidrs)
            && ns_path(ns).exists()
            && uplink_exists(&vpc.vpc_id);
        if !settled {
            self.ensure_namespace(vpc, ns).await?;
            self.ensure_uplink(vpc, ns).await?;
        }
        self.guard_host().await?;
        self.sync_public_ips(vpc, ns).await?;
        self.wire_nodes(vpc, ns).await?;
        self.wire_devices(vpc, ns).await?;
        self.apply_rules(vpc, ns).await?;
        self.apply_dnsmasq(vpc, ns).await?;
        self.applied().insert(vpc.vpc_id.clone(), vpc.clone());
        Ok(())
    }

    /// Whether everything of an applied VPC is still there: something removed from outside
    /// (the namespace's name, the uplink, dnsmasq, the namespace's table) is made again.
    async fn intact(&self, vpc_id: &str, ns: &str) -> bool {
        ns_path(ns).exists()
            && uplink_exists(vpc_id)
            && running_dnsmasq(&self.dnsmasq_files(vpc_id)).is_some()
            && inet_tables(Some(ns))
                .await
                .is_ok_and(|tables| tables.iter().any(|t| t == VPC_TABLE))
    }

    /// This server's table on the host, named by its state dir.
    fn host_table(&self) -> String {
        let digest = blake3::hash(self.state_dir.as_os_str().as_encoded_bytes());
        format!("{TABLE_PREFIX}{}", &digest.to_hex()[..12])
    }

    /// The VPCs whose namespaces this server owns (by their owner markers), with them.
    fn own_namespaces(&self) -> Result<Vec<(String, String)>> {
        Ok(vpc_namespaces()?
            .into_iter()
            .filter(|(ns, vpc_id)| {
                owners::read(ns).is_some_and(|owner| owner.dir == self.state_dir.join(vpc_id))
            })
            .collect())
    }

    /// Loads this server's host table (`host_guard.rs`) for its uplinks and the host's
    /// routes as they are now, unless it is loaded already.
    async fn guard_host(&self) -> Result<()> {
        let table = self.host_table();
        let uplinks: BTreeSet<String> = self
            .own_namespaces()?
            .iter()
            .filter_map(|(_, vpc_id)| host_veth(vpc_id).ok())
            .collect();
        let denied = host_guard::denied_networks(&host_routes()?);
        let script = host_guard::render(&HostTable {
            name: &table,
            pool: self.public_ip_pool,
            uplinks: &uplinks,
            denied: &denied,
            allowed: &self.reachable_from_guests,
            routed_back: &self.routed_back,
        });
        let loaded = self.host_script().as_deref() == Some(script.as_str())
            && inet_tables(None).await?.contains(&table);
        if !loaded {
            owners::mark(&table, &self.state_dir)?;
            run("nft", &["-f", "-"], Some(&script)).await?;
            *self.host_script() = Some(script);
        }
        Ok(())
    }

    fn host_script(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.host_script.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, VpcSpec>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dnsmasq_files(&self, vpc_id: &str) -> dnsmasq::Files {
        dnsmasq::Files {
            dir: self.state_dir.join(vpc_id),
        }
    }

    async fn ensure_namespace(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let files = self.dnsmasq_files(&vpc.vpc_id);
        std::fs::create_dir_all(&files.dir)?;
        let held_by_another =
            owners::read(ns).filter(|owner| owner.dir != files.dir && ns_path(ns).exists());
        if let Some(owner) = held_by_another {
            if !owner.dir_gone() {
                // The same VPC ID in another server's data dir (a copy of this one, say):
                // its namespace is not this server's to take over.
                return Err(Error::Invalid(format!(
                    "{ns} belongs to the nimbus of {}",
                    owner.dir.display()
                )));
            }
            tear_down(ns, Some(&host_veth(&vpc.vpc_id)?)).await?;
        }
        owners::mark(ns, &files.dir)?;
        if !ns_path(ns).exists() {
            match running_dnsmasq(&files) {
                // Its name was removed from outside, but the namespace lives on while its
                // dnsmasq (and the guests' taps, the metadata listener) are in it: named
                // again, everything in it keeps working.
                Some(dnsmasq) => {
                    let pid = dnsmasq.as_raw_nonzero().to_string();
                    run("ip", &["netns", "attach", ns, &pid], None).await?;
                }
                None => {
                    run("ip", &["netns", "add", ns], None).await?;
                }
            }
        }
        run(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.disable_ipv6=1",
            ],
            None,
        )
        .await?;
        let mut commands = vec![
            "link set lo up".to_string(),
            format!("address replace {METADATA_IP}/32 dev lo"),
        ];
        if let Some(resolver) = rules::resolver_ip(vpc) {
            commands.push(format!("address replace {resolver}/32 dev lo"));
        }
        // Addresses of the VPC with no interface are unreachable, never sent to the host.
        for cidr in &vpc.cidrs {
            commands.push(format!("route replace unreachable {}", cidr.trunc()));
        }
        ip_batch(Some(ns), &commands).await
    }

    /// The veth pair to the host, and the host's forwarding and proxy ARP on it.
    async fn ensure_uplink(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let veth = host_veth(&vpc.vpc_id)?;
        if ip_json(None, &["link", "show", "dev", &veth])
            .await
            .is_err()
        {
            ip_batch(
                None,
                &[format!(
                    "link add {veth} type veth peer name {UPLINK} netns {ns}"
                )],
            )
            .await?;
        }
        run(
            "sysctl",
            &[
                "-qw",
                "net.ipv4.ip_forward=1",
                &format!("net.ipv4.conf.{veth}.proxy_arp=1"),
            ],
            None,
        )
        .await
        .map(|_| ())
    }

    /// The VPC's public IPs on its uplink, and the host's routes to them.
    async fn sync_public_ips(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let veth = host_veth(&vpc.vpc_id)?;
        let public = rules::public_addresses(vpc);
        for ip in &public {
            if !self.public_ip_pool.contains(ip) {
                return Err(Error::Invalid(format!(
                    "public IP {ip} is outside the pool {}",
                    self.public_ip_pool
                )));
            }
        }
        let mut ns_commands = vec![format!("link set {UPLINK} up")];
        let mut host_commands = vec![format!("link set {veth} up")];
        let held = ip_json(Some(ns), &["address", "show", "dev", UPLINK]).await?;
        let held: BTreeSet<Ipv4Addr> = held
            .iter()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| field(&a, "local").parse().ok())
            .collect();
        let routed = ip_json(None, &["route", "show", "dev", &veth]).await?;
        for route in &routed {
            let dst = field(route, "dst");
            if dst
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| !public.contains(&ip))
            {
                host_commands.push(format!("route del {dst}/32 dev {veth}"));
            }
        }
        // New addresses go on before old ones come off, and the default route is (re)made
        // last: Linux drops a device's routes with its last address, so replacing a VPC's
        // only public IP would otherwise cut the whole namespace off.
        for ip in &public {
            ns_commands.push(format!("address replace {ip}/32 dev {UPLINK}"));
            host_commands.push(format!("route replace {ip}/32 dev {veth}"));
        }
        for gone in held.difference(&public) {
            ns_commands.push(format!("address del {gone}/32 dev {UPLINK}"));
        }
        ns_commands.push(format!("route replace default dev {UPLINK}"));
        ip_batch(Some(ns), &ns_commands).await?;
        ip_batch(None, &host_commands).await
    }

    /// The namespace of each node interface (`Holder::Node`) with its end of a veth pair
    /// (`eth0`: the interface's MAC and addresses, the subnet's router as default route);
    /// the VPC's end is named as a VM's tap would be, so `wire_devices` and the rules treat
    /// both alike. Node namespaces of the VPC that no interface wants any more are removed.
    async fn wire_nodes(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let vpc_dir = self.dnsmasq_files(&vpc.vpc_id).dir;
        let mut wanted = BTreeSet::new();
        for interface in vpc.interfaces.iter().filter(|i| i.holder == Holder::Node) {
            let Some(subnet) = vpc
                .subnets
                .iter()
                .find(|s| s.subnet_id == interface.subnet_id)
            else {
                continue;
            };
            let node = node_namespace(&interface.interface_id)?;
            owners::mark(&node, &vpc_dir)?;
            if !ns_path(&node).exists() {
                run("ip", &["netns", "add", &node], None).await?;
            }
            let device = interface_device(&interface.interface_id)?;
            if ip_json(Some(ns), &["link", "show", "dev", &device])
                .await
                .is_err()
            {
                // A half-made pair (its VPC end removed from outside) is made again whole.
                let _ = ip_batch(Some(&node), &[format!("link del {NODE_DEVICE}")]).await;
                ip_batch(
                    None,
                    &[format!(
                        "link add {device} netns {ns} type veth peer name {NODE_DEVICE} netns {node}"
                    )],
                )
                .await?;
            }
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &node,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                ],
                None,
            )
            .await?;
            let cidr = subnet.cidr.trunc();
            let mut commands = vec![
                "link set lo up".to_string(),
                format!("link set {NODE_DEVICE} address {}", interface.mac),
            ];
            commands.extend(interface.private_ips.iter().map(|ip| {
                format!(
                    "address replace {ip}/{} dev {NODE_DEVICE}",
                    cidr.prefix_len()
                )
            }));
            commands.push(format!("link set {NODE_DEVICE} up"));
            commands.push(format!("route replace default via {}", router_ip(cidr)));
            ip_batch(Some(&node), &commands).await?;
            wanted.insert(node);
        }
        unplug_nodes(ns, &vpc_dir, &wanted).await?;
        remove_nodes(Some(&vpc_dir), &wanted).await
    }

    /// Routes, router address and proxy ARP of every interface device present in the
    /// namespace; devices of interfaces no longer in the spec are set down, and routes to
    /// addresses no interface holds any more are removed.
    async fn wire_devices(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let links = ip_json(Some(ns), &["link", "show"]).await?;
        let present: BTreeSet<String> = links
            .iter()
            .map(|l| field(l, "ifname").to_owned())
            .collect();
        let mut wanted_routes = BTreeSet::new();
        let mut commands = Vec::new();
        let mut wired = BTreeSet::new();
        for interface in &vpc.interfaces {
            let device = interface_device(&interface.interface_id)?;
            if !present.contains(&device) {
                continue;
            }
            let Some(subnet) = vpc
                .subnets
                .iter()
                .find(|s| s.subnet_id == interface.subnet_id)
            else {
                continue;
            };
            commands.extend(device_commands(
                &device,
                subnet.cidr,
                &interface.private_ips,
            ));
            wanted_routes.extend(
                interface
                    .private_ips
                    .iter()
                    .map(|ip| (ip.to_string(), device.clone())),
            );
            wired.insert(device);
        }
        for device in present
            .iter()
            .filter(|d| d.starts_with('t') && !wired.contains(*d))
        {
            commands.push(format!("link set {device} down"));
        }
        let routes = ip_json(Some(ns), &["route", "show"]).await?;
        for route in &routes {
            let (dst, dev) = (field(route, "dst"), field(route, "dev"));
            let is_interface_route = dst.parse::<Ipv4Addr>().is_ok() && dev.starts_with('t');
            if is_interface_route && !wanted_routes.contains(&(dst.to_owned(), dev.to_owned())) {
                commands.push(format!("route del {dst}/32 dev {dev}"));
            }
        }
        ip_batch(Some(ns), &commands).await?;
        if !wired.is_empty() {
            let settings: Vec<String> = wired
                .iter()
                .map(|d| format!("net.ipv4.conf.{d}.proxy_arp=1"))
                .collect();
            let mut args = vec!["netns", "exec", ns, "sysctl", "-qw"];
            args.extend(settings.iter().map(String::as_str));
            run("ip", &args, None).await?;
        }
        Ok(())
    }

    async fn apply_rules(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let script = rules::render(vpc)?;
        run(
            "ip",
            &["netns", "exec", ns, "nft", "-f", "-"],
            Some(&script),
        )
        .await
        .map(|_| ())
    }

    async fn apply_dnsmasq(&self, vpc: &VpcSpec, ns: &str) -> Result<()> {
        let files = self.dnsmasq_files(&vpc.vpc_id);
        let config = dnsmasq::config(vpc, &files);
        let config_changed = write_if_changed(&files.config(), &config)?;
        let running = running_dnsmasq(&files);
        if running.is_none() || config_changed {
            if let Some(pid) = running {
                stop(pid).await;
            }
            // Every lease is static, so the config says all they would (a renewal is
            // answered from it); a
            // departed interface's lease would keep its address from the next holder.
            empty_if_present(&files.leases())?;
            let config = files.config().display().to_string();
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    ns,
                    "dnsmasq",
                    &format!("--conf-file={config}"),
                ],
                None,
            )
            .await?;
        }
        // dnsmasq writes its pid and lease files 0644 (the lease file only with a DHCP range,
        // the pid file maybe after its parent returned): each apply makes those present
        // private, as is the rest of nimbus's data dir.
        for file in [files.pid(), files.leases()] {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Empties a file, keeping its owner and mode, if it exists.
fn empty_if_present(path: &std::path::Path) -> Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The commands wiring one interface device: up, the subnet router as an address with no
/// prefix route (dnsmasq picks the DHCP range by it; ARP for the router is answered), a
/// /32 route per private IP.
fn device_commands(device: &str, subnet: Ipv4Net, private_ips: &[Ipv4Addr]) -> Vec<String> {
    let subnet = subnet.trunc();
    let mut commands = vec![
        format!("link set {device} up"),
        format!(
            "address replace {}/{} dev {device} noprefixroute",
            router_ip(subnet),
            subnet.prefix_len()
        ),
    ];
    commands.extend(
        private_ips
            .iter()
            .map(|ip| format!("route replace {ip}/32 dev {device}")),
    );
    commands
}

/// Writes `text` unless the file already holds it; says whether it wrote.
fn write_if_changed(path: &std::path::Path, text: &str) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    std::fs::write(path, text)?;
    Ok(true)
}

/// The pid of the VPC's dnsmasq if it runs with this config.
fn running_dnsmasq(files: &dnsmasq::Files) -> Option<rustix::process::Pid> {
    let pid: i32 = std::fs::read_to_string(files.pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = String::from_utf8_lossy(&cmdline).contains(&files.config().display().to_string());
    ours.then(|| rustix::process::Pid::from_raw(pid)).flatten()
}

/// Stops a dnsmasq and waits for it to go.
async fn stop(pid: rustix::process::Pid) {
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    // dnsmasq exits within milliseconds; a restart waits for it on the way to a VM's boot.
    for _ in 0..1000 {
        if !is_alive(pid) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// Whether a process still runs. A daemon is reparented to the host's init, which may be
/// slow to reap it: a zombie counts as gone.
fn is_alive(pid: rustix::process::Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
        .is_ok_and(|stat| process_state(&stat) != Some('Z'))
}

/// The state letter of a `/proc/PID/stat` line (the field after the parenthesised name,
/// which may itself hold spaces and parentheses).
fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Received and sent bytes and packets per device, from `/proc/net/dev` of the namespace.
fn parse_net_dev(text: &str, device: &str) -> Option<InterfaceCounters> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{device}:")))?;
    let numbers: Vec<u64> = line
        .split_once(':')?
        .1
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    // The device transmits what the guest receives.
    Some(InterfaceCounters {
        bytes_in: *numbers.get(8)?,
        packets_in: *numbers.get(9)?,
        bytes_out: *numbers.first()?,
        packets_out: *numbers.get(1)?,
    })
}

#[async_trait]
impl NetworkDriver for LinuxNetwork {
    async fn apply_vpc(&self, vpc: &VpcSpec) -> Result<()> {
        names::check_spec(vpc)?;
        let ns = namespace(&vpc.vpc_id)?;
        let _changing = self.changing.lock().await;
        let unchanged = self.applied().get(&vpc.vpc_id) == Some(vpc);
        if unchanged && self.intact(&vpc.vpc_id, &ns).await {
            // The host's routes may have changed (a network attached to it since).
            return self.guard_host().await;
        }
        let converged = self.converge(vpc, &ns).await;
        if converged.is_err() {
            // Something was removed from outside while converging (a device): the next
            // pass makes the namespace and uplink again rather than failing the same way.
            self.applied().remove(&vpc.vpc_id);
        }
        converged
    }

    async fn remove_vpc(&self, vpc_id: &str) -> Result<()> {
        let ns = namespace(vpc_id)?;
        let _changing = self.changing.lock().await;
        tear_down(&ns, Some(&host_veth(vpc_id)?)).await?;
        let vpc_dir = self.dnsmasq_files(vpc_id).dir;
        remove_nodes(Some(&vpc_dir), &BTreeSet::new()).await?;
        remove_if_present(&vpc_dir)?;
        self.applied().remove(vpc_id);
        if self.own_namespaces()?.is_empty() {
            *self.host_script() = None;
            let table = self.host_table();
            if inet_tables(None).await?.contains(&table) {
                delete_host_table(&table).await
            } else {
                owners::forget(&table)
            }
        } else {
            // One uplink fewer to guard.
            self.guard_host().await
        }
    }

    async fn wired_vpcs(&self) -> Result<Vec<String>> {
        // Only this server's: another nimbus on the host (its own data dir) keeps its VPCs.
        let mut vpcs: Vec<String> = self
            .own_namespaces()?
            .into_iter()
            .map(|(_, vpc_id)| vpc_id)
            .collect();
        vpcs.sort();
        Ok(vpcs)
    }

    async fn remove_orphans(&self) -> Result<Vec<String>> {
        let _changing = self.changing.lock().await;
        sweep_leftovers(Some(&self.state_dir)).await
    }

    fn held_public_ips(&self) -> Result<Vec<Ipv4Net>> {
        let own: BTreeSet<String> = self
            .own_namespaces()?
            .iter()
            .filter_map(|(_, vpc_id)| host_veth(vpc_id).ok())
            .collect();
        Ok(host_guard::held_networks(
            &host_routes()?,
            self.public_ip_pool,
            &own,
        ))
    }

    async fn open_tap(&self, vpc_id: &str, interface_id: &str) -> Result<OwnedFd> {
        let _changing = self.changing.lock().await;
        let (interface, subnet) = {
            let applied = self.applied();
            let vpc = applied
                .get(vpc_id)
                .ok_or_else(|| Error::UnknownInterface(interface_id.to_owned()))?;
            let interface = vpc
                .interfaces
                .iter()
                .find(|i| i.interface_id == interface_id)
                .cloned()
                .ok_or_else(|| Error::UnknownInterface(interface_id.to_owned()))?;
            let subnet = vpc
                .subnets
                .iter()
                .find(|s| s.subnet_id == interface.subnet_id)
                .map(|s| s.cidr)
                .ok_or_else(|| Error::UnknownInterface(interface_id.to_owned()))?;
            (interface, subnet)
        };
        let ns = namespace(vpc_id)?;
        let device = interface_device(interface_id)?;
        let tap = in_namespace(&ns, || {
            let tap = tun_rs::DeviceBuilder::new()
                .name(device.clone())
                .layer(tun_rs::Layer::L2)
                .with(|b| {
                    b.offload(true).packet_information(false);
                })
                .build_sync()?;
            // A duplicate outlives the builder's device; the tap lives while QEMU has it.
            tap.as_fd().try_clone_to_owned()
        })?;
        ip_batch(
            Some(&ns),
            &device_commands(&device, subnet, &interface.private_ips),
        )
        .await?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{device}.proxy_arp=1"),
            ],
            None,
        )
        .await?;
        Ok(tap)
    }

    fn counters(&self, vpc_id: &str, interface_id: &str) -> Option<InterfaceCounters> {
        let ns = namespace(vpc_id).ok()?;
        let device = interface_device(interface_id).ok()?;
        let text =
            in_namespace(&ns, || std::fs::read_to_string("/proc/thread-self/net/dev")).ok()?;
        parse_net_dev(&text, &device)
    }

    async fn metadata_listener(&self, vpc_id: &str) -> Result<std::net::TcpListener> {
        let ns = namespace(vpc_id)?;
        in_namespace(&ns, || {
            let listener = std::net::TcpListener::bind((METADATA_IP, 80))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
    }

    fn instance_at(&self, vpc_id: &str, ip: Ipv4Addr) -> Option<String> {
        crate::instance_at(self.applied().get(vpc_id)?, ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_is_told_from_a_running_process() {
        assert_eq!(process_state("42 (dns masq) Z 1 2 3"), Some('Z'));
        assert_eq!(process_state("42 (a) b) S 1 2 3"), Some('S'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn counters_are_the_guests_view_of_the_device() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n t0a: 100 2 0 0 0 0 0 0 900 7 0 0 0 0 0 0\n";
        assert_eq!(
            parse_net_dev(text, "t0a"),
            Some(InterfaceCounters {
                bytes_in: 900,
                packets_in: 7,
                bytes_out: 100,
                packets_out: 2
            })
        );
        assert_eq!(parse_net_dev(text, "t0b"), None);
    }
}
