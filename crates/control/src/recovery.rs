//! Instance recovery, as EC2's simplified automatic recovery and the CloudWatch `recover`
//! action do it: the instance keeps its ID, private IP, SSH port and volumes (reattached
//! from the block store) and gets a new VM. nimbus appends a line saying so to the console
//! before the new boot's output.
//!
//! A VM that exits is looked at once: if its guest powered off (QEMU's `SHUTDOWN` event
//! from the guest) the instance stops or terminates by its shutdown behavior; if it died
//! under the guest (`kill -9`, a crash) the system check fails and, with
//! `MaintenanceOptions.AutoRecovery` `default`, a recovery is requested; with `disabled`
//! the instance ends `stopped` with the state reason `Server.InternalError`.
//!
//! A recovery request is a wish (`recovery_requested`, which bumps the generation), so the
//! reconciler's fencing applies: a terminate or stop that lands during a recovery wins, and
//! the VM launched for the superseded recovery is killed by the next pass.

use std::sync::Arc;

use compute::ExitCause;
use nimbus_core::metrics::{InstanceAction, InstanceActions};

use crate::describe::existing;
use crate::instance_reconciler::{compute_error, still_wanted, RunningVm};
use crate::instances::StateReason;
use crate::instances::{incorrect_instance_state, AutoRecovery, Instance, InstanceState};
use crate::{Control, Result};

/// The state reason of an instance stopped because its VM died and recovery is disabled.
/// EC2 has no closer code for a host-side failure (`Server.InternalError`: "An internal
/// error caused the instance to …").
pub const HOST_FAILURE_CODE: &str = "Server.InternalError";

impl Control {
    /// Recovers a running instance on a new VM (the CloudWatch `recover` action).
    pub fn recover_instance(&self, instance_id: &str) -> Result<()> {
        self.mutate(|txn| {
            let mut instance = existing::<Instance>(txn.state(), instance_id)?.clone();
            if instance.state != InstanceState::Running {
                return Err(incorrect_instance_state(
                    &instance,
                    instance.state,
                    "recovered",
                ));
            }
            if !instance.recovery_requested {
                instance.recovery_requested = true;
                instance.generation += 1;
                txn.put(instance)?;
            }
            Ok(())
        })?;
        self.wake_reconciler();
        Ok(())
    }

    /// The VM of a running instance is gone (or was not found after a restart).
    pub(crate) async fn vm_gone(
        &self,
        instance: &Instance,
        gone: Option<Arc<RunningVm>>,
    ) -> Result<()> {
        let id = &instance.instance_id;
        let cause = match &gone {
            Some(running) => running.vm.exit_cause().await,
            // Nothing to ask after a restart: the host lost the VM.
            None => ExitCause::Lost,
        };
        self.vms.remove(id);
        if cause == ExitCause::GuestShutdown {
            self.statuses.forget(id);
            return self.guest_stopped(instance);
        }
        tracing::warn!(
            instance = id,
            auto_recovery = instance.auto_recovery.as_str(),
            "the VM died under its guest"
        );
        self.statuses.record(id, false, false);
        let recover = instance.auto_recovery == AutoRecovery::Default;
        self.mutate(|txn| {
            let Some(mut current) = still_wanted(txn, instance) else {
                return Ok(());
            };
            if recover {
                current.recovery_requested = true;
                current.generation += 1;
            } else {
                let message = "Server.InternalError: The instance's host process failed and automatic recovery is disabled.";
                current.state = InstanceState::Stopped;
                current.state_reason = Some(StateReason {
                    code: HOST_FAILURE_CODE.into(),
                    message: message.into(),
                });
                current.state_transition_reason = format!(
                    "Server initiated ({})",
                    nimbus_core::iso8601_millis(nimbus_core::now_millis())
                );
            }
            Ok(txn.put(current)?)
        })?;
        self.wake_reconciler();
        Ok(())
    }

    /// Replaces the instance's VM (if any is left) by a new one with the same disks.
    pub(crate) async fn recover(
        self: &Arc<Self>,
        instance: &Instance,
        old: Option<Arc<RunningVm>>,
    ) -> Result<()> {
        let id = &instance.instance_id;
        if let Some(old) = old {
            old.vm.kill().await.map_err(compute_error)?;
            self.vms.remove(id);
        }
        self.note_on_console(
            id,
            &format!(
                "nimbus: instance {id} recovered at {}: its VM failed and a new one boots with the same volumes",
                nimbus_core::iso8601_millis(nimbus_core::now_millis())
            ),
        );
        let running = self.launch(instance).await?;
        self.vms.insert(id, running);
        self.statuses.launched(id);
        tracing::info!(instance = id, "instance recovered on a new VM");
        self.settle_instance(instance, |current| {
            current.recovery_requested = false;
        })
    }

    /// Appends a line of nimbus's own to the instance's console log.
    fn note_on_console(&self, instance_id: &str, line: &str) {
        let run_dir = self.instance_run_dir(instance_id);
        let written =
            std::fs::create_dir_all(&run_dir).and_then(|()| compute::console::note(&run_dir, line));
        if let Err(error) = written {
            tracing::warn!(instance = instance_id, %error, "the recovery note was not written to the console");
        }
    }
}

/// EC2 as a CloudWatch alarm acts on it: as the owner would through the API.
impl InstanceActions for Control {
    fn act(&self, instance_id: &str, action: InstanceAction) -> std::result::Result<(), String> {
        let ids = [instance_id.to_owned()];
        let done = match action {
            InstanceAction::Stop => self.stop_instances(&ids, false, false).map(|_| ()),
            InstanceAction::Terminate => self.terminate_instances(&ids, false).map(|_| ()),
            InstanceAction::Reboot => self.reboot_instances(&ids, false),
            InstanceAction::Recover => self.recover_instance(instance_id),
        };
        done.map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use nimbus_core::metrics::{InstanceAction, InstanceActions};

    use crate::instances::{AutoRecovery, InstanceState};
    use crate::status_checks::CheckStatus;
    use crate::testkit::Harness;

    #[tokio::test]
    async fn a_dead_vm_is_recovered_with_its_id_ip_and_volumes() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let data = h.create_volume();
        h.settle().await;
        h.control
            .attach_volume(&data, &id, "/dev/sdf", false)
            .unwrap();
        h.settle().await;
        let before = h.instance(&id);
        h.hypervisor.crash(&id);
        h.settle().await;
        let after = h.instance(&id);
        assert_eq!(after.state, InstanceState::Running);
        assert!(!after.recovery_requested);
        assert_eq!(after.private_ip, before.private_ip);
        assert_eq!(after.disks, before.disks);
        assert_eq!(h.hypervisor.launches(), 2);
        assert!(h.hypervisor.is_running(&id));
        let mut disks = h.hypervisor.disks(&id);
        disks.sort();
        assert_eq!(disks, ["/dev/sdf".to_owned(), before.root_device_name]);
        assert!(h.control.console_output(&id).unwrap().contains("recovered"));
        h.control.check_instances().await;
        assert_eq!(
            h.control.status_checks(&after).system.status,
            CheckStatus::Ok
        );
    }

    #[tokio::test]
    async fn without_auto_recovery_a_dead_vm_leaves_the_instance_stopped() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.control
            .modify_maintenance_options(&id, Some("disabled"), false)
            .unwrap();
        assert_eq!(h.instance(&id).auto_recovery, AutoRecovery::Disabled);
        h.hypervisor.crash(&id);
        h.settle().await;
        let instance = h.instance(&id);
        assert_eq!(instance.state, InstanceState::Stopped);
        assert_eq!(
            instance.state_reason.map(|r| r.code).as_deref(),
            Some(super::HOST_FAILURE_CODE)
        );
        assert_eq!(h.hypervisor.launches(), 1);
    }

    #[tokio::test]
    async fn a_guest_power_off_is_no_failure() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.hypervisor.power_off(&id);
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Stopped);
        assert_eq!(h.hypervisor.launches(), 1);
    }

    #[tokio::test]
    async fn a_terminate_during_a_recovery_ends_terminated() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.control
            .act(&id, InstanceAction::Recover)
            .expect("recover action");
        let steps = h.control.start_instance_steps();
        // The new VM is booting (the fake yields inside the launch) when the user terminates.
        tokio::task::yield_now().await;
        h.control
            .terminate_instances(std::slice::from_ref(&id), false)
            .unwrap();
        for step in steps {
            step.await.unwrap();
        }
        assert_eq!(h.instance(&id).state, InstanceState::ShuttingDown);
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        assert!(!h.hypervisor.is_running(&id));
    }

    #[tokio::test]
    async fn a_vm_that_died_while_nimbus_was_down_is_recovered_after_the_restart() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.hypervisor.crash(&id);
        let reopened = h.reopen();
        reopened.settle().await;
        assert_eq!(reopened.instance(&id).state, InstanceState::Running);
        assert_eq!(h.hypervisor.launches(), 2);
        assert!(h.hypervisor.is_running(&id));
    }

    #[tokio::test]
    async fn only_a_running_instance_can_be_recovered() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let refused = h.control.recover_instance(&id);
        assert!(
            matches!(refused, Err(crate::Error::IncorrectInstanceState(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn alarm_actions_stop_reboot_and_terminate_as_the_api_does() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let actions: &dyn InstanceActions = h.control.as_ref();
        actions.act(&id, InstanceAction::Reboot).expect("reboot");
        actions.act(&id, InstanceAction::Stop).expect("stop");
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Stopped);
        actions
            .act(&id, InstanceAction::Terminate)
            .expect("terminate");
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        let unknown = actions.act("i-0000000000000000f", InstanceAction::Stop);
        assert!(unknown.expect_err("unknown").contains("does not exist"));
    }
}
