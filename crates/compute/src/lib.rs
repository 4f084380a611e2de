//! Instances as real VMs: QEMU driven over QMP, the default image, the accelerator probe and
//! the instance metadata service. See `docs/compute.md`.

mod cgroup;
mod confine;
pub mod console;
mod driver;
#[cfg(feature = "fake")]
pub mod fake;
pub mod heartbeat;
mod hibernation;
mod image;
mod imds;
mod qmp;
mod vm;

use std::path::Path;
use std::time::Duration;

pub use console::console_output;
pub use driver::{ExitCause, Hypervisor, Qemu, VmHandle};
pub use hibernation::{resume, SavedVm};
pub use image::{build_debian12_image, build_minimal_image, ImageArtifacts};
pub use imds::{
    serve_imds, IamMetadata, InstanceMetadata, InterfaceMetadata, MetadataSource, RoleCredentials,
};
pub use vm::{adopt, launch, Accel, DiskSpec, NicSpec, Vm, VmSpec, NIC_PORTS};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: {0}")]
    Qmp(String),
    #[error("QEMU: {0}")]
    Qemu(String),
    #[error("image build failed: {0}")]
    Image(String),
    /// A saved state does not fit the machine it was to be resumed into.
    #[error("the saved state does not fit this machine: {0}")]
    Incompatible(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// How long a probe boot under KVM may take before KVM counts as unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// KVM when a probe boot of `kernel`/`initrd` reaches userspace under it, TCG otherwise.
/// `NIMBUS_ACCEL=kvm|tcg` overrides; the answer is cached per kernel (`probe_cache_dir`).
pub async fn probe_accel(kernel: &Path, initrd: &Path) -> Accel {
    match std::env::var("NIMBUS_ACCEL").as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    if std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Accel::Tcg;
    }
    let key = std::fs::metadata(kernel).map(|m| m.len()).unwrap_or(0);
    let cache = probe_cache_dir().join(format!("accel-probe-{key}"));
    if let Ok(answer) = std::fs::read_to_string(&cache) {
        return if answer.trim() == "kvm" {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
    }
    let accel = if probe_boot(kernel, initrd).await {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    tracing::info!(accelerator = accel.as_str(), "accelerator probe finished");
    let _ = std::fs::create_dir_all(probe_cache_dir())
        .and_then(|()| std::fs::write(&cache, accel.as_str()));
    accel
}

/// Where the probe's answer is kept, in a directory only nimbus's user can write (a
/// predictable path in the shared temp dir could be planted or linked by another user):
/// `/run/nimbus` as root, `~/.cache/nimbus` otherwise. Shared by every data dir, since a
/// probe that fails costs a 20 s boot.
fn probe_cache_dir() -> std::path::PathBuf {
    if rustix::process::geteuid().is_root() {
        return "/run/nimbus".into();
    }
    std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".cache/nimbus"))
        .unwrap_or_else(|| "nimbus-cache".into())
}

async fn probe_boot(kernel: &Path, initrd: &Path) -> bool {
    let child = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "q35,accel=kvm",
            "-cpu",
            "host",
            "-m",
            "256M",
            "-nodefaults",
            "-no-user-config",
        ])
        .args(["-display", "none", "-serial", "stdio", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            "console=ttyS0 nimbus.probe panic=-1",
            "-no-reboot",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let Ok(child) = child else { return false };
    match tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => String::from_utf8_lossy(&output.stdout).contains("nimbus-probe-ok"),
        _ => false,
    }
}
