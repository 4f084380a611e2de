//! Instances as real VMs: QEMU driven over QMP, the default image, the accelerator probe and
//! the instance metadata service. See `docs/compute.md`.

mod cgroup;
mod image;
mod imds;
mod qmp;
mod vm;

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

pub use cgroup::release_vm;
pub use image::{build_debian12_image, build_minimal_image, ImageArtifacts};
pub use imds::{serve_imds, InstanceMetadata, MetadataSource};
pub use vm::{adopt, console_output, launch, Accel, DiskSpec, Vm, VmSpec};

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
}

pub type Result<T> = std::result::Result<T, Error>;

/// How long a probe boot under KVM may take before KVM counts as unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// KVM when a probe boot of `kernel`/`initrd` reaches userspace under it, TCG otherwise.
/// `NIMBUS_ACCEL=kvm|tcg` overrides; the answer is cached per kernel in the temp dir.
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
    let cache = std::env::temp_dir().join(format!("nimbus-accel-probe-{key}"));
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
    let _ = std::fs::write(&cache, accel.as_str());
    accel
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

/// How long the pipe keeps waiting for the answer once the guest stopped sending.
const PIPE_LINGER: Duration = Duration::from_secs(10);

/// Pipes this process's stdin and stdout to the metadata socket: QEMU runs it for each guest
/// connection to 169.254.169.254:80. The guest's half-close is not passed on (HTTP servers
/// drop half-closed connections, and busybox wget half-closes after its request): the pipe
/// ends when the server closes, or a while after the guest stopped sending.
pub fn imds_pipe(socket: &Path) -> std::io::Result<()> {
    let stream = std::os::unix::net::UnixStream::connect(socket)?;
    let mut to_socket = stream.try_clone()?;
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buffer = [0u8; 8192];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_socket.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        std::thread::sleep(PIPE_LINGER);
        std::process::exit(0);
    });
    let mut from_socket = stream;
    // Rust's stdout is line-buffered: answers to keep-alive clients would wait for a newline.
    let mut stdout =
        std::fs::File::from(std::os::fd::AsFd::as_fd(&std::io::stdout()).try_clone_to_owned()?);
    std::io::copy(&mut from_socket, &mut stdout)?;
    Ok(())
}
