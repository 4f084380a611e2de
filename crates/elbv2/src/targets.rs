//! RegisterTargets, DeregisterTargets and DescribeTargetHealth.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use balancer::{TargetState, UnhealthyReason};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::arns::group_backend_id;
use crate::ec2::InstanceInfo;
use crate::load_balancers::ec2_refused;
use crate::target_groups::{existing, users, RegisteredTarget, TargetGroup};
use crate::{Elbv2, Elbv2Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetInput {
    id: String,
    port: Option<i64>,
    availability_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct TargetsInput {
    target_group_arn: String,
    targets: Vec<TargetInput>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeTargetHealthInput {
    target_group_arn: String,
    #[serde(default)]
    targets: Vec<TargetInput>,
    #[serde(default)]
    include: Vec<String>,
}

fn invalid_target(message: String) -> Elbv2Error {
    Elbv2Error::InvalidTarget(message)
}

/// The targets of a request with their ports (the group's when not given).
fn targets_of(group: &TargetGroup, targets: &[TargetInput]) -> Result<Vec<RegisteredTarget>> {
    targets
        .iter()
        .map(|t| {
            let port = match t.port {
                None => group.port,
                Some(p) if (1..=65535).contains(&p) => p as u16,
                Some(p) => {
                    return Err(Elbv2Error::ValidationError(format!(
                        "Target port {p} must be between 1 and 65535"
                    )))
                }
            };
            if t.availability_zone.as_deref().is_some_and(|z| z == "all") {
                return Err(Elbv2Error::Unsupported(
                    "AvailabilityZone 'all' (targets outside the VPC) is not supported by nimbus"
                        .into(),
                ));
            }
            Ok(RegisteredTarget {
                id: t.id.clone(),
                port,
            })
        })
        .collect()
}

/// What DescribeTargetHealth says of a target: its state, reason code and description.
fn health_of(state: &str, reason: Option<(&str, &str)>) -> Value {
    let mut health = json!({ "State": state });
    if let Some((code, description)) = reason {
        health["Reason"] = json!(code);
        health["Description"] = json!(description);
    }
    health
}

fn reported(state: Option<TargetState>) -> Value {
    match state {
        None => health_of(
            "initial",
            Some((
                "Elb.RegistrationInProgress",
                "Target registration is in progress",
            )),
        ),
        Some(TargetState::Initial) => health_of(
            "initial",
            Some((
                "Elb.InitialHealthChecking",
                "Initial health checks in progress",
            )),
        ),
        Some(TargetState::Healthy) => health_of("healthy", None),
        Some(TargetState::Draining) => health_of(
            "draining",
            Some((
                "Target.DeregistrationInProgress",
                "Target deregistration is in progress",
            )),
        ),
        Some(TargetState::Unhealthy(reason)) => health_of(
            "unhealthy",
            Some(match reason {
                UnhealthyReason::Timeout => ("Target.Timeout", "Request timed out"),
                UnhealthyReason::ResponseCodeMismatch => (
                    "Target.ResponseCodeMismatch",
                    "Health checks failed with a response code the matcher does not accept",
                ),
                UnhealthyReason::Failed => ("Target.FailedHealthChecks", "Health checks failed"),
            }),
        ),
    }
}

impl Elbv2 {
    /// The instances of instance targets, by ID.
    pub(crate) async fn instances_of(
        &self,
        targets: &[RegisteredTarget],
    ) -> Result<BTreeMap<String, InstanceInfo>> {
        let ids: Vec<String> = (targets.iter())
            .filter(|t| t.id.starts_with("i-"))
            .map(|t| t.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let found = self.ec2()?.instances(&ids).await.map_err(ec2_refused)?;
        Ok(found
            .into_iter()
            .map(|i| (i.instance_id.clone(), i))
            .collect())
    }

    pub async fn register_targets(&self, input: TargetsInput) -> Result<Value> {
        let group = existing(&self.engine.read(), &input.target_group_arn)?.clone();
        let targets = targets_of(&group, &input.targets)?;
        if group.target_type == "instance" {
            let instances = self.instances_of(&targets).await?;
            let missing: Vec<&str> = (targets.iter())
                .filter(|t| instances.get(&t.id).is_none_or(|i| i.private_ip.is_none()))
                .map(|t| t.id.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(invalid_target(format!(
                    "The following targets are not valid instances: '{}'",
                    missing.join("', '")
                )));
            }
            let elsewhere: Vec<&str> = (targets.iter())
                .filter(|t| instances[&t.id].vpc_id != group.vpc_id)
                .map(|t| t.id.as_str())
                .collect();
            if !elsewhere.is_empty() {
                return Err(invalid_target(format!(
                    "The following targets are not in the target group VPC '{}': '{}'",
                    group.vpc_id,
                    elsewhere.join("', '")
                )));
            }
        } else {
            let subnets = self
                .ec2()?
                .vpc_subnets(&group.vpc_id)
                .await
                .map_err(ec2_refused)?;
            for target in &targets {
                let ip: Ipv4Addr = target.id.parse().map_err(|_| {
                    invalid_target(format!("'{}' is not a valid IPv4 address", target.id))
                })?;
                if !subnets.iter().any(|s| s.cidr.contains(&ip)) {
                    return Err(invalid_target(format!(
                        "The IP address '{ip}' is not within a subnet of the target group VPC '{}'",
                        group.vpc_id
                    )));
                }
            }
        }
        self.change(|txn| {
            let mut group = existing(txn.state(), &input.target_group_arn)?.clone();
            let before = (group.targets.len(), group.draining.len());
            for target in targets {
                group.draining.retain(|t| *t != target);
                if !group.targets.contains(&target) {
                    group.targets.push(target);
                }
            }
            // Registering what is registered already changes nothing and writes nothing.
            if (group.targets.len(), group.draining.len()) != before {
                txn.put(group)?;
            }
            Ok(json!({}))
        })
    }

    pub fn deregister_targets(&self, input: TargetsInput) -> Result<Value> {
        self.change(|txn| {
            let mut group = existing(txn.state(), &input.target_group_arn)?.clone();
            let targets = targets_of(&group, &input.targets)?;
            let unknown: Vec<&str> = (targets.iter())
                .filter(|t| !group.targets.contains(t))
                .map(|t| t.id.as_str())
                .collect();
            if !unknown.is_empty() {
                return Err(invalid_target(format!(
                    "The following targets are not registered in target group '{}': '{}'",
                    group.arn,
                    unknown.join("', '")
                )));
            }
            group.targets.retain(|t| !targets.contains(t));
            group.draining.extend(targets);
            txn.put(group)?;
            Ok(json!({}))
        })
    }

    pub async fn describe_target_health(&self, input: DescribeTargetHealthInput) -> Result<Value> {
        if let Some(other) = input.include.iter().find(|i| i.as_str() != "All") {
            return Err(Elbv2Error::Unsupported(format!(
                "Include '{other}' is not supported by nimbus (anomaly detection)"
            )));
        }
        let (group, in_use) = {
            let state = self.engine.read();
            let group = existing(&state, &input.target_group_arn)?.clone();
            let in_use = users(&state).contains_key(&group.arn);
            (group, in_use)
        };
        let asked = targets_of(&group, &input.targets)?;
        let listed: Vec<RegisteredTarget> = if asked.is_empty() {
            group
                .targets
                .iter()
                .chain(&group.draining)
                .cloned()
                .collect()
        } else {
            asked
        };
        let instances = self.instances_of(&listed).await?;
        let backend = group_backend_id(&group.arn);
        let health = self.health().get(&backend).cloned().unwrap_or_default();
        let descriptions: Vec<Value> = listed
            .iter()
            .map(|target| {
                let instance = instances.get(&target.id);
                let ip = match instance {
                    Some(instance) => instance.private_ip,
                    None => target.id.parse().ok(),
                };
                let seen = ip.and_then(|ip| health.get(&balancer::Target { ip, port: target.port }).copied());
                let registered = group.targets.contains(target);
                let draining = group.draining.contains(target);
                let state = if !registered && !draining {
                    health_of(
                        "unused",
                        Some(("Target.NotRegistered", "Target is not registered to the target group")),
                    )
                } else if draining {
                    reported(Some(TargetState::Draining))
                } else if !in_use {
                    health_of(
                        "unused",
                        Some((
                            "Target.NotInUse",
                            "Target group is not configured to receive traffic from the load balancer",
                        )),
                    )
                } else if let Some(instance) = instance.filter(|i| i.state != "running") {
                    health_of(
                        "unused",
                        Some((
                            "Target.InvalidState",
                            if instance.state == "stopped" {
                                "Target is in the stopped state"
                            } else {
                                "Target is not running"
                            },
                        )),
                    )
                } else {
                    reported(seen)
                };
                let mut description = json!({
                    "Target": { "Id": target.id, "Port": target.port },
                    "HealthCheckPort": group.health.port.unwrap_or(target.port).to_string(),
                    "TargetHealth": state,
                });
                if let Some(instance) = instance {
                    description["Target"]["AvailabilityZone"] = json!(instance.zone);
                }
                description
            })
            .collect();
        Ok(json!({ "TargetHealthDescriptions": descriptions }))
    }
}
