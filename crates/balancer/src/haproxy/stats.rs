//! A balancer's [`BalancerCounters`] from one `show stat`: listeners from their frontends'
//! lines, groups from their backends' lines and their slots' (a slot's counters outlive
//! the targets that held it, so sums over slots only grow).

use super::runtime::StatLine;
use crate::counters::healthy_and_unhealthy;
use crate::render::frontend_name;
use crate::{
    BalancerCounters, BalancerSpec, GroupCounters, HttpCodes, ListenerCounters, Protocol,
    TargetHealth, Traffic,
};

fn number(line: &StatLine<'_>, column: &str) -> u64 {
    line.get(column).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn codes(line: &StatLine<'_>) -> HttpCodes {
    HttpCodes {
        status_2xx: number(line, "hrsp_2xx"),
        status_3xx: number(line, "hrsp_3xx"),
        status_4xx: number(line, "hrsp_4xx"),
        status_5xx: number(line, "hrsp_5xx"),
    }
}

fn add(a: HttpCodes, b: HttpCodes) -> HttpCodes {
    HttpCodes {
        status_2xx: a.status_2xx + b.status_2xx,
        status_3xx: a.status_3xx + b.status_3xx,
        status_4xx: a.status_4xx + b.status_4xx,
        status_5xx: a.status_5xx + b.status_5xx,
    }
}

fn less(a: HttpCodes, b: &HttpCodes) -> HttpCodes {
    HttpCodes {
        status_2xx: a.status_2xx.saturating_sub(b.status_2xx),
        status_3xx: a.status_3xx.saturating_sub(b.status_3xx),
        status_4xx: a.status_4xx.saturating_sub(b.status_4xx),
        status_5xx: a.status_5xx.saturating_sub(b.status_5xx),
    }
}

/// Connections and requests of a frontend or backend line; `requests` is the column that
/// counts requests (HTTP) or connections (TCP).
fn traffic(line: &StatLine<'_>, requests: &str, connections: &str) -> Traffic {
    Traffic {
        requests: number(line, requests),
        new_connections: number(line, connections),
        active_connections: number(line, "scur"),
        bytes_in: number(line, "bin"),
        bytes_out: number(line, "bout"),
    }
}

/// The counters of `spec`'s balancer from the lines of its HAProxy's `show stat`.
pub fn counters(
    spec: &BalancerSpec,
    lines: &[StatLine<'_>],
    health: &[TargetHealth],
    process_id: u32,
) -> BalancerCounters {
    let find = |proxy: &str, name: &str| {
        lines
            .iter()
            .find(|l| l.get("pxname") == Some(&proxy) && l.get("svname") == Some(&name))
    };
    let is_slot =
        |line: &&StatLine<'_>| !matches!(line.get("svname"), Some(&"FRONTEND") | Some(&"BACKEND"));
    let listeners: Vec<ListenerCounters> = spec
        .listeners
        .iter()
        .map(|listener| {
            let name = frontend_name(listener.port);
            let Some(line) = find(&name, "FRONTEND") else {
                return ListenerCounters {
                    port: listener.port,
                    ..ListenerCounters::default()
                };
            };
            let requests = match listener.protocol {
                Protocol::Http => "req_tot",
                Protocol::Tcp => "conn_tot",
            };
            ListenerCounters {
                port: listener.port,
                traffic: traffic(line, requests, "conn_tot"),
                responses: codes(line),
            }
        })
        .collect();
    let target_groups: Vec<GroupCounters> = spec
        .target_groups
        .iter()
        .map(|group| {
            let slots = lines
                .iter()
                .filter(is_slot)
                .filter(|l| l.get("pxname") == Some(&group.id.as_str()));
            let target_responses = slots.clone().map(codes).fold(HttpCodes::default(), add);
            let slot_failures: u64 = slots.map(|l| number(l, "econ")).sum();
            let (healthy, unhealthy) = healthy_and_unhealthy(health, &group.id);
            let backend = find(&group.id, "BACKEND");
            let requests = match group.protocol {
                Protocol::Http => "req_tot",
                Protocol::Tcp => "stot",
            };
            GroupCounters {
                target_group_id: group.id.clone(),
                traffic: backend.map_or_else(Traffic::default, |l| traffic(l, requests, "connect")),
                target_responses,
                // A backend counts a failed connection to a slot, as the slot does, and a
                // request that found no slot to take it, which no slot does.
                no_target: backend.map_or(0, |l| number(l, "econ").saturating_sub(slot_failures)),
                mean_response_time_ms: backend.map_or(0, |l| number(l, "rtime")),
                healthy,
                unhealthy,
            }
        })
        .collect();
    let to_clients = lines
        .iter()
        .filter(|l| l.get("svname") == Some(&"FRONTEND"))
        .map(codes)
        .fold(HttpCodes::default(), add);
    let from_targets = lines
        .iter()
        .filter(is_slot)
        .map(codes)
        .fold(HttpCodes::default(), add);
    BalancerCounters {
        process_id,
        listeners,
        target_groups,
        elb_responses: less(to_clients, &from_targets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::haproxy::runtime::stat_lines;
    use crate::spec::tests::spec;
    use crate::{Target, TargetState, UnhealthyReason};

    /// `show stat` of HAProxy 2.6.12 after 7 requests: `/` twice and a missing file to
    /// `tg-web` (one slot up, one refusing), a fixed 503, a redirect, and two requests to
    /// `tg-dead`, whose only slot is down.
    const TRAFFIC: &str = include_str!("testdata/show-stat-traffic.csv");

    #[test]
    fn counters_come_from_frontends_backends_and_slots() {
        let mut spec = spec();
        spec.listeners.truncate(1);
        spec.target_groups[1].id = "tg-dead".into();
        spec.target_groups[1].protocol = Protocol::Http;
        let target = |last| Target {
            ip: std::net::Ipv4Addr::new(127, 0, 0, last),
            port: 80,
        };
        let health = [
            (target(1), TargetState::Healthy),
            (target(2), TargetState::Unhealthy(UnhealthyReason::Failed)),
            (target(3), TargetState::Initial),
        ]
        .map(|(target, state)| TargetHealth {
            target_group_id: "tg-web".into(),
            target,
            state,
        });
        let counters = counters(&spec, &stat_lines(TRAFFIC), &health, 42);
        assert_eq!(
            counters.listeners,
            [ListenerCounters {
                port: 80,
                traffic: Traffic {
                    requests: 7,
                    new_connections: 7,
                    active_connections: 0,
                    bytes_in: 598,
                    bytes_out: 1166,
                },
                responses: HttpCodes {
                    status_2xx: 2,
                    status_3xx: 1,
                    status_4xx: 1,
                    status_5xx: 3,
                },
            }]
        );
        let [web, dead] = counters.target_groups.as_slice() else {
            panic!("two groups: {counters:?}");
        };
        assert_eq!(web.traffic.requests, 3);
        assert_eq!(
            web.target_responses,
            HttpCodes {
                status_2xx: 2,
                status_4xx: 1,
                ..HttpCodes::default()
            }
        );
        assert_eq!((web.no_target, web.healthy, web.unhealthy), (0, 1, 1));
        assert_eq!((dead.traffic.requests, dead.no_target), (2, 2));
        assert_eq!(dead.target_responses, HttpCodes::default());
        assert_eq!(
            counters.elb_responses,
            HttpCodes {
                status_3xx: 1,
                status_5xx: 3,
                ..HttpCodes::default()
            },
            "the redirect, the fixed 503 and the two with no target"
        );
        assert_eq!(counters.process_id, 42);
    }
}
