//! Per-VM resource limits in a cgroup named after the instance: CPU time for the instance
//! type's vCPUs and memory for its RAM plus QEMU's own overhead. cgroup v2 and v1 are both
//! handled; where neither is writable the VM runs unlimited and a line is logged.

use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";
const GROUP: &str = "nimbus";
const CPU_PERIOD_US: u64 = 100_000;

/// QEMU needs memory beyond the guest's: device emulation and, under TCG, translated code.
fn memory_limit_bytes(memory_mib: u64) -> u64 {
    (memory_mib + memory_mib / 2 + 256) * 1024 * 1024
}

fn write(path: &Path, value: &str) -> std::io::Result<()> {
    std::fs::write(path, value)
}

fn v2_dir(instance_id: &str) -> PathBuf {
    Path::new(ROOT).join(GROUP).join(instance_id)
}

fn v1_dir(controller: &str, instance_id: &str) -> PathBuf {
    Path::new(ROOT)
        .join(controller)
        .join(GROUP)
        .join(instance_id)
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

fn apply(instance_id: &str, pid: i32, vcpus: u32, memory_mib: u64) -> std::io::Result<()> {
    let memory = memory_limit_bytes(memory_mib).to_string();
    let quota = (u64::from(vcpus) * CPU_PERIOD_US).to_string();
    if is_v2() {
        let parent = Path::new(ROOT).join(GROUP);
        std::fs::create_dir_all(&parent)?;
        write(
            &Path::new(ROOT).join("cgroup.subtree_control"),
            "+cpu +memory",
        )?;
        write(&parent.join("cgroup.subtree_control"), "+cpu +memory")?;
        let dir = v2_dir(instance_id);
        std::fs::create_dir_all(&dir)?;
        write(&dir.join("memory.max"), &memory)?;
        write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
        write(&dir.join("cgroup.procs"), &pid.to_string())
    } else {
        let memory_dir = v1_dir("memory", instance_id);
        std::fs::create_dir_all(&memory_dir)?;
        write(&memory_dir.join("memory.limit_in_bytes"), &memory)?;
        write(&memory_dir.join("cgroup.procs"), &pid.to_string())?;
        let cpu_dir = v1_dir("cpu", instance_id);
        std::fs::create_dir_all(&cpu_dir)?;
        write(
            &cpu_dir.join("cpu.cfs_period_us"),
            &CPU_PERIOD_US.to_string(),
        )?;
        write(&cpu_dir.join("cpu.cfs_quota_us"), &quota)?;
        write(&cpu_dir.join("cgroup.procs"), &pid.to_string())
    }
}

/// Puts the VM's process under its instance type's limits (best effort).
pub fn limit_vm(instance_id: &str, pid: i32, vcpus: u32, memory_mib: u64) {
    if let Err(error) = apply(instance_id, pid, vcpus, memory_mib) {
        tracing::info!(instance = instance_id, %error, "cgroup limits not applied; the VM runs unlimited");
    }
}

/// Removes the instance's cgroups once its VM is gone.
pub fn release_vm(instance_id: &str) {
    for dir in [
        v2_dir(instance_id),
        v1_dir("memory", instance_id),
        v1_dir("cpu", instance_id),
    ] {
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_covers_guest_and_overhead() {
        assert_eq!(memory_limit_bytes(512), (512 + 256 + 256) * 1024 * 1024);
    }
}
