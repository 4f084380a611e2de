//! The Linux driver on the real host: a VPC applied from a spec, network namespaces
//! standing in for guests (a veth end named like the interface's tap), real packets.
//! Needs root, `ip`, `nft`, `dnsmasq` and busybox; skipped otherwise. Traffic goes only to
//! addresses inside namespaces this test makes.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use network::{
    interface_device, DhcpOptionsSpec, InterfaceSpec, LinuxNetwork, NameServer, NetworkAclEntry,
    NetworkAclSpec, NetworkDriver, Peer, Protocol, SecurityGroupRule, SecurityGroupSpec,
    SubnetSpec, VpcSpec,
};

const VPC: &str = "vpc-7e570001";

fn can_run() -> bool {
    let tools = ["ip", "nft", "dnsmasq", "busybox"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    rustix::process::geteuid().is_root() && tools
}

/// Whether a process runs: a stopped daemon may stay a zombie until the host's init reaps it.
fn runs(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn sh(script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs")
}

fn ok(script: &str) {
    let out = sh(script);
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace standing in for a guest, wired to the VPC like a tap would be.
struct Guest {
    ns: String,
}

impl Guest {
    fn new(name: &str, interface: &InterfaceSpec) -> Guest {
        Guest::in_vpc(VPC, name, interface)
    }

    fn in_vpc(vpc: &str, name: &str, interface: &InterfaceSpec) -> Guest {
        let ns = format!("dptest-{name}");
        let device = interface_device(&interface.interface_id).expect("device name");
        ok(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip link add {device} netns nimbus-{vpc} type veth peer name eth0 netns {ns} && \
             ip -n {ns} link set eth0 address {mac} up",
            mac = interface.mac
        ));
        Guest { ns }
    }

    /// A namespace standing for a network attached to the host: a veth pair, `host_dev`
    /// with `host_ip` on the host, `eth0` with `ip` (and a default route back) in it.
    fn attached_to_host(name: &str, host_dev: &str, host_ip: &str, ip: &str) -> Guest {
        let ns = format!("dptest-{name}");
        let (host_address, _) = host_ip.split_once('/').expect("a CIDR");
        ok(&format!(
            "ip netns add {ns} && ip -n {ns} link set lo up && \
             ip link add {host_dev} type veth peer name eth0 netns {ns} && \
             ip address add {host_ip} dev {host_dev} && ip link set {host_dev} up && \
             ip -n {ns} address add {ip} dev eth0 && ip -n {ns} link set eth0 up && \
             ip -n {ns} route add default via {host_address}"
        ));
        Guest { ns }
    }

    fn run(&self, command: &str) -> std::process::Output {
        sh(&format!("ip netns exec {} {command}", self.ns))
    }

    fn configure(&self, ip: Ipv4Addr, prefix: u8, router: Ipv4Addr) {
        ok(&format!(
            "ip -n {ns} address replace {ip}/{prefix} dev eth0 && ip -n {ns} route replace default via {router}",
            ns = self.ns
        ));
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns pids {0} | xargs -r kill -9; ip netns del {0}",
            self.ns
        ));
    }
}

/// Removes the VPC's namespace, veth and dnsmasq even when the test fails.
struct Cleanup(&'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let vpc = self.0;
        let veth = vpc.replace("vpc-", "nv");
        let _ = sh(&format!(
            "ip netns pids nimbus-{vpc} | xargs -r kill -9; ip netns del nimbus-{vpc}; ip link del {veth}"
        ));
    }
}

/// The pool of this file's VPC: outside 198.19.0.0/16, which a nimbus with the default pool
/// on the same host would masquerade.
const POOL: &str = "198.18.250.0/24";
/// A namespace standing in for the internet, routed from the host over a veth pair: the
/// host is 203.0.113.1, the namespace 203.0.113.2, and it routes everything back.
const OUTSIDE: &str = "dptest-out";
const OUTSIDE_NET: &str = "203.0.113.0/30";

struct Outside;

impl Outside {
    fn new() -> Outside {
        ok(&format!(
            "ip netns add {OUTSIDE} && ip -n {OUTSIDE} link set lo up && \
             ip link add dpout0 type veth peer name eth0 netns {OUTSIDE} && \
             ip address add 203.0.113.1/30 dev dpout0 && ip link set dpout0 up && \
             ip -n {OUTSIDE} address add 203.0.113.2/30 dev eth0 && \
             ip -n {OUTSIDE} link set eth0 up && ip -n {OUTSIDE} route add default via 203.0.113.1"
        ));
        Outside
    }

    /// The source address the outside sees for a connection `from` opens to it.
    fn source_seen_from(&self, from: &Guest) -> Option<Ipv4Addr> {
        // Its input stays open, so it keeps the connection until the client ends it; it
        // is killed below, so no other process may stand between.
        let mut listener = Command::new("ip")
            .args([
                "netns", "exec", OUTSIDE, "busybox", "nc", "-l", "-p", "9000",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("listener starts");
        wait_listening(OUTSIDE, 9000);
        let mut client = Command::new("ip")
            .args(["netns", "exec", &from.ns, "sh", "-c"])
            .arg("(echo hello; sleep 3) | timeout 4 busybox nc 203.0.113.2 9000")
            .spawn()
            .expect("client starts");
        let mut seen = None;
        for _ in 0..250 {
            let peers = sh(&format!(
                "ip netns exec {OUTSIDE} ss -tnH state established '( sport = :9000 )'"
            ));
            let text = String::from_utf8_lossy(&peers.stdout).into_owned();
            // busybox listens on IPv6 too: the peer is `[::ffff:a.b.c.d]:port`.
            seen = text
                .split_whitespace()
                .last()
                .and_then(|peer| peer.rsplit_once(':'))
                .map(|(address, _)| address.trim_start_matches("[::ffff:").trim_end_matches(']'))
                .and_then(|address| address.parse().ok());
            if seen.is_some() || client.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = client.wait();
        let _ = listener.kill();
        let _ = listener.wait();
        seen
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = sh(&format!(
            "ip netns pids {OUTSIDE} | xargs -r kill -9; ip netns del {OUTSIDE}; ip link del dpout0"
        ));
    }
}

/// Whether `from` can open a TCP connection to `ip:port` served in `to` and send a line.
/// Waits until something listens on `port` in namespace `ns` (a fixed sleep loses the race
/// on a busy host).
fn wait_listening(ns: &str, port: u16) {
    for _ in 0..250 {
        let listening = Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-ltnH"])
            .arg(format!("sport = :{port}"))
            .output()
            .expect("ss runs");
        if !listening.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn tcp_passes(from: &Guest, to: &Guest, ip: Ipv4Addr, port: u16) -> bool {
    let listener = Command::new("ip")
        .args([
            "netns", "exec", &to.ns, "timeout", "6", "busybox", "nc", "-l", "-p",
        ])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("listener starts");
    wait_listening(&to.ns, port);
    let sent = from.run(&format!(
        "sh -c 'echo hello | timeout 4 busybox nc {ip} {port}'"
    ));
    // The listener ends after one connection, or when its timeout kills it.
    let output = listener.wait_with_output().expect("listener output");
    sent.status.success() && String::from_utf8_lossy(&output.stdout).contains("hello")
}

fn net(text: &str) -> ipnet::Ipv4Net {
    text.parse().expect("test CIDR")
}

fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("test IP")
}

fn interface(id: &str, subnet: &str, mac: &str, address: &str, group: &str) -> InterfaceSpec {
    InterfaceSpec {
        interface_id: id.into(),
        instance_id: Some(id.replace("eni-", "i-")),
        subnet_id: subnet.into(),
        mac: mac.into(),
        private_ips: vec![ip(address)],
        public_ip: None,
        security_group_ids: vec![group.into()],
        source_dest_check: true,
        holder: network::Holder::Vm,
    }
}

fn rule(protocol: Protocol, peer: Peer) -> SecurityGroupRule {
    SecurityGroupRule { protocol, peer }
}

fn allow_all(number: u16) -> NetworkAclEntry {
    NetworkAclEntry {
        rule_number: number,
        protocol: Protocol::All,
        cidr: net("0.0.0.0/0"),
        allow: true,
    }
}

/// A and B in a public subnet, C in a private one. `sg-a` (A) lets in TCP 8080 from
/// anywhere; `sg-b` (B, C) lets in TCP 7000–7010 from members of `sg-a`.
fn spec() -> VpcSpec {
    VpcSpec {
        vpc_id: VPC.into(),
        cidrs: vec![net("10.9.0.0/16")],
        dns_support: true,
        dns_hostnames: true,
        dns_domain: "ec2.internal".into(),
        subnets: vec![
            SubnetSpec {
                subnet_id: "subnet-0a".into(),
                cidr: net("10.9.1.0/24"),
                internet_route: true,
                network_acl_id: "acl-01".into(),
                nat_public_ip: None,
            },
            SubnetSpec {
                subnet_id: "subnet-0b".into(),
                cidr: net("10.9.2.0/24"),
                internet_route: false,
                network_acl_id: "acl-01".into(),
                nat_public_ip: None,
            },
        ],
        interfaces: vec![
            InterfaceSpec {
                public_ip: Some(ip("198.18.250.10")),
                ..interface(
                    "eni-0a",
                    "subnet-0a",
                    "02:00:00:00:0a:01",
                    "10.9.1.10",
                    "sg-0a",
                )
            },
            interface(
                "eni-0b",
                "subnet-0a",
                "02:00:00:00:0b:01",
                "10.9.1.11",
                "sg-0b",
            ),
            interface(
                "eni-0c",
                "subnet-0b",
                "02:00:00:00:0c:01",
                "10.9.2.10",
                "sg-0b",
            ),
        ],
        security_groups: vec![
            SecurityGroupSpec {
                group_id: "sg-0a".into(),
                ingress: vec![rule(
                    Protocol::Tcp {
                        from: 8080,
                        to: 8080,
                    },
                    Peer::Cidr(net("0.0.0.0/0")),
                )],
                egress: vec![rule(Protocol::All, Peer::Cidr(net("0.0.0.0/0")))],
            },
            SecurityGroupSpec {
                group_id: "sg-0b".into(),
                ingress: vec![rule(
                    Protocol::Tcp {
                        from: 7000,
                        to: 7010,
                    },
                    Peer::Group("sg-0a".into()),
                )],
                egress: vec![rule(Protocol::All, Peer::Cidr(net("0.0.0.0/0")))],
            },
        ],
        network_acls: vec![NetworkAclSpec {
            network_acl_id: "acl-01".into(),
            ingress: vec![allow_all(100)],
            egress: vec![allow_all(100)],
        }],
        dhcp_options: DhcpOptionsSpec::default(),
        service_names: Vec::new(),
    }
}

#[tokio::test]
async fn a_vpc_carries_exactly_the_traffic_its_rules_allow() {
    if !can_run() {
        eprintln!("skipped: needs root, ip, nft, dnsmasq and busybox");
        return;
    }
    let _cleanup = Cleanup(VPC);
    let state = tempfile::tempdir().expect("state dir");
    // The outside is attached to the host here, which the host guard refuses guests unless
    // the operator allows it.
    let driver = LinuxNetwork::new(state.path().to_owned(), net(POOL))
        .with_routed_back(vec![net(OUTSIDE_NET)])
        .reachable_from_guests(vec![net(OUTSIDE_NET)]);
    let mut spec = spec();

    // The namespace first, then the guests' devices, then the whole spec.
    let empty = VpcSpec {
        interfaces: vec![],
        ..spec.clone()
    };
    driver.apply_vpc(&empty).await.expect("empty VPC applies");
    let a = Guest::new("a", &spec.interfaces[0]);
    let b = Guest::new("b", &spec.interfaces[1]);
    let c = Guest::new("c", &spec.interfaces[2]);
    driver.apply_vpc(&spec).await.expect("VPC applies");
    // Other nimbus servers on this host may have VPCs wired too.
    assert!(driver
        .wired_vpcs()
        .await
        .expect("wired")
        .contains(&VPC.to_owned()));

    // DHCP gives A its address.
    let lease = a.run("timeout 10 busybox udhcpc -i eth0 -n -q -f -s /bin/true");
    let lease_text = String::from_utf8_lossy(&lease.stderr).into_owned()
        + &String::from_utf8_lossy(&lease.stdout);
    assert!(lease_text.contains("10.9.1.10"), "udhcpc: {lease_text}");
    a.configure(ip("10.9.1.10"), 24, ip("10.9.1.1"));
    b.configure(ip("10.9.1.11"), 24, ip("10.9.1.1"));
    c.configure(ip("10.9.2.10"), 24, ip("10.9.2.1"));

    // The resolver knows the VPC's host names.
    let lookup = b.run("busybox nslookup ip-10-9-1-10.ec2.internal 10.9.0.2");
    assert!(
        String::from_utf8_lossy(&lookup.stdout).contains("10.9.1.10"),
        "{lookup:?}"
    );

    // By group reference and port range, in a subnet and across subnets; the replies pass.
    assert!(tcp_passes(&a, &b, ip("10.9.1.11"), 7005));
    assert!(tcp_passes(&a, &c, ip("10.9.2.10"), 7010));
    assert!(
        !tcp_passes(&a, &b, ip("10.9.1.11"), 7011),
        "outside the port range"
    );
    // By CIDR.
    assert!(tcp_passes(&b, &a, ip("10.9.1.10"), 8080));
    // Denied by default: B is not in sg-a, and nothing allows ICMP.
    assert!(!tcp_passes(&b, &c, ip("10.9.2.10"), 7005));
    assert!(!a.run("busybox ping -c 1 -W 1 10.9.1.11").status.success());

    // A spoofed source is dropped.
    ok(&format!("ip -n {} address add 10.9.1.99/24 dev eth0", a.ns));
    let spoofed = a.run("sh -c 'echo hello | timeout 2 busybox nc -s 10.9.1.99 10.9.1.11 7005'");
    assert!(
        !spoofed.status.success(),
        "a spoofed connection went through"
    );

    // From the host to A's public IP, on the port its group opens.
    let listener = Command::new("ip")
        .args([
            "netns", "exec", &a.ns, "timeout", "3", "busybox", "nc", "-l", "-p", "8080",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("listener");
    wait_listening(&a.ns, 8080);
    let sent = sh("echo hello | timeout 2 busybox nc 198.18.250.10 8080");
    let got = listener.wait_with_output().expect("listener output");
    assert!(
        sent.status.success() && String::from_utf8_lossy(&got.stdout).contains("hello"),
        "host to public IP: {sent:?}"
    );

    // C's private subnet has no way out; routed to a NAT gateway it reaches the outside
    // as the gateway's address, and the outside cannot connect in through it.
    let outside = Outside::new();
    assert_eq!(outside.source_seen_from(&c), None);
    spec.subnets[1].nat_public_ip = Some(ip("198.18.250.20"));
    driver.apply_vpc(&spec).await.expect("NAT applies");
    assert_eq!(outside.source_seen_from(&c), Some(ip("198.18.250.20")));
    assert_eq!(
        outside.source_seen_from(&a),
        Some(ip("198.18.250.10")),
        "a public IP keeps its own source"
    );
    let listener = Command::new("ip")
        .args([
            "netns", "exec", &c.ns, "timeout", "3", "busybox", "nc", "-l", "-p", "7005",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("listener");
    wait_listening(&c.ns, 7005);
    let inbound = sh(&format!(
        "ip netns exec {OUTSIDE} sh -c 'echo in | timeout 2 busybox nc 198.18.250.20 7005'"
    ));
    let got = listener.wait_with_output().expect("listener output");
    assert!(
        !String::from_utf8_lossy(&got.stdout).contains("in"),
        "connected in through the NAT gateway: {inbound:?}"
    );
    spec.subnets[1].nat_public_ip = None;
    driver
        .apply_vpc(&spec)
        .await
        .expect("NAT route removal applies");
    assert_eq!(outside.source_seen_from(&c), None);
    drop(outside);

    // A DHCP options set reaches the next lease, which lasts an hour.
    spec.dhcp_options = DhcpOptionsSpec {
        domain_name: Some("corp.example.com".into()),
        domain_name_servers: vec![
            NameServer::Address(ip("10.9.0.53")),
            NameServer::AmazonProvided,
        ],
        ntp_servers: vec![ip("10.9.0.123")],
        netbios_name_servers: vec![],
        netbios_node_type: None,
    };
    driver.apply_vpc(&spec).await.expect("DHCP options apply");
    let script = state.path().join("lease.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && echo \"domain=$domain dns=$dns ntp=$ntpsrv lease=$lease\"\n",
    )
    .expect("lease script");
    std::fs::set_permissions(
        &script,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
    )
    .expect("executable");
    let lease = a.run(&format!(
        "timeout 10 busybox udhcpc -i eth0 -n -q -f -s {}",
        script.display()
    ));
    assert!(
        String::from_utf8_lossy(&lease.stdout)
            .contains("domain=corp.example.com dns=10.9.0.53 10.9.0.2 ntp=10.9.0.123 lease=3600"),
        "udhcpc: {lease:?}"
    );
    // No options set: no domain and no name server, not even dnsmasq itself.
    spec.dhcp_options = DhcpOptionsSpec::default();
    driver
        .apply_vpc(&spec)
        .await
        .expect("no DHCP options apply");
    let lease = a.run(&format!(
        "timeout 10 busybox udhcpc -i eth0 -n -q -f -s {}",
        script.display()
    ));
    assert!(
        String::from_utf8_lossy(&lease.stdout).contains("domain= dns= ntp= lease=3600"),
        "udhcpc: {lease:?}"
    );

    // The metadata listener sees the asking interface's address, which names its instance.
    let listener = driver
        .metadata_listener(VPC)
        .await
        .expect("metadata listener");
    listener.set_nonblocking(false).expect("blocking");
    let accepted = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer));
    let _ = b.run("sh -c 'echo x | timeout 2 busybox nc 169.254.169.254 80'");
    let peer = accepted.join().expect("accept thread").expect("accepted");
    assert_eq!(peer.ip(), std::net::IpAddr::V4(ip("10.9.1.11")));
    assert_eq!(
        driver.instance_at(VPC, ip("10.9.1.11")).as_deref(),
        Some("i-0b")
    );

    // A NACL deny wins over a group allow, in rule number order.
    spec.network_acls[0].ingress.insert(
        0,
        NetworkAclEntry {
            rule_number: 50,
            protocol: Protocol::Tcp {
                from: 7010,
                to: 7010,
            },
            cidr: net("10.9.1.0/24"),
            allow: false,
        },
    );
    driver.apply_vpc(&spec).await.expect("NACL applies");
    assert!(!tcp_passes(&a, &c, ip("10.9.2.10"), 7010));
    assert!(
        tcp_passes(&a, &b, ip("10.9.1.11"), 7010),
        "same subnet: no NACL"
    );

    // Outbound fails once the egress rule is gone.
    spec.security_groups[0].egress.clear();
    driver
        .apply_vpc(&spec)
        .await
        .expect("egress removal applies");
    assert!(!tcp_passes(&a, &b, ip("10.9.1.11"), 7005));

    // A new driver (nimbus restarted after kill -9) adopts everything: traffic still flows,
    // dnsmasq is the same process, nothing is duplicated.
    spec.security_groups[0].egress = vec![rule(Protocol::All, Peer::Cidr(net("0.0.0.0/0")))];
    driver.apply_vpc(&spec).await.expect("egress back");
    let dnsmasq_pid =
        std::fs::read_to_string(state.path().join(VPC).join("dnsmasq.pid")).expect("pid file");
    drop(driver);
    // The outside is attached to the host here, which the host guard refuses guests unless
    // the operator allows it.
    let driver = LinuxNetwork::new(state.path().to_owned(), net(POOL))
        .with_routed_back(vec![net(OUTSIDE_NET)])
        .reachable_from_guests(vec![net(OUTSIDE_NET)]);
    driver
        .apply_vpc(&spec)
        .await
        .expect("re-apply after restart");
    driver
        .apply_vpc(&spec)
        .await
        .expect("a second apply is a no-op");
    assert!(tcp_passes(&a, &b, ip("10.9.1.11"), 7005));
    let again =
        std::fs::read_to_string(state.path().join(VPC).join("dnsmasq.pid")).expect("pid file");
    assert_eq!(dnsmasq_pid, again);
    let tables = sh(&format!("ip netns exec nimbus-{VPC} nft list tables"));
    assert_eq!(
        String::from_utf8_lossy(&tables.stdout).trim(),
        "table inet nimbus"
    );
    let routes = sh("ip route show dev nv7e570001");
    assert_eq!(String::from_utf8_lossy(&routes.stdout).lines().count(), 1);

    // Removal leaves nothing behind.
    driver.remove_vpc(VPC).await.expect("removes");
    assert!(!driver
        .wired_vpcs()
        .await
        .expect("wired")
        .contains(&VPC.to_owned()));
    assert!(!std::path::Path::new(&format!("/run/netns/nimbus-{VPC}")).exists());
    assert!(!sh("ip link show nv7e570001").status.success());
    assert!(!runs(dnsmasq_pid.trim()));
    driver
        .remove_vpc(VPC)
        .await
        .expect("removing again succeeds");
}

#[tokio::test]
async fn a_vpc_whose_data_dir_is_gone_is_removed_by_the_next_server() {
    if !can_run() {
        eprintln!("skipped: needs root, ip, nft, dnsmasq and busybox");
        return;
    }
    const ORPHAN: &str = "vpc-7e570002";
    let deleted = tempfile::tempdir().expect("state dir");
    let kept = tempfile::tempdir().expect("state dir");
    let pool = net("198.18.251.0/24");
    // No interfaces: their public IPs would take the host routes of the other test's VPC.
    let orphan = VpcSpec {
        vpc_id: ORPHAN.into(),
        interfaces: vec![],
        ..spec()
    };
    LinuxNetwork::new(deleted.path().to_owned(), pool)
        .apply_vpc(&orphan)
        .await
        .expect("VPC applies");
    let dnsmasq_pid =
        std::fs::read_to_string(deleted.path().join(ORPHAN).join("dnsmasq.pid")).expect("pid file");
    let other = LinuxNetwork::new(kept.path().to_owned(), pool);
    assert!(
        !other
            .remove_orphans()
            .await
            .expect("sweeps")
            .contains(&ORPHAN.to_owned()),
        "a VPC of a live data dir is not an orphan"
    );
    drop(deleted);

    let removed = other.remove_orphans().await.expect("sweeps");
    assert!(removed.contains(&ORPHAN.to_owned()), "{removed:?}");
    assert!(!std::path::Path::new(&format!("/run/netns/nimbus-{ORPHAN}")).exists());
    assert!(!sh("ip link show nv7e570002").status.success());
    assert!(!runs(dnsmasq_pid.trim()));
}

#[tokio::test]
async fn a_node_interface_gets_a_namespace_of_its_own_filtered_as_a_guest() {
    if !can_run() {
        eprintln!("skipped: needs root, ip, nft, dnsmasq and busybox");
        return;
    }
    const NODE_VPC: &str = "vpc-7e570003";
    let _cleanup = Cleanup(NODE_VPC);
    let state = tempfile::tempdir().expect("state dir");
    let driver = LinuxNetwork::new(state.path().to_owned(), net("198.19.0.0/16"));
    let base = spec();
    // B in `sg-0b` (in from `sg-0a` on 7000-7010), the node in `sg-0a` (in on 8080).
    let b = interface(
        "eni-3b",
        "subnet-0a",
        "02:00:00:00:3b:01",
        "10.9.1.31",
        "sg-0b",
    );
    let node = InterfaceSpec {
        instance_id: None,
        holder: network::Holder::Node,
        ..interface(
            "eni-3c",
            "subnet-0a",
            "02:00:00:00:3c:01",
            "10.9.1.32",
            "sg-0a",
        )
    };
    let mut vpc = VpcSpec {
        vpc_id: NODE_VPC.into(),
        interfaces: vec![],
        ..base.clone()
    };
    driver.apply_vpc(&vpc).await.expect("empty VPC applies");
    let guest = Guest::in_vpc(NODE_VPC, "node-b", &b);
    vpc.interfaces = vec![b, node];
    driver.apply_vpc(&vpc).await.expect("VPC applies");
    guest.configure(ip("10.9.1.31"), 24, ip("10.9.1.1"));
    let node_ns = network::node_namespace("eni-3c").expect("name");
    let node_side = Guest {
        ns: node_ns.clone(),
    };
    let address = sh(&format!("ip -n {node_ns} -4 -o address show dev eth0"));
    assert!(String::from_utf8_lossy(&address.stdout).contains("10.9.1.32/24"));

    // The node is reached on what its group admits and reaches what admits its group.
    assert!(tcp_passes(&guest, &node_side, ip("10.9.1.32"), 8080));
    assert!(!tcp_passes(&guest, &node_side, ip("10.9.1.32"), 8081));
    assert!(tcp_passes(&node_side, &guest, ip("10.9.1.31"), 7005));

    // In no group (a network load balancer without groups) it is not filtered.
    vpc.interfaces[1].security_group_ids.clear();
    driver.apply_vpc(&vpc).await.expect("VPC applies");
    assert!(tcp_passes(&guest, &node_side, ip("10.9.1.32"), 8081));

    // Gone from the spec, its namespace goes; so do the VPC's others with the VPC.
    vpc.interfaces.pop();
    driver.apply_vpc(&vpc).await.expect("VPC applies");
    assert!(!std::path::Path::new("/run/netns").join(&node_ns).exists());
    std::mem::forget(node_side);
    driver.remove_vpc(NODE_VPC).await.expect("removes");
}

/// A VPC with one guest in its public subnet, on a public IP, its group open both ways.
fn one_guest_vpc(vpc_id: &str, id: &str, mac: &str, public_ip: &str) -> VpcSpec {
    VpcSpec {
        vpc_id: vpc_id.into(),
        interfaces: vec![InterfaceSpec {
            public_ip: Some(ip(public_ip)),
            ..interface(id, "subnet-0a", mac, "10.9.1.10", "sg-0a")
        }],
        security_groups: vec![SecurityGroupSpec {
            group_id: "sg-0a".into(),
            ingress: vec![rule(Protocol::All, Peer::Cidr(net("0.0.0.0/0")))],
            egress: vec![rule(Protocol::All, Peer::Cidr(net("0.0.0.0/0")))],
        }],
        ..spec()
    }
}

/// Whether `from` opens a TCP connection to `ip:port` on the host itself, where the test
/// listens, and sends a line.
fn host_passes(from: &Guest, ip: Ipv4Addr, port: u16) -> bool {
    use std::io::BufRead;
    let listener = std::net::TcpListener::bind((ip, port)).expect("host listener");
    listener.set_nonblocking(true).expect("non-blocking");
    let mut sender = Command::new("ip")
        .args(["netns", "exec", &from.ns, "sh", "-c"])
        .arg(format!("echo hello | timeout 4 busybox nc {ip} {port}"))
        .spawn()
        .expect("sender starts");
    let mut received = String::new();
    // The sender ends once the line is read and the connection closed, or at its timeout.
    while sender.try_wait().expect("sender").is_none() {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking");
                let _ = std::io::BufReader::new(stream).read_line(&mut received);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    received.contains("hello")
}

/// The host table of the server whose state dir is `state`, by its owner marker.
fn host_table_of(state: &std::path::Path) -> String {
    let tables = sh("nft list tables inet");
    String::from_utf8_lossy(&tables.stdout)
        .split_whitespace()
        .filter(|name| name.starts_with("nimbus_host_"))
        .find(|name| {
            std::fs::read_to_string(format!("/run/nimbus/vpc-owners/{name}"))
                .is_ok_and(|owner| owner == state.display().to_string())
        })
        .expect("the server's host table")
        .to_owned()
}

const GUARDED: &str = "vpc-4a57a001";
const NEIGHBOUR: &str = "vpc-4a57a002";
const OTHER_SERVERS: &str = "vpc-4a57a003";

/// Removes what the host guard test makes on the host itself even when it fails.
struct HostPieces;

impl Drop for HostPieces {
    fn drop(&mut self) {
        let _ = sh("ip link del hgself; ip route del 203.0.113.77/32");
    }
}

#[tokio::test]
async fn guests_reach_the_outside_but_not_the_host_its_networks_or_another_servers_vpcs() {
    if !can_run() {
        eprintln!("skipped: needs root, ip, nft, dnsmasq and busybox");
        return;
    }
    let _cleanup = ([GUARDED, NEIGHBOUR, OTHER_SERVERS].map(Cleanup), HostPieces);
    // Two servers: A with two VPCs, B with one; A's pool covers B's.
    let (state_a, state_b) = (
        tempfile::tempdir().expect("A"),
        tempfile::tempdir().expect("B"),
    );
    let a = LinuxNetwork::new(state_a.path().to_owned(), net("198.19.252.0/23"));
    let b = LinuxNetwork::new(state_b.path().to_owned(), net("198.19.253.0/24"));
    let guarded = one_guest_vpc(GUARDED, "eni-0d", "02:00:00:00:0d:01", "198.19.252.10");
    let neighbour = one_guest_vpc(NEIGHBOUR, "eni-0e", "02:00:00:00:0e:01", "198.19.252.11");
    let other = one_guest_vpc(
        OTHER_SERVERS,
        "eni-0f",
        "02:00:00:00:0f:01",
        "198.19.253.10",
    );
    let mut guests = Vec::new();
    for (driver, spec, name) in [
        (&a, &guarded, "hgg"),
        (&a, &neighbour, "hgn"),
        (&b, &other, "hgo"),
    ] {
        let empty = VpcSpec {
            interfaces: vec![],
            ..spec.clone()
        };
        driver.apply_vpc(&empty).await.expect("namespace");
        let guest = Guest::in_vpc(&spec.vpc_id, name, &spec.interfaces[0]);
        guest.configure(ip("10.9.1.10"), 24, ip("10.9.1.1"));
        driver.apply_vpc(spec).await.expect("VPC applies");
        guests.push(guest);
    }
    let [g, n, o] = [&guests[0], &guests[1], &guests[2]];

    // The host's own address, a private LAN, an attached public network and, beyond a
    // gateway on it, the outside. A pass sees the host's new routes.
    // (A veth pair on the host: containers may lack the dummy device.)
    ok("ip link add hgself type veth peer name hgself1 && ip address add 10.254.77.1/32 dev hgself && ip link set hgself up");
    let lan = Guest::attached_to_host("hglan", "hglan0", "10.254.78.1/24", "10.254.78.2/24");
    let outside =
        Guest::attached_to_host("hgout", "hgout0", "198.51.100.77/30", "198.51.100.78/30");
    ok("ip -n dptest-hgout address add 203.0.113.77/32 dev lo && ip route replace 203.0.113.77/32 via 198.51.100.78");
    a.apply_vpc(&guarded).await.expect("a pass");
    b.apply_vpc(&other).await.expect("a pass");

    assert!(
        tcp_passes(g, &outside, ip("203.0.113.77"), 7001),
        "the outside"
    );
    assert!(
        tcp_passes(o, &outside, ip("203.0.113.77"), 7001),
        "the outside from B"
    );
    assert!(
        tcp_passes(g, n, ip("198.19.252.11"), 7002),
        "its server's other VPC"
    );
    assert!(
        !tcp_passes(g, &outside, ip("198.51.100.78"), 7003),
        "an attached network"
    );
    assert!(
        !tcp_passes(g, &lan, ip("10.254.78.2"), 7004),
        "a private LAN"
    );
    assert!(
        !host_passes(g, ip("10.254.77.1"), 7005),
        "the host's own address"
    );
    assert!(
        !tcp_passes(g, o, ip("198.19.253.10"), 7006),
        "another server's VPC"
    );
    assert!(
        !tcp_passes(o, g, ip("198.19.252.10"), 7007),
        "another server's VPC"
    );
    // The host still reaches the guests.
    assert!(sh("busybox ping -c 1 -W 2 198.19.253.10").status.success());

    // Each server has its own table, guarding its own uplinks; B's addresses are held.
    let (table_a, table_b) = (host_table_of(state_a.path()), host_table_of(state_b.path()));
    let listed = |table: &str| {
        String::from_utf8_lossy(&sh(&format!("nft list set inet {table} uplinks")).stdout)
            .into_owned()
    };
    assert!(
        listed(&table_a).contains("\"nv4a57a001\"") && listed(&table_a).contains("\"nv4a57a002\"")
    );
    assert!(
        listed(&table_b).contains("\"nv4a57a003\"") && !listed(&table_b).contains("nv4a57a001")
    );
    let held = a.held_public_ips().expect("held");
    assert!(held.contains(&net("198.19.253.10/32")), "{held:?}");
    assert!(
        !held.contains(&net("198.19.252.10/32")),
        "its own: {held:?}"
    );

    // Removed from outside, each piece is made again by the next pass: the namespace's name
    // (the namespace itself lives on), the uplink, the namespace's table, the host table.
    for drift in [
        format!("ip netns del nimbus-{NEIGHBOUR}"),
        "ip link del nv4a57a002".to_owned(),
        format!("ip netns exec nimbus-{NEIGHBOUR} nft delete table inet nimbus"),
        format!("nft delete table inet {table_a}"),
    ] {
        ok(&drift);
        a.apply_vpc(&neighbour).await.expect("a pass heals");
        assert!(tcp_passes(g, n, ip("198.19.252.11"), 7008), "after {drift}");
        assert!(!host_passes(g, ip("10.254.77.1"), 7009), "after {drift}");
    }

    // The operator's exceptions.
    drop(a);
    let a = LinuxNetwork::new(state_a.path().to_owned(), net("198.19.252.0/23"))
        .reachable_from_guests(vec![net("10.254.78.2/32"), net("10.254.77.1/32")]);
    a.apply_vpc(&guarded).await.expect("re-applied");
    assert!(
        tcp_passes(g, &lan, ip("10.254.78.2"), 7010),
        "allowed LAN host"
    );
    assert!(
        host_passes(g, ip("10.254.77.1"), 7011),
        "allowed host address"
    );
    assert!(
        !tcp_passes(g, &outside, ip("198.51.100.78"), 7012),
        "still denied"
    );

    // B's process ends (its marker names a process that does not run): its VPC stays while
    // its guest's device is there, and goes with it, then its table.
    std::fs::write(
        format!("/run/nimbus/vpc-owners/nimbus-{OTHER_SERVERS}.pid"),
        "999999999 1\n",
    )
    .expect("marker");
    std::fs::write(
        format!("/run/nimbus/vpc-owners/{table_b}.pid"),
        "999999999 1\n",
    )
    .expect("marker");
    assert!(!a
        .remove_orphans()
        .await
        .expect("sweeps")
        .contains(&OTHER_SERVERS.to_owned()));
    ok(&format!(
        "ip -n nimbus-{OTHER_SERVERS} link del {}",
        interface_device("eni-0f").expect("device")
    ));
    assert!(a
        .remove_orphans()
        .await
        .expect("sweeps")
        .contains(&OTHER_SERVERS.to_owned()));
    assert!(!sh(&format!("nft list table inet {table_b}"))
        .status
        .success());
    assert!(sh(&format!("nft list table inet {table_a}"))
        .status
        .success());

    for vpc in [GUARDED, NEIGHBOUR] {
        a.remove_vpc(vpc).await.expect("removed");
    }
    assert!(
        !sh(&format!("nft list table inet {table_a}"))
            .status
            .success(),
        "no VPC left"
    );
    drop(b);
}
