"""The nimbus-minimal image as a user's first user data finds it: bash, curl with the IMDSv2
snippet from AWS's documentation verbatim, busybox nc and httpd, and iperf3 — each run for
real in a booted guest, driven through boto3."""

import filecmp
import os
import re
import shutil
import subprocess

from test_instances import IMAGE_CACHE, cloud, ec2vm, minimal_ami, wait_console  # noqa: F401 (fixtures)
from test_volumes import wait_for

# The IMDSv2 lines are AWS's documented snippet, unchanged.
USER_DATA = """#!/bin/bash
exec > /dev/console 2>&1
TOKEN=$(curl -X PUT "http://169.254.169.254/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600")
LISTING=$(curl -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/)
ID=$(curl -s -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)
declare -A seen=([bash]=$BASH_VERSION)
echo "IMAGE-IMDS id=$ID listing=${LISTING//$'\\n'/,} bash=${seen[bash]%%.*}"
mkdir -p /srv/www && echo "served-by-busybox-httpd" > /srv/www/index.html
httpd -p 8080 -h /srv/www
echo "IMAGE-HTTPD $(curl -s http://127.0.0.1:8080/index.html)"
# The listener's stdin stays open: busybox nc ends at stdin EOF, maybe before the data came.
# Clients retry: a slow (TCG) guest may not be listening yet.
sleep 60 | nc -l -p 9000 > /tmp/received &
for try in $(seq 50); do echo "through-busybox-nc" | nc 127.0.0.1 9000 && break; sleep 0.2; done
for try in $(seq 50); do [ -s /tmp/received ] && break; sleep 0.2; done
echo "IMAGE-NC $(cat /tmp/received)"
iperf3 -s -1 -D -p 5201
IPERF3_EXIT=1
for try in $(seq 20); do
  iperf3 -c 127.0.0.1 -p 5201 -t 1 -J > /tmp/iperf3.json && { IPERF3_EXIT=0; break; }
  sleep 0.5
done
echo "IMAGE-IPERF3 exit=$IPERF3_EXIT $(grep -c bits_per_second /tmp/iperf3.json) hostname=$(hostname)"
"""


def test_user_data_tools_and_imdsv2_snippet(ec2vm, minimal_ami):  # noqa: F811
    instance_id = ec2vm.run_instances(
        ImageId=minimal_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, UserData=USER_DATA,
        MetadataOptions={"HttpTokens": "required"})["Instances"][0]["InstanceId"]
    imds = wait_console(ec2vm, instance_id, r"IMAGE-IMDS id=(\S*) listing=(\S*) bash=(\d+)")
    assert imds.group(1) == instance_id
    listing = imds.group(2).split(",")
    assert {"instance-id", "local-ipv4", "hostname"} <= set(listing), listing
    assert int(imds.group(3)) >= 5
    assert wait_console(ec2vm, instance_id, r"IMAGE-HTTPD (\S*)").group(1) == "served-by-busybox-httpd"
    assert wait_console(ec2vm, instance_id, r"IMAGE-NC (\S*)").group(1) == "through-busybox-nc"
    iperf3 = wait_console(ec2vm, instance_id, r"IMAGE-IPERF3 exit=(\d+) (\d+) hostname=(\S+)")
    assert iperf3.group(1) == "0" and int(iperf3.group(2)) > 0
    # The hostname came from DHCP (option 12) or the metadata service: EC2's ip-a-b-c-d form.
    private_ip = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["PrivateIpAddress"]
    assert re.match(rf"ip-{private_ip.replace('.', '-')}\b", iperf3.group(3)), iperf3.group(3)
    ec2vm.terminate_instances(InstanceIds=[instance_id])


def test_heartbeat_agent_writes_to_its_virtio_serial_port(cloud, tmp_path):  # noqa: F811
    """The guest side of the heartbeat contract: a guest given the virtio-serial port
    org.nimbus.heartbeat writes "alive <uptime>" lines to it, one a second. QEMU runs the
    registered image's own kernel, initramfs and root filesystem here, since nimbus's VMs
    get the port from the status checks' side."""
    registered = os.path.join(cloud.data_dir, "images", "nimbus-minimal")
    image_dir = next(os.path.join(IMAGE_CACHE, d) for d in os.listdir(IMAGE_CACHE)
                     if d.startswith("nimbus-minimal-") and os.path.exists(os.path.join(IMAGE_CACHE, d, "done"))
                     and filecmp.cmp(os.path.join(IMAGE_CACHE, d, "initrd.img"),
                                     os.path.join(registered, "initrd.img"), shallow=False))
    root = tmp_path / "root.img"
    shutil.copy(os.path.join(image_dir, "rootfs.img"), root)
    heartbeat = tmp_path / "heartbeat.log"
    with open(os.path.join(image_dir, "cmdline")) as f:
        cmdline = f.read().strip()
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-machine", "q35,accel=tcg", "-cpu", "max", "-smp", "2", "-m", "512M",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", os.path.join(image_dir, "vmlinux"), "-initrd", os.path.join(image_dir, "initrd.img"),
        "-append", cmdline, "-serial", f"file:{tmp_path / 'serial.log'}",
        "-device", "pcie-root-port,id=rp0,chassis=1", "-device", "pcie-root-port,id=rp1,chassis=2",
        "-drive", f"file={root},format=raw,if=none,id=root", "-device", "virtio-blk-pci,drive=root,bus=rp0",
        "-device", "virtio-serial-pci,bus=rp1", "-chardev", f"file,id=heartbeat,path={heartbeat}",
        "-device", "virtserialport,chardev=heartbeat,name=org.nimbus.heartbeat",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def beats():
            return re.findall(r"^alive (\d+)$", heartbeat.read_text() if heartbeat.exists() else "", re.M)
        seen = wait_for(lambda: len(beats()) >= 3 and beats(), timeout=300, interval=0.5)
        uptimes = [int(u) for u in seen]
        assert uptimes == sorted(uptimes) and uptimes[-1] > uptimes[0], uptimes
    finally:
        qemu.kill()
        qemu.wait()
