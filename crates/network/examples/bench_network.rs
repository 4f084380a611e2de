//! The data plane's cost, measured on the host with network namespaces as guests (run by
//! `bench/network/run.sh`, as root):
//! - TCP throughput (iperf3) and round-trip time (ping) between two guests through the
//!   enforced VPC network, against two namespaces on a plain Linux bridge with no filtering;
//! - time from `apply_vpc` returning with a new rule to the first allowed connection;
//! - the same throughput and RTT with 1,000 rules and 100 group members instead of 10 rules.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use network::{
    interface_device, DhcpOptionsSpec, InterfaceSpec, LinuxNetwork, NetworkAclEntry,
    NetworkAclSpec, NetworkDriver, Peer, Protocol, SecurityGroupRule, SecurityGroupSpec,
    SubnetSpec, VpcSpec,
};

const VPC: &str = "vpc-be4c0001";

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn net(text: &str) -> ipnet::Ipv4Net {
    text.parse().expect("CIDR")
}

fn rule(port: u16, peer: Peer) -> SecurityGroupRule {
    SecurityGroupRule {
        protocol: Protocol::Tcp {
            from: port,
            to: port,
        },
        peer,
    }
}

/// Two guests in one subnet; `rules` ingress rules on their group (the iperf3 and ping rules
/// last, so every other rule is walked first), `members` extra group members.
fn spec(rules: usize, members: usize) -> VpcSpec {
    let interface = |n: usize, ip: Ipv4Addr| InterfaceSpec {
        interface_id: format!("eni-{n:04x}"),
        instance_id: None,
        subnet_id: "subnet-01".into(),
        mac: format!("02:00:00:00:{:02x}:{:02x}", n / 256, n % 256),
        private_ips: vec![ip],
        public_ip: None,
        security_group_ids: vec!["sg-01".into()],
        source_dest_check: true,
        holder: network::Holder::Vm,
    };
    let mut interfaces = vec![
        interface(1, Ipv4Addr::new(10, 7, 0, 10)),
        interface(2, Ipv4Addr::new(10, 7, 0, 11)),
    ];
    for n in 0..members {
        interfaces.push(interface(100 + n, Ipv4Addr::new(10, 7, 1, n as u8 + 1)));
    }
    let mut ingress: Vec<SecurityGroupRule> = (0..rules.saturating_sub(2))
        .map(|n| {
            rule(
                10000 + n as u16,
                Peer::Cidr(net(&format!("10.{}.{}.0/24", 100 + n / 256, n % 256))),
            )
        })
        .collect();
    ingress.push(rule(5201, Peer::Group("sg-01".into())));
    ingress.push(SecurityGroupRule {
        protocol: Protocol::Icmp {
            icmp_type: None,
            code: None,
        },
        peer: Peer::Group("sg-01".into()),
    });
    let all = NetworkAclEntry {
        rule_number: 100,
        protocol: Protocol::All,
        cidr: net("0.0.0.0/0"),
        allow: true,
    };
    VpcSpec {
        vpc_id: VPC.into(),
        cidrs: vec![net("10.7.0.0/16")],
        dns_support: true,
        dns_hostnames: true,
        dns_domain: "ec2.internal".into(),
        subnets: vec![SubnetSpec {
            subnet_id: "subnet-01".into(),
            cidr: net("10.7.0.0/16"),
            internet_route: false,
            network_acl_id: "acl-01".into(),
            nat_public_ip: None,
        }],
        interfaces,
        security_groups: vec![SecurityGroupSpec {
            group_id: "sg-01".into(),
            ingress,
            egress: vec![SecurityGroupRule {
                protocol: Protocol::All,
                peer: Peer::Cidr(net("0.0.0.0/0")),
            }],
        }],
        network_acls: vec![NetworkAclSpec {
            network_acl_id: "acl-01".into(),
            ingress: vec![all.clone()],
            egress: vec![all],
        }],
        dhcp_options: DhcpOptionsSpec::default(),
        service_names: Vec::new(),
    }
}

/// iperf3 Gbit/s from `client` to `server_ip` served in `server`, and ping's average RTT (ms).
fn measure(client: &str, server: &str, server_ip: &str) -> (f64, f64) {
    let mut iperf = Command::new("ip")
        .args(["netns", "exec", server, "iperf3", "-s", "-1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("iperf3 server");
    std::thread::sleep(Duration::from_millis(500));
    let json = sh(&format!(
        "ip netns exec {client} iperf3 -c {server_ip} -t 5 -J"
    ));
    let _ = iperf.wait();
    let report: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let gbits = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
        / 1e9;
    let ping = sh(&format!(
        "ip netns exec {client} busybox ping -q -A -c 500 {server_ip}"
    ));
    let rtt = ping
        .lines()
        .find(|l| l.contains("min/avg"))
        .and_then(|l| l.split('=').nth(1))
        .and_then(|v| v.trim().split('/').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    (gbits, rtt)
}

/// Rounds of each measurement.
const ROUNDS: usize = 3;

/// The medians of (throughput, RTT) pairs.
fn medians(runs: &[(f64, f64)]) -> (f64, f64) {
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

fn guest(name: &str, device: &str, mac: &str, ip: &str) {
    sh(&format!(
        "ip netns add {name}; ip -n {name} link set lo up; \
         ip link add {device} netns nimbus-{VPC} type veth peer name eth0 netns {name}; \
         ip -n {name} link set eth0 address {mac} up; \
         ip -n {name} address add {ip}/16 dev eth0; ip -n {name} route add default via 10.7.0.1"
    ));
}

fn cleanup() {
    sh(&format!(
        "for n in bnA bnB brA brB brhost nimbus-{VPC}; do ip netns pids $n | xargs -r kill -9; ip netns del $n; done; ip link del nvbe4c0001"
    ));
}

#[tokio::main]
async fn main() {
    cleanup();
    let state = std::env::temp_dir().join("nimbus-bench-network");
    let driver = LinuxNetwork::new(state, net("198.19.0.0/16"));
    let small = spec(10, 0);
    driver
        .apply_vpc(&VpcSpec {
            interfaces: vec![],
            ..small.clone()
        })
        .await
        .expect("apply");
    let a = &small.interfaces[0];
    let b = &small.interfaces[1];
    guest(
        "bnA",
        &interface_device(&a.interface_id).expect("name"),
        &a.mac,
        "10.7.0.10",
    );
    guest(
        "bnB",
        &interface_device(&b.interface_id).expect("name"),
        &b.mac,
        "10.7.0.11",
    );
    driver.apply_vpc(&small).await.expect("apply");

    // The peer: two namespaces on a plain bridge, no filtering.
    sh("ip netns add brhost; ip -n brhost link add br0 type bridge; ip -n brhost link set br0 up; \
        for g in brA brB; do ip netns add $g; ip -n $g link set lo up; \
        ip link add p$g netns brhost type veth peer name eth0 netns $g; \
        ip -n brhost link set p$g master br0 up; ip -n $g link set eth0 up; done; \
        ip -n brA address add 10.6.0.10/24 dev eth0; ip -n brB address add 10.6.0.11/24 dev eth0");

    // Rounds alternate the three networks, so a busy moment of the host hits them alike;
    // each figure is the median of its rounds.
    let big = spec(1000, 100);
    let (mut bridge, mut small_runs, mut big_runs) = (Vec::new(), Vec::new(), Vec::new());
    let mut big_apply = Duration::ZERO;
    for _ in 0..ROUNDS {
        bridge.push(measure("brA", "brB", "10.6.0.11"));
        driver.apply_vpc(&small).await.expect("apply small");
        small_runs.push(measure("bnA", "bnB", "10.7.0.11"));
        let started = Instant::now();
        driver.apply_vpc(&big).await.expect("apply big");
        big_apply = big_apply.max(started.elapsed());
        big_runs.push(measure("bnA", "bnB", "10.7.0.11"));
    }
    let (bridge_gbits, bridge_rtt) = medians(&bridge);
    let (small_gbits, small_rtt) = medians(&small_runs);
    let (big_gbits, big_rtt) = medians(&big_runs);

    // Time from apply returning to the first allowed connection on a newly opened port.
    let mut opened = big.clone();
    opened.security_groups[0]
        .ingress
        .push(rule(6000, Peer::Cidr(net("10.7.0.10/32"))));
    let mut listener = Command::new("ip")
        .args(["netns", "exec", "bnB", "busybox", "nc", "-l", "-p", "6000"])
        .stdout(Stdio::null())
        .spawn()
        .expect("listener");
    std::thread::sleep(Duration::from_millis(300));
    driver.apply_vpc(&opened).await.expect("apply rule");
    let returned = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let ok = Command::new("ip")
            .args([
                "netns",
                "exec",
                "bnA",
                "sh",
                "-c",
                "echo x | timeout 1 busybox nc 10.7.0.11 6000",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if ok || attempts > 50 {
            break;
        }
    }
    let first_packet = returned.elapsed();
    let _ = listener.kill();
    let _ = listener.wait();

    println!("| measure | enforced VPC (10 rules) | plain bridge | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| TCP throughput (iperf3, 5 s; median of {ROUNDS} alternating rounds) | {small_gbits:.2} Gbit/s | {bridge_gbits:.2} Gbit/s | {:.2} |",
        small_gbits / bridge_gbits
    );
    println!(
        "| RTT (ping, 500 back to back) | {small_rtt:.3} ms | {bridge_rtt:.3} ms | {:.2} |",
        small_rtt / bridge_rtt
    );
    println!();
    println!("| measure | 1,000 rules, 100 members | 10 rules | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| TCP throughput | {big_gbits:.2} Gbit/s | {small_gbits:.2} Gbit/s | {:.2} |",
        big_gbits / small_gbits
    );
    println!(
        "| RTT | {big_rtt:.3} ms | {small_rtt:.3} ms | {:.2} |",
        big_rtt / small_rtt
    );
    println!();
    println!(
        "apply of 1,000 rules / 100 members: {:.1} ms (slowest of the rounds); apply returned → first allowed connection: {:.1} ms ({attempts} attempt(s), each a process spawn)",
        big_apply.as_secs_f64() * 1000.0,
        first_packet.as_secs_f64() * 1000.0
    );
    driver.remove_vpc(VPC).await.expect("remove");
    cleanup();
}
