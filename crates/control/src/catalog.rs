//! Fixed catalogs: the region, its availability zones, account attributes and instance types.

use serde::Serialize;

use crate::filter::{self, Filter, Filterable};
use crate::pagination::{paginate, PageBounds};
use crate::{Control, Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct Region {
    pub region_name: String,
    pub endpoint: String,
}

impl Filterable for Region {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        match name {
            "region-name" => Some(vec![self.region_name.clone()]),
            "endpoint" => Some(vec![self.endpoint.clone()]),
            "opt-in-status" => Some(vec!["opt-in-not-required".into()]),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct AvailabilityZone {
    pub zone_name: String,
    pub zone_id: String,
    pub region_name: String,
}

impl Filterable for AvailabilityZone {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let value = match name {
            "zone-name" => self.zone_name.clone(),
            "zone-id" => self.zone_id.clone(),
            "region-name" | "group-name" | "network-border-group" => self.region_name.clone(),
            "state" => "available".into(),
            "zone-type" => "availability-zone".into(),
            "opt-in-status" => "opt-in-not-required".into(),
            _ => return None,
        };
        Some(vec![value])
    }
}

/// One instance type: its vCPUs and memory are the VM's real size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct InstanceType {
    pub name: &'static str,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub burstable: bool,
}

impl InstanceType {
    pub fn family(&self) -> &'static str {
        self.name.split('.').next().unwrap_or(self.name)
    }
}

impl Filterable for InstanceType {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let value = match name {
            "instance-type" => self.name.to_owned(),
            "vcpu-info.default-vcpus" => self.vcpus.to_string(),
            "memory-info.size-in-mib" => self.memory_mib.to_string(),
            "current-generation" => "true".into(),
            "burstable-performance-supported" => self.burstable.to_string(),
            "processor-info.supported-architecture" => "x86_64".into(),
            "supported-root-device-type" => "ebs".into(),
            "supported-virtualization-type" => "hvm".into(),
            "hypervisor" => "nitro".into(),
            "bare-metal" | "free-tier-eligible" | "instance-storage-supported" => {
                (self.name == "t3.micro" && name == "free-tier-eligible").to_string()
            }
            _ => return None,
        };
        Some(vec![value])
    }
}

const fn instance_type(name: &'static str, vcpus: u32, memory_mib: u64) -> InstanceType {
    InstanceType {
        name,
        vcpus,
        memory_mib,
        burstable: name.as_bytes()[0] == b't',
    }
}

/// AWS's vCPU and memory figures for the types nimbus offers.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    instance_type("c5.2xlarge", 8, 16384),
    instance_type("c5.4xlarge", 16, 32768),
    instance_type("c5.large", 2, 4096),
    instance_type("c5.xlarge", 4, 8192),
    instance_type("m5.2xlarge", 8, 32768),
    instance_type("m5.4xlarge", 16, 65536),
    instance_type("m5.large", 2, 8192),
    instance_type("m5.xlarge", 4, 16384),
    instance_type("t3.2xlarge", 8, 32768),
    instance_type("t3.large", 2, 8192),
    instance_type("t3.medium", 2, 4096),
    instance_type("t3.micro", 2, 1024),
    instance_type("t3.nano", 2, 512),
    instance_type("t3.small", 2, 2048),
    instance_type("t3.xlarge", 4, 16384),
];

pub fn find_instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// Account attributes EC2 reports, with nimbus's values.
pub const ACCOUNT_ATTRIBUTES: &[(&str, &[&str])] = &[
    ("supported-platforms", &["VPC"]),
    ("default-vpc", &["none"]),
    ("max-instances", &["20"]),
    ("vpc-max-security-groups-per-interface", &["5"]),
    ("max-elastic-ips", &["5"]),
    ("vpc-max-elastic-ips", &["5"]),
];

fn select<T: Filterable + Clone>(
    items: Vec<T>,
    wanted: &[String],
    name_of: impl Fn(&T) -> &str,
    filters: &[Filter],
    unknown: impl Fn(&str) -> Error,
) -> Result<Vec<T>> {
    if let Some(sample) = items.first() {
        filter::validate_filters(filters, sample)?;
    }
    if let Some(missing) = wanted
        .iter()
        .find(|w| !items.iter().any(|i| name_of(i) == w.as_str()))
    {
        return Err(unknown(missing));
    }
    Ok(items
        .into_iter()
        .filter(|item| wanted.is_empty() || wanted.iter().any(|w| w == name_of(item)))
        .filter(|item| filter::matches(item, filters))
        .collect())
}

impl Control {
    pub fn describe_regions(&self, names: &[String], filters: &[Filter]) -> Result<Vec<Region>> {
        let region = Region {
            region_name: self.config().region.clone(),
            endpoint: format!("ec2.{}.amazonaws.com", self.config().region),
        };
        select(
            vec![region],
            names,
            |r| &r.region_name,
            filters,
            |name| Error::InvalidParameterValue(format!("Invalid region: {name}")),
        )
    }

    pub fn availability_zones(&self) -> Vec<AvailabilityZone> {
        let config = self.config();
        let short_region: String = config
            .region
            .split('-')
            .map(|part| {
                part.chars()
                    .take(if part.len() > 2 { 1 } else { 2 })
                    .collect::<String>()
            })
            .collect();
        config
            .zones
            .iter()
            .enumerate()
            .map(|(index, zone)| AvailabilityZone {
                zone_name: zone.clone(),
                zone_id: format!("{short_region}-az{}", index + 1),
                region_name: config.region.clone(),
            })
            .collect()
    }

    pub fn describe_availability_zones(
        &self,
        names: &[String],
        ids: &[String],
        filters: &[Filter],
    ) -> Result<Vec<AvailabilityZone>> {
        let unknown =
            |zone: &str| Error::InvalidParameterValue(format!("The zone '{zone}' does not exist."));
        let by_name = select(
            self.availability_zones(),
            names,
            |z| &z.zone_name,
            filters,
            unknown,
        )?;
        select(by_name, ids, |z| &z.zone_id, &[], unknown)
    }

    pub fn describe_account_attributes(
        &self,
        names: &[String],
    ) -> Result<Vec<(&'static str, &'static [&'static str])>> {
        if let Some(unknown) = names
            .iter()
            .find(|n| !ACCOUNT_ATTRIBUTES.iter().any(|(a, _)| a == n))
        {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({unknown}) for parameter attributeName is invalid."
            )));
        }
        Ok(ACCOUNT_ATTRIBUTES
            .iter()
            .filter(|(name, _)| names.is_empty() || names.iter().any(|n| n == name))
            .copied()
            .collect())
    }

    pub fn describe_instance_types(
        &self,
        names: &[String],
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<InstanceType>, Option<String>)> {
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| find_instance_type(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Error::InvalidInstanceType(unknown.join(", ")));
        }
        let selected = select(
            INSTANCE_TYPES.to_vec(),
            names,
            |t| t.name,
            filters,
            |n| Error::InvalidInstanceType(n.to_owned()),
        )?;
        paginate(
            selected,
            |t| t.name,
            max_results,
            next_token,
            PageBounds { min: 5, max: 100 },
        )
    }
}
