"""Collector cost: host CPU that nimbus spends measuring running instances.

Ten t3.nano instances run on one nimbus; the same nimbus is measured over the same window
twice, with the collectors reading every second (`metrics_interval_secs = 1`) and, as the
peer, with them reading every hour (so they never run in the window). Both runs do
everything else alike (status checks, heartbeats, the reconcilers). The difference of
nimbus's own CPU time (utime + stime of the nimbus process, not of QEMU), over the window,
as a fraction of one core, is the collectors' cost. Appended to bench/RESULTS.md."""

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("NIMBUS_BIN", os.path.join(ROOT, "target", "release", "nimbus"))

from conftest import Nimbus  # noqa: E402
from test_instances import IMAGE_CACHE  # noqa: E402

INSTANCES = int(os.environ.get("BENCH_INSTANCES", "10"))
WINDOW_SECONDS = int(os.environ.get("BENCH_WINDOW", "60"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(interval_secs):
    """nimbus's CPU over the window, as a fraction of one core, with INSTANCES running."""
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-collect-") as data_dir:
        binary = os.environ["NIMBUS_BIN"]
        build = subprocess.run([binary, "image", "build", "--data-dir", data_dir, "--cache-dir", IMAGE_CACHE],
                               capture_output=True, text=True)
        assert build.returncode == 0, build.stderr
        server = Nimbus(data_dir, config_text=f"metrics_interval_secs = {interval_secs}\n").start()
        try:
            ec2 = server.client()
            ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
            ids = [i["InstanceId"] for i in ec2.run_instances(
                ImageId=ami, InstanceType="t3.nano", MinCount=INSTANCES, MaxCount=INSTANCES,
                Monitoring={"Enabled": True})["Instances"]]
            ec2.get_waiter("instance_status_ok").wait(InstanceIds=ids, WaiterConfig={"Delay": 2, "MaxAttempts": 300})
            before, started = cpu_seconds(server.process.pid), time.time()
            time.sleep(WINDOW_SECONDS)
            used = cpu_seconds(server.process.pid) - before
            fraction = used / (time.time() - started)
            ec2.terminate_instances(InstanceIds=ids)
            ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
            return fraction
        finally:
            server.stop()


def main():
    load = os.getloadavg()[0]
    every_second = measure(1)
    never = measure(3600)
    cost = every_second - never
    lines = [
        f"## Collector CPU — {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%MZ')}",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}; binary {os.path.relpath(os.environ['NIMBUS_BIN'], ROOT)}. "
        f"{INSTANCES} running t3.nano instances with detailed monitoring, nimbus's own CPU (utime+stime, "
        f"not QEMU's) over {WINDOW_SECONDS} s once every instance's status checks are ok. Load average "
        f"{load:.1f} at the start.",
        "",
        "| collectors read every | nimbus CPU (fraction of one core) |",
        "|---|---|",
        f"| 1 s | {every_second * 100:.2f}% |",
        f"| never in the window (1 h), the peer | {never * 100:.2f}% |",
        f"| **collection cost** | **{cost * 100:.2f}%** (target < 2%) |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
