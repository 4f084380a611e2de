//! Drives VMs toward the recorded instance states (see `instances.rs`): launch `pending`
//! instances whose volumes are ready, power off `stopping` ones (forced after a grace
//! period), kill `shutting-down` ones and release their volumes, hot-plug `attaching` and
//! unplug `detaching` volumes, reset on reboot requests, and notice guests that powered
//! themselves off.
//!
//! Each pass starts one step per instance as its own task, and an instance with a step still
//! in flight is skipped, so a VM that takes long to boot holds up no other instance. No lock
//! is held across a hypervisor call: the VM table is locked only to look up or swap entries.
//!
//! A step works from the record it read, which may be stale by the time a slow hypervisor
//! call returns. Its outcome is therefore *fenced*: it is written only if the instance's
//! `generation` (bumped by every request that changes what the user wants) is still the one
//! the step read. Otherwise the outcome is dropped and the next pass works toward the newer
//! request from what it observes (a VM launched for an instance since terminated is killed).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::catalog::find_instance_type;
use crate::drivers::VmDisks;
use crate::images::Image;
use crate::instances::{Instance, InstanceState, ShutdownBehavior};
use crate::kinds::Tables;
use crate::volumes::{AttachmentState, Volume, VolumeState};
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::vpc::network_interfaces::NetworkInterface;
use crate::{Control, Error, Result, Txn};

/// Where VMs' disk sockets live when nimbus runs as root (see `Control::disk_socket`).
const VM_DISK_SOCKETS: &str = "/run/nimbus/disks";

/// How long a guest gets to power off after ACPI before it is stopped by force.
const POWERDOWN_GRACE: Duration = Duration::from_secs(60);

/// A VM nimbus started (or re-adopted), with what the reconciler knows about it.
pub struct RunningVm {
    pub(crate) vm: Box<dyn compute::VmHandle>,
    /// The VM's own disk socket: held (never read) so that it is served exactly as long as
    /// this VM is known.
    _disk_socket: Box<dyn VmDisks>,
    powerdown_sent: Mutex<Option<Instant>>,
    /// The disks plugged into the VM: device name → the volume behind it.
    plugged: Mutex<HashMap<String, String>>,
}

impl RunningVm {
    /// A VM running `instance`'s disks (those of its record), served on `disk_socket`.
    pub(crate) fn new(
        vm: Box<dyn compute::VmHandle>,
        disk_socket: Box<dyn VmDisks>,
        instance: &Instance,
    ) -> RunningVm {
        disk_socket.admit(vm.pid());
        let plugged = instance
            .disks
            .iter()
            .map(|d| (d.device_name.clone(), d.volume_id.clone()))
            .collect();
        RunningVm {
            vm,
            _disk_socket: disk_socket,
            powerdown_sent: Mutex::new(None),
            plugged: Mutex::new(plugged),
        }
    }

    fn plugged(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.plugged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When ACPI power-off was first asked for, asking now if it was not.
    async fn powerdown_once(&self) -> Result<Instant> {
        let sent = *self
            .powerdown_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(sent) = sent {
            return Ok(sent);
        }
        self.vm.powerdown().await.map_err(compute_error)?;
        let now = Instant::now();
        *self
            .powerdown_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(now);
        Ok(now)
    }
}

/// The VMs of this host by instance ID, and the instances with a step in flight. Not
/// persisted: rebuilt by adoption after a restart.
#[derive(Default)]
pub struct VmTable {
    running: Mutex<HashMap<String, Arc<RunningVm>>>,
    busy: Mutex<HashSet<String>>,
}

impl VmTable {
    fn running(&self) -> MutexGuard<'_, HashMap<String, Arc<RunningVm>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn busy(&self) -> MutexGuard<'_, HashSet<String>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn running_count(&self) -> usize {
        self.running().len()
    }

    pub(crate) fn get(&self, instance_id: &str) -> Option<Arc<RunningVm>> {
        self.running().get(instance_id).cloned()
    }

    pub(crate) fn insert(&self, instance_id: &str, vm: RunningVm) -> Arc<RunningVm> {
        let vm = Arc::new(vm);
        self.running().insert(instance_id.to_owned(), vm.clone());
        vm
    }

    pub(crate) fn remove(&self, instance_id: &str) {
        self.running().remove(instance_id);
    }
}

/// The right to run the one step of an instance; given back when dropped.
struct StepClaim {
    control: Arc<Control>,
    instance_id: String,
}

impl StepClaim {
    fn take(control: &Arc<Control>, instance_id: &str) -> Option<StepClaim> {
        control
            .vms
            .busy()
            .insert(instance_id.to_owned())
            .then(|| StepClaim {
                control: control.clone(),
                instance_id: instance_id.to_owned(),
            })
    }
}

impl Drop for StepClaim {
    fn drop(&mut self) {
        self.control.vms.busy().remove(&self.instance_id);
    }
}

impl Control {
    pub(crate) fn instance_run_dir(&self, instance_id: &str) -> PathBuf {
        self.config().data_dir.join("instances").join(instance_id)
    }

    /// Where an instance's VM reaches its disks: its own NBD socket (see `serve_disks`). As
    /// root, QEMU runs as its own user and cannot enter the data dir, so the socket lives in
    /// a directory it may only pass through (as may its parent, `/run/nimbus`).
    fn disk_socket(&self, instance_id: &str) -> PathBuf {
        if rustix::process::geteuid().is_root() {
            PathBuf::from(VM_DISK_SOCKETS).join(format!("{instance_id}.sock"))
        } else {
            self.instance_run_dir(instance_id).join("nbd.sock")
        }
    }

    /// How a VM reaches a volume: the export named by the volume ID on the VM's socket.
    fn disk_spec(
        &self,
        instance_id: &str,
        device_name: &str,
        volume_id: &str,
    ) -> compute::DiskSpec {
        compute::DiskSpec {
            device_name: device_name.to_owned(),
            nbd_socket: self.disk_socket(instance_id),
            export: volume_id.to_owned(),
        }
    }

    /// Serves an instance's VM its disks: on its socket it may open the volumes attached
    /// to it (attaching, attached or detaching), as the records say at each connection.
    pub(crate) fn serve_disks(self: &Arc<Self>, instance_id: &str) -> Result<Box<dyn VmDisks>> {
        let control = Arc::downgrade(self);
        let instance = instance_id.to_owned();
        let may_open: blockstore::ExportFilter = Arc::new(move |volume_id: &str| {
            control.upgrade().is_some_and(|control| {
                control
                    .read()
                    .volumes()
                    .get(volume_id)
                    .is_some_and(|volume| {
                        volume
                            .attachments
                            .iter()
                            .any(|attachment| attachment.instance_id == instance)
                    })
            })
        });
        let socket = self.disk_socket(instance_id);
        if let Some(dir) = socket
            .parent()
            .filter(|_| rustix::process::geteuid().is_root())
        {
            for passable in dir.ancestors().take(2) {
                std::fs::create_dir_all(passable)
                    .and_then(|()| {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(passable, std::fs::Permissions::from_mode(0o711))
                    })
                    .map_err(|e| {
                        Error::Internal(format!("cannot create {}: {e}", passable.display()))
                    })?;
            }
        }
        self.drivers
            .blocks
            .serve_vm(&socket, may_open)
            .map_err(|e| Error::Internal(format!("cannot serve the disks of {instance_id}: {e}")))
    }

    /// The serial console log of an instance (empty before its first boot).
    pub fn console_output(&self, instance_id: &str) -> Result<String> {
        crate::describe::existing::<Instance>(&self.read(), instance_id)?;
        Ok(compute::console_output(&self.instance_run_dir(instance_id)))
    }

    /// Shows running guests that an attached volume grew (a stopped instance sees the new
    /// size when it boots). A guest that cannot be told keeps the old size until it reboots.
    pub(crate) async fn grow_attached_disks(&self, volume_id: &str, new_size: u64) {
        // The attachments as they are now, not as they were when the resize began: the
        // volume may have been detached meanwhile, and another plugged at its device.
        let attachments = match self.read().volumes().get(volume_id) {
            Some(volume) => volume.attachments.clone(),
            None => return,
        };
        for attachment in &attachments {
            let Some(running) = self.vms.get(&attachment.instance_id) else {
                continue;
            };
            let plugged_here = running
                .plugged()
                .get(&attachment.device)
                .is_some_and(|plugged| plugged == volume_id);
            if !plugged_here {
                continue;
            }
            let disk = self.disk_spec(&attachment.instance_id, &attachment.device, volume_id);
            let grown = running.vm.grow_disk(&disk, new_size).await;
            if let Err(error) = grown {
                tracing::warn!(volume = volume_id, instance = attachment.instance_id, %error, "the guest was not told that its volume grew");
            }
        }
    }

    /// Starts a step for every live instance that has none in flight, and forgets instances
    /// terminated long ago. The steps run on their own; the handles let a caller wait.
    pub fn start_instance_steps(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        if let Err(error) = self.mutate(|txn| {
            self.purge_terminated(txn);
            Ok(())
        }) {
            tracing::warn!(%error, "terminated instances not purged; will retry");
        }
        let instances: Vec<Instance> = self
            .read()
            .instances()
            .values()
            .filter(|i| i.state != InstanceState::Terminated)
            .cloned()
            .collect();
        instances
            .into_iter()
            .filter_map(|instance| {
                let claim = StepClaim::take(self, &instance.instance_id)?;
                Some(tokio::spawn(async move {
                    let id = instance.instance_id.clone();
                    if let Err(error) = claim.control.reconcile_instance(instance).await {
                        tracing::warn!(instance = id, %error, "instance step failed; will retry");
                    }
                    drop(claim);
                }))
            })
            .collect()
    }

    async fn reconcile_instance(self: &Arc<Self>, instance: Instance) -> Result<()> {
        let id = instance.instance_id.as_str();
        let vm = match self.vms.get(id) {
            Some(vm) => Some(vm),
            None => self.adopt(&instance).await?,
        };
        match instance.state {
            InstanceState::Pending => {
                match vm {
                    None => {
                        if !self.volumes_ready(&instance) {
                            return Ok(());
                        }
                        let running = self.boot_or_resume(&instance).await?;
                        self.vms.insert(id, running);
                        self.statuses.launched(id);
                    }
                    // Adopted after a restart in the middle of a resume: done again.
                    Some(running) if self.resume_cut_short(&instance, &running).await => {
                        running.vm.kill().await.map_err(compute_error)?;
                        self.vms.remove(id);
                        return Ok(());
                    }
                    // Adopted after a restart: the VM already runs.
                    Some(_) => {}
                }
                self.settle_launch(&instance)
            }
            InstanceState::Running => {
                if instance.recovery_requested {
                    return self.recover(&instance, vm).await;
                }
                let running = match vm {
                    Some(vm) if !vm.vm.has_exited() => vm,
                    // QEMU is gone: the guest shut itself down, or it died under the guest.
                    gone => return self.vm_gone(&instance, gone).await,
                };
                if instance.reboot_requested {
                    running.vm.reset().await.map_err(compute_error)?;
                    self.settle_instance(&instance, |i| i.reboot_requested = false)?;
                }
                self.sync_hotplug(&instance, &running).await?;
                self.sync_nics(&instance, &running).await
            }
            InstanceState::Stopping => {
                if let Some(running) = vm {
                    if instance.hibernate_requested && !running.vm.has_exited() {
                        return self.hibernate(&instance, &running).await;
                    }
                    if !self.power_off(&instance, &running).await? {
                        return Ok(());
                    }
                }
                // A state saved by a hibernation whose outcome was dropped is of no use.
                self.discard_saved_state(id);
                self.settle_detached_while_stopped(&instance)?;
                self.settle_nics_while_stopped(&instance)?;
                self.settle_instance(&instance, |i| {
                    i.state = InstanceState::Stopped;
                    i.force_stop = false;
                    i.reboot_requested = false;
                })
            }
            InstanceState::ShuttingDown => {
                if let Some(running) = vm {
                    running.vm.kill().await.map_err(compute_error)?;
                    self.vms.remove(id);
                }
                self.hypervisor().release(id);
                self.statuses.forget(id);
                let _ = std::fs::remove_dir_all(self.instance_run_dir(id));
                self.discard_saved_state(id);
                self.mutate(|txn| finish_termination(txn, &instance))?;
                self.wake_reconciler();
                Ok(())
            }
            InstanceState::Stopped => {
                // A VM that runs for a stopped instance is stopped, whatever left it up.
                if let Some(running) = vm {
                    running.vm.kill().await.map_err(compute_error)?;
                    self.vms.remove(id);
                }
                self.settle_detached_while_stopped(&instance)?;
                self.settle_nics_while_stopped(&instance)
            }
            InstanceState::Terminated => Ok(()),
        }
    }

    /// The VM of an instance still running from before a restart, taken back into the table.
    async fn adopt(self: &Arc<Self>, instance: &Instance) -> Result<Option<Arc<RunningVm>>> {
        let id = instance.instance_id.as_str();
        let adopted = self
            .hypervisor()
            .adopt(id, &self.instance_run_dir(id))
            .await
            .map_err(compute_error)?;
        let Some(vm) = adopted else {
            return Ok(None);
        };
        // Its NBD client is reconnecting: the socket is bound again for it.
        let disks = self.serve_disks(id)?;
        Ok(Some(
            self.vms.insert(id, RunningVm::new(vm, disks, instance)),
        ))
    }

    /// Asks the guest to power off, forcing it with `force_stop` or after the grace period.
    /// True once the VM is gone.
    async fn power_off(&self, instance: &Instance, running: &RunningVm) -> Result<bool> {
        if !running.vm.has_exited() {
            let sent = if instance.force_stop {
                Instant::now()
            } else {
                running.powerdown_once().await?
            };
            if instance.force_stop || sent.elapsed() > POWERDOWN_GRACE {
                running.vm.kill().await.map_err(compute_error)?;
            }
        }
        if !running.vm.has_exited() {
            return Ok(false);
        }
        self.vms.remove(&instance.instance_id);
        Ok(true)
    }

    /// Applies `change` to the instance only if no request changed what the user wants
    /// since `seen` was read.
    pub(crate) fn settle_instance(
        &self,
        seen: &Instance,
        change: impl FnOnce(&mut Instance),
    ) -> Result<()> {
        self.mutate(|txn| {
            let Some(mut current) = still_wanted(txn, seen) else {
                return Ok(());
            };
            change(&mut current);
            Ok(txn.put(current)?)
        })
    }

    /// Records a launched (or resumed) VM: the instance `running`, its launch volumes
    /// attached, its saved state, if any, used up.
    fn settle_launch(&self, seen: &Instance) -> Result<()> {
        self.mutate(|txn| {
            let Some(mut instance) = still_wanted(txn, seen) else {
                return Ok(());
            };
            instance.state = InstanceState::Running;
            instance.hibernation = None;
            for disk in &instance.disks {
                let Some(mut volume) = txn.state().volumes().get(&disk.volume_id).cloned() else {
                    continue;
                };
                volume.state = VolumeState::InUse;
                for attachment in &mut volume.attachments {
                    if attachment.state == AttachmentState::Attaching {
                        attachment.state = AttachmentState::Attached;
                    }
                }
                txn.put(volume)?;
            }
            Ok(txn.put(instance)?)
        })?;
        if seen.hibernation.is_some() {
            self.discard_saved_state(&seen.instance_id);
        }
        Ok(())
    }

    pub(crate) fn guest_stopped(&self, instance: &Instance) -> Result<()> {
        let terminate = instance.shutdown_behavior == ShutdownBehavior::Terminate;
        self.settle_instance(instance, |i| {
            i.state = if terminate {
                InstanceState::ShuttingDown
            } else {
                InstanceState::Stopped
            };
            i.state_transition_reason =
                "Client.InstanceInitiatedShutdown: Instance initiated shutdown".into();
        })?;
        self.wake_reconciler();
        Ok(())
    }

    fn volumes_ready(&self, instance: &Instance) -> bool {
        let state = self.read();
        instance.disks.iter().all(|disk| {
            state
                .volumes()
                .get(&disk.volume_id)
                .is_some_and(|v| matches!(v.state, VolumeState::InUse | VolumeState::Available))
        })
    }

    /// Boots the instance's VM.
    pub(crate) async fn launch(self: &Arc<Self>, instance: &Instance) -> Result<RunningVm> {
        let spec = self.vm_spec(instance).await?;
        let disks = self.serve_disks(&instance.instance_id)?;
        let vm = self
            .hypervisor()
            .launch(&spec)
            .await
            .map_err(compute_error)?;
        Ok(RunningVm::new(vm, disks, instance))
    }

    /// The machine of the instance as its records describe it now, its taps opened.
    pub(crate) async fn vm_spec(self: &Arc<Self>, instance: &Instance) -> Result<compute::VmSpec> {
        let id = &instance.instance_id;
        let (image, instance_type) = {
            let state = self.read();
            let image: Option<Image> = state.images().get(&instance.image_id).cloned();
            (image, find_instance_type(&instance.instance_type).copied())
        };
        let boot = image
            .and_then(|i| i.boot)
            .or_else(|| self.default_boot_files())
            .ok_or_else(|| {
                Error::Internal(format!("no kernel to boot {id}: run `nimbus image build`"))
            })?;
        let instance_type = instance_type.ok_or_else(|| {
            Error::Internal(format!("unknown instance type {}", instance.instance_type))
        })?;
        let run_dir = self.instance_run_dir(id);
        std::fs::create_dir_all(&run_dir)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", run_dir.display())))?;
        let nics = self.open_nics(instance).await?;
        Ok(compute::VmSpec {
            instance_id: id.clone(),
            vcpus: instance_type.vcpus,
            memory_mib: instance_type.memory_mib,
            kernel: PathBuf::from(&boot.kernel),
            initrd: PathBuf::from(&boot.initrd),
            cmdline: boot.cmdline.clone(),
            disks: self.disk_specs(instance),
            run_dir,
            nics,
        })
    }

    fn disk_specs(&self, instance: &Instance) -> Vec<compute::DiskSpec> {
        // The root device first, so it is the guest's /dev/vda.
        let mut disks: Vec<_> = instance.disks.iter().collect();
        disks.sort_by_key(|d| d.device_name != instance.root_device_name);
        disks
            .into_iter()
            .filter(|d| {
                self.read().volumes().get(&d.volume_id).is_some_and(|v| {
                    v.attachments
                        .first()
                        .is_some_and(|a| a.state != AttachmentState::Detaching)
                })
            })
            .map(|d| self.disk_spec(&instance.instance_id, &d.device_name, &d.volume_id))
            .collect()
    }

    async fn sync_hotplug(&self, instance: &Instance, running: &RunningVm) -> Result<()> {
        let volumes: Vec<Volume> = {
            let state = self.read();
            instance
                .disks
                .iter()
                .filter_map(|d| state.volumes().get(&d.volume_id).cloned())
                .collect()
        };
        for volume in volumes {
            let Some(attachment) = volume.attachments.first() else {
                continue;
            };
            let device = attachment.device.clone();
            match attachment.state {
                AttachmentState::Attaching => {
                    if !running.plugged().contains_key(&device) {
                        let disk =
                            self.disk_spec(&instance.instance_id, &device, &volume.volume_id);
                        running
                            .vm
                            .hotplug_disk(&disk)
                            .await
                            .map_err(compute_error)?;
                        running
                            .plugged()
                            .insert(device.clone(), volume.volume_id.clone());
                    }
                    self.settle_attachment(&volume.volume_id, instance, &device)?;
                }
                AttachmentState::Detaching => {
                    if running.plugged().contains_key(&device) {
                        running
                            .vm
                            .unplug_disk(&device)
                            .await
                            .map_err(compute_error)?;
                        running.plugged().remove(&device);
                    }
                    self.finish_detach(&volume.volume_id, &instance.instance_id)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Plugs the cards of interfaces being attached and unplugs those being detached. Plug
    /// and unplug are idempotent (the card's place is its device index), so a step cut short
    /// by a restart is simply done again.
    async fn sync_nics(self: &Arc<Self>, instance: &Instance, running: &RunningVm) -> Result<()> {
        for interface in self.pending_nics(instance) {
            let Some(attachment) = &interface.attachment else {
                continue;
            };
            if attachment.status == AttachmentState::Attaching {
                let nic = self.hotplug_nic_spec(&interface).await?;
                running.vm.hotplug_nic(&nic).await.map_err(compute_error)?;
            } else {
                running
                    .vm
                    .unplug_nic(attachment.device_index)
                    .await
                    .map_err(compute_error)?;
            }
            self.settle_nic(instance, &interface, true)?;
        }
        Ok(())
    }

    /// Completes a pending attach (`attached`) or detach (the interface `available`) if the
    /// interface still has that attachment in that state. A step's outcome (`fenced`) is also
    /// dropped when a newer request changed what the user wants of the instance since it
    /// read `seen`: a stop or terminate during a hot-plug wins, and the step for it settles
    /// the attachment from what it observes.
    fn settle_nic(
        &self,
        seen: &Instance,
        interface: &NetworkInterface,
        fenced: bool,
    ) -> Result<()> {
        self.mutate(|txn| {
            if fenced && still_wanted(txn, seen).is_none() {
                return Ok(());
            }
            let id = &interface.network.interface_id;
            let Some(mut current) = txn.state().network_interfaces().get(id).cloned() else {
                return Ok(());
            };
            let same = current.network.attachment_id == interface.network.attachment_id
                && current.attachment.as_ref().map(|a| a.status)
                    == interface.attachment.as_ref().map(|a| a.status);
            if !same {
                return Ok(());
            }
            match current.attachment.as_mut() {
                Some(a) if a.status == AttachmentState::Attaching => {
                    a.status = AttachmentState::Attached
                }
                Some(a) if a.status == AttachmentState::Detaching => current.attachment = None,
                _ => return Ok(()),
            }
            Ok(txn.put(current)?)
        })
    }

    /// The instance's interfaces being attached or detached.
    fn pending_nics(&self, instance: &Instance) -> Vec<NetworkInterface> {
        self.read()
            .interfaces_of(instance)
            .into_iter()
            .filter(|e| {
                e.attachment
                    .as_ref()
                    .is_some_and(|a| a.status != AttachmentState::Attached)
            })
            .collect()
    }

    /// Settles the interfaces being attached or detached when the VM went away: the cards
    /// of attached ones are plugged at the next start, detached ones are gone with the VM.
    pub(crate) fn settle_nics_while_stopped(&self, instance: &Instance) -> Result<()> {
        for interface in self.pending_nics(instance) {
            // This step is the one the newer request asked for: it settles unfenced.
            self.settle_nic(instance, &interface, false)?;
        }
        Ok(())
    }

    /// Marks an attachment `attached` if it is still the one being attached.
    fn settle_attachment(&self, volume_id: &str, instance: &Instance, device: &str) -> Result<()> {
        self.mutate(|txn| {
            let Some(mut volume) = txn.state().volumes().get(volume_id).cloned() else {
                return Ok(());
            };
            let Some(attachment) = volume.attachments.first_mut().filter(|a| {
                a.instance_id == instance.instance_id
                    && a.device == device
                    && a.state == AttachmentState::Attaching
            }) else {
                return Ok(());
            };
            attachment.state = AttachmentState::Attached;
            Ok(txn.put(volume)?)
        })
    }

    /// Settles attachments requested while the VM went away: attaches complete as they are
    /// (the volume is there at the next boot), detaches complete without an unplug.
    pub(crate) fn settle_detached_while_stopped(&self, instance: &Instance) -> Result<()> {
        let unsettled: Vec<(String, String, AttachmentState)> = {
            let state = self.read();
            instance
                .disks
                .iter()
                .filter_map(|d| {
                    let volume = state.volumes().get(&d.volume_id)?;
                    let attachment = volume.attachments.first()?;
                    (attachment.state != AttachmentState::Attached).then(|| {
                        (
                            d.volume_id.clone(),
                            attachment.device.clone(),
                            attachment.state,
                        )
                    })
                })
                .collect()
        };
        for (volume_id, device, state) in unsettled {
            if state == AttachmentState::Attaching {
                self.settle_attachment(&volume_id, instance, &device)?;
            } else {
                self.finish_detach(&volume_id, &instance.instance_id)?;
            }
        }
        Ok(())
    }

    /// Completes a detach that is still requested: the volume is `available` again.
    fn finish_detach(&self, volume_id: &str, instance_id: &str) -> Result<()> {
        self.mutate(|txn| {
            let Some(mut volume) = txn.state().volumes().get(volume_id).cloned() else {
                return Ok(());
            };
            let detaching = volume.attachments.first().is_some_and(|a| {
                a.instance_id == instance_id && a.state == AttachmentState::Detaching
            });
            if !detaching {
                return Ok(());
            }
            volume.attachments.clear();
            volume.state = VolumeState::Available;
            txn.put(volume)?;
            if let Some(mut instance) = txn.state().instances().get(instance_id).cloned() {
                instance.disks.retain(|d| d.volume_id != volume_id);
                txn.put(instance)?;
            }
            Ok(())
        })
    }
}

/// The current record of `seen`'s instance if no request changed what the user wants since
/// `seen` was read; `None` means a step's outcome is stale and must be dropped.
pub(crate) fn still_wanted(txn: &Txn, seen: &Instance) -> Option<Instance> {
    let current = txn.state().instances().get(&seen.instance_id)?;
    if current.generation != seen.generation {
        tracing::info!(
            instance = seen.instance_id,
            "a newer request superseded this step; its outcome is dropped"
        );
        return None;
    }
    Some(current.clone())
}

/// The VM is gone: the instance is `terminated`, its DeleteOnTermination volumes and network
/// interfaces are deleted and the others detached. A volume whose data is still being created keeps `creating`
/// (the reconciler finishes it, then it is `available`) unless it is to be deleted.
fn finish_termination(txn: &mut Txn, seen: &Instance) -> Result<()> {
    let Some(mut instance) = still_wanted(txn, seen) else {
        return Ok(());
    };
    for disk in &instance.disks {
        let Some(mut volume) = txn.state().volumes().get(&disk.volume_id).cloned() else {
            continue;
        };
        let delete = volume
            .attachments
            .first()
            .is_some_and(|a| a.delete_on_termination);
        volume.attachments.clear();
        volume.state = match volume.state {
            _ if delete => VolumeState::Deleting,
            VolumeState::Creating => VolumeState::Creating,
            _ => VolumeState::Available,
        };
        txn.put(volume)?;
    }
    crate::vpc::network_interfaces::release_on_termination(txn, &instance.instance_id)?;
    instance.state = InstanceState::Terminated;
    instance.hibernation = None;
    instance.terminated_at = Some(nimbus_core::now_millis());
    Ok(txn.put(instance)?)
}

pub fn compute_error(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("compute: {error}"))
}

#[cfg(test)]
mod tests {
    use crate::instances::InstanceState;
    use crate::kinds::Tables;
    use crate::testkit::Harness;
    use crate::volumes::AttachmentState;
    use crate::volumes::{VolumeState, GIB};

    fn ids(id: &str) -> Vec<String> {
        vec![id.to_owned()]
    }

    #[tokio::test]
    async fn launch_runs_the_instance_with_its_volumes_attached() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let instance = h.instance(&id);
        assert_eq!(instance.state, InstanceState::Running);
        assert!(h.hypervisor.is_running(&id));
        let state = h.control.read();
        let root = &state.volumes()[&instance.disks[0].volume_id];
        assert_eq!(root.state, VolumeState::InUse);
        assert_eq!(root.attachments[0].state, AttachmentState::Attached);
        assert_eq!(
            h.hypervisor.disks(&id),
            vec![instance.root_device_name.clone()]
        );
    }

    #[tokio::test]
    async fn a_vm_may_open_its_own_volumes_only_while_it_runs() {
        let h = Harness::new().await;
        let instance = h.run_instance();
        let id = instance.instance_id.clone();
        let (data, other) = (h.create_volume(), h.create_volume());
        h.settle().await;
        h.control
            .attach_volume(&data, &id, "/dev/sdf", false)
            .unwrap();
        h.settle().await;
        let socket = h.control.disk_socket(&id);
        let root = &instance.disks[0].volume_id;
        assert_eq!(h.blocks.may_open(&socket, root), Some(true));
        assert_eq!(h.blocks.may_open(&socket, &data), Some(true));
        assert_eq!(h.blocks.may_open(&socket, &other), Some(false));
        h.control.detach_volume(&data, None, None, false).unwrap();
        h.settle().await;
        assert_eq!(h.blocks.may_open(&socket, &data), Some(false));
        h.control.terminate_instances(&ids(&id), false).unwrap();
        h.settle().await;
        assert_eq!(h.blocks.may_open(&socket, root), None, "no longer served");
    }

    #[tokio::test]
    async fn terminate_during_a_launch_ends_terminated_without_a_vm() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.control.reconcile_storage().await;
        let steps = h.control.start_instance_steps();
        // The launch is under way (the fake yields inside it) when the user terminates.
        tokio::task::yield_now().await;
        h.control.terminate_instances(&ids(&id), false).unwrap();
        for step in steps {
            step.await.unwrap();
        }
        assert_eq!(h.hypervisor.launches(), 1, "the launch was in flight");
        assert_eq!(h.instance(&id).state, InstanceState::ShuttingDown);
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        assert!(!h.hypervisor.is_running(&id));
        assert!(
            h.control.read().volumes().is_empty(),
            "DeleteOnTermination root deleted"
        );
    }

    #[tokio::test]
    async fn terminate_during_a_stop_ends_terminated() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.control.stop_instances(&ids(&id), false, false).unwrap();
        let steps = h.control.start_instance_steps();
        // The guest is powering off (the fake yields) when the user terminates.
        tokio::task::yield_now().await;
        h.control.terminate_instances(&ids(&id), false).unwrap();
        for step in steps {
            step.await.unwrap();
        }
        assert_eq!(h.instance(&id).state, InstanceState::ShuttingDown);
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        assert!(!h.hypervisor.is_running(&id));
    }

    #[tokio::test]
    async fn a_booting_instance_does_not_hold_up_another() {
        let h = Harness::new().await;
        let running = h.run_instance().instance_id;
        h.settle().await;
        h.control
            .stop_instances(&ids(&running), false, false)
            .unwrap();
        let booting = h.run_instance().instance_id;
        h.control.reconcile_storage().await;
        h.hypervisor.hold_launches();
        let steps = h.control.start_instance_steps();
        // The stop completes while the other VM is still booting.
        let stopped = async {
            while h.instance(&running).state != InstanceState::Stopped {
                tokio::task::yield_now().await;
            }
        };
        stopped.await;
        assert_eq!(h.instance(&booting).state, InstanceState::Pending);
        h.hypervisor.release_launches();
        for step in steps {
            step.await.unwrap();
        }
        assert_eq!(h.instance(&booting).state, InstanceState::Running);
    }

    #[tokio::test]
    async fn one_failing_launch_does_not_stop_the_others() {
        let h = Harness::new().await;
        let failing = h.run_instance().instance_id;
        let fine = h.run_instance().instance_id;
        h.hypervisor.fail_launches_of(&failing);
        h.settle().await;
        assert_eq!(h.instance(&failing).state, InstanceState::Pending);
        assert_eq!(h.instance(&fine).state, InstanceState::Running);
    }

    #[tokio::test]
    async fn a_guest_that_powers_off_is_stopped_or_terminated_by_its_shutdown_behavior() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.hypervisor.power_off(&id);
        h.settle().await;
        let instance = h.instance(&id);
        assert_eq!(instance.state, InstanceState::Stopped);
        assert!(instance
            .state_transition_reason
            .contains("InstanceInitiatedShutdown"));
        h.control.start_instances(&ids(&id), false).unwrap();
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Running);
        assert_eq!(h.hypervisor.launches(), 2);
    }

    #[tokio::test]
    async fn hot_attach_and_detach() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let volume = h.create_volume();
        h.settle().await;
        let attachment = h
            .control
            .attach_volume(&volume, &id, "/dev/sdf", false)
            .unwrap();
        assert_eq!(attachment.state, AttachmentState::Attaching);
        // Detaching what is still being attached is refused, as in EC2.
        let refused = h.control.detach_volume(&volume, None, None, false);
        assert!(
            matches!(refused, Err(crate::Error::IncorrectState(_))),
            "{refused:?}"
        );
        h.settle().await;
        assert_eq!(
            h.control.read().volumes()[&volume].attachments[0].state,
            AttachmentState::Attached
        );
        assert!(h.hypervisor.disks(&id).contains(&"/dev/sdf".to_owned()));
        h.control.detach_volume(&volume, None, None, false).unwrap();
        h.settle().await;
        assert_eq!(
            h.control.read().volumes()[&volume].state,
            VolumeState::Available
        );
        assert!(!h.hypervisor.disks(&id).contains(&"/dev/sdf".to_owned()));
        assert_eq!(h.instance(&id).disks.len(), 1);
    }

    #[tokio::test]
    async fn a_late_growth_never_reaches_the_volume_now_at_its_device() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let (first, second) = (h.create_volume(), h.create_volume());
        h.settle().await;
        h.control
            .attach_volume(&first, &id, "/dev/sdf", false)
            .unwrap();
        h.settle().await;
        h.control.detach_volume(&first, None, None, false).unwrap();
        h.settle().await;
        h.control
            .attach_volume(&second, &id, "/dev/sdf", false)
            .unwrap();
        h.settle().await;
        // A resize of the first volume that began while it was attached finishes now.
        h.control.grow_attached_disks(&first, 2 * GIB).await;
        assert!(h.hypervisor.grown(&id).is_empty());
        h.control.grow_attached_disks(&second, 2 * GIB).await;
        assert_eq!(h.hypervisor.grown(&id), [("/dev/sdf".to_owned(), second)]);
    }

    #[tokio::test]
    async fn reboot_resets_once() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.control.reboot_instances(&ids(&id), false).unwrap();
        assert!(h.instance(&id).reboot_requested);
        h.settle().await;
        assert!(!h.instance(&id).reboot_requested);
        assert_eq!(h.instance(&id).state, InstanceState::Running);
    }

    #[tokio::test]
    async fn a_restart_adopts_running_vms_instead_of_relaunching() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let reopened = h.reopen();
        reopened.settle().await;
        assert_eq!(reopened.instance(&id).state, InstanceState::Running);
        assert_eq!(h.hypervisor.launches(), 1);
        reopened
            .control
            .stop_instances(&ids(&id), false, false)
            .unwrap();
        reopened.settle().await;
        assert!(!h.hypervisor.is_running(&id));
    }
}
