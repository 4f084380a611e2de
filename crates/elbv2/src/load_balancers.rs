//! Load balancers: the record, Create/Describe/DeleteLoadBalancer, their attributes and
//! SetSecurityGroups. Each has one node per subnet: a network interface EC2 makes in the
//! subnet (with a public IP when internet-facing), on which one HAProxy listens.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::arns::{check_arn, check_name, random_hex};
use crate::attributes::{self, Attribute, Known};
use crate::ec2::{Ec2Refusal, NodeRequest, SubnetInfo};
use crate::kinds::Tables;
use crate::listeners::{Listener, Rule};
use crate::tags::{check_tags, Tag};
use crate::{page_of, Elbv2, Elbv2Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Application,
    Network,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Application => "application",
            Kind::Network => "network",
        }
    }

    /// The part of the ARN after `loadbalancer/`.
    fn arn_part(self) -> &'static str {
        match self {
            Kind::Application => "app",
            Kind::Network => "net",
        }
    }

    pub fn attributes(self) -> Known {
        match self {
            Kind::Application => attributes::APPLICATION,
            Kind::Network => attributes::NETWORK,
        }
    }

    /// The listener and target group protocol of this kind.
    pub fn protocol(self) -> &'static str {
        match self {
            Kind::Application => "HTTP",
            Kind::Network => "TCP",
        }
    }
}

/// One node: the balancer's network interface in one subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub subnet_id: String,
    pub zone: String,
    pub interface_id: String,
    pub private_ip: Ipv4Addr,
    pub public_ip: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub arn: String,
    pub name: String,
    pub kind: Kind,
    pub internal: bool,
    pub vpc_id: String,
    pub nodes: Vec<Node>,
    pub security_groups: Vec<String>,
    /// `provisioning` until its nodes serve, then `active`.
    pub state: String,
    pub created_ms: i64,
    pub dns_name: String,
    /// The attributes set by ModifyLoadBalancerAttributes (the others have AWS's defaults).
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
}

impl LoadBalancer {
    pub fn attribute(&self, key: &str) -> &str {
        attributes::value(self.kind.attributes(), &self.attributes, key)
    }

    /// `app/NAME/HEX`: how AWS names the balancer in its interfaces' descriptions.
    pub fn suffix(&self) -> &str {
        self.arn
            .split_once(":loadbalancer/")
            .map(|(_, s)| s)
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SubnetMappingInput {
    subnet_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct CreateLoadBalancerInput {
    name: String,
    #[serde(default)]
    subnets: Vec<String>,
    #[serde(default)]
    subnet_mappings: Vec<SubnetMappingInput>,
    security_groups: Option<Vec<String>>,
    scheme: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    ip_address_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeLoadBalancersInput {
    #[serde(default)]
    load_balancer_arns: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
    marker: Option<String>,
    page_size: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SetSecurityGroupsInput {
    load_balancer_arn: String,
    security_groups: Vec<String>,
    enforce_security_group_inbound_rules_on_private_link_traffic: Option<String>,
}

/// EC2's refusal as this service's error.
pub(crate) fn ec2_refused(refusal: Ec2Refusal) -> Elbv2Error {
    match refusal.code.as_str() {
        "InvalidSubnetID.NotFound" | "InvalidSubnetID.Malformed" => {
            Elbv2Error::SubnetNotFound(refusal.message)
        }
        "InvalidGroup.NotFound" | "InvalidGroupId.Malformed" | "InvalidGroup.Malformed" => {
            Elbv2Error::InvalidSecurityGroup(refusal.message)
        }
        "InsufficientFreeAddressesInSubnet" => Elbv2Error::InvalidSubnet(refusal.message),
        _ => Elbv2Error::InvalidConfigurationRequest(refusal.message),
    }
}

/// The canonical hosted zone AWS gives balancers of a kind in us-east-1 (nimbus answers it
/// in every region: nothing resolves through it).
fn hosted_zone(kind: Kind) -> &'static str {
    match kind {
        Kind::Application => "Z35SXDOTRQ7X7K",
        Kind::Network => "Z26RNL4JYFTOTI",
    }
}

pub fn output(balancer: &LoadBalancer) -> Value {
    let zones: Vec<Value> = balancer
        .nodes
        .iter()
        .map(|node| {
            let mut zone = json!({ "ZoneName": node.zone, "SubnetId": node.subnet_id });
            if balancer.kind == Kind::Network {
                let mut address = json!({ "PrivateIPv4Address": node.private_ip.to_string() });
                if let Some(public) = node.public_ip {
                    address["IpAddress"] = json!(public.to_string());
                }
                zone["LoadBalancerAddresses"] = json!([address]);
            }
            zone
        })
        .collect();
    json!({
        "LoadBalancerArn": balancer.arn,
        "DNSName": balancer.dns_name,
        "CanonicalHostedZoneId": hosted_zone(balancer.kind),
        "CreatedTime": nimbus_core::iso8601_millis(balancer.created_ms),
        "LoadBalancerName": balancer.name,
        "Scheme": if balancer.internal { "internal" } else { "internet-facing" },
        "VpcId": balancer.vpc_id,
        "State": { "Code": balancer.state },
        "Type": balancer.kind.name(),
        "AvailabilityZones": zones,
        "SecurityGroups": balancer.security_groups,
        "IpAddressType": "ipv4",
    })
}

/// `NAME-NNNNNNNNNN.REGION.elb.amazonaws.com`, `internal-` first for an internal one.
fn dns_name(name: &str, hex: &str, internal: bool, region: &str) -> String {
    let number = u64::from_str_radix(&hex[..10], 16).unwrap_or_default() % 10_000_000_000;
    let prefix = if internal { "internal-" } else { "" };
    format!("{prefix}{name}-{number}.{region}.elb.amazonaws.com").to_lowercase()
}

impl Elbv2 {
    /// The subnets of a new balancer: one per zone, all in one VPC, with a way to the
    /// internet when internet-facing, at least two zones for an application one.
    async fn balancer_subnets(
        &self,
        ids: Vec<String>,
        kind: Kind,
        internal: bool,
    ) -> Result<Vec<SubnetInfo>> {
        if ids.is_empty() {
            return Err(Elbv2Error::ValidationError(
                "At least one subnet must be specified".into(),
            ));
        }
        let subnets = self.ec2()?.subnets(&ids).await.map_err(ec2_refused)?;
        let vpcs: BTreeSet<&str> = subnets.iter().map(|s| s.vpc_id.as_str()).collect();
        if vpcs.len() > 1 {
            return Err(Elbv2Error::InvalidConfigurationRequest(
                "All subnets of a load balancer must be in the same VPC".into(),
            ));
        }
        let zones: BTreeSet<&str> = subnets.iter().map(|s| s.zone.as_str()).collect();
        if zones.len() != subnets.len() {
            return Err(Elbv2Error::InvalidConfigurationRequest(
                "A load balancer cannot be attached to multiple subnets in the same Availability Zone".into(),
            ));
        }
        if kind == Kind::Application && zones.len() < 2 {
            return Err(Elbv2Error::ValidationError(
                "At least two subnets in two different Availability Zones must be specified".into(),
            ));
        }
        if !internal {
            if let Some(closed) = subnets.iter().find(|s| !s.internet_route) {
                return Err(Elbv2Error::InvalidSubnet(format!(
                    "Subnet {} has no route to an internet gateway, which an internet-facing load balancer needs",
                    closed.subnet_id
                )));
            }
        }
        Ok(subnets)
    }

    pub async fn create_load_balancer(&self, input: CreateLoadBalancerInput) -> Result<Value> {
        check_name(&input.name, "Load balancer")?;
        if input.name.starts_with("internal-") {
            return Err(Elbv2Error::ValidationError(
                "Load balancer names cannot start with 'internal-'".into(),
            ));
        }
        check_tags(&input.tags)?;
        let kind = match input.kind.as_deref().unwrap_or("application") {
            "application" => Kind::Application,
            "network" => Kind::Network,
            "gateway" => {
                return Err(Elbv2Error::Unsupported(
                    "Gateway load balancers are not supported by nimbus".into(),
                ))
            }
            other => {
                return Err(Elbv2Error::ValidationError(format!(
                    "'{other}' is not a valid load balancer type"
                )))
            }
        };
        let internal = match input.scheme.as_deref().unwrap_or("internet-facing") {
            "internet-facing" => false,
            "internal" => true,
            other => {
                return Err(Elbv2Error::ValidationError(format!(
                    "'{other}' is not a valid scheme"
                )))
            }
        };
        match input.ip_address_type.as_deref() {
            None | Some("ipv4") => {}
            Some(other) => {
                return Err(Elbv2Error::Unsupported(format!(
                    "IpAddressType '{other}' is not supported by nimbus (only ipv4)"
                )))
            }
        }
        let subnet_ids: Vec<String> = if input.subnet_mappings.is_empty() {
            input.subnets
        } else if input.subnets.is_empty() {
            input
                .subnet_mappings
                .into_iter()
                .map(|m| m.subnet_id)
                .collect()
        } else {
            return Err(Elbv2Error::ValidationError(
                "You can specify either subnets or subnet mappings, not both".into(),
            ));
        };
        let subnets = self.balancer_subnets(subnet_ids, kind, internal).await?;
        let vpc_id = subnets[0].vpc_id.clone();
        let security_groups = match (input.security_groups, kind) {
            (Some(groups), _) if !groups.is_empty() => {
                self.ec2()?
                    .check_groups(&vpc_id, &groups)
                    .await
                    .map_err(ec2_refused)?;
                groups
            }
            (_, Kind::Application) => vec![self
                .ec2()?
                .default_group(&vpc_id)
                .await
                .map_err(ec2_refused)?],
            (_, Kind::Network) => Vec::new(),
        };
        if let Some(existing) = self
            .engine
            .read()
            .load_balancers()
            .values()
            .find(|b| b.name == input.name)
        {
            let same = existing.kind == kind
                && existing.internal == internal
                && existing.security_groups == security_groups
                && existing
                    .nodes
                    .iter()
                    .map(|n| &n.subnet_id)
                    .eq(subnets.iter().map(|s| &s.subnet_id));
            return if same {
                Ok(json!({ "LoadBalancers": [output(existing)] }))
            } else {
                Err(Elbv2Error::DuplicateLoadBalancerName(format!(
                    "A load balancer with the same name '{}' exists, but with different settings",
                    input.name
                )))
            };
        }
        let hex = random_hex();
        let arn = self.load_balancer_arn(kind.arn_part(), &input.name, &hex);
        let suffix = format!("{}/{}/{hex}", kind.arn_part(), input.name);
        let description = format!("ELB {suffix}");
        self.creating().insert(suffix.clone());
        let created = self
            .create_with_nodes(
                &input.name,
                input.tags,
                kind,
                internal,
                &subnets,
                security_groups,
                &arn,
                &hex,
                &description,
            )
            .await;
        self.creating().remove(&suffix);
        created
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_with_nodes(
        &self,
        name: &str,
        tags: Vec<Tag>,
        kind: Kind,
        internal: bool,
        subnets: &[SubnetInfo],
        security_groups: Vec<String>,
        arn: &str,
        hex: &str,
        description: &str,
    ) -> Result<Value> {
        let vpc_id = subnets[0].vpc_id.clone();
        let mut nodes = Vec::new();
        for subnet in subnets {
            let request = NodeRequest {
                subnet_id: subnet.subnet_id.clone(),
                security_groups: security_groups.clone(),
                description: description.to_owned(),
                public_ip: !internal,
                interface_type: match kind {
                    Kind::Application => "interface".into(),
                    Kind::Network => "network_load_balancer".into(),
                },
                requester_id: match kind {
                    Kind::Application => "amazon-elb".into(),
                    Kind::Network => "amazon-aws".into(),
                },
            };
            match self.ec2()?.create_node(&request).await {
                Ok(node) => nodes.push(Node {
                    subnet_id: subnet.subnet_id.clone(),
                    zone: subnet.zone.clone(),
                    interface_id: node.interface_id,
                    private_ip: node.private_ip,
                    public_ip: node.public_ip,
                }),
                Err(refusal) => {
                    self.delete_nodes(&nodes).await;
                    return Err(ec2_refused(refusal));
                }
            }
        }
        let balancer = LoadBalancer {
            arn: arn.to_owned(),
            dns_name: dns_name(name, hex, internal, &self.region),
            name: name.to_owned(),
            kind,
            internal,
            vpc_id,
            nodes: nodes.clone(),
            security_groups,
            state: "provisioning".into(),
            created_ms: nimbus_core::now_millis(),
            attributes: BTreeMap::new(),
            tags,
        };
        let created = self.change(|txn| {
            if txn
                .state()
                .load_balancers()
                .values()
                .any(|b| b.name == balancer.name)
            {
                return Err(Elbv2Error::DuplicateLoadBalancerName(format!(
                    "A load balancer with the same name '{}' exists",
                    balancer.name
                )));
            }
            txn.put(balancer.clone())?;
            Ok(())
        });
        if let Err(error) = created {
            self.delete_nodes(&nodes).await;
            return Err(error);
        }
        Ok(json!({ "LoadBalancers": [output(&balancer)] }))
    }

    /// Deletes nodes' interfaces, logging failures (the reconciler sweeps what remains).
    pub(crate) async fn delete_nodes(&self, nodes: &[Node]) {
        let Ok(ec2) = self.ec2() else { return };
        for node in nodes {
            if let Err(refusal) = ec2.delete_node(&node.interface_id).await {
                tracing::warn!(interface = %node.interface_id, ?refusal, "a balancer node's interface stays for now");
            }
        }
    }

    pub fn describe_load_balancers(&self, input: DescribeLoadBalancersInput) -> Result<Value> {
        if !input.load_balancer_arns.is_empty() && !input.names.is_empty() {
            return Err(Elbv2Error::ValidationError(
                "Load balancer names and load balancer ARNs cannot be specified at the same time"
                    .into(),
            ));
        }
        let state = self.engine.read();
        let all = state.load_balancers();
        let chosen: Vec<&LoadBalancer> = if !input.load_balancer_arns.is_empty() {
            (input.load_balancer_arns.iter())
                .map(|arn| all.get(arn).ok_or_else(|| not_found(arn)))
                .collect::<Result<_>>()?
        } else if !input.names.is_empty() {
            (input.names.iter())
                .map(|name| {
                    all.values().find(|b| &b.name == name).ok_or_else(|| {
                        Elbv2Error::LoadBalancerNotFound(format!(
                            "Load balancers '[{name}]' not found"
                        ))
                    })
                })
                .collect::<Result<_>>()?
        } else {
            all.values().collect()
        };
        let rows = chosen.iter().map(|b| (b.arn.clone(), output(b))).collect();
        page_of(
            "LoadBalancers",
            rows,
            input.page_size,
            input.marker.as_deref(),
        )
    }

    pub fn delete_load_balancer(&self, arn: &str) -> Result<Value> {
        check_arn(arn, "loadbalancer")?;
        self.change(|txn| {
            let balancer = existing(txn.state(), arn)?;
            if balancer.attribute("deletion_protection.enabled") == "true" {
                return Err(Elbv2Error::OperationNotPermitted(format!(
                    "Load balancer '{arn}' cannot be deleted because deletion protection is enabled"
                )));
            }
            let listeners: Vec<String> = (txn.state().listeners().values())
                .filter(|l| l.load_balancer_arn == arn)
                .map(|l| l.arn.clone())
                .collect();
            let rules: Vec<String> = (txn.state().rules().values())
                .filter(|r| listeners.contains(&r.listener_arn))
                .map(|r| r.arn.clone())
                .collect();
            for rule in rules {
                txn.delete::<Rule>(&rule);
            }
            for listener in listeners {
                txn.delete::<Listener>(&listener);
            }
            // The reconciler stops its HAProxy and deletes its nodes' interfaces.
            txn.delete::<LoadBalancer>(arn);
            Ok(json!({}))
        })
    }

    pub fn describe_load_balancer_attributes(&self, arn: &str) -> Result<Value> {
        let state = self.engine.read();
        let balancer = existing(&state, arn)?;
        Ok(attributes::describe(
            balancer.kind.attributes(),
            &balancer.attributes,
        ))
    }

    pub fn modify_load_balancer_attributes(
        &self,
        arn: &str,
        changes: Vec<Attribute>,
    ) -> Result<Value> {
        self.change(|txn| {
            let mut balancer = existing(txn.state(), arn)?.clone();
            attributes::modify(
                balancer.kind.attributes(),
                &mut balancer.attributes,
                changes,
                "Load balancer",
            )?;
            let answer = attributes::describe(balancer.kind.attributes(), &balancer.attributes);
            txn.put(balancer)?;
            Ok(answer)
        })
    }

    pub async fn set_security_groups(&self, input: SetSecurityGroupsInput) -> Result<Value> {
        if input
            .enforce_security_group_inbound_rules_on_private_link_traffic
            .is_some()
        {
            return Err(Elbv2Error::Unsupported(
                "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic is not supported by nimbus (no PrivateLink)".into(),
            ));
        }
        let balancer = existing(&self.engine.read(), &input.load_balancer_arn)?.clone();
        if balancer.kind == Kind::Network
            && balancer.security_groups.is_empty() != input.security_groups.is_empty()
        {
            return Err(Elbv2Error::InvalidConfigurationRequest(
                "A network load balancer created without security groups cannot get any, and one with them cannot lose them all".into(),
            ));
        }
        if input.security_groups.is_empty() && balancer.kind == Kind::Application {
            return Err(Elbv2Error::ValidationError(
                "An application load balancer needs at least one security group".into(),
            ));
        }
        let ec2 = self.ec2()?;
        ec2.check_groups(&balancer.vpc_id, &input.security_groups)
            .await
            .map_err(ec2_refused)?;
        for node in &balancer.nodes {
            ec2.set_node_groups(&node.interface_id, &input.security_groups)
                .await
                .map_err(ec2_refused)?;
        }
        self.change(|txn| {
            let mut balancer = existing(txn.state(), &input.load_balancer_arn)?.clone();
            balancer.security_groups = input.security_groups.clone();
            txn.put(balancer)?;
            Ok(json!({ "SecurityGroupIds": input.security_groups }))
        })
    }
}

fn not_found(arn: &str) -> Elbv2Error {
    Elbv2Error::LoadBalancerNotFound(format!("Load balancer '{arn}' not found"))
}

pub fn existing<'a>(state: &'a engine::State, arn: &str) -> Result<&'a LoadBalancer> {
    check_arn(arn, "loadbalancer")?;
    state
        .load_balancers()
        .get(arn)
        .ok_or_else(|| not_found(arn))
}
