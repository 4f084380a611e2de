//! How each QEMU is confined when nimbus runs as root, so that a guest that takes its QEMU
//! over holds as little as possible:
//! - **its own user**: a uid (and gid of the same number) from the range `/etc/subuid` gives
//!   the `nimbus-qemu` user (`scripts/install-deps.sh` registers 65,536), no two live QEMUs
//!   sharing one, so it can neither signal nor trace another VM's QEMU. QEMU opens its files,
//!   sockets and boot disks as root, then drops to it (`-runas uid:gid`).
//! - **an empty network namespace** (`unshare --net`): its taps are descriptors and its
//!   sockets are paths, so it needs none, and it reaches no address, the host's loopback
//!   included.
//! - **seccomp** with QEMU's defaults plus no resource control (priorities, affinity) and
//!   no spawning (fork, exec): nimbus detaches QEMU itself (`vm.rs`), since QEMU 7.2
//!   installs its filter before `-daemonize` would fork. Privilege changes stay allowed:
//!   `-runas` drops to the VM's uid after the filter is in place.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::{Error, Result};

/// The user whose subordinate uids QEMUs run as.
const QEMU_USER: &str = "nimbus-qemu";

/// QEMU's `-sandbox` setting.
pub(crate) const SANDBOX: &str = "on,obsolete=deny,resourcecontrol=deny,spawn=deny";

/// Uids handed to launches whose QEMU may not run yet (a running one shows in `/proc`).
static RESERVED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A uid held for one launch; it goes back to the pool when dropped (by then the launched
/// QEMU runs as it, which keeps it taken).
pub(crate) struct QemuUid(u32);

impl QemuUid {
    /// The arguments that run QEMU as this uid, in a network namespace of its own: the
    /// command is `unshare`, then these.
    pub(crate) fn command(&self) -> Vec<String> {
        vec![
            "--net".into(),
            "--".into(),
            "qemu-system-x86_64".into(),
            "-runas".into(),
            format!("{0}:{0}", self.0),
        ]
    }
}

impl Drop for QemuUid {
    fn drop(&mut self) {
        RESERVED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

/// The pool `/etc/subuid` gives [`QEMU_USER`]: first uid and count.
fn pool() -> Option<(u32, u32)> {
    let subuid = std::fs::read_to_string("/etc/subuid").ok()?;
    subuid.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        (fields.next()? == QEMU_USER).then_some(())?;
        Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
    })
}

/// The real uids of the processes running on the host.
fn uids_in_use() -> BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .collect()
}

/// Takes a uid from the pool that no process runs as and no other launch holds.
pub(crate) fn reserve_uid() -> Result<QemuUid> {
    let (first, count) = pool().ok_or_else(|| {
        Error::Qemu(format!(
            "no uids for QEMU: /etc/subuid gives {QEMU_USER} none; run scripts/install-deps.sh"
        ))
    })?;
    let in_use = uids_in_use();
    let mut reserved = RESERVED.lock().unwrap_or_else(|p| p.into_inner());
    let uid = (first..first.saturating_add(count))
        .find(|uid| !in_use.contains(uid) && !reserved.contains(uid))
        .ok_or_else(|| Error::Qemu(format!("all {count} QEMU uids are in use")))?;
    reserved.insert(uid);
    Ok(QemuUid(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_uid_is_not_handed_out_twice_until_released() {
        let Ok(first) = reserve_uid() else {
            return; // No pool on this machine (install-deps.sh registers one).
        };
        let second = reserve_uid().expect("a second uid");
        assert_ne!(first.0, second.0);
        let taken = first.0;
        drop(first);
        let third = reserve_uid().expect("a third uid");
        assert_eq!(third.0, taken, "the lowest free uid comes back");
    }
}
