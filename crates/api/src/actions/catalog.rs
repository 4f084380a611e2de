//! DescribeRegions, DescribeAvailabilityZones, DescribeAccountAttributes, DescribeInstanceTypes,
//! DescribeInstanceTypeOfferings.

use control::catalog::InstanceType;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{answer, describe_request, input, page_output, Handler, NoOtherParameters, Output};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("DescribeRegions", Handler::Sync(describe_regions)),
    (
        "DescribeAvailabilityZones",
        Handler::Sync(describe_availability_zones),
    ),
    (
        "DescribeAccountAttributes",
        Handler::Sync(describe_account_attributes),
    ),
    (
        "DescribeInstanceTypes",
        Handler::Sync(describe_instance_types),
    ),
    (
        "DescribeInstanceTypeOfferings",
        Handler::Sync(describe_instance_type_offerings),
    ),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeRegions {
    /// nimbus serves one region, so all regions and the enabled ones are the same list.
    #[serde(default, rename = "AllRegions")]
    _all_regions: bool,
}

fn describe_regions(context: &ApiContext, request: Value) -> Output {
    let (query, DescribeRegions { .. }) = describe_request(request, Some("RegionNames"))?;
    let regions = context.control.describe_regions(&query)?;
    Ok(page_output("Regions", (regions, None), |region| {
        json!({
            "RegionName": region.region_name,
            "Endpoint": region.endpoint,
            "OptInStatus": "opt-in-not-required",
        })
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeAvailabilityZones {
    #[serde(default)]
    zone_ids: Vec<String>,
    /// Every zone nimbus has is opted in, so this changes nothing.
    #[serde(default, rename = "AllAvailabilityZones")]
    _all_availability_zones: bool,
}

fn describe_availability_zones(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeAvailabilityZones) =
        describe_request(request, Some("ZoneNames"))?;
    let zones = context
        .control
        .describe_availability_zones(&query, &request.zone_ids)?;
    Ok(page_output("AvailabilityZones", (zones, None), |zone| {
        json!({
            "State": "available",
            "OptInStatus": "opt-in-not-required",
            "Messages": [],
            "RegionName": zone.region_name,
            "ZoneName": zone.zone_name,
            "ZoneId": zone.zone_id,
            "GroupName": zone.region_name,
            "NetworkBorderGroup": zone.region_name,
            "ZoneType": "availability-zone",
        })
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeAccountAttributes {
    #[serde(default)]
    attribute_names: Vec<String>,
}

fn describe_account_attributes(context: &ApiContext, request: Value) -> Output {
    let request: DescribeAccountAttributes = input(request)?;
    let attributes = context
        .control
        .describe_account_attributes(&request.attribute_names)?;
    let attributes: Vec<Value> = (attributes.iter())
        .map(|(name, values)| {
            let values: Vec<Value> = (values.iter())
                .map(|value| json!({"AttributeValue": value}))
                .collect();
            json!({"AttributeName": name, "AttributeValues": values})
        })
        .collect();
    answer(json!({"AccountAttributes": attributes}))
}

fn describe_instance_types(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("InstanceTypes"))?;
    let page = context.control.describe_instance_types(&query)?;
    Ok(page_output("InstanceTypes", page, |t| {
        instance_type_output(&t)
    }))
}

/// One type as the model's `InstanceTypeInfo`: its real size, AWS's figures of the type, and
/// what nimbus does not offer (instance storage, Spot, IPv6, EBS encryption, NVMe) as absent.
fn instance_type_output(t: &InstanceType) -> Value {
    let cores = t.default_cores();
    json!({
        "InstanceType": t.name,
        "CurrentGeneration": true,
        "FreeTierEligible": matches!(t.name, "t2.micro" | "t3.micro"),
        "SupportedUsageClasses": ["on-demand"],
        "SupportedRootDeviceTypes": ["ebs"],
        "SupportedVirtualizationTypes": ["hvm"],
        "BareMetal": false,
        "Hypervisor": t.family.hypervisor,
        "ProcessorInfo": {
            "SupportedArchitectures": ["x86_64"],
            "SustainedClockSpeedInGhz": t.family.sustained_clock_ghz,
            "Manufacturer": t.family.manufacturer,
        },
        "VCpuInfo": {
            "DefaultVCpus": t.vcpus,
            "DefaultCores": cores,
            "DefaultThreadsPerCore": t.threads_per_core(),
            "ValidCores": [cores],
            "ValidThreadsPerCore": [t.threads_per_core()],
        },
        "MemoryInfo": {"SizeInMiB": t.memory_mib},
        "InstanceStorageSupported": false,
        "EbsInfo": {
            "EbsOptimizedSupport": t.ebs_optimized_support(),
            "EncryptionSupport": "unsupported",
            "NvmeSupport": "unsupported",
        },
        "NetworkInfo": {
            "NetworkPerformance": t.network_performance,
            "MaximumNetworkInterfaces": t.max_interfaces,
            "MaximumNetworkCards": 1,
            "DefaultNetworkCardIndex": 0,
            "NetworkCards": [{
                "NetworkCardIndex": 0,
                "NetworkPerformance": t.network_performance,
                "MaximumNetworkInterfaces": t.max_interfaces,
            }],
            "Ipv4AddressesPerInterface": t.ipv4_per_interface,
            "Ipv6AddressesPerInterface": 0,
            "Ipv6Supported": false,
            "EnaSupport": t.ena_support(),
            "EfaSupported": false,
            "EncryptionInTransitSupported": false,
            "EnaSrdSupported": false,
        },
        "PlacementGroupInfo": {"SupportedStrategies": []},
        "HibernationSupported": true,
        "BurstablePerformanceSupported": t.burstable,
        "DedicatedHostsSupported": false,
        "AutoRecoverySupported": true,
        "SupportedBootModes": ["legacy-bios"],
        "NitroEnclavesSupport": "unsupported",
        "NitroTpmSupport": "unsupported",
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeInstanceTypeOfferings {
    location_type: Option<String>,
}

fn describe_instance_type_offerings(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeInstanceTypeOfferings) = describe_request(request, None)?;
    let page = context
        .control
        .describe_instance_type_offerings(request.location_type.as_deref(), &query)?;
    Ok(page_output("InstanceTypeOfferings", page, |offering| {
        json!({
            "InstanceType": offering.instance_type,
            "LocationType": offering.location_type,
            "Location": offering.location,
        })
    }))
}
