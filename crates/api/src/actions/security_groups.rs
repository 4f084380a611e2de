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
use serde_json::{json, Value};

use super::{
    answer, describe_request, input, page_output, tags_output, unsupported_parameter, Handler,
    NoOtherParameters, Output,
};
use crate::{ApiContext, ApiError};

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    ("CreateSecurityGroup", Handler::Sync(create_security_group)),
    ("DeleteSecurityGroup", Handler::Sync(delete_security_group)),
    (
        "DescribeSecurityGroups",
        Handler::Sync(describe_security_groups),
    ),
    (
        "AuthorizeSecurityGroupIngress",
        Handler::Sync(authorize_ingress),
    ),
    (
        "AuthorizeSecurityGroupEgress",
        Handler::Sync(authorize_egress),
    ),
    ("RevokeSecurityGroupIngress", Handler::Sync(revoke_ingress)),
    ("RevokeSecurityGroupEgress", Handler::Sync(revoke_egress)),
    (
        "DescribeSecurityGroupRules",
        Handler::Sync(describe_security_group_rules),
    ),
    (
        "ModifySecurityGroupRules",
        Handler::Sync(modify_security_group_rules),
    ),
    (
        "UpdateSecurityGroupRuleDescriptionsIngress",
        Handler::Sync(update_rule_descriptions_ingress),
    ),
    (
        "UpdateSecurityGroupRuleDescriptionsEgress",
        Handler::Sync(update_rule_descriptions_egress),
    ),
];

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

fn create_security_group(context: &ApiContext, request: Value) -> Output {
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
    answer(json!({
        "GroupId": group.group_id,
        "Tags": tags_output(&group.tags),
        "SecurityGroupArn": group_arn(config, &group.group_id),
    }))
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

fn delete_security_group(context: &ApiContext, request: Value) -> Output {
    let request: DeleteSecurityGroup = input(request)?;
    let group = GroupRef::from_request(request.group_id.as_deref(), request.group_name.as_deref())?;
    let group_id = context
        .control
        .delete_security_group(group, request.dry_run)?;
    answer(json!({"Return": true, "GroupId": group_id}))
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

fn permissions_output(rules: &[SecurityGroupRule], owner: &str) -> Vec<Value> {
    (permissions(rules).into_iter())
        .map(|(traffic, members)| {
            let groups: Vec<Value> = (members.iter())
                .filter_map(|rule| match &rule.peer {
                    RulePeer::Group(group_id) => Some(json!({
                        "UserId": owner,
                        "GroupId": group_id,
                        "Description": rule.description,
                    })),
                    RulePeer::Cidr(_) => None,
                })
                .collect();
            let ranges: Vec<Value> = (members.iter())
                .filter_map(|rule| match &rule.peer {
                    RulePeer::Cidr(net) => Some(json!({
                        "CidrIp": net.to_string(),
                        "Description": rule.description,
                    })),
                    RulePeer::Group(_) => None,
                })
                .collect();
            let ports = traffic.from_port.zip(traffic.to_port);
            json!({
                "IpProtocol": traffic.protocol,
                "FromPort": ports.map(|(from, _)| from),
                "ToPort": ports.map(|(_, to)| to),
                "UserIdGroupPairs": groups,
                "IpRanges": ranges,
                "Ipv6Ranges": [],
                "PrefixListIds": [],
            })
        })
        .collect()
}

fn group_output(config: &nimbus_core::Config, group: &SecurityGroup) -> Value {
    let owner = &config.account_id;
    json!({
        "OwnerId": owner,
        "GroupId": group.group_id,
        "GroupName": group.group_name,
        "Description": group.description,
        "VpcId": group.vpc_id,
        "SecurityGroupArn": group_arn(config, &group.group_id),
        "IpPermissions": permissions_output(&group.ingress, owner),
        "IpPermissionsEgress": permissions_output(&group.egress, owner),
        "Tags": tags_output(&group.tags),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DescribeSecurityGroups {
    #[serde(default)]
    group_names: Vec<String>,
}

fn describe_security_groups(context: &ApiContext, request: Value) -> Output {
    let (query, request): (_, DescribeSecurityGroups) =
        describe_request(request, Some("GroupIds"))?;
    let page = context
        .control
        .describe_security_groups(&request.group_names, &query)?;
    let config = context.control.config();
    Ok(page_output("SecurityGroups", page, |group| {
        group_output(config, &group)
    }))
}

fn rule_output(config: &nimbus_core::Config, row: &RuleRow) -> Value {
    let rule = &row.rule;
    let (cidr, referenced) = match &rule.peer {
        RulePeer::Cidr(net) => (Some(net.to_string()), None),
        RulePeer::Group(group_id) => (None, Some(group_id)),
    };
    json!({
        "SecurityGroupRuleId": rule.rule_id,
        "GroupId": row.group_id,
        "GroupOwnerId": config.account_id,
        "IsEgress": row.direction == Direction::Egress,
        "IpProtocol": rule.traffic.protocol,
        "FromPort": rule.traffic.from_port.unwrap_or(-1),
        "ToPort": rule.traffic.to_port.unwrap_or(-1),
        "CidrIpv4": cidr,
        "ReferencedGroupInfo": referenced.map(|id| json!({"GroupId": id, "UserId": config.account_id})),
        "Description": rule.description,
        "SecurityGroupRuleArn": format!(
            "arn:aws:ec2:{}:{}:security-group-rule/{}",
            config.region, config.account_id, rule.rule_id
        ),
    })
}

/// The rules of one group in one direction, as `SecurityGroupRule`s.
fn rules_output(
    config: &nimbus_core::Config,
    group_id: &str,
    direction: Direction,
    rules: &[SecurityGroupRule],
) -> Vec<Value> {
    (rules.iter())
        .map(|rule| {
            let row = RuleRow {
                group_id: group_id.to_owned(),
                direction,
                rule: rule.clone(),
            };
            rule_output(config, &row)
        })
        .collect()
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

fn authorize_ingress(context: &ApiContext, request: Value) -> Output {
    authorize(context, request, Direction::Ingress)
}

fn authorize_egress(context: &ApiContext, request: Value) -> Output {
    authorize(context, request, Direction::Egress)
}

fn authorize(context: &ApiContext, request: Value, direction: Direction) -> Output {
    let request: ChangeRules = input(request)?;
    if !request.tag_specifications.is_empty() {
        return Err(unsupported_parameter("TagSpecifications"));
    }
    if !request.security_group_rule_ids.is_empty() {
        return Err(unsupported_parameter("SecurityGroupRuleIds"));
    }
    let group = GroupRef::from_request(request.group_id.as_deref(), request.group_name.as_deref())?;
    let permissions = request.permissions();
    let (group_id, added) = context.control.authorize_security_group(
        direction,
        group,
        &permissions,
        request.dry_run,
    )?;
    let config = context.control.config();
    answer(json!({
        "Return": true,
        "SecurityGroupRules": rules_output(config, &group_id, direction, &added),
    }))
}

fn revoke_ingress(context: &ApiContext, request: Value) -> Output {
    revoke(context, request, Direction::Ingress)
}

fn revoke_egress(context: &ApiContext, request: Value) -> Output {
    revoke(context, request, Direction::Egress)
}

fn revoke(context: &ApiContext, request: Value, direction: Direction) -> Output {
    let request: ChangeRules = input(request)?;
    if !request.tag_specifications.is_empty() {
        return Err(unsupported_parameter("TagSpecifications"));
    }
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
    let group_id = request.group_id.unwrap_or_default();
    let revoked: Vec<Value> = (rules_output(config, &group_id, direction, &removed).into_iter())
        .zip(&removed)
        .map(|(mut rule, removed)| {
            // A `RevokedSecurityGroupRule` names the group it referenced by ID alone (and has no
            // owner or ARN: the encoder leaves out members the shape lacks).
            if let RulePeer::Group(id) = &removed.peer {
                rule["ReferencedGroupId"] = json!(id);
            }
            rule
        })
        .collect();
    answer(json!({"Return": true, "RevokedSecurityGroupRules": revoked}))
}

fn describe_security_group_rules(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("SecurityGroupRuleIds"))?;
    let page = context.control.describe_security_group_rules(&query)?;
    let config = context.control.config();
    Ok(page_output("SecurityGroupRules", page, |row| {
        rule_output(config, &row)
    }))
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

fn modify_security_group_rules(context: &ApiContext, request: Value) -> Output {
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
    answer(json!({"Return": true}))
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

fn update_rule_descriptions_ingress(context: &ApiContext, request: Value) -> Output {
    update_rule_descriptions(context, request, Direction::Ingress)
}

fn update_rule_descriptions_egress(context: &ApiContext, request: Value) -> Output {
    update_rule_descriptions(context, request, Direction::Egress)
}

fn update_rule_descriptions(context: &ApiContext, request: Value, direction: Direction) -> Output {
    let request: UpdateDescriptions = input(request)?;
    if request.dry_run {
        return Err(control::Error::DryRunOperation.into());
    }
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
    answer(json!({"Return": true}))
}
