//! The default image, `nimbus-minimal`, built on this machine from Debian packages by
//! `image/build-minimal.sh` and cached by the digest of its inputs.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{Error, Result};

const BUILD_SCRIPT: &str = include_str!("../image/build-minimal.sh");

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

/// Digest of everything the image is made of: the script and the packaged files it copies.
fn inputs_digest() -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(BUILD_SCRIPT.as_bytes());
    let mut inputs: Vec<PathBuf> = vec!["/usr/bin/busybox".into(), "/usr/sbin/dropbear".into()];
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

fn artifacts(dir: &Path, digest: &str) -> Result<ImageArtifacts> {
    Ok(ImageArtifacts {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
        root_fs: dir.join("rootfs.img"),
        kernel_cmdline: std::fs::read_to_string(dir.join("cmdline"))?
            .trim()
            .to_owned(),
        digest: digest.to_owned(),
    })
}

/// Builds (or finds in `cache_dir`) the `nimbus-minimal` image; `progress(step, done, total)`.
pub async fn build_minimal_image(
    cache_dir: &Path,
    progress: impl Fn(&str, u64, u64),
) -> Result<ImageArtifacts> {
    let digest = inputs_digest();
    let dir = cache_dir.join(format!("nimbus-minimal-{digest}"));
    if dir.join("done").exists() {
        progress("cached", 4, 4);
        return artifacts(&dir, &digest);
    }
    std::fs::create_dir_all(cache_dir)?;
    let script = cache_dir.join("build-minimal.sh");
    std::fs::write(&script, BUILD_SCRIPT)?;
    let mut child = tokio::process::Command::new("bash")
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
            let (Some(fraction), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            if let Some((done, total)) = fraction.split_once('/') {
                progress(name, done.parse().unwrap_or(0), total.parse().unwrap_or(1));
            }
        }
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(Error::Image(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    std::fs::write(dir.join("done"), &digest)?;
    artifacts(&dir, &digest)
}
