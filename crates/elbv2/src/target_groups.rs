//! Target groups: the record, Create/Describe/Modify/DeleteTargetGroup and their attributes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::arns::{check_arn, check_name, random_hex};
use crate::attributes::{self, Attribute, Known};
use crate::kinds::Tables;
use crate::load_balancers::ec2_refused;
use crate::tags::{check_tags, Tag};
use crate::{page_of, Elbv2, Elbv2Error, Result};

/// How a group checks its targets (AWS's names and ranges).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthSettings {
    pub enabled: bool,
    /// `HTTP` or `TCP`.
    pub protocol: String,
    /// None: the target's own port (`traffic-port`).
    pub port: Option<u16>,
    /// HTTP checks only.
    pub path: Option<String>,
    pub matcher: Option<String>,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// A registered target: an instance ID or an IP address, and the port it serves on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RegisteredTarget {
    pub id: String,
    pub port: u16,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TargetGroup {
    pub arn: String,
    pub name: String,
    /// `HTTP` or `TCP`.
    pub protocol: String,
    pub port: u16,
    pub vpc_id: String,
    /// `instance` or `ip`.
    pub target_type: String,
    pub health: HealthSettings,
    pub attributes: BTreeMap<String, String>,
    pub targets: Vec<RegisteredTarget>,
    /// Deregistered targets whose connections may still be draining; the reconciler drops
    /// each once the data plane has let it go.
    pub draining: Vec<RegisteredTarget>,
    pub tags: Vec<Tag>,
}

impl TargetGroup {
    pub fn known_attributes(&self) -> Known {
        if self.protocol == "HTTP" {
            &attributes::HTTP_GROUP
        } else {
            &attributes::TCP_GROUP
        }
    }

    pub fn attribute(&self, key: &str) -> &str {
        attributes::value(self.known_attributes(), &self.attributes, key)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct MatcherInput {
    http_code: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateTargetGroupInput {
    name: String,
    protocol: Option<String>,
    protocol_version: Option<String>,
    port: Option<i64>,
    vpc_id: Option<String>,
    health_check_protocol: Option<String>,
    health_check_port: Option<String>,
    health_check_enabled: Option<bool>,
    health_check_path: Option<String>,
    health_check_interval_seconds: Option<i64>,
    health_check_timeout_seconds: Option<i64>,
    healthy_threshold_count: Option<i64>,
    unhealthy_threshold_count: Option<i64>,
    matcher: Option<MatcherInput>,
    target_type: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    ip_address_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ModifyTargetGroupInput {
    target_group_arn: String,
    health_check_protocol: Option<String>,
    health_check_port: Option<String>,
    health_check_path: Option<String>,
    health_check_enabled: Option<bool>,
    health_check_interval_seconds: Option<i64>,
    health_check_timeout_seconds: Option<i64>,
    healthy_threshold_count: Option<i64>,
    unhealthy_threshold_count: Option<i64>,
    matcher: Option<MatcherInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeTargetGroupsInput {
    load_balancer_arn: Option<String>,
    #[serde(default)]
    target_group_arns: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    marker: Option<String>,
    page_size: Option<i64>,
}

fn invalid(message: impl Into<String>) -> Elbv2Error {
    Elbv2Error::ValidationError(message.into())
}

fn in_range(value: i64, low: i64, high: i64, what: &str) -> Result<u32> {
    if (low..=high).contains(&value) {
        Ok(value as u32)
    } else {
        Err(invalid(format!("{what} must be between {low} and {high}")))
    }
}

/// The health check fields a Create or Modify call gives.
struct HealthChanges {
    protocol: Option<String>,
    port: Option<String>,
    enabled: Option<bool>,
    path: Option<String>,
    interval: Option<i64>,
    timeout: Option<i64>,
    healthy: Option<i64>,
    unhealthy: Option<i64>,
    matcher: Option<MatcherInput>,
}

/// The health check fields of CreateTargetGroup's or ModifyTargetGroup's input, which name
/// them alike.
macro_rules! health_changes {
    ($input:expr) => {
        HealthChanges {
            protocol: $input.health_check_protocol,
            port: $input.health_check_port,
            enabled: $input.health_check_enabled,
            path: $input.health_check_path,
            interval: $input.health_check_interval_seconds,
            timeout: $input.health_check_timeout_seconds,
            healthy: $input.healthy_threshold_count,
            unhealthy: $input.unhealthy_threshold_count,
            matcher: $input.matcher,
        }
    };
}

impl HealthChanges {
    /// Applies the changes to the health check of a group of `group_protocol` and checks the
    /// result as AWS does.
    fn apply(self, health: &mut HealthSettings, group_protocol: &str) -> Result<()> {
        if let Some(protocol) = self.protocol {
            match protocol.as_str() {
                "HTTP" | "TCP" => health.protocol = protocol,
                "HTTPS" => {
                    return Err(Elbv2Error::Unsupported(
                        "HTTPS health checks are not supported by nimbus".into(),
                    ))
                }
                other => {
                    return Err(invalid(format!(
                        "'{other}' is not a valid health check protocol"
                    )))
                }
            }
        }
        if let Some(port) = self.port {
            health.port =
                match port.as_str() {
                    "traffic-port" => None,
                    number => Some(number.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(
                        || invalid("Health check port must be 'traffic-port' or 1-65535"),
                    )?),
                };
        }
        if self.enabled == Some(false) {
            // The data plane always checks its targets.
            return Err(Elbv2Error::Unsupported(
                "HealthCheckEnabled=false is not supported by nimbus: targets are always checked"
                    .into(),
            ));
        }
        if let Some(interval) = self.interval {
            health.interval_secs = in_range(interval, 5, 300, "Health check interval")?;
        }
        if let Some(timeout) = self.timeout {
            health.timeout_secs = in_range(timeout, 2, 120, "Health check timeout")?;
        }
        if let Some(healthy) = self.healthy {
            health.healthy_threshold = in_range(healthy, 2, 10, "Healthy threshold count")?;
        }
        if let Some(unhealthy) = self.unhealthy {
            health.unhealthy_threshold = in_range(unhealthy, 2, 10, "Unhealthy threshold count")?;
        }
        if health.protocol == "HTTP" {
            if let Some(path) = self.path {
                balancer::HealthCheckPath::new(&path)
                    .map_err(|_| invalid(format!("Health check path '{path}' is not valid")))?;
                health.path = Some(path);
            }
            health.path.get_or_insert_with(|| "/".into());
            if let Some(matcher) = self.matcher {
                balancer::Matcher::parse(&matcher.http_code).map_err(|_| {
                    invalid(format!(
                        "Matcher HTTP code '{}' is not valid",
                        matcher.http_code
                    ))
                })?;
                health.matcher = Some(matcher.http_code);
            }
            health.matcher.get_or_insert_with(|| "200".into());
        } else {
            if self.path.is_some() || self.matcher.is_some() {
                return Err(invalid(
                    "A health check path or matcher needs an HTTP health check",
                ));
            }
            health.path = None;
            health.matcher = None;
        }
        // A TCP group's timeout may equal its interval (a network load balancer's checks
        // were once fixed at 10 and 10 seconds; Terraform configurations still send that).
        let too_long = match group_protocol {
            "TCP" => health.timeout_secs > health.interval_secs,
            _ => health.timeout_secs >= health.interval_secs,
        };
        if too_long {
            return Err(invalid(
                "Health check timeout must not be longer than the interval (shorter for HTTP groups)",
            ));
        }
        Ok(())
    }
}

pub fn output(group: &TargetGroup, load_balancers: &[String]) -> Value {
    let health = &group.health;
    let mut answer = json!({
        "TargetGroupArn": group.arn,
        "TargetGroupName": group.name,
        "Protocol": group.protocol,
        "Port": group.port,
        "VpcId": group.vpc_id,
        "HealthCheckProtocol": health.protocol,
        "HealthCheckPort": health.port.map_or("traffic-port".to_owned(), |p| p.to_string()),
        "HealthCheckEnabled": health.enabled,
        "HealthCheckIntervalSeconds": health.interval_secs,
        "HealthCheckTimeoutSeconds": health.timeout_secs,
        "HealthyThresholdCount": health.healthy_threshold,
        "UnhealthyThresholdCount": health.unhealthy_threshold,
        "LoadBalancerArns": load_balancers,
        "TargetType": group.target_type,
        "IpAddressType": "ipv4",
    });
    if let Some(path) = &health.path {
        answer["HealthCheckPath"] = json!(path);
    }
    if let Some(matcher) = &health.matcher {
        answer["Matcher"] = json!({ "HttpCode": matcher });
    }
    if group.protocol == "HTTP" {
        answer["ProtocolVersion"] = json!("HTTP1");
    }
    answer
}

/// The balancers whose listeners or rules forward to each group.
pub fn users(state: &engine::State) -> BTreeMap<String, BTreeSet<String>> {
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for listener in state.listeners().values() {
        let rule_actions = (state.rules().values())
            .filter(|r| r.listener_arn == listener.arn)
            .flat_map(|r| r.actions.iter());
        for action in listener.default_actions.iter().chain(rule_actions) {
            for (group, _) in action.forwards() {
                users
                    .entry(group)
                    .or_default()
                    .insert(listener.load_balancer_arn.clone());
            }
        }
    }
    users
}

fn not_found(arn: &str) -> Elbv2Error {
    Elbv2Error::TargetGroupNotFound(format!("Target groups '{arn}' not found"))
}

pub fn existing<'a>(state: &'a engine::State, arn: &str) -> Result<&'a TargetGroup> {
    check_arn(arn, "targetgroup")?;
    state.target_groups().get(arn).ok_or_else(|| not_found(arn))
}

impl Elbv2 {
    pub async fn create_target_group(&self, input: CreateTargetGroupInput) -> Result<Value> {
        check_name(&input.name, "Target group")?;
        check_tags(&input.tags)?;
        let protocol = match input.protocol.as_deref() {
            Some(p @ ("HTTP" | "TCP")) => p.to_owned(),
            Some(p @ ("HTTPS" | "TLS" | "UDP" | "TCP_UDP" | "GENEVE" | "QUIC" | "TCP_QUIC")) => {
                return Err(Elbv2Error::Unsupported(format!(
                    "Target group protocol '{p}' is not supported by nimbus (HTTP and TCP are)"
                )))
            }
            Some(other) => return Err(invalid(format!("'{other}' is not a valid protocol"))),
            None => {
                return Err(invalid(
                    "A protocol must be specified for instance and ip target groups",
                ))
            }
        };
        // Terraform sends an empty ProtocolVersion when the user gave none; AWS reads it as
        // the default.
        if input
            .protocol_version
            .as_deref()
            .is_some_and(|v| !v.is_empty() && v != "HTTP1")
        {
            return Err(Elbv2Error::Unsupported(
                "ProtocolVersion other than HTTP1 is not supported by nimbus".into(),
            ));
        }
        if input
            .ip_address_type
            .as_deref()
            .is_some_and(|t| t != "ipv4")
        {
            return Err(Elbv2Error::Unsupported(
                "IpAddressType other than ipv4 is not supported by nimbus".into(),
            ));
        }
        let target_type = match input.target_type.as_deref().unwrap_or("instance") {
            t @ ("instance" | "ip") => t.to_owned(),
            t @ ("lambda" | "alb") => {
                return Err(Elbv2Error::Unsupported(format!(
                    "Target type '{t}' is not supported by nimbus"
                )))
            }
            other => return Err(invalid(format!("'{other}' is not a valid target type"))),
        };
        let port = input
            .port
            .ok_or_else(|| invalid("A port must be specified"))
            .and_then(|p| in_range(p, 1, 65535, "Port"))? as u16;
        let vpc_id = input
            .vpc_id
            .ok_or_else(|| invalid("A VPC ID must be specified"))?;
        if !self.ec2()?.vpc_exists(&vpc_id).await.map_err(ec2_refused)? {
            return Err(invalid(format!("The VPC ID '{vpc_id}' is not found")));
        }
        let http = protocol == "HTTP";
        let mut health = HealthSettings {
            enabled: true,
            protocol: protocol.clone(),
            port: None,
            path: None,
            matcher: None,
            interval_secs: 30,
            timeout_secs: if http { 5 } else { 10 },
            healthy_threshold: 5,
            unhealthy_threshold: 2,
        };
        health_changes!(input).apply(&mut health, &protocol)?;
        let arn = self.target_group_arn(&input.name, &random_hex());
        self.change(|txn| {
            let state = txn.state();
            if let Some(existing) = state.target_groups().values().find(|g| g.name == input.name) {
                let same = existing.protocol == protocol
                    && existing.port == port
                    && existing.vpc_id == vpc_id
                    && existing.target_type == target_type
                    && existing.health == health;
                return if same {
                    let users = users(state);
                    let lbs: Vec<String> = users.get(&existing.arn).into_iter().flatten().cloned().collect();
                    Ok(json!({ "TargetGroups": [output(existing, &lbs)] }))
                } else {
                    Err(Elbv2Error::DuplicateTargetGroupName(format!(
                        "A target group with the same name '{}' exists, but with different settings",
                        input.name
                    )))
                };
            }
            let group = TargetGroup {
                arn: arn.clone(),
                name: input.name.clone(),
                protocol: protocol.clone(),
                port,
                vpc_id: vpc_id.clone(),
                target_type: target_type.clone(),
                health: health.clone(),
                attributes: BTreeMap::new(),
                targets: Vec::new(),
                draining: Vec::new(),
                tags: input.tags.clone(),
            };
            let answer = json!({ "TargetGroups": [output(&group, &[])] });
            txn.put(group)?;
            Ok(answer)
        })
    }

    pub fn modify_target_group(&self, input: ModifyTargetGroupInput) -> Result<Value> {
        self.change(|txn| {
            let mut group = existing(txn.state(), &input.target_group_arn)?.clone();
            health_changes!(input).apply(&mut group.health, &group.protocol)?;
            let users = users(txn.state());
            let lbs: Vec<String> = users
                .get(&group.arn)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            let answer = json!({ "TargetGroups": [output(&group, &lbs)] });
            txn.put(group)?;
            Ok(answer)
        })
    }

    pub fn describe_target_groups(&self, input: DescribeTargetGroupsInput) -> Result<Value> {
        let state = self.engine.read();
        let users = users(&state);
        let all = state.target_groups();
        let chosen: Vec<&TargetGroup> = if !input.target_group_arns.is_empty() {
            (input.target_group_arns.iter())
                .map(|arn| existing(&state, arn))
                .collect::<Result<_>>()?
        } else if !input.names.is_empty() {
            (input.names.iter())
                .map(|name| {
                    all.values().find(|g| &g.name == name).ok_or_else(|| {
                        Elbv2Error::TargetGroupNotFound(format!(
                            "One or more target groups not found: '{name}'"
                        ))
                    })
                })
                .collect::<Result<_>>()?
        } else if let Some(balancer) = &input.load_balancer_arn {
            crate::load_balancers::existing(&state, balancer)?;
            all.values()
                .filter(|g| users.get(&g.arn).is_some_and(|lbs| lbs.contains(balancer)))
                .collect()
        } else {
            all.values().collect()
        };
        let rows = chosen
            .iter()
            .map(|g| {
                let lbs: Vec<String> = users.get(&g.arn).into_iter().flatten().cloned().collect();
                (g.arn.clone(), output(g, &lbs))
            })
            .collect();
        page_of(
            "TargetGroups",
            rows,
            input.page_size,
            input.marker.as_deref(),
        )
    }

    pub fn delete_target_group(&self, arn: &str) -> Result<Value> {
        self.change(|txn| {
            check_arn(arn, "targetgroup")?;
            if !txn.state().target_groups().contains_key(arn) {
                // AWS answers a deletion of an absent group with success.
                return Ok(json!({}));
            }
            if users(txn.state()).contains_key(arn) {
                return Err(Elbv2Error::ResourceInUse(format!(
                    "Target group '{arn}' is currently in use by a listener or a rule"
                )));
            }
            txn.delete::<TargetGroup>(arn);
            Ok(json!({}))
        })
    }

    pub fn describe_target_group_attributes(&self, arn: &str) -> Result<Value> {
        let state = self.engine.read();
        let group = existing(&state, arn)?;
        Ok(attributes::describe(
            group.known_attributes(),
            &group.attributes,
        ))
    }

    pub fn modify_target_group_attributes(
        &self,
        arn: &str,
        changes: Vec<Attribute>,
    ) -> Result<Value> {
        self.change(|txn| {
            let mut group = existing(txn.state(), arn)?.clone();
            let known = group.known_attributes();
            attributes::modify(known, &mut group.attributes, changes, "Target group")?;
            let answer = attributes::describe(known, &group.attributes);
            txn.put(group)?;
            Ok(answer)
        })
    }
}
