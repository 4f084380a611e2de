//! EC2 as a CloudWatch alarm sees it: an alarm's `arn:aws:automate:REGION:ec2:ACTION` runs
//! the same stop, terminate and reboot paths as the API does, as the account owner.

use std::sync::Arc;

use nimbus_core::metrics::{InstanceAction, InstanceActions};

use crate::Control;

/// The [`InstanceActions`] that CloudWatch's evaluator is handed.
pub struct AlarmActions(pub Arc<Control>);

impl InstanceActions for AlarmActions {
    fn act(&self, instance_id: &str, action: InstanceAction) -> Result<(), String> {
        let ids = [instance_id.to_owned()];
        let control = &self.0;
        let outcome = match action {
            InstanceAction::Stop => control.stop_instances(&ids, false, false).map(|_| ()),
            InstanceAction::Terminate => control.terminate_instances(&ids, false).map(|_| ()),
            InstanceAction::Reboot => control.reboot_instances(&ids, false),
            InstanceAction::Recover => {
                return Err("Recovering an instance is not available in nimbus yet.".into())
            }
        };
        outcome.map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::InstanceState;
    use crate::testkit::Harness;

    #[tokio::test]
    async fn stops_reboots_and_terminates_through_control() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let actions = AlarmActions(h.control.clone());
        actions.act(&id, InstanceAction::Reboot).expect("reboot");
        actions.act(&id, InstanceAction::Stop).expect("stop");
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Stopped);
        assert!(actions.act(&id, InstanceAction::Recover).is_err());
        actions
            .act(&id, InstanceAction::Terminate)
            .expect("terminate");
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
        let unknown = actions.act("i-0000000000000000f", InstanceAction::Stop);
        assert!(unknown.expect_err("unknown").contains("does not exist"));
    }
}
