//! AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress, DescribeAddresses.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::addresses::{AssociationTarget, ElasticIp};
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    Output,
};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("AllocateAddress", Handler::Sync(allocate_address)),
    ("DescribeAddresses", Handler::Sync(describe_addresses)),
    ("AssociateAddress", Handler::Sync(associate_address)),
    ("DisassociateAddress", Handler::Sync(disassociate_address)),
    ("ReleaseAddress", Handler::Sync(release_address)),
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AllocateAddress {
    domain: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

fn allocate_address(context: &ApiContext, request: Value) -> Output {
    let request: AllocateAddress = input(request)?;
    if request.domain.as_deref().is_some_and(|d| d != "vpc") {
        return Err(unsupported_parameter("Domain=standard"));
    }
    let tags = tags_of_created(&request.tag_specifications, ElasticIp::KIND)?;
    let address = context.control.allocate_address(tags, request.dry_run)?;
    answer(json!({
        "PublicIp": address.public_ip.to_string(),
        "Domain": "vpc",
        "AllocationId": address.allocation_id,
        "PublicIpv4Pool": "amazon",
        "NetworkBorderGroup": context.control.config().region,
    }))
}

fn address_output(context: &ApiContext, address: &ElasticIp) -> Value {
    let config = context.control.config();
    // An unassociated address has no association members (null members are left out).
    let association = address.association.as_ref();
    json!({
        "PublicIp": address.public_ip.to_string(),
        "AllocationId": address.allocation_id,
        "Domain": "vpc",
        "InstanceId": association.and_then(|a| a.instance_id.as_ref()),
        "AssociationId": association.map(|a| &a.association_id),
        "NetworkInterfaceId": association.map(|a| &a.interface_id),
        "NetworkInterfaceOwnerId": association.map(|_| &config.account_id),
        "PrivateIpAddress": association.map(|a| a.private_ip.to_string()),
        "PublicIpv4Pool": "amazon",
        "NetworkBorderGroup": config.region,
        "Tags": tags_output(&address.tags),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeAddresses {
    #[serde(default)]
    public_ips: Vec<String>,
}

fn describe_addresses(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeAddresses) =
        describe_request(request, Some("AllocationIds"))?;
    let addresses = context
        .control
        .describe_addresses(&request.public_ips, &query)?;
    Ok(page_output("Addresses", (addresses, None), |address| {
        address_output(context, &address)
    }))
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

fn associate_address(context: &ApiContext, request: Value) -> Output {
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
    answer(json!({"AssociationId": association_id}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DisassociateAddress {
    association_id: Option<String>,
    public_ip: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn disassociate_address(context: &ApiContext, request: Value) -> Output {
    let request: DisassociateAddress = input(request)?;
    context.control.disassociate_address(
        request.association_id.as_deref(),
        request.public_ip.as_deref(),
        request.dry_run,
    )?;
    answer(Value::Null)
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

fn release_address(context: &ApiContext, request: Value) -> Output {
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
    answer(Value::Null)
}
