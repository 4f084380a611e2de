//! One QEMU process per instance: a q35 machine booting the image's kernel directly, disks
//! over NBD from the block store on hot-pluggable PCIe root ports, a virtio-net card per
//! network interface on the tap the network driver opened for it, the serial console in a
//! file, and QMP on a unix socket. QEMU runs detached from nimbus (its own session, reaped by
//! the host's init), so instances outlive a restart of nimbus and are re-adopted through
//! their pid file and QMP socket.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::qmp::Qmp;
use crate::{Error, Result};

/// How long a status query may take before the VM counts as making no progress. (A late
/// answer is skipped by the next command, which waits for its own ID.)
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// qboot, QEMU's minimal firmware for direct kernel boots (Debian's qemu-system-data ships
/// it). SeaBIOS walks and programs every root port before the kernel starts; qboot leaves
/// that to the kernel, which does it anyway: a few tenths of a second of a TCG boot
/// (docs/images.md). Without it QEMU's default firmware boots the same kernel.
const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// How long after a launch a hot-plug waits for a guest without a heartbeat agent.
const BOOT_GRACE: Duration = Duration::from_secs(30);

/// Root ports for disks.
const DISK_PORTS: usize = 12;
/// Root ports for network cards, after the disks' (EC2's small types allow 2–4 interfaces).
pub const NIC_PORTS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// A volume as the VM sees it: the EC2 device name and where its NBD export is.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskSpec {
    pub device_name: String,
    pub nbd_socket: PathBuf,
    pub export: String,
}

/// A network interface as the VM sees it: its MAC and the tap that carries its frames,
/// opened by the network driver and handed to QEMU.
#[derive(Clone, Debug)]
pub struct NicSpec {
    /// The EC2 device index; the card sits on NIC root port `device_index` (and has QEMU IDs
    /// `nic<index>`/`net<index>`), so where a card is follows from the records alone, also
    /// after a restart of nimbus, and a card hot-plugged later never meets a taken port.
    pub device_index: u32,
    pub mac: String,
    pub tap: std::sync::Arc<std::os::fd::OwnedFd>,
}

#[derive(Clone, Debug)]
pub struct VmSpec {
    pub instance_id: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// The root disk first.
    pub disks: Vec<DiskSpec>,
    pub run_dir: PathBuf,
    /// Device index order: the primary interface first.
    pub nics: Vec<NicSpec>,
}

/// A running VM.
pub struct Vm {
    pid: i32,
    run_dir: PathBuf,
    pub(crate) qmp: tokio::sync::Mutex<Qmp>,
    /// Device name → root port index.
    pub(crate) ports: std::sync::Mutex<BTreeMap<String, usize>>,
    /// Held for as long as the VM is kept: copies its console into `serial.log`.
    _console: crate::console::Console,
    heartbeat: crate::heartbeat::Heartbeat,
    /// Until when the guest may still be enumerating PCI (see `wait_until_booted`).
    booting_until: std::time::Instant,
}

fn device_key(device_name: &str) -> String {
    device_name
        .trim_start_matches("/dev/")
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // A zombie (state Z) has exited.
            let text = String::from_utf8_lossy(&stat).into_owned();
            !text
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// How long the guest's disk requests wait for nimbus to come back (a restart, an upgrade)
/// before they fail: QEMU's NBD client reconnects to the VM's socket meanwhile and resends
/// what was in flight, so a shorter outage is a pause the guest never sees as an error.
pub const NBD_RECONNECT_DELAY_SECS: u64 = 600;

/// A disk is a `raw` format node (`node-<key>`, what the device uses) over an NBD
/// connection node (`nbd-<key>-<generation>`). Growing a volume swaps in a new connection,
/// which learns the new size, under the same format node.
fn nbd_node_name(disk: &DiskSpec, generation: u64) -> String {
    format!("nbd-{}-{generation}", device_key(&disk.device_name))
}

/// An NBD connection to the VM's own socket, by path: QEMU opens it as root at launch and
/// as its unprivileged user for hot-plugs and reconnections.
fn nbd_node(disk: &DiskSpec, generation: u64) -> serde_json::Value {
    json!({
        "driver": "nbd",
        "node-name": nbd_node_name(disk, generation),
        "server": { "type": "unix", "path": disk.nbd_socket },
        "export": disk.export,
        "reconnect-delay": NBD_RECONNECT_DELAY_SECS,
    })
}

fn format_node(disk: &DiskSpec, generation: u64) -> serde_json::Value {
    let key = device_key(&disk.device_name);
    json!({ "driver": "raw", "node-name": format!("node-{key}"), "file": nbd_node_name(disk, generation) })
}

/// The names of a disk's NBD connection nodes, with their generations.
async fn nbd_nodes(qmp: &mut Qmp, key: &str) -> Result<Vec<(String, u64)>> {
    let prefix = format!("nbd-{key}-");
    let nodes = qmp
        .execute("query-named-block-nodes", json!({ "flat": true }))
        .await?;
    Ok(nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|node| node["node-name"].as_str())
        .filter_map(|name| {
            let generation = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((name.to_string(), generation))
        })
        .collect())
}

async fn delete_nodes(qmp: &mut Qmp, names: impl IntoIterator<Item = String>) -> Result<()> {
    for name in names {
        qmp.execute("blockdev-del", json!({ "node-name": name }))
            .await?;
    }
    Ok(())
}

impl Vm {
    fn save_ports(&self) {
        let ports = self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Ok(text) = serde_json::to_string(&ports) {
            let _ = std::fs::write(self.run_dir.join("ports.json"), text);
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn has_exited(&self) -> bool {
        !pid_alive(self.pid)
    }

    /// A guest that powers off makes QEMU send `SHUTDOWN` with `guest: true` before it
    /// exits; a QEMU killed under its guest sends nothing (`kill -9`) or a host-side
    /// shutdown. The events are still in the QMP socket after the process is gone.
    pub async fn exit_cause(&self) -> crate::ExitCause {
        let events = self.qmp.lock().await.final_events().await;
        let guest_shutdown = events
            .iter()
            .any(|e| e["event"] == "SHUTDOWN" && e["data"]["guest"] == true);
        if guest_shutdown {
            crate::ExitCause::GuestShutdown
        } else {
            crate::ExitCause::Lost
        }
    }

    /// QMP `query-status`: whether the vCPUs run. A VM busy with another QMP command (a
    /// hot-unplug waits for the guest) cannot be asked and answers `None`; a QEMU that does
    /// not answer within [`STATUS_TIMEOUT`] makes no progress either.
    pub async fn guest_running(&self) -> Option<bool> {
        let mut qmp = self.qmp.try_lock().ok()?;
        let asked = tokio::time::timeout(STATUS_TIMEOUT, qmp.execute("query-status", json!({})));
        Some(match asked.await {
            Ok(Ok(status)) => status["status"] == "running",
            _ => false,
        })
    }

    /// When the guest last wrote to its heartbeat port (milliseconds since the epoch).
    pub fn last_heartbeat_ms(&self) -> Option<i64> {
        self.heartbeat.last_ms()
    }

    /// The CPU time of the VM's cgroup, or of its process where it runs without one.
    pub fn cpu_time_usec(&self) -> Option<u64> {
        let instance_id = self.run_dir.file_name()?.to_str()?;
        crate::cgroup::cpu_usage_usec(instance_id)
            .or_else(|| crate::cgroup::process_cpu_usec(self.pid))
    }

    /// ACPI power button: the guest shuts down cleanly.
    pub async fn powerdown(&self) -> Result<()> {
        self.qmp
            .lock()
            .await
            .execute("system_powerdown", json!({}))
            .await
            .map(|_| ())
    }

    pub async fn reset(&self) -> Result<()> {
        self.qmp
            .lock()
            .await
            .execute("system_reset", json!({}))
            .await
            .map(|_| ())
    }

    /// Stops the VM at once (like pulling the plug) and waits for the process to go.
    pub async fn kill(&self) -> Result<()> {
        let _ = self.qmp.lock().await.execute("quit", json!({})).await;
        for _ in 0..100 {
            if self.has_exited() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        Ok(())
    }

    /// A card plugged while the guest kernel is still enumerating PCI can be left without a
    /// memory window (qboot leaves bridge windows to the kernel), so hot-plugs wait until the
    /// guest has booted: its heartbeat agent spoke, or `BOOT_GRACE` passed for a guest without.
    async fn wait_until_booted(&self) {
        while self.heartbeat.last_ms().is_none() && std::time::Instant::now() < self.booting_until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Hot-plugs a volume on a free root port.
    pub async fn hotplug_disk(&self, disk: &DiskSpec) -> Result<()> {
        self.wait_until_booted().await;
        let port = {
            let ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
            (0..DISK_PORTS)
                .find(|p| !ports.values().any(|used| used == p))
                .ok_or_else(|| Error::Qemu("no free PCIe port for another disk".into()))?
        };
        let key = device_key(&disk.device_name);
        let mut qmp = self.qmp.lock().await;
        qmp.execute("blockdev-add", nbd_node(disk, 0)).await?;
        let mut added = qmp.execute("blockdev-add", format_node(disk, 0)).await;
        if added.is_ok() {
            added = qmp
                .execute(
                    "device_add",
                    json!({ "driver": "virtio-blk-pci", "id": format!("disk-{key}"), "drive": format!("node-{key}"), "bus": format!("rp{port}") }),
                )
                .await;
            if added.is_err() {
                let _ = delete_nodes(&mut qmp, [format!("node-{key}")]).await;
            }
        }
        if let Err(error) = added {
            let _ = delete_nodes(&mut qmp, [nbd_node_name(disk, 0)]).await;
            return Err(error);
        }
        drop(qmp);
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(disk.device_name.clone(), port);
        self.save_ports();
        Ok(())
    }

    /// Shows the guest a volume that grew: a new NBD connection (which sees the new size)
    /// replaces the old one under the disk's format node, then the disk is resized, which
    /// tells the guest (virtio capacity change).
    pub async fn grow_disk(&self, disk: &DiskSpec, new_size: u64) -> Result<()> {
        let key = device_key(&disk.device_name);
        let mut qmp = self.qmp.lock().await;
        let old = nbd_nodes(&mut qmp, &key).await?;
        let generation = old.iter().map(|(_, g)| g + 1).max().unwrap_or(0);
        qmp.execute("blockdev-add", nbd_node(disk, generation))
            .await?;
        let swapped = qmp
            .execute(
                "blockdev-reopen",
                json!({ "options": [format_node(disk, generation)] }),
            )
            .await;
        if let Err(error) = swapped {
            let _ = delete_nodes(&mut qmp, [nbd_node_name(disk, generation)]).await;
            return Err(error);
        }
        delete_nodes(&mut qmp, old.into_iter().map(|(name, _)| name)).await?;
        qmp.execute(
            "block_resize",
            json!({ "node-name": format!("node-{key}"), "size": new_size }),
        )
        .await
        .map(|_| ())
    }

    /// Unplugs a volume: the guest releases the device, then QEMU closes the NBD connection.
    pub async fn unplug_disk(&self, device_name: &str) -> Result<()> {
        let key = device_key(device_name);
        let id = format!("disk-{key}");
        let mut qmp = self.qmp.lock().await;
        remove_device(&mut qmp, &id).await?;
        let connections = nbd_nodes(&mut qmp, &key).await?;
        delete_nodes(&mut qmp, [format!("node-{key}")]).await?;
        delete_nodes(&mut qmp, connections.into_iter().map(|(name, _)| name)).await?;
        drop(qmp);
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(device_name);
        self.save_ports();
        Ok(())
    }

    /// Hot-plugs a network card. A card already there (plugged before nimbus restarted,
    /// before the attachment was recorded) counts as plugged: its ID is its device index,
    /// and one attachment at a time holds an index.
    pub async fn hotplug_nic(&self, nic: &NicSpec) -> Result<()> {
        self.wait_until_booted().await;
        let mut qmp = self.qmp.lock().await;
        if has_device(&mut qmp, &nic_id(nic.device_index)).await? {
            return Ok(());
        }
        // A back end left by an unplug that was cut short would take the ID.
        let _ = qmp
            .execute("netdev_del", json!({ "id": netdev_id(nic.device_index) }))
            .await;
        add_nic(&mut qmp, nic).await
    }

    /// Unplugs a network card: the guest releases it, then QEMU closes its tap. A card that
    /// is not there is unplugged already.
    pub async fn unplug_nic(&self, device_index: u32) -> Result<()> {
        let mut qmp = self.qmp.lock().await;
        if has_device(&mut qmp, &nic_id(device_index)).await? {
            remove_device(&mut qmp, &nic_id(device_index)).await?;
        }
        // Absent when an earlier unplug got this far; a leftover is cleared by the next plug.
        let _ = qmp
            .execute("netdev_del", json!({ "id": netdev_id(device_index) }))
            .await;
        Ok(())
    }
}

/// How long a guest gets to release a device it is asked to give back.
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(60);

/// Asks the guest to release a device and waits until QEMU has removed it.
async fn remove_device(qmp: &mut Qmp, id: &str) -> Result<()> {
    let deleted = |event: &serde_json::Value| {
        event["event"] == "DEVICE_DELETED" && event["data"]["device"] == id
    };
    // An earlier device of this ID whose removal came after its wait gave up left its event;
    // it must not pass for this one's.
    qmp.discard_events(deleted);
    qmp.execute("device_del", json!({ "id": id })).await?;
    qmp.wait_event(UNPLUG_TIMEOUT, deleted).await.map(|_| ())
}

/// Whether the VM has a device with this ID (user-created devices live under
/// `/machine/peripheral`).
async fn has_device(qmp: &mut Qmp, id: &str) -> Result<bool> {
    let devices = qmp
        .execute("qom-list", json!({ "path": "/machine/peripheral" }))
        .await?;
    Ok(devices
        .as_array()
        .into_iter()
        .flatten()
        .any(|d| d["name"] == id))
}

fn nic_id(device_index: u32) -> String {
    format!("nic{device_index}")
}

fn netdev_id(device_index: u32) -> String {
    format!("net{device_index}")
}

/// Plugs a virtio-net card on its tap: the descriptor is passed over QMP (QEMU runs
/// unprivileged and could not open a tap). The tap carries the virtio header, which QEMU
/// finds on the descriptor and uses to offload checksums and segmentation.
async fn add_nic(qmp: &mut Qmp, nic: &NicSpec) -> Result<()> {
    use std::os::fd::AsFd;
    let index = nic.device_index as usize;
    if index >= NIC_PORTS {
        return Err(Error::Qemu(format!(
            "device index {index}: at most {NIC_PORTS} network interfaces are supported"
        )));
    }
    let fd_name = format!("tap{index}");
    qmp.execute_passing_fd("getfd", json!({ "fdname": fd_name }), nic.tap.as_fd())
        .await?;
    let netdev = netdev_id(nic.device_index);
    if let Err(error) = qmp
        .execute(
            "netdev_add",
            json!({ "type": "tap", "id": netdev, "fd": fd_name }),
        )
        .await
    {
        let _ = qmp.execute("closefd", json!({ "fdname": fd_name })).await;
        return Err(error);
    }
    let added = qmp
        .execute(
            "device_add",
            json!({
                "driver": "virtio-net-pci",
                "id": nic_id(nic.device_index),
                "netdev": netdev,
                "mac": nic.mac,
                "romfile": "",
                "bus": format!("rp{}", DISK_PORTS + index),
            }),
        )
        .await;
    if let Err(error) = added {
        let _ = qmp.execute("netdev_del", json!({ "id": netdev })).await;
        return Err(error);
    }
    Ok(())
}

/// Starts QEMU for `spec` on `accel` and connects to it.
pub async fn launch(spec: &VmSpec, accel: Accel) -> Result<Vm> {
    // A fresh machine: the disks on the first root ports, the root disk first.
    let layout = spec
        .disks
        .iter()
        .take(DISK_PORTS)
        .enumerate()
        .map(|(port, disk)| (disk.device_name.clone(), port))
        .collect();
    let mut vm = start(spec, accel, &layout, false).await?;
    vm.booting_until = std::time::Instant::now() + BOOT_GRACE;
    let started = match plug_nics(&vm, &spec.nics).await {
        Ok(()) => vm
            .qmp
            .lock()
            .await
            .execute("cont", json!({}))
            .await
            .map(|_| ()),
        Err(error) => Err(error),
    };
    if let Err(error) = started {
        let _ = vm.kill().await;
        return Err(error);
    }
    Ok(vm)
}

/// Starts a paused QEMU for `spec` on `accel`, each disk on its root port of `layout` (device
/// name → port), and connects to it; its network cards are not plugged yet. With `incoming`,
/// the machine waits for its state to come in (`-incoming defer`) instead of booting.
pub(crate) async fn start(
    spec: &VmSpec,
    accel: Accel,
    layout: &BTreeMap<String, usize>,
    incoming: bool,
) -> Result<Vm> {
    std::fs::create_dir_all(&spec.run_dir)?;
    let qmp_socket = spec.run_dir.join("qmp.sock");
    let pid_file = spec.run_dir.join("qemu.pid");
    let _ = std::fs::remove_file(&qmp_socket);
    let _ = std::fs::remove_file(&pid_file);
    // QEMU's sockets are made private once QEMU has made them, whatever umask it ran with.
    let mut args: Vec<String> = vec![
        "-name".into(),
        format!("{},process=nimbus-{}", spec.instance_id, spec.instance_id),
        "-machine".into(),
        format!("q35,accel={}", accel.as_str()),
        "-cpu".into(),
        if accel == Accel::Kvm { "host" } else { "max" }.into(),
        "-smp".into(),
        spec.vcpus.to_string(),
        "-m".into(),
        format!("{}M", spec.memory_mib),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-kernel".into(),
        spec.kernel.display().to_string(),
        "-initrd".into(),
        spec.initrd.display().to_string(),
        "-append".into(),
        spec.cmdline.clone(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp_socket.display()),
        "-pidfile".into(),
        pid_file.display().to_string(),
        // Paused until the network cards are plugged in on their taps (see `plug_nics`).
        "-S".into(),
        "-sandbox".into(),
        crate::confine::SANDBOX.into(),
    ];
    // As root, QEMU runs confined (`confine.rs`); the uid stays reserved until it runs.
    let confined = if rustix::process::geteuid().is_root() {
        Some(crate::confine::reserve_uid()?)
    } else {
        None
    };
    if Path::new(QBOOT).exists() {
        args.extend(["-bios".into(), QBOOT.into()]);
    }
    args.extend(crate::console::qemu_args(&spec.run_dir));
    args.extend(crate::heartbeat::qemu_args(&spec.run_dir));
    for port in 0..DISK_PORTS + NIC_PORTS {
        args.push("-device".into());
        args.push(format!(
            "pcie-root-port,id=rp{port},chassis={},slot={}",
            port + 1,
            port + 1
        ));
    }
    let mut ports = BTreeMap::new();
    for disk in &spec.disks {
        let Some(&port) = layout.get(&disk.device_name) else {
            continue;
        };
        let key = device_key(&disk.device_name);
        for node in [nbd_node(disk, 0), format_node(disk, 0)] {
            args.push("-blockdev".into());
            args.push(node.to_string());
        }
        args.push("-device".into());
        args.push(format!(
            "virtio-blk-pci,id=disk-{key},drive=node-{key},bus=rp{port}"
        ));
        ports.insert(disk.device_name.clone(), port);
    }
    if incoming {
        args.extend(["-incoming".into(), "defer".into()]);
    }
    let (program, prefix) = match &confined {
        Some(uid) => ("unshare", uid.command()),
        None => ("qemu-system-x86_64", Vec::new()),
    };
    let mut errors = detach(program, prefix.iter().chain(&args)).await?;
    // QEMU listens on QMP early and answers it once it has started (or it exits: its
    // standard error then ends).
    while !(qmp_socket.exists() && pid_file.exists()) {
        tokio::select! {
            text = &mut errors => {
                let text = text.unwrap_or_default();
                return Err(Error::Qemu(format!("QEMU failed to start: {text}")));
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
    if let Err(error) = until_started(&qmp_socket).await {
        // Stopped if it lingers, so that its standard error ends.
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|pid| rustix::process::Pid::from_raw(pid.trim().parse().ok()?))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        let text = errors.await.unwrap_or_default();
        return Err(Error::Qemu(format!(
            "QEMU failed to start ({error}): {text}"
        )));
    }
    // Closed from here on, as -daemonize would send it to /dev/null (QEMU ignores SIGPIPE).
    errors.abort();
    for socket in ["qmp.sock", "console.sock", "heartbeat.sock"].map(|s| spec.run_dir.join(s)) {
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::write(
        spec.run_dir.join("ports.json"),
        serde_json::to_string(&ports).unwrap_or_default(),
    )?;
    let vm = adopt(&spec.run_dir)
        .await?
        .ok_or_else(|| Error::Qemu("QEMU exited right after starting".into()))?;
    crate::cgroup::limit_vm(&spec.instance_id, vm.pid, spec.vcpus, spec.memory_mib);
    Ok(vm)
}

/// Waits until the QEMU listening on `qmp_socket` has started: it answers commands once its
/// main loop runs (QMP's greeting may come before).
async fn until_started(qmp_socket: &Path) -> Result<()> {
    let mut qmp = Qmp::connect(qmp_socket).await?;
    qmp.execute("query-status", json!({})).await.map(|_| ())
}

/// Runs `program` in a session of its own, detached (`setsid --fork`): it outlives nimbus and
/// is reaped by the host's init, as `-daemonize` would have it, without QEMU forking itself
/// (its seccomp filter denies spawning). The returned task reads its standard error, up to
/// 64 KiB, until it ends (the program exits) or the task is aborted (its pipe then closes).
async fn detach(
    program: &str,
    args: impl Iterator<Item = &String>,
) -> Result<tokio::task::JoinHandle<String>> {
    use tokio::io::AsyncReadExt;
    let mut setsid = tokio::process::Command::new("setsid")
        .arg("--fork")
        .arg(program)
        .args(args)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Qemu(format!("cannot run setsid {program}: {e}")))?;
    let stderr = setsid.stderr.take();
    // setsid returns once it has forked the program off.
    let forked = setsid.wait().await?;
    if !forked.success() {
        return Err(Error::Qemu(format!("setsid {program} failed: {forked}")));
    }
    Ok(tokio::spawn(async move {
        let mut text = Vec::new();
        if let Some(stderr) = stderr {
            let _ = stderr.take(64 * 1024).read_to_end(&mut text).await;
        }
        String::from_utf8_lossy(&text).trim().to_owned()
    }))
}

/// Plugs a card per interface into the paused VM, in device index order.
pub(crate) async fn plug_nics(vm: &Vm, nics: &[NicSpec]) -> Result<()> {
    let mut qmp = vm.qmp.lock().await;
    for nic in nics {
        add_nic(&mut qmp, nic).await?;
    }
    Ok(())
}

/// Reconnects to the QEMU of `run_dir` if it is still running.
pub async fn adopt(run_dir: &Path) -> Result<Option<Vm>> {
    let Ok(text) = std::fs::read_to_string(run_dir.join("qemu.pid")) else {
        return Ok(None);
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(None);
    };
    if !pid_alive(pid) {
        return Ok(None);
    }
    let qmp = Qmp::connect(&run_dir.join("qmp.sock")).await?;
    let ports = std::fs::read_to_string(run_dir.join("ports.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Ok(Some(Vm {
        pid,
        run_dir: run_dir.to_owned(),
        qmp: tokio::sync::Mutex::new(qmp),
        ports: std::sync::Mutex::new(ports),
        _console: crate::console::Console::attach(run_dir).await,
        heartbeat: crate::heartbeat::Heartbeat::listen(run_dir),
        // A VM found running was launched before this nimbus started: it counts as booted
        // (a restart in the first seconds of a boot is the case this misses).
        booting_until: std::time::Instant::now(),
    }))
}
