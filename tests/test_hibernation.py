"""Hibernation, for real: StopInstances with Hibernate saves a guest's memory and device state
to a private file next to its volumes, the saved state survives kill -9 of nimbus, and
StartInstances resumes the guest where it was: the same processes, the same tmpfs, no new
boot. One t3.micro guest for the module (and one that never boots)."""

import os
import re
import stat

import pytest
from botocore.exceptions import ClientError

from test_instances import cloud, console, ec2vm, minimal_ami, wait_console  # noqa: F401
from test_volumes import wait_for

# A background process prints its PID, a counter, the uptime and what it finds in tmpfs
# (/run is tmpfs in nimbus-minimal) to the console every second.
USER_DATA = """#!/bin/sh
echo "tmpfs-marker-$(cat /proc/sys/kernel/random/uuid)" > /run/hibernation-marker
cat > /run/counter.sh <<'EOF'
#!/bin/sh
n=0
while true; do
  n=$((n + 1))
  echo "HIB-COUNTER pid=$$ n=$n up=$(cut -d' ' -f1 /proc/uptime) marker=$(cat /run/hibernation-marker)" > /dev/console
  sleep 1
done
EOF
sh /run/counter.sh &
"""

COUNTER = re.compile(r"HIB-COUNTER pid=(\d+) n=(\d+) up=([\d.]+) marker=(\S+)")
BOOT_LINE = "booted kernel"


def counters(ec2, instance_id):
    """(pid, n, uptime, marker) of every counter line on the console, in order."""
    return [(int(p), int(n), float(up), marker) for p, n, up, marker in COUNTER.findall(console(ec2, instance_id))]


def state_file(cloud, instance_id):
    return os.path.join(cloud.data_dir, "hibernation", f"{instance_id}.state")


def error_of(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response["Error"]


def wait_state(ec2, instance_id, name):
    waiter = {"stopped": "instance_stopped", "running": "instance_running", "terminated": "instance_terminated"}[name]
    ec2.get_waiter(waiter).wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 600})


def describe(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_an_instance_not_configured_for_hibernation_is_refused(ec2vm, minimal_ami):
    instance = ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1)["Instances"][0]
    instance_id = instance["InstanceId"]
    try:
        assert instance["HibernationOptions"] == {"Configured": False}
        error = error_of(lambda: ec2vm.stop_instances(InstanceIds=[instance_id], Hibernate=True))
        assert error["Code"] == "UnsupportedHibernationConfiguration"
        assert error["Message"] == ("The instance can't be hibernated because it was not configured at launch "
                                    f"for hibernation: {instance_id}")
    finally:
        ec2vm.terminate_instances(InstanceIds=[instance_id])


def test_hibernate_survives_kill9_and_resumes_the_same_processes(cloud, ec2vm, minimal_ami):
    ec2 = ec2vm
    instance = ec2.run_instances(ImageId=minimal_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                 UserData=USER_DATA, HibernationOptions={"Configured": True})["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["HibernationOptions"] == {"Configured": True}
    wait_state(ec2, instance_id, "running")
    assert describe(ec2, instance_id)["HibernationOptions"] == {"Configured": True}
    wait_for(lambda: len(counters(ec2, instance_id)) >= 3, timeout=300, interval=1)
    pid, _, _, marker = counters(ec2, instance_id)[-1]

    stopping = ec2.stop_instances(InstanceIds=[instance_id], Hibernate=True)["StoppingInstances"][0]
    assert stopping["CurrentState"]["Name"] == "stopping"
    wait_state(ec2, instance_id, "stopped")
    stopped = describe(ec2, instance_id)
    assert stopped["StateReason"] == {"Code": "Client.UserInitiatedHibernate",
                                      "Message": "Client.UserInitiatedHibernate: User initiated hibernate"}
    before = counters(ec2, instance_id)
    assert {c[0] for c in before} == {pid}
    path = state_file(cloud, instance_id)
    info = os.stat(path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
    assert info.st_size > 0

    # A stopped (hibernated) instance cannot hibernate again.
    assert error_of(lambda: ec2.stop_instances(InstanceIds=[instance_id], Hibernate=True))["Code"] == \
        "IncorrectInstanceState"

    # The saved state and the record of it survive kill -9.
    cloud.kill9()
    cloud.start()
    ec2 = cloud.client()
    assert describe(ec2, instance_id)["State"]["Name"] == "stopped"
    assert os.path.getsize(path) == info.st_size

    ec2.start_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "running")
    last_n, last_up = before[-1][1], before[-1][2]
    wait_for(lambda: any(n > last_n for _, n, _, _ in counters(ec2, instance_id)), timeout=300, interval=1)
    after = [c for c in counters(ec2, instance_id) if c[1] > last_n]
    # The same process goes on counting, with the same tmpfs; the guest did not boot again
    # and its clock went on from where it stopped.
    assert {c[0] for c in after} == {pid}, after
    assert after[0][1] == last_n + 1, (before[-3:], after[:3])
    assert {c[3] for c in after} == {marker}
    assert after[0][2] >= last_up
    assert console(ec2, instance_id).count(BOOT_LINE) == 1
    assert describe(ec2, instance_id).get("StateReason") is None
    assert not os.path.exists(path), "the state is used up once the guest runs again"

    # Its status checks start afresh and pass: the heartbeat agent resumed too.
    def checks_ok():
        statuses = ec2.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
        return statuses and statuses[0]["InstanceStatus"]["Status"] == "ok" and \
            statuses[0]["SystemStatus"]["Status"] == "ok"
    wait_for(checks_ok, timeout=120, interval=1)

    # Hibernated again, then terminated: the state file goes with the instance.
    ec2.stop_instances(InstanceIds=[instance_id], Hibernate=True)
    wait_state(ec2, instance_id, "stopped")
    assert os.path.getsize(path) > 0
    ec2.terminate_instances(InstanceIds=[instance_id])
    wait_state(ec2, instance_id, "terminated")
    assert not os.path.exists(path)
