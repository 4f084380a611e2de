//! An in-memory [`Hypervisor`] for unit tests of the control plane: VMs are records that
//! "run" until killed or powered off. Slow steps yield to the runtime a few times, so a test
//! on a single-threaded runtime can land API calls in the middle of a launch.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::driver::{ExitCause, Hypervisor, VmHandle};
use crate::hibernation::SavedVm;
use crate::vm::{DiskSpec, NicSpec, VmSpec};
use crate::{Error, Result};

/// How many times a launch yields before the VM runs.
const LAUNCH_YIELDS: usize = 3;

#[derive(Default)]
struct FakeVm {
    exited: AtomicBool,
    /// Exited under the guest (killed), not by a guest power-off.
    lost: AtomicBool,
    paused: AtomicBool,
    cpu_usec: AtomicU64,
    /// When the guest last beat (ms since the epoch); 0: never.
    heartbeat_ms: std::sync::atomic::AtomicI64,
    disks: Mutex<BTreeSet<String>>,
    /// Every disk growth the guest was told of: (device, export).
    grown: Mutex<Vec<(String, String)>>,
    /// Its network cards: device index → MAC.
    nics: Mutex<BTreeMap<u32, String>>,
    vcpus: u32,
    memory_mib: u64,
    /// Started from a saved state rather than booted.
    resumed: bool,
    /// Its hibernations fail (see [`FakeHypervisor::fail_hibernations_of`]).
    failing_hibernation: AtomicBool,
}

impl FakeVm {
    fn nics(&self) -> MutexGuard<'_, BTreeMap<u32, String>> {
        self.nics.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn disks(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.disks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct FakeHypervisor {
    vms: Mutex<HashMap<String, Arc<FakeVm>>>,
    failing: Mutex<HashSet<String>>,
    launches: AtomicUsize,
    resumes: AtomicUsize,
    /// While true, launches wait (see [`FakeHypervisor::hold_launches`]).
    launches_held: tokio::sync::watch::Sender<bool>,
}

impl Default for FakeHypervisor {
    fn default() -> Self {
        FakeHypervisor {
            vms: Mutex::default(),
            failing: Mutex::default(),
            launches: AtomicUsize::default(),
            resumes: AtomicUsize::default(),
            launches_held: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl FakeHypervisor {
    fn vms(&self) -> MutexGuard<'_, HashMap<String, Arc<FakeVm>>> {
        self.vms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The MACs of the network cards of the instance's last VM, in device index order.
    pub fn nic_macs(&self, instance_id: &str) -> Vec<String> {
        self.vms()
            .get(instance_id)
            .map(|vm| vm.nics().values().cloned().collect())
            .unwrap_or_default()
    }

    /// The disk growths the instance's guest was told of, as (device, export).
    pub fn grown(&self, instance_id: &str) -> Vec<(String, String)> {
        self.vms()
            .get(instance_id)
            .map(|vm| vm.grown.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Whether the instance's VM is up.
    pub fn is_running(&self, instance_id: &str) -> bool {
        self.vms()
            .get(instance_id)
            .is_some_and(|vm| !vm.exited.load(Ordering::SeqCst))
    }

    /// How many VMs were launched, ever.
    pub fn launches(&self) -> usize {
        self.launches.load(Ordering::SeqCst)
    }

    /// How many VMs were started from a saved state, ever.
    pub fn resumes(&self) -> usize {
        self.resumes.load(Ordering::SeqCst)
    }

    /// Whether the instance's VM runs on from a saved state (it was not booted).
    pub fn was_resumed(&self, instance_id: &str) -> bool {
        self.vms().get(instance_id).is_some_and(|vm| vm.resumed)
    }

    /// The running VM of the instance fails to save its state (the guest runs on).
    pub fn fail_hibernations_of(&self, instance_id: &str) {
        if let Some(vm) = self.vms().get(instance_id) {
            vm.failing_hibernation.store(true, Ordering::SeqCst);
        }
    }

    /// The devices plugged into the instance's VM.
    pub fn disks(&self, instance_id: &str) -> Vec<String> {
        self.vms()
            .get(instance_id)
            .map(|vm| vm.disks().iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The guest shuts itself down.
    pub fn power_off(&self, instance_id: &str) {
        if let Some(vm) = self.vms().get(instance_id) {
            vm.exited.store(true, Ordering::SeqCst);
        }
    }

    /// The VM dies under its guest, as QEMU does on `kill -9`.
    pub fn crash(&self, instance_id: &str) {
        if let Some(vm) = self.vms().get(instance_id) {
            vm.lost.store(true, Ordering::SeqCst);
            vm.exited.store(true, Ordering::SeqCst);
        }
    }

    /// The guest's vCPUs stop (QMP `stop`), as a hung kernel makes no progress; or go on.
    pub fn set_paused(&self, instance_id: &str, paused: bool) {
        if let Some(vm) = self.vms().get(instance_id) {
            vm.paused.store(paused, Ordering::SeqCst);
        }
    }

    /// The guest writes a heartbeat at `at_ms` (ms since the epoch).
    pub fn beat(&self, instance_id: &str, at_ms: i64) {
        if let Some(vm) = self.vms().get(instance_id) {
            vm.heartbeat_ms.store(at_ms, Ordering::SeqCst);
        }
    }

    /// The VM uses `usec` more microseconds of CPU time.
    pub fn burn_cpu(&self, instance_id: &str, usec: u64) {
        if let Some(vm) = self.vms().get(instance_id) {
            vm.cpu_usec.fetch_add(usec, Ordering::SeqCst);
        }
    }

    /// Launches wait until [`FakeHypervisor::release_launches`]: a VM that takes long to boot.
    pub fn hold_launches(&self) {
        self.launches_held.send_replace(true);
    }

    pub fn release_launches(&self) {
        self.launches_held.send_replace(false);
    }

    /// Every later launch of this instance fails.
    pub fn fail_launches_of(&self, instance_id: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance_id.to_owned());
    }
}

impl FakeHypervisor {
    /// A VM for `spec` after a launch's yields, booted or `resumed`.
    async fn start(&self, spec: &VmSpec, resumed: bool) -> Result<Box<dyn VmHandle>> {
        for _ in 0..LAUNCH_YIELDS {
            tokio::task::yield_now().await;
        }
        // The sender lives as long as `self`, so waiting cannot fail.
        let _ = self.launches_held.subscribe().wait_for(|held| !held).await;
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&spec.instance_id);
        if failing {
            return Err(Error::Qemu(format!("{} failed to boot", spec.instance_id)));
        }
        let vm = Arc::new(FakeVm {
            nics: Mutex::new(
                spec.nics
                    .iter()
                    .map(|n| (n.device_index, n.mac.clone()))
                    .collect(),
            ),
            vcpus: spec.vcpus,
            memory_mib: spec.memory_mib,
            resumed,
            ..FakeVm::default()
        });
        vm.disks()
            .extend(spec.disks.iter().map(|d| d.device_name.clone()));
        if let Some(previous) = self.vms().insert(spec.instance_id.clone(), vm.clone()) {
            assert!(
                previous.exited.load(Ordering::SeqCst),
                "{} launched while its previous VM still runs",
                spec.instance_id
            );
        }
        let counter = if resumed {
            &self.resumes
        } else {
            &self.launches
        };
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeVmHandle(vm)))
    }
}

#[async_trait]
impl Hypervisor for FakeHypervisor {
    async fn launch(&self, spec: &VmSpec) -> Result<Box<dyn VmHandle>> {
        self.start(spec, false).await
    }

    async fn resume(
        &self,
        spec: &VmSpec,
        saved: &SavedVm,
        state: &File,
    ) -> Result<Box<dyn VmHandle>> {
        if let Some(mismatch) = saved.mismatch(spec) {
            return Err(Error::Incompatible(mismatch));
        }
        if state.metadata()?.len() != saved.bytes {
            return Err(Error::Qemu("the state file is not the one saved".into()));
        }
        self.start(spec, true).await
    }

    async fn adopt(&self, instance_id: &str, _run_dir: &Path) -> Result<Option<Box<dyn VmHandle>>> {
        Ok(self
            .vms()
            .get(instance_id)
            .filter(|vm| !vm.exited.load(Ordering::SeqCst))
            .map(|vm| Box::new(FakeVmHandle(vm.clone())) as Box<dyn VmHandle>))
    }

    fn release(&self, _instance_id: &str) {}
}

struct FakeVmHandle(Arc<FakeVm>);

impl FakeVmHandle {
    fn check_running(&self) -> Result<()> {
        if self.0.exited.load(Ordering::SeqCst) {
            return Err(Error::Qmp("the VM is not running".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl VmHandle for FakeVmHandle {
    /// No process: nothing but nimbus's own user may open a fake VM's disks.
    fn pid(&self) -> i32 {
        0
    }
    fn has_exited(&self) -> bool {
        self.0.exited.load(Ordering::SeqCst)
    }
    async fn exit_cause(&self) -> ExitCause {
        if self.0.lost.load(Ordering::SeqCst) {
            ExitCause::Lost
        } else {
            ExitCause::GuestShutdown
        }
    }
    async fn guest_running(&self) -> Option<bool> {
        Some(!self.0.exited.load(Ordering::SeqCst) && !self.0.paused.load(Ordering::SeqCst))
    }
    fn cpu_time_usec(&self) -> Option<u64> {
        Some(self.0.cpu_usec.load(Ordering::SeqCst))
    }
    fn last_heartbeat_ms(&self) -> Option<i64> {
        let last = self.0.heartbeat_ms.load(Ordering::SeqCst);
        (last > 0).then_some(last)
    }
    async fn powerdown(&self) -> Result<()> {
        self.check_running()?;
        tokio::task::yield_now().await;
        self.0.exited.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn reset(&self) -> Result<()> {
        self.check_running()
    }
    async fn kill(&self) -> Result<()> {
        tokio::task::yield_now().await;
        self.0.exited.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn hibernate(&self, mut state: &File) -> Result<SavedVm> {
        self.check_running()?;
        tokio::task::yield_now().await;
        if self.0.failing_hibernation.load(Ordering::SeqCst) {
            return Err(Error::Qemu("the state could not be saved".into()));
        }
        let disks = self.0.disks().clone();
        let nics: Vec<u32> = self.0.nics().keys().copied().collect();
        writeln!(state, "the memory of a fake VM with {disks:?} and {nics:?}")?;
        state.sync_all()?;
        self.0.exited.store(true, Ordering::SeqCst);
        Ok(SavedVm {
            bytes: state.metadata()?.len(),
            vcpus: self.0.vcpus,
            memory_mib: self.0.memory_mib,
            disk_ports: disks
                .into_iter()
                .enumerate()
                .map(|(port, d)| (d, port))
                .collect(),
            nics,
        })
    }
    async fn hotplug_disk(&self, disk: &DiskSpec) -> Result<()> {
        self.check_running()?;
        tokio::task::yield_now().await;
        self.0.disks().insert(disk.device_name.clone());
        Ok(())
    }
    async fn grow_disk(&self, disk: &DiskSpec, _new_size: u64) -> Result<()> {
        self.check_running()?;
        self.0
            .grown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((disk.device_name.clone(), disk.export.clone()));
        Ok(())
    }
    async fn unplug_disk(&self, device_name: &str) -> Result<()> {
        self.check_running()?;
        tokio::task::yield_now().await;
        self.0.disks().remove(device_name);
        Ok(())
    }
    async fn hotplug_nic(&self, nic: &NicSpec) -> Result<()> {
        self.check_running()?;
        tokio::task::yield_now().await;
        self.0.nics().insert(nic.device_index, nic.mac.clone());
        Ok(())
    }
    async fn unplug_nic(&self, device_index: u32) -> Result<()> {
        self.check_running()?;
        tokio::task::yield_now().await;
        self.0.nics().remove(&device_index);
        Ok(())
    }
}
