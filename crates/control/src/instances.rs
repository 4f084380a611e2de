//! Instances: RunInstances, DescribeInstances, DescribeInstanceStatus, Start/Stop/Reboot/
//! TerminateInstances, instance attributes and metadata options. API calls record the desired
//! state (`pending`, `stopping`, `shutting-down`, a reboot request); the reconciler drives the
//! VMs (see `instance_reconciler.rs`). States follow EC2:
//! `pending → running → stopping → stopped → pending …`, `* → shutting-down → terminated`.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::catalog::find_instance_type;
use crate::credentials::{
    resolve_instance_profile, InstanceProfileAssociation, InstanceProfileSpecification,
};
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::hibernation::Hibernation;
use crate::idempotency::ClientToken;
use crate::images::Image;
use crate::keypairs::KeyPair;
use crate::keypairs::KeyPairQueries;
use crate::kinds::Tables;
use crate::launch_options::{CpuCredits, InstanceOptions, LaunchOptionsInput};
use crate::snapshots::Snapshot;
use crate::volume_types::{self, VolumeType};
use crate::volumes::{Attachment, AttachmentState, Volume, VolumeState};
use crate::vpc::interfaces::{private_dns_name, Allocator, InstanceNetwork, NetworkRequest};
use crate::vpc::network_interfaces::ExtraInterface;
use crate::{Control, Error, Resource, Result, State, Tags, Txn};

/// DescribeInstances's MaxResults bounds.
const DESCRIBE_INSTANCES_PAGING: Paging = Paging::within_without_ids(5, 1000, "instancesSet");

/// How long terminated instances stay visible, as in EC2 (about an hour).
pub const TERMINATED_VISIBLE_MILLIS: i64 = 60 * 60 * 1000;
/// EC2 limits user data to 16 KiB before base64.
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// EC2's numeric state code.
    pub fn code(self) -> u16 {
        match self {
            InstanceState::Pending => 0,
            InstanceState::Running => 16,
            InstanceState::ShuttingDown => 32,
            InstanceState::Terminated => 48,
            InstanceState::Stopping => 64,
            InstanceState::Stopped => 80,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataOptions {
    /// `optional` (IMDSv1 and v2) or `required` (v2 only).
    pub http_tokens: String,
    /// `enabled` or `disabled`.
    pub http_endpoint: String,
    pub http_put_response_hop_limit: i64,
    /// `enabled` or `disabled`: tags under `meta-data/tags/instance`.
    pub instance_metadata_tags: String,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            http_tokens: "optional".into(),
            http_endpoint: "enabled".into(),
            http_put_response_hop_limit: 1,
            instance_metadata_tags: "disabled".into(),
        }
    }
}

/// What a guest powering itself off does to its instance (`InstanceInitiatedShutdownBehavior`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownBehavior {
    Stop,
    Terminate,
}

impl ShutdownBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownBehavior::Stop => "stop",
            ShutdownBehavior::Terminate => "terminate",
        }
    }

    pub fn parse(value: &str) -> Result<ShutdownBehavior> {
        match value {
            "stop" => Ok(ShutdownBehavior::Stop),
            "terminate" => Ok(ShutdownBehavior::Terminate),
            other => Err(Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter InstanceInitiatedShutdownBehavior is invalid."
            ))),
        }
    }
}

/// `MaintenanceOptions.AutoRecovery`: whether a running instance whose VM dies under it is
/// recovered (a new VM for the same instance) or stopped. On by default, as in EC2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoRecovery {
    #[default]
    Default,
    Disabled,
}

impl AutoRecovery {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoRecovery::Default => "default",
            AutoRecovery::Disabled => "disabled",
        }
    }

    pub fn parse(value: &str) -> Result<AutoRecovery> {
        match value {
            "default" => Ok(AutoRecovery::Default),
            "disabled" => Ok(AutoRecovery::Disabled),
            other => Err(Error::InvalidParameterValue(format!(
                "Value ({other}) for parameter AutoRecovery is invalid. Valid values: default, disabled."
            ))),
        }
    }
}

/// Why an instance last changed state, as EC2 reports it (`Client.UserInitiatedShutdown`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    pub code: String,
    pub message: String,
}

/// Format 1 kept the state reason as one string, `Code: message`; format 2 keeps the code
/// apart, for the `state-reason-code` filter.
pub fn migrate_state_reason(record: &mut serde_json::Value) -> std::result::Result<(), String> {
    let object = record
        .as_object_mut()
        .ok_or("an instance record is not an object")?;
    if let Some(serde_json::Value::String(text)) = object.get("state_reason").cloned() {
        let code = text.split(':').next().unwrap_or_default().trim().to_owned();
        object.insert(
            "state_reason".into(),
            serde_json::json!({ "code": code, "message": text }),
        );
    }
    Ok(())
}

/// Format 3: an instance profile carries the ID and time of its association (format 2 had
/// the profile's ARN and ID only; its association dates from the launch).
pub fn migrate_profile_association(
    record: &mut serde_json::Value,
) -> std::result::Result<(), String> {
    let launch_time = record.get("launch_time").cloned();
    let Some(profile) = record
        .get_mut("iam_instance_profile")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return Ok(());
    };
    profile.insert(
        "association_id".into(),
        nimbus_core::new_id("iip-assoc").into(),
    );
    profile.insert(
        "associated_at".into(),
        launch_time.unwrap_or_else(|| 0.into()),
    );
    Ok(())
}

/// A volume attached to an instance, by device name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceDisk {
    pub device_name: String,
    pub volume_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub reservation_id: String,
    pub ami_launch_index: u32,
    pub image_id: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    pub state: InstanceState,
    pub state_reason: Option<StateReason>,
    pub state_transition_reason: String,
    pub launch_time: i64,
    pub availability_zone: String,
    pub client_token: Option<String>,
    /// Base64, as the API carries it.
    pub user_data: Option<String>,
    pub root_device_name: String,
    pub disks: Vec<InstanceDisk>,
    pub metadata_options: MetadataOptions,
    pub shutdown_behavior: ShutdownBehavior,
    /// Set by RebootInstances; the reconciler resets the VM and clears it.
    pub reboot_requested: bool,
    /// Set by StopInstances with Force.
    pub force_stop: bool,
    pub private_ip: String,
    pub terminated_at: Option<i64>,
    pub tags: Tags,
    /// Bumped by every request that changes what the user wants of the instance (its state,
    /// a forced stop, a reboot); a reconciler step records its outcome only if the
    /// generation is still the one it started from (see `instance_reconciler.rs`).
    #[serde(default)]
    pub generation: u64,
    /// Absent in records written before instance profiles existed.
    #[serde(default)]
    pub iam_instance_profile: Option<InstanceProfileAssociation>,
    /// Detailed monitoring (`Monitoring.State` `enabled`): 1-minute metrics instead of 5.
    #[serde(default)]
    pub detailed_monitoring: bool,
    #[serde(default)]
    pub auto_recovery: AutoRecovery,
    /// The VM is to be replaced by a new one for the same instance: its QEMU died under it
    /// (with auto-recovery) or a CloudWatch `recover` action asked. A wish, so it bumps the
    /// generation: a terminate during a recovery wins.
    #[serde(default)]
    pub recovery_requested: bool,
    /// The primary network interface; absent in records written before VPCs existed.
    #[serde(default)]
    pub network: Option<InstanceNetwork>,
    /// The primary interface's tags: it has no record of its own, CreateTags on its ID lands
    /// here. Absent in older records.
    #[serde(default)]
    pub network_tags: Tags,
    /// Termination and stop protection, EBS optimization, CPU credits, capacity reservation
    /// preference, hibernation. Absent in older records, which had the defaults.
    #[serde(default)]
    pub options: InstanceOptions,
    /// Set by StopInstances with `Hibernate`: the stop saves the guest's memory. A wish, so
    /// it bumps the generation.
    #[serde(default)]
    pub hibernate_requested: bool,
    /// The guest's saved memory and device state while the instance is hibernated: the
    /// next start resumes it (see `hibernation.rs`).
    #[serde(default)]
    pub hibernation: Option<Hibernation>,
}

impl Instance {
    /// What the user wants of the instance, as far as the reconciler acts on it.
    fn wish(&self) -> (InstanceState, bool, bool, bool, bool) {
        (
            self.state,
            self.force_stop,
            self.reboot_requested,
            self.recovery_requested,
            self.hibernate_requested,
        )
    }

    pub fn private_dns_name(&self, region: &str) -> String {
        match &self.network {
            Some(network) => private_dns_name(network.primary_ip(), region),
            None => format!("ip-{}.ec2.internal", self.private_ip.replace('.', "-")),
        }
    }

    /// The interface while the instance has one: a terminated instance has none.
    pub fn live_network(&self) -> Option<&InstanceNetwork> {
        self.network
            .as_ref()
            .filter(|_| self.state != InstanceState::Terminated)
    }

    /// The CPU credit option (`standard` / `unlimited`) while its type is burstable.
    pub fn cpu_credits(&self) -> Option<CpuCredits> {
        let instance_type = find_instance_type(&self.instance_type)?;
        self.options.cpu_credits(instance_type)
    }

    pub fn decoded_user_data(&self) -> Option<Vec<u8>> {
        let text = self.user_data.as_deref()?;
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    }
}

impl Filterable for Instance {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("instance-id", |i, _| vec![i.instance_id.clone()]),
        ("image-id", |i, _| vec![i.image_id.clone()]),
        ("instance-type", |i, _| vec![i.instance_type.clone()]),
        ("key-name", |i, _| {
            vec![i.key_name.clone().unwrap_or_default()]
        }),
        ("instance-state-name", |i, _| vec![i.state.as_str().into()]),
        ("instance-state-code", |i, _| {
            vec![i.state.code().to_string()]
        }),
        ("state-reason-code", |i, _| {
            i.state_reason.iter().map(|r| r.code.clone()).collect()
        }),
        ("state-reason-message", |i, _| {
            i.state_reason.iter().map(|r| r.message.clone()).collect()
        }),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
        ("availability-zone", |i, _| {
            vec![i.availability_zone.clone()]
        }),
        ("reservation-id", |i, _| vec![i.reservation_id.clone()]),
        ("launch-index", |i, _| vec![i.ami_launch_index.to_string()]),
        ("launch-time", |i, _| {
            vec![nimbus_core::iso8601_millis(i.launch_time)]
        }),
        ("client-token", |i, _| {
            vec![i.client_token.clone().unwrap_or_default()]
        }),
        ("private-ip-address", |i, _| vec![i.private_ip.clone()]),
        ("private-dns-name", |i, config| {
            vec![i.private_dns_name(&config.region)]
        }),
        ("vpc-id", |i, _| {
            i.live_network()
                .map(|n| n.vpc_id.clone())
                .into_iter()
                .collect()
        }),
        ("subnet-id", |i, _| {
            i.live_network()
                .map(|n| n.subnet_id.clone())
                .into_iter()
                .collect()
        }),
        ("ip-address", |i, _| {
            i.live_network()
                .and_then(|n| n.public_ip)
                .map(|ip| ip.to_string())
                .into_iter()
                .collect()
        }),
        ("instance.group-id", |i, _| {
            i.live_network()
                .map(|n| n.security_group_ids.clone())
                .unwrap_or_default()
        }),
        ("network-interface.network-interface-id", |i, _| {
            i.live_network()
                .map(|n| n.interface_id.clone())
                .into_iter()
                .collect()
        }),
        ("root-device-name", |i, _| vec![i.root_device_name.clone()]),
        ("root-device-type", |_, _| vec!["ebs".into()]),
        ("architecture", |_, _| vec!["x86_64".into()]),
        ("virtualization-type", |_, _| vec!["hvm".into()]),
        ("hypervisor", |_, _| vec!["xen".into()]),
        ("tenancy", |_, _| vec!["default".into()]),
        ("metadata-options.http-tokens", |i, _| {
            vec![i.metadata_options.http_tokens.clone()]
        }),
        ("metadata-options.http-endpoint", |i, _| {
            vec![i.metadata_options.http_endpoint.clone()]
        }),
        ("block-device-mapping.device-name", |i, _| {
            i.disks.iter().map(|d| d.device_name.clone()).collect()
        }),
        ("block-device-mapping.volume-id", |i, _| {
            i.disks.iter().map(|d| d.volume_id.clone()).collect()
        }),
        ("monitoring-state", |i, _| {
            vec![monitoring_state(i.detailed_monitoring).into()]
        }),
        ("hibernation-options.configured", |i, _| {
            vec![i.options.hibernation_configured.to_string()]
        }),
        ("iam-instance-profile.arn", |i, _| {
            i.iam_instance_profile
                .iter()
                .map(|p| p.arn.clone())
                .collect()
        }),
    ];
}

/// One `BlockDeviceMapping.N` of RunInstances.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlockDeviceMappingInput {
    pub device_name: Option<String>,
    pub ebs: Option<EbsInput>,
    pub no_device: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EbsInput {
    pub delete_on_termination: Option<bool>,
    pub iops: Option<u64>,
    pub snapshot_id: Option<String>,
    pub volume_size: Option<u64>,
    pub volume_type: Option<String>,
    pub throughput: Option<u64>,
    pub encrypted: Option<bool>,
}

/// What RunInstances asks for, already decoded.
#[derive(Clone, Debug, Default)]
pub struct RunInstancesRequest {
    pub image_id: String,
    pub instance_type: Option<String>,
    pub min_count: i64,
    pub max_count: i64,
    pub key_name: Option<String>,
    pub user_data: Option<String>,
    pub block_device_mappings: Vec<BlockDeviceMappingInput>,
    pub instance_tags: Tags,
    pub volume_tags: Tags,
    /// For the interfaces the launch makes: the primary one and new extra ones.
    pub interface_tags: Tags,
    pub client_token: Option<ClientToken>,
    pub client_token_text: Option<String>,
    pub metadata_options: MetadataOptions,
    pub availability_zone: Option<String>,
    pub shutdown_behavior: Option<String>,
    pub dry_run: bool,
    pub iam_instance_profile: Option<InstanceProfileSpecification>,
    /// `Monitoring.Enabled`: detailed monitoring from the start.
    pub detailed_monitoring: bool,
    /// `MaintenanceOptions.AutoRecovery`.
    pub auto_recovery: Option<String>,
    pub network: NetworkRequest,
    /// `NetworkInterfaces` at device index 1 and up.
    pub extra_interfaces: Vec<ExtraInterface>,
    /// Protection, EBS optimization, CPU credits and the options tools send at their defaults.
    pub options: LaunchOptionsInput,
}

/// One attribute ModifyInstanceAttribute changes.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeChange {
    InstanceType(String),
    /// Base64; `None` clears the user data.
    UserData(Option<String>),
    ShutdownBehavior(ShutdownBehavior),
    DisableApiTermination(bool),
    DisableApiStop(bool),
    EbsOptimized(bool),
}

/// A volume to create at launch for one device.
struct PlannedVolume {
    device_name: String,
    size_gib: u64,
    snapshot_id: Option<String>,
    volume_type: VolumeType,
    performance: volume_types::Performance,
    iops_provisioned: bool,
    delete_on_termination: bool,
}

pub fn validate_metadata_options(options: &MetadataOptions) -> Result<()> {
    let check = |value: &str, allowed: &[&str], name: &str| {
        if allowed.contains(&value) {
            Ok(())
        } else {
            Err(Error::InvalidParameterValue(format!(
                "Value ({value}) for parameter {name} is invalid."
            )))
        }
    };
    check(
        &options.http_tokens,
        &["optional", "required"],
        "HttpTokens",
    )?;
    check(
        &options.http_endpoint,
        &["enabled", "disabled"],
        "HttpEndpoint",
    )?;
    check(
        &options.instance_metadata_tags,
        &["enabled", "disabled"],
        "InstanceMetadataTags",
    )?;
    if !(1..=64).contains(&options.http_put_response_hop_limit) {
        return Err(Error::InvalidParameterValue(
            "HttpPutResponseHopLimit must be between 1 and 64.".into(),
        ));
    }
    Ok(())
}

fn validate_user_data(user_data: &Option<String>) -> Result<()> {
    let Some(text) = user_data else { return Ok(()) };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| {
            Error::InvalidParameterValue("Invalid BASE64 encoding of user data.".into())
        })?;
    if decoded.len() > MAX_USER_DATA_BYTES {
        return Err(Error::InvalidParameterValue(format!(
            "User data is limited to {MAX_USER_DATA_BYTES} bytes (got {}).",
            decoded.len()
        )));
    }
    Ok(())
}

/// The volumes a launch creates: the image's mappings overridden by the request's.
fn plan_volumes(
    state: &State,
    image: &Image,
    mappings: &[BlockDeviceMappingInput],
) -> Result<Vec<PlannedVolume>> {
    let mut planned = Vec::new();
    let mut devices: Vec<(String, Option<EbsInput>, bool)> = image
        .block_devices
        .iter()
        .map(|d| {
            let ebs = EbsInput {
                delete_on_termination: Some(d.delete_on_termination),
                snapshot_id: d.snapshot_id.clone(),
                volume_size: Some(d.volume_size_gib),
                volume_type: Some(d.volume_type.clone()),
                ..EbsInput::default()
            };
            (d.device_name.clone(), Some(ebs), false)
        })
        .collect();
    for mapping in mappings {
        let name = mapping
            .device_name
            .clone()
            .ok_or_else(|| Error::MissingParameter("BlockDeviceMapping.N.DeviceName".into()))?;
        if !name.starts_with("/dev/") || name.len() > 32 {
            return Err(Error::InvalidParameterValue(format!(
                "Invalid device name {name}"
            )));
        }
        let removed = mapping.no_device.is_some();
        match devices
            .iter_mut()
            .find(|(existing, _, _)| *existing == name)
        {
            Some(entry) => {
                if let (Some(base), Some(over)) = (&mut entry.1, &mapping.ebs) {
                    if over.snapshot_id.is_some() && over.snapshot_id != base.snapshot_id {
                        return Err(Error::InvalidParameterValue(format!(
                            "The snapshot of the image's device {name} cannot be replaced."
                        )));
                    }
                    base.delete_on_termination =
                        over.delete_on_termination.or(base.delete_on_termination);
                    base.volume_size = over.volume_size.or(base.volume_size);
                    base.volume_type = over.volume_type.clone().or(base.volume_type.clone());
                    base.iops = over.iops;
                    base.throughput = over.throughput;
                    base.encrypted = over.encrypted;
                }
                entry.2 = removed;
            }
            None if removed => {}
            None => {
                let ebs = mapping.ebs.clone().ok_or_else(|| {
                    Error::InvalidParameterValue(format!(
                        "Device {name} needs an Ebs mapping (instance store is not supported)."
                    ))
                })?;
                devices.push((name, Some(ebs), false));
            }
        }
    }
    for (device_name, ebs, removed) in devices {
        if removed {
            if device_name == image.root_device_name {
                return Err(Error::InvalidParameterValue(
                    "The root device cannot be removed.".into(),
                ));
            }
            continue;
        }
        let Some(ebs) = ebs else { continue };
        if ebs.encrypted == Some(true) {
            return Err(Error::Unsupported(
                "Encrypted volumes are not supported by nimbus yet.".into(),
            ));
        }
        let snapshot_size = match &ebs.snapshot_id {
            Some(id) => Some(existing::<Snapshot>(state, id)?.volume_size_gib),
            None => None,
        };
        let size_gib = ebs.volume_size.or(snapshot_size).ok_or_else(|| {
            Error::MissingParameter(format!("BlockDeviceMapping {device_name} Ebs.VolumeSize"))
        })?;
        if let Some(minimum) = snapshot_size {
            if size_gib < minimum {
                return Err(Error::InvalidParameterValue(format!(
                    "Volume of size {size_gib}GiB is smaller than snapshot for {device_name}, expect size >= {minimum}GiB"
                )));
            }
        }
        let volume_type = VolumeType::parse(ebs.volume_type.as_deref().unwrap_or("gp2"))?;
        let performance = volume_types::validate(volume_type, size_gib, ebs.iops, ebs.throughput)?;
        planned.push(PlannedVolume {
            device_name,
            size_gib,
            snapshot_id: ebs.snapshot_id.clone(),
            volume_type,
            performance,
            iops_provisioned: ebs.iops.is_some(),
            delete_on_termination: ebs.delete_on_termination.unwrap_or(true),
        });
    }
    if !planned
        .iter()
        .any(|p| p.device_name == image.root_device_name)
    {
        return Err(Error::InvalidParameterValue(
            "The image has no root volume.".into(),
        ));
    }
    Ok(planned)
}

/// What [`Control::run_instances`] settles before it reads the state.
struct LaunchChoices {
    instance_type: String,
    requested_zone: String,
    shutdown_behavior: ShutdownBehavior,
    auto_recovery: AutoRecovery,
    options: InstanceOptions,
}

/// The volumes one launched instance boots with, `creating` and attaching to it.
fn create_launch_volumes(
    txn: &mut Txn,
    planned: &[PlannedVolume],
    instance_id: &str,
    zone: &str,
    tags: &Tags,
    now: i64,
) -> Result<Vec<InstanceDisk>> {
    let mut disks = Vec::new();
    for plan in planned {
        let volume = Volume {
            volume_id: nimbus_core::new_id("vol"),
            size_gib: plan.size_gib,
            snapshot_id: plan.snapshot_id.clone(),
            availability_zone: zone.to_owned(),
            state: VolumeState::Creating,
            create_time: now,
            volume_type: plan.volume_type,
            performance: plan.performance,
            iops_provisioned: plan.iops_provisioned,
            attachments: vec![Attachment {
                instance_id: instance_id.to_owned(),
                device: plan.device_name.clone(),
                state: AttachmentState::Attaching,
                attach_time: now,
                delete_on_termination: plan.delete_on_termination,
            }],
            modification: None,
            tags: tags.clone(),
        };
        disks.push(InstanceDisk {
            device_name: plan.device_name.clone(),
            volume_id: volume.volume_id.clone(),
        });
        txn.put(volume)?;
    }
    Ok(disks)
}

impl Control {
    /// The launch's own parameters, checked before anything is read: its instance type,
    /// zone, shutdown behaviour and recovery.
    fn launch_choices(&self, request: &RunInstancesRequest) -> Result<LaunchChoices> {
        if request.min_count < 1 || request.max_count < request.min_count {
            return Err(Error::InvalidParameterValue(format!(
                "MinCount ({}) must be at least 1 and at most MaxCount ({}).",
                request.min_count, request.max_count
            )));
        }
        let instance_type = request
            .instance_type
            .clone()
            .unwrap_or_else(|| "t3.micro".into());
        let type_info = crate::catalog::offered_type(&instance_type)?;
        let options = request.options.for_type(type_info)?;
        validate_user_data(&request.user_data)?;
        validate_metadata_options(&request.metadata_options)?;
        let requested_zone = request
            .availability_zone
            .clone()
            .unwrap_or_else(|| self.config().zones[0].clone());
        if !self.config().zones.contains(&requested_zone) {
            return Err(Error::InvalidParameterValue(format!(
                "Invalid availability zone: [{requested_zone}]"
            )));
        }
        let shutdown_behavior = match request.shutdown_behavior.as_deref() {
            Some(value) => ShutdownBehavior::parse(value)?,
            None => ShutdownBehavior::Stop,
        };
        let auto_recovery = match request.auto_recovery.as_deref() {
            Some(value) => AutoRecovery::parse(value)?,
            None => AutoRecovery::Default,
        };
        Ok(LaunchChoices {
            instance_type,
            requested_zone,
            shutdown_behavior,
            auto_recovery,
            options,
        })
    }

    /// Records the reservation: instances `pending` and their volumes `creating`, attached.
    /// Returns the instances (a replay of the same ClientToken returns the first launch).
    pub fn run_instances(&self, request: RunInstancesRequest) -> Result<Vec<Instance>> {
        let LaunchChoices {
            instance_type,
            requested_zone,
            shutdown_behavior,
            auto_recovery,
            options,
        } = self.launch_choices(&request)?;
        let launched = self.mutate(|txn| {
            if let Some(token) = &request.client_token {
                if let Some(previous) = token.replay(txn.state())? {
                    let ids: Vec<String> = serde_json::from_value(previous).unwrap_or_default();
                    return Ok(ids
                        .iter()
                        .filter_map(|id| txn.state().get::<Instance>(id).cloned())
                        .collect());
                }
            }
            let image = existing::<Image>(txn.state(), &request.image_id)?.clone();
            if image.state != crate::images::ImageState::Available {
                return Err(Error::IncorrectState(format!("Image {} is not available.", image.image_id)));
            }
            if let Some(key) = &request.key_name {
                if txn.state().key_pair_by_name(key).is_none() {
                    return Err(engine::Error::not_found(KeyPair::KIND, key).into());
                }
            }
            let iam_instance_profile = request
                .iam_instance_profile
                .as_ref()
                .map(|spec| resolve_instance_profile(txn.state(), spec))
                .transpose()?
                .flatten();
            let planned = plan_volumes(txn.state(), &image, &request.block_device_mappings)?;
            let live = txn
                .state()
                .instances()
                .values()
                .filter(|i| !matches!(i.state, InstanceState::Terminated | InstanceState::ShuttingDown))
                .count();
            let max_instances = self.config().limits.instances;
            let room = max_instances.saturating_sub(live as u64) as i64;
            if room < request.min_count {
                return Err(Error::TooManyInstances(format!(
                    "You have requested more instances ({}) than your current instance limit of {max_instances} allows.",
                    request.min_count
                )));
            }
            if !request.extra_interfaces.is_empty() && request.max_count > 1 {
                return Err(Error::InvalidParameterCombination(
                    "Cannot launch more than one instance with several network interfaces.".into(),
                ));
            }
            if request.network.private_ip.is_some() && request.max_count > 1 {
                return Err(Error::InvalidParameterCombination(
                    "Cannot specify PrivateIpAddress with more than one instance.".into(),
                ));
            }
            let mut allocator = Allocator::new(txn.state(), self.config(), self.network())?;
            let (subnet, groups) = allocator.placement(&request.network, &requested_zone)?;
            if request.network.subnet_id.is_some()
                && request
                    .availability_zone
                    .as_ref()
                    .is_some_and(|z| *z != subnet.availability_zone)
            {
                return Err(Error::InvalidParameterValue(format!(
                    "Subnet {} is in {}, not in the requested zone.",
                    subnet.subnet_id, subnet.availability_zone
                )));
            }
            let zone = subnet.availability_zone.clone();
            let count = request.max_count.min(room);
            let mut networks = Vec::new();
            for _ in 0..count {
                networks.push(allocator.allocate(&request.network, &subnet, &groups)?);
            }
            let disks: Vec<(VolumeType, u64)> = networks
                .iter()
                .flat_map(|_| planned.iter().map(|p| (p.volume_type, p.size_gib)))
                .collect();
            self.check_volume_room(txn.state(), &disks, None)?;
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            let reservation_id = nimbus_core::new_id("r");
            let now = nimbus_core::now_millis();
            let mut instances = Vec::new();
            for (index, network) in networks.into_iter().enumerate() {
                let instance_id = nimbus_core::new_id("i");
                let disks =
                    create_launch_volumes(txn, &planned, &instance_id, &zone, &request.volume_tags, now)?;
                let private_ip = network.primary_ip().to_string();
                let instance = Instance {
                    instance_id,
                    reservation_id: reservation_id.clone(),
                    ami_launch_index: index as u32,
                    image_id: image.image_id.clone(),
                    instance_type: instance_type.clone(),
                    key_name: request.key_name.clone(),
                    state: InstanceState::Pending,
                    state_reason: None,
                    state_transition_reason: String::new(),
                    launch_time: now,
                    availability_zone: zone.clone(),
                    client_token: request.client_token_text.clone(),
                    user_data: request.user_data.clone(),
                    root_device_name: image.root_device_name.clone(),
                    disks,
                    metadata_options: request.metadata_options.clone(),
                    shutdown_behavior,
                    reboot_requested: false,
                    force_stop: false,
                    private_ip,
                    terminated_at: None,
                    tags: request.instance_tags.clone(),
                    generation: 0,
                    iam_instance_profile: iam_instance_profile.clone(),
                    detailed_monitoring: request.detailed_monitoring,
                    auto_recovery,
                    recovery_requested: false,
                    network: Some(network),
                    network_tags: request.interface_tags.clone(),
                    options: options.clone(),
                    hibernate_requested: false,
                    hibernation: None,
                };
                txn.put(instance.clone())?;
                crate::vpc::network_interfaces::attach_extras(
                    txn,
                    self.config(),
                    self.network(),
                    &instance,
                    &request.extra_interfaces,
                    &request.interface_tags,
                )?;
                instances.push(instance);
            }
            if let Some(token) = &request.client_token {
                let ids: Vec<&str> = instances.iter().map(|i| i.instance_id.as_str()).collect();
                token.remember(txn, serde_json::json!(ids))?;
            }
            Ok(instances)
        })?;
        self.wake_reconciler();
        Ok(launched)
    }

    /// One instance, by ID.
    pub fn instance(&self, id: &str) -> Result<Instance> {
        Ok(existing::<Instance>(&self.read(), id)?.clone())
    }

    pub fn describe_instances(&self, query: &Query) -> Result<Page<Instance>> {
        Ok(describe::describe(
            &self.read(),
            self.config(),
            query,
            DESCRIBE_INSTANCES_PAGING,
            |_| true,
        )?)
    }

    /// Applies a state change to each instance after checking every one can take it.
    /// Returns (id, previous state, new state) per instance, in request order. A change of
    /// what the user wants bumps the instance's generation, which fences off the outcome of
    /// any reconciler step still working toward the previous wish.
    pub(crate) fn transition(
        &self,
        ids: &[String],
        dry_run: bool,
        change: impl Fn(&mut Instance) -> Result<()>,
    ) -> Result<Vec<(String, InstanceState, InstanceState)>> {
        if ids.is_empty() {
            return Err(Error::MissingParameter("InstanceId".into()));
        }
        let outcome = self.mutate(|txn| {
            let mut changed = Vec::new();
            for id in ids {
                let mut instance = existing::<Instance>(txn.state(), id)?.clone();
                let before = instance.state;
                let wished = instance.wish();
                change(&mut instance)?;
                if instance.wish() != wished {
                    instance.generation += 1;
                }
                changed.push((instance, before));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let mut result = Vec::new();
            for (instance, before) in changed {
                result.push((instance.instance_id.clone(), before, instance.state));
                txn.put(instance)?;
            }
            Ok(result)
        })?;
        self.wake_reconciler();
        Ok(outcome)
    }

    pub fn start_instances(
        &self,
        ids: &[String],
        dry_run: bool,
    ) -> Result<Vec<(String, InstanceState, InstanceState)>> {
        self.transition(ids, dry_run, |instance| match instance.state {
            InstanceState::Stopped => {
                instance.state = InstanceState::Pending;
                instance.state_transition_reason = String::new();
                instance.state_reason = None;
                instance.hibernate_requested = false;
                instance.launch_time = nimbus_core::now_millis();
                Ok(())
            }
            InstanceState::Pending | InstanceState::Running => Ok(()),
            other => Err(incorrect_instance_state(instance, other, "started")),
        })
    }

    pub fn stop_instances(
        &self,
        ids: &[String],
        force: bool,
        dry_run: bool,
    ) -> Result<Vec<(String, InstanceState, InstanceState)>> {
        self.transition(ids, dry_run, |instance| {
            request_stop(instance, force, false)
        })
    }

    pub fn reboot_instances(&self, ids: &[String], dry_run: bool) -> Result<()> {
        self.transition(ids, dry_run, |instance| match instance.state {
            InstanceState::Running => {
                instance.reboot_requested = true;
                Ok(())
            }
            InstanceState::Pending => Ok(()),
            other => Err(incorrect_instance_state(instance, other, "rebooted")),
        })
        .map(|_| ())
    }

    /// Terminates each instance; one with termination protection (`disableApiTermination`)
    /// fails the whole call with `OperationNotPermitted`. Internal callers go through here too:
    /// a CloudWatch `terminate` action acts through the EC2 API in AWS and is refused alike.
    pub fn terminate_instances(
        &self,
        ids: &[String],
        dry_run: bool,
    ) -> Result<Vec<(String, InstanceState, InstanceState)>> {
        self.transition(ids, dry_run, |instance| {
            if !matches!(instance.state, InstanceState::Terminated) {
                protected(
                    instance,
                    instance.options.disable_api_termination,
                    "terminated",
                    "disableApiTermination",
                )?;
                instance.state = InstanceState::ShuttingDown;
                instance.state_transition_reason = format!(
                    "User initiated ({})",
                    nimbus_core::iso8601_millis(nimbus_core::now_millis())
                );
            }
            Ok(())
        })
    }

    /// ModifyInstanceAttribute of one attribute (its groups and source/destination check are
    /// the network interface's: `vpc/interfaces.rs`). The instance type, user data and EBS
    /// optimization need a stopped instance, as in EC2; the others change in any state but
    /// `terminated`.
    pub fn modify_instance_attribute(
        &self,
        id: &str,
        change: AttributeChange,
        dry_run: bool,
    ) -> Result<()> {
        match &change {
            AttributeChange::InstanceType(name) => {
                crate::catalog::offered_type(name)?;
            }
            AttributeChange::UserData(user_data) => validate_user_data(user_data)?,
            _ => {}
        }
        self.transition(&[id.to_owned()], dry_run, |instance| {
            let needs_stopped = match &change {
                AttributeChange::InstanceType(_) => Some("instanceType"),
                AttributeChange::UserData(_) => Some("userData"),
                AttributeChange::EbsOptimized(_) => Some("ebsOptimized"),
                _ => None,
            };
            match needs_stopped {
                Some(name) if instance.state != InstanceState::Stopped => {
                    return Err(incorrect_instance_state(
                        instance,
                        instance.state,
                        &format!("modified ({name} needs a stopped instance)"),
                    ))
                }
                None if instance.state == InstanceState::Terminated => {
                    return Err(incorrect_instance_state(
                        instance,
                        instance.state,
                        "modified",
                    ))
                }
                _ => {}
            }
            match &change {
                AttributeChange::InstanceType(name) => {
                    crate::hibernation::refuse_while_hibernated(instance, "instanceType")?;
                    instance.instance_type = name.clone()
                }
                AttributeChange::UserData(user_data) => instance.user_data = user_data.clone(),
                AttributeChange::ShutdownBehavior(value) => instance.shutdown_behavior = *value,
                AttributeChange::DisableApiTermination(value) => {
                    instance.options.disable_api_termination = *value
                }
                AttributeChange::DisableApiStop(value) => {
                    instance.options.disable_api_stop = *value
                }
                AttributeChange::EbsOptimized(value) => instance.options.ebs_optimized = *value,
            }
            Ok(())
        })
        .map(|_| ())
    }

    pub fn modify_metadata_options(
        &self,
        id: &str,
        change: impl Fn(&mut MetadataOptions),
        dry_run: bool,
    ) -> Result<Instance> {
        self.transition(&[id.to_owned()], dry_run, |instance| {
            if instance.state == InstanceState::Terminated {
                return Err(incorrect_instance_state(
                    instance,
                    instance.state,
                    "modified",
                ));
            }
            change(&mut instance.metadata_options);
            validate_metadata_options(&instance.metadata_options)
        })?;
        Ok(existing::<Instance>(&self.read(), id)?.clone())
    }

    /// MonitorInstances (`enabled`) / UnmonitorInstances: detailed monitoring of each
    /// instance. Returns the instances' IDs, in request order.
    pub fn set_detailed_monitoring(
        &self,
        ids: &[String],
        enabled: bool,
        dry_run: bool,
    ) -> Result<Vec<String>> {
        let changed = self.transition(ids, dry_run, |instance| {
            if instance.state == InstanceState::Terminated {
                return Err(incorrect_instance_state(
                    instance,
                    instance.state,
                    "monitored",
                ));
            }
            instance.detailed_monitoring = enabled;
            Ok(())
        })?;
        Ok(changed.into_iter().map(|(id, _, _)| id).collect())
    }

    /// ModifyInstanceMaintenanceOptions.
    pub fn modify_maintenance_options(
        &self,
        id: &str,
        auto_recovery: Option<&str>,
        dry_run: bool,
    ) -> Result<Instance> {
        let auto_recovery = auto_recovery.map(AutoRecovery::parse).transpose()?;
        self.transition(&[id.to_owned()], dry_run, |instance| {
            if instance.state == InstanceState::Terminated {
                return Err(incorrect_instance_state(
                    instance,
                    instance.state,
                    "modified",
                ));
            }
            if let Some(value) = auto_recovery {
                instance.auto_recovery = value;
            }
            Ok(())
        })?;
        Ok(existing::<Instance>(&self.read(), id)?.clone())
    }

    /// Forgets terminated instances after EC2's visibility window.
    pub(crate) fn purge_terminated(&self, txn: &mut Txn) {
        let cutoff = nimbus_core::now_millis() - TERMINATED_VISIBLE_MILLIS;
        let expired: Vec<String> = txn
            .state()
            .instances()
            .values()
            .filter(|i| i.terminated_at.is_some_and(|at| at < cutoff))
            .map(|i| i.instance_id.clone())
            .collect();
        for id in expired {
            txn.delete::<Instance>(&id);
        }
    }
}

/// `Monitoring.State` as DescribeInstances shows it.
pub fn monitoring_state(detailed: bool) -> &'static str {
    if detailed {
        "enabled"
    } else {
        "disabled"
    }
}

/// StopInstances' rule for one instance, with `hibernate` its `Hibernate` (the stop saves the
/// guest's memory; `force` then applies to the normal stop a failed hibernation turns into).
/// As in EC2, a `pending` instance cannot be stopped yet (it can be terminated); one with stop
/// protection (`disableApiStop`) cannot be stopped at all; only a `running` one hibernates.
pub(crate) fn request_stop(instance: &mut Instance, force: bool, hibernate: bool) -> Result<()> {
    if hibernate {
        crate::hibernation::check_configured(instance)?;
    }
    match instance.state {
        InstanceState::Running | InstanceState::Stopping if instance.options.disable_api_stop => {
            protected(instance, true, "stopped", "disableApiStop")
        }
        InstanceState::Running => {
            instance.state = InstanceState::Stopping;
            instance.force_stop = force;
            instance.hibernate_requested = hibernate;
            instance.state_reason = hibernate.then(crate::hibernation::hibernate_reason);
            instance.state_transition_reason = format!(
                "User initiated ({})",
                nimbus_core::iso8601_millis(nimbus_core::now_millis())
            );
            Ok(())
        }
        // A hibernation under way goes on (forcing it would lose the guest's memory).
        InstanceState::Stopping if !hibernate => {
            instance.force_stop |= force && !instance.hibernate_requested;
            Ok(())
        }
        InstanceState::Stopping if instance.hibernate_requested => Ok(()),
        InstanceState::Stopped if !hibernate => Ok(()),
        other => Err(incorrect_instance_state(
            instance,
            other,
            if hibernate { "hibernated" } else { "stopped" },
        )),
    }
}

/// `OperationNotPermitted` with EC2's message when the protection `attribute` is set.
pub(crate) fn protected(
    instance: &Instance,
    protection: bool,
    action: &str,
    attribute: &str,
) -> Result<()> {
    if !protection {
        return Ok(());
    }
    Err(Error::OperationNotPermitted(format!(
        "The instance '{}' may not be {action}. Modify its '{attribute}' instance attribute and try again.",
        instance.instance_id
    )))
}

pub(crate) fn incorrect_instance_state(
    instance: &Instance,
    state: InstanceState,
    action: &str,
) -> Error {
    Error::IncorrectInstanceState(format!(
        "The instance '{}' is not in a state from which it can be {action} (it is {}).",
        instance.instance_id,
        state.as_str()
    ))
}

/// Lookups of the working set that the rules of this module answer.
pub trait InstanceQueries {
    fn key_for_instance(&self, instance: &Instance) -> Option<&KeyPair>;
}

impl InstanceQueries for State {
    fn key_for_instance(&self, instance: &Instance) -> Option<&KeyPair> {
        instance
            .key_name
            .as_deref()
            .and_then(|name| self.key_pair_by_name(name))
    }
}

#[cfg(test)]
mod tests {
    use super::{AttributeChange, InstanceState, ShutdownBehavior};
    use crate::kinds::Tables;
    use crate::testkit::Harness;
    use crate::Error;

    fn ids(id: &str) -> Vec<String> {
        vec![id.to_owned()]
    }

    #[tokio::test]
    async fn a_pending_instance_cannot_be_stopped_but_can_be_terminated() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let refused = h.control.stop_instances(&ids(&id), false, false);
        assert!(
            matches!(refused, Err(Error::IncorrectInstanceState(_))),
            "{refused:?}"
        );
        let changed = h.control.terminate_instances(&ids(&id), false).unwrap();
        assert_eq!(
            changed,
            vec![(
                id.clone(),
                InstanceState::Pending,
                InstanceState::ShuttingDown
            )]
        );
    }

    #[tokio::test]
    async fn start_and_stop_follow_ec2s_state_machine() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let stopping = h.control.stop_instances(&ids(&id), false, false).unwrap();
        assert_eq!(stopping[0].2, InstanceState::Stopping);
        let refused = h.control.start_instances(&ids(&id), false);
        assert!(
            matches!(refused, Err(Error::IncorrectInstanceState(_))),
            "{refused:?}"
        );
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Stopped);
        // Stopping a stopped instance is a no-op, as in EC2.
        let again = h.control.stop_instances(&ids(&id), false, false).unwrap();
        assert_eq!(again[0].2, InstanceState::Stopped);
        let started = h.control.start_instances(&ids(&id), false).unwrap();
        assert_eq!(started[0].2, InstanceState::Pending);
        h.control.terminate_instances(&ids(&id), false).unwrap();
        h.settle().await;
        let refused = h.control.start_instances(&ids(&id), false);
        assert!(
            matches!(refused, Err(Error::IncorrectInstanceState(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn only_a_change_of_wish_bumps_the_generation() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let before = h.instance(&id).generation;
        h.control
            .modify_metadata_options(&id, |m| m.http_tokens = "required".into(), false)
            .unwrap();
        assert_eq!(
            h.instance(&id).generation,
            before,
            "an attribute is no wish"
        );
        h.control.reboot_instances(&ids(&id), false).unwrap();
        assert_eq!(h.instance(&id).generation, before + 1);
        h.control.stop_instances(&ids(&id), false, false).unwrap();
        assert_eq!(h.instance(&id).generation, before + 2);
        h.control.stop_instances(&ids(&id), false, false).unwrap();
        assert_eq!(
            h.instance(&id).generation,
            before + 2,
            "repeating it changes nothing"
        );
        h.control.stop_instances(&ids(&id), true, false).unwrap();
        assert_eq!(h.instance(&id).generation, before + 3, "forcing it does");
    }

    fn protected_instance(h: &Harness) -> String {
        let request = super::RunInstancesRequest {
            image_id: h.image_id.clone(),
            min_count: 1,
            max_count: 1,
            options: crate::launch_options::LaunchOptionsInput {
                disable_api_termination: Some(true),
                disable_api_stop: Some(true),
                ..Default::default()
            },
            ..Default::default()
        };
        h.control
            .run_instances(request)
            .unwrap()
            .remove(0)
            .instance_id
    }

    fn refused_as_not_permitted<T: std::fmt::Debug>(outcome: crate::Result<T>, attribute: &str) {
        match outcome {
            Err(Error::OperationNotPermitted(message)) => {
                assert!(
                    message.contains(&format!("Modify its '{attribute}'")),
                    "{message}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn protection_refuses_stop_and_terminate_until_lifted() {
        let h = Harness::new().await;
        let id = protected_instance(&h);
        let other = h.run_instance().instance_id;
        h.settle().await;
        refused_as_not_permitted(
            h.control.stop_instances(&ids(&id), false, false),
            "disableApiStop",
        );
        // One protected instance fails the whole call: the other is not terminated either.
        let both = vec![other.clone(), id.clone()];
        refused_as_not_permitted(
            h.control.terminate_instances(&both, false),
            "disableApiTermination",
        );
        assert_eq!(h.instance(&other).state, InstanceState::Running);
        // Internal callers are refused alike (a CloudWatch action goes through the same call).
        use nimbus_core::metrics::{InstanceAction, InstanceActions};
        assert!(h.control.act(&id, InstanceAction::Terminate).is_err());
        assert_eq!(h.instance(&id).state, InstanceState::Running);

        h.control
            .modify_instance_attribute(&id, AttributeChange::DisableApiStop(false), false)
            .unwrap();
        h.control.stop_instances(&ids(&id), false, false).unwrap();
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Stopped);
        refused_as_not_permitted(
            h.control.terminate_instances(&ids(&id), false),
            "disableApiTermination",
        );
        h.control
            .modify_instance_attribute(&id, AttributeChange::DisableApiTermination(false), false)
            .unwrap();
        h.control.terminate_instances(&ids(&id), false).unwrap();
        h.settle().await;
        assert_eq!(h.instance(&id).state, InstanceState::Terminated);
    }

    #[tokio::test]
    async fn attributes_change_in_the_states_ec2_allows() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        h.settle().await;
        let modify = |change| h.control.modify_instance_attribute(&id, change, false);
        // Protection and shutdown behavior change while running; none of them is a wish.
        let generation = h.instance(&id).generation;
        modify(AttributeChange::DisableApiTermination(true)).unwrap();
        modify(AttributeChange::DisableApiStop(true)).unwrap();
        modify(AttributeChange::ShutdownBehavior(
            ShutdownBehavior::Terminate,
        ))
        .unwrap();
        let instance = h.instance(&id);
        assert!(instance.options.disable_api_termination && instance.options.disable_api_stop);
        assert_eq!(instance.shutdown_behavior, ShutdownBehavior::Terminate);
        assert_eq!(instance.generation, generation);
        // EBS optimization, like the type and the user data, needs a stopped instance.
        let refused = modify(AttributeChange::EbsOptimized(true));
        assert!(
            matches!(refused, Err(Error::IncorrectInstanceState(_))),
            "{refused:?}"
        );
        modify(AttributeChange::DisableApiStop(false)).unwrap();
        h.control.stop_instances(&ids(&id), false, false).unwrap();
        h.settle().await;
        modify(AttributeChange::EbsOptimized(true)).unwrap();
        modify(AttributeChange::InstanceType("t3.small".into())).unwrap();
        let instance = h.instance(&id);
        assert!(instance.options.ebs_optimized);
        assert_eq!(instance.instance_type, "t3.small");
        let unknown = modify(AttributeChange::InstanceType("t9.huge".into()));
        assert!(
            matches!(unknown, Err(Error::InvalidParameterValue(_))),
            "{unknown:?}"
        );
        let dry = h.control.modify_instance_attribute(
            &id,
            AttributeChange::DisableApiTermination(false),
            true,
        );
        assert!(matches!(dry, Err(Error::DryRunOperation)), "{dry:?}");
        assert!(h.instance(&id).options.disable_api_termination);
    }

    #[tokio::test]
    async fn dry_run_changes_nothing() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let refused = h.control.terminate_instances(&ids(&id), true);
        assert!(
            matches!(refused, Err(Error::DryRunOperation)),
            "{refused:?}"
        );
        assert_eq!(h.instance(&id).state, InstanceState::Pending);
        assert_eq!(h.instance(&id).generation, 0);
    }

    #[tokio::test]
    async fn terminated_instances_release_their_volumes() {
        let h = Harness::new().await;
        let id = h.run_instance().instance_id;
        let data = h.create_volume();
        h.settle().await;
        h.control
            .attach_volume(&data, &id, "/dev/sdf", false)
            .unwrap();
        h.settle().await;
        h.control.terminate_instances(&ids(&id), false).unwrap();
        h.settle().await;
        let state = h.control.read();
        assert_eq!(
            state.volumes().len(),
            1,
            "the DeleteOnTermination root volume is gone"
        );
        assert_eq!(
            state.volumes()[&data].state,
            crate::volumes::VolumeState::Available
        );
        assert!(state.volumes()[&data].attachments.is_empty());
        assert_eq!(h.blocks.volume_size(&data), Some(crate::volumes::GIB));
    }
}
