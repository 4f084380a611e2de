//! AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress, DescribeAddresses.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::addresses::{AssociationTarget, ElasticIp};
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{describe_request, input, render_page, unsupported_parameter, write_tag_set, Response};
use crate::{ApiContext, ApiError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AllocateAddress {
    domain: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

pub fn allocate_address(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: AllocateAddress = input(request)?;
    if request.domain.as_deref().is_some_and(|d| d != "vpc") {
        return Err(unsupported_parameter("Domain=standard"));
    }
    let tags = tags_of_created(&request.tag_specifications, ElasticIp::KIND)?;
    let address = context.control.allocate_address(tags, request.dry_run)?;
    response.render(|xml| {
        xml.leaf("publicIp", &address.public_ip.to_string());
        xml.leaf("domain", "vpc");
        xml.leaf("allocationId", &address.allocation_id);
        xml.leaf("publicIpv4Pool", "amazon");
        xml.leaf("networkBorderGroup", &context.control.config().region);
    })
}

fn write_address(xml: &mut awsproto::XmlWriter, context: &ApiContext, address: &ElasticIp) {
    let config = context.control.config();
    xml.leaf("publicIp", &address.public_ip.to_string());
    xml.leaf("allocationId", &address.allocation_id);
    xml.leaf("domain", "vpc");
    if let Some(association) = &address.association {
        xml.leaf("instanceId", &association.instance_id);
        xml.leaf("associationId", &association.association_id);
        xml.leaf("networkInterfaceId", &association.interface_id);
        xml.leaf("networkInterfaceOwnerId", &config.account_id);
        xml.leaf("privateIpAddress", &association.private_ip.to_string());
    }
    xml.leaf("publicIpv4Pool", "amazon");
    xml.leaf("networkBorderGroup", &config.region);
    write_tag_set(xml, &address.tags);
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeAddresses {
    #[serde(default)]
    public_ips: Vec<String>,
}

pub fn describe_addresses(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, request): (_, DescribeAddresses) =
        describe_request(request, Some("AllocationIds"))?;
    let addresses = context
        .control
        .describe_addresses(&request.public_ips, &query)?;
    render_page(
        response,
        "addressesSet",
        (addresses, None),
        |xml, address| write_address(xml, context, address),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssociateAddress {
    allocation_id: Option<String>,
    public_ip: Option<String>,
    instance_id: Option<String>,
    network_interface_id: Option<String>,
    private_ip_address: Option<String>,
    #[serde(default)]
    allow_reassociation: bool,
    #[serde(default)]
    dry_run: bool,
}

pub fn associate_address(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: AssociateAddress = input(request)?;
    let allocation_id = match (request.allocation_id, &request.public_ip) {
        (Some(id), _) => id,
        (None, Some(ip)) => context
            .control
            .describe_addresses(std::slice::from_ref(ip), &Default::default())?
            .first()
            .map(|a| a.allocation_id.clone())
            .unwrap_or_default(),
        (None, None) => return Err(control::Error::MissingParameter("AllocationId".into()).into()),
    };
    let target = AssociationTarget {
        instance_id: request.instance_id,
        interface_id: request.network_interface_id,
        private_ip: request.private_ip_address,
        allow_reassociation: request.allow_reassociation,
    };
    let association_id =
        context
            .control
            .associate_address(&allocation_id, &target, request.dry_run)?;
    response.render(|xml| {
        xml.leaf("return", "true");
        xml.leaf("associationId", &association_id);
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DisassociateAddress {
    association_id: Option<String>,
    public_ip: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn disassociate_address(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DisassociateAddress = input(request)?;
    context.control.disassociate_address(
        request.association_id.as_deref(),
        request.public_ip.as_deref(),
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReleaseAddress {
    allocation_id: Option<String>,
    public_ip: Option<String>,
    network_border_group: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn release_address(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ReleaseAddress = input(request)?;
    if request
        .network_border_group
        .as_ref()
        .is_some_and(|g| *g != context.control.config().region)
    {
        return Err(unsupported_parameter("NetworkBorderGroup"));
    }
    context.control.release_address(
        request.allocation_id.as_deref(),
        request.public_ip.as_deref(),
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("return", "true"))
}
