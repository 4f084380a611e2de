//! Fixed catalogs: the region, its availability zones, account attributes and instance types.

use serde::Serialize;

use crate::describe::{self, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::{Control, Error, Result};

/// DescribeInstanceTypes's MaxResults bounds.
const DESCRIBE_INSTANCE_TYPES_PAGING: Paging = Paging::within(5, 100);

#[derive(Clone, Debug, Serialize)]
pub struct Region {
    pub region_name: String,
    pub endpoint: String,
}

impl Filterable for Region {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("region-name", |r, _| vec![r.region_name.clone()]),
        ("endpoint", |r, _| vec![r.endpoint.clone()]),
        ("opt-in-status", |_, _| vec!["opt-in-not-required".into()]),
    ];
}

#[derive(Clone, Debug, Serialize)]
pub struct AvailabilityZone {
    pub zone_name: String,
    pub zone_id: String,
    pub region_name: String,
}

impl Filterable for AvailabilityZone {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("zone-name", |z, _| vec![z.zone_name.clone()]),
        ("zone-id", |z, _| vec![z.zone_id.clone()]),
        ("region-name", |z, _| vec![z.region_name.clone()]),
        ("group-name", |z, _| vec![z.region_name.clone()]),
        ("network-border-group", |z, _| vec![z.region_name.clone()]),
        ("state", |_, _| vec!["available".into()]),
        ("zone-type", |_, _| vec!["availability-zone".into()]),
        ("opt-in-status", |_, _| vec!["opt-in-not-required".into()]),
    ];
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

    /// The type's default CPU cores (`CpuOptions.CoreCount`): two threads per core.
    pub fn default_cores(&self) -> u32 {
        self.vcpus.div_ceil(2)
    }

    /// The type's default `CpuOptions.ThreadsPerCore`.
    pub fn threads_per_core(&self) -> u32 {
        if self.vcpus > 1 {
            2
        } else {
            1
        }
    }
}

impl Filterable for InstanceType {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("instance-type", |t, _| vec![t.name.to_owned()]),
        ("vcpu-info.default-vcpus", |t, _| vec![t.vcpus.to_string()]),
        ("memory-info.size-in-mib", |t, _| {
            vec![t.memory_mib.to_string()]
        }),
        ("current-generation", |_, _| vec!["true".into()]),
        ("burstable-performance-supported", |t, _| {
            vec![t.burstable.to_string()]
        }),
        ("processor-info.supported-architecture", |_, _| {
            vec!["x86_64".into()]
        }),
        ("supported-root-device-type", |_, _| vec!["ebs".into()]),
        ("supported-virtualization-type", |_, _| vec!["hvm".into()]),
        ("hypervisor", |_, _| vec!["nitro".into()]),
        ("bare-metal", |_, _| vec!["false".into()]),
        ("instance-storage-supported", |_, _| vec!["false".into()]),
        ("free-tier-eligible", |t, _| {
            vec![(t.name == "t3.micro").to_string()]
        }),
    ];
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

/// Account attributes EC2 reports, in AWS's order.
pub const ACCOUNT_ATTRIBUTES: &[&str] = &[
    "supported-platforms",
    "default-vpc",
    "max-instances",
    "vpc-max-security-groups-per-interface",
    "max-elastic-ips",
    "vpc-max-elastic-ips",
];

/// Describes catalog entries: every name in `wanted` must name one (else `unknown`), then the
/// generic describe filters and pages them.
fn select<T: Filterable>(
    config: &nimbus_core::Config,
    items: Vec<T>,
    wanted: &[String],
    name_of: fn(&T) -> &str,
    query: &Query,
    paging: Paging,
    unknown: impl Fn(&str) -> Error,
) -> Result<Page<T>> {
    if let Some(missing) = wanted
        .iter()
        .find(|w| !items.iter().any(|i| name_of(i) == w.as_str()))
    {
        return Err(unknown(missing));
    }
    let rows = items
        .into_iter()
        .filter(|item| wanted.is_empty() || wanted.iter().any(|w| w == name_of(item)))
        .collect();
    Ok(describe::describe_rows(
        rows, name_of, config, query, paging,
    )?)
}

impl Control {
    /// DescribeRegions: the query's IDs are region names.
    pub fn describe_regions(&self, query: &Query) -> Result<Vec<Region>> {
        let region = Region {
            region_name: self.config().region.clone(),
            endpoint: format!("ec2.{}.amazonaws.com", self.config().region),
        };
        let (regions, _) = select(
            self.config(),
            vec![region],
            &query.ids,
            |r| &r.region_name,
            query,
            Paging::UNPAGED,
            |name| Error::InvalidParameterValue(format!("Invalid region: {name}")),
        )?;
        Ok(regions)
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

    /// DescribeAvailabilityZones: the query's IDs are zone names; `zone_ids` are zone IDs.
    pub fn describe_availability_zones(
        &self,
        query: &Query,
        zone_ids: &[String],
    ) -> Result<Vec<AvailabilityZone>> {
        let unknown =
            |zone: &str| Error::InvalidParameterValue(format!("The zone '{zone}' does not exist."));
        let zones: Vec<AvailabilityZone> = self
            .availability_zones()
            .into_iter()
            .filter(|z| zone_ids.is_empty() || zone_ids.contains(&z.zone_id))
            .collect();
        if let Some(missing) = zone_ids
            .iter()
            .find(|id| !zones.iter().any(|z| &z.zone_id == *id))
        {
            return Err(unknown(missing));
        }
        let (zones, _) = select(
            self.config(),
            zones,
            &query.ids,
            |z| &z.zone_name,
            query,
            Paging::UNPAGED,
            unknown,
        )?;
        Ok(zones)
    }

    pub fn describe_account_attributes(
        &self,
        names: &[String],
    ) -> Result<Vec<(&'static str, Vec<String>)>> {
        if let Some(unknown) = names
            .iter()
            .find(|n| !ACCOUNT_ATTRIBUTES.iter().any(|a| a == n))
        {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({unknown}) for parameter attributeName is invalid."
            )));
        }
        let limits = &self.config().limits;
        let value = |name: &str| match name {
            "supported-platforms" => Some("VPC".to_owned()),
            "default-vpc" => Some(self.default_vpc_id().unwrap_or_else(|| "none".into())),
            "max-instances" => Some(limits.instances.to_string()),
            "vpc-max-security-groups-per-interface" => {
                Some(limits.groups_per_interface.to_string())
            }
            // EC2-Classic is gone: both answer the one elastic IP limit.
            "max-elastic-ips" | "vpc-max-elastic-ips" => Some(limits.elastic_ips.to_string()),
            _ => None,
        };
        Ok(ACCOUNT_ATTRIBUTES
            .iter()
            .filter(|name| names.is_empty() || names.iter().any(|n| n == *name))
            .filter_map(|name| Some((*name, vec![value(name)?])))
            .collect())
    }

    /// DescribeInstanceTypes: the query's IDs are instance type names.
    pub fn describe_instance_types(&self, query: &Query) -> Result<Page<InstanceType>> {
        let unknown: Vec<&str> = query
            .ids
            .iter()
            .filter(|n| find_instance_type(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Error::UnknownInstanceType(unknown.join(", ")));
        }
        select(
            self.config(),
            INSTANCE_TYPES.to_vec(),
            &query.ids,
            |t| t.name,
            query,
            DESCRIBE_INSTANCE_TYPES_PAGING,
            |n| Error::UnknownInstanceType(n.to_owned()),
        )
    }
}
