"""Hibernation benchmark: StopInstances Hibernate and StartInstances of a hibernated t3.micro
(nimbus-minimal, 2 vCPUs, 1 GiB, a user-data process printing to the console every second),
against QEMU's own `migrate` to a file and back of a bare guest of the same memory, kernel
and root file system over NBD (qemu_peer.py), with the same migration bandwidth setting, in
the same run, alternating.

Measured for nimbus: the API call to `stopped` (DescribeInstances polled every 20 ms), the
bytes of the state file, the API call to `running`, and to the guest's next console line
(its process runs again). For the peer: `stop` + `migrate` + fsync + `quit`, the bytes, and a
new QEMU to `cont` after `migrate-incoming`. Results are appended to bench/RESULTS.md."""

import datetime
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_peer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("NIMBUS_BIN", os.path.join(ROOT, "target", "debug", "nimbus"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
INSTANCE_TYPE, VCPUS, MEMORY_MIB = "t3.micro", 2, 1024
USER_DATA = """#!/bin/sh
cat > /run/counter.sh <<'EOF'
#!/bin/sh
n=0
while true; do n=$((n + 1)); echo "BENCH-COUNTER $n" > /dev/console; sleep 1; done
EOF
sh /run/counter.sh &
"""
COUNTER = re.compile(rb"BENCH-COUNTER (\d+)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_counter(serial_log):
    try:
        with open(serial_log, "rb") as f:
            found = COUNTER.findall(f.read())
    except OSError:
        return 0
    return int(found[-1]) if found else 0


def poll(check, timeout=600, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return time.time()
        time.sleep(interval)
    raise RuntimeError("timed out")


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_nimbus/health", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


def state_of(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def nimbus_round(ec2, data_dir, instance_id):
    serial_log = os.path.join(data_dir, "instances", instance_id, "serial.log")
    state = os.path.join(data_dir, "hibernation", f"{instance_id}.state")
    started = time.time()
    ec2.stop_instances(InstanceIds=[instance_id], Hibernate=True)
    stopped = poll(lambda: state_of(ec2, instance_id) == "stopped")
    size = os.path.getsize(state)
    last = last_counter(serial_log)
    resuming = time.time()
    ec2.start_instances(InstanceIds=[instance_id])
    running = poll(lambda: state_of(ec2, instance_id) == "running")
    ticking = poll(lambda: last_counter(serial_log) > last)
    return stopped - started, size, running - resuming, ticking - resuming


def main():
    workdir = tempfile.mkdtemp(prefix="nimbus-hibernate-bench-")
    data_dir = os.path.join(workdir, "data")
    cache = os.environ.get("NIMBUS_TEST_IMAGE_DIR", "/tmp/nimbus-test-images")
    subprocess.run([BINARY, "image", "build", "--data-dir", data_dir, "--cache-dir", cache], check=True,
                   stdout=subprocess.DEVNULL)
    # The image's own build: the kernel, initramfs and root file system nimbus boots.
    minimal = next(os.path.join(cache, d) for d in os.listdir(cache) if d.startswith("nimbus-minimal-"))
    cmdline = open(os.path.join(minimal, "cmdline")).read().strip()
    port = free_port()
    # Public IPs of their own, as the tests' servers have: other nimbus servers may run.
    config = os.path.join(workdir, "nimbus.toml")
    with open(config, "w") as f:
        f.write(f'public_ip_pool = "198.19.{random.randrange(256)}.0/24"\n')
    server = subprocess.Popen([BINARY, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
                               "--config", config],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    nimbus, peer = [], []
    try:
        poll(lambda: healthy(port))
        ec2 = boto3.client("ec2", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
        instance_id = ec2.run_instances(ImageId=ami, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1,
                                        UserData=USER_DATA, HibernationOptions={"Configured": True},
                                        )["Instances"][0]["InstanceId"]
        serial_log = os.path.join(data_dir, "instances", instance_id, "serial.log")
        poll(lambda: last_counter(serial_log) >= 3)
        for _ in range(RUNS):
            nimbus.append(nimbus_round(ec2, data_dir, instance_id))
            peer.append(qemu_peer.run(os.path.join(minimal, "vmlinux"), os.path.join(minimal, "initrd.img"),
                                      os.path.join(minimal, "rootfs.img"), cmdline, MEMORY_MIB, VCPUS,
                                      boot_marker=b"booted kernel", settle=10))
        ec2.terminate_instances(InstanceIds=[instance_id])
        poll(lambda: state_of(ec2, instance_id) == "terminated")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    report(nimbus, peer)


def report(nimbus, peer):
    med = lambda values: statistics.median(values)  # noqa: E731
    save, size, running, ticking = (med([r[i] for r in nimbus]) for i in range(4))
    peer_save, peer_size, peer_resume = (med([r[i] for r in peer]) for i in range(3))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
    lines = [
        f"## hibernate — {now}",
        "",
        f"Machine: {os.cpu_count()} cores, {cpu}; {platform.freedesktop_os_release().get('PRETTY_NAME', '?')}; "
        f"QEMU {subprocess.run(['qemu-system-x86_64', '--version'], capture_output=True, text=True).stdout.split()[3]}, TCG. "
        f"{INSTANCE_TYPE} ({VCPUS} vCPUs, {MEMORY_MIB} MiB), nimbus-minimal, a user-data process printing every "
        f"second; the peer is a bare QEMU of the same machine, kernel and root file system (qemu-nbd), both "
        f"migrating with max-bandwidth 8 GiB/s. nimbus {os.path.basename(os.path.dirname(BINARY))} build; "
        f"median of {len(nimbus)} rounds, alternating.",
        "",
        "| measure | nimbus | QEMU migrate to a file | nimbus / QEMU |",
        "|---|---|---|---|",
        f"| hibernate: StopInstances → `stopped` / stop + migrate + fsync + quit | {save:.2f} s | {peer_save:.2f} s "
        f"| {save / peer_save:.2f} |",
        f"| bytes written (state file) | {size / 2**20:.1f} MiB | {peer_size / 2**20:.1f} MiB | {size / peer_size:.2f} |",
        f"| resume: StartInstances → `running` / new QEMU → `cont` | {running:.2f} s | {peer_resume:.2f} s "
        f"| {running / peer_resume:.2f} |",
        f"| resume: StartInstances → the guest's next console line (it prints once a second: up to 1 s of "
        f"this is its sleep) | {ticking:.2f} s | | |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
