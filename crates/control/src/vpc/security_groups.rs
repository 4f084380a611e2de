//! Security groups with EC2's semantics: a new group allows all egress and no ingress; a
//! VPC's default group allows ingress from its own members. Rules are stored one per source
//! or destination, each with its `sgr-` ID, so they can be named in Revoke, Modify and
//! DescribeSecurityGroupRules. A duplicate rule is `InvalidPermission.Duplicate`, revoking a
//! missing one `InvalidPermission.NotFound`, and a group still used by an instance or named
//! by another group's rule cannot be deleted (`DependencyViolation`).

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::vpcs::Vpc;
use super::{check_text, parse_cidr, port_text, Traffic};
use crate::describe::{self, existing, Page, Paging, Query};
use crate::filter::{FilterField, Filterable};
use crate::kinds::Tables;
use crate::limits::{self, Limit};
use crate::vpc::network_interfaces::InterfaceQueries;
use crate::{Control, Error, Resource, Result, State, Tags};

/// DescribeSecurityGroups's MaxResults bounds.
const DESCRIBE_GROUPS_PAGING: Paging = Paging::within_without_ids(5, 1000, "groupId");
/// DescribeSecurityGroupRules's MaxResults bounds.
const DESCRIBE_RULES_PAGING: Paging = Paging::within(5, 1000);
/// The name of every VPC's default group; no other group may take it.
pub const DEFAULT_GROUP_NAME: &str = "default";

/// The other end of a rule: the source of ingress, the destination of egress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RulePeer {
    Cidr(Ipv4Net),
    /// The private IPs of the group's members.
    Group(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub rule_id: String,
    pub traffic: Traffic,
    pub peer: RulePeer,
    pub description: Option<String>,
}

impl SecurityGroupRule {
    /// Two rules are the same rule when they allow the same traffic from the same peer,
    /// whatever their descriptions.
    fn same_as(&self, traffic: &Traffic, peer: &RulePeer) -> bool {
        self.traffic == *traffic && self.peer == *peer
    }

    pub fn to_network(&self) -> network::SecurityGroupRule {
        network::SecurityGroupRule {
            protocol: self.traffic.to_network(),
            peer: match &self.peer {
                RulePeer::Cidr(net) => network::Peer::Cidr(*net),
                RulePeer::Group(id) => network::Peer::Group(id.clone()),
            },
        }
    }
}

/// Ingress or egress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub group_id: String,
    pub group_name: String,
    pub description: String,
    pub vpc_id: String,
    pub ingress: Vec<SecurityGroupRule>,
    pub egress: Vec<SecurityGroupRule>,
    pub tags: Tags,
}

fn all_egress() -> SecurityGroupRule {
    SecurityGroupRule {
        rule_id: nimbus_core::new_id("sgr"),
        traffic: Traffic::all(),
        peer: RulePeer::Cidr(Ipv4Net::default()),
        description: None,
    }
}

impl SecurityGroup {
    fn new(name: &str, description: &str, vpc_id: &str, tags: Tags) -> SecurityGroup {
        SecurityGroup {
            group_id: nimbus_core::new_id("sg"),
            group_name: name.to_owned(),
            description: description.to_owned(),
            vpc_id: vpc_id.to_owned(),
            ingress: Vec::new(),
            egress: vec![all_egress()],
            tags,
        }
    }

    /// A VPC's default group: ingress from its own members, all egress.
    pub fn default_of(vpc: &Vpc) -> SecurityGroup {
        let mut group = SecurityGroup::new(
            DEFAULT_GROUP_NAME,
            "default VPC security group",
            &vpc.vpc_id,
            Tags::new(),
        );
        group.ingress.push(SecurityGroupRule {
            rule_id: nimbus_core::new_id("sgr"),
            traffic: Traffic::all(),
            peer: RulePeer::Group(group.group_id.clone()),
            description: None,
        });
        group
    }

    pub fn is_default(&self) -> bool {
        self.group_name == DEFAULT_GROUP_NAME
    }

    pub fn rules(&self, direction: Direction) -> &Vec<SecurityGroupRule> {
        match direction {
            Direction::Ingress => &self.ingress,
            Direction::Egress => &self.egress,
        }
    }

    fn rules_mut(&mut self, direction: Direction) -> &mut Vec<SecurityGroupRule> {
        match direction {
            Direction::Ingress => &mut self.ingress,
            Direction::Egress => &mut self.egress,
        }
    }

    fn references(&self, group_id: &str) -> bool {
        self.ingress
            .iter()
            .chain(&self.egress)
            .any(|r| r.peer == RulePeer::Group(group_id.to_owned()))
    }

    fn rule_values(
        &self,
        direction: Direction,
        field: fn(&SecurityGroupRule) -> String,
    ) -> Vec<String> {
        self.rules(direction).iter().map(field).collect()
    }
}

fn peer_cidr(rule: &SecurityGroupRule) -> String {
    match &rule.peer {
        RulePeer::Cidr(net) => net.to_string(),
        RulePeer::Group(_) => String::new(),
    }
}

fn peer_group(rule: &SecurityGroupRule) -> String {
    match &rule.peer {
        RulePeer::Group(id) => id.clone(),
        RulePeer::Cidr(_) => String::new(),
    }
}

impl Filterable for SecurityGroup {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("group-id", |g, _| vec![g.group_id.clone()]),
        ("group-name", |g, _| vec![g.group_name.clone()]),
        ("description", |g, _| vec![g.description.clone()]),
        ("vpc-id", |g, _| vec![g.vpc_id.clone()]),
        ("owner-id", |_, config| vec![config.account_id.clone()]),
        ("ip-permission.protocol", |g, _| {
            g.rule_values(Direction::Ingress, |r| r.traffic.protocol.clone())
        }),
        ("ip-permission.from-port", |g, _| {
            g.rule_values(Direction::Ingress, |r| port_text(r.traffic.from_port))
        }),
        ("ip-permission.to-port", |g, _| {
            g.rule_values(Direction::Ingress, |r| port_text(r.traffic.to_port))
        }),
        ("ip-permission.cidr", |g, _| {
            g.rule_values(Direction::Ingress, peer_cidr)
        }),
        ("ip-permission.group-id", |g, _| {
            g.rule_values(Direction::Ingress, peer_group)
        }),
        ("egress.ip-permission.protocol", |g, _| {
            g.rule_values(Direction::Egress, |r| r.traffic.protocol.clone())
        }),
        ("egress.ip-permission.cidr", |g, _| {
            g.rule_values(Direction::Egress, peer_cidr)
        }),
        ("egress.ip-permission.group-id", |g, _| {
            g.rule_values(Direction::Egress, peer_group)
        }),
    ];
}

/// One row of DescribeSecurityGroupRules.
#[derive(Clone, Debug)]
pub struct RuleRow {
    pub group_id: String,
    pub direction: Direction,
    pub rule: SecurityGroupRule,
}

impl Filterable for RuleRow {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("group-id", |r, _| vec![r.group_id.clone()]),
        ("security-group-rule-id", |r, _| {
            vec![r.rule.rule_id.clone()]
        }),
    ];
}

/// How a request names a group: by ID, or by name in the default VPC.
#[derive(Clone, Copy, Debug)]
pub enum GroupRef<'a> {
    Id(&'a str),
    Name(&'a str),
}

impl<'a> GroupRef<'a> {
    pub fn from_request(id: Option<&'a str>, name: Option<&'a str>) -> Result<GroupRef<'a>> {
        match (id, name) {
            (Some(id), _) => Ok(GroupRef::Id(id)),
            (None, Some(name)) => Ok(GroupRef::Name(name)),
            (None, None) => Err(Error::MissingParameter("GroupId or GroupName".into())),
        }
    }
}

fn group_not_found(id: &str) -> Error {
    engine::Error::not_found(SecurityGroup::KIND, id).into()
}

/// Lookups of the working set that the rules of this module answer.
pub trait GroupQueries {
    fn default_vpc(&self) -> Option<&Vpc>;
    /// A group by ID, or by name in `vpc_id` (the default VPC when `None`).
    fn find_group(&self, group: GroupRef, vpc_id: Option<&str>) -> Result<&SecurityGroup>;
    /// The default group of a VPC.
    fn default_group(&self, vpc_id: &str) -> Option<&SecurityGroup>;
}

impl GroupQueries for State {
    fn default_vpc(&self) -> Option<&Vpc> {
        self.vpcs().values().find(|v| v.is_default)
    }

    fn find_group(&self, group: GroupRef, vpc_id: Option<&str>) -> Result<&SecurityGroup> {
        match group {
            GroupRef::Id(id) => Ok(existing::<SecurityGroup>(self, id)?),
            GroupRef::Name(name) => {
                let vpc_id = match vpc_id {
                    Some(vpc_id) => Some(vpc_id.to_owned()),
                    None => self.default_vpc().map(|v| v.vpc_id.clone()),
                };
                self.security_groups()
                    .values()
                    .find(|g| Some(&g.vpc_id) == vpc_id.as_ref() && g.group_name == name)
                    .ok_or_else(|| group_not_found(name))
            }
        }
    }

    fn default_group(&self, vpc_id: &str) -> Option<&SecurityGroup> {
        self.security_groups()
            .values()
            .find(|g| g.vpc_id == vpc_id && g.is_default())
    }
}

/// `IpPermissions.N` as EC2 takes it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct IpPermission {
    pub ip_protocol: Option<String>,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    #[serde(default)]
    pub ip_ranges: Vec<IpRange>,
    #[serde(default)]
    pub user_id_group_pairs: Vec<UserIdGroupPair>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct IpRange {
    pub cidr_ip: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct UserIdGroupPair {
    pub group_id: Option<String>,
    pub group_name: Option<String>,
    pub user_id: Option<String>,
    pub vpc_id: Option<String>,
    pub description: Option<String>,
}

/// A rule a request asks for, before it gets an ID.
struct WantedRule {
    traffic: Traffic,
    peer: RulePeer,
    description: Option<String>,
}

fn check_description(description: &Option<String>) -> Result<()> {
    match description {
        Some(text) => check_text(text, "Description", 255),
        None => Ok(()),
    }
}

/// The rules `permissions` ask for on a group of `vpc_id`, each source or destination one rule.
fn expand(
    state: &State,
    account_id: &str,
    vpc_id: &str,
    permissions: &[IpPermission],
) -> Result<Vec<WantedRule>> {
    let mut wanted = Vec::new();
    for permission in permissions {
        let protocol = permission
            .ip_protocol
            .as_deref()
            .ok_or_else(|| Error::MissingParameter("IpPermissions.N.IpProtocol".into()))?;
        let traffic = Traffic::parse(protocol, permission.from_port, permission.to_port)?;
        if permission.ip_ranges.is_empty() && permission.user_id_group_pairs.is_empty() {
            return Err(Error::MissingParameter(
                "IpPermissions.N.IpRanges or IpPermissions.N.UserIdGroupPairs".into(),
            ));
        }
        for range in &permission.ip_ranges {
            let cidr = range
                .cidr_ip
                .as_deref()
                .ok_or_else(|| Error::MissingParameter("IpRanges.N.CidrIp".into()))?;
            check_description(&range.description)?;
            wanted.push(WantedRule {
                traffic: traffic.clone(),
                peer: RulePeer::Cidr(parse_cidr(cidr, "cidrIp")?),
                description: range.description.clone(),
            });
        }
        for pair in &permission.user_id_group_pairs {
            check_description(&pair.description)?;
            if pair.user_id.as_deref().is_some_and(|u| u != account_id) {
                return Err(Error::Unsupported(
                    "Security group references to other accounts are not supported by nimbus."
                        .into(),
                ));
            }
            if pair.vpc_id.as_deref().is_some_and(|v| v != vpc_id) {
                return Err(Error::Unsupported(
                    "Security group references across VPCs (peering) are not supported by nimbus."
                        .into(),
                ));
            }
            let reference =
                GroupRef::from_request(pair.group_id.as_deref(), pair.group_name.as_deref())?;
            let peer = state.find_group(reference, Some(vpc_id))?;
            if peer.vpc_id != vpc_id {
                return Err(group_not_found(&peer.group_id));
            }
            wanted.push(WantedRule {
                traffic: traffic.clone(),
                peer: RulePeer::Group(peer.group_id.clone()),
                description: pair.description.clone(),
            });
        }
    }
    Ok(wanted)
}

/// A rule as EC2 describes it in error messages.
fn describe_rule(traffic: &Traffic, peer: &RulePeer) -> String {
    let peer = match peer {
        RulePeer::Cidr(net) => net.to_string(),
        RulePeer::Group(id) => id.clone(),
    };
    format!(
        "peer: {peer}, {}, {}",
        traffic.protocol.to_uppercase(),
        match (traffic.from_port, traffic.to_port) {
            (Some(from), Some(to)) => format!("from port: {from}, to port: {to}"),
            _ => "ALL".to_owned(),
        }
    )
}

/// A change asked of one rule by ModifySecurityGroupRules.
#[derive(Clone, Debug)]
pub struct RuleUpdate {
    pub rule_id: String,
    pub protocol: String,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub cidr: Option<String>,
    pub referenced_group_id: Option<String>,
    pub description: Option<String>,
}

/// What revoking or re-describing names: rule contents or rule IDs.
pub enum RuleSelection<'a> {
    Permissions(&'a [IpPermission]),
    Ids(&'a [String]),
}

fn rule_id_not_found(id: &str) -> Error {
    Error::RuleIdNotFound(format!("The security group rule ID '{id}' does not exist"))
}

impl Control {
    pub fn create_security_group(
        &self,
        name: &str,
        description: &str,
        vpc_id: Option<&str>,
        tags: Tags,
        dry_run: bool,
    ) -> Result<SecurityGroup> {
        if name.is_empty() {
            return Err(Error::MissingParameter("GroupName".into()));
        }
        check_text(name, "GroupName", 255)?;
        check_text(description, "GroupDescription", 255)?;
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(Error::InvalidParameterValue(format!(
                "Value ({name}) for parameter GroupName is invalid. Group names may not be in the format sg-*."
            )));
        }
        if name == DEFAULT_GROUP_NAME {
            return Err(Error::ReservedGroupName(
                "The security group 'default' is reserved.".into(),
            ));
        }
        self.mutate(|txn| {
            let state = txn.state();
            let vpc_id = match vpc_id {
                Some(id) => existing::<Vpc>(state, id)?.vpc_id.clone(),
                None => state
                    .default_vpc()
                    .map(|v| v.vpc_id.clone())
                    .ok_or_else(|| Error::MissingParameter("VpcId".into()))?,
            };
            if state
                .security_groups()
                .values()
                .any(|g| g.vpc_id == vpc_id && g.group_name == name)
            {
                return Err(Error::Duplicate {
                    kind: SecurityGroup::KIND,
                    id: name.to_owned(),
                });
            }
            let used = state
                .security_groups()
                .values()
                .filter(|g| g.vpc_id == vpc_id)
                .count();
            limits::check(
                Limit::SecurityGroupsPerVpc,
                used as u64,
                1,
                self.config().limits.security_groups_per_vpc,
            )?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let group = SecurityGroup::new(name, description, &vpc_id, tags);
            txn.put(group.clone())?;
            Ok(group)
        })
    }

    pub fn delete_security_group(&self, group: GroupRef, dry_run: bool) -> Result<String> {
        self.mutate(|txn| {
            let state = txn.state();
            let target = state.find_group(group, None)?;
            let group_id = target.group_id.clone();
            if target.is_default() {
                return Err(Error::CannotDelete(format!(
                    "the specified group: \"{group_id}\" name: \"default\" cannot be deleted by a user"
                )));
            }
            let in_use = state
                .interface_networks()
                .find(|n| n.security_group_ids.contains(&group_id))
                .map(|n| n.interface_id.clone())
                .or_else(|| {
                    state
                        .security_groups()
                        .values()
                        .find(|g| g.group_id != group_id && g.references(&group_id))
                        .map(|g| g.group_id.clone())
                });
            if let Some(user) = in_use {
                return Err(Error::DependencyViolation(format!(
                    "resource {group_id} has a dependent object ({user})"
                )));
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            txn.delete::<SecurityGroup>(&group_id);
            Ok(group_id)
        })
    }

    /// DescribeSecurityGroups: the query's IDs, and `names` in the default VPC.
    pub fn describe_security_groups(
        &self,
        names: &[String],
        query: &Query,
    ) -> Result<Page<SecurityGroup>> {
        let state = self.read();
        let mut named = Vec::new();
        for name in names {
            named.push(
                state
                    .find_group(GroupRef::Name(name), None)?
                    .group_id
                    .clone(),
            );
        }
        Ok(describe::describe::<SecurityGroup>(
            &state,
            self.config(),
            query,
            DESCRIBE_GROUPS_PAGING,
            |g| named.is_empty() || named.contains(&g.group_id),
        )?)
    }

    /// Adds rules; any one already present (or asked twice) fails the whole request.
    pub fn authorize_security_group(
        &self,
        direction: Direction,
        group: GroupRef,
        permissions: &[IpPermission],
        dry_run: bool,
    ) -> Result<(String, Vec<SecurityGroupRule>)> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut target = state.find_group(group, None)?.clone();
            let wanted = expand(
                state,
                &self.config().account_id,
                &target.vpc_id,
                permissions,
            )?;
            let mut added: Vec<SecurityGroupRule> = Vec::new();
            for rule in wanted {
                let present = target.rules(direction).iter().chain(&added);
                if present
                    .clone()
                    .any(|r| r.same_as(&rule.traffic, &rule.peer))
                {
                    return Err(Error::DuplicatePermission(format!(
                        "the specified rule \"{}\" already exists",
                        describe_rule(&rule.traffic, &rule.peer)
                    )));
                }
                added.push(SecurityGroupRule {
                    rule_id: nimbus_core::new_id("sgr"),
                    traffic: rule.traffic,
                    peer: rule.peer,
                    description: rule.description,
                });
            }
            let max = match direction {
                Direction::Ingress => self.config().limits.inbound_rules_per_group,
                Direction::Egress => self.config().limits.outbound_rules_per_group,
            };
            let used = target.rules(direction).len() as u64;
            limits::check(Limit::RulesPerGroup, used, added.len() as u64, max)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            target.rules_mut(direction).extend(added.iter().cloned());
            let group_id = target.group_id.clone();
            txn.put(target)?;
            Ok((group_id, added))
        })
    }

    /// Removes rules named by content or by ID; any one missing fails the whole request.
    pub fn revoke_security_group(
        &self,
        direction: Direction,
        group: GroupRef,
        selection: RuleSelection,
        dry_run: bool,
    ) -> Result<Vec<SecurityGroupRule>> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut target = state.find_group(group, None)?.clone();
            let positions = self.select_rules(state, &target, direction, &selection)?;
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            let rules = target.rules_mut(direction);
            let removed: Vec<SecurityGroupRule> =
                positions.iter().map(|&p| rules[p].clone()).collect();
            let mut index = 0;
            rules.retain(|_| {
                index += 1;
                !positions.contains(&(index - 1))
            });
            txn.put(target)?;
            Ok(removed)
        })
    }

    /// The positions in `group`'s `direction` rules of the rules `selection` names.
    fn select_rules(
        &self,
        state: &State,
        group: &SecurityGroup,
        direction: Direction,
        selection: &RuleSelection,
    ) -> Result<Vec<usize>> {
        let rules = group.rules(direction);
        let mut positions = Vec::new();
        match selection {
            RuleSelection::Ids(ids) => {
                for id in ids.iter() {
                    if !nimbus_core::is_valid_id(id, "sgr") {
                        return Err(Error::InvalidParameterValue(format!(
                            "Invalid id: \"{id}\" (expecting \"sgr-...\")"
                        )));
                    }
                    let position = rules
                        .iter()
                        .position(|r| r.rule_id == *id)
                        .ok_or_else(|| rule_id_not_found(id))?;
                    positions.push(position);
                }
            }
            RuleSelection::Permissions(permissions) => {
                let wanted = expand(state, &self.config().account_id, &group.vpc_id, permissions)?;
                for rule in wanted {
                    let position = rules
                        .iter()
                        .position(|r| r.same_as(&rule.traffic, &rule.peer))
                        .ok_or_else(|| {
                            Error::PermissionNotFound(format!(
                                "The specified rule does not exist in this security group: {}",
                                describe_rule(&rule.traffic, &rule.peer)
                            ))
                        })?;
                    positions.push(position);
                }
            }
        }
        Ok(positions)
    }

    /// UpdateSecurityGroupRuleDescriptions{Ingress,Egress}: by rule contents (the request's
    /// descriptions) or by ID (`descriptions` paired with the IDs).
    pub fn update_rule_descriptions(
        &self,
        direction: Direction,
        group: GroupRef,
        selection: RuleSelection,
        descriptions: &[Option<String>],
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut target = state.find_group(group, None)?.clone();
            let positions = self.select_rules(state, &target, direction, &selection)?;
            let new_descriptions: Vec<Option<String>> = match &selection {
                RuleSelection::Ids(_) => descriptions.to_vec(),
                RuleSelection::Permissions(permissions) => expand(
                    state,
                    &self.config().account_id,
                    &target.vpc_id,
                    permissions,
                )?
                .into_iter()
                .map(|w| w.description)
                .collect(),
            };
            for description in &new_descriptions {
                check_description(description)?;
            }
            let rules = target.rules_mut(direction);
            for (position, description) in positions.into_iter().zip(new_descriptions) {
                rules[position].description = description;
            }
            Ok(txn.put(target)?)
        })
    }

    /// ModifySecurityGroupRules: replaces rules in place, keeping their IDs.
    pub fn modify_security_group_rules(
        &self,
        group_id: &str,
        updates: &[RuleUpdate],
    ) -> Result<()> {
        self.mutate(|txn| {
            let state = txn.state();
            let mut target = existing::<SecurityGroup>(state, group_id)?.clone();
            for update in updates {
                let direction = [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .find(|d| target.rules(*d).iter().any(|r| r.rule_id == update.rule_id))
                    .ok_or_else(|| rule_id_not_found(&update.rule_id))?;
                let traffic = Traffic::parse(&update.protocol, update.from_port, update.to_port)?;
                check_description(&update.description)?;
                let peer = match (&update.cidr, &update.referenced_group_id) {
                    (Some(cidr), None) => RulePeer::Cidr(parse_cidr(cidr, "CidrIpv4")?),
                    (None, Some(id)) => {
                        let peer = existing::<SecurityGroup>(state, id)?;
                        if peer.vpc_id != target.vpc_id {
                            return Err(group_not_found(id));
                        }
                        RulePeer::Group(id.clone())
                    }
                    _ => {
                        return Err(Error::InvalidParameterCombination(
                            "Exactly one of CidrIpv4 and ReferencedGroupId must be given.".into(),
                        ))
                    }
                };
                let rules = target.rules_mut(direction);
                if rules
                    .iter()
                    .any(|r| r.rule_id != update.rule_id && r.same_as(&traffic, &peer))
                {
                    return Err(Error::DuplicatePermission(format!(
                        "the specified rule \"{}\" already exists",
                        describe_rule(&traffic, &peer)
                    )));
                }
                if let Some(rule) = rules.iter_mut().find(|r| r.rule_id == update.rule_id) {
                    rule.traffic = traffic;
                    rule.peer = peer;
                    rule.description = update.description.clone();
                }
            }
            Ok(txn.put(target)?)
        })
    }

    pub fn describe_security_group_rules(&self, query: &Query) -> Result<Page<RuleRow>> {
        let state = self.read();
        let rows: Vec<RuleRow> = state
            .security_groups()
            .values()
            .flat_map(|g| {
                [Direction::Ingress, Direction::Egress]
                    .into_iter()
                    .flat_map(move |direction| {
                        g.rules(direction).iter().map(move |rule| RuleRow {
                            group_id: g.group_id.clone(),
                            direction,
                            rule: rule.clone(),
                        })
                    })
            })
            .collect();
        for id in &query.ids {
            if !rows.iter().any(|r| r.rule.rule_id == *id) {
                return Err(rule_id_not_found(id));
            }
        }
        let mut rows: Vec<RuleRow> = rows
            .into_iter()
            .filter(|r| query.ids.is_empty() || query.ids.contains(&r.rule.rule_id))
            .collect();
        rows.sort_by(|a, b| a.rule.rule_id.cmp(&b.rule.rule_id));
        Ok(describe::describe_rows(
            rows,
            |r| r.rule.rule_id.as_str(),
            self.config(),
            query,
            DESCRIBE_RULES_PAGING,
        )?)
    }
}
