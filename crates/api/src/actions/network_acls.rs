//! CreateNetworkAcl, DeleteNetworkAcl, DescribeNetworkAcls, Create/Replace/DeleteNetworkAclEntry,
//! ReplaceNetworkAclAssociation.

use control::idempotency::ClientToken;
use control::tags::{tags_of_created, TagSpecification};
use control::vpc::network_acls::{AclEntry, AclEntryRequest, NetworkAcl, DEFAULT_RULE_NUMBER};
use control::vpc::Traffic;
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{
    describe_request, input, render_page, unsupported_parameter, write_tag_set, NoOtherParameters,
    Response,
};
use crate::{ApiContext, ApiError};

/// EC2 shows ACL protocols as numbers.
fn protocol_number(traffic: &Traffic) -> &str {
    match traffic.protocol.as_str() {
        "tcp" => "6",
        "udp" => "17",
        "icmp" => "1",
        other => other,
    }
}

fn write_entry(xml: &mut awsproto::XmlWriter, entry: &AclEntry) {
    xml.leaf("ruleNumber", &entry.rule_number.to_string());
    xml.leaf("protocol", protocol_number(&entry.traffic));
    xml.leaf("ruleAction", if entry.allow { "allow" } else { "deny" });
    xml.leaf("egress", &entry.egress.to_string());
    xml.leaf("cidrBlock", &entry.cidr.to_string());
    if let (Some(from), Some(to)) = (entry.traffic.from_port, entry.traffic.to_port) {
        if entry.traffic.protocol == "icmp" {
            xml.start("icmpTypeCode");
            xml.leaf("code", &to.to_string());
            xml.leaf("type", &from.to_string());
            xml.end();
        } else {
            xml.start("portRange");
            xml.leaf("from", &from.to_string());
            xml.leaf("to", &to.to_string());
            xml.end();
        }
    }
}

fn write_acl(xml: &mut awsproto::XmlWriter, acl: &NetworkAcl, owner: &str) {
    xml.leaf("networkAclId", &acl.network_acl_id);
    xml.leaf("vpcId", &acl.vpc_id);
    xml.leaf("default", &acl.is_default.to_string());
    xml.leaf("ownerId", owner);
    xml.start("entrySet");
    for egress in [true, false] {
        let final_deny = AclEntry {
            rule_number: DEFAULT_RULE_NUMBER,
            egress,
            traffic: Traffic::all(),
            cidr: Default::default(),
            allow: false,
        };
        for entry in acl.ordered(egress).into_iter().chain([&final_deny]) {
            xml.start("item");
            write_entry(xml, entry);
            xml.end();
        }
    }
    xml.end();
    xml.start("associationSet");
    for association in &acl.associations {
        xml.start("item");
        xml.leaf("networkAclAssociationId", &association.association_id);
        xml.leaf("networkAclId", &acl.network_acl_id);
        xml.leaf("subnetId", &association.subnet_id);
        xml.end();
    }
    xml.end();
    write_tag_set(xml, &acl.tags);
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

pub fn create_network_acl(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
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
    response.render(|xml| {
        xml.start("networkAcl");
        write_acl(xml, &acl, owner);
        xml.end();
    })
}

pub fn describe_network_acls(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("NetworkAclIds"))?;
    let page = context.control.describe_network_acls(&query)?;
    let owner = &context.control.config().account_id;
    render_page(response, "networkAclSet", page, |xml, acl| {
        write_acl(xml, acl, owner)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteNetworkAcl {
    network_acl_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_network_acl(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteNetworkAcl = input(request)?;
    context
        .control
        .delete_network_acl(&request.network_acl_id, request.dry_run)?;
    response.render(|xml| xml.leaf("return", "true"))
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

fn put_entry(
    context: &ApiContext,
    request: Value,
    response: Response,
    replace: bool,
) -> Result<String, ApiError> {
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
    response.render(|xml| xml.leaf("return", "true"))
}

pub fn create_network_acl_entry(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    put_entry(context, request, response, false)
}

pub fn replace_network_acl_entry(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    put_entry(context, request, response, true)
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

pub fn delete_network_acl_entry(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteEntry = input(request)?;
    context.control.delete_network_acl_entry(
        &request.network_acl_id,
        request.rule_number,
        request.egress,
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReplaceAssociation {
    association_id: String,
    network_acl_id: String,
    #[serde(default)]
    dry_run: bool,
}

pub fn replace_network_acl_association(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ReplaceAssociation = input(request)?;
    let new_id = context.control.replace_network_acl_association(
        &request.association_id,
        &request.network_acl_id,
        request.dry_run,
    )?;
    response.render(|xml| xml.leaf("newAssociationId", &new_id))
}
