//! EC2 Query protocol: decode the form by the EC2 model, run the action, render its XML.

mod addresses;
mod catalog;
mod gateways;
mod images;
mod instance_health;
mod instances;
mod interfaces;
mod keypairs;
mod network_acls;
mod route_tables;
mod security_groups;
mod snapshots;
mod subnets;
mod tags;
mod volumes;
mod vpcs;

use axum::http::Method;
use control::describe::{Page, Query};
use control::filter::Filter;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Ec2Error;
use crate::{ApiContext, ApiError};

/// Runs one EC2 Query request. Returns the action name (for the log) with the XML answer.
pub async fn ec2_query(
    context: &ApiContext,
    method: &Method,
    raw_query: &str,
    body: &[u8],
    request_id: &str,
) -> Result<(String, String), (String, ApiError)> {
    let source = if method == Method::POST {
        body
    } else {
        raw_query.as_bytes()
    };
    let form = awsproto::parse_form(source).map_err(|e| {
        (
            "-".to_owned(),
            ApiError::from(Ec2Error::MalformedQueryString(e.to_string())),
        )
    })?;
    let action = match form.iter().find(|(key, _)| key == "Action") {
        Some((_, action)) => action.clone(),
        None => return Err(("-".to_owned(), ApiError::from(Ec2Error::MissingAction))),
    };
    let params: Vec<(String, String)> = form
        .into_iter()
        .filter(|(key, _)| key != "Action" && key != "Version" && !key.starts_with("X-Amz-"))
        .collect();
    let network_before = context.control.network_changes();
    let outcome = run(context, &action, &params, request_id).await;
    // A call that changed the network answers once the host enforces the change: a revoked
    // rule stops the next packet, a deleted VPC's namespace is gone.
    if context.control.network_changes() != network_before {
        context.control.network_settled().await;
    }
    match outcome {
        Ok(xml) => Ok((action, xml)),
        Err(error) => Err((action, error)),
    }
}

async fn run(
    context: &ApiContext,
    action: &str,
    params: &[(String, String)],
    request_id: &str,
) -> Result<String, ApiError> {
    if !ec2model::operation_exists(action) {
        return Err(Ec2Error::UnknownAction(action.to_owned()).into());
    }
    if !ec2model::is_modeled(action) {
        return Err(unsupported(action));
    }
    let mut input = ec2model::decode(action, params)?;
    let dry_run = input
        .get("DryRun")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if is_read_only(action) {
        // Read-only handlers do not see DryRun: it is answered below, once the call succeeded.
        if let Some(object) = input.as_object_mut() {
            object.remove("DryRun");
        }
    }
    let response = Response { action, request_id };
    let xml = match action {
        "DescribeRegions" => catalog::describe_regions(context, input, response),
        "DescribeAvailabilityZones" => {
            catalog::describe_availability_zones(context, input, response)
        }
        "DescribeAccountAttributes" => {
            catalog::describe_account_attributes(context, input, response)
        }
        "DescribeInstanceTypes" => catalog::describe_instance_types(context, input, response),
        "CreateKeyPair" => keypairs::create_key_pair(context, input, response).await,
        "ImportKeyPair" => keypairs::import_key_pair(context, input, response),
        "DescribeKeyPairs" => keypairs::describe_key_pairs(context, input, response),
        "DeleteKeyPair" => keypairs::delete_key_pair(context, input, response),
        "CreateTags" => tags::create_tags(context, input, response),
        "DeleteTags" => tags::delete_tags(context, input, response),
        "DescribeTags" => tags::describe_tags(context, input, response),
        "CreateVolume" => volumes::create_volume(context, input, response),
        "DescribeVolumes" => volumes::describe_volumes(context, input, response),
        "DeleteVolume" => volumes::delete_volume(context, input, response),
        "ModifyVolume" => volumes::modify_volume(context, input, response),
        "DescribeVolumesModifications" => {
            volumes::describe_volumes_modifications(context, input, response)
        }
        "CreateSnapshot" => snapshots::create_snapshot(context, input, response).await,
        "DescribeSnapshots" => snapshots::describe_snapshots(context, input, response),
        "DeleteSnapshot" => snapshots::delete_snapshot(context, input, response).await,
        "CopySnapshot" => snapshots::copy_snapshot(context, input, response).await,
        "AttachVolume" => volumes::attach_volume(context, input, response),
        "DetachVolume" => volumes::detach_volume(context, input, response),
        "DescribeImages" => images::describe_images(context, input, response),
        "RegisterImage" => images::register_image(context, input, response),
        "DeregisterImage" => images::deregister_image(context, input, response),
        "CreateImage" => images::create_image(context, input, response).await,
        "RunInstances" => instances::run_instances(context, input, response),
        "DescribeInstances" => instances::describe_instances(context, input, response),
        "DescribeInstanceStatus" => {
            instance_health::describe_instance_status(context, input, response)
        }
        "MonitorInstances" => instance_health::monitor_instances(context, input, response),
        "UnmonitorInstances" => instance_health::unmonitor_instances(context, input, response),
        "ModifyInstanceMaintenanceOptions" => {
            instance_health::modify_instance_maintenance_options(context, input, response)
        }
        "StartInstances" => instances::start_instances(context, input, response),
        "StopInstances" => instances::stop_instances(context, input, response),
        "RebootInstances" => instances::reboot_instances(context, input, response),
        "TerminateInstances" => instances::terminate_instances(context, input, response),
        "DescribeInstanceAttribute" => {
            instances::describe_instance_attribute(context, input, response)
        }
        "ModifyInstanceAttribute" => instances::modify_instance_attribute(context, input, response),
        "ModifyInstanceMetadataOptions" => {
            instances::modify_instance_metadata_options(context, input, response)
        }
        "GetConsoleOutput" => instances::get_console_output(context, input, response),
        "CreateVpc" => vpcs::create_vpc(context, input, response),
        "DescribeVpcs" => vpcs::describe_vpcs(context, input, response),
        "DeleteVpc" => vpcs::delete_vpc(context, input, response),
        "DescribeVpcAttribute" => vpcs::describe_vpc_attribute(context, input, response),
        "ModifyVpcAttribute" => vpcs::modify_vpc_attribute(context, input, response),
        "AssociateVpcCidrBlock" => vpcs::associate_vpc_cidr_block(context, input, response),
        "DisassociateVpcCidrBlock" => vpcs::disassociate_vpc_cidr_block(context, input, response),
        "CreateSubnet" => subnets::create_subnet(context, input, response),
        "DescribeSubnets" => subnets::describe_subnets(context, input, response),
        "DeleteSubnet" => subnets::delete_subnet(context, input, response),
        "ModifySubnetAttribute" => subnets::modify_subnet_attribute(context, input, response),
        "CreateSecurityGroup" => security_groups::create_security_group(context, input, response),
        "DeleteSecurityGroup" => security_groups::delete_security_group(context, input, response),
        "DescribeSecurityGroups" => {
            security_groups::describe_security_groups(context, input, response)
        }
        "AuthorizeSecurityGroupIngress" | "AuthorizeSecurityGroupEgress" => {
            security_groups::authorize(context, input, response)
        }
        "RevokeSecurityGroupIngress" | "RevokeSecurityGroupEgress" => {
            security_groups::revoke(context, input, response)
        }
        "DescribeSecurityGroupRules" => {
            security_groups::describe_security_group_rules(context, input, response)
        }
        "ModifySecurityGroupRules" => {
            security_groups::modify_security_group_rules(context, input, response)
        }
        "UpdateSecurityGroupRuleDescriptionsIngress"
        | "UpdateSecurityGroupRuleDescriptionsEgress" => {
            security_groups::update_rule_descriptions(context, input, response)
        }
        "CreateInternetGateway" => gateways::create_internet_gateway(context, input, response),
        "DescribeInternetGateways" => {
            gateways::describe_internet_gateways(context, input, response)
        }
        "AttachInternetGateway" => gateways::attach_internet_gateway(context, input, response),
        "DetachInternetGateway" => gateways::detach_internet_gateway(context, input, response),
        "DeleteInternetGateway" => gateways::delete_internet_gateway(context, input, response),
        "CreateRouteTable" => route_tables::create_route_table(context, input, response),
        "DescribeRouteTables" => route_tables::describe_route_tables(context, input, response),
        "DeleteRouteTable" => route_tables::delete_route_table(context, input, response),
        "CreateRoute" => route_tables::create_route(context, input, response),
        "ReplaceRoute" => route_tables::replace_route(context, input, response),
        "DeleteRoute" => route_tables::delete_route(context, input, response),
        "AssociateRouteTable" => route_tables::associate_route_table(context, input, response),
        "ReplaceRouteTableAssociation" => {
            route_tables::replace_route_table_association(context, input, response)
        }
        "DisassociateRouteTable" => {
            route_tables::disassociate_route_table(context, input, response)
        }
        "CreateNetworkAcl" => network_acls::create_network_acl(context, input, response),
        "DescribeNetworkAcls" => network_acls::describe_network_acls(context, input, response),
        "DeleteNetworkAcl" => network_acls::delete_network_acl(context, input, response),
        "CreateNetworkAclEntry" => network_acls::create_network_acl_entry(context, input, response),
        "ReplaceNetworkAclEntry" => {
            network_acls::replace_network_acl_entry(context, input, response)
        }
        "DeleteNetworkAclEntry" => network_acls::delete_network_acl_entry(context, input, response),
        "CreateNetworkInterface" => interfaces::create_network_interface(context, input, response),
        "DeleteNetworkInterface" => interfaces::delete_network_interface(context, input, response),
        "AttachNetworkInterface" => interfaces::attach_network_interface(context, input, response),
        "DetachNetworkInterface" => interfaces::detach_network_interface(context, input, response),
        "DescribeNetworkInterfaces" => {
            interfaces::describe_network_interfaces(context, input, response)
        }
        "ModifyNetworkInterfaceAttribute" => {
            interfaces::modify_network_interface_attribute(context, input, response)
        }
        "AssignPrivateIpAddresses" => {
            interfaces::assign_private_ip_addresses(context, input, response)
        }
        "UnassignPrivateIpAddresses" => {
            interfaces::unassign_private_ip_addresses(context, input, response)
        }
        "AllocateAddress" => addresses::allocate_address(context, input, response),
        "DescribeAddresses" => addresses::describe_addresses(context, input, response),
        "AssociateAddress" => addresses::associate_address(context, input, response),
        "DisassociateAddress" => addresses::disassociate_address(context, input, response),
        "ReleaseAddress" => addresses::release_address(context, input, response),
        "ReplaceNetworkAclAssociation" => {
            network_acls::replace_network_acl_association(context, input, response)
        }
        _ => return Err(unsupported(action)),
    }?;
    // Read-only actions honour DryRun after the request proved valid; mutating actions check
    // it themselves before changing anything.
    if dry_run && is_read_only(action) {
        return Err(control::Error::DryRunOperation.into());
    }
    Ok(xml)
}

fn is_read_only(action: &str) -> bool {
    action.starts_with("Describe") || action.starts_with("Get")
}

fn unsupported(action: &str) -> ApiError {
    ApiError::from(control::Error::Unsupported(format!(
        "The action {action} is not supported by nimbus."
    )))
}

/// A parameter of the EC2 model that nimbus does not honour: rejected, never ignored.
fn unsupported_parameter(name: &str) -> ApiError {
    ApiError::from(control::Error::Unsupported(format!(
        "The parameter {name} is not supported by nimbus (see docs/compatibility.md)."
    )))
}

/// Decodes the model-shaped request into an action's input struct. Input structs deny unknown
/// fields, so a modeled parameter the handler does not declare is refused by name.
fn input<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|error| {
        let message = error.to_string();
        match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) => unsupported_parameter(field),
            None => ApiError::from(control::Error::InvalidParameterValue(format!(
                "Invalid request: {message}"
            ))),
        }
    })
}

/// Identifies the response being written.
#[derive(Clone, Copy)]
struct Response<'a> {
    action: &'a str,
    request_id: &'a str,
}

impl Response<'_> {
    fn render(self, body: impl FnOnce(&mut awsproto::XmlWriter)) -> Result<String, ApiError> {
        Ok(awsproto::ec2_response(self.action, self.request_id, body))
    }
}

/// The part of a request every Describe action shares: its ID list (named `ids_member` in the
/// model, if the action has one), `Filters`, `MaxResults` and `NextToken`. The rest of the request is decoded into
/// `Rest`, which denies unknown fields, so a modeled parameter nimbus does not honour is
/// refused by name.
fn describe_request<Rest: DeserializeOwned>(
    mut request: Value,
    ids_member: Option<&str>,
) -> Result<(Query, Rest), ApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Shared {
        #[serde(default)]
        ids: Vec<String>,
        #[serde(default)]
        filters: Vec<Filter>,
        max_results: Option<i64>,
        next_token: Option<String>,
    }
    let mut shared = serde_json::Map::new();
    if let Some(object) = request.as_object_mut() {
        for member in ["Filters", "MaxResults", "NextToken"] {
            if let Some(value) = object.remove(member) {
                shared.insert(member.to_owned(), value);
            }
        }
        if let Some(ids) = ids_member.and_then(|member| object.remove(member)) {
            shared.insert("Ids".to_owned(), ids);
        }
    }
    let shared: Shared = input(Value::Object(shared))?;
    let query = Query {
        ids: shared.ids,
        filters: shared.filters,
        max_results: shared.max_results,
        next_token: shared.next_token,
    };
    Ok((query, input(request)?))
}

/// A Describe action with no parameters beyond the shared ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoOtherParameters {}

/// `<set><item>…</item>…</set>` and the `nextToken` of a page, as every Describe answers.
fn write_page<T>(
    xml: &mut awsproto::XmlWriter,
    set: &str,
    items: &[T],
    next_token: Option<&str>,
    mut write_item: impl FnMut(&mut awsproto::XmlWriter, &T),
) {
    xml.start(set);
    for item in items {
        xml.start("item");
        write_item(xml, item);
        xml.end();
    }
    xml.end();
    if let Some(token) = next_token {
        xml.leaf("nextToken", token);
    }
}

/// A Describe answer: one page of items in `set`.
fn render_page<T>(
    response: Response,
    set: &str,
    (items, next_token): Page<T>,
    write_item: impl FnMut(&mut awsproto::XmlWriter, &T),
) -> Result<String, ApiError> {
    response.render(|xml| write_page(xml, set, &items, next_token.as_deref(), write_item))
}

/// A resource's tags; AWS omits the element for an untagged resource.
fn write_tag_set(xml: &mut awsproto::XmlWriter, tags: &control::Tags) {
    if tags.is_empty() {
        return;
    }
    xml.start("tagSet");
    for (key, value) in tags {
        xml.start("item");
        xml.leaf("key", key);
        xml.leaf("value", value);
        xml.end();
    }
    xml.end();
}
