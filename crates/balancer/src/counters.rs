//! What a balancer has carried, for CloudWatch's `AWS/ApplicationELB` and `AWS/NetworkELB`
//! metrics: cumulative counters since its HAProxy started, from which the elbv2 service
//! computes each period's deltas, and each group's healthy and unhealthy target counts.
//!
//! Counters start again from zero when a new HAProxy starts (a config change or a crash):
//! `process_id` says which one counted them.

use crate::{TargetHealth, TargetState};

/// A balancer's counters, read at one time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BalancerCounters {
    /// The HAProxy that counted: when it changes, the counters began again from zero.
    pub process_id: u32,
    pub listeners: Vec<ListenerCounters>,
    pub target_groups: Vec<GroupCounters>,
    /// Responses the balancer made itself (AWS's `HTTPCode_ELB_*`): fixed responses,
    /// redirects, 503 with no healthy target, 502 and 504 when a target failed, 4XX for
    /// requests it refused. What clients got less what targets answered.
    pub elb_responses: HttpCodes,
}

/// Connections and requests through a listener (clients' side) or to a group (targets').
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// HTTP requests; for TCP, connections.
    pub requests: u64,
    pub new_connections: u64,
    /// Connections open now (not cumulative).
    pub active_connections: u64,
    /// Bytes received from clients (a group: sent to its targets).
    pub bytes_in: u64,
    /// Bytes sent to clients (a group: received from its targets).
    pub bytes_out: u64,
}

/// HTTP responses by class.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpCodes {
    pub status_2xx: u64,
    pub status_3xx: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerCounters {
    pub port: u16,
    pub traffic: Traffic,
    /// Every response clients got, the balancer's own included.
    pub responses: HttpCodes,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupCounters {
    pub target_group_id: String,
    pub traffic: Traffic,
    /// What the group's targets answered (AWS's `HTTPCode_Target_*`).
    pub target_responses: HttpCodes,
    /// Requests the balancer answered 503 because no target of the group could take them.
    pub no_target: u64,
    /// The mean time targets took to answer a request's headers over its last 1,024
    /// requests, in milliseconds (AWS's `TargetResponseTime`; HAProxy 2.6 keeps no total).
    pub mean_response_time_ms: u64,
    /// Targets healthy now, and unhealthy now (initial and draining ones are neither).
    pub healthy: u32,
    pub unhealthy: u32,
}

/// How many targets of `group` are healthy, and how many unhealthy, in `health`.
pub(crate) fn healthy_and_unhealthy(health: &[TargetHealth], group: &str) -> (u32, u32) {
    let count = |wanted: fn(&TargetState) -> bool| {
        let n = health
            .iter()
            .filter(|h| h.target_group_id == group && wanted(&h.state))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    (
        count(|s| *s == TargetState::Healthy),
        count(|s| matches!(s, TargetState::Unhealthy(_))),
    )
}
