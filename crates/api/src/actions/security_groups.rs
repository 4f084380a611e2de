//! CreateSecurityGroup, DeleteSecurityGroup, DescribeSecurityGroups,
//! Authorize/RevokeSecurityGroupIngress/Egress, DescribeSecurityGroupRules,
//! ModifySecurityGroupRules, UpdateSecurityGroupRuleDescriptionsIngress/Egress.

use control::tags::{tags_of_created, TagSpecification};
use control::vpc::security_groups::{
    Direction, GroupRef, IpPermission, IpRange, RulePeer, RuleRow, RuleSelection, RuleUpdate,
    SecurityGroup, SecurityGroupRule, UserIdGroupPair,
};
use control::vpc::Traffic;
use control::Resource;
use serde::Deserialize;
use serde_json::Value;

use super::{
    describe_request, input, render_page, unsupported_parameter, write_tag_set, NoOtherParameters,
    Response,
};
use crate::{ApiContext, ApiError};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateSecurityGroup {
    group_name: String,
    description: String,
    vpc_id: Option<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

pub fn create_security_group(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: CreateSecurityGroup = input(request)?;
    let tags = tags_of_created(&request.tag_specifications, SecurityGroup::KIND)?;
    let group = context.control.create_security_group(
        &request.group_name,
        &request.description,
        request.vpc_id.as_deref(),
        tags,
        request.dry_run,
    )?;
    let config = context.control.config();
    response.render(|xml| {
        xml.leaf("return", "true");
        xml.leaf("groupId", &group.group_id);
        write_tag_set(xml, &group.tags);
        xml.leaf("securityGroupArn", &group_arn(config, &group.group_id));
    })
}

fn group_arn(config: &nimbus_core::Config, group_id: &str) -> String {
    format!(
        "arn:aws:ec2:{}:{}:security-group/{group_id}",
        config.region, config.account_id
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DeleteSecurityGroup {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

pub fn delete_security_group(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: DeleteSecurityGroup = input(request)?;
    let group = GroupRef::from_request(request.group_id.as_deref(), request.group_name.as_deref())?;
    let group_id = context
        .control
        .delete_security_group(group, request.dry_run)?;
    response.render(|xml| {
        xml.leaf("return", "true");
        xml.leaf("groupId", &group_id);
    })
}

/// Rules with the same traffic, as one `IpPermission` with their peers.
fn permissions(rules: &[SecurityGroupRule]) -> Vec<(&Traffic, Vec<&SecurityGroupRule>)> {
    let mut grouped: Vec<(&Traffic, Vec<&SecurityGroupRule>)> = Vec::new();
    for rule in rules {
        match grouped.iter_mut().find(|(t, _)| **t == rule.traffic) {
            Some((_, members)) => members.push(rule),
            None => grouped.push((&rule.traffic, vec![rule])),
        }
    }
    grouped
}

fn write_ports(xml: &mut awsproto::XmlWriter, traffic: &Traffic) {
    if let (Some(from), Some(to)) = (traffic.from_port, traffic.to_port) {
        xml.leaf("fromPort", &from.to_string());
        xml.leaf("toPort", &to.to_string());
    }
}

fn write_permissions(
    xml: &mut awsproto::XmlWriter,
    set: &str,
    rules: &[SecurityGroupRule],
    owner: &str,
) {
    xml.start(set);
    for (traffic, members) in permissions(rules) {
        xml.start("item");
        xml.leaf("ipProtocol", &traffic.protocol);
        write_ports(xml, traffic);
        xml.start("groups");
        for rule in members.iter() {
            if let RulePeer::Group(group_id) = &rule.peer {
                xml.start("item");
                xml.leaf("userId", owner);
                xml.leaf("groupId", group_id);
                xml.leaf_opt("description", rule.description.as_deref());
                xml.end();
            }
        }
        xml.end();
        xml.start("ipRanges");
        for rule in members.iter() {
            if let RulePeer::Cidr(net) = &rule.peer {
                xml.start("item");
                xml.leaf("cidrIp", &net.to_string());
                xml.leaf_opt("description", rule.description.as_deref());
                xml.end();
            }
        }
        xml.end();
        xml.start("ipv6Ranges");
        xml.end();
        xml.start("prefixListIds");
        xml.end();
        xml.end();
    }
    xml.end();
}

fn write_group(xml: &mut awsproto::XmlWriter, config: &nimbus_core::Config, group: &SecurityGroup) {
    let owner = &config.account_id;
    xml.leaf("ownerId", owner);
    xml.leaf("groupId", &group.group_id);
    xml.leaf("groupName", &group.group_name);
    xml.leaf("groupDescription", &group.description);
    xml.leaf("vpcId", &group.vpc_id);
    xml.leaf("securityGroupArn", &group_arn(config, &group.group_id));
    write_permissions(xml, "ipPermissions", &group.ingress, owner);
    write_permissions(xml, "ipPermissionsEgress", &group.egress, owner);
    write_tag_set(xml, &group.tags);
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSecurityGroups {
    #[serde(default)]
    group_names: Vec<String>,
}

pub fn describe_security_groups(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, request): (_, DescribeSecurityGroups) =
        describe_request(request, Some("GroupIds"))?;
    let page = context
        .control
        .describe_security_groups(&request.group_names, &query)?;
    let config = context.control.config();
    render_page(response, "securityGroupInfo", page, |xml, group| {
        write_group(xml, config, group)
    })
}

fn write_rule(xml: &mut awsproto::XmlWriter, config: &nimbus_core::Config, row: &RuleRow) {
    let rule = &row.rule;
    xml.leaf("securityGroupRuleId", &rule.rule_id);
    xml.leaf("groupId", &row.group_id);
    xml.leaf("groupOwnerId", &config.account_id);
    xml.leaf(
        "isEgress",
        &(row.direction == Direction::Egress).to_string(),
    );
    xml.leaf("ipProtocol", &rule.traffic.protocol);
    xml.leaf(
        "fromPort",
        &rule.traffic.from_port.unwrap_or(-1).to_string(),
    );
    xml.leaf("toPort", &rule.traffic.to_port.unwrap_or(-1).to_string());
    match &rule.peer {
        RulePeer::Cidr(net) => xml.leaf("cidrIpv4", &net.to_string()),
        RulePeer::Group(group_id) => {
            xml.start("referencedGroupInfo");
            xml.leaf("groupId", group_id);
            xml.leaf("userId", &config.account_id);
            xml.end();
        }
    }
    xml.leaf_opt("description", rule.description.as_deref());
    xml.leaf(
        "securityGroupRuleArn",
        &format!(
            "arn:aws:ec2:{}:{}:security-group-rule/{}",
            config.region, config.account_id, rule.rule_id
        ),
    );
}

fn write_rule_set(
    xml: &mut awsproto::XmlWriter,
    config: &nimbus_core::Config,
    group_id: &str,
    direction: Direction,
    rules: &[SecurityGroupRule],
) {
    xml.start("securityGroupRuleSet");
    for rule in rules {
        xml.start("item");
        write_rule(
            xml,
            config,
            &RuleRow {
                group_id: group_id.to_owned(),
                direction,
                rule: rule.clone(),
            },
        );
        xml.end();
    }
    xml.end();
}

/// Authorize and Revoke, in both directions: `IpPermissions`, the older flat form
/// (`IpProtocol`, `FromPort`, `ToPort`, `CidrIp`, `SourceSecurityGroupName`), or (for revoke)
/// `SecurityGroupRuleIds`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ChangeRules {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermission>,
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    cidr_ip: Option<String>,
    source_security_group_name: Option<String>,
    source_security_group_owner_id: Option<String>,
    #[serde(default)]
    security_group_rule_ids: Vec<String>,
    #[serde(default)]
    tag_specifications: Vec<TagSpecification>,
    #[serde(default)]
    dry_run: bool,
}

impl ChangeRules {
    /// The request's permissions, the flat form turned into one `IpPermission`.
    fn permissions(&self) -> Vec<IpPermission> {
        let flat = self.cidr_ip.is_some() || self.source_security_group_name.is_some();
        if !flat {
            return self.ip_permissions.clone();
        }
        let mut permission = IpPermission {
            ip_protocol: Some(self.ip_protocol.clone().unwrap_or_else(|| "-1".into())),
            from_port: self.from_port,
            to_port: self.to_port,
            ..IpPermission::default()
        };
        if let Some(cidr) = &self.cidr_ip {
            permission.ip_ranges.push(IpRange {
                cidr_ip: Some(cidr.clone()),
                description: None,
            });
        }
        if let Some(name) = &self.source_security_group_name {
            permission.user_id_group_pairs.push(UserIdGroupPair {
                group_name: Some(name.clone()),
                user_id: self.source_security_group_owner_id.clone(),
                ..UserIdGroupPair::default()
            });
        }
        let mut all = self.ip_permissions.clone();
        all.push(permission);
        all
    }
}

fn direction_of(action: &str) -> Direction {
    if action.ends_with("Egress") {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

pub fn authorize(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ChangeRules = input(request)?;
    if !request.tag_specifications.is_empty() {
        return Err(unsupported_parameter("TagSpecifications"));
    }
    if !request.security_group_rule_ids.is_empty() {
        return Err(unsupported_parameter("SecurityGroupRuleIds"));
    }
    let direction = direction_of(response.action);
    let group = GroupRef::from_request(request.group_id.as_deref(), request.group_name.as_deref())?;
    let permissions = request.permissions();
    let (group_id, added) = context.control.authorize_security_group(
        direction,
        group,
        &permissions,
        request.dry_run,
    )?;
    let config = context.control.config();
    response.render(|xml| {
        xml.leaf("return", "true");
        write_rule_set(xml, config, &group_id, direction, &added);
    })
}

pub fn revoke(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ChangeRules = input(request)?;
    if !request.tag_specifications.is_empty() {
        return Err(unsupported_parameter("TagSpecifications"));
    }
    let direction = direction_of(response.action);
    let group = GroupRef::from_request(request.group_id.as_deref(), request.group_name.as_deref())?;
    let permissions = request.permissions();
    let selection = if request.security_group_rule_ids.is_empty() {
        RuleSelection::Permissions(&permissions)
    } else {
        RuleSelection::Ids(&request.security_group_rule_ids)
    };
    let removed =
        context
            .control
            .revoke_security_group(direction, group, selection, request.dry_run)?;
    let config = context.control.config();
    response.render(|xml| {
        xml.leaf("return", "true");
        xml.start("revokedSecurityGroupRuleSet");
        for rule in &removed {
            xml.start("item");
            write_rule(
                xml,
                config,
                &RuleRow {
                    group_id: request.group_id.clone().unwrap_or_default(),
                    direction,
                    rule: rule.clone(),
                },
            );
            xml.end();
        }
        xml.end();
    })
}

pub fn describe_security_group_rules(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let (query, NoOtherParameters {}) = describe_request(request, Some("SecurityGroupRuleIds"))?;
    let page = context.control.describe_security_group_rules(&query)?;
    let config = context.control.config();
    render_page(response, "securityGroupRuleSet", page, |xml, row| {
        write_rule(xml, config, row)
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RuleRequest {
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    cidr_ipv4: Option<String>,
    referenced_group_id: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RuleUpdateRequest {
    security_group_rule_id: String,
    security_group_rule: Option<RuleRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ModifySecurityGroupRules {
    group_id: String,
    security_group_rules: Vec<RuleUpdateRequest>,
    #[serde(default)]
    dry_run: bool,
}

pub fn modify_security_group_rules(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: ModifySecurityGroupRules = input(request)?;
    let mut updates = Vec::new();
    for update in request.security_group_rules {
        let rule = update.security_group_rule.ok_or_else(|| {
            ApiError::from(control::Error::MissingParameter(
                "SecurityGroupRule.N.SecurityGroupRule".into(),
            ))
        })?;
        updates.push(RuleUpdate {
            rule_id: update.security_group_rule_id,
            protocol: rule.ip_protocol.unwrap_or_else(|| "-1".into()),
            from_port: rule.from_port,
            to_port: rule.to_port,
            cidr: rule.cidr_ipv4,
            referenced_group_id: rule.referenced_group_id,
            description: rule.description,
        });
    }
    if request.dry_run {
        return Err(control::Error::DryRunOperation.into());
    }
    context
        .control
        .modify_security_group_rules(&request.group_id, &updates)?;
    response.render(|xml| xml.leaf("return", "true"))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RuleDescription {
    security_group_rule_id: String,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateDescriptions {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermission>,
    #[serde(default)]
    security_group_rule_descriptions: Vec<RuleDescription>,
    #[serde(default)]
    dry_run: bool,
}

pub fn update_rule_descriptions(
    context: &ApiContext,
    request: Value,
    response: Response,
) -> Result<String, ApiError> {
    let request: UpdateDescriptions = input(request)?;
    if request.dry_run {
        return Err(control::Error::DryRunOperation.into());
    }
    let direction = direction_of(response.action);
    let group = GroupRef::from_request(request.group_id.as_deref(), request.group_name.as_deref())?;
    let ids: Vec<String> = request
        .security_group_rule_descriptions
        .iter()
        .map(|d| d.security_group_rule_id.clone())
        .collect();
    let descriptions: Vec<Option<String>> = request
        .security_group_rule_descriptions
        .iter()
        .map(|d| d.description.clone())
        .collect();
    let selection = if ids.is_empty() {
        RuleSelection::Permissions(&request.ip_permissions)
    } else {
        RuleSelection::Ids(&ids)
    };
    context
        .control
        .update_rule_descriptions(direction, group, selection, &descriptions)?;
    response.render(|xml| xml.leaf("return", "true"))
}
