//! What the metadata service serves, read from the working set on every request. One server
//! per VPC listens at 169.254.169.254:80 in the VPC's namespace; the network driver tells
//! which instance holds a connection's source address.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, Weak};

use crate::credentials::{InstanceProfileAssociation, InstanceRoleCredentials};
use crate::instances::InstanceQueries;
use crate::kinds::Tables;
use crate::vpc::addresses::AddressQueries;
use crate::vpc::interfaces::{private_dns_name, public_dns_name, InstanceNetwork};
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::vpc::network_interfaces::NetworkInterface;
use crate::{Control, Result, State};

struct VpcMetadataSource {
    control: Weak<Control>,
    vpc_id: String,
}

impl VpcMetadataSource {
    fn instance_at(&self, control: &Control, address: Ipv4Addr) -> Option<String> {
        control.drivers.network.instance_at(&self.vpc_id, address)
    }
}

impl compute::MetadataSource for VpcMetadataSource {
    fn instance_id(&self, address: Ipv4Addr) -> Option<String> {
        let control = self.control.upgrade()?;
        self.instance_at(&control, address)
    }

    fn metadata(&self, address: Ipv4Addr) -> Option<compute::InstanceMetadata> {
        let control = self.control.upgrade()?;
        let instance_id = self.instance_at(&control, address)?;
        instance_metadata(&control, &instance_id)
    }

    fn hop_limit(&self, address: Ipv4Addr) -> u8 {
        let hop_limit = self.control.upgrade().and_then(|control| {
            let instance_id = self.instance_at(&control, address)?;
            let state = control.read();
            let limit = state
                .instances()
                .get(&instance_id)?
                .metadata_options
                .http_put_response_hop_limit;
            u8::try_from(limit).ok()
        });
        hop_limit.unwrap_or(1)
    }
}

/// The metadata servers of the VPCs wired on this host.
#[derive(Default)]
pub(crate) struct VpcMetadataServers(Mutex<HashMap<String, tokio::task::JoinHandle<()>>>);

impl VpcMetadataServers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, tokio::task::JoinHandle<()>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub(crate) fn instance_metadata(
    control: &Control,
    instance_id: &str,
) -> Option<compute::InstanceMetadata> {
    // Issuing credentials writes, so it happens before the read lock below is taken.
    let role_credentials = control
        .instance_role_credentials(instance_id)
        .unwrap_or_else(|error| {
            tracing::warn!(instance = instance_id, %error, "cannot issue role credentials");
            None
        });
    let config = control.config();
    let state = control.read();
    let instance = state.instances().get(instance_id)?;
    let network = instance.live_network().cloned();
    let public_ip = state.public_ip_of(instance);
    let mut block_devices = vec![
        ("ami".to_owned(), instance.root_device_name.clone()),
        ("root".to_owned(), instance.root_device_name.clone()),
    ];
    let extra = instance
        .disks
        .iter()
        .filter(|d| d.device_name != instance.root_device_name);
    for (index, disk) in extra.enumerate() {
        block_devices.push((
            format!("ebs{}", index + 1),
            disk.device_name.trim_start_matches("/dev/").to_owned(),
        ));
    }
    Some(compute::InstanceMetadata {
        instance_id: instance.instance_id.clone(),
        image_id: instance.image_id.clone(),
        instance_type: instance.instance_type.clone(),
        launch_index: instance.ami_launch_index,
        reservation_id: instance.reservation_id.clone(),
        account_id: config.account_id.clone(),
        region: config.region.clone(),
        availability_zone: instance.availability_zone.clone(),
        local_hostname: instance.private_dns_name(&config.region),
        local_ipv4: instance.private_ip.clone(),
        mac: network
            .as_ref()
            .map_or_else(|| mac_address(&instance.instance_id), |n| n.mac.clone()),
        launch_time: nimbus_core::iso8601_millis(instance.launch_time),
        public_key: state
            .key_for_instance(instance)
            .map(|key| (key.key_name.clone(), key.public_key.clone())),
        block_devices,
        user_data: instance.decoded_user_data(),
        tokens_required: instance.metadata_options.http_tokens == "required",
        endpoint_enabled: instance.metadata_options.http_endpoint == "enabled",
        tags: (instance.metadata_options.instance_metadata_tags == "enabled")
            .then(|| instance.tags.clone()),
        iam: instance
            .iam_instance_profile
            .as_ref()
            .map(|profile| iam_metadata(profile, role_credentials, instance.launch_time)),
        public_ipv4: public_ip.map(|ip| ip.to_string()),
        public_hostname: public_ip.map(|ip| public_dns_name(ip, &config.region)),
        security_groups: network
            .as_ref()
            .map(|n| group_names(&state, n))
            .unwrap_or_default(),
        // Every attached interface, by device index (the primary one with the instance's
        // public or elastic IP).
        interfaces: state
            .interfaces_of(instance)
            .iter()
            .map(|e| interface_metadata(&state, config, e))
            .collect(),
    })
}

fn group_names(state: &State, network: &InstanceNetwork) -> Vec<String> {
    network
        .security_group_ids
        .iter()
        .filter_map(|id| state.security_groups().get(id))
        .map(|g| g.group_name.clone())
        .collect()
}

/// `network/interfaces/macs/<mac>/` of the primary interface.
fn interface_metadata(
    state: &State,
    config: &nimbus_core::Config,
    interface: &NetworkInterface,
) -> compute::InterfaceMetadata {
    let region = &config.region;
    let network = &interface.network;
    let public_ip = network.public_ip;
    compute::InterfaceMetadata {
        device_number: interface.attachment.as_ref().map_or(0, |a| a.device_index),
        interface_id: network.interface_id.clone(),
        mac: network.mac.clone(),
        owner_id: config.account_id.clone(),
        local_hostname: private_dns_name(network.primary_ip(), region),
        local_ipv4s: network
            .private_ips
            .iter()
            .map(|ip| ip.to_string())
            .collect(),
        public_hostname: public_ip.map(|ip| public_dns_name(ip, region)),
        public_ipv4s: public_ip.iter().map(|ip| ip.to_string()).collect(),
        security_group_ids: network.security_group_ids.clone(),
        security_groups: group_names(state, network),
        subnet_id: network.subnet_id.clone(),
        subnet_ipv4_cidr_block: state
            .subnets()
            .get(&network.subnet_id)
            .map(|s| s.cidr.to_string())
            .unwrap_or_default(),
        vpc_id: network.vpc_id.clone(),
        vpc_ipv4_cidr_blocks: state
            .vpcs()
            .get(&network.vpc_id)
            .map(|v| v.cidrs.iter().map(|c| c.cidr.to_string()).collect())
            .unwrap_or_default(),
    }
}

/// The `iam/` tree of an instance: its profile and its role's current credentials.
fn iam_metadata(
    profile: &InstanceProfileAssociation,
    role_credentials: Option<InstanceRoleCredentials>,
    launch_time: i64,
) -> compute::IamMetadata {
    let last_updated = role_credentials
        .as_ref()
        .map_or(launch_time, |role| role.issued);
    compute::IamMetadata {
        instance_profile_arn: profile.arn.clone(),
        instance_profile_id: profile.id.clone(),
        last_updated: nimbus_core::iso8601_millis(last_updated),
        role: role_credentials.map(|role| compute::RoleCredentials {
            role_name: role.role_name,
            access_key_id: role.credentials.access_key_id,
            secret_access_key: role.credentials.secret_access_key,
            token: role.credentials.session_token,
            expiration: nimbus_core::iso8601_millis(role.credentials.expiration),
        }),
    }
}

/// A stable, locally administered MAC address derived from the instance ID, for instances
/// recorded before they had a network interface.
fn mac_address(instance_id: &str) -> String {
    let digest = blake3::hash(instance_id.as_bytes());
    let bytes = digest.as_bytes();
    format!(
        "02:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4]
    )
}

impl Control {
    /// Serves the metadata of a wired VPC's instances, unless it is served already. Called
    /// after each apply of the VPC (also after a restart, when nothing is served yet).
    pub async fn serve_vpc_metadata(self: &Arc<Self>, vpc_id: &str) -> Result<()> {
        if self
            .vpc_metadata
            .lock()
            .get(vpc_id)
            .is_some_and(|task| !task.is_finished())
        {
            return Ok(());
        }
        let listener = self
            .drivers
            .network
            .metadata_listener(vpc_id)
            .await
            .map_err(|e| crate::Error::Internal(format!("network: {e}")))?;
        let source = Arc::new(VpcMetadataSource {
            control: Arc::downgrade(self),
            vpc_id: vpc_id.to_owned(),
        });
        let id = vpc_id.to_owned();
        let task = tokio::spawn(async move {
            if let Err(error) = compute::serve_imds(listener, source).await {
                tracing::warn!(vpc = id, %error, "metadata service stopped");
            }
        });
        if let Some(old) = self.vpc_metadata.lock().insert(vpc_id.to_owned(), task) {
            old.abort();
        }
        Ok(())
    }

    /// Stops serving a VPC's metadata; its listener holds the namespace, so this comes
    /// before the VPC is removed from the host.
    pub fn stop_vpc_metadata(&self, vpc_id: &str) {
        if let Some(task) = self.vpc_metadata.lock().remove(vpc_id) {
            task.abort();
        }
    }
}
