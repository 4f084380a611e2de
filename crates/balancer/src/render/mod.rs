//! `haproxy.cfg` of one balancer, rendered from a checked spec by a pure function.
//!
//! - `global`: daemon, a pid file, the runtime API on a private stats socket (mode 600,
//!   level admin), an unprivileged user and an empty chroot.
//! - `defaults`: timeouts (the idle timeout both ways), retries on another target when a
//!   connection fails.
//! - a `frontend` per listener, binding every address of the balancer, with its rules and
//!   default action (`frontend.rs`); weighted forwards pick a group from one random draw
//!   per request (connection, for TCP). User strings are quoted by `quote.rs`.
//! - a `backend` per target group: algorithm, health check, stickiness, and
//!   [`slots`] empty `server-template` slots, disabled. Targets are not in the config: the
//!   driver fills slots through the runtime API (`set server … addr … port …`), so target
//!   changes never reload HAProxy; the config changes only with the listeners, the groups'
//!   settings, or the number of slots.

use std::fmt::Write;
use std::path::PathBuf;

use crate::spec::{Algorithm, Checked, HealthCheckProtocol, Protocol, TargetGroup};

mod frontend;
mod quote;

/// Where one balancer's HAProxy keeps its files, and the user it runs as. The driver
/// checks that the directory's path is plain (`[A-Za-z0-9/._-]`) before rendering.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub user: String,
}

impl Layout {
    pub fn config(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }
    pub fn pid(&self) -> PathBuf {
        self.dir.join("haproxy.pid")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir.join("admin.sock")
    }
    /// An empty directory HAProxy chroots into once it has bound its sockets.
    pub fn chroot(&self) -> PathBuf {
        self.dir.join("empty")
    }
}

/// The prefix of the slots' server names: `slot1` … `slotN`.
const SLOT_PREFIX: &str = "slot";

/// How many slots a group of `targets` targets gets: room for each target and as many
/// draining ones, at least 16, a power of two (so the config, and HAProxy, change rarely).
fn slots(targets: usize) -> usize {
    (targets * 2).next_power_of_two().max(16)
}

fn mode(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Http => "http",
        Protocol::Tcp => "tcp",
    }
}

/// The whole `haproxy.cfg` of a balancer.
pub fn render(checked: Checked<'_>, layout: &Layout) -> String {
    let spec = checked.spec();
    let mut out = format!("# nimbus: load balancer {}\n", spec.balancer_id);
    out.push_str("global\n    daemon\n");
    let _ = writeln!(out, "    user {0}\n    group {0}", layout.user);
    let _ = writeln!(out, "    chroot {}", layout.chroot().display());
    let _ = writeln!(out, "    pidfile {}", layout.pid().display());
    let _ = writeln!(
        out,
        "    stats socket {} mode 600 level admin",
        layout.socket().display()
    );
    // A replaced process lets its connections finish, for as long as a drain could last.
    let longest_drain = spec
        .target_groups
        .iter()
        .map(|g| g.deregistration_delay_secs)
        .max()
        .unwrap_or(0);
    let _ = writeln!(out, "    hard-stop-after {}s", longest_drain.max(5));
    out.push_str("\ndefaults\n    timeout connect 5s\n");
    let _ = writeln!(
        out,
        "    timeout client {0}s\n    timeout server {0}s\n    timeout http-keep-alive {0}s",
        spec.idle_timeout_secs
    );
    out.push_str("    timeout http-request 60s\n    retries 2\n    option redispatch 1\n");
    for listener in &spec.listeners {
        out.push_str(&frontend::frontend(listener, spec));
    }
    for group in &spec.target_groups {
        out.push_str(&backend(group));
    }
    out
}

fn backend(group: &TargetGroup) -> String {
    let mut out = format!(
        "\nbackend {}\n    mode {}\n",
        group.id,
        mode(group.protocol)
    );
    let balance = match group.algorithm {
        Algorithm::RoundRobin => "roundrobin",
        Algorithm::LeastOutstandingRequests => "leastconn",
    };
    let _ = writeln!(out, "    balance {balance}");
    let check = &group.health_check;
    let _ = writeln!(out, "    timeout check {}s", check.timeout_secs);
    if let HealthCheckProtocol::Http { path, matcher } = &check.protocol {
        out.push_str("    option httpchk\n");
        let _ = writeln!(
            out,
            "    http-check send meth GET uri {} ver HTTP/1.0 hdr User-Agent ELB-HealthChecker/2.0",
            path.as_str()
        );
        let _ = writeln!(out, "    http-check expect status {matcher}");
    }
    if let Some(secs) = group.stickiness_secs {
        // Dynamic cookies are a hash of the key and the target's address, so they follow
        // targets from slot to slot.
        let _ = writeln!(
            out,
            "    cookie AWSALB insert indirect nocache httponly dynamic maxlife {secs}s"
        );
        let _ = writeln!(out, "    dynamic-cookie-key {}", group.id);
    }
    let _ = write!(
        out,
        "    default-server check inter {}s rise {} fall {}",
        check.interval_secs, check.healthy_threshold, check.unhealthy_threshold
    );
    if let Some(port) = check.port {
        let _ = write!(out, " port {port}");
    }
    let _ = writeln!(
        out,
        "\n    server-template {SLOT_PREFIX} 1-{} 0.0.0.0:0 disabled",
        slots(group.targets.len())
    );
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rules::WeightedGroup;
    use crate::spec::check;
    use crate::spec::tests::{spec, weights};

    pub(crate) fn layout() -> Layout {
        Layout {
            dir: "/var/lib/nimbus/balancer/app-0a1b".into(),
            user: "haproxy".into(),
        }
    }

    #[test]
    fn the_config_has_the_runtime_api_a_frontend_per_listener_and_slots_per_group() {
        let spec = spec();
        let config = render(check(&spec).expect("checked"), &layout());
        let expected = "\
# nimbus: load balancer app-0a1b
global
    daemon
    user haproxy
    group haproxy
    chroot /var/lib/nimbus/balancer/app-0a1b/empty
    pidfile /var/lib/nimbus/balancer/app-0a1b/haproxy.pid
    stats socket /var/lib/nimbus/balancer/app-0a1b/admin.sock mode 600 level admin
    hard-stop-after 300s

defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    timeout http-request 60s
    retries 2
    option redispatch 1

frontend listener-80
    mode http
    bind 10.0.1.5:80
    bind 10.0.2.5:80
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port 80
    default_backend tg-web

frontend listener-5432
    mode tcp
    bind 10.0.1.5:5432
    bind 10.0.2.5:5432
    default_backend tg-db

backend tg-web
    mode http
    balance roundrobin
    timeout check 2s
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.0 hdr User-Agent ELB-HealthChecker/2.0
    http-check expect status 200-299
    default-server check inter 5s rise 3 fall 2
    server-template slot 1-16 0.0.0.0:0 disabled

backend tg-db
    mode tcp
    balance leastconn
    timeout check 2s
    default-server check inter 5s rise 3 fall 2
    server-template slot 1-16 0.0.0.0:0 disabled
";
        assert_eq!(config, expected);
        haproxy_accepts(&config);
    }

    #[test]
    fn weights_split_one_draw_and_stickiness_uses_dynamic_cookies() {
        let mut spec = spec();
        let mut second = spec.target_groups[0].clone();
        second.id = "tg-api".into();
        second.stickiness_secs = Some(3600);
        second.health_check.port = Some(9000);
        second.targets = (0..9)
            .map(|i| crate::Target {
                ip: std::net::Ipv4Addr::new(10, 0, 3, i),
                port: 80,
            })
            .collect();
        spec.target_groups.push(second);
        *weights(&mut spec, 0) = vec![
            WeightedGroup {
                target_group_id: "tg-web".into(),
                weight: 70,
            },
            WeightedGroup {
                target_group_id: "tg-db".into(),
                weight: 0,
            },
            WeightedGroup {
                target_group_id: "tg-api".into(),
                weight: 30,
            },
        ];
        spec.listeners.truncate(1);
        spec.target_groups.retain(|g| g.id != "tg-db");
        weights(&mut spec, 0).retain(|w| w.target_group_id != "tg-db");
        let config = render(check(&spec).expect("checked"), &layout());
        haproxy_accepts(&config);
        assert!(config.contains(
            "    http-request set-var(txn.nimbus_pick) rand\n    use_backend tg-web if { var(txn.nimbus_pick) -m int lt 3006477107 }\n    default_backend tg-api\n"
        ));
        assert!(config.contains(
            "    cookie AWSALB insert indirect nocache httponly dynamic maxlife 3600s\n    dynamic-cookie-key tg-api\n    default-server check inter 5s rise 3 fall 2 port 9000\n    server-template slot 1-32 0.0.0.0:0 disabled\n"
        ));
    }

    /// HAProxy's own check of a rendered config, where HAProxy is installed.
    pub(crate) fn haproxy_accepts(config: &str) {
        let installed = std::process::Command::new("haproxy")
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            return;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("haproxy.cfg");
        let config = config.replace(
            "/var/lib/nimbus/balancer/app-0a1b",
            &dir.path().display().to_string(),
        );
        std::fs::write(&path, config).expect("config");
        let out = std::process::Command::new("haproxy")
            .args(["-c", "-f"])
            .arg(&path)
            .output()
            .expect("haproxy -c");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn slots_leave_room_for_as_many_draining_targets() {
        assert_eq!(slots(0), 16);
        assert_eq!(slots(8), 16);
        assert_eq!(slots(9), 32);
        assert_eq!(slots(100), 256);
    }
}
