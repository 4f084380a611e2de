//! DescribeInstanceStatus's checks, observed rather than stored: the **system** check passes
//! while the instance's QEMU runs and every volume it boots with is in the block store; the
//! **instance** check passes while the guest's vCPUs run (a paused VM fails it) and, once the
//! guest has written to its heartbeat port (`compute::heartbeat`), while it keeps doing so:
//! a hung kernel stops beating. A check is `initializing` from a VM's launch until its first reading, then
//! `ok` or `impaired` (with the time it first failed). Readings are taken every
//! [`CHECK_PERIOD`] and when the reconciler finds a VM gone; they live in memory, as they
//! describe VMs that a restart re-adopts and checks again. The collectors publish them as
//! the StatusCheckFailed metrics (`metering.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::instances::{Instance, InstanceState};
use crate::kinds::Tables;
use crate::Control;

/// How often the checks are read: one QMP `query-status` per running VM.
pub const CHECK_PERIOD: Duration = Duration::from_secs(1);

/// Both checks of every running instance, every [`CHECK_PERIOD`].
pub(crate) struct StatusChecks(pub(crate) Arc<Control>);

#[async_trait::async_trait]
impl engine::Reconciler for StatusChecks {
    fn name(&self) -> &'static str {
        "status-checks"
    }

    async fn pass(&self) {
        self.0.check_instances().await;
    }

    async fn wait(&self) {
        tokio::time::sleep(CHECK_PERIOD).await;
    }
}

/// A guest that beats every second and has not for this long makes no progress.
pub const HEARTBEAT_SILENCE_MS: i64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    Initializing,
    Ok,
    Impaired,
    /// The instance is not running: nothing to check.
    NotApplicable,
}

impl CheckStatus {
    /// The check's `Status` (`ok`, `impaired`, `initializing`, `not-applicable`).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Initializing => "initializing",
            CheckStatus::Ok => "ok",
            CheckStatus::Impaired => "impaired",
            CheckStatus::NotApplicable => "not-applicable",
        }
    }

    /// The `reachability` detail's status (`passed`, `failed`, …).
    pub fn detail(self) -> &'static str {
        match self {
            CheckStatus::Initializing => "initializing",
            CheckStatus::Ok => "passed",
            CheckStatus::Impaired => "failed",
            CheckStatus::NotApplicable => "not-applicable",
        }
    }
}

/// One check's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub status: CheckStatus,
    /// When it began failing (milliseconds since the epoch), while impaired.
    pub impaired_since: Option<i64>,
}

impl Check {
    const INITIALIZING: Check = Check {
        status: CheckStatus::Initializing,
        impaired_since: None,
    };

    /// The check after a reading: `passed` or not; a failing check keeps its first failure.
    fn after(self, passed: bool, now: i64) -> Check {
        if passed {
            Check {
                status: CheckStatus::Ok,
                impaired_since: None,
            }
        } else {
            Check {
                status: CheckStatus::Impaired,
                impaired_since: self.impaired_since.or(Some(now)),
            }
        }
    }

    pub fn failed(self) -> bool {
        self.status == CheckStatus::Impaired
    }
}

/// An instance's two checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceChecks {
    pub system: Check,
    pub instance: Check,
}

impl InstanceChecks {
    const INITIALIZING: InstanceChecks = InstanceChecks {
        system: Check::INITIALIZING,
        instance: Check::INITIALIZING,
    };

    pub const NOT_APPLICABLE: InstanceChecks = InstanceChecks {
        system: Check {
            status: CheckStatus::NotApplicable,
            impaired_since: None,
        },
        instance: Check {
            status: CheckStatus::NotApplicable,
            impaired_since: None,
        },
    };
}

/// The latest checks of each running instance.
#[derive(Default)]
pub struct StatusTable(Mutex<HashMap<String, InstanceChecks>>);

impl StatusTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, InstanceChecks>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new VM runs for the instance: its checks start over.
    pub(crate) fn launched(&self, instance_id: &str) {
        self.lock()
            .insert(instance_id.to_owned(), InstanceChecks::INITIALIZING);
    }

    /// Records a reading of both checks.
    pub(crate) fn record(&self, instance_id: &str, system_passed: bool, instance_passed: bool) {
        let now = nimbus_core::now_millis();
        let mut table = self.lock();
        let checks = table
            .entry(instance_id.to_owned())
            .or_insert(InstanceChecks::INITIALIZING);
        checks.system = checks.system.after(system_passed, now);
        checks.instance = checks.instance.after(instance_passed, now);
    }

    pub(crate) fn forget(&self, instance_id: &str) {
        self.lock().remove(instance_id);
    }

    fn get(&self, instance_id: &str) -> Option<InstanceChecks> {
        self.lock().get(instance_id).copied()
    }
}

impl Control {
    /// The status checks of an instance as DescribeInstanceStatus shows them.
    pub fn status_checks(&self, instance: &Instance) -> InstanceChecks {
        if instance.state != InstanceState::Running {
            return InstanceChecks::NOT_APPLICABLE;
        }
        self.statuses
            .get(&instance.instance_id)
            .unwrap_or(InstanceChecks::INITIALIZING)
    }

    /// Reads both checks of every running instance that has a VM on this host.
    pub(crate) async fn check_instances(&self) {
        let running: Vec<Instance> = self
            .read()
            .instances()
            .values()
            .filter(|i| i.state == InstanceState::Running)
            .cloned()
            .collect();
        for instance in running {
            let id = &instance.instance_id;
            let Some(running) = self.vms.get(id) else {
                // A running instance without a VM: it died and awaits recovery or a stop.
                self.statuses.record(id, false, false);
                continue;
            };
            let vm = &running.vm;
            let alive = !vm.has_exited();
            let disks_present = instance
                .disks
                .iter()
                .all(|d| self.engine().volume_exists(&d.volume_id));
            let progressing = match vm.guest_running().await {
                Some(running) => running,
                // The VM is busy with another command: keep the last reading.
                None => !self.status_checks(&instance).instance.failed(),
            };
            let now = nimbus_core::now_millis();
            let beating = vm
                .last_heartbeat_ms()
                .is_none_or(|last| now - last <= HEARTBEAT_SILENCE_MS);
            self.statuses
                .record(id, alive && disks_present, alive && progressing && beating);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CheckStatus;
    use crate::testkit::Harness;

    #[tokio::test]
    async fn checks_initialize_then_follow_the_vm() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let checks = h.control.status_checks(&h.instance(&id));
        assert_eq!(checks.system.status, CheckStatus::Initializing);
        h.control.check_instances().await;
        let checks = h.control.status_checks(&h.instance(&id));
        assert_eq!(checks.system.status, CheckStatus::Ok);
        assert_eq!(checks.instance.status, CheckStatus::Ok);

        // A hung guest fails the instance check only, and keeps its first failure time.
        h.hypervisor.set_paused(&id, true);
        h.control.check_instances().await;
        let hung = h.control.status_checks(&h.instance(&id));
        assert_eq!(hung.system.status, CheckStatus::Ok);
        assert_eq!(hung.instance.status, CheckStatus::Impaired);
        h.control.check_instances().await;
        let still = h.control.status_checks(&h.instance(&id));
        assert_eq!(still.instance.impaired_since, hung.instance.impaired_since);

        h.hypervisor.set_paused(&id, false);
        h.control.check_instances().await;
        let back = h.control.status_checks(&h.instance(&id));
        assert_eq!(back.instance.status, CheckStatus::Ok);
        assert_eq!(back.instance.impaired_since, None);
    }

    #[tokio::test]
    async fn a_guest_that_stops_beating_fails_its_instance_check() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let now = nimbus_core::now_millis();
        h.hypervisor.beat(&id, now);
        h.control.check_instances().await;
        let checks = h.control.status_checks(&h.instance(&id));
        assert_eq!(checks.instance.status, CheckStatus::Ok);
        h.hypervisor
            .beat(&id, now - 2 * super::HEARTBEAT_SILENCE_MS);
        h.control.check_instances().await;
        let checks = h.control.status_checks(&h.instance(&id));
        assert_eq!(checks.instance.status, CheckStatus::Impaired);
        assert_eq!(checks.system.status, CheckStatus::Ok);
    }

    #[tokio::test]
    async fn a_stopped_instance_has_nothing_to_check() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        h.control
            .stop_instances(std::slice::from_ref(&id), false, false)
            .unwrap();
        h.settle().await;
        let checks = h.control.status_checks(&h.instance(&id));
        assert_eq!(checks.system.status, CheckStatus::NotApplicable);
    }
}
