"""Measuring and self-healing with real VMs: DescribeInstanceStatus from the observed checks,
a hung guest (its QEMU stopped with SIGSTOP) failing the instance check, recovery of an
instance whose QEMU is killed with -9 (same ID, IP and volume data; the console says so),
AutoRecovery disabled leaving it stopped with a state reason, MonitorInstances/
UnmonitorInstances, ModifyInstanceMaintenanceOptions, and the Prometheus scrape."""

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Nimbus
from test_instances import IMAGE_CACHE, console, wait_console
from test_volumes import wait_for, wait_volume

# Every boot: wait for the data volume; write a marker to it the first time, show it after.
USER_DATA = """#!/bin/sh
while [ ! -b /dev/vdb ]; do sleep 0.2; done
FOUND=$(dd if=/dev/vdb bs=512 count=1 2>/dev/null | tr -d '\\000' | grep -o 'health-marker-[a-z0-9-]*')
if [ -n "$FOUND" ]; then
  echo "NIMBUS-FOUND $FOUND" > /dev/console
else
  echo "health-marker-kept" | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null
  echo "NIMBUS-WROTE" > /dev/console
fi
"""

RUNNING = {"Delay": 1, "MaxAttempts": 300}


@contextlib.contextmanager
def measuring_cloud():
    """A nimbus with the default image, taking its measurements every second; its instances
    are terminated at the end."""
    with tempfile.TemporaryDirectory(prefix="nimbus-health-test-") as data_dir:
        build = subprocess.run([os.environ.get("NIMBUS_BIN", "target/debug/nimbus"), "image", "build",
                                "--data-dir", data_dir, "--cache-dir", IMAGE_CACHE],
                               capture_output=True, text=True, timeout=1200)
        assert build.returncode == 0, build.stdout + build.stderr
        server = Nimbus(data_dir, config_text="metrics_interval_secs = 1\n").start()
        try:
            yield server
            ec2 = server.client()
            ids = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
            if ids:
                ec2.terminate_instances(InstanceIds=ids)
                ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig=RUNNING)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def cloud():
    with measuring_cloud() as server:
        yield server


@pytest.fixture(scope="module")
def ec2(cloud):
    return cloud.client()


@pytest.fixture(scope="module")
def ami(ec2):
    images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"]
    return images[0]["ImageId"]


def qemu_pid(cloud, instance_id):
    with open(os.path.join(cloud.data_dir, "instances", instance_id, "qemu.pid")) as f:
        return int(f.read().strip())


def describe(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def status(ec2, instance_id):
    statuses = ec2.describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)["InstanceStatuses"]
    return statuses[0]


def checks(ec2, instance_id):
    s = status(ec2, instance_id)
    return s["SystemStatus"]["Status"], s["InstanceStatus"]["Status"]


def launch_with_data_volume(ec2, ami, **extra):
    instance = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                 UserData=USER_DATA, **extra)["Instances"][0]
    instance_id = instance["InstanceId"]
    volume_id = ec2.create_volume(AvailabilityZone=instance["Placement"]["AvailabilityZone"], Size=1)["VolumeId"]
    wait_volume(ec2, volume_id)
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=RUNNING)
    ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    wait_console(ec2, instance_id, "NIMBUS-WROTE")
    return instance_id, volume_id


def scrape(cloud):
    """The Prometheus text format, parsed: {(name, frozenset(labels)): value}."""
    with urllib.request.urlopen(cloud.endpoint + "/_nimbus/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = sample.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = frozenset(label.findall(match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def test_checks_recovery_monitoring_and_scrape(cloud, ec2, ami):
    instance_id, volume_id = launch_with_data_volume(ec2, ami)
    before = describe(ec2, instance_id)
    assert before["Monitoring"]["State"] == "disabled"
    assert before["MaintenanceOptions"]["AutoRecovery"] == "default"

    # Both checks pass for a running instance.
    wait_for(lambda: checks(ec2, instance_id) == ("ok", "ok"), timeout=60, interval=0.5)
    details = status(ec2, instance_id)["InstanceStatus"]["Details"]
    assert details == [{"Name": "reachability", "Status": "passed"}]
    ok = ec2.describe_instance_status(Filters=[{"Name": "instance-status.status", "Values": ["ok"]}])
    assert [s["InstanceId"] for s in ok["InstanceStatuses"]] == [instance_id]
    impaired = ec2.describe_instance_status(Filters=[{"Name": "system-status.status", "Values": ["impaired"]}])
    assert impaired["InstanceStatuses"] == []

    # A guest that makes no progress (its QEMU stopped) fails the instance check only.
    pid = qemu_pid(cloud, instance_id)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: checks(ec2, instance_id) == ("ok", "impaired"), timeout=60, interval=0.5)
        detail = status(ec2, instance_id)["InstanceStatus"]["Details"][0]
        assert detail["Status"] == "failed" and "ImpairedSince" in detail
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: checks(ec2, instance_id) == ("ok", "ok"), timeout=60, interval=0.5)

    # Detailed monitoring on and off.
    answer = ec2.monitor_instances(InstanceIds=[instance_id])["InstanceMonitorings"]
    assert answer == [{"InstanceId": instance_id, "Monitoring": {"State": "pending"}}]
    assert describe(ec2, instance_id)["Monitoring"]["State"] == "enabled"
    answer = ec2.unmonitor_instances(InstanceIds=[instance_id])["InstanceMonitorings"]
    assert answer[0]["Monitoring"]["State"] == "disabling"
    assert describe(ec2, instance_id)["Monitoring"]["State"] == "disabled"

    # kill -9 of its QEMU: the same instance runs again, with its IP and its volume's data.
    os.kill(pid, signal.SIGKILL)
    wait_console(ec2, instance_id, r"nimbus: instance \S+ recovered")
    found = wait_console(ec2, instance_id, r"NIMBUS-FOUND (health-marker-\S+)")
    assert found.group(1) == "health-marker-kept"
    after = describe(ec2, instance_id)
    assert after["State"]["Name"] == "running"
    assert after["PrivateIpAddress"] == before["PrivateIpAddress"]
    assert {m["Ebs"]["VolumeId"] for m in after["BlockDeviceMappings"]} == \
        {m["Ebs"]["VolumeId"] for m in before["BlockDeviceMappings"]} | {volume_id}
    assert qemu_pid(cloud, instance_id) != pid
    wait_for(lambda: checks(ec2, instance_id) == ("ok", "ok"), timeout=60, interval=0.5)

    # The scrape parses and counts what happened.
    samples = scrape(cloud)
    requests = {labels: value for (name, labels), value in samples.items() if name == "nimbus_requests_total"}
    assert requests[frozenset({("action", "DescribeInstanceStatus"), ("status", "200")})] >= 3
    assert samples[("nimbus_vms_running", frozenset())] == 1
    assert samples[("nimbus_volumes", frozenset({("state", "in-use")}))] == 2
    assert samples[("nimbus_nbd_bytes_total", frozenset({("direction", "write")}))] > 0
    for reconciler in ("storage", "network", "status-checks", "metrics", "alarms"):
        assert samples[("nimbus_reconciler_passes_total", frozenset({("reconciler", reconciler)}))] > 0
    buckets = [(dict(labels), value) for (name, labels), value in samples.items()
               if name == "nimbus_request_duration_seconds_bucket" and ("action", "RunInstances") in labels]
    assert any(labels["le"] == "+Inf" and value == 1 for labels, value in buckets)


def test_without_auto_recovery_a_killed_instance_stays_stopped(cloud, ec2, ami):
    instance_id = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    Monitoring={"Enabled": True},
                                    MaintenanceOptions={"AutoRecovery": "disabled"})["Instances"][0]["InstanceId"]
    instance = describe(ec2, instance_id)
    assert instance["MaintenanceOptions"]["AutoRecovery"] == "disabled"
    assert instance["Monitoring"]["State"] == "enabled"
    answer = ec2.modify_instance_maintenance_options(InstanceId=instance_id, AutoRecovery="default")
    assert answer["AutoRecovery"] == "default"
    answer = ec2.modify_instance_maintenance_options(InstanceId=instance_id, AutoRecovery="disabled")
    assert answer["InstanceId"] == instance_id and answer["AutoRecovery"] == "disabled"
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=RUNNING)
    wait_for(lambda: checks(ec2, instance_id)[0] == "ok", timeout=60, interval=0.5)

    os.kill(qemu_pid(cloud, instance_id), signal.SIGKILL)
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=RUNNING)
    stopped = describe(ec2, instance_id)
    assert stopped["StateReason"]["Code"] == "Server.InternalError"
    assert "recovered" not in console(ec2, instance_id)
    assert checks(ec2, instance_id) == ("not-applicable", "not-applicable")


def test_a_guest_that_powers_off_is_stopped_not_recovered(ec2, ami):
    """QEMU exits both when the guest powers off and when it is killed; only the second is a
    failure to recover from."""
    instance_id = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    UserData="#!/bin/sh\necho NIMBUS-POWEROFF > /dev/console\npoweroff -f\n",
                                    )["Instances"][0]["InstanceId"]
    wait_console(ec2, instance_id, "NIMBUS-POWEROFF")
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=RUNNING)
    stopped = describe(ec2, instance_id)
    assert "InstanceInitiatedShutdown" in stopped["StateTransitionReason"]
    assert "recovered" not in console(ec2, instance_id)


def test_a_vm_killed_while_nimbus_is_down_is_recovered_on_restart(cloud, ami):
    ec2 = cloud.client()
    instance_id = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=RUNNING)
    address = describe(ec2, instance_id)["PrivateIpAddress"]
    pid = qemu_pid(cloud, instance_id)
    cloud.kill9()
    os.kill(pid, signal.SIGKILL)
    cloud.start()
    ec2 = cloud.client()
    wait_console(ec2, instance_id, r"nimbus: instance \S+ recovered")
    wait_for(lambda: checks(ec2, instance_id) == ("ok", "ok"), timeout=60, interval=0.5)
    assert describe(ec2, instance_id)["PrivateIpAddress"] == address
    assert qemu_pid(cloud, instance_id) != pid
    ec2.terminate_instances(InstanceIds=[instance_id])


def test_bad_health_requests(ec2, ami):
    def code(call):
        with pytest.raises(ClientError) as error:
            call()
        return error.value.response["Error"]["Code"]

    assert code(lambda: ec2.monitor_instances(InstanceIds=["i-00000000000000000"])) == "InvalidInstanceID.NotFound"
    assert code(lambda: ec2.modify_instance_maintenance_options(
        InstanceId="i-00000000000000000", AutoRecovery="default")) == "InvalidInstanceID.NotFound"
    instance_id = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    assert code(lambda: ec2.modify_instance_maintenance_options(
        InstanceId=instance_id, RebootMigration="disabled")) == "UnsupportedOperation"
    assert code(lambda: ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1,
                                          MaintenanceOptions={"AutoRecovery": "sometimes"})) == "InvalidParameterValue"
    assert code(lambda: ec2.describe_instance_status(
        Filters=[{"Name": "instance-status.colour", "Values": ["ok"]}])) == "InvalidParameterValue"
    ec2.terminate_instances(InstanceIds=[instance_id])
