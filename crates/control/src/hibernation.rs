//! Hibernation: StopInstances with `Hibernate` saves the guest's memory and device state to a
//! file, and the next StartInstances resumes the guest from it, its processes and page cache
//! as they were (`docs/hibernation.md`).
//!
//! - Only an instance launched with `HibernationOptions.Configured` may hibernate
//!   (`UnsupportedHibernationConfiguration` otherwise, with EC2's message), and only from
//!   `running`: the request is a wish (`hibernate_requested`, bumping the generation) and the
//!   instance goes `stopping` with the state reason `Client.UserInitiatedHibernate`.
//! - The reconciler's stop step opens the state file, `<data-dir>/hibernation/<id>.state`
//!   (0600 in a 0700 directory, next to `volumes/`), and hands it to the hypervisor, which
//!   saves into it and syncs it ([`compute::VmHandle::hibernate`]). Only then is the
//!   instance recorded `stopped` with its [`Hibernation`]: the record says where the state
//!   is and what machine it needs, so a start after a restart of nimbus resumes it.
//! - A save that fails ends as EC2's does: a normal shutdown.
//! - The start step of an instance with a hibernation resumes instead of booting
//!   ([`compute::Hypervisor::resume`]); the record drops the hibernation once the VM runs,
//!   then the file goes. A machine that no longer fits the state (volumes or interfaces
//!   attached or detached while stopped) boots afresh, the state discarded.
//! - Terminating a hibernated instance deletes its state file.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::instance_reconciler::{compute_error, RunningVm};
use crate::instances::{Instance, InstanceState, StateReason};
use crate::{Control, Error, Result};

/// The guest's saved state of a hibernated instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hibernation {
    /// The state file, in the data dir.
    pub state_file: PathBuf,
    /// When the state was saved (milliseconds since the epoch).
    pub saved_at: i64,
    /// The machine the state needs, and its size.
    pub vm: compute::SavedVm,
}

/// `UnsupportedHibernationConfiguration`, with EC2's message, unless the instance was
/// launched configured for hibernation.
pub(crate) fn check_configured(instance: &Instance) -> Result<()> {
    if instance.options.hibernation_configured {
        return Ok(());
    }
    Err(Error::UnsupportedHibernationConfiguration(format!(
        "The instance can't be hibernated because it was not configured at launch for \
         hibernation: {}",
        instance.instance_id
    )))
}

/// EC2's state reason of an instance stopped by hibernation.
pub(crate) fn hibernate_reason() -> StateReason {
    StateReason {
        code: "Client.UserInitiatedHibernate".into(),
        message: "Client.UserInitiatedHibernate: User initiated hibernate".into(),
    }
}

/// Refuses a change that would not fit the saved state of a hibernated instance (EC2 does
/// not let a hibernated instance change its type).
pub(crate) fn refuse_while_hibernated(instance: &Instance, attribute: &str) -> Result<()> {
    if instance.hibernation.is_none() {
        return Ok(());
    }
    Err(Error::IncorrectInstanceState(format!(
        "The instance '{}' is hibernated: its '{attribute}' attribute cannot change until it \
         has been started.",
        instance.instance_id
    )))
}

impl Control {
    /// StopInstances with `Hibernate`: each instance must be configured for hibernation and
    /// `running` (or hibernating already); one that is not fails the whole call. `force`
    /// applies to the normal stop a failed hibernation turns into.
    pub fn hibernate_instances(
        &self,
        ids: &[String],
        force: bool,
        dry_run: bool,
    ) -> Result<Vec<(String, InstanceState, InstanceState)>> {
        self.transition(ids, dry_run, |instance| {
            crate::instances::request_stop(instance, force, true)
        })
    }

    /// Where an instance's saved state lives: next to the volumes, in the private data dir.
    fn state_file(&self, instance_id: &str) -> PathBuf {
        (self.config().data_dir)
            .join("hibernation")
            .join(format!("{instance_id}.state"))
    }

    /// Deletes the instance's saved state, if there is one.
    pub(crate) fn discard_saved_state(&self, instance_id: &str) {
        let path = self.state_file(instance_id);
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(instance = instance_id, %error, "the saved state was not deleted")
            }
            _ => {}
        }
    }

    /// The stop step of a hibernating instance: saves the guest and records the instance
    /// `stopped` with its hibernation. A save that fails turns the stop into a normal one
    /// (the next step powers the guest off), as in EC2.
    pub(crate) async fn hibernate(&self, instance: &Instance, running: &RunningVm) -> Result<()> {
        let id = instance.instance_id.as_str();
        let saved = match self.save_state(instance, running).await {
            Ok(saved) => saved,
            Err(error) => {
                tracing::warn!(instance = id, %error, "hibernation failed; stopping instead");
                self.discard_saved_state(id);
                self.settle_instance(instance, |i| {
                    i.hibernate_requested = false;
                    i.state_reason = Some(StateReason {
                        code: "Client.UserInitiatedShutdown".into(),
                        message: "Client.UserInitiatedShutdown: User initiated shutdown".into(),
                    });
                })?;
                self.wake_reconciler();
                return Ok(());
            }
        };
        self.vms.remove(id);
        self.settle_detached_while_stopped(instance)?;
        self.settle_nics_while_stopped(instance)?;
        self.settle_instance(instance, |i| {
            i.state = InstanceState::Stopped;
            i.force_stop = false;
            i.reboot_requested = false;
            i.hibernate_requested = false;
            i.hibernation = Some(saved);
        })
    }

    async fn save_state(&self, instance: &Instance, running: &RunningVm) -> Result<Hibernation> {
        let path = self.state_file(&instance.instance_id);
        let file = create_private(&path)
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", path.display())))?;
        let vm = running.vm.hibernate(&file).await.map_err(compute_error)?;
        Ok(Hibernation {
            state_file: path,
            saved_at: nimbus_core::now_millis(),
            vm,
        })
    }

    /// The VM of a starting instance: resumed from its saved state if it has one that fits
    /// the machine its records describe now, booted otherwise.
    pub(crate) async fn boot_or_resume(self: &Arc<Self>, instance: &Instance) -> Result<RunningVm> {
        let Some(hibernation) = &instance.hibernation else {
            return self.launch(instance).await;
        };
        let id = instance.instance_id.as_str();
        let spec = self.vm_spec(instance).await?;
        let state = File::open(&hibernation.state_file).map_err(|e| {
            Error::Internal(format!(
                "cannot open {}: {e}",
                hibernation.state_file.display()
            ))
        })?;
        let disks = self.serve_disks(id)?;
        let resumed = self
            .hypervisor()
            .resume(&spec, &hibernation.vm, &state)
            .await;
        match resumed {
            Ok(vm) => Ok(RunningVm::new(vm, disks, instance)),
            Err(compute::Error::Incompatible(why)) => {
                tracing::warn!(
                    instance = id,
                    why,
                    "the saved state no longer fits; booting afresh"
                );
                drop(disks);
                self.settle_instance(instance, |i| i.hibernation = None)?;
                self.discard_saved_state(id);
                self.launch(instance).await
            }
            Err(error) => Err(compute_error(error)),
        }
    }

    /// Whether a VM found running for a starting hibernated instance (after a restart of
    /// nimbus) is one whose resume was cut short: it has not taken its state, or its guest
    /// was not let go on. Such a VM is to be killed and the resume done again.
    pub(crate) async fn resume_cut_short(&self, instance: &Instance, running: &RunningVm) -> bool {
        instance.hibernation.is_some() && running.vm.guest_running().await == Some(false)
    }
}

/// Creates (or empties) a file only nimbus's user may read: 0600 whatever the umask, in a
/// 0700 directory.
fn create_private(path: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::instances::{InstanceState, RunInstancesRequest};
    use crate::launch_options::{HibernationOptionsInput, LaunchOptionsInput};
    use crate::testkit::Harness;
    use crate::Error;

    fn ids(id: &str) -> Vec<String> {
        vec![id.to_owned()]
    }

    /// A running instance launched with `HibernationOptions.Configured`.
    async fn hibernatable(h: &Harness) -> String {
        let request = RunInstancesRequest {
            image_id: h.image_id.clone(),
            min_count: 1,
            max_count: 1,
            options: LaunchOptionsInput {
                hibernation_options: Some(HibernationOptionsInput {
                    configured: Some(true),
                }),
                ..LaunchOptionsInput::default()
            },
            ..RunInstancesRequest::default()
        };
        let id = h.control.run_instances(request).expect("run")[0]
            .instance_id
            .clone();
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Running);
        id
    }

    async fn hibernated(h: &Harness) -> String {
        let id = hibernatable(h).await;
        h.control
            .hibernate_instances(&ids(&id), false, false)
            .unwrap();
        h.settle().await;
        id
    }

    #[tokio::test]
    async fn only_an_instance_configured_at_launch_hibernates() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let refused = h.control.hibernate_instances(&ids(&id), false, false);
        let Err(Error::UnsupportedHibernationConfiguration(message)) = refused else {
            panic!("{refused:?}");
        };
        assert_eq!(
            message,
            format!("The instance can't be hibernated because it was not configured at launch for hibernation: {id}")
        );
        assert_eq!(h.instance(&id).state, InstanceState::Running);
    }

    #[tokio::test]
    async fn hibernation_saves_the_guest_and_a_start_resumes_it() {
        let h = Harness::new().await;
        let id = hibernatable(&h).await;
        let changes = h
            .control
            .hibernate_instances(&ids(&id), false, false)
            .unwrap();
        assert_eq!(changes[0].2, InstanceState::Stopping);
        let reason = h.instance(&id).state_reason.expect("a state reason");
        assert_eq!(reason.code, "Client.UserInitiatedHibernate");
        h.settle().await;
        let stopped = h.instance(&id);
        assert_eq!(stopped.state, InstanceState::Stopped);
        assert!(!h.hypervisor.is_running(&id));
        let hibernation = stopped.hibernation.expect("hibernated");
        let metadata = std::fs::metadata(&hibernation.state_file).expect("state file");
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(metadata.len(), hibernation.vm.bytes);
        // Hibernating or stopping it again changes nothing: it stays hibernated.
        let again = h.control.hibernate_instances(&ids(&id), false, false);
        assert!(
            matches!(again, Err(Error::IncorrectInstanceState(_))),
            "{again:?}"
        );
        h.control.stop_instances(&ids(&id), false, false).unwrap();
        h.settle().await;
        assert!(h.instance(&id).hibernation.is_some());

        let query = crate::describe::Query {
            filters: vec![crate::filter::Filter {
                name: "hibernation-options.configured".into(),
                values: vec!["true".into()],
            }],
            ..Default::default()
        };
        let found = h.control.describe_instances(&query).unwrap();
        assert_eq!(found.0.len(), 1);
        h.control.start_instances(&ids(&id), false).unwrap();
        h.settle().await;
        let running = h.instance(&id);
        assert_eq!(running.state, InstanceState::Running);
        assert!(running.hibernation.is_none() && running.state_reason.is_none());
        assert!(h.hypervisor.was_resumed(&id));
        assert_eq!((h.hypervisor.launches(), h.hypervisor.resumes()), (1, 1));
        assert!(!hibernation.state_file.exists(), "the state is used up");
    }

    #[tokio::test]
    async fn a_hibernated_instance_resumes_after_a_restart() {
        let h = Harness::new().await;
        let id = hibernated(&h).await;
        let reopened = h.reopen();
        reopened.settle().await;
        assert_eq!(reopened.instance(&id).state, InstanceState::Stopped);
        reopened.control.start_instances(&ids(&id), false).unwrap();
        reopened.settle().await;
        assert_eq!(reopened.instance(&id).state, InstanceState::Running);
        assert_eq!(h.hypervisor.resumes(), 1);
    }

    #[tokio::test]
    async fn terminating_deletes_the_saved_state() {
        let h = Harness::new().await;
        let id = hibernated(&h).await;
        let file = h.instance(&id).hibernation.expect("hibernated").state_file;
        assert!(file.exists());
        h.control.terminate_instances(&ids(&id), false).unwrap();
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        assert!(!file.exists());
    }

    #[tokio::test]
    async fn terminate_during_a_hibernation_wins_and_leaves_no_state() {
        let h = Harness::new().await;
        let id = hibernatable(&h).await;
        h.control
            .hibernate_instances(&ids(&id), false, false)
            .unwrap();
        let steps = h.control.start_instance_steps();
        // The guest is being saved (the fake yields) when the user terminates.
        tokio::task::yield_now().await;
        h.control.terminate_instances(&ids(&id), false).unwrap();
        for step in steps {
            step.await.unwrap();
        }
        h.settle().await;
        let instance = h.instance(&id);
        assert_eq!(instance.state, InstanceState::Terminated);
        assert!(instance.hibernation.is_none());
        assert!(!h.control.state_file(&id).exists());
    }

    #[tokio::test]
    async fn a_failed_save_ends_in_a_normal_stop() {
        let h = Harness::new().await;
        let id = hibernatable(&h).await;
        h.hypervisor.fail_hibernations_of(&id);
        h.control
            .hibernate_instances(&ids(&id), false, false)
            .unwrap();
        h.settle().await;
        let stopped = h.instance(&id);
        assert_eq!(stopped.state, InstanceState::Stopped);
        assert!(stopped.hibernation.is_none());
        assert_eq!(
            stopped.state_reason.expect("reason").code,
            "Client.UserInitiatedShutdown"
        );
        h.control.start_instances(&ids(&id), false).unwrap();
        h.settle().await;
        assert_eq!((h.hypervisor.launches(), h.hypervisor.resumes()), (2, 0));
    }

    #[tokio::test]
    async fn a_hibernated_instance_keeps_its_type_and_boots_afresh_if_its_disks_changed() {
        let h = Harness::new().await;
        let id = hibernated(&h).await;
        let refused = h.control.modify_instance_attribute(
            &id,
            crate::instances::AttributeChange::InstanceType("t3.large".into()),
            false,
        );
        assert!(
            matches!(refused, Err(Error::IncorrectInstanceState(_))),
            "{refused:?}"
        );
        let volume = h.create_volume();
        h.settle().await;
        h.control
            .attach_volume(&volume, &id, "/dev/sdf", false)
            .unwrap();
        h.settle().await;
        h.control.start_instances(&ids(&id), false).unwrap();
        h.settle().await;
        let running = h.instance(&id);
        assert_eq!(running.state, InstanceState::Running);
        assert!(!h.hypervisor.was_resumed(&id));
        assert_eq!((h.hypervisor.launches(), h.hypervisor.resumes()), (2, 0));
        assert!(!h.control.state_file(&id).exists());
    }
}
