//! The HAProxy driver on the real host: a namespace of the test's own with busybox httpd
//! targets, a balancer applied into it, real requests from inside it. Needs root, `ip`,
//! `haproxy`, busybox and curl; skipped otherwise. Traffic goes only to addresses inside the
//! namespace this test makes.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use balancer::{
    Action, Algorithm, BalancerDriver, BalancerSpec, Condition, ContentType, HaproxyBalancers,
    HeaderName, HealthCheck, HealthCheckPath, HealthCheckProtocol, HttpCodes, Listener, Matcher,
    Method, Pattern, Protocol, Redirect, RedirectParts, Rule, Target, TargetGroup, TargetHealth,
    TargetState, UnhealthyReason, WeightedGroup,
};

const BALANCER: &str = "app-7e57";
const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);

fn can_run() -> bool {
    let tools = ["ip", "haproxy", "busybox", "curl"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    rustix::process::geteuid().is_root() && tools
}

fn ok(script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace with addresses for the balancer and its targets on one end of a veth pair,
/// and the servers started in it; all of it goes when dropped, also when the test fails.
struct Lab {
    ns: String,
    servers: Vec<(Ipv4Addr, Child)>,
    dir: tempfile::TempDir,
}

impl Lab {
    /// `tag` tells apart the labs of tests running at the same time.
    fn new(tag: &str) -> Lab {
        let ns = format!("nbtest-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        let lab = Lab {
            ns,
            servers: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
        };
        ok(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && ip -n {ns} link add d0 type veth peer name d1 && \
             ip -n {ns} link set d0 up && ip -n {ns} link set d1 up && ip -n {ns} address add {VIP}/24 dev d0",
            ns = lab.ns
        ));
        lab
    }

    /// busybox httpd on `ip:port` answering `body` at `/` and `ok` at `/health`.
    fn serve(&mut self, ip: Ipv4Addr, port: u16, body: &str) -> Target {
        let root = self.dir.path().join(format!("www-{ip}-{port}"));
        std::fs::create_dir_all(&root).expect("web root");
        std::fs::write(root.join("index.html"), body).expect("body");
        std::fs::write(root.join("health"), "ok").expect("health");
        ok(&format!("ip -n {} address replace {ip}/24 dev d0", self.ns));
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "busybox", "httpd", "-f"])
            .arg("-p")
            .arg(format!("{ip}:{port}"))
            .arg("-h")
            .arg(&root)
            .spawn()
            .expect("httpd starts");
        self.servers.push((ip, child));
        Target { ip, port }
    }

    fn kill(&mut self, ip: Ipv4Addr) {
        for (_, child) in self.servers.iter_mut().filter(|(i, _)| *i == ip) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The body of `GET /` through the balancer, or what went wrong.
    fn get(&self, port: u16) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sS", "-m", "3"])
            .arg(format!("http://{VIP}:{port}/"))
            .output()
            .expect("curl runs");
        if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            format!("error: {}", String::from_utf8_lossy(&out.stderr).trim())
        }
    }

    /// `GET path` through the balancer with curl's extra `args`: status, headers (names
    /// lowercased) and body.
    fn fetch(&self, port: u16, path: &str, args: &[&str]) -> Response {
        let headers = self.dir.path().join("headers");
        let body = self.dir.path().join("body");
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "curl", "-sS", "-m", "3", "-D"])
            .arg(&headers)
            .arg("-o")
            .arg(&body)
            .args(args)
            .arg(format!("http://{VIP}:{port}{path}"))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let headers = std::fs::read_to_string(headers).expect("headers");
        let status = headers
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status line");
        let headers = headers
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name.to_ascii_lowercase(), value.trim_end().to_owned()))
            .collect();
        Response {
            status,
            headers,
            body: std::fs::read_to_string(body).expect("body"),
        }
    }

    /// The bodies of `count` requests for `/` on one connection (curl's `[1-N]` globbing
    /// makes the URLs), one per line.
    fn many(&self, port: u16, count: usize, args: &[&str]) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "curl", "-sS", "-m", "60", "-w", "\\n",
            ])
            .args(args)
            .arg(format!("http://{VIP}:{port}/?[1-{count}]"))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn bodies(&self, port: u16, count: usize) -> Vec<String> {
        (0..count).map(|_| self.get(port)).collect()
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("balancers")
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.servers {
            let _ = child.kill();
            let _ = child.wait();
        }
        // HAProxy is in the namespace: whatever runs there goes with it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn group(id: &str, protocol: Protocol, targets: Vec<Target>) -> TargetGroup {
    let check = match protocol {
        Protocol::Http => HealthCheckProtocol::Http {
            path: HealthCheckPath::new("/health").expect("path"),
            matcher: Matcher::parse("200").expect("matcher"),
        },
        Protocol::Tcp => HealthCheckProtocol::Tcp,
    };
    TargetGroup {
        id: id.into(),
        protocol,
        port: 8080,
        targets,
        health_check: HealthCheck {
            protocol: check,
            port: None,
            interval_secs: 1,
            timeout_secs: 1,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
        },
        algorithm: Algorithm::RoundRobin,
        deregistration_delay_secs: 1,
        stickiness_secs: None,
    }
}

fn spec(ns: &str, web: Vec<Target>, tcp: Vec<Target>) -> BalancerSpec {
    let forward = |id: &str| Action::Forward {
        groups: vec![WeightedGroup {
            target_group_id: id.into(),
            weight: 1,
        }],
        stickiness_secs: None,
    };
    BalancerSpec {
        balancer_id: BALANCER.into(),
        namespace: ns.into(),
        addresses: vec![VIP],
        idle_timeout_secs: 60,
        listeners: vec![
            Listener {
                port: 80,
                protocol: Protocol::Http,
                rules: Vec::new(),
                default_action: forward("tg-web"),
                server_header: true,
            },
            Listener {
                port: 9000,
                protocol: Protocol::Tcp,
                rules: Vec::new(),
                default_action: forward("tg-tcp"),
                server_header: false,
            },
        ],
        target_groups: vec![
            group("tg-web", Protocol::Http, web),
            group("tg-tcp", Protocol::Tcp, tcp),
        ],
    }
}

fn pid(state_dir: &Path) -> String {
    std::fs::read_to_string(state_dir.join(BALANCER).join("haproxy.pid"))
        .expect("pid file")
        .trim()
        .to_owned()
}

fn runs(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

/// Polls the balancer's target health until `done` holds (15 s at most).
async fn wait_health(
    driver: &HaproxyBalancers,
    what: &str,
    done: impl Fn(&[TargetHealth]) -> bool,
) -> Vec<TargetHealth> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = driver.target_health(BALANCER).await.expect("target health");
        if done(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "{what}: still {health:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn state(health: &[TargetHealth], group: &str, target: Target) -> Option<TargetState> {
    health
        .iter()
        .find(|h| h.target_group_id == group && h.target == target)
        .map(|h| h.state)
}

fn all_healthy(health: &[TargetHealth]) -> bool {
    health.iter().all(|h| h.state == TargetState::Healthy)
}

#[tokio::test]
async fn a_balancer_carries_http_and_tcp_follows_health_and_targets_and_is_readopted() {
    if !can_run() {
        eprintln!("skipped: needs root, ip, haproxy, busybox and curl");
        return;
    }
    let mut lab = Lab::new("a");
    let one = lab.serve(Ipv4Addr::new(10, 77, 0, 11), 8080, "one");
    let two = lab.serve(Ipv4Addr::new(10, 77, 0, 12), 8080, "two");
    let raw = lab.serve(Ipv4Addr::new(10, 77, 0, 14), 7000, "tcp");
    let driver = HaproxyBalancers::new(lab.state_dir());
    let first = spec(&lab.ns, vec![one, two], vec![raw]);
    driver.apply(&first).await.expect("apply");

    // New targets are initial until they pass their checks, then healthy.
    let health = driver.target_health(BALANCER).await.expect("health");
    assert_eq!(health.len(), 3, "{health:?}");
    assert!(
        health.iter().all(|h| h.state != TargetState::Healthy),
        "nothing is healthy before its first checks: {health:?}"
    );
    wait_health(&driver, "both healthy", |h| h.len() == 3 && all_healthy(h)).await;
    let pid_before = pid(&lab.state_dir());

    // Unprivileged, with private files.
    let status = std::fs::read_to_string(format!("/proc/{pid_before}/status")).expect("status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .expect("uid");
    assert_ne!(uid, "0", "HAProxy dropped root");
    let mode = |path: PathBuf| std::fs::metadata(path).expect("file").permissions().mode() & 0o777;
    let files = lab.state_dir().join(BALANCER);
    assert_eq!(mode(files.clone()), 0o700);
    assert_eq!(mode(files.join("admin.sock")), 0o600);

    // Round robin: both bodies, in turn.
    let mut bodies = lab.bodies(80, 4);
    bodies.sort();
    assert_eq!(bodies, ["one", "one", "two", "two"]);
    assert_eq!(lab.get(9000), "tcp", "the TCP listener forwards");

    // A dead target turns unhealthy (connection refused) and gets nothing more.
    lab.kill(one.ip);
    wait_health(&driver, "one unhealthy", |h| {
        state(h, "tg-web", one) == Some(TargetState::Unhealthy(UnhealthyReason::Failed))
    })
    .await;
    assert_eq!(lab.bodies(80, 6), vec!["two"; 6]);

    // New targets: one and two out, three in; traffic follows with no reload.
    let three = lab.serve(Ipv4Addr::new(10, 77, 0, 13), 8080, "three");
    let second = spec(&lab.ns, vec![three], vec![raw]);
    driver.apply(&second).await.expect("apply new targets");
    let health = wait_health(&driver, "three healthy, the others gone", |h| {
        state(h, "tg-web", three) == Some(TargetState::Healthy) && h.len() == 2
    })
    .await;
    assert_eq!(state(&health, "tg-web", two), None, "an idle drain is over");
    assert_eq!(lab.bodies(80, 4), vec!["three"; 4]);
    assert_eq!(
        pid(&lab.state_dir()),
        pid_before,
        "targets changed without a reload"
    );

    // A restart of nimbus: a new driver adopts the running HAProxy.
    drop(driver);
    let driver = HaproxyBalancers::new(lab.state_dir());
    driver.apply(&second).await.expect("apply after a restart");
    assert_eq!(pid(&lab.state_dir()), pid_before, "adopted, not restarted");
    assert!(all_healthy(
        &driver.target_health(BALANCER).await.expect("health")
    ));
    assert_eq!(lab.get(80), "three");

    // A config change replaces the process; the old one leaves once idle.
    let mut third = second.clone();
    third.idle_timeout_secs = 30;
    driver.apply(&third).await.expect("apply a new config");
    let replaced = pid(&lab.state_dir());
    assert_ne!(replaced, pid_before);
    assert_eq!(
        lab.bodies(80, 3),
        vec!["three"; 3],
        "known targets serve at once"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while runs(&pid_before) {
        assert!(Instant::now() < deadline, "the replaced HAProxy stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A crashed HAProxy is started again by the next apply.
    ok(&format!("kill -9 {replaced}"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while runs(&replaced) {
        assert!(Instant::now() < deadline, "the killed HAProxy stays");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    driver.apply(&third).await.expect("apply after a crash");
    let restarted = pid(&lab.state_dir());
    assert_ne!(restarted, replaced);
    assert!(runs(&restarted));
    assert_eq!(lab.get(80), "three");
    assert_eq!(lab.get(9000), "tcp");

    // Removal leaves no process and no file.
    driver.remove(BALANCER).await.expect("remove");
    assert!(!runs(&restarted));
    assert!(!lab.state_dir().join(BALANCER).exists());
    assert!(driver.balancers().await.expect("list").is_empty());
    driver
        .remove(BALANCER)
        .await
        .expect("removing again succeeds");
}

/// Matches paths against `patterns`.
fn paths(patterns: &[&str]) -> Condition {
    Condition::PathPattern(
        patterns
            .iter()
            .map(|p| Pattern::path(p).expect("path pattern"))
            .collect(),
    )
}

fn weighted(groups: &[(&str, u16)], stickiness_secs: Option<u32>) -> Action {
    Action::Forward {
        groups: groups
            .iter()
            .map(|(id, weight)| WeightedGroup {
                target_group_id: (*id).into(),
                weight: *weight,
            })
            .collect(),
        stickiness_secs,
    }
}

/// A body and a header value with everything HAProxy's config syntax reads.
const HOSTILE: &str = "q\"'x %[src] ${HOME} #c\n\\ 100% \\x41";

#[tokio::test]
async fn listener_rules_route_answer_redirect_and_split_by_weight() {
    if !can_run() {
        eprintln!("skipped: needs root, ip, haproxy, busybox and curl");
        return;
    }
    let mut lab = Lab::new("rules");
    let web = lab.serve(Ipv4Addr::new(10, 77, 0, 11), 8080, "web");
    let api = lab.serve(Ipv4Addr::new(10, 77, 0, 12), 8080, "api");
    std::fs::create_dir_all(lab.dir.path().join("www-10.77.0.12-8080/api")).expect("dir");
    std::fs::write(lab.dir.path().join("www-10.77.0.12-8080/api/v1"), "api v1").expect("file");
    let driver = HaproxyBalancers::new(lab.state_dir());
    let mut spec = spec(&lab.ns, vec![web], Vec::new());
    spec.listeners.truncate(1);
    spec.target_groups[1] = group("tg-api", Protocol::Http, vec![api]);
    spec.listeners[0].rules = vec![
        Rule {
            priority: 10,
            conditions: vec![paths(&["/api/*"])],
            action: weighted(&[("tg-api", 1)], None),
        },
        Rule {
            priority: 20,
            conditions: vec![paths(&["/fixed", "/api/fixed"])],
            action: Action::FixedResponse {
                status_code: 418,
                content_type: Some(ContentType::ApplicationJson),
                body: HOSTILE.into(),
            },
        },
        Rule {
            priority: 5,
            conditions: vec![paths(&["/old/*"])],
            action: Action::Redirect(
                Redirect::new(
                    RedirectParts {
                        path: Some("/new/#{path}".into()),
                        ..RedirectParts::default()
                    },
                    301,
                )
                .expect("redirect"),
            ),
        },
        Rule {
            priority: 30,
            conditions: vec![
                Condition::HttpHeader {
                    name: HeaderName::new("X-Odd'#$%").expect("header name"),
                    values: vec![
                        Pattern::new(HOSTILE.replace('\n', "*").as_str()).expect("header pattern")
                    ],
                },
                Condition::HttpRequestMethod(vec![Method::new("PUT").expect("method")]),
            ],
            action: Action::FixedResponse {
                status_code: 202,
                content_type: None,
                body: "odd header".into(),
            },
        },
    ];
    driver.apply(&spec).await.expect("apply");
    wait_health(&driver, "both healthy", |h| h.len() == 2 && all_healthy(h)).await;

    assert_eq!(lab.fetch(80, "/", &[]).body, "web", "the default forward");
    assert_eq!(
        lab.fetch(80, "/api/v1", &[]).body,
        "api v1",
        "the path rule"
    );
    assert_eq!(
        lab.fetch(80, "/api/fixed", &[]).status,
        404,
        "the rule of lower priority number wins: the api target has no such file"
    );
    let fixed = lab.fetch(80, "/fixed", &[]);
    assert_eq!((fixed.status, fixed.body.as_str()), (418, HOSTILE));
    assert_eq!(fixed.header("content-type"), Some("application/json"));
    assert_eq!(
        fixed.header("server"),
        Some("awselb/2.0"),
        "the balancer's own answer"
    );
    let moved = lab.fetch(80, "/old/a/b?x=1&y=%41", &[]);
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("server"), Some("awselb/2.0"));
    assert_eq!(
        moved.header("location"),
        Some(format!("http://{VIP}:80/new/old/a/b?x=1&y=%41").as_str())
    );
    let header = format!("X-Odd'#$%: {}", HOSTILE.replace('\n', " "));
    let odd = lab.fetch(80, "/", &["-X", "PUT", "-H", &header]);
    assert_eq!((odd.status, odd.body.as_str()), (202, "odd header"));
    assert_eq!(lab.fetch(80, "/", &["-H", &header]).body, "web", "PUT only");
    assert_ne!(
        lab.fetch(80, "/", &[]).header("server"),
        Some("awselb/2.0"),
        "a target's answer keeps its own"
    );
    // What the 8 requests above counted: the balancer's own answers apart.
    let counters = driver.counters(BALANCER).await.expect("counters");
    let [listener] = counters.listeners.as_slice() else {
        panic!("one listener: {counters:?}");
    };
    let codes = |status_2xx, status_3xx, status_4xx| HttpCodes {
        status_2xx,
        status_3xx,
        status_4xx,
        status_5xx: 0,
    };
    assert_eq!(listener.traffic.requests, 8);
    assert!(listener.traffic.bytes_in > 0 && listener.traffic.new_connections == 8);
    assert_eq!(listener.responses, codes(5, 1, 2));
    assert_eq!(counters.elb_responses, codes(1, 1, 1), "202, 301, 418");
    let group = |id: &str| {
        counters
            .target_groups
            .iter()
            .find(|g| g.target_group_id == id)
            .expect("group counters")
    };
    assert_eq!(group("tg-web").traffic.requests, 3);
    assert_eq!(group("tg-web").target_responses, codes(3, 0, 0));
    assert_eq!(group("tg-api").target_responses, codes(1, 0, 1));
    assert_eq!((group("tg-api").healthy, group("tg-api").unhealthy), (1, 0));
    assert_eq!(group("tg-api").no_target, 0);

    // Without the attribute (a config change: a new HAProxy, whose counts start again), the balancer's own answers carry no Server header.
    spec.listeners[0].server_header = false;
    driver
        .apply(&spec)
        .await
        .expect("apply without the server header");
    assert_eq!(lab.fetch(80, "/fixed", &[]).header("server"), None);

    // A weighted default: 1,000 requests split 3:1, each group's share within 10 points
    // of its weight's.
    spec.listeners[0].default_action = weighted(&[("tg-web", 3), ("tg-api", 1)], None);
    driver.apply(&spec).await.expect("apply weights");
    let bodies = lab.many(80, 1000, &[]);
    assert_eq!(bodies.len(), 1000);
    let to_api = bodies.iter().filter(|b| *b == "api").count();
    let to_web = bodies.iter().filter(|b| *b == "web").count();
    assert_eq!(to_api + to_web, 1000, "every request answered");
    assert!(
        (150..=350).contains(&to_api),
        "{to_api} of 1000 to the weight-1 group"
    );

    // Group stickiness: the cookie names the group the first answer came from, and keeps
    // the client there.
    spec.listeners[0].default_action = weighted(&[("tg-web", 3), ("tg-api", 1)], Some(600));
    driver.apply(&spec).await.expect("apply stickiness");
    wait_health(&driver, "healthy after the reload", |h| {
        h.len() == 2 && all_healthy(h)
    })
    .await;
    let first = lab.fetch(80, "/", &[]);
    let cookie = first
        .header("set-cookie")
        .expect("a group cookie")
        .to_owned();
    let group = if first.body == "api" {
        "tg-api"
    } else {
        "tg-web"
    };
    assert!(
        cookie.starts_with(&format!("AWSALBTG={group}; Max-Age=600")),
        "{cookie}"
    );
    let sticky = lab.many(80, 50, &["-b", "AWSALBTG=tg-api"]);
    assert_eq!(sticky, vec!["api"; 50]);
    driver.remove(BALANCER).await.expect("remove");
}
