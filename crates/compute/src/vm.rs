//! One QEMU process per instance: a q35 machine booting the image's kernel directly, disks
//! over NBD from the block store on hot-pluggable PCIe root ports, user-mode networking whose
//! 169.254.169.254:80 leads to the instance's metadata socket, the serial console in a file,
//! and QMP on a unix socket. QEMU daemonizes, so instances outlive a restart of nimbus and are
//! re-adopted through their pid file and QMP socket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::qmp::Qmp;
use crate::{Error, Result};

/// Root ports for disks (the network card has its own).
const DISK_PORTS: usize = 12;

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
    pub imds_socket: PathBuf,
    pub ssh_host_port: Option<u16>,
    pub accel: Accel,
    /// The program (and its arguments before the socket path) that QEMU runs for each guest
    /// connection to the metadata address; it must pipe stdio to the socket.
    pub imds_command: Vec<String>,
}

/// A running VM.
pub struct Vm {
    pid: i32,
    run_dir: PathBuf,
    qmp: tokio::sync::Mutex<Qmp>,
    /// Device name → root port index.
    ports: std::sync::Mutex<BTreeMap<String, usize>>,
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

fn blockdev(disk: &DiskSpec) -> serde_json::Value {
    json!({
        "driver": "nbd",
        "node-name": format!("node-{}", device_key(&disk.device_name)),
        "server": { "type": "unix", "path": disk.nbd_socket },
        "export": disk.export,
    })
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

    /// Hot-plugs a volume on a free root port.
    pub async fn hotplug_disk(&self, disk: &DiskSpec) -> Result<()> {
        let port = {
            let ports = self.ports.lock().unwrap_or_else(|p| p.into_inner());
            (0..DISK_PORTS)
                .find(|p| !ports.values().any(|used| used == p))
                .ok_or_else(|| Error::Qemu("no free PCIe port for another disk".into()))?
        };
        let key = device_key(&disk.device_name);
        let mut qmp = self.qmp.lock().await;
        qmp.execute("blockdev-add", blockdev(disk)).await?;
        let added = qmp
            .execute(
                "device_add",
                json!({ "driver": "virtio-blk-pci", "id": format!("disk-{key}"), "drive": format!("node-{key}"), "bus": format!("rp{port}") }),
            )
            .await;
        if let Err(error) = added {
            let _ = qmp
                .execute(
                    "blockdev-del",
                    json!({ "node-name": format!("node-{key}") }),
                )
                .await;
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

    /// Unplugs a volume: the guest releases the device, then QEMU closes the NBD connection.
    pub async fn unplug_disk(&self, device_name: &str) -> Result<()> {
        let key = device_key(device_name);
        let id = format!("disk-{key}");
        let mut qmp = self.qmp.lock().await;
        qmp.execute("device_del", json!({ "id": id })).await?;
        qmp.wait_event(Duration::from_secs(60), |event| {
            event["event"] == "DEVICE_DELETED" && event["data"]["device"] == id.as_str()
        })
        .await?;
        qmp.execute(
            "blockdev-del",
            json!({ "node-name": format!("node-{key}") }),
        )
        .await?;
        drop(qmp);
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(device_name);
        self.save_ports();
        Ok(())
    }
}

/// Starts QEMU for `spec` and connects to it.
pub async fn launch(spec: &VmSpec) -> Result<Vm> {
    std::fs::create_dir_all(&spec.run_dir)?;
    let qmp_socket = spec.run_dir.join("qmp.sock");
    let pid_file = spec.run_dir.join("qemu.pid");
    let _ = std::fs::remove_file(&qmp_socket);
    let _ = std::fs::remove_file(&pid_file);
    let mut args: Vec<String> = vec![
        "-name".into(),
        format!("{},process=nimbus-{}", spec.instance_id, spec.instance_id),
        "-machine".into(),
        format!("q35,accel={}", spec.accel.as_str()),
        "-cpu".into(),
        if spec.accel == Accel::Kvm {
            "host"
        } else {
            "max"
        }
        .into(),
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
        "-chardev".into(),
        format!(
            "file,id=console,path={},append=on",
            spec.run_dir.join("serial.log").display()
        ),
        "-serial".into(),
        "chardev:console".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", qmp_socket.display()),
        "-pidfile".into(),
        pid_file.display().to_string(),
        "-daemonize".into(),
        // Seccomp with QEMU's defaults (obsolete syscalls denied). Denying privilege changes
        // breaks -daemonize on QEMU 7.2, and spawning must stay allowed for the metadata pipe.
        "-sandbox".into(),
        "on,obsolete=deny".into(),
    ];
    for port in 0..=DISK_PORTS {
        args.push("-device".into());
        args.push(format!(
            "pcie-root-port,id=rp{port},chassis={},slot={}",
            port + 1,
            port + 1
        ));
    }
    let mut ports = BTreeMap::new();
    for (index, disk) in spec.disks.iter().enumerate().take(DISK_PORTS) {
        let key = device_key(&disk.device_name);
        args.push("-blockdev".into());
        args.push(blockdev(disk).to_string());
        args.push("-device".into());
        args.push(format!(
            "virtio-blk-pci,id=disk-{key},drive=node-{key},bus=rp{index}"
        ));
        ports.insert(disk.device_name.clone(), index);
    }
    let mut imds = spec.imds_command.clone();
    imds.push(spec.imds_socket.display().to_string());
    let mut netdev = format!("user,id=net0,net=169.254.0.0/16,host=169.254.0.1,dhcpstart=169.254.0.15,hostname=ip-169-254-0-15,guestfwd=tcp:169.254.169.254:80-cmd:{}", imds.join(" "));
    if let Some(port) = spec.ssh_host_port {
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{port}-:22"));
    }
    args.push("-netdev".into());
    args.push(netdev);
    args.push("-device".into());
    args.push(format!(
        "virtio-net-pci,netdev=net0,romfile=,bus=rp{DISK_PORTS}"
    ));
    let output = tokio::process::Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Qemu(format!("cannot run qemu-system-x86_64: {e}")))?;
    if !output.status.success() {
        return Err(Error::Qemu(format!(
            "QEMU failed to start: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
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
    }))
}

/// The serial console log of the VM that ran in `run_dir` (empty if none).
pub fn console_output(run_dir: &Path) -> String {
    std::fs::read(run_dir.join("serial.log"))
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}
