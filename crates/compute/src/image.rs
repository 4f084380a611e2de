//! The default image, `nimbus-minimal`, built on this machine from Debian packages by
//! `image/build-minimal.sh` and cached by the digest of its inputs.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Error, Result};

const BUILD_SCRIPT: &str = include_str!("../image/build-minimal.sh");
const DEBIAN_SCRIPT: &str = include_str!("../image/build-debian12.sh");
/// The guest agent both images install, written beside the build script.
const HEARTBEAT_AGENT: (&str, &str) = (
    "nimbus-heartbeat.sh",
    include_str!("../image/nimbus-heartbeat.sh"),
);
/// The host programs that `build-minimal.sh` copies into the image.
const MINIMAL_INPUTS: [&str; 6] = [
    "/usr/bin/busybox",
    "/usr/sbin/dropbear",
    "/usr/bin/bash",
    "/usr/bin/curl",
    "/usr/bin/iperf3",
    "/etc/ssl/certs/ca-certificates.crt",
];

/// What an image boots with: the kernel and initramfs are kept with the AMI, the root
/// filesystem becomes its snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageArtifacts {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub root_fs: PathBuf,
    pub kernel_cmdline: String,
    /// Identifies the inputs: the same digest means the same image.
    pub digest: String,
}

/// Digest of everything the image is made of: the scripts and the packaged files it copies.
fn inputs_digest() -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(BUILD_SCRIPT.as_bytes());
    hasher.update(HEARTBEAT_AGENT.1.as_bytes());
    let mut inputs: Vec<PathBuf> = MINIMAL_INPUTS.iter().map(PathBuf::from).collect();
    if let Ok(entries) = std::fs::read_dir("/boot") {
        inputs.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains("vmlinuz-")),
        );
    }
    inputs.sort();
    for input in inputs {
        if let Ok(meta) = std::fs::metadata(&input) {
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
            hasher.update(format!("{}:{}:{:?}", input.display(), meta.len(), modified).as_bytes());
        }
    }
    hasher.finalize().to_hex()[..16].to_owned()
}

/// The boot files of `boot_dir` with the root filesystem and command line of `root_dir`.
fn artifacts(boot_dir: &Path, root_dir: &Path, digest: &str) -> Result<ImageArtifacts> {
    Ok(ImageArtifacts {
        kernel: boot_dir.join("vmlinux"),
        initrd: boot_dir.join("initrd.img"),
        root_fs: root_dir.join("rootfs.img"),
        kernel_cmdline: std::fs::read_to_string(root_dir.join("cmdline"))?
            .trim()
            .to_owned(),
        digest: digest.to_owned(),
    })
}

/// Runs an image script (cached in `cache_dir/<name>-<digest>`), with the files it copies
/// into the image (`companions`, name and text) beside it, reporting its steps.
async fn run_build(
    cache_dir: &Path,
    name: &str,
    script_text: &str,
    companions: &[(&str, &str)],
    digest: &str,
    progress: &impl Fn(&str, u64, u64),
) -> Result<PathBuf> {
    let dir = cache_dir.join(format!("{name}-{digest}"));
    if dir.join("done").exists() {
        progress("cached", 1, 1);
        return Ok(dir);
    }
    // Each digest has its own script directory: builds of other versions may share the cache.
    let script_dir = cache_dir.join(format!("build-{name}-{digest}"));
    std::fs::create_dir_all(&script_dir)?;
    let script = script_dir.join(format!("build-{name}.sh"));
    std::fs::write(&script, script_text)?;
    for (file_name, text) in companions {
        std::fs::write(script_dir.join(file_name), text)?;
    }
    // nimbus runs with umask 077 to keep its data dir private; the guest's files need the
    // usual modes (a world-readable /etc, a 1777 /tmp), so the build runs with umask 022.
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", r#"umask 022 && exec bash "$0" "$@""#])
        .arg(&script)
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await? {
            // "step N/T name"
            let mut words = line.split_whitespace().skip(1);
            let (Some(fraction), Some(step)) = (words.next(), words.next()) else {
                continue;
            };
            if let Some((done, total)) = fraction.split_once('/') {
                progress(step, done.parse().unwrap_or(0), total.parse().unwrap_or(1));
            }
        }
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(Error::Image(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    std::fs::write(dir.join("done"), digest)?;
    Ok(dir)
}

/// Builds (or finds in `cache_dir`) the `nimbus-minimal` image; `progress(step, done, total)`.
pub async fn build_minimal_image(
    cache_dir: &Path,
    progress: impl Fn(&str, u64, u64),
) -> Result<ImageArtifacts> {
    let digest = inputs_digest();
    let dir = run_build(
        cache_dir,
        "nimbus-minimal",
        BUILD_SCRIPT,
        &[HEARTBEAT_AGENT],
        &digest,
        &progress,
    )
    .await?;
    artifacts(&dir, &dir, &digest)
}

/// Builds (or finds) the `debian-12` image: a debootstrapped root filesystem with systemd and
/// cloud-init, booting with the `nimbus-minimal` kernel and initramfs.
pub async fn build_debian12_image(
    cache_dir: &Path,
    progress: impl Fn(&str, u64, u64),
) -> Result<ImageArtifacts> {
    let minimal_digest = inputs_digest();
    let minimal = run_build(
        cache_dir,
        "nimbus-minimal",
        BUILD_SCRIPT,
        &[HEARTBEAT_AGENT],
        &minimal_digest,
        &progress,
    )
    .await?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(DEBIAN_SCRIPT.as_bytes());
    hasher.update(HEARTBEAT_AGENT.1.as_bytes());
    let digest = hasher.finalize().to_hex()[..16].to_owned();
    let dir = run_build(
        cache_dir,
        "debian-12",
        DEBIAN_SCRIPT,
        &[HEARTBEAT_AGENT],
        &digest,
        &progress,
    )
    .await?;
    artifacts(&minimal, &dir, &digest)
}
