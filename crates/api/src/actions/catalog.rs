//! DescribeRegions, DescribeAvailabilityZones, DescribeAccountAttributes, DescribeInstanceTypes.

use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, NoOtherParameters, Response};
use crate::{ApiContext, ApiError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeRegions {
    /// nimbus serves one region, so all regions and the enabled ones are the same list.
    #[serde(default, rename = "AllRegions")]
    _all_regions: bool,
}

pub fn describe_regions(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, DescribeRegions { .. }) = describe_request(request, Some("RegionNames"))?;
    let regions = context.control.describe_regions(&query)?;
    render_page(response, "regionInfo", (regions, None), |xml, region| {
        xml.leaf("regionName", &region.region_name);
        xml.leaf("regionEndpoint", &region.endpoint);
        xml.leaf("optInStatus", "opt-in-not-required");
    })
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

pub fn describe_availability_zones(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, request): (_, DescribeAvailabilityZones) =
        describe_request(request, Some("ZoneNames"))?;
    let zones = context
        .control
        .describe_availability_zones(&query, &request.zone_ids)?;
    render_page(
        response,
        "availabilityZoneInfo",
        (zones, None),
        |xml, zone| {
            xml.leaf("zoneState", "available");
            xml.leaf("optInStatus", "opt-in-not-required");
            xml.start("messageSet");
            xml.end();
            xml.leaf("regionName", &zone.region_name);
            xml.leaf("zoneName", &zone.zone_name);
            xml.leaf("zoneId", &zone.zone_id);
            xml.leaf("groupName", &zone.region_name);
            xml.leaf("networkBorderGroup", &zone.region_name);
            xml.leaf("zoneType", "availability-zone");
        },
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeAccountAttributes {
    #[serde(default)]
    attribute_names: Vec<String>,
}

pub fn describe_account_attributes(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DescribeAccountAttributes = input(request)?;
    let attributes = context
        .control
        .describe_account_attributes(&request.attribute_names)?;
    response.render(|xml| {
        xml.start("accountAttributeSet");
        for (name, values) in &attributes {
            xml.start("item");
            xml.leaf("attributeName", name);
            xml.start("attributeValueSet");
            for value in values.iter() {
                xml.start("item");
                xml.leaf("attributeValue", value);
                xml.end();
            }
            xml.end();
            xml.end();
        }
        xml.end();
    })
}

pub fn describe_instance_types(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("InstanceTypes"))?;
    let page = context.control.describe_instance_types(&query)?;
    render_page(response, "instanceTypeSet", page, |xml, instance_type| {
        xml.leaf("instanceType", instance_type.name);
        xml.leaf("currentGeneration", "true");
        xml.leaf(
            "freeTierEligible",
            if instance_type.name == "t3.micro" {
                "true"
            } else {
                "false"
            },
        );
        xml.start("supportedUsageClasses");
        xml.leaf("item", "on-demand");
        xml.end();
        xml.start("supportedRootDeviceTypes");
        xml.leaf("item", "ebs");
        xml.end();
        xml.start("supportedVirtualizationTypes");
        xml.leaf("item", "hvm");
        xml.end();
        xml.leaf("bareMetal", "false");
        xml.leaf("hypervisor", "nitro");
        xml.start("processorInfo");
        xml.start("supportedArchitectures");
        xml.leaf("item", "x86_64");
        xml.end();
        xml.end();
        xml.start("vCpuInfo");
        xml.leaf("defaultVCpus", &instance_type.vcpus.to_string());
        xml.leaf(
            "defaultCores",
            &(instance_type.vcpus / 2).max(1).to_string(),
        );
        xml.leaf(
            "defaultThreadsPerCore",
            if instance_type.vcpus > 1 { "2" } else { "1" },
        );
        xml.end();
        xml.start("memoryInfo");
        xml.leaf("sizeInMiB", &instance_type.memory_mib.to_string());
        xml.end();
        xml.leaf("instanceStorageSupported", "false");
        xml.start("ebsInfo");
        xml.leaf("ebsOptimizedSupport", "default");
        xml.leaf("encryptionSupport", "unsupported");
        xml.leaf("nvmeSupport", "unsupported");
        xml.end();
        xml.leaf(
            "burstablePerformanceSupported",
            &instance_type.burstable.to_string(),
        );
    })
}
