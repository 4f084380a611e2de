//! The attributes of load balancers, target groups and listeners: for each kind, every key
//! nimbus knows with AWS's default and which values it carries out. A key nimbus does not
//! know is refused with AWS's "not recognized" message (Terraform reads it, drops the key
//! and retries); a value it does not carry out is refused by name.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{Elbv2Error, Result};

/// The values of a key nimbus carries out.
#[derive(Clone, Copy)]
pub enum Accepts {
    /// Only AWS's default (what a tool sends when the user said nothing).
    Default,
    Bool,
    Range(i64, i64),
    OneOf(&'static [&'static str]),
}

/// A key, AWS's default, and the values nimbus carries out.
pub type Entry = (&'static str, &'static str, Accepts);

pub type Known = &'static [Entry];

use Accepts::*;

pub const APPLICATION: Known = &[
    ("access_logs.s3.enabled", "false", Default),
    ("access_logs.s3.bucket", "", Default),
    ("access_logs.s3.prefix", "", Default),
    ("connection_logs.s3.enabled", "false", Default),
    ("connection_logs.s3.bucket", "", Default),
    ("connection_logs.s3.prefix", "", Default),
    ("client_keep_alive.seconds", "3600", Default),
    ("deletion_protection.enabled", "false", Bool),
    ("idle_timeout.timeout_seconds", "60", Range(1, 4000)),
    ("load_balancing.cross_zone.enabled", "true", Default),
    ("routing.http.desync_mitigation_mode", "defensive", Default),
    (
        "routing.http.drop_invalid_header_fields.enabled",
        "false",
        Default,
    ),
    // HAProxy passes the Host header unchanged: both values are what nimbus does for a
    // listener on port 80, the only case where AWS's two differ not at all.
    ("routing.http.preserve_host_header.enabled", "false", Bool),
    (
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        "false",
        Default,
    ),
    ("routing.http.xff_client_port.enabled", "false", Default),
    ("routing.http.xff_header_processing.mode", "append", Default),
    // HTTP/2 is spoken only on HTTPS listeners, which nimbus does not have yet.
    ("routing.http2.enabled", "true", Bool),
    ("waf.fail_open.enabled", "false", Default),
    ("zonal_shift.config.enabled", "false", Default),
];

pub const NETWORK: Known = &[
    ("access_logs.s3.enabled", "false", Default),
    ("access_logs.s3.bucket", "", Default),
    ("access_logs.s3.prefix", "", Default),
    ("deletion_protection.enabled", "false", Bool),
    (
        "dns_record.client_routing_policy",
        "any_availability_zone",
        Default,
    ),
    ("load_balancing.cross_zone.enabled", "false", Bool),
    ("zonal_shift.config.enabled", "false", Default),
];

const HTTP_ONLY: Known = &[
    (
        "deregistration_delay.timeout_seconds",
        "300",
        Range(0, 3600),
    ),
    (
        "load_balancing.algorithm.anomaly_mitigation",
        "off",
        Default,
    ),
    (
        "load_balancing.algorithm.type",
        "round_robin",
        OneOf(&["round_robin", "least_outstanding_requests"]),
    ),
    (
        "load_balancing.cross_zone.enabled",
        "use_load_balancer_configuration",
        Default,
    ),
    ("slow_start.duration_seconds", "0", Default),
    ("stickiness.app_cookie.cookie_name", "", Default),
    ("stickiness.app_cookie.duration_seconds", "86400", Default),
    ("stickiness.enabled", "false", Bool),
    (
        "stickiness.lb_cookie.duration_seconds",
        "86400",
        Range(1, 604_800),
    ),
    ("stickiness.type", "lb_cookie", Default),
];

const TCP_ONLY: Known = &[
    ("connection_termination.enabled", "false", Default),
    (
        "deregistration_delay.connection_termination.enabled",
        "false",
        Default,
    ),
    (
        "deregistration_delay.timeout_seconds",
        "300",
        Range(0, 3600),
    ),
    (
        "load_balancing.cross_zone.enabled",
        "use_load_balancer_configuration",
        Default,
    ),
    // HAProxy proxies TCP, so targets see the balancer's address, not the client's.
    ("preserve_client_ip.enabled", "false", Default),
    ("proxy_protocol_v2.enabled", "false", Default),
    ("stickiness.enabled", "false", Default),
    ("stickiness.type", "source_ip", Default),
    (
        "target_health_state.unhealthy.connection_termination.enabled",
        "true",
        Default,
    ),
    (
        "target_health_state.unhealthy.draining_interval_seconds",
        "0",
        Default,
    ),
];

// Terraform sends `false` with every HTTP listener it makes.
/// What every target group has, whatever its protocol.
const GROUP_HEALTH: Known = &[
    (
        "target_group_health.dns_failover.minimum_healthy_targets.count",
        "1",
        Default,
    ),
    (
        "target_group_health.dns_failover.minimum_healthy_targets.percentage",
        "off",
        Default,
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
        "1",
        Default,
    ),
    (
        "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
        "off",
        Default,
    ),
];

/// An HTTP target group's attributes.
pub static HTTP_GROUP: LazyLock<Vec<Entry>> = LazyLock::new(|| [HTTP_ONLY, GROUP_HEALTH].concat());

/// A TCP target group's attributes.
pub static TCP_GROUP: LazyLock<Vec<Entry>> = LazyLock::new(|| [TCP_ONLY, GROUP_HEALTH].concat());

pub const HTTP_LISTENER: Known = &[("routing.http.response.server.enabled", "true", Bool)];

pub const TCP_LISTENER: Known = &[("tcp.idle_timeout.seconds", "350", Default)];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Attribute {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// The value of `key`: as set, or AWS's default.
pub fn value<'a>(known: Known, set: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    if let Some(value) = set.get(key) {
        return value;
    }
    known
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, default, _)| *default)
        .unwrap_or_default()
}

/// Checks `changes` against `known` and applies them to `set`; `what` names the kind in
/// messages (`Load balancer`, `Target group`, `Listener`).
pub fn modify(
    known: Known,
    set: &mut BTreeMap<String, String>,
    changes: Vec<Attribute>,
    what: &str,
) -> Result<()> {
    for Attribute { key, value } in changes {
        let Some((_, default, accepts)) = known.iter().find(|(k, _, _)| *k == key) else {
            return Err(Elbv2Error::ValidationError(format!(
                "{what} attribute key '{key}' is not recognized"
            )));
        };
        let valid = match accepts {
            Default => value == *default,
            Bool => value == "true" || value == "false",
            Range(low, high) => value
                .parse::<i64>()
                .is_ok_and(|n| (*low..=*high).contains(&n)),
            OneOf(values) => values.contains(&value.as_str()),
        };
        if !valid {
            return Err(match accepts {
                Default | OneOf(_) => Elbv2Error::Unsupported(format!(
                    "{what} attribute '{key}' = '{value}' is not supported by nimbus (only '{default}')"
                )),
                _ => Elbv2Error::ValidationError(format!(
                    "{what} attribute '{key}' cannot be '{value}'"
                )),
            });
        }
        set.insert(key, value);
    }
    Ok(())
}

/// Every attribute, as Describe…Attributes answers them.
pub fn describe(known: Known, set: &BTreeMap<String, String>) -> Value {
    let attributes: Vec<Value> = known
        .iter()
        .map(|(key, _, _)| json!({ "Key": key, "Value": value(known, set, key) }))
        .collect();
    json!({ "Attributes": attributes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(key: &str, value: &str) -> Attribute {
        Attribute {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn unknown_keys_are_not_recognized_and_unsupported_values_are_named() {
        let mut set = BTreeMap::new();
        let unknown = modify(
            APPLICATION,
            &mut set,
            vec![attribute("made.up", "1")],
            "Load balancer",
        );
        assert!(
            matches!(&unknown, Err(Elbv2Error::ValidationError(m)) if m.contains("attribute key 'made.up' is not recognized")),
            "{unknown:?}"
        );
        let logs = modify(
            APPLICATION,
            &mut set,
            vec![attribute("access_logs.s3.enabled", "true")],
            "Load balancer",
        );
        assert!(matches!(logs, Err(Elbv2Error::Unsupported(_))));
        let out_of_range = modify(
            APPLICATION,
            &mut set,
            vec![attribute("idle_timeout.timeout_seconds", "0")],
            "Load balancer",
        );
        assert!(matches!(out_of_range, Err(Elbv2Error::ValidationError(_))));
        modify(
            APPLICATION,
            &mut set,
            vec![
                attribute("idle_timeout.timeout_seconds", "30"),
                attribute("access_logs.s3.enabled", "false"),
            ],
            "Load balancer",
        )
        .unwrap();
        assert_eq!(
            value(APPLICATION, &set, "idle_timeout.timeout_seconds"),
            "30"
        );
        assert_eq!(
            value(APPLICATION, &set, "deletion_protection.enabled"),
            "false"
        );
        let described = describe(APPLICATION, &set);
        assert_eq!(
            described["Attributes"].as_array().unwrap().len(),
            APPLICATION.len()
        );
    }
}
