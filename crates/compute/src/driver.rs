//! The hypervisor as the control plane sees it: launch a VM, take back one that survived a
//! restart, and act on a running one. `control` depends only on these traits, so its rules
//! and reconciler are unit-tested on the in-memory fake (`compute::fake`, feature `fake`)
//! while nimbus itself runs [`Qemu`].

use std::fs::File;
use std::path::Path;

use async_trait::async_trait;

use crate::hibernation::SavedVm;
use crate::vm::{Accel, DiskSpec, NicSpec, Vm, VmSpec};
use crate::Result;

/// Starts and adopts VMs on this host.
#[async_trait]
pub trait Hypervisor: Send + Sync {
    /// Boots a VM; it runs when this returns.
    async fn launch(&self, spec: &VmSpec) -> Result<Box<dyn VmHandle>>;
    /// Starts a VM from the state a [`VmHandle::hibernate`] saved into `state`: the guest
    /// goes on where it was. A spec that is not the saved machine (other disks, cards or
    /// memory) is refused with [`crate::Error::Incompatible`].
    async fn resume(
        &self,
        spec: &VmSpec,
        saved: &SavedVm,
        state: &File,
    ) -> Result<Box<dyn VmHandle>>;
    /// The VM of `instance_id` still running from before a restart, if any.
    async fn adopt(&self, instance_id: &str, run_dir: &Path) -> Result<Option<Box<dyn VmHandle>>>;
    /// Frees what the host kept for a VM that is gone for good.
    fn release(&self, instance_id: &str);
}

/// Why a VM that has exited went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCause {
    /// The guest powered itself off.
    GuestShutdown,
    /// The VM died under the guest (QEMU killed or crashed): a host failure.
    Lost,
}

/// One running VM.
#[async_trait]
pub trait VmHandle: Send + Sync {
    /// The process running the VM (its QEMU), which alone may open the VM's disks.
    fn pid(&self) -> i32;
    fn has_exited(&self) -> bool;
    /// Why the VM went away; asked once it has exited.
    async fn exit_cause(&self) -> ExitCause;
    /// Whether the guest's vCPUs run (not paused, not stopped on an error); `None` when the
    /// VM cannot be asked right now (another command holds it).
    async fn guest_running(&self) -> Option<bool>;
    /// CPU time the VM has used since it started, in microseconds.
    fn cpu_time_usec(&self) -> Option<u64>;
    /// When the guest last wrote to its heartbeat port (ms since the epoch), if ever.
    fn last_heartbeat_ms(&self) -> Option<i64>;
    /// ACPI power button: the guest shuts down cleanly (or ignores it).
    async fn powerdown(&self) -> Result<()>;
    async fn reset(&self) -> Result<()>;
    /// Stops the VM at once and waits for it to be gone.
    async fn kill(&self) -> Result<()>;
    /// Saves the guest's memory and device state into `state` (open for writing, empty) and
    /// synced, then the VM is gone. On failure the guest runs on.
    async fn hibernate(&self, state: &File) -> Result<SavedVm>;
    async fn hotplug_disk(&self, disk: &DiskSpec) -> Result<()>;
    /// Tells the guest that the volume behind `disk` is now `new_size` bytes.
    async fn grow_disk(&self, disk: &DiskSpec, new_size: u64) -> Result<()>;
    async fn unplug_disk(&self, device_name: &str) -> Result<()>;
    /// Plugs a network card at its device index; one already there counts as plugged.
    async fn hotplug_nic(&self, nic: &NicSpec) -> Result<()>;
    /// Unplugs the card at a device index once the guest released it; none there is fine.
    async fn unplug_nic(&self, device_index: u32) -> Result<()>;
}

/// QEMU processes on this host (see `vm.rs`), on the accelerator probed at the first launch.
#[derive(Default)]
pub struct Qemu {
    accel: tokio::sync::OnceCell<Accel>,
}

impl Qemu {
    async fn accel(&self, spec: &VmSpec) -> Accel {
        *self
            .accel
            .get_or_init(|| crate::probe_accel(&spec.kernel, &spec.initrd))
            .await
    }
}

#[async_trait]
impl Hypervisor for Qemu {
    async fn launch(&self, spec: &VmSpec) -> Result<Box<dyn VmHandle>> {
        let accel = self.accel(spec).await;
        Ok(Box::new(crate::vm::launch(spec, accel).await?))
    }

    async fn resume(
        &self,
        spec: &VmSpec,
        saved: &SavedVm,
        state: &File,
    ) -> Result<Box<dyn VmHandle>> {
        let accel = self.accel(spec).await;
        Ok(Box::new(
            crate::hibernation::resume(spec, accel, saved, state).await?,
        ))
    }

    async fn adopt(&self, _instance_id: &str, run_dir: &Path) -> Result<Option<Box<dyn VmHandle>>> {
        Ok(crate::vm::adopt(run_dir)
            .await?
            .map(|vm| Box::new(vm) as Box<dyn VmHandle>))
    }

    fn release(&self, instance_id: &str) {
        crate::cgroup::release_vm(instance_id);
    }
}

#[async_trait]
impl VmHandle for Vm {
    fn pid(&self) -> i32 {
        Vm::pid(self)
    }
    fn has_exited(&self) -> bool {
        Vm::has_exited(self)
    }
    async fn exit_cause(&self) -> ExitCause {
        Vm::exit_cause(self).await
    }
    async fn guest_running(&self) -> Option<bool> {
        Vm::guest_running(self).await
    }
    fn cpu_time_usec(&self) -> Option<u64> {
        Vm::cpu_time_usec(self)
    }
    fn last_heartbeat_ms(&self) -> Option<i64> {
        Vm::last_heartbeat_ms(self)
    }
    async fn powerdown(&self) -> Result<()> {
        Vm::powerdown(self).await
    }
    async fn reset(&self) -> Result<()> {
        Vm::reset(self).await
    }
    async fn kill(&self) -> Result<()> {
        Vm::kill(self).await
    }
    async fn hibernate(&self, state: &File) -> Result<SavedVm> {
        Vm::hibernate(self, state).await
    }
    async fn hotplug_disk(&self, disk: &DiskSpec) -> Result<()> {
        Vm::hotplug_disk(self, disk).await
    }
    async fn grow_disk(&self, disk: &DiskSpec, new_size: u64) -> Result<()> {
        Vm::grow_disk(self, disk, new_size).await
    }
    async fn unplug_disk(&self, device_name: &str) -> Result<()> {
        Vm::unplug_disk(self, device_name).await
    }
    async fn hotplug_nic(&self, nic: &NicSpec) -> Result<()> {
        Vm::hotplug_nic(self, nic).await
    }
    async fn unplug_nic(&self, device_index: u32) -> Result<()> {
        Vm::unplug_nic(self, device_index).await
    }
}
