//! The data plane's view of a load balancer: one [`balancer::BalancerSpec`] per node,
//! computed from the records by pure functions. Actions and conditions are turned into the
//! driver's checked types here, and the API checks each with the same functions when it
//! comes in, so what a listener or rule stores always renders.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use balancer::{BalancerSpec, ContentType, HeaderName, Method, Pattern, Redirect, RedirectParts};

use crate::actions::{Action, Condition};
use crate::arns::group_backend_id;
use crate::ec2::{InstanceInfo, SubnetInfo};
use crate::kinds::Tables;
use crate::listeners::Listener;
use crate::load_balancers::{Kind, LoadBalancer, Node};
use crate::target_groups::TargetGroup;
use crate::{Elbv2Error, Result};

fn invalid(error: balancer::Error) -> Elbv2Error {
    Elbv2Error::ValidationError(error.to_string())
}

/// An action as the driver takes it.
pub fn action(action: &Action) -> Result<balancer::Action> {
    if let Some(config) = &action.redirect_config {
        let status = match config.status_code.as_str() {
            "HTTP_301" => 301,
            _ => 302,
        };
        let parts = RedirectParts {
            protocol: config.protocol.clone(),
            host: config.host.clone(),
            port: config.port.clone(),
            path: config.path.clone(),
            query: config.query.clone(),
        };
        return Ok(balancer::Action::Redirect(
            Redirect::new(parts, status).map_err(invalid)?,
        ));
    }
    if let Some(config) = &action.fixed_response_config {
        return Ok(balancer::Action::FixedResponse {
            status_code: config.status_code.parse().unwrap_or(500),
            content_type: (config.content_type.as_deref())
                .map(ContentType::parse)
                .transpose()
                .map_err(invalid)?,
            body: config.message_body.clone().unwrap_or_default(),
        });
    }
    Ok(balancer::Action::Forward {
        groups: (action.forwards().into_iter())
            .map(|(arn, weight)| balancer::WeightedGroup {
                target_group_id: group_backend_id(&arn),
                weight,
            })
            .collect(),
        stickiness_secs: action.stickiness_secs(),
    })
}

fn patterns(
    values: &[String],
    make: fn(&str) -> balancer::Result<Pattern>,
) -> Result<Vec<Pattern>> {
    values.iter().map(|v| make(v).map_err(invalid)).collect()
}

/// A condition as the driver takes it.
pub fn condition(condition: &Condition) -> Result<balancer::Condition> {
    let values = |config: &Option<crate::actions::ValuesConfig>| {
        config
            .as_ref()
            .map(|c| c.values.clone())
            .unwrap_or_default()
    };
    Ok(match condition.field.as_deref().unwrap_or_default() {
        "path-pattern" => balancer::Condition::PathPattern(patterns(
            &values(&condition.path_pattern_config),
            Pattern::path,
        )?),
        "host-header" => balancer::Condition::HostHeader(patterns(
            &values(&condition.host_header_config),
            Pattern::host,
        )?),
        "http-request-method" => balancer::Condition::HttpRequestMethod(
            (values(&condition.http_request_method_config).iter())
                .map(|m| Method::new(m).map_err(invalid))
                .collect::<Result<_>>()?,
        ),
        "source-ip" => balancer::Condition::SourceIp(
            (values(&condition.source_ip_config).iter())
                .map(|c| {
                    c.parse().map_err(|_| {
                        Elbv2Error::ValidationError(format!("'{c}' is not a CIDR block"))
                    })
                })
                .collect::<Result<_>>()?,
        ),
        "http-header" => {
            let config = condition.http_header_config.as_ref().ok_or_else(|| {
                Elbv2Error::ValidationError("An http-header condition needs its config".into())
            })?;
            balancer::Condition::HttpHeader {
                name: HeaderName::new(&config.http_header_name).map_err(invalid)?,
                values: patterns(&config.values, Pattern::new)?,
            }
        }
        "query-string" => {
            let config = condition.query_string_config.as_ref().ok_or_else(|| {
                Elbv2Error::ValidationError("A query-string condition needs its config".into())
            })?;
            balancer::Condition::QueryString(
                (config.values.iter())
                    .map(|pair| {
                        let key = pair
                            .key
                            .as_deref()
                            .map(Pattern::new)
                            .transpose()
                            .map_err(invalid)?;
                        Ok((key, Pattern::new(&pair.value).map_err(invalid)?))
                    })
                    .collect::<Result<_>>()?,
            )
        }
        other => {
            return Err(Elbv2Error::ValidationError(format!(
                "The condition field '{other}' is not valid"
            )))
        }
    })
}

/// What the reconciler found of EC2 for a pass: the instances registered as targets and the
/// subnets of the balancers' VPCs (the zone of an IP target).
#[derive(Default)]
pub struct Found {
    pub instances: BTreeMap<String, InstanceInfo>,
    pub subnets: Vec<SubnetInfo>,
}

impl Found {
    /// Where a target is and in which zone, if it can take traffic now.
    fn place(&self, id: &str) -> Option<(Ipv4Addr, String)> {
        if let Some(instance) = self.instances.get(id) {
            let ip = instance
                .private_ip
                .filter(|_| instance.state == "running")?;
            return Some((ip, instance.zone.clone()));
        }
        let ip: Ipv4Addr = id.parse().ok()?;
        let zone = (self.subnets.iter().find(|s| s.cidr.contains(&ip)))
            .map(|s| s.zone.clone())
            .unwrap_or_default();
        Some((ip, zone))
    }
}

fn group_spec(
    group: &TargetGroup,
    node: &Node,
    cross_zone: bool,
    found: &Found,
) -> Result<balancer::TargetGroup> {
    let health = &group.health;
    let protocol = if health.protocol == "HTTP" {
        balancer::HealthCheckProtocol::Http {
            path: balancer::HealthCheckPath::new(health.path.as_deref().unwrap_or("/"))
                .map_err(invalid)?,
            matcher: balancer::Matcher::parse(health.matcher.as_deref().unwrap_or("200"))
                .map_err(invalid)?,
        }
    } else {
        balancer::HealthCheckProtocol::Tcp
    };
    let targets = (group.targets.iter())
        .filter_map(|t| {
            let (ip, zone) = found.place(&t.id)?;
            (cross_zone || zone == node.zone).then_some(balancer::Target { ip, port: t.port })
        })
        .collect();
    let number = |key: &str, default: u32| group.attribute(key).parse().unwrap_or(default);
    Ok(balancer::TargetGroup {
        id: group_backend_id(&group.arn),
        protocol: if group.protocol == "HTTP" {
            balancer::Protocol::Http
        } else {
            balancer::Protocol::Tcp
        },
        port: group.port,
        targets,
        health_check: balancer::HealthCheck {
            protocol,
            port: health.port,
            interval_secs: health.interval_secs,
            timeout_secs: health.timeout_secs,
            healthy_threshold: health.healthy_threshold,
            unhealthy_threshold: health.unhealthy_threshold,
        },
        algorithm: if group.attribute("load_balancing.algorithm.type")
            == "least_outstanding_requests"
        {
            balancer::Algorithm::LeastOutstandingRequests
        } else {
            balancer::Algorithm::RoundRobin
        },
        deregistration_delay_secs: number("deregistration_delay.timeout_seconds", 300),
        stickiness_secs: (group.attribute("stickiness.enabled") == "true")
            .then(|| number("stickiness.lb_cookie.duration_seconds", 86_400)),
    })
}

fn listener_spec(listener: &Listener, state: &engine::State) -> Result<balancer::Listener> {
    let mut rules: Vec<&crate::listeners::Rule> = (state.rules().values())
        .filter(|r| r.listener_arn == listener.arn)
        .collect();
    rules.sort_by_key(|r| r.priority);
    Ok(balancer::Listener {
        port: listener.port,
        protocol: if listener.protocol == "HTTP" {
            balancer::Protocol::Http
        } else {
            balancer::Protocol::Tcp
        },
        rules: (rules.iter())
            .map(|r| {
                Ok(balancer::Rule {
                    priority: r.priority,
                    conditions: r.conditions.iter().map(condition).collect::<Result<_>>()?,
                    action: action(&r.actions[0])?,
                })
            })
            .collect::<Result<_>>()?,
        default_action: action(&listener.default_actions[0])?,
    })
}

/// The spec of one node of `balancer`: its listeners, and the groups they forward to with
/// the targets that can take traffic (a network balancer without cross-zone balancing sends
/// only to its node's zone).
pub fn node_spec(
    balancer: &LoadBalancer,
    node: &Node,
    state: &engine::State,
    found: &Found,
) -> Result<BalancerSpec> {
    let mut listeners: Vec<&Listener> = (state.listeners().values())
        .filter(|l| l.load_balancer_arn == balancer.arn)
        .collect();
    listeners.sort_by_key(|l| l.port);
    let listeners: Vec<balancer::Listener> = (listeners.iter())
        .map(|l| listener_spec(l, state))
        .collect::<Result<_>>()?;
    let mut group_ids: Vec<String> = crate::target_groups::users(state)
        .into_iter()
        .filter(|(_, lbs)| lbs.contains(&balancer.arn))
        .map(|(group, _)| group)
        .collect();
    group_ids.sort();
    let cross_zone = balancer.attribute("load_balancing.cross_zone.enabled") == "true";
    let target_groups = (group_ids.iter())
        .filter_map(|arn| state.target_groups().get(arn))
        .map(|group| group_spec(group, node, cross_zone, found))
        .collect::<Result<_>>()?;
    Ok(BalancerSpec {
        balancer_id: node.interface_id.clone(),
        namespace: network::node_namespace(&node.interface_id)
            .map_err(|e| Elbv2Error::Storage(e.to_string()))?,
        addresses: vec![node.private_ip],
        idle_timeout_secs: match balancer.kind {
            Kind::Application => balancer
                .attribute("idle_timeout.timeout_seconds")
                .parse()
                .unwrap_or(60),
            Kind::Network => 350,
        },
        listeners,
        target_groups,
    })
}
