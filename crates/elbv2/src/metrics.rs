//! CloudWatch metrics of load balancers, measured from the data plane: every few seconds
//! the reconciler reads each node's counters (cumulative since its HAProxy started) and
//! publishes what changed since the last reading, summed over the balancer's nodes, under
//! `AWS/ApplicationELB` or `AWS/NetworkELB` with AWS's names and dimensions.

use std::collections::BTreeMap;
use std::sync::Mutex;

use balancer::{BalancerCounters, TargetState};
use nimbus_core::metrics::Sample;

use crate::arns::group_backend_id;
use crate::kinds::Tables;
use crate::load_balancers::{Kind, LoadBalancer};
use crate::{Elbv2, HealthByGroup};

/// How often metrics are published (the reconciler passes more often).
const PUBLISH_EVERY_MS: i64 = 10_000;

/// The counters of each node at the last publication, and when it was.
#[derive(Default)]
pub(crate) struct Publisher {
    last: Mutex<(i64, BTreeMap<String, BalancerCounters>)>,
}

/// What a balancer carried over one period, summed over its nodes.
#[derive(Default)]
struct Period {
    requests: u64,
    new_connections: u64,
    active_connections: u64,
    bytes: u64,
    target_codes: [u64; 4],
    elb_4xx: u64,
    elb_5xx: u64,
    response_time_ms: u64,
    /// Requests by target group backend ID.
    group_requests: BTreeMap<String, u64>,
}

/// `later - earlier` for a counter, the whole of `later` when its HAProxy is a new one: its
/// process ID changed, or the counter went back (a replaced HAProxy's pid file may be read
/// before the new one's counters are).
fn since(later: u64, earlier: Option<u64>) -> u64 {
    match earlier {
        Some(earlier) if earlier <= later => later - earlier,
        _ => later,
    }
}

fn add_node(period: &mut Period, now: &BalancerCounters, before: Option<&BalancerCounters>) {
    let before = before.filter(|b| b.process_id == now.process_id);
    for listener in &now.listeners {
        let old = before.and_then(|b| b.listeners.iter().find(|l| l.port == listener.port));
        let traffic = &listener.traffic;
        period.requests += since(traffic.requests, old.map(|o| o.traffic.requests));
        period.new_connections += since(
            traffic.new_connections,
            old.map(|o| o.traffic.new_connections),
        );
        period.active_connections += traffic.active_connections;
        period.bytes += since(
            traffic.bytes_in + traffic.bytes_out,
            old.map(|o| o.traffic.bytes_in + o.traffic.bytes_out),
        );
    }
    for group in &now.target_groups {
        let old = before.and_then(|b| {
            b.target_groups
                .iter()
                .find(|g| g.target_group_id == group.target_group_id)
        });
        let codes = &group.target_responses;
        let old_codes = old.map(|o| &o.target_responses);
        for (slot, (new, was)) in period.target_codes.iter_mut().zip([
            (codes.status_2xx, old_codes.map(|c| c.status_2xx)),
            (codes.status_3xx, old_codes.map(|c| c.status_3xx)),
            (codes.status_4xx, old_codes.map(|c| c.status_4xx)),
            (codes.status_5xx, old_codes.map(|c| c.status_5xx)),
        ]) {
            *slot += since(new, was);
        }
        *period
            .group_requests
            .entry(group.target_group_id.clone())
            .or_default() += since(group.traffic.requests, old.map(|o| o.traffic.requests));
        period.response_time_ms = period.response_time_ms.max(group.mean_response_time_ms);
    }
    let elb = &now.elb_responses;
    let old_elb = before.map(|b| &b.elb_responses);
    period.elb_4xx += since(elb.status_4xx, old_elb.map(|c| c.status_4xx));
    period.elb_5xx += since(elb.status_5xx, old_elb.map(|c| c.status_5xx));
}

impl Elbv2 {
    /// Publishes every balancer's metrics of the period just ended, if one has.
    pub(crate) async fn publish_metrics(&self, balancers: &[LoadBalancer], health: &HealthByGroup) {
        let Some(sink) = self.metric_sink.get() else {
            return;
        };
        let now_ms = nimbus_core::now_millis();
        if now_ms
            - self
                .publisher
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .0
            < PUBLISH_EVERY_MS
        {
            return;
        }
        let mut readings = BTreeMap::new();
        for node in balancers.iter().flat_map(|b| &b.nodes) {
            if let Ok(counters) = self.driver.counters(&node.interface_id).await {
                readings.insert(node.interface_id.clone(), counters);
            }
        }
        let mut samples = Vec::new();
        {
            let last = self
                .publisher
                .last
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let state = self.engine.read();
            let users = crate::target_groups::users(&state);
            for balancer in balancers {
                let mut period = Period::default();
                for node in &balancer.nodes {
                    if let Some(now) = readings.get(&node.interface_id) {
                        add_node(&mut period, now, last.1.get(&node.interface_id));
                    }
                }
                let groups: Vec<(String, String)> = (state.target_groups().values())
                    .filter(|g| {
                        period
                            .group_requests
                            .contains_key(&group_backend_id(&g.arn))
                            || users
                                .get(&g.arn)
                                .is_some_and(|lbs| lbs.contains(&balancer.arn))
                    })
                    .map(|g| {
                        (
                            group_backend_id(&g.arn),
                            g.arn.rsplit(':').next().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                samples.extend(balancer_samples(balancer, &period, &groups, health, now_ms));
            }
        }
        *self
            .publisher
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (now_ms, readings);
        sink.record(samples);
    }
}

fn balancer_samples(
    balancer: &LoadBalancer,
    period: &Period,
    groups: &[(String, String)],
    health: &HealthByGroup,
    now_ms: i64,
) -> Vec<Sample> {
    let (namespace, application) = match balancer.kind {
        Kind::Application => ("AWS/ApplicationELB", true),
        Kind::Network => ("AWS/NetworkELB", false),
    };
    let by_balancer = vec![("LoadBalancer".to_owned(), balancer.suffix().to_owned())];
    let sample = |name: &str, dimensions: Vec<(String, String)>, unit: &str, value: f64| Sample {
        namespace: namespace.into(),
        metric_name: name.into(),
        dimensions,
        unit: unit.into(),
        timestamp_ms: now_ms,
        value,
        storage_resolution: 60,
    };
    let mut samples = vec![sample(
        "ProcessedBytes",
        by_balancer.clone(),
        "Bytes",
        period.bytes as f64,
    )];
    if application {
        let counts = [
            ("RequestCount", period.requests),
            ("NewConnectionCount", period.new_connections),
            ("ActiveConnectionCount", period.active_connections),
            ("HTTPCode_Target_2XX_Count", period.target_codes[0]),
            ("HTTPCode_Target_3XX_Count", period.target_codes[1]),
            ("HTTPCode_Target_4XX_Count", period.target_codes[2]),
            ("HTTPCode_Target_5XX_Count", period.target_codes[3]),
            ("HTTPCode_ELB_4XX_Count", period.elb_4xx),
            ("HTTPCode_ELB_5XX_Count", period.elb_5xx),
        ];
        samples.extend(
            counts
                .iter()
                .map(|(name, n)| sample(name, by_balancer.clone(), "Count", *n as f64)),
        );
        if period.requests > 0 {
            samples.push(sample(
                "TargetResponseTime",
                by_balancer.clone(),
                "Seconds",
                period.response_time_ms as f64 / 1000.0,
            ));
        }
    } else {
        samples.push(sample(
            "NewFlowCount",
            by_balancer.clone(),
            "Count",
            period.new_connections as f64,
        ));
        samples.push(sample(
            "ActiveFlowCount",
            by_balancer.clone(),
            "Count",
            period.active_connections as f64,
        ));
    }
    for (backend, group_suffix) in groups {
        let states = health.get(backend);
        let count = |healthy: bool| {
            states.map_or(0, |s| {
                s.values()
                    .filter(|t| {
                        (**t == TargetState::Healthy) == healthy && **t != TargetState::Draining
                    })
                    .count()
            })
        };
        let (healthy, unhealthy) = (count(true), count(false));
        let mut by_group = vec![("TargetGroup".to_owned(), group_suffix.clone())];
        by_group.extend(by_balancer.iter().cloned());
        samples.push(sample(
            "HealthyHostCount",
            by_group.clone(),
            "Count",
            healthy as f64,
        ));
        samples.push(sample(
            "UnHealthyHostCount",
            by_group.clone(),
            "Count",
            unhealthy as f64,
        ));
        if application {
            let requests = period
                .group_requests
                .get(backend)
                .copied()
                .unwrap_or_default();
            samples.push(sample("RequestCount", by_group, "Count", requests as f64));
            samples.push(sample(
                "RequestCountPerTarget",
                vec![("TargetGroup".to_owned(), group_suffix.clone())],
                "Count",
                requests as f64 / healthy.max(1) as f64,
            ));
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use balancer::{GroupCounters, HttpCodes, ListenerCounters, Traffic};

    fn counters(process_id: u32, requests: u64) -> BalancerCounters {
        BalancerCounters {
            process_id,
            listeners: vec![ListenerCounters {
                port: 80,
                traffic: Traffic {
                    requests,
                    ..Traffic::default()
                },
                responses: HttpCodes::default(),
            }],
            target_groups: vec![GroupCounters {
                target_group_id: "tg-01".into(),
                traffic: Traffic {
                    requests,
                    ..Traffic::default()
                },
                target_responses: HttpCodes {
                    status_2xx: requests,
                    ..HttpCodes::default()
                },
                ..GroupCounters::default()
            }],
            elb_responses: HttpCodes::default(),
        }
    }

    #[test]
    fn a_period_counts_what_changed_and_all_of_a_new_process() {
        let mut period = Period::default();
        add_node(&mut period, &counters(7, 30), Some(&counters(7, 10)));
        assert_eq!(
            (
                period.requests,
                period.target_codes[0],
                period.group_requests["tg-01"]
            ),
            (20, 20, 20)
        );
        let mut restarted = Period::default();
        add_node(&mut restarted, &counters(8, 5), Some(&counters(7, 10)));
        assert_eq!(restarted.requests, 5);
        let mut same_pid = Period::default();
        add_node(&mut same_pid, &counters(7, 5), Some(&counters(7, 1000)));
        assert_eq!(
            same_pid.requests, 5,
            "a counter that went back started again"
        );
    }
}
