//! Fixed catalogs: the region, its availability zones, account attributes and instance types.

use serde::Serialize;

use crate::describe::{self, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::{Control, Error, Result};

/// DescribeInstanceTypes's MaxResults bounds.
const DESCRIBE_INSTANCE_TYPES_PAGING: Paging = Paging::within(5, 100);
/// DescribeInstanceTypeOfferings's MaxResults bounds.
const DESCRIBE_OFFERINGS_PAGING: Paging = Paging::within(5, 1000);

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

/// An instance family: what its sizes share, as AWS describes the family.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Family {
    pub name: &'static str,
    /// `nitro`, or `xen` for the older T2.
    pub hypervisor: &'static str,
    /// AWS's processor of the family (`ProcessorInfo`): the guest runs on the host's.
    pub manufacturer: &'static str,
    pub sustained_clock_ghz: f64,
    pub threads_per_core: u32,
    pub burstable: bool,
}

const fn family(
    name: &'static str,
    hypervisor: &'static str,
    manufacturer: &'static str,
    sustained_clock_ghz: f64,
) -> Family {
    let burstable = name.as_bytes()[0] == b't';
    let older = name.as_bytes()[1] == b'2';
    Family {
        name,
        hypervisor,
        manufacturer,
        sustained_clock_ghz,
        threads_per_core: if older { 1 } else { 2 },
        burstable,
    }
}

const T2: Family = family("t2", "xen", "Intel", 3.3);
const T3: Family = family("t3", "nitro", "Intel", 2.5);
const T3A: Family = family("t3a", "nitro", "AMD", 2.2);
const M5: Family = family("m5", "nitro", "Intel", 3.1);
const M6I: Family = family("m6i", "nitro", "Intel", 3.5);
const C5: Family = family("c5", "nitro", "Intel", 3.4);
const C6I: Family = family("c6i", "nitro", "Intel", 3.5);
const R5: Family = family("r5", "nitro", "Intel", 3.1);
const R6I: Family = family("r6i", "nitro", "Intel", 3.5);

/// One instance type: its vCPUs and memory are the VM's real size; its network figures are
/// AWS's for the type (nimbus plugs up to `compute::NIC_PORTS` interfaces into any type).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct InstanceType {
    pub name: &'static str,
    pub family: &'static Family,
    pub vcpus: u32,
    pub memory_mib: u64,
    pub burstable: bool,
    pub network_performance: &'static str,
    pub max_interfaces: u32,
    pub ipv4_per_interface: u32,
}

impl InstanceType {
    pub fn family(&self) -> &'static str {
        self.family.name
    }

    /// The type's default `CpuOptions.ThreadsPerCore`.
    pub fn threads_per_core(&self) -> u32 {
        self.family.threads_per_core.min(self.vcpus)
    }

    /// The type's default CPU cores (`CpuOptions.CoreCount`).
    pub fn default_cores(&self) -> u32 {
        self.vcpus.div_ceil(self.threads_per_core())
    }
}

impl Filterable for InstanceType {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("instance-type", |t, _| vec![t.name.to_owned()]),
        ("vcpu-info.default-vcpus", |t, _| vec![t.vcpus.to_string()]),
        ("vcpu-info.default-cores", |t, _| {
            vec![t.default_cores().to_string()]
        }),
        ("vcpu-info.default-threads-per-core", |t, _| {
            vec![t.threads_per_core().to_string()]
        }),
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
        ("processor-info.manufacturer", |t, _| {
            vec![t.family.manufacturer.to_owned()]
        }),
        ("processor-info.sustained-clock-speed-in-ghz", |t, _| {
            vec![t.family.sustained_clock_ghz.to_string()]
        }),
        ("supported-root-device-type", |_, _| vec!["ebs".into()]),
        ("supported-virtualization-type", |_, _| vec!["hvm".into()]),
        ("supported-usage-class", |_, _| vec!["on-demand".into()]),
        ("hypervisor", |t, _| vec![t.family.hypervisor.to_owned()]),
        ("bare-metal", |_, _| vec!["false".into()]),
        ("instance-storage-supported", |_, _| vec!["false".into()]),
        ("hibernation-supported", |_, _| vec!["true".into()]),
        ("auto-recovery-supported", |_, _| vec!["true".into()]),
        ("free-tier-eligible", |t, _| {
            vec![matches!(t.name, "t2.micro" | "t3.micro").to_string()]
        }),
        ("network-info.network-performance", |t, _| {
            vec![t.network_performance.to_owned()]
        }),
        ("network-info.maximum-network-interfaces", |t, _| {
            vec![t.max_interfaces.to_string()]
        }),
        ("network-info.ipv4-addresses-per-interface", |t, _| {
            vec![t.ipv4_per_interface.to_string()]
        }),
        ("network-info.ipv6-supported", |_, _| vec!["false".into()]),
        ("network-info.ena-support", |t, _| {
            vec![t.ena_support().to_owned()]
        }),
        ("ebs-info.ebs-optimized-support", |t, _| {
            vec![t.ebs_optimized_support().to_owned()]
        }),
        ("ebs-info.encryption-support", |_, _| {
            vec!["unsupported".into()]
        }),
        ("ebs-info.nvme-support", |_, _| vec!["unsupported".into()]),
    ];
}

impl InstanceType {
    /// `NetworkInfo.EnaSupport`: the Nitro families require ENA, T2 has none.
    pub fn ena_support(&self) -> &'static str {
        if self.family.hypervisor == "nitro" {
            "required"
        } else {
            "unsupported"
        }
    }

    /// `EbsInfo.EbsOptimizedSupport`: EBS-optimized by default on Nitro, not offered on T2.
    pub fn ebs_optimized_support(&self) -> &'static str {
        if self.family.hypervisor == "nitro" {
            "default"
        } else {
            "unsupported"
        }
    }
}

const fn instance_type(
    name: &'static str,
    family: &'static Family,
    vcpus: u32,
    memory_mib: u64,
    network_performance: &'static str,
    max_interfaces: u32,
    ipv4_per_interface: u32,
) -> InstanceType {
    InstanceType {
        name,
        family,
        vcpus,
        memory_mib,
        burstable: family.burstable,
        network_performance,
        max_interfaces,
        ipv4_per_interface,
    }
}

/// AWS's figures for the types nimbus offers: the current x86 families up to `4xlarge`.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    instance_type("c5.2xlarge", &C5, 8, 16384, "Up to 10 Gigabit", 4, 15),
    instance_type("c5.4xlarge", &C5, 16, 32768, "Up to 10 Gigabit", 8, 30),
    instance_type("c5.large", &C5, 2, 4096, "Up to 10 Gigabit", 3, 10),
    instance_type("c5.xlarge", &C5, 4, 8192, "Up to 10 Gigabit", 4, 15),
    instance_type("c6i.2xlarge", &C6I, 8, 16384, "Up to 12.5 Gigabit", 4, 15),
    instance_type("c6i.4xlarge", &C6I, 16, 32768, "Up to 12.5 Gigabit", 8, 30),
    instance_type("c6i.large", &C6I, 2, 4096, "Up to 12.5 Gigabit", 3, 10),
    instance_type("c6i.xlarge", &C6I, 4, 8192, "Up to 12.5 Gigabit", 4, 15),
    instance_type("m5.2xlarge", &M5, 8, 32768, "Up to 10 Gigabit", 4, 15),
    instance_type("m5.4xlarge", &M5, 16, 65536, "Up to 10 Gigabit", 8, 30),
    instance_type("m5.large", &M5, 2, 8192, "Up to 10 Gigabit", 3, 10),
    instance_type("m5.xlarge", &M5, 4, 16384, "Up to 10 Gigabit", 4, 15),
    instance_type("m6i.2xlarge", &M6I, 8, 32768, "Up to 12.5 Gigabit", 4, 15),
    instance_type("m6i.4xlarge", &M6I, 16, 65536, "Up to 12.5 Gigabit", 8, 30),
    instance_type("m6i.large", &M6I, 2, 8192, "Up to 12.5 Gigabit", 3, 10),
    instance_type("m6i.xlarge", &M6I, 4, 16384, "Up to 12.5 Gigabit", 4, 15),
    instance_type("r5.2xlarge", &R5, 8, 65536, "Up to 10 Gigabit", 4, 15),
    instance_type("r5.4xlarge", &R5, 16, 131072, "Up to 10 Gigabit", 8, 30),
    instance_type("r5.large", &R5, 2, 16384, "Up to 10 Gigabit", 3, 10),
    instance_type("r5.xlarge", &R5, 4, 32768, "Up to 10 Gigabit", 4, 15),
    instance_type("r6i.2xlarge", &R6I, 8, 65536, "Up to 12.5 Gigabit", 4, 15),
    instance_type("r6i.4xlarge", &R6I, 16, 131072, "Up to 12.5 Gigabit", 8, 30),
    instance_type("r6i.large", &R6I, 2, 16384, "Up to 12.5 Gigabit", 3, 10),
    instance_type("r6i.xlarge", &R6I, 4, 32768, "Up to 12.5 Gigabit", 4, 15),
    instance_type("t2.2xlarge", &T2, 8, 32768, "Moderate", 3, 15),
    instance_type("t2.large", &T2, 2, 8192, "Low to Moderate", 3, 12),
    instance_type("t2.medium", &T2, 2, 4096, "Low to Moderate", 3, 6),
    instance_type("t2.micro", &T2, 1, 1024, "Low to Moderate", 2, 2),
    instance_type("t2.nano", &T2, 1, 512, "Low to Moderate", 2, 2),
    instance_type("t2.small", &T2, 1, 2048, "Low to Moderate", 3, 4),
    instance_type("t2.xlarge", &T2, 4, 16384, "Moderate", 3, 15),
    instance_type("t3.2xlarge", &T3, 8, 32768, "Up to 5 Gigabit", 4, 15),
    instance_type("t3.large", &T3, 2, 8192, "Up to 5 Gigabit", 3, 12),
    instance_type("t3.medium", &T3, 2, 4096, "Up to 5 Gigabit", 3, 6),
    instance_type("t3.micro", &T3, 2, 1024, "Up to 5 Gigabit", 2, 2),
    instance_type("t3.nano", &T3, 2, 512, "Up to 5 Gigabit", 2, 2),
    instance_type("t3.small", &T3, 2, 2048, "Up to 5 Gigabit", 3, 4),
    instance_type("t3.xlarge", &T3, 4, 16384, "Up to 5 Gigabit", 4, 15),
    instance_type("t3a.2xlarge", &T3A, 8, 32768, "Up to 5 Gigabit", 4, 15),
    instance_type("t3a.large", &T3A, 2, 8192, "Up to 5 Gigabit", 3, 12),
    instance_type("t3a.medium", &T3A, 2, 4096, "Up to 5 Gigabit", 3, 6),
    instance_type("t3a.micro", &T3A, 2, 1024, "Up to 5 Gigabit", 2, 2),
    instance_type("t3a.nano", &T3A, 2, 512, "Up to 5 Gigabit", 2, 2),
    instance_type("t3a.small", &T3A, 2, 2048, "Up to 5 Gigabit", 3, 4),
    instance_type("t3a.xlarge", &T3A, 4, 16384, "Up to 5 Gigabit", 4, 15),
];

/// Families of AWS Graviton (Arm) types: nimbus runs x86_64 guests only.
const ARM_FAMILIES: &[&str] = &[
    "a1", "c6g", "c6gd", "c6gn", "c7g", "c7gd", "c7gn", "c8g", "g5g", "im4gn", "is4gen", "m6g",
    "m6gd", "m7g", "m7gd", "m8g", "r6g", "r6gd", "r7g", "r7gd", "r8g", "t4g", "x2gd",
];

/// Whether `name` is an AWS Arm instance type.
pub fn is_arm_type(name: &str) -> bool {
    let family = name.split('.').next().unwrap_or(name);
    ARM_FAMILIES.contains(&family)
}

pub fn find_instance_type(name: &str) -> Option<&'static InstanceType> {
    INSTANCE_TYPES.iter().find(|t| t.name == name)
}

/// `name` as an error names it: an Arm type says why nimbus lacks it.
fn unknown_type_named(name: &str) -> String {
    if is_arm_type(name) {
        format!("{name} (an Arm type: nimbus runs x86_64 instances only)")
    } else {
        name.to_owned()
    }
}

/// The type a launch or a change of type names: one nimbus offers, else
/// `InvalidParameterValue` naming it.
pub fn offered_type(name: &str) -> Result<&'static InstanceType> {
    find_instance_type(name).ok_or_else(|| {
        Error::InvalidParameterValue(format!(
            "The following supplied instance type is not supported: {}. Invalid value '{name}' for InstanceType.",
            unknown_type_named(name)
        ))
    })
}

/// Where a type is offered (DescribeInstanceTypeOfferings): every type nimbus has, in its
/// region and in each of its zones.
#[derive(Clone, Debug)]
pub struct Offering {
    pub instance_type: &'static str,
    /// `region`, `availability-zone` or `availability-zone-id`.
    pub location_type: &'static str,
    pub location: String,
    /// The page key: location, then type.
    key: String,
}

impl Filterable for Offering {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("instance-type", |o, _| vec![o.instance_type.to_owned()]),
        ("location", |o, _| vec![o.location.clone()]),
    ];
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

    /// DescribeInstanceTypeOfferings: every type at every location of `location_type`
    /// (`region` when unset).
    pub fn describe_instance_type_offerings(
        &self,
        location_type: Option<&str>,
        query: &Query,
    ) -> Result<Page<Offering>> {
        let (location_type, locations): (&'static str, Vec<String>) = match location_type {
            None | Some("region") => ("region", vec![self.config().region.clone()]),
            Some("availability-zone") => (
                "availability-zone",
                self.availability_zones().into_iter().map(|z| z.zone_name).collect(),
            ),
            Some("availability-zone-id") => (
                "availability-zone-id",
                self.availability_zones().into_iter().map(|z| z.zone_id).collect(),
            ),
            Some(other) => {
                return Err(Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter locationType is invalid. Valid values: region, availability-zone, availability-zone-id."
                )))
            }
        };
        let mut offerings: Vec<Offering> = (locations.iter())
            .flat_map(|location| {
                INSTANCE_TYPES.iter().map(move |t| Offering {
                    instance_type: t.name,
                    location_type,
                    location: location.clone(),
                    key: format!("{location} {}", t.name),
                })
            })
            .collect();
        offerings.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(describe::describe_rows(
            offerings,
            |o| &o.key,
            self.config(),
            query,
            DESCRIBE_OFFERINGS_PAGING,
        )?)
    }

    /// DescribeInstanceTypes: the query's IDs are instance type names.
    pub fn describe_instance_types(&self, query: &Query) -> Result<Page<InstanceType>> {
        let unknown: Vec<String> = (query.ids.iter())
            .filter(|n| find_instance_type(n).is_none())
            .map(|n| unknown_type_named(n))
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
