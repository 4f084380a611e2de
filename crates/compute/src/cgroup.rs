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
        write(&cpu_dir.join("cgroup.procs"), &pid.to_string())?;
        // cpuacct is mounted apart from cpu on some hosts; it counts the CPU time read by
        // `cpu_usage_usec`. Last, so that a host without it still gets the limits above.
        let accounting_dir = v1_dir("cpuacct", instance_id);
        std::fs::create_dir_all(&accounting_dir)?;
        write(&accounting_dir.join("cgroup.procs"), &pid.to_string())
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
        v1_dir("cpuacct", instance_id),
    ] {
        let _ = std::fs::remove_dir(dir);
    }
}

/// CPU time the instance's cgroup has used, in microseconds: `usage_usec` of cgroup v2's
/// `cpu.stat`, or cgroup v1's `cpuacct.usage` (nanoseconds).
pub fn cpu_usage_usec(instance_id: &str) -> Option<u64> {
    if is_v2() {
        let stat = std::fs::read_to_string(v2_dir(instance_id).join("cpu.stat")).ok()?;
        parse_cpu_stat_usage(&stat)
    } else {
        let usage = std::fs::read_to_string(v1_dir("cpuacct", instance_id).join("cpuacct.usage"));
        usage.ok()?.trim().parse::<u64>().ok().map(|ns| ns / 1000)
    }
}

fn parse_cpu_stat_usage(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("usage_usec "))
        .and_then(|value| value.trim().parse().ok())
}

/// CPU time of a process and all its threads (user and system), in microseconds, from
/// `/proc/PID/stat`: for a VM that runs without a cgroup.
pub fn process_cpu_usec(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces and ends at the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = rustix::param::clock_ticks_per_second();
    Some(ticks * 1_000_000 / per_second.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_covers_guest_and_overhead() {
        assert_eq!(memory_limit_bytes(512), (512 + 256 + 256) * 1024 * 1024);
    }

    #[test]
    fn cpu_stat_usage_is_read_from_its_line() {
        let stat = "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n";
        assert_eq!(parse_cpu_stat_usage(stat), Some(1_234_567));
        assert_eq!(parse_cpu_stat_usage("user_usec 5\n"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let pid = std::process::id() as i32;
        let busy_until = std::time::Instant::now() + std::time::Duration::from_millis(30);
        while std::time::Instant::now() < busy_until {}
        assert!(process_cpu_usec(pid).is_some_and(|usec| usec > 0));
    }
}
