//! The loop that makes the data plane match the records: every pass it hands the driver a
//! whole spec per balancer node, marks balancers `active` once all their nodes serve, reads
//! how targets fare, removes what no record wants (HAProxies, nodes' interfaces, finished
//! drains) and keeps the balancers' names in the hosts file.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use balancer::{TargetState, UnhealthyReason};

use crate::arns::group_backend_id;
use crate::ec2::Ec2;
use crate::kinds::Tables;
use crate::load_balancers::LoadBalancer;
use crate::spec::{node_spec, Found};
use crate::target_groups::TargetGroup;
use crate::{Elbv2, HealthByGroup};

/// How often a pass runs when nothing wakes it: target health and crashed HAProxies are
/// noticed within this.
const TICK: Duration = Duration::from_secs(2);

pub struct BalancerReconciler {
    service: Arc<Elbv2>,
}

impl BalancerReconciler {
    pub fn new(service: Arc<Elbv2>) -> BalancerReconciler {
        BalancerReconciler { service }
    }
}

/// How bad a state is, to merge what several nodes see of one target: any node finding it
/// unhealthy makes it so, then initial, then draining.
fn badness(state: &TargetState) -> u8 {
    match state {
        TargetState::Healthy => 0,
        TargetState::Draining => 1,
        TargetState::Initial => 2,
        TargetState::Unhealthy(UnhealthyReason::Failed) => 3,
        TargetState::Unhealthy(_) => 4,
    }
}

#[async_trait]
impl engine::Reconciler for BalancerReconciler {
    fn name(&self) -> &'static str {
        "elbv2"
    }

    async fn pass(&self) {
        let Ok(ec2) = self.service.ec2() else {
            return;
        };
        let (balancers, groups) = {
            let state = self.service.engine.read();
            let balancers: Vec<LoadBalancer> = state.load_balancers().values().cloned().collect();
            let groups: Vec<TargetGroup> = state.target_groups().values().cloned().collect();
            (balancers, groups)
        };
        let found = self.service.find(ec2, &balancers, &groups).await;
        let mut health = HealthByGroup::new();
        let mut wanted = BTreeSet::new();
        for balancer in &balancers {
            wanted.extend(balancer.nodes.iter().map(|n| n.interface_id.clone()));
            if self.service.apply(balancer, &found, &mut health).await {
                self.service.mark_active(&balancer.arn);
            }
        }
        self.service.remove_unwanted(ec2, &wanted).await;
        self.service.end_drains(&groups, &found, &health);
        self.service.publish_metrics(&balancers, &health).await;
        *self.service.health() = health;
        self.service.publish_names(ec2, &balancers);
    }

    async fn wait(&self) {
        let _ = tokio::time::timeout(TICK, self.service.wake.notified()).await;
    }
}

impl Elbv2 {
    /// The instances registered (or draining) in any group, and the subnets of the
    /// balancers' VPCs; what EC2 cannot answer now is left out (targets then wait).
    async fn find(
        &self,
        ec2: &dyn Ec2,
        balancers: &[LoadBalancer],
        groups: &[TargetGroup],
    ) -> Found {
        let ids: Vec<String> = (groups.iter())
            .flat_map(|g| g.targets.iter().chain(&g.draining))
            .filter(|t| t.id.starts_with("i-"))
            .map(|t| t.id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut found = Found::default();
        if !ids.is_empty() {
            match ec2.instances(&ids).await {
                Ok(instances) => {
                    found.instances = instances
                        .into_iter()
                        .map(|i| (i.instance_id.clone(), i))
                        .collect()
                }
                Err(refusal) => tracing::warn!(?refusal, "targets' instances unknown this pass"),
            }
        }
        let vpcs: BTreeSet<&str> = balancers.iter().map(|b| b.vpc_id.as_str()).collect();
        for vpc in vpcs {
            if let Ok(subnets) = ec2.vpc_subnets(vpc).await {
                found.subnets.extend(subnets);
            }
        }
        found
    }

    /// Applies every node of a balancer and gathers how its targets fare; says whether all
    /// nodes serve.
    async fn apply(
        &self,
        balancer: &LoadBalancer,
        found: &Found,
        health: &mut HealthByGroup,
    ) -> bool {
        let mut serving = true;
        for node in &balancer.nodes {
            let spec = {
                let state = self.engine.read();
                node_spec(balancer, node, &state, found)
            };
            let applied = match spec {
                Ok(spec) => self.driver.apply(&spec).await.map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = applied {
                // A new node's namespace appears once the network reconciler has wired it.
                tracing::debug!(balancer = %balancer.arn, node = %node.interface_id, %error, "node not serving yet");
                serving = false;
                continue;
            }
            match self.driver.target_health(&node.interface_id).await {
                Ok(targets) => {
                    for target in targets {
                        let seen = health
                            .entry(target.target_group_id)
                            .or_default()
                            .entry(target.target)
                            .or_insert(target.state);
                        if badness(&target.state) > badness(seen) {
                            *seen = target.state;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(node = %node.interface_id, %error, "target health unknown")
                }
            }
        }
        serving
    }

    fn mark_active(&self, arn: &str) {
        let changed = self.engine.mutate::<_, crate::Elbv2Error>(|txn| {
            if let Some(balancer) = txn.state().load_balancers().get(arn).cloned() {
                if balancer.state != "active" {
                    txn.put(LoadBalancer {
                        state: "active".into(),
                        ..balancer
                    })?;
                }
            }
            Ok(())
        });
        if let Err(error) = changed {
            tracing::warn!(%arn, %error, "balancer state not recorded; retried next pass");
        }
    }

    /// Stops the HAProxies and deletes the nodes' interfaces no balancer wants (deleted
    /// balancers', or those of a creation that failed half-way).
    async fn remove_unwanted(&self, ec2: &dyn Ec2, wanted: &BTreeSet<String>) {
        match self.driver.balancers().await {
            Ok(running) => {
                for id in running.iter().filter(|id| !wanted.contains(*id)) {
                    if let Err(error) = self.driver.remove(id).await {
                        tracing::warn!(node = %id, %error, "balancer node not removed; retried next pass");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "balancer nodes on this host unknown"),
        }
        let Ok(interfaces) = ec2.node_interfaces().await else {
            return;
        };
        let creating = self.creating().clone();
        for (interface_id, description) in interfaces {
            let suffix = description.trim_start_matches("ELB ");
            if wanted.contains(&interface_id) || creating.contains(suffix) {
                continue;
            }
            // The record may have been written since this pass read them.
            if self
                .engine
                .read()
                .load_balancers()
                .values()
                .any(|b| b.suffix() == suffix)
            {
                continue;
            }
            if let Err(refusal) = ec2.delete_node(&interface_id).await {
                tracing::warn!(%interface_id, ?refusal, "balancer node interface not deleted; retried next pass");
            }
        }
    }

    /// Forgets deregistered targets the data plane has let go of.
    fn end_drains(&self, groups: &[TargetGroup], found: &Found, health: &HealthByGroup) {
        for group in groups.iter().filter(|g| !g.draining.is_empty()) {
            let seen = health.get(&group_backend_id(&group.arn));
            let still = |id: &str, port: u16| {
                let ip = match found.instances.get(id) {
                    Some(instance) => instance.private_ip,
                    None => id.parse().ok(),
                };
                ip.and_then(|ip| seen?.get(&balancer::Target { ip, port }))
                    .is_some_and(|s| *s == TargetState::Draining)
            };
            let _ = self.engine.mutate::<_, crate::Elbv2Error>(|txn| {
                if let Some(mut group) = txn.state().target_groups().get(&group.arn).cloned() {
                    let before = group.draining.len();
                    group.draining.retain(|t| still(&t.id, t.port));
                    if group.draining.len() != before {
                        txn.put(group)?;
                    }
                }
                Ok(())
            });
        }
    }

    /// Gives every balancer's name to its VPC's resolver (its nodes' private addresses:
    /// inside the VPC an internet-facing balancer is reached directly, not through its
    /// public IPs), and writes them in this server's block of the hosts file (an
    /// internet-facing one's public addresses, an internal one's private ones).
    fn publish_names(&self, ec2: &dyn Ec2, balancers: &[LoadBalancer]) {
        let mut in_vpcs: std::collections::BTreeMap<String, Vec<network::ServiceName>> =
            Default::default();
        for balancer in balancers {
            in_vpcs
                .entry(balancer.vpc_id.clone())
                .or_default()
                .push(network::ServiceName {
                    name: balancer.dns_name.clone(),
                    ips: balancer.nodes.iter().map(|n| n.private_ip).collect(),
                });
        }
        ec2.publish_names(in_vpcs);
        let Some(path) = &self.hosts_file else {
            return;
        };
        let entries: Vec<(String, std::net::Ipv4Addr)> = (balancers.iter())
            .flat_map(|b| {
                b.nodes.iter().filter_map(|n| {
                    let ip = if b.internal {
                        Some(n.private_ip)
                    } else {
                        n.public_ip
                    };
                    ip.map(|ip| (b.dns_name.clone(), ip))
                })
            })
            .collect();
        if let Err(error) = crate::hosts::update(path, &self.owner, &entries) {
            tracing::warn!(path = %path.display(), %error, "balancer names not written");
        }
    }
}

/// Balancer suffixes (`app/NAME/HEX`) whose nodes are being made, so the sweep of unwanted
/// interfaces leaves them alone until the record is written.
pub(crate) type Creating = BTreeSet<String>;
