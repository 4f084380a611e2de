//! Drives VMs toward the recorded instance states (see `instances.rs`), one small step per
//! reconcile pass so that no instance holds up another: launch `pending` instances whose
//! volumes are ready, power off `stopping` ones (forced after a grace period), kill
//! `shutting-down` ones and release their volumes, hot-plug `attaching` and unplug `detaching`
//! volumes, reset on reboot requests, and notice guests that powered themselves off.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::catalog::find_instance_type;
use crate::images::Image;
use crate::instances::{Instance, InstanceState, ShutdownBehavior};
use crate::volumes::{AttachmentState, Volume, VolumeState};
use crate::{Control, Error, Result};

/// The tag that tells where the instance's SSH port is forwarded.
pub const SSH_TAG: &str = "nimbus:ssh";

/// How long a guest gets to power off after ACPI before it is stopped by force.
const POWERDOWN_GRACE: Duration = Duration::from_secs(60);

/// A VM nimbus started (or re-adopted), with what the reconciler knows about it.
pub struct RunningVm {
    vm: compute::Vm,
    imds: tokio::task::JoinHandle<()>,
    powerdown_sent: Option<Instant>,
    plugged: HashSet<String>,
}

/// The VMs of this host, by instance ID. Not persisted: rebuilt by adoption after a restart.
#[derive(Default)]
pub struct Hypervisor {
    vms: tokio::sync::Mutex<HashMap<String, RunningVm>>,
}

impl Control {
    fn instance_run_dir(&self, instance_id: &str) -> PathBuf {
        self.config().data_dir.join("instances").join(instance_id)
    }

    /// How a VM reaches a volume: the block store's NBD export named by the volume ID.
    fn disk_spec(&self, device_name: &str, volume_id: &str) -> compute::DiskSpec {
        compute::DiskSpec {
            device_name: device_name.to_owned(),
            nbd_socket: self.config().data_dir.join("nbd.sock"),
            export: volume_id.to_owned(),
        }
    }

    /// The serial console log of an instance (empty before its first boot).
    pub fn console_output(&self, instance_id: &str) -> Result<String> {
        crate::describe::existing::<Instance>(&self.read(), instance_id)?;
        Ok(compute::console_output(&self.instance_run_dir(instance_id)))
    }

    /// Shows running guests that an attached volume grew (a stopped instance sees the new
    /// size when it boots). A guest that cannot be told keeps the old size until it reboots.
    pub(crate) async fn grow_attached_disks(&self, volume: &Volume, new_size: u64) {
        let vms = self.hypervisor.vms.lock().await;
        for attachment in &volume.attachments {
            let Some(running) = vms.get(&attachment.instance_id) else {
                continue;
            };
            if !running.plugged.contains(&attachment.device) {
                continue;
            }
            let disk = self.disk_spec(&attachment.device, &volume.volume_id);
            if let Err(error) = running.vm.grow_disk(&disk, new_size).await {
                tracing::warn!(volume = volume.volume_id, instance = attachment.instance_id, %error, "the guest was not told that its volume grew");
            }
        }
    }

    pub(crate) async fn reconcile_instances(self: &Arc<Self>) -> Result<()> {
        let instances: Vec<Instance> = self
            .read()
            .instances
            .values()
            .filter(|i| i.state != InstanceState::Terminated)
            .cloned()
            .collect();
        for instance in instances {
            let id = instance.instance_id.clone();
            if let Err(error) = self.reconcile_instance(instance).await {
                tracing::warn!(instance = id, %error, "instance step failed; will retry");
            }
        }
        self.mutate(|txn| {
            self.purge_terminated(txn);
            Ok(())
        })
    }

    async fn reconcile_instance(self: &Arc<Self>, instance: Instance) -> Result<()> {
        let id = instance.instance_id.clone();
        let mut vms = self.hypervisor.vms.lock().await;
        if !vms.contains_key(&id) {
            // After a restart, a QEMU that is still running is taken back rather than rebooted.
            if let Some(vm) = compute::adopt(&self.instance_run_dir(&id))
                .await
                .map_err(compute_error)?
            {
                let plugged = instance
                    .disks
                    .iter()
                    .map(|d| d.device_name.clone())
                    .collect();
                vms.insert(
                    id.clone(),
                    RunningVm {
                        vm,
                        imds: self.spawn_imds(&id),
                        powerdown_sent: None,
                        plugged,
                    },
                );
            }
        }
        match instance.state {
            InstanceState::Pending => {
                if vms.contains_key(&id) {
                    return self.update::<Instance>(&id, |i| i.state = InstanceState::Running);
                }
                if !self.volumes_ready(&instance) {
                    return Ok(());
                }
                let running = self.launch(&instance).await?;
                vms.insert(id.clone(), running);
                self.mark_disks_attached(&instance)?;
                self.update::<Instance>(&id, |i| i.state = InstanceState::Running)
            }
            InstanceState::Running => {
                let Some(running) = vms.get_mut(&id) else {
                    // QEMU is gone: the guest shut itself down (or crashed).
                    return self.guest_stopped(&instance);
                };
                if running.vm.has_exited() {
                    let gone = vms.remove(&id);
                    if let Some(gone) = gone {
                        gone.imds.abort();
                    }
                    return self.guest_stopped(&instance);
                }
                if instance.reboot_requested {
                    running.vm.reset().await.map_err(compute_error)?;
                    self.update::<Instance>(&id, |i| i.reboot_requested = false)?;
                }
                self.sync_hotplug(&instance, running).await
            }
            InstanceState::Stopping => {
                if let Some(running) = vms.get_mut(&id) {
                    let sent = *running.powerdown_sent.get_or_insert_with(Instant::now);
                    if sent.elapsed() < Duration::from_millis(10) && !instance.force_stop {
                        running.vm.powerdown().await.map_err(compute_error)?;
                    }
                    if !running.vm.has_exited()
                        && (instance.force_stop || sent.elapsed() > POWERDOWN_GRACE)
                    {
                        running.vm.kill().await.map_err(compute_error)?;
                    }
                    if !running.vm.has_exited() {
                        return Ok(());
                    }
                    if let Some(gone) = vms.remove(&id) {
                        gone.imds.abort();
                    }
                }
                self.settle_detached_while_stopped(&instance)?;
                self.update::<Instance>(&id, |i| {
                    i.state = InstanceState::Stopped;
                    i.force_stop = false;
                    i.reboot_requested = false;
                })
            }
            InstanceState::ShuttingDown => {
                if let Some(running) = vms.remove(&id) {
                    running.vm.kill().await.map_err(compute_error)?;
                    running.imds.abort();
                }
                drop(vms);
                compute::release_vm(&id);
                self.release_volumes(&instance)?;
                let _ = std::fs::remove_dir_all(self.instance_run_dir(&id));
                self.update::<Instance>(&id, |i| {
                    i.state = InstanceState::Terminated;
                    i.terminated_at = Some(nimbus_core::now_millis());
                    i.ssh_port = None;
                })
            }
            InstanceState::Stopped => self.settle_detached_while_stopped(&instance),
            InstanceState::Terminated => Ok(()),
        }
    }

    fn guest_stopped(&self, instance: &Instance) -> Result<()> {
        let terminate = instance.shutdown_behavior == ShutdownBehavior::Terminate;
        self.update::<Instance>(&instance.instance_id, |i| {
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
                .volumes
                .get(&disk.volume_id)
                .is_some_and(|v| matches!(v.state, VolumeState::InUse | VolumeState::Available))
        })
    }

    async fn launch(self: &Arc<Self>, instance: &Instance) -> Result<RunningVm> {
        let id = &instance.instance_id;
        let (image, instance_type) = {
            let state = self.read();
            let image: Option<Image> = state.images.get(&instance.image_id).cloned();
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
        let imds = self.spawn_imds(id);
        let ssh_port = instance.ssh_port.or_else(free_local_port);
        let spec = compute::VmSpec {
            instance_id: id.clone(),
            vcpus: instance_type.vcpus,
            memory_mib: instance_type.memory_mib,
            kernel: PathBuf::from(&boot.kernel),
            initrd: PathBuf::from(&boot.initrd),
            cmdline: boot.cmdline.clone(),
            disks: self.disk_specs(instance),
            run_dir: run_dir.clone(),
            imds_socket_name: compute::imds_socket_name(id),
            private_ip: instance.private_ip.parse().map_err(|_| {
                Error::Internal(format!("bad private address {}", instance.private_ip))
            })?,
            ssh_host_port: ssh_port,
            accel: self.accel().await,
        };
        let vm = match compute::launch(&spec).await {
            Ok(vm) => vm,
            Err(error) => {
                imds.abort();
                return Err(compute_error(error));
            }
        };
        self.update::<Instance>(id, |i| {
            i.ssh_port = ssh_port;
            // Where SSH reaches the guest: user-mode networking forwards a local port.
            if let Some(port) = ssh_port {
                i.tags.insert(SSH_TAG.into(), format!("127.0.0.1:{port}"));
            }
        })?;
        let plugged = instance
            .disks
            .iter()
            .map(|d| d.device_name.clone())
            .collect();
        Ok(RunningVm {
            vm,
            imds,
            powerdown_sent: None,
            plugged,
        })
    }

    fn disk_specs(&self, instance: &Instance) -> Vec<compute::DiskSpec> {
        // The root device first, so it is the guest's /dev/vda.
        let mut disks: Vec<_> = instance.disks.iter().collect();
        disks.sort_by_key(|d| d.device_name != instance.root_device_name);
        disks
            .into_iter()
            .filter(|d| {
                self.read().volumes.get(&d.volume_id).is_some_and(|v| {
                    v.attachments
                        .first()
                        .is_some_and(|a| a.state != AttachmentState::Detaching)
                })
            })
            .map(|d| self.disk_spec(&d.device_name, &d.volume_id))
            .collect()
    }

    fn mark_disks_attached(&self, instance: &Instance) -> Result<()> {
        for disk in &instance.disks {
            self.update::<Volume>(&disk.volume_id, |v| {
                v.state = VolumeState::InUse;
                for attachment in &mut v.attachments {
                    attachment.state = AttachmentState::Attached;
                }
            })?;
        }
        Ok(())
    }

    async fn sync_hotplug(&self, instance: &Instance, running: &mut RunningVm) -> Result<()> {
        let volumes: Vec<Volume> = {
            let state = self.read();
            instance
                .disks
                .iter()
                .filter_map(|d| state.volumes.get(&d.volume_id).cloned())
                .collect()
        };
        for volume in volumes {
            let Some(attachment) = volume.attachments.first() else {
                continue;
            };
            match attachment.state {
                AttachmentState::Attaching => {
                    if !running.plugged.contains(&attachment.device) {
                        let disk = self.disk_spec(&attachment.device, &volume.volume_id);
                        running
                            .vm
                            .hotplug_disk(&disk)
                            .await
                            .map_err(compute_error)?;
                        running.plugged.insert(attachment.device.clone());
                    }
                    self.update::<Volume>(&volume.volume_id, |v| {
                        for a in &mut v.attachments {
                            a.state = AttachmentState::Attached;
                        }
                    })?;
                }
                AttachmentState::Detaching => {
                    if running.plugged.contains(&attachment.device) {
                        running
                            .vm
                            .unplug_disk(&attachment.device)
                            .await
                            .map_err(compute_error)?;
                        running.plugged.remove(&attachment.device);
                    }
                    self.finish_detach(&volume.volume_id, &instance.instance_id)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Detaches that were requested while the VM went away complete without an unplug.
    fn settle_detached_while_stopped(&self, instance: &Instance) -> Result<()> {
        let detaching: Vec<String> = {
            let state = self.read();
            instance
                .disks
                .iter()
                .filter(|d| {
                    state.volumes.get(&d.volume_id).is_some_and(|v| {
                        v.attachments
                            .first()
                            .is_some_and(|a| a.state != AttachmentState::Attached)
                    })
                })
                .map(|d| d.volume_id.clone())
                .collect()
        };
        for volume_id in detaching {
            let attaching = self
                .read()
                .volumes
                .get(&volume_id)
                .and_then(|v| {
                    v.attachments
                        .first()
                        .map(|a| a.state == AttachmentState::Attaching)
                })
                .unwrap_or(false);
            if attaching {
                self.update::<Volume>(&volume_id, |v| {
                    v.attachments
                        .iter_mut()
                        .for_each(|a| a.state = AttachmentState::Attached)
                })?;
            } else {
                self.finish_detach(&volume_id, &instance.instance_id)?;
            }
        }
        Ok(())
    }

    fn finish_detach(&self, volume_id: &str, instance_id: &str) -> Result<()> {
        self.mutate(|txn| {
            if let Some(mut volume) = txn.state().volumes.get(volume_id).cloned() {
                volume.attachments.clear();
                volume.state = VolumeState::Available;
                txn.put(volume)?;
            }
            if let Some(mut instance) = txn.state().instances.get(instance_id).cloned() {
                instance.disks.retain(|d| d.volume_id != volume_id);
                txn.put(instance)?;
            }
            Ok(())
        })
    }

    /// On termination: DeleteOnTermination volumes are deleted, the others detached.
    fn release_volumes(&self, instance: &Instance) -> Result<()> {
        self.mutate(|txn| {
            for disk in &instance.disks {
                let Some(mut volume) = txn.state().volumes.get(&disk.volume_id).cloned() else {
                    continue;
                };
                let delete = volume
                    .attachments
                    .first()
                    .is_some_and(|a| a.delete_on_termination);
                volume.attachments.clear();
                volume.state = if delete {
                    VolumeState::Deleting
                } else {
                    VolumeState::Available
                };
                txn.put(volume)?;
            }
            Ok(())
        })?;
        self.wake_reconciler();
        Ok(())
    }
}

fn free_local_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .ok()
}

pub fn compute_error(error: impl std::fmt::Display) -> Error {
    Error::Internal(format!("compute: {error}"))
}
