"""Launch benchmark: RunInstances → user-data marker on the console, against the boot a user
would compare it with: a bare qemu-system-x86_64 of the same Debian cloud kernel (same vCPUs,
memory, machine type and accelerator: t3.micro) with a busybox-only initramfs that prints a
marker, on the plain `console=ttyS0` command line. Both in the same run, alternating, several
iterations; also host memory per VM and instances per minute with MaxCount=10. Results are
appended to bench/RESULTS.md."""

import datetime
import glob
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("NIMBUS_BIN", os.path.join(ROOT, "target", "release", "nimbus"))
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
INSTANCE_TYPE = "t3.micro"
VCPUS, MEMORY_MIB = 2, 1024
BOOT_MARKER = b"nimbus-minimal: booted kernel"
USER_DATA_MARKER = b"BENCH-USER-DATA"
BARE_MARKER = b"BENCH-BARE-BOOT"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_file_contains(path, marker, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path, "rb") as f:
                if marker in f.read():
                    return time.time()
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{marker!r} did not appear in {path}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def accelerator():
    probe = [p for p in os.listdir(tempfile.gettempdir()) if p.startswith("nimbus-accel-probe-")]
    if probe:
        return open(os.path.join(tempfile.gettempdir(), probe[0])).read().strip()
    return os.environ.get("NIMBUS_ACCEL", "tcg")


def kernel_version(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"[.-]", path)]


def busybox_initramfs(workdir):
    """An initramfs of busybox alone whose /init prints the marker and powers off."""
    root = os.path.join(workdir, "bare-initramfs")
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy("/usr/bin/busybox", os.path.join(root, "bin", "busybox"))
    with open(os.path.join(root, "init"), "w") as f:
        f.write(f"#!/bin/busybox sh\n/bin/busybox echo {BARE_MARKER.decode()} > /dev/console\n/bin/busybox poweroff -f\n")
    os.chmod(os.path.join(root, "init"), 0o755)
    image = os.path.join(workdir, "bare-initramfs.img")
    listing = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=listing,
                             capture_output=True, check=True).stdout
    with open(image, "wb") as f:
        f.write(subprocess.run(["gzip", "-1"], input=archive, capture_output=True, check=True).stdout)
    return image


def bare_boot(kernel, initramfs, workdir, accel):
    """The baseline: exec → marker of the bare kernel boot."""
    log = os.path.join(workdir, "bare-serial.log")
    if os.path.exists(log):
        os.remove(log)
    started = time.time()
    process = subprocess.Popen([
        "qemu-system-x86_64", "-machine", f"q35,accel={accel}", "-cpu", "max" if accel == "tcg" else "host",
        "-smp", str(VCPUS), "-m", f"{MEMORY_MIB}M", "-nodefaults", "-no-user-config", "-display", "none",
        "-kernel", kernel, "-initrd", initramfs, "-append", "console=ttyS0",
        "-chardev", f"file,id=console,path={log}", "-serial", "chardev:console",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_file_contains(log, BARE_MARKER) - started
    finally:
        process.kill()
        process.wait()


def serve(data_dir):
    """`nimbus serve` over `data_dir` on a free loopback port, once it answers; returns the
    process and its port."""
    port = free_port()
    server = subprocess.Popen([BINARY, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_nimbus/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    return server, port


def client(port, service):
    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def main():
    workdir = tempfile.mkdtemp(prefix="nimbus-launch-bench-")
    data_dir = os.path.join(workdir, "data")
    cache = os.environ.get("NIMBUS_TEST_IMAGE_DIR", "/tmp/nimbus-test-images")
    subprocess.run([BINARY, "image", "build", "--data-dir", data_dir, "--cache-dir", cache], check=True,
                   stdout=subprocess.DEVNULL)
    # The bzImage a user boots (the image boots the same kernel uncompressed, docs/images.md).
    kernel = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"), key=kernel_version)[-1]
    initramfs = busybox_initramfs(workdir)
    server, port = serve(data_dir)
    try:
        ec2 = client(port, "ec2")
        ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
        user_data = f"#!/bin/sh\necho {USER_DATA_MARKER.decode()} > /dev/console\n"
        # Warm-up launch: the accelerator probe and first-time costs are not part of a launch.
        warm = ec2.run_instances(ImageId=ami, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        wait_file_contains(os.path.join(data_dir, "instances", warm, "serial.log"), BOOT_MARKER)
        ec2.terminate_instances(InstanceIds=[warm])
        accel = accelerator()
        load_before = os.getloadavg()[0]
        nimbus_boot, nimbus_user_data, nimbus_rss, bare_times = [], [], [], []
        for _ in range(RUNS):
            started = time.time()
            instance = ec2.run_instances(ImageId=ami, InstanceType=INSTANCE_TYPE, MinCount=1, MaxCount=1,
                                         UserData=user_data)["Instances"][0]["InstanceId"]
            log = os.path.join(data_dir, "instances", instance, "serial.log")
            nimbus_boot.append(wait_file_contains(log, BOOT_MARKER) - started)
            nimbus_user_data.append(wait_file_contains(log, USER_DATA_MARKER) - started)
            time.sleep(1)
            pid = int(open(os.path.join(data_dir, "instances", instance, "qemu.pid")).read())
            nimbus_rss.append(rss_kib(pid))
            ec2.terminate_instances(InstanceIds=[instance])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance], WaiterConfig={"Delay": 1})
            bare_times.append(bare_boot(kernel, initramfs, workdir, accel))
        started = time.time()
        ten = [i["InstanceId"] for i in ec2.run_instances(ImageId=ami, InstanceType=INSTANCE_TYPE, MinCount=10, MaxCount=10,
                                                        UserData=user_data)["Instances"]]
        for instance in ten:
            wait_file_contains(os.path.join(data_dir, "instances", instance, "serial.log"), USER_DATA_MARKER, timeout=900)
        ten_seconds = time.time() - started
        ec2.terminate_instances(InstanceIds=ten)
        ec2.get_waiter("instance_terminated").wait(InstanceIds=ten, WaiterConfig={"Delay": 2, "MaxAttempts": 300})
        report(accel, nimbus_boot, nimbus_user_data, bare_times, nimbus_rss, ten_seconds,
               (load_before, os.getloadavg()[0]))
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def report(accel, nimbus_boot, nimbus_user_data, bare, nimbus_rss, ten_seconds, load):
    median = statistics.median
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    runs = lambda values: ", ".join(f"{v:.2f}" for v in values)
    lines = [
        f"## Instance launch — {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}; accelerator {accel}; {INSTANCE_TYPE} "
        f"({VCPUS} vCPU, {MEMORY_MIB} MiB), q35, nimbus-minimal image; median of {len(bare)} runs, alternating. "
        "Baseline: bare qemu-system-x86_64, same kernel, busybox-only initramfs printing a marker, `console=ttyS0`. "
        f"Host load average {load[0]:.1f} at the start, {load[1]:.1f} at the end.",
        "",
        "| measure | nimbus | bare kernel boot | ratio |",
        "|---|---|---|---|",
        f"| RunInstances → user-data marker on the console (user data from IMDS) | {median(nimbus_user_data):.2f} s "
        f"({runs(nimbus_user_data)}) | {median(bare):.2f} s from exec ({runs(bare)}) | "
        f"**{median(nimbus_user_data) / median(bare):.2f}x** |",
        f"| RunInstances → guest init running (`{BOOT_MARKER.decode()}`) | {median(nimbus_boot):.2f} s | — | "
        f"{median(nimbus_boot) / median(bare):.2f}x |",
        f"| host memory (QEMU RSS) | {median(nimbus_rss) / 1024:.1f} MiB | — | — |",
        f"| MaxCount=10, RunInstances → all 10 user-data markers | {ten_seconds:.1f} s = "
        f"{10 * 60 / ten_seconds:.1f} instances/min | — | — |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write("\n" + text)


if __name__ == "__main__":
    main()
