//! What a load balancer should be, as plain typed data: the elbv2 service computes a whole
//! [`BalancerSpec`] from its records and hands it to a [`crate::BalancerDriver`].
//!
//! Everything that reaches HAProxy's config is checked before it is rendered: IDs and the
//! namespace name by [`check`], health check paths and status matchers by their
//! constructors ([`HealthCheckPath::new`], [`Matcher::parse`]), listener rules' strings by
//! theirs (`rules.rs`); addresses and ports are typed. No string a user typed reaches
//! HAProxy unchecked.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

use crate::rules::{check_listener, Action, Rule};
use crate::{Error, Result};

/// One load balancer: one HAProxy process in its VPC's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalancerSpec {
    /// Names the balancer on this host (its files, its HAProxy): lowercase letters, digits
    /// and dashes, starting with a letter (`app-50dc6c495c0c9188`, say).
    pub balancer_id: String,
    /// The VPC's network namespace (`ip netns` name, `nimbus-vpc-…` as the network driver
    /// makes it), which must already hold every listen address.
    pub namespace: String,
    /// Where listeners accept connections: one private IP per subnet of the balancer, and
    /// its public IP when internet-facing. At least one.
    pub addresses: Vec<Ipv4Addr>,
    /// How long a connection may stay idle, both sides (AWS's `idle_timeout.timeout_seconds`).
    pub idle_timeout_secs: u32,
    pub listeners: Vec<Listener>,
    pub target_groups: Vec<TargetGroup>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Http,
    Tcp,
}

/// A port accepting connections on every address of the balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub protocol: Protocol,
    /// Evaluated in ascending priority; the first whose conditions all match acts.
    /// HTTP listeners only (a TCP listener with rules fails [`check`]).
    pub rules: Vec<Rule>,
    /// What a request no rule matched gets (TCP listeners: only [`Action::Forward`]).
    pub default_action: Action,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    /// Names the group's HAProxy backend: same rule as [`BalancerSpec::balancer_id`].
    pub id: String,
    pub protocol: Protocol,
    /// The port targets registered without one are reached on (targets here always carry
    /// theirs; the elbv2 service fills it in).
    pub port: u16,
    pub targets: Vec<Target>,
    pub health_check: HealthCheck,
    pub algorithm: Algorithm,
    /// How long a deregistered target keeps its connections (0–3600 s); it is released as
    /// soon as it has none.
    pub deregistration_delay_secs: u32,
    /// `lb_cookie` stickiness: its duration in seconds (1 s – 7 days), or none.
    pub stickiness_secs: Option<u32>,
}

/// Where a target listens, in the VPC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ip, self.port)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    /// AWS's least outstanding requests, as HAProxy's `leastconn`.
    LeastOutstandingRequests,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub protocol: HealthCheckProtocol,
    /// The port checked, or the target's own port (AWS's `traffic-port`).
    pub port: Option<u16>,
    /// Seconds between checks (1–300).
    pub interval_secs: u32,
    /// Seconds a check may take (1–120, at most the interval).
    pub timeout_secs: u32,
    /// Consecutive successes that make a target healthy (2–10).
    pub healthy_threshold: u32,
    /// Consecutive failures that make a target unhealthy (2–10).
    pub unhealthy_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthCheckProtocol {
    /// A connection that opens is healthy.
    Tcp,
    /// `GET path` answered with a status the matcher accepts.
    Http {
        path: HealthCheckPath,
        matcher: Matcher,
    },
}

/// A health check path: starts with `/`, at most 1,024 characters, only URL characters
/// that mean nothing to HAProxy's config parser (no quotes, backslash, `#`, `$`, spaces).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckPath(String);

impl HealthCheckPath {
    pub fn new(path: &str) -> Result<HealthCheckPath> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~%!&()*+,;=:@?".contains(c);
        if path.starts_with('/') && path.len() <= 1024 && path.chars().all(allowed) {
            Ok(HealthCheckPath(path.to_owned()))
        } else {
            Err(Error::Invalid(format!(
                "{path:?} is not a health check path"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The HTTP codes a health check accepts, as AWS's matcher writes them: `200`, `200-299`,
/// `200,202`, codes 200–499.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

impl Matcher {
    pub fn parse(text: &str) -> Result<Matcher> {
        let invalid = || Error::Invalid(format!("{text:?} is not an HTTP code matcher"));
        let code = |s: &str| -> Result<u16> {
            let ok = s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit());
            let code: u16 = s.parse().map_err(|_| invalid())?;
            if ok && (200..=499).contains(&code) {
                Ok(code)
            } else {
                Err(invalid())
            }
        };
        let ranges = text
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (code(low)?, code(high)?);
                    if low <= high {
                        Ok((low, high))
                    } else {
                        Err(invalid())
                    }
                }
                None => code(part).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Matcher(ranges))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (low, high)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if low == high {
                write!(f, "{sep}{low}")?;
            } else {
                write!(f, "{sep}{low}-{high}")?;
            }
        }
        Ok(())
    }
}

/// A spec that passed [`check`]: the only input [`crate::render`] takes.
#[derive(Clone, Copy, Debug)]
pub struct Checked<'a>(pub(crate) &'a BalancerSpec);

impl Checked<'_> {
    pub(crate) fn spec(&self) -> &BalancerSpec {
        self.0
    }
}

/// An ID as a name HAProxy and the file system take as is: `[a-z][a-z0-9-]*`, at most 64
/// characters, not ending in a dash.
pub fn check_id(id: &str) -> Result<()> {
    let ok = id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{id:?} is not a balancer or target group ID"
        )))
    }
}

pub(crate) fn within(what: &str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<()> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} {value} is outside {}–{}",
            range.start(),
            range.end()
        )))
    }
}

fn port(what: &str, port: u16) -> Result<()> {
    within(what, port.into(), 1..=65535)
}

/// Checks everything of a spec that reaches HAProxy, once, before anything is rendered.
pub fn check(spec: &BalancerSpec) -> Result<Checked<'_>> {
    check_id(&spec.balancer_id)?;
    let ns_ok = (1..=64).contains(&spec.namespace.len())
        && !spec.namespace.starts_with('.')
        && spec
            .namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ns_ok {
        return Err(Error::Invalid(format!(
            "{:?} is not a network namespace name",
            spec.namespace
        )));
    }
    if spec.addresses.is_empty() {
        return Err(Error::Invalid(format!(
            "{} has no address",
            spec.balancer_id
        )));
    }
    let addresses: BTreeSet<_> = spec.addresses.iter().collect();
    if addresses.len() != spec.addresses.len() || addresses.iter().any(|a| a.is_unspecified()) {
        return Err(Error::Invalid(format!(
            "{} has a repeated or unspecified address",
            spec.balancer_id
        )));
    }
    within("the idle timeout", spec.idle_timeout_secs, 1..=4000)?;
    let mut groups = BTreeSet::new();
    for group in &spec.target_groups {
        check_group(group)?;
        if !groups.insert(group.id.as_str()) {
            return Err(Error::Invalid(format!("{} is given twice", group.id)));
        }
    }
    let mut ports = BTreeSet::new();
    for listener in &spec.listeners {
        port("a listener port", listener.port)?;
        if !ports.insert(listener.port) {
            return Err(Error::Invalid(format!(
                "two listeners on port {}",
                listener.port
            )));
        }
        check_listener(listener, &spec.target_groups)?;
    }
    Ok(Checked(spec))
}

fn check_group(group: &TargetGroup) -> Result<()> {
    check_id(&group.id)?;
    port("a target group port", group.port)?;
    let mut targets = BTreeSet::new();
    for target in &group.targets {
        port("a target port", target.port)?;
        if target.ip.is_unspecified() || !targets.insert(target) {
            return Err(Error::Invalid(format!(
                "{target} is not a target {} can take",
                group.id
            )));
        }
    }
    let check = &group.health_check;
    if let Some(check_port) = check.port {
        port("a health check port", check_port)?;
    }
    within("a health check interval", check.interval_secs, 1..=300)?;
    within("a health check timeout", check.timeout_secs, 1..=120)?;
    if check.timeout_secs > check.interval_secs {
        return Err(Error::Invalid(format!(
            "{}'s health check timeout is longer than its interval",
            group.id
        )));
    }
    within("a healthy threshold", check.healthy_threshold, 2..=10)?;
    within("an unhealthy threshold", check.unhealthy_threshold, 2..=10)?;
    within(
        "a deregistration delay",
        group.deregistration_delay_secs,
        0..=3600,
    )?;
    if let Some(secs) = group.stickiness_secs {
        within("a stickiness duration", secs, 1..=604_800)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rules::WeightedGroup;

    /// Forwards to one group.
    pub(crate) fn forward(group: &str) -> Action {
        Action::Forward {
            groups: vec![WeightedGroup {
                target_group_id: group.into(),
                weight: 1,
            }],
            stickiness_secs: None,
        }
    }

    /// The weighted groups of a listener's default forward.
    pub(crate) fn weights(spec: &mut BalancerSpec, listener: usize) -> &mut Vec<WeightedGroup> {
        match &mut spec.listeners[listener].default_action {
            Action::Forward { groups, .. } => groups,
            other => panic!("not a forward: {other:?}"),
        }
    }

    /// An HTTP balancer with one group of two targets, and a TCP one with one.
    pub(crate) fn spec() -> BalancerSpec {
        let health = |protocol| HealthCheck {
            protocol,
            port: None,
            interval_secs: 5,
            timeout_secs: 2,
            healthy_threshold: 3,
            unhealthy_threshold: 2,
        };
        BalancerSpec {
            balancer_id: "app-0a1b".into(),
            namespace: "nimbus-vpc-0a".into(),
            addresses: vec![Ipv4Addr::new(10, 0, 1, 5), Ipv4Addr::new(10, 0, 2, 5)],
            idle_timeout_secs: 60,
            listeners: vec![
                Listener {
                    port: 80,
                    protocol: Protocol::Http,
                    rules: Vec::new(),
                    default_action: forward("tg-web"),
                },
                Listener {
                    port: 5432,
                    protocol: Protocol::Tcp,
                    rules: Vec::new(),
                    default_action: forward("tg-db"),
                },
            ],
            target_groups: vec![
                TargetGroup {
                    id: "tg-web".into(),
                    protocol: Protocol::Http,
                    port: 8080,
                    targets: vec![
                        Target {
                            ip: Ipv4Addr::new(10, 0, 1, 10),
                            port: 8080,
                        },
                        Target {
                            ip: Ipv4Addr::new(10, 0, 2, 10),
                            port: 8080,
                        },
                    ],
                    health_check: health(HealthCheckProtocol::Http {
                        path: HealthCheckPath::new("/health").expect("path"),
                        matcher: Matcher::parse("200-299").expect("matcher"),
                    }),
                    algorithm: Algorithm::RoundRobin,
                    deregistration_delay_secs: 300,
                    stickiness_secs: None,
                },
                TargetGroup {
                    id: "tg-db".into(),
                    protocol: Protocol::Tcp,
                    port: 5432,
                    targets: vec![Target {
                        ip: Ipv4Addr::new(10, 0, 1, 20),
                        port: 5432,
                    }],
                    health_check: health(HealthCheckProtocol::Tcp),
                    algorithm: Algorithm::LeastOutstandingRequests,
                    deregistration_delay_secs: 0,
                    stickiness_secs: None,
                },
            ],
        }
    }

    #[test]
    fn a_good_spec_passes() {
        assert!(check(&spec()).is_ok());
    }

    #[test]
    fn names_paths_and_codes_that_could_reach_haproxy_are_refused() {
        for bad in [
            "",
            "App-1",
            "a b",
            "tg-1\n",
            "tg-\"x",
            "-tg",
            "tg-",
            &"a".repeat(65),
        ] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for bad in [
            "health", "/a b", "/a\"b", "/a#b", "/$HOME", "/a\\b", "/a'b", "/\n",
        ] {
            assert!(HealthCheckPath::new(bad).is_err(), "{bad:?}");
        }
        assert!(HealthCheckPath::new("/api/health?x=1&y=%20").is_ok());
        for bad in [
            "", "20", "2000", "199", "500", "299-200", "200-", "200,,201", "2x0", " 200",
        ] {
            assert!(Matcher::parse(bad).is_err(), "{bad:?}");
        }
        let matcher = Matcher::parse("200,202-299,404").expect("matcher");
        assert_eq!(matcher.to_string(), "200,202-299,404");
    }

    #[test]
    fn inconsistent_specs_are_refused() {
        type Change = Box<dyn Fn(&mut BalancerSpec)>;
        let cases: Vec<(&str, Change)> = vec![
            ("namespace", Box::new(|s| s.namespace = "../etc".into())),
            ("namespace", Box::new(|s| s.namespace = "a b".into())),
            ("no address", Box::new(|s| s.addresses.clear())),
            (
                "repeated address",
                Box::new(|s| s.addresses.push(s.addresses[0])),
            ),
            ("idle", Box::new(|s| s.idle_timeout_secs = 0)),
            (
                "two listeners",
                Box::new(|s| s.listeners[1].port = s.listeners[0].port),
            ),
            (
                "unknown group",
                Box::new(|s| weights(s, 0)[0].target_group_id = "tg-x".into()),
            ),
            (
                "protocol",
                Box::new(|s| weights(s, 0)[0].target_group_id = "tg-db".into()),
            ),
            ("weights", Box::new(|s| weights(s, 0)[0].weight = 0)),
            ("weight", Box::new(|s| weights(s, 0)[0].weight = 1000)),
            (
                "port 0",
                Box::new(|s| s.target_groups[0].targets[0].port = 0),
            ),
            (
                "duplicate target",
                Box::new(|s| {
                    let t = s.target_groups[0].targets[0];
                    s.target_groups[0].targets.push(t)
                }),
            ),
            (
                "timeout",
                Box::new(|s| s.target_groups[0].health_check.timeout_secs = 6),
            ),
            (
                "threshold",
                Box::new(|s| s.target_groups[0].health_check.healthy_threshold = 1),
            ),
            (
                "delay",
                Box::new(|s| s.target_groups[0].deregistration_delay_secs = 3601),
            ),
            (
                "stickiness",
                Box::new(|s| s.target_groups[0].stickiness_secs = Some(0)),
            ),
            (
                "duplicate group",
                Box::new(|s| {
                    let g = s.target_groups[0].clone();
                    s.target_groups.push(g)
                }),
            ),
        ];
        for (what, change) in cases {
            let mut spec = spec();
            change(&mut spec);
            assert!(check(&spec).is_err(), "{what}");
        }
    }
}
