//! The load balancer's cost, measured on the host (run by `bench/loadbalancer/run.sh`, as
//! root). Targets are HAProxy responders (`http-request return`, one thread each) in
//! network namespaces of their own, reached over veth pairs from the balancer's namespace,
//! where wrk runs too. In the same run, alternating:
//! - wrk straight to one target;
//! - wrk through a balancer made by `HaproxyBalancers` forwarding to two targets;
//! - wrk through a bare HAProxy started by hand on the same rendered config (its slots
//!   written as plain `server` lines);
//!
//! then the time from `apply` with a new target to the target reported healthy, and from a
//! target's death to the last request HAProxy routed to it (its slot's `lbtot`, polled),
//! with the failed client requests meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use balancer::{
    check, render, Action, Algorithm, BalancerDriver, BalancerSpec, HaproxyBalancers, HealthCheck,
    HealthCheckPath, HealthCheckProtocol, Layout, Listener, Matcher, Protocol, Target, TargetGroup,
    TargetState, WeightedGroup,
};

const BALANCER: &str = "bench-lb";
const GROUP: &str = "tg-bench";
const VIP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const BARE_VIP: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);
const TARGET_PORT: u16 = 8080;
const ROUNDS: usize = 3;
const WRK: [&str; 5] = ["-t1", "-c16", "-d10s", "--latency", "--timeout=5s"];
/// AWS's shortest health check settings.
const INTERVAL_SECS: u32 = 5;
const THRESHOLD: u32 = 2;

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The balancer's namespace and one namespace per target, all removed when dropped.
struct Lab {
    ns: String,
    targets: Vec<String>,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            ns: format!("lbbench-{}", std::process::id()),
            targets: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let ns = &lab.ns;
        sh(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip -n {ns} address add {VIP}/32 dev lo && ip -n {ns} address add {BARE_VIP}/32 dev lo"
        ));
        lab
    }

    /// Target `n` (1–250): 10.88.n.2 in a namespace of its own, answering `t<n>`.
    fn add_target(&mut self, n: u8) -> Target {
        let (ns, target_ns) = (&self.ns, format!("{}-t{n}", self.ns));
        let ip = Ipv4Addr::new(10, 88, n, 2);
        self.targets.push(target_ns.clone());
        sh(&format!(
            "ip netns add {target_ns} && ip -n {target_ns} link set lo up && \
             ip -n {ns} link add t{n} type veth peer name eth0 netns {target_ns} && \
             ip -n {ns} address add 10.88.{n}.1/24 dev t{n} && ip -n {ns} link set t{n} up && \
             ip -n {target_ns} address add {ip}/24 dev eth0 && ip -n {target_ns} link set eth0 up"
        ));
        let config = self.dir.path().join(format!("t{n}.cfg"));
        std::fs::write(
            &config,
            format!(
                "global\n    nbthread 1\ndefaults\n    mode http\n    timeout client 30s\n    \
                 timeout server 30s\n    timeout connect 5s\nfrontend target\n    bind {ip}:{TARGET_PORT}\n    \
                 http-request return status 200 content-type text/plain string t{n}\n"
            ),
        )
        .expect("target config");
        sh(&format!(
            "ip netns exec {target_ns} haproxy -D -f {} -p {}",
            config.display(),
            self.target_pid(n).display()
        ));
        Target {
            ip,
            port: TARGET_PORT,
        }
    }

    fn target_pid(&self, n: u8) -> PathBuf {
        self.dir.path().join(format!("t{n}.pid"))
    }

    fn kill_target(&self, n: u8) {
        let pid = std::fs::read_to_string(self.target_pid(n)).expect("pid file");
        sh(&format!("kill -9 {}", pid.trim()));
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("balancers")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.targets.iter().chain([&self.ns]) {
            let _ = Command::new("sh")
                .args([
                    "-c",
                    &format!("ip netns pids {ns} | xargs -r kill -9; ip netns del {ns}"),
                ])
                .status();
        }
    }
}

fn spec(ns: &str, targets: Vec<Target>) -> BalancerSpec {
    BalancerSpec {
        balancer_id: BALANCER.into(),
        namespace: ns.into(),
        addresses: vec![VIP],
        idle_timeout_secs: 60,
        listeners: vec![Listener {
            port: 80,
            protocol: Protocol::Http,
            rules: Vec::new(),
            default_action: Action::Forward {
                groups: vec![WeightedGroup {
                    target_group_id: GROUP.into(),
                    weight: 1,
                }],
                stickiness_secs: None,
            },
            server_header: true,
        }],
        target_groups: vec![TargetGroup {
            id: GROUP.into(),
            protocol: Protocol::Http,
            port: TARGET_PORT,
            targets,
            health_check: HealthCheck {
                protocol: HealthCheckProtocol::Http {
                    path: HealthCheckPath::new("/").expect("path"),
                    matcher: Matcher::parse("200").expect("matcher"),
                },
                port: None,
                interval_secs: INTERVAL_SECS,
                timeout_secs: 2,
                healthy_threshold: THRESHOLD,
                unhealthy_threshold: THRESHOLD,
            },
            algorithm: Algorithm::RoundRobin,
            deregistration_delay_secs: 0,
            stickiness_secs: None,
        }],
    }
}

/// The same config as the balancer's, on the other address, its slots written as plain
/// servers, started by hand.
fn start_bare(lab: &Lab, spec: &BalancerSpec) {
    let mut bare = spec.clone();
    bare.balancer_id = "bench-bare".into();
    bare.addresses = vec![BARE_VIP];
    let layout = Layout {
        dir: lab.dir.path().join("bare"),
        user: "haproxy".into(),
    };
    std::fs::create_dir_all(layout.chroot()).expect("bare dir");
    let servers: String = spec.target_groups[0]
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| format!("    server t{i} {t} check\n"))
        .collect();
    let config = render(check(&bare).expect("checked"), &layout)
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("server-template") {
                servers.clone()
            } else {
                format!("{line}\n")
            }
        })
        .collect::<String>();
    std::fs::write(layout.config(), config).expect("bare config");
    sh(&format!(
        "ip netns exec {} haproxy -f {}",
        lab.ns,
        layout.config().display()
    ));
}

#[derive(Clone, Copy, Debug, Default)]
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// wrk's `2.50ms`, `812.00us`, `1.02s` in milliseconds.
fn millis(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "s" => number * 1000.0,
        _ => number,
    }
}

fn wrk(ns: &str, ip: Ipv4Addr, port: u16) -> Load {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "wrk"])
        .args(WRK)
        .arg(format!("http://{ip}:{port}/"))
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{text}"
    );
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {label} in {text}"))
    };
    Load {
        requests_per_sec: field("Requests/sec:").parse().unwrap_or(f64::NAN),
        p50_ms: millis(&field("50%")),
        p99_ms: millis(&field("99%")),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_load(loads: &[Load]) -> Load {
    Load {
        requests_per_sec: median(loads.iter().map(|l| l.requests_per_sec).collect()),
        p50_ms: median(loads.iter().map(|l| l.p50_ms).collect()),
        p99_ms: median(loads.iter().map(|l| l.p99_ms).collect()),
    }
}

async fn wait_state(driver: &HaproxyBalancers, target: Target, state: TargetState) {
    loop {
        let health = driver.target_health(BALANCER).await.expect("health");
        if health
            .iter()
            .any(|h| h.target == target && h.state == state)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many times HAProxy chose `target`'s slot, from its runtime API.
fn routed_to(socket: &Path, target: Target) -> u64 {
    let mut stream = UnixStream::connect(socket).expect("runtime socket");
    stream.write_all(b"show stat\n").expect("command");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("answer");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .expect("header")
        .split(',')
        .collect();
    let column = |name: &str| header.iter().position(|c| *c == name).expect("column");
    let (addr, lbtot) = (column("addr"), column("lbtot"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f.get(addr) == Some(&target.to_string().as_str()))
        .and_then(|f| f.get(lbtot)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let mut lab = Lab::new();
    let one = lab.add_target(1);
    let two = lab.add_target(2);
    let driver = HaproxyBalancers::new(lab.state_dir());
    let two_targets = spec(&lab.ns, vec![one, two]);
    driver.apply(&two_targets).await.expect("apply");
    wait_state(&driver, one, TargetState::Healthy).await;
    wait_state(&driver, two, TargetState::Healthy).await;
    start_bare(&lab, &two_targets);

    let paths: [(&str, Ipv4Addr, u16); 3] = [
        ("direct to one target", one.ip, TARGET_PORT),
        ("nimbus balancer (HaproxyBalancers), 2 targets", VIP, 80),
        ("bare HAProxy, same config, 2 targets", BARE_VIP, 80),
    ];
    let mut loads: Vec<Vec<Load>> = vec![Vec::new(); paths.len()];
    for round in 0..ROUNDS {
        for i in 0..paths.len() {
            let k = (i + round) % paths.len();
            let (_, ip, port) = paths[k];
            loads[k].push(wrk(&lab.ns, ip, port));
        }
    }
    let [direct, nimbus, bare] = [0, 1, 2].map(|k| median_load(&loads[k]));
    println!(
        "wrk {} from the balancer's namespace; {ROUNDS} rounds, alternating; medians. Targets: HAProxy \
         `http-request return` responders, one thread each, in namespaces of their own over veth pairs.",
        WRK.join(" ")
    );
    println!();
    println!("| path | requests/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for ((name, _, _), load) in paths.iter().zip([direct, nimbus, bare]) {
        println!(
            "| {name} | {:.0} | {:.3} | {:.3} |",
            load.requests_per_sec, load.p50_ms, load.p99_ms
        );
    }
    println!();
    println!(
        "nimbus / direct throughput: {:.2} (target ≥ 0.8); p50 added: {:.3} ms (target < 1 ms); \
         nimbus / bare HAProxy throughput: {:.3} (target within 5%).",
        nimbus.requests_per_sec / direct.requests_per_sec,
        nimbus.p50_ms - direct.p50_ms,
        nimbus.requests_per_sec / bare.requests_per_sec
    );
    println!();

    // A target added: from apply to healthy, three times (removed in between).
    let three = lab.add_target(3);
    let mut to_healthy = Vec::new();
    for _ in 0..ROUNDS {
        let with_three = spec(&lab.ns, vec![one, two, three]);
        let start = Instant::now();
        driver.apply(&with_three).await.expect("apply a new target");
        wait_state(&driver, three, TargetState::Healthy).await;
        to_healthy.push(start.elapsed().as_secs_f64());
        driver.apply(&two_targets).await.expect("apply without it");
    }

    // A target's death under load: when HAProxy last chose it, and what clients saw.
    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns,
            "curl",
            "-sS",
            "-N",
            "-w",
            " %{http_code}\\n",
        ])
        .arg(format!("http://{VIP}/?[1-10000000]"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl runs");
    let answers = Arc::new(Mutex::new((0u64, 0u64)));
    let counted = answers.clone();
    let stdout = client.stdout.take().expect("curl's output");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let mut counts = counted.lock().unwrap_or_else(|e| e.into_inner());
            counts.0 += 1;
            if !line.ends_with(" 200") || !line.starts_with('t') {
                counts.1 += 1;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let socket = lab.state_dir().join(BALANCER).join("admin.sock");
    let mut routed = routed_to(&socket, two);
    let before = *answers.lock().unwrap_or_else(|e| e.into_inner());
    lab.kill_target(2);
    let killed = Instant::now();
    let mut last_routed = Duration::ZERO;
    let mut unhealthy_after = None;
    // Until HAProxy has marked it down and one more check interval has passed.
    while unhealthy_after.is_none_or(|after: Duration| {
        killed.elapsed() < after + Duration::from_secs(INTERVAL_SECS.into())
    }) {
        let now = routed_to(&socket, two);
        if now != routed {
            routed = now;
            last_routed = killed.elapsed();
        }
        if unhealthy_after.is_none() {
            let health = driver.target_health(BALANCER).await.expect("health");
            let down = health
                .iter()
                .any(|h| h.target == two && matches!(h.state, TargetState::Unhealthy(_)));
            if down {
                unhealthy_after = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = *answers.lock().unwrap_or_else(|e| e.into_inner());
    let _ = client.kill();
    let _ = client.wait();
    println!("| event (health check every {INTERVAL_SECS} s, thresholds {THRESHOLD}) | seconds |");
    println!("|---|---|");
    println!(
        "| apply with a new target → reported healthy (median of {ROUNDS}: {}) | {:.2} |",
        to_healthy
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        median(to_healthy.clone())
    );
    println!(
        "| target killed (kill -9) → last request HAProxy routed to it | {:.2} |",
        last_routed.as_secs_f64()
    );
    println!(
        "| target killed → reported unhealthy | {:.2} |",
        unhealthy_after.unwrap_or_default().as_secs_f64()
    );
    println!();
    println!(
        "Client requests meanwhile (curl, one connection): {} answered, {} failed (a refused \
         connection is retried on the other target: `retries 2`, `option redispatch`).",
        after.0 - before.0,
        after.1 - before.1
    );
    driver.remove(BALANCER).await.expect("remove");
}
