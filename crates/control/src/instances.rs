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
use crate::filter::{Filter, Filterable};
use crate::idempotency::ClientToken;
use crate::images::Image;
use crate::keypairs::KeyPair;
use crate::pagination::{paginate, PageBounds};
use crate::snapshots::Snapshot;
use crate::volume_types::{self, VolumeType};
use crate::volumes::{existing, Attachment, Volume, VolumeState};
use crate::{Control, Error, ResourceKind, Result, State, Tags, Txn};

/// How long terminated instances stay visible, as in EC2 (about an hour).
pub const TERMINATED_VISIBLE_MILLIS: i64 = 60 * 60 * 1000;
/// EC2 limits user data to 16 KiB before base64.
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// The account's instance limit (DescribeAccountAttributes `max-instances`).
pub const MAX_INSTANCES: usize = 20;

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
    pub state_reason: Option<String>,
    pub state_transition_reason: String,
    pub launch_time: i64,
    pub availability_zone: String,
    pub client_token: Option<String>,
    /// Base64, as the API carries it.
    pub user_data: Option<String>,
    pub root_device_name: String,
    pub disks: Vec<InstanceDisk>,
    pub metadata_options: MetadataOptions,
    pub shutdown_behavior: String,
    /// Set by RebootInstances; the reconciler resets the VM and clears it.
    pub reboot_requested: bool,
    /// Set by StopInstances with Force.
    pub force_stop: bool,
    pub private_ip: String,
    /// Host port forwarded to the guest's SSH port (127.0.0.1:PORT).
    pub ssh_port: Option<u16>,
    pub terminated_at: Option<i64>,
    pub tags: Tags,
    /// Absent in records written before instance profiles existed.
    #[serde(default)]
    pub iam_instance_profile: Option<InstanceProfileAssociation>,
}

impl Instance {
    pub fn private_dns_name(&self) -> String {
        format!("ip-{}.ec2.internal", self.private_ip.replace('.', "-"))
    }

    pub fn decoded_user_data(&self) -> Option<Vec<u8>> {
        let text = self.user_data.as_deref()?;
        base64::engine::general_purpose::STANDARD.decode(text).ok()
    }
}

impl Filterable for Instance {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let one = |v: String| Some(vec![v]);
        match name {
            "instance-id" => one(self.instance_id.clone()),
            "image-id" => one(self.image_id.clone()),
            "instance-type" => one(self.instance_type.clone()),
            "key-name" => one(self.key_name.clone().unwrap_or_default()),
            "instance-state-name" => one(self.state.as_str().into()),
            "instance-state-code" => one(self.state.code().to_string()),
            "availability-zone" => one(self.availability_zone.clone()),
            "reservation-id" => one(self.reservation_id.clone()),
            "launch-index" => one(self.ami_launch_index.to_string()),
            "launch-time" => one(nimbus_core::iso8601_millis(self.launch_time)),
            "client-token" => one(self.client_token.clone().unwrap_or_default()),
            "private-ip-address" => one(self.private_ip.clone()),
            "private-dns-name" => one(self.private_dns_name()),
            "root-device-name" => one(self.root_device_name.clone()),
            "root-device-type" => one("ebs".into()),
            "architecture" => one("x86_64".into()),
            "virtualization-type" => one("hvm".into()),
            "hypervisor" => one("xen".into()),
            "tenancy" => one("default".into()),
            "metadata-options.http-tokens" => one(self.metadata_options.http_tokens.clone()),
            "metadata-options.http-endpoint" => one(self.metadata_options.http_endpoint.clone()),
            "block-device-mapping.device-name" => {
                Some(self.disks.iter().map(|d| d.device_name.clone()).collect())
            }
            "block-device-mapping.volume-id" => {
                Some(self.disks.iter().map(|d| d.volume_id.clone()).collect())
            }
            _ => None,
        }
    }
    fn tags(&self) -> Option<&Tags> {
        Some(&self.tags)
    }
}

crate::resource!(Instance, ResourceKind::Instance, instance_id, instances);

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
    pub client_token: Option<ClientToken>,
    pub client_token_text: Option<String>,
    pub metadata_options: MetadataOptions,
    pub availability_zone: Option<String>,
    pub shutdown_behavior: Option<String>,
    pub dry_run: bool,
    pub iam_instance_profile: Option<InstanceProfileSpecification>,
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

/// A private address in the default subnet, unique among live instances.
fn next_private_ip(state: &State) -> String {
    let used: Vec<&str> = state
        .instances
        .values()
        .filter(|i| i.state != InstanceState::Terminated)
        .map(|i| i.private_ip.as_str())
        .collect();
    (10u32..64000)
        .map(|n| format!("172.31.{}.{}", n / 250, n % 250 + 4))
        .find(|ip| !used.contains(&ip.as_str()))
        .unwrap_or_else(|| "172.31.255.254".into())
}

impl Control {
    /// Records the reservation: instances `pending` and their volumes `creating`, attached.
    /// Returns the instances (a replay of the same ClientToken returns the first launch).
    pub fn run_instances(&self, request: RunInstancesRequest) -> Result<Vec<Instance>> {
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
        if find_instance_type(&instance_type).is_none() {
            return Err(Error::InvalidParameterValue(format!(
                "The following supplied instance type is not supported: {instance_type}. Invalid value '{instance_type}' for InstanceType."
            )));
        }
        validate_user_data(&request.user_data)?;
        validate_metadata_options(&request.metadata_options)?;
        let zone = request
            .availability_zone
            .clone()
            .unwrap_or_else(|| self.config().zones[0].clone());
        if !self.config().zones.contains(&zone) {
            return Err(Error::InvalidParameterValue(format!(
                "Invalid availability zone: [{zone}]"
            )));
        }
        let shutdown_behavior = request
            .shutdown_behavior
            .clone()
            .unwrap_or_else(|| "stop".into());
        if shutdown_behavior != "stop" && shutdown_behavior != "terminate" {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({shutdown_behavior}) for parameter InstanceInitiatedShutdownBehavior is invalid."
            )));
        }
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
            if !nimbus_core::is_valid_id(&request.image_id, "ami") {
                return Err(Error::InvalidAmiIdMalformed(request.image_id.clone()));
            }
            let image = existing::<Image>(txn.state(), &request.image_id)?.clone();
            if image.state != "available" {
                return Err(Error::IncorrectState(format!("Image {} is not available.", image.image_id)));
            }
            if let Some(key) = &request.key_name {
                if txn.state().key_pair_by_name(key).is_none() {
                    return Err(Error::NotFound {
                        kind: ResourceKind::KeyPair,
                        id: key.clone(),
                    });
                }
            }
            let iam_instance_profile = request
                .iam_instance_profile
                .as_ref()
                .map(|spec| resolve_instance_profile(txn.state(), spec))
                .transpose()?;
            let planned = plan_volumes(txn.state(), &image, &request.block_device_mappings)?;
            let live = txn
                .state()
                .instances
                .values()
                .filter(|i| !matches!(i.state, InstanceState::Terminated | InstanceState::ShuttingDown))
                .count();
            let room = MAX_INSTANCES.saturating_sub(live) as i64;
            if room < request.min_count {
                return Err(Error::InstanceLimitExceeded(format!(
                    "You have requested more instances ({}) than your current instance limit of {MAX_INSTANCES} allows.",
                    request.min_count
                )));
            }
            if request.dry_run {
                return Err(Error::DryRunOperation);
            }
            let count = request.max_count.min(room);
            let reservation_id = nimbus_core::new_id("r");
            let now = nimbus_core::now_millis();
            let mut instances = Vec::new();
            for index in 0..count {
                let instance_id = nimbus_core::new_id("i");
                let mut disks = Vec::new();
                for plan in &planned {
                    let volume = Volume {
                        volume_id: nimbus_core::new_id("vol"),
                        size_gib: plan.size_gib,
                        snapshot_id: plan.snapshot_id.clone(),
                        availability_zone: zone.clone(),
                        state: VolumeState::Creating,
                        create_time: now,
                        volume_type: plan.volume_type,
                        performance: plan.performance,
                        iops_provisioned: plan.iops_provisioned,
                        attachments: vec![Attachment {
                            instance_id: instance_id.clone(),
                            device: plan.device_name.clone(),
                            state: "attaching".into(),
                            attach_time: now,
                            delete_on_termination: plan.delete_on_termination,
                        }],
                        modification: None,
                        tags: request.volume_tags.clone(),
                    };
                    disks.push(InstanceDisk {
                        device_name: plan.device_name.clone(),
                        volume_id: volume.volume_id.clone(),
                    });
                    txn.put(volume)?;
                }
                let private_ip = next_private_ip(txn.state());
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
                    shutdown_behavior: shutdown_behavior.clone(),
                    reboot_requested: false,
                    force_stop: false,
                    private_ip,
                    ssh_port: None,
                    terminated_at: None,
                    tags: request.instance_tags.clone(),
                    iam_instance_profile: iam_instance_profile.clone(),
                };
                txn.put(instance.clone())?;
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

    pub fn describe_instances(
        &self,
        ids: &[String],
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<Instance>, Option<String>)> {
        if !ids.is_empty() && max_results.is_some() {
            return Err(Error::InvalidParameterCombination(
                "The parameter instancesSet cannot be used with the parameter maxResults".into(),
            ));
        }
        let state = self.read();
        let found = crate::volumes::select_by_ids::<Instance>(&state, ids, filters)?;
        paginate(
            found,
            |i| i.instance_id.as_str(),
            max_results,
            next_token,
            PageBounds { min: 5, max: 1000 },
        )
    }

    /// Applies a state change to each instance after checking every one can take it.
    /// Returns (id, previous state, new state) per instance, in request order.
    fn transition(
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
                change(&mut instance)?;
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
        self.transition(ids, dry_run, |instance| match instance.state {
            InstanceState::Running | InstanceState::Pending => {
                instance.state = InstanceState::Stopping;
                instance.force_stop = force;
                instance.state_transition_reason = format!(
                    "User initiated ({})",
                    nimbus_core::iso8601_millis(nimbus_core::now_millis())
                );
                Ok(())
            }
            InstanceState::Stopping => {
                instance.force_stop |= force;
                Ok(())
            }
            InstanceState::Stopped => Ok(()),
            other => Err(incorrect_instance_state(instance, other, "stopped")),
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

    pub fn terminate_instances(
        &self,
        ids: &[String],
        dry_run: bool,
    ) -> Result<Vec<(String, InstanceState, InstanceState)>> {
        self.transition(ids, dry_run, |instance| {
            if !matches!(instance.state, InstanceState::Terminated) {
                instance.state = InstanceState::ShuttingDown;
                instance.state_transition_reason = format!(
                    "User initiated ({})",
                    nimbus_core::iso8601_millis(nimbus_core::now_millis())
                );
            }
            Ok(())
        })
    }

    pub fn modify_instance_type(&self, id: &str, instance_type: &str, dry_run: bool) -> Result<()> {
        if find_instance_type(instance_type).is_none() {
            return Err(Error::InvalidParameterValue(format!(
                "Invalid value '{instance_type}' for InstanceType."
            )));
        }
        self.transition(&[id.to_owned()], dry_run, |instance| {
            if instance.state != InstanceState::Stopped {
                return Err(incorrect_instance_state(
                    instance,
                    instance.state,
                    "modified (instanceType needs a stopped instance)",
                ));
            }
            instance.instance_type = instance_type.to_owned();
            Ok(())
        })
        .map(|_| ())
    }

    pub fn modify_user_data(
        &self,
        id: &str,
        user_data: Option<String>,
        dry_run: bool,
    ) -> Result<()> {
        validate_user_data(&user_data)?;
        self.transition(&[id.to_owned()], dry_run, |instance| {
            if instance.state != InstanceState::Stopped {
                return Err(incorrect_instance_state(
                    instance,
                    instance.state,
                    "modified (userData needs a stopped instance)",
                ));
            }
            instance.user_data = user_data.clone();
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

    /// Forgets terminated instances after EC2's visibility window.
    pub(crate) fn purge_terminated(&self, txn: &mut Txn) {
        let cutoff = nimbus_core::now_millis() - TERMINATED_VISIBLE_MILLIS;
        let expired: Vec<String> = txn
            .state()
            .instances
            .values()
            .filter(|i| i.terminated_at.is_some_and(|at| at < cutoff))
            .map(|i| i.instance_id.clone())
            .collect();
        for id in expired {
            txn.delete::<Instance>(&id);
        }
    }
}

fn incorrect_instance_state(instance: &Instance, state: InstanceState, action: &str) -> Error {
    Error::IncorrectInstanceState(format!(
        "The instance '{}' is not in a state from which it can be {action} (it is {}).",
        instance.instance_id,
        state.as_str()
    ))
}

impl State {
    pub fn key_for_instance(&self, instance: &Instance) -> Option<&KeyPair> {
        instance
            .key_name
            .as_deref()
            .and_then(|name| self.key_pair_by_name(name))
    }
}
