//! AttachVolume and DetachVolume. The call records `attaching` / `detaching`; the reconciler
//! hot-plugs or unplugs the disk of a running VM (a stopped instance just gets the volume on
//! its next start) and settles the volume `in-use` or `available`. A detach is refused while
//! the attachment is still `attaching`, as EC2 does, so a late hot-plug never undoes it.

use crate::describe::existing;
use crate::instances::{Instance, InstanceDisk, InstanceState};
use crate::volumes::{Attachment, AttachmentState, Volume, VolumeState};
use crate::{Control, Error, Result};

fn valid_device_name(device: &str) -> bool {
    let tail = device
        .strip_prefix("/dev/sd")
        .or_else(|| device.strip_prefix("/dev/xvd"));
    matches!(tail, Some(t) if !t.is_empty() && t.len() <= 3 && t.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
}

impl Control {
    pub fn attach_volume(
        &self,
        volume_id: &str,
        instance_id: &str,
        device: &str,
        dry_run: bool,
    ) -> Result<Attachment> {
        if !valid_device_name(device) {
            return Err(Error::InvalidParameterValue(format!("Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name.")));
        }
        let attachment = self.mutate(|txn| {
            let mut volume = existing::<Volume>(txn.state(), volume_id)?.clone();
            let mut instance = existing::<Instance>(txn.state(), instance_id)?.clone();
            if volume.state != VolumeState::Available {
                return Err(Error::IncorrectState(format!(
                    "vol '{volume_id}' is not 'available' (it is '{}').",
                    volume.state.as_str()
                )));
            }
            if !matches!(instance.state, InstanceState::Running | InstanceState::Stopped) {
                return Err(Error::IncorrectInstanceState(format!(
                    "Instance '{instance_id}' is not 'running' or 'stopped' (it is '{}').",
                    instance.state.as_str()
                )));
            }
            if volume.availability_zone != instance.availability_zone {
                return Err(Error::VolumeInOtherZone(format!(
                    "The volume '{volume_id}' is not in the same availability zone as instance '{instance_id}'"
                )));
            }
            if instance.disks.iter().any(|d| d.device_name == device) {
                return Err(Error::InvalidParameterValue(format!(
                    "Attachment point {device} is already in use"
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let running = instance.state == InstanceState::Running;
            let attachment = Attachment {
                instance_id: instance_id.to_owned(),
                device: device.to_owned(),
                state: if running {
                    AttachmentState::Attaching
                } else {
                    AttachmentState::Attached
                },
                attach_time: nimbus_core::now_millis(),
                delete_on_termination: false,
            };
            volume.attachments = vec![attachment.clone()];
            volume.state = VolumeState::InUse;
            instance.disks.push(InstanceDisk {
                device_name: device.to_owned(),
                volume_id: volume_id.to_owned(),
            });
            txn.put(volume)?;
            txn.put(instance)?;
            Ok(attachment)
        })?;
        self.wake_reconciler();
        Ok(attachment)
    }

    pub fn detach_volume(
        &self,
        volume_id: &str,
        instance_id: Option<&str>,
        device: Option<&str>,
        dry_run: bool,
    ) -> Result<(String, Attachment)> {
        let outcome = self.mutate(|txn| {
            let mut volume = existing::<Volume>(txn.state(), volume_id)?.clone();
            let Some(attachment) = volume.attachments.first().cloned() else {
                return Err(Error::IncorrectState(format!(
                    "Volume '{volume_id}' is in the 'available' state."
                )));
            };
            if instance_id.is_some_and(|id| id != attachment.instance_id)
                || device.is_some_and(|d| d != attachment.device)
            {
                return Err(Error::NotAttached(format!(
                    "Volume '{volume_id}' is not attached to the given instance or device."
                )));
            }
            let mut instance = existing::<Instance>(txn.state(), &attachment.instance_id)?.clone();
            if attachment.device == instance.root_device_name
                && instance.state != InstanceState::Stopped
            {
                return Err(Error::OperationNotPermitted(format!(
                    "Unable to detach root volume '{volume_id}' from instance '{}'",
                    instance.instance_id
                )));
            }
            match attachment.state {
                AttachmentState::Detaching => {
                    return Ok((instance.instance_id.clone(), attachment))
                }
                // As in EC2: an attachment still being made cannot be undone yet.
                AttachmentState::Attaching => {
                    return Err(Error::IncorrectState(format!(
                        "Volume '{volume_id}' is in the 'attaching' state."
                    )))
                }
                AttachmentState::Attached => {}
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let running = instance.state == InstanceState::Running;
            let mut reported = attachment.clone();
            reported.state = AttachmentState::Detaching;
            if running {
                volume.attachments[0].state = AttachmentState::Detaching;
            } else {
                volume.attachments.clear();
                volume.state = VolumeState::Available;
                instance.disks.retain(|d| d.volume_id != volume_id);
                txn.put(instance.clone())?;
            }
            txn.put(volume)?;
            Ok((instance.instance_id.clone(), reported))
        })?;
        self.wake_reconciler();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_device_name;

    #[test]
    fn device_names() {
        for good in ["/dev/sdf", "/dev/xvdb", "/dev/sdba"] {
            assert!(valid_device_name(good), "{good}");
        }
        for bad in ["sdf", "/dev/sd", "/dev/vdb", "/dev/sdF", "/dev/sdf/../x"] {
            assert!(!valid_device_name(bad), "{bad}");
        }
    }
}
