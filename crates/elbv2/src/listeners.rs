//! Listeners and their rules: the records, Create/Describe/Modify/DeleteListener with their
//! attributes, Create/Describe/Modify/DeleteRule and SetRulePriorities.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::actions::{check_actions, check_conditions, Action, Condition};
use crate::arns::check_arn;
use crate::attributes::{self, Attribute, Known};
use crate::kinds::Tables;
use crate::load_balancers::{self, Kind};
use crate::tags::{check_tags, Tag};
use crate::target_groups::users;
use crate::{page_of, Elbv2, Elbv2Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Listener {
    pub arn: String,
    pub load_balancer_arn: String,
    pub port: u16,
    /// `HTTP` or `TCP`.
    pub protocol: String,
    pub default_actions: Vec<Action>,
    /// The ARN its default rule answers to in DescribeRules.
    pub default_rule_arn: String,
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
}

impl Listener {
    fn known_attributes(&self) -> Known {
        if self.protocol == "HTTP" {
            attributes::HTTP_LISTENER
        } else {
            attributes::TCP_LISTENER
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rule {
    pub arn: String,
    pub listener_arn: String,
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
    pub tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateListenerInput {
    load_balancer_arn: String,
    protocol: Option<String>,
    port: Option<i64>,
    default_actions: Vec<Action>,
    #[serde(default)]
    tags: Vec<Tag>,
    ssl_policy: Option<String>,
    #[serde(default)]
    certificates: Vec<Value>,
    #[serde(default)]
    alpn_policy: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyListenerInput {
    listener_arn: String,
    protocol: Option<String>,
    port: Option<i64>,
    default_actions: Option<Vec<Action>>,
    ssl_policy: Option<String>,
    #[serde(default)]
    certificates: Vec<Value>,
    #[serde(default)]
    alpn_policy: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeListenersInput {
    load_balancer_arn: Option<String>,
    #[serde(default)]
    listener_arns: Vec<String>,
    marker: Option<String>,
    page_size: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateRuleInput {
    listener_arn: String,
    conditions: Vec<Condition>,
    priority: i64,
    actions: Vec<Action>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyRuleInput {
    rule_arn: String,
    conditions: Option<Vec<Condition>>,
    actions: Option<Vec<Action>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeRulesInput {
    listener_arn: Option<String>,
    #[serde(default)]
    rule_arns: Vec<String>,
    marker: Option<String>,
    page_size: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RulePriority {
    rule_arn: String,
    priority: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetRulePrioritiesInput {
    rule_priorities: Vec<RulePriority>,
}

fn invalid(message: impl Into<String>) -> Elbv2Error {
    Elbv2Error::ValidationError(message.into())
}

/// TLS needs certificates, which nimbus has no service for yet.
fn refuse_tls(ssl_policy: &Option<String>, certificates: &[Value], alpn: &[String]) -> Result<()> {
    let named = [
        ("SslPolicy", ssl_policy.is_some()),
        ("Certificates", !certificates.is_empty()),
        ("AlpnPolicy", !alpn.is_empty()),
    ];
    match named.iter().find(|(_, given)| *given) {
        Some((name, _)) => Err(Elbv2Error::Unsupported(format!(
            "{name} is not supported by nimbus: HTTPS and TLS listeners need a certificate service"
        ))),
        None => Ok(()),
    }
}

fn protocol_for(kind: Kind, protocol: Option<&str>) -> Result<String> {
    match (kind, protocol.unwrap_or(kind.protocol())) {
        (Kind::Application, "HTTP") | (Kind::Network, "TCP") => Ok(kind.protocol().to_owned()),
        (_, p @ ("HTTPS" | "TLS")) => Err(Elbv2Error::Unsupported(format!(
            "{p} listeners are not supported by nimbus: they need a certificate service"
        ))),
        (Kind::Network, p @ ("UDP" | "TCP_UDP" | "QUIC" | "TCP_QUIC")) => {
            Err(Elbv2Error::Unsupported(format!(
                "{p} listeners are not supported by nimbus (TCP is)"
            )))
        }
        (kind, p) => Err(Elbv2Error::IncompatibleProtocols(format!(
            "Protocol '{p}' is not valid for a load balancer of type '{}'",
            kind.name()
        ))),
    }
}

fn port_of(port: i64) -> Result<u16> {
    if (1..=65535).contains(&port) {
        Ok(port as u16)
    } else {
        Err(invalid(format!("Port {port} must be between 1 and 65535")))
    }
}

/// Checks the target groups `actions` forward to: they exist, speak `protocol`, are in the
/// balancer's VPC and no other balancer uses them.
fn check_forwards(
    state: &engine::State,
    balancer: &load_balancers::LoadBalancer,
    protocol: &str,
    actions: &[Action],
) -> Result<()> {
    let users = users(state);
    for (arn, _) in actions.iter().flat_map(|a| a.forwards()) {
        let group = crate::target_groups::existing(state, &arn)?;
        if group.protocol != protocol {
            return Err(Elbv2Error::IncompatibleProtocols(format!(
                "The target group '{arn}' has protocol {}, which is incompatible with listener protocol {protocol}",
                group.protocol
            )));
        }
        if group.vpc_id != balancer.vpc_id {
            return Err(invalid(format!(
                "The target group '{arn}' is not in the same VPC as the load balancer"
            )));
        }
        if users
            .get(&arn)
            .is_some_and(|lbs| lbs.iter().any(|lb| *lb != balancer.arn))
        {
            return Err(Elbv2Error::TargetGroupAssociationLimit(format!(
                "The following target groups cannot be associated with more than one load balancer: '{arn}'"
            )));
        }
    }
    Ok(())
}

pub fn listener_output(listener: &Listener) -> Value {
    json!({
        "ListenerArn": listener.arn,
        "LoadBalancerArn": listener.load_balancer_arn,
        "Port": listener.port,
        "Protocol": listener.protocol,
        "DefaultActions": listener.default_actions,
    })
}

fn rule_output(rule: &Rule) -> Value {
    json!({
        "RuleArn": rule.arn,
        "Priority": rule.priority.to_string(),
        "Conditions": rule.conditions,
        "Actions": rule.actions,
        "IsDefault": false,
    })
}

fn default_rule_output(listener: &Listener) -> Value {
    json!({
        "RuleArn": listener.default_rule_arn,
        "Priority": "default",
        "Conditions": [],
        "Actions": listener.default_actions,
        "IsDefault": true,
    })
}

fn not_found(arn: &str) -> Elbv2Error {
    Elbv2Error::ListenerNotFound(format!("Listener '{arn}' not found"))
}

pub fn existing<'a>(state: &'a engine::State, arn: &str) -> Result<&'a Listener> {
    check_arn(arn, "listener")?;
    state.listeners().get(arn).ok_or_else(|| not_found(arn))
}

fn rule_not_found(arn: &str) -> Elbv2Error {
    Elbv2Error::RuleNotFound(format!("Rule '{arn}' not found"))
}

fn check_priority(priority: i64) -> Result<u32> {
    if (1..=50_000).contains(&priority) {
        Ok(priority as u32)
    } else {
        Err(invalid(format!(
            "Priority {priority} must be between 1 and 50000"
        )))
    }
}

fn priority_taken(state: &engine::State, listener_arn: &str, priority: u32, except: &str) -> bool {
    state
        .rules()
        .values()
        .any(|r| r.listener_arn == listener_arn && r.priority == priority && r.arn != except)
}

impl Elbv2 {
    pub fn create_listener(&self, input: CreateListenerInput) -> Result<Value> {
        refuse_tls(&input.ssl_policy, &input.certificates, &input.alpn_policy)?;
        check_tags(&input.tags)?;
        let port = port_of(
            input
                .port
                .ok_or_else(|| invalid("A port must be specified"))?,
        )?;
        self.change(|txn| {
            let state = txn.state();
            let balancer = load_balancers::existing(state, &input.load_balancer_arn)?.clone();
            let protocol = protocol_for(balancer.kind, input.protocol.as_deref())?;
            let actions = check_actions(input.default_actions.clone(), protocol == "HTTP")?;
            check_forwards(state, &balancer, &protocol, &actions)?;
            if state
                .listeners()
                .values()
                .any(|l| l.load_balancer_arn == balancer.arn && l.port == port)
            {
                return Err(Elbv2Error::DuplicateListener(format!(
                    "A listener already exists on port {port} of load balancer '{}'",
                    balancer.arn
                )));
            }
            let arn = self.listener_arn(&balancer.arn);
            let listener = Listener {
                default_rule_arn: self.rule_arn(&arn),
                arn,
                load_balancer_arn: balancer.arn.clone(),
                port,
                protocol,
                default_actions: actions,
                attributes: BTreeMap::new(),
                tags: input.tags.clone(),
            };
            let answer = json!({ "Listeners": [listener_output(&listener)] });
            txn.put(listener)?;
            Ok(answer)
        })
    }

    pub fn modify_listener(&self, input: ModifyListenerInput) -> Result<Value> {
        refuse_tls(&input.ssl_policy, &input.certificates, &input.alpn_policy)?;
        self.change(|txn| {
            let state = txn.state();
            let mut listener = existing(state, &input.listener_arn)?.clone();
            let balancer = load_balancers::existing(state, &listener.load_balancer_arn)?.clone();
            if input.protocol.is_some() {
                listener.protocol = protocol_for(balancer.kind, input.protocol.as_deref())?;
            }
            if let Some(port) = input.port {
                let port = port_of(port)?;
                if state.listeners().values().any(|l| {
                    l.load_balancer_arn == balancer.arn && l.port == port && l.arn != listener.arn
                }) {
                    return Err(Elbv2Error::DuplicateListener(format!(
                        "A listener already exists on port {port} of load balancer '{}'",
                        balancer.arn
                    )));
                }
                listener.port = port;
            }
            if let Some(actions) = input.default_actions.clone() {
                listener.default_actions = check_actions(actions, listener.protocol == "HTTP")?;
                check_forwards(
                    state,
                    &balancer,
                    &listener.protocol,
                    &listener.default_actions,
                )?;
            }
            let answer = json!({ "Listeners": [listener_output(&listener)] });
            txn.put(listener)?;
            Ok(answer)
        })
    }

    pub fn delete_listener(&self, arn: &str) -> Result<Value> {
        self.change(|txn| {
            existing(txn.state(), arn)?;
            let rules: Vec<String> = (txn.state().rules().values())
                .filter(|r| r.listener_arn == arn)
                .map(|r| r.arn.clone())
                .collect();
            for rule in rules {
                txn.delete::<Rule>(&rule);
            }
            txn.delete::<Listener>(arn);
            Ok(json!({}))
        })
    }

    pub fn describe_listeners(&self, input: DescribeListenersInput) -> Result<Value> {
        let state = self.engine.read();
        let chosen: Vec<&Listener> = if !input.listener_arns.is_empty() {
            (input.listener_arns.iter())
                .map(|arn| existing(&state, arn))
                .collect::<Result<_>>()?
        } else if let Some(balancer) = &input.load_balancer_arn {
            load_balancers::existing(&state, balancer)?;
            (state.listeners().values())
                .filter(|l| l.load_balancer_arn == *balancer)
                .collect()
        } else {
            return Err(invalid(
                "You must specify either listener ARNs or a load balancer ARN",
            ));
        };
        let rows = chosen
            .iter()
            .map(|l| (l.arn.clone(), listener_output(l)))
            .collect();
        page_of("Listeners", rows, input.page_size, input.marker.as_deref())
    }

    pub fn describe_listener_attributes(&self, arn: &str) -> Result<Value> {
        let state = self.engine.read();
        let listener = existing(&state, arn)?;
        Ok(attributes::describe(
            listener.known_attributes(),
            &listener.attributes,
        ))
    }

    pub fn modify_listener_attributes(&self, arn: &str, changes: Vec<Attribute>) -> Result<Value> {
        self.change(|txn| {
            let mut listener = existing(txn.state(), arn)?.clone();
            let known = listener.known_attributes();
            attributes::modify(known, &mut listener.attributes, changes, "Listener")?;
            let answer = attributes::describe(known, &listener.attributes);
            txn.put(listener)?;
            Ok(answer)
        })
    }

    pub fn create_rule(&self, input: CreateRuleInput) -> Result<Value> {
        check_tags(&input.tags)?;
        let priority = check_priority(input.priority)?;
        let conditions = check_conditions(input.conditions)?;
        self.change(|txn| {
            let state = txn.state();
            let listener = existing(state, &input.listener_arn)?.clone();
            if listener.protocol != "HTTP" {
                return Err(invalid("Rules can be added only to HTTP listeners"));
            }
            let balancer = load_balancers::existing(state, &listener.load_balancer_arn)?.clone();
            let actions = check_actions(input.actions.clone(), true)?;
            check_forwards(state, &balancer, &listener.protocol, &actions)?;
            if priority_taken(state, &listener.arn, priority, "") {
                return Err(Elbv2Error::PriorityInUse(format!(
                    "Priority '{priority}' is currently in use"
                )));
            }
            let rule = Rule {
                arn: self.rule_arn(&listener.arn),
                listener_arn: listener.arn.clone(),
                priority,
                conditions: conditions.clone(),
                actions,
                tags: input.tags.clone(),
            };
            let answer = json!({ "Rules": [rule_output(&rule)] });
            txn.put(rule)?;
            Ok(answer)
        })
    }

    pub fn modify_rule(&self, input: ModifyRuleInput) -> Result<Value> {
        check_arn(&input.rule_arn, "listener-rule")?;
        let conditions = input.conditions.map(check_conditions).transpose()?;
        self.change(|txn| {
            let state = txn.state();
            if let Some(listener) = (state.listeners().values())
                .find(|l| l.default_rule_arn == input.rule_arn)
                .cloned()
            {
                if conditions.is_some() {
                    return Err(Elbv2Error::OperationNotPermitted(
                        "The conditions of a default rule cannot be modified".into(),
                    ));
                }
                let mut listener = listener;
                if let Some(actions) = input.actions.clone() {
                    let balancer = load_balancers::existing(state, &listener.load_balancer_arn)?;
                    listener.default_actions = check_actions(actions, listener.protocol == "HTTP")?;
                    check_forwards(
                        state,
                        balancer,
                        &listener.protocol,
                        &listener.default_actions,
                    )?;
                }
                let answer = json!({ "Rules": [default_rule_output(&listener)] });
                txn.put(listener)?;
                return Ok(answer);
            }
            let mut rule = (state.rules().get(&input.rule_arn).cloned())
                .ok_or_else(|| rule_not_found(&input.rule_arn))?;
            let listener = existing(state, &rule.listener_arn)?;
            let balancer = load_balancers::existing(state, &listener.load_balancer_arn)?;
            if let Some(conditions) = conditions.clone() {
                rule.conditions = conditions;
            }
            if let Some(actions) = input.actions.clone() {
                rule.actions = check_actions(actions, true)?;
                check_forwards(state, balancer, &listener.protocol, &rule.actions)?;
            }
            let answer = json!({ "Rules": [rule_output(&rule)] });
            txn.put(rule)?;
            Ok(answer)
        })
    }

    pub fn delete_rule(&self, arn: &str) -> Result<Value> {
        check_arn(arn, "listener-rule")?;
        self.change(|txn| {
            if txn
                .state()
                .listeners()
                .values()
                .any(|l| l.default_rule_arn == arn)
            {
                return Err(Elbv2Error::OperationNotPermitted(
                    "A default rule cannot be deleted".into(),
                ));
            }
            if !txn.state().rules().contains_key(arn) {
                return Err(rule_not_found(arn));
            }
            txn.delete::<Rule>(arn);
            Ok(json!({}))
        })
    }

    pub fn describe_rules(&self, input: DescribeRulesInput) -> Result<Value> {
        let state = self.engine.read();
        let mut rows: Vec<(String, Value)> = Vec::new();
        // Rows are ordered by priority (the default rule last), as AWS lists them.
        let key = |priority: u32| format!("{priority:05}");
        if !input.rule_arns.is_empty() {
            for arn in &input.rule_arns {
                check_arn(arn, "listener-rule")?;
                if let Some(rule) = state.rules().get(arn) {
                    rows.push((key(rule.priority), rule_output(rule)));
                } else if let Some(listener) = state
                    .listeners()
                    .values()
                    .find(|l| l.default_rule_arn == *arn)
                {
                    rows.push(("default".into(), default_rule_output(listener)));
                } else {
                    return Err(rule_not_found(arn));
                }
            }
        } else if let Some(listener_arn) = &input.listener_arn {
            let listener = existing(&state, listener_arn)?;
            for rule in state
                .rules()
                .values()
                .filter(|r| r.listener_arn == *listener_arn)
            {
                rows.push((key(rule.priority), rule_output(rule)));
            }
            rows.push(("default".into(), default_rule_output(listener)));
        } else {
            return Err(invalid(
                "You must specify either rule ARNs or a listener ARN",
            ));
        }
        page_of("Rules", rows, input.page_size, input.marker.as_deref())
    }

    pub fn set_rule_priorities(&self, input: SetRulePrioritiesInput) -> Result<Value> {
        self.change(|txn| {
            let mut changed = Vec::new();
            for pair in &input.rule_priorities {
                let priority = check_priority(pair.priority)?;
                let mut rule = (txn.state().rules().get(&pair.rule_arn).cloned())
                    .ok_or_else(|| rule_not_found(&pair.rule_arn))?;
                rule.priority = priority;
                changed.push(rule);
            }
            let arns: BTreeSet<&str> = changed.iter().map(|r| r.arn.as_str()).collect();
            let state = txn.state();
            for rule in &changed {
                let clash = changed.iter().any(|o| {
                    o.arn != rule.arn
                        && o.listener_arn == rule.listener_arn
                        && o.priority == rule.priority
                }) || state.rules().values().any(|o| {
                    !arns.contains(o.arn.as_str())
                        && o.listener_arn == rule.listener_arn
                        && o.priority == rule.priority
                });
                if clash {
                    return Err(Elbv2Error::PriorityInUse(format!(
                        "Priority '{}' is currently in use",
                        rule.priority
                    )));
                }
            }
            let answer: Vec<Value> = changed.iter().map(rule_output).collect();
            for rule in changed {
                txn.put(rule)?;
            }
            Ok(json!({ "Rules": answer }))
        })
    }
}
