//! A real guest on the network driver's tap: QEMU (unprivileged) gets the tap descriptor,
//! the guest takes its address by DHCP from the VPC's dnsmasq, reads its user data from the
//! VPC's metadata listener, and its web server answers the host at its public IP. Needs
//! root, the `nimbus-qemu` user, qemu-nbd and the cached nimbus-minimal image
//! (`/tmp/nimbus-test-images`, built by the end-to-end tests); skipped otherwise.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use compute::{InstanceMetadata, MetadataSource};
use network::{
    DhcpOptionsSpec, InterfaceSpec, LinuxNetwork, NetworkAclEntry, NetworkAclSpec, NetworkDriver,
    Peer, Protocol, SecurityGroupRule, SecurityGroupSpec, SubnetSpec, VpcSpec,
};

const VPC: &str = "vpc-7e570002";
const PUBLIC_IP: &str = "198.19.250.20";

fn minimal_image() -> Option<PathBuf> {
    std::fs::read_dir("/tmp/nimbus-test-images")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("nimbus-minimal-"))
                && p.join("done").exists()
        })
}

fn cidr(text: &str) -> ipnet::Ipv4Net {
    text.parse().expect("test CIDR")
}

fn allow(protocol: Protocol) -> SecurityGroupRule {
    SecurityGroupRule {
        protocol,
        peer: Peer::Cidr(cidr("0.0.0.0/0")),
    }
}

fn spec() -> VpcSpec {
    let all = NetworkAclEntry {
        rule_number: 100,
        protocol: Protocol::All,
        cidr: cidr("0.0.0.0/0"),
        allow: true,
    };
    VpcSpec {
        vpc_id: VPC.into(),
        cidrs: vec![cidr("10.8.0.0/16")],
        dns_support: true,
        dns_hostnames: true,
        dns_domain: "ec2.internal".into(),
        subnets: vec![SubnetSpec {
            subnet_id: "subnet-0a".into(),
            cidr: cidr("10.8.1.0/24"),
            internet_route: true,
            network_acl_id: "acl-01".into(),
            nat_public_ip: None,
        }],
        interfaces: vec![InterfaceSpec {
            interface_id: "eni-0a".into(),
            instance_id: Some("i-0a".into()),
            subnet_id: "subnet-0a".into(),
            mac: "02:00:00:00:0a:02".into(),
            private_ips: vec!["10.8.1.10".parse().expect("IP")],
            public_ip: Some(PUBLIC_IP.parse().expect("IP")),
            security_group_ids: vec!["sg-0a".into()],
            source_dest_check: true,
            holder: network::Holder::Vm,
        }],
        security_groups: vec![SecurityGroupSpec {
            group_id: "sg-0a".into(),
            ingress: vec![allow(Protocol::Tcp { from: 80, to: 80 })],
            egress: vec![allow(Protocol::All)],
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

/// The one guest's metadata, with a web server as its user data.
struct Guest;

impl MetadataSource for Guest {
    fn instance_id(&self, address: Ipv4Addr) -> Option<String> {
        (address == Ipv4Addr::new(10, 8, 1, 10)).then(|| "i-0a".into())
    }

    fn metadata(&self, address: Ipv4Addr) -> Option<InstanceMetadata> {
        // The page carries what the guest read with an IMDSv2 token (a PUT over nc, which
        // half-closes its request).
        let script = "#!/bin/sh\nmkdir -p /www\necho served-by-$(imds-get meta-data/instance-id) > /www/index.html\nbusybox httpd -p 80 -h /www\n";
        Some(InstanceMetadata {
            instance_id: self.instance_id(address)?,
            endpoint_enabled: true,
            user_data: Some(script.as_bytes().to_vec()),
            ..Default::default()
        })
    }

    fn hop_limit(&self, _address: Ipv4Addr) -> u8 {
        1
    }
}

/// Removes what the test made even when it fails.
struct Cleanup {
    nbd: std::process::Child,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.nbd.kill();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!("ip netns pids nimbus-{VPC} | xargs -r kill -9; ip netns del nimbus-{VPC}; ip link del nv7e570002"),
            ])
            .status();
    }
}

/// The guest's page as the host sees it at the public IP.
async fn fetch_from_host() -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-m", "2", &format!("http://{PUBLIC_IP}/")])
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn page_served() -> bool {
    for _ in 0..300 {
        if fetch_from_host().await.contains("served-by-i-0a") {
            return true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_on_a_tap_gets_dhcp_metadata_and_its_public_ip() {
    let Some(image) = minimal_image() else {
        eprintln!("skipped: no cached nimbus-minimal image");
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("nbd.sock");
    let nbd = Command::new("qemu-nbd")
        .args([
            "--snapshot",
            "--format=raw",
            "--export-name=root",
            "--persistent",
            "--socket",
        ])
        .arg(&socket)
        .arg(image.join("rootfs.img"))
        .spawn()
        .expect("qemu-nbd starts");
    let _cleanup = Cleanup { nbd };
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let driver = LinuxNetwork::new(dir.path().join("network"), cidr("198.19.0.0/16"));
    driver.apply_vpc(&spec()).await.expect("VPC applies");
    let listener = driver
        .metadata_listener(VPC)
        .await
        .expect("metadata listener");
    tokio::spawn(compute::serve_imds(listener, Arc::new(Guest)));
    let tap = driver.open_tap(VPC, "eni-0a").await.expect("tap");

    let cmdline = std::fs::read_to_string(image.join("cmdline")).expect("cmdline");
    let kernel = image.join("vmlinux");
    let initrd = image.join("initrd.img");
    let accel = compute::probe_accel(&kernel, &initrd).await;
    let run_dir = dir.path().join("vm");
    let spec = compute::VmSpec {
        instance_id: "i-0a".into(),
        vcpus: 1,
        memory_mib: 256,
        kernel,
        initrd,
        cmdline: cmdline.trim().to_owned(),
        disks: vec![compute::DiskSpec {
            device_name: "/dev/xvda".into(),
            nbd_socket: socket.clone(),
            export: "root".into(),
        }],
        run_dir: run_dir.clone(),
        nics: vec![compute::NicSpec {
            device_index: 0,
            mac: "02:00:00:00:0a:02".into(),
            tap: Arc::new(tap),
        }],
    };
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let vm = compute::launch(&spec, accel).await.expect("VM launches");
    drop(spec);

    let served = page_served().await;
    let console = compute::console_output(&run_dir);
    assert!(
        served,
        "the guest's web server never answered; console:\n{console}"
    );
    let counters = driver.counters(VPC, "eni-0a").expect("tap counters");
    assert!(
        counters.bytes_in > 0 && counters.bytes_out > 0,
        "{counters:?}"
    );

    vm.kill().await.expect("VM stops");
    driver.remove_vpc(VPC).await.expect("VPC removed");
    assert!(!Path::new(&format!("/run/netns/nimbus-{VPC}")).exists());
}
