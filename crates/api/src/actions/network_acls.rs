//! CreateNetworkAcl, DeleteNetworkAcl, DescribeNetworkAcls, Create/Replace/DeleteNetworkAclEntry,
//! ReplaceNetworkAclAssociation.

use control::idempotency::ClientToken;
use control::tags::{tags_of_created, TagSpecification};
use control::vpc::network_acls::{AclEntry, AclEntryRequest, NetworkAcl, DEFAULT_RULE_NUMBER};
use control::vpc::Traffic;
use control::Resource;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    NoOtherParameters, Output,
};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateNetworkAcl", Handler::Sync(create_network_acl)),
    ("DescribeNetworkAcls", Handler::Sync(describe_network_acls)),
    ("DeleteNetworkAcl", Handler::Sync(delete_network_acl)),
    (
        "CreateNetworkAclEntry",
        Handler::Sync(create_network_acl_entry),
    ),
    (
        "ReplaceNetworkAclEntry",
        Handler::Sync(replace_network_acl_entry),
    ),
    (
        "DeleteNetworkAclEntry",
        Handler::Sync(delete_network_acl_entry),
    ),
    (
        "ReplaceNetworkAclAssociation",
        Handler::Sync(replace_network_acl_association),
    ),
];

/// EC2 shows ACL protocols as numbers.
fn protocol_number(traffic: &Traffic) -> &str {
    match traffic.protocol.as_str() {
        "tcp" => "6",
        "udp" => "17",
        "icmp" => "1",
        other => other,
    }
}

fn entry_output(entry: &AclEntry) -> Value {
    let ports = entry.traffic.from_port.zip(entry.traffic.to_port);
    let icmp = entry.traffic.protocol == "icmp";
    json!({
        "RuleNumber": entry.rule_number,
        "Protocol": protocol_number(&entry.traffic),
        "RuleAction": if entry.allow { "allow" } else { "deny" },
        "Egress": entry.egress,
        "CidrBlock": entry.cidr.to_string(),
        // ICMP's type and code travel in the port fields.
        "IcmpTypeCode": ports.filter(|_| icmp).map(|(from, to)| json!({"Code": to, "Type": from})),
        "PortRange": ports.filter(|_| !icmp).map(|(from, to)| json!({"From": from, "To": to})),
    })
}

fn acl_output(acl: &NetworkAcl, owner: &str) -> Value {
    let mut entries = Vec::new();
    for egress in [true, false] {
        let final_deny = AclEntry {
            rule_number: DEFAULT_RULE_NUMBER,
            egress,
            traffic: Traffic::all(),
            cidr: Default::default(),
            allow: false,
        };
        let ordered = acl.ordered(egress).into_iter().chain([&final_deny]);
        entries.extend(ordered.map(entry_output));
    }
    let associations: Vec<Value> = (acl.associations.iter())
        .map(|association| {
            json!({
                "NetworkAclAssociationId": association.association_id,
                "NetworkAclId": acl.network_acl_id,
                "SubnetId": association.subnet_id,
            })
        })
        .collect();
    json!({
        "NetworkAclId": acl.network_acl_id,
        "VpcId": acl.vpc_id,
        "IsDefault": acl.is_default,
        "OwnerId": owner,
        "Entries": entries,
        "Associations": associations,
        "Tags": tags_output(&acl.tags),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateNetworkAcl {
    vpc_id: String,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    /// Read through `ClientToken::of_request`.
    #[serde(rename = "ClientToken")]
    _client_token: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

fn create_network_acl(context: &ApiContext, request: Value) -> Output {
    let token = ClientToken::of_request("CreateNetworkAcl", &request)?;
    let request: CreateNetworkAcl = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, NetworkAcl::KIND)?;
    let acl = context.control.create_network_acl(
        &request.vpc_id,
        tags,
        token.as_ref(),
        request.dry_run,
    )?;
    let owner = &context.control.config().account_id;
    answer(json!({"NetworkAcl": acl_output(&acl, owner)}))
}

fn describe_network_acls(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("NetworkAclIds"))?;
    let page = context.control.describe_network_acls(&query)?;
    let owner = &context.control.config().account_id;
    Ok(page_output("NetworkAcls", page, |acl| {
        acl_output(&acl, owner)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteNetworkAcl {
    network_acl_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn delete_network_acl(context: &ApiContext, request: Value) -> Output {
    let request: DeleteNetworkAcl = input(request)?;
    context
        .control
        .delete_network_acl(&request.network_acl_id, request.dry_run)?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct PortRange {
    from: Option<i64>,
    to: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct IcmpTypeCode {
    r#type: Option<i64>,
    code: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct EntryRequest {
    network_acl_id: String,
    rule_number: i64,
    #[serde(default)]
    egress: bool,
    protocol: Option<String>,
    rule_action: Option<String>,
    cidr_block: Option<String>,
    ipv6_cidr_block: Option<String>,
    port_range: Option<PortRange>,
    icmp_type_code: Option<IcmpTypeCode>,
    #[serde(default)]
    dry_run: bool,
}

fn put_entry(context: &ApiContext, request: Value, replace: bool) -> Output {
    let request: EntryRequest = input(request)?;
    if request.ipv6_cidr_block.is_some() {
        return Err(unsupported_parameter("Ipv6CidrBlock"));
    }
    let missing = |name: &str| ApiError::from(control::Error::MissingParameter(name.into()));
    let entry = AclEntryRequest {
        rule_number: request.rule_number,
        egress: request.egress,
        protocol: request.protocol.ok_or_else(|| missing("Protocol"))?,
        rule_action: request.rule_action.ok_or_else(|| missing("RuleAction"))?,
        cidr: request.cidr_block.ok_or_else(|| missing("CidrBlock"))?,
        port_range: request.port_range.map(|r| (r.from, r.to)),
        icmp: request.icmp_type_code.map(|i| (i.r#type, i.code)),
    };
    context.control.put_network_acl_entry(
        &request.network_acl_id,
        &entry,
        replace,
        request.dry_run,
    )?;
    answer(Value::Null)
}

fn create_network_acl_entry(context: &ApiContext, request: Value) -> Output {
    put_entry(context, request, false)
}

fn replace_network_acl_entry(context: &ApiContext, request: Value) -> Output {
    put_entry(context, request, true)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteEntry {
    network_acl_id: String,
    rule_number: i64,
    #[serde(default)]
    egress: bool,
    #[serde(default)]
    dry_run: bool,
}

fn delete_network_acl_entry(context: &ApiContext, request: Value) -> Output {
    let request: DeleteEntry = input(request)?;
    context.control.delete_network_acl_entry(
        &request.network_acl_id,
        request.rule_number,
        request.egress,
        request.dry_run,
    )?;
    answer(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReplaceAssociation {
    association_id: String,
    network_acl_id: String,
    #[serde(default)]
    dry_run: bool,
}

fn replace_network_acl_association(context: &ApiContext, request: Value) -> Output {
    let request: ReplaceAssociation = input(request)?;
    let new_id = context.control.replace_network_acl_association(
        &request.association_id,
        &request.network_acl_id,
        request.dry_run,
    )?;
    answer(json!({"NewAssociationId": new_id}))
}
