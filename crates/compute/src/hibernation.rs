//! Hibernation: a VM's memory and device state saved to a file, and a new QEMU that takes it
//! back and goes on where the guest was (QEMU migration to and from a file).
//!
//! QEMU runs as its own user and cannot open anything in the data dir, so the caller opens
//! the state file and QEMU gets its descriptor over QMP (`getfd`): the save is `stop`, then
//! `migrate` to `fd:`, until `query-migrate` says `completed`; the file is then synced and
//! QEMU quits. The resume starts QEMU on the same machine, the same disks on the same root
//! ports and the same network cards with `-incoming defer`, and runs `migrate-incoming`
//! from `fd:` before `cont`. What the machine must match is in [`SavedVm`], which the
//! caller keeps with the file: a resume into another machine is refused
//! ([`Error::Incompatible`]) before QEMU starts.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::qmp::Qmp;
use crate::vm::{Accel, Vm, VmSpec};
use crate::{Error, Result};

/// The name the state file's descriptor has inside QEMU.
const STATE_FD: &str = "hibernation";

/// How often a migration's progress is asked.
const POLL: Duration = Duration::from_millis(20);

/// How long a save or a resume may take before it counts as failed (a 16 GiB guest written
/// at 50 MiB/s takes about 6 minutes).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The bandwidth a migration may use: QEMU's default (128 MiB/s) is for live migration over a
/// network while the guest runs; a stopped guest written to a local file has no reason to wait.
const MAX_BANDWIDTH: u64 = 8 << 30;

/// What a resume needs to match: the machine a state was saved from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedVm {
    /// The bytes of the state file.
    pub bytes: u64,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Each disk's root port, by device name.
    pub disk_ports: BTreeMap<String, usize>,
    /// The device indexes of the network cards.
    pub nics: Vec<u32>,
}

impl SavedVm {
    /// Why `spec` is not the machine this state was saved from, if it is not.
    pub(crate) fn mismatch(&self, spec: &VmSpec) -> Option<String> {
        if (spec.vcpus, spec.memory_mib) != (self.vcpus, self.memory_mib) {
            return Some(format!(
                "saved with {} vCPUs and {} MiB, resumed with {} and {}",
                self.vcpus, self.memory_mib, spec.vcpus, spec.memory_mib
            ));
        }
        let mut disks: Vec<&str> = spec.disks.iter().map(|d| d.device_name.as_str()).collect();
        disks.sort_unstable();
        if !disks
            .iter()
            .copied()
            .eq(self.disk_ports.keys().map(String::as_str))
        {
            return Some(format!(
                "saved with the disks {:?}, resumed with {disks:?}",
                self.disk_ports.keys().collect::<Vec<_>>()
            ));
        }
        let nics: Vec<u32> = spec.nics.iter().map(|n| n.device_index).collect();
        if nics != self.nics {
            return Some(format!(
                "saved with the network cards {:?}, resumed with {nics:?}",
                self.nics
            ));
        }
        None
    }
}

impl Vm {
    /// Saves the guest's memory and device state into `state` (opened for writing, empty),
    /// syncs it and quits QEMU. A save that fails lets the guest run on.
    pub async fn hibernate(&self, state: &File) -> Result<SavedVm> {
        let machine = {
            let mut qmp = self.qmp.lock().await;
            let machine = machine(&mut qmp).await;
            let saved = match machine {
                Ok(machine) => save(&mut qmp, state).await.map(|()| machine),
                Err(error) => Err(error),
            };
            if saved.is_err() {
                let _ = qmp.execute("cont", json!({})).await;
            }
            saved?
        };
        state.sync_all()?;
        let (vcpus, memory_mib, nics) = machine;
        let saved = SavedVm {
            bytes: state.metadata()?.len(),
            vcpus,
            memory_mib,
            disk_ports: self.ports.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            nics,
        };
        self.kill().await?;
        Ok(saved)
    }
}

/// The VM's vCPUs, memory (MiB) and network cards (device indexes), as QEMU reports them.
async fn machine(qmp: &mut Qmp) -> Result<(u32, u64, Vec<u32>)> {
    let cpus = qmp.execute("query-cpus-fast", json!({})).await?;
    let vcpus = cpus.as_array().map_or(0, Vec::len) as u32;
    let memory = qmp.execute("query-memory-size-summary", json!({})).await?;
    let memory_mib = memory["base-memory"].as_u64().unwrap_or(0) >> 20;
    let devices = qmp
        .execute("qom-list", json!({ "path": "/machine/peripheral" }))
        .await?;
    let mut nics: Vec<u32> = (devices.as_array().into_iter().flatten())
        .filter_map(|d| d["name"].as_str()?.strip_prefix("nic")?.parse().ok())
        .collect();
    nics.sort_unstable();
    Ok((vcpus, memory_mib, nics))
}

/// Stops the guest and migrates its state into `state`.
async fn save(qmp: &mut Qmp, state: &File) -> Result<()> {
    // A save cut short by a restart of nimbus may still be writing to the previous file.
    let previous = qmp.execute("query-migrate", json!({})).await?;
    if !matches!(
        previous["status"].as_str(),
        None | Some("none" | "completed" | "failed" | "cancelled")
    ) {
        qmp.execute("migrate_cancel", json!({})).await?;
        wait_migration(qmp, true).await.ok();
    }
    qmp.execute("stop", json!({})).await?;
    qmp.execute(
        "migrate-set-parameters",
        json!({ "max-bandwidth": MAX_BANDWIDTH }),
    )
    .await?;
    qmp.execute_passing_fd("getfd", json!({ "fdname": STATE_FD }), state.as_fd())
        .await?;
    qmp.execute("migrate", json!({ "uri": format!("fd:{STATE_FD}") }))
        .await?;
    wait_migration(qmp, false).await
}

/// Waits until the outgoing migration is over: `completed` is success (with `cancelling`,
/// any end is).
async fn wait_migration(qmp: &mut Qmp, cancelling: bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + MIGRATION_TIMEOUT;
    loop {
        let info = qmp.execute("query-migrate", json!({})).await?;
        match info["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") if cancelling => return Ok(()),
            Some(status @ ("failed" | "cancelled")) => {
                return Err(Error::Qemu(format!(
                    "saving the VM's state {status}: {}",
                    info["error-desc"].as_str().unwrap_or("no reason given")
                )))
            }
            _ if tokio::time::Instant::now() > deadline => {
                return Err(Error::Qemu("saving the VM's state took too long".into()))
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Starts a VM for `spec` from the state `saved` describes, read from `state`; it runs when
/// this returns. A spec that is not the saved machine is refused before QEMU starts.
pub async fn resume(spec: &VmSpec, accel: Accel, saved: &SavedVm, state: &File) -> Result<Vm> {
    if let Some(mismatch) = saved.mismatch(spec) {
        return Err(Error::Incompatible(mismatch));
    }
    let vm = crate::vm::start(spec, accel, &saved.disk_ports, true).await?;
    let resumed = match crate::vm::plug_nics(&vm, &spec.nics).await {
        Ok(()) => take_state(&vm, state).await,
        Err(error) => Err(error),
    };
    if let Err(error) = resumed {
        let _ = vm.kill().await;
        return Err(error);
    }
    Ok(vm)
}

/// Reads the guest's state into the waiting QEMU and lets the guest go on.
async fn take_state(vm: &Vm, state: &File) -> Result<()> {
    let mut qmp = vm.qmp.lock().await;
    qmp.execute_passing_fd("getfd", json!({ "fdname": STATE_FD }), state.as_fd())
        .await?;
    qmp.execute(
        "migrate-incoming",
        json!({ "uri": format!("fd:{STATE_FD}") }),
    )
    .await?;
    // QEMU leaves `inmigrate` once the state is in (paused, as the guest was saved); a
    // state it cannot take makes it exit, and the next question finds the socket closed.
    let deadline = tokio::time::Instant::now() + MIGRATION_TIMEOUT;
    loop {
        let status = qmp.execute("query-status", json!({})).await?;
        match status["status"].as_str() {
            Some("inmigrate") if tokio::time::Instant::now() > deadline => {
                return Err(Error::Qemu("resuming the VM's state took too long".into()))
            }
            Some("inmigrate") => tokio::time::sleep(POLL).await,
            Some("paused" | "running") => break,
            other => {
                return Err(Error::Qemu(format!(
                    "the VM did not take its saved state (it is {})",
                    other.unwrap_or("unknown")
                )))
            }
        }
    }
    qmp.execute("cont", json!({})).await.map(|_| ())
}
