"""Hostile guests: a guest that floods what it shares with the host cannot hurt the host or
its neighbours (issue 20, "Every channel from a guest is bounded").

Two instances in one VPC. The attacker, once the test tags it `attack=go`, stops its
heartbeat agent and writes one endless line to the heartbeat port, asks the metadata service
for 5,000 IMDSv2 tokens (one curl, a connection per request), and opens 2,000 connections to
169.254.169.254 three times over, holding each batch (bash's /dev/tcp). Its neighbour
(IMDSv2 required, with an instance profile) reads a token, its instance ID and its role's
credentials every two seconds and prints what it got to its console. Meanwhile nimbus's
memory and descriptors stay bounded and the API answers; the figures are printed (-s).

Needs root (the network is real) and the default image (built into IMAGE_CACHE).
"""

import json
import os
import re
import time

import pytest

from test_instances import cloud, wait_console  # noqa: F401 (cloud is a fixture)
from test_volumes import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the data plane needs root"),
]

IMDS = "http://169.254.169.254"

NEIGHBOUR = f"""#!/bin/sh
n=0
while true; do
  n=$((n + 1))
  TOKEN=$(curl -s -m 20 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" {IMDS}/latest/api/token)
  get() {{ curl -s -m 20 -H "X-aws-ec2-metadata-token: $TOKEN" "{IMDS}/latest/meta-data/$1"; }}
  ID=$(get instance-id)
  ROLE=$(get iam/security-credentials/)
  KEY=$(get "iam/security-credentials/$ROLE" | grep -o 'ASIA[A-Z2-7]*')
  echo "NEIGHBOUR n=$n id=[$ID] key=[$KEY]" > /dev/console
  sleep 2
done
"""

ATTACKER = r"""#!/bin/bash
exec 2> /dev/null
echo "ATTACK-WAITING" > /dev/console
until [ "$(curl -s http://169.254.169.254/latest/meta-data/tags/instance/attack)" = go ]; do sleep 2; done

# The heartbeat port: its agent holds it (one opener at a time), so the agent goes first.
for name in /sys/class/virtio-ports/*/name; do
  [ "$(cat "$name")" = org.nimbus.heartbeat ] && { dir=${name%/name}; PORT=/dev/${dir##*/}; }
done
for proc in /proc/[0-9]*; do ls -l "$proc/fd" | grep -q vport && kill "${proc#/proc/}"; done
sleep 1
head -c 50000000 /dev/zero > "$PORT" &
echo "ATTACK heartbeat port=$PORT" > /dev/console

# 5,000 tokens from one curl (its URL glob); nimbus answers one request per connection.
( curl -s -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" -w '%{http_code}\n' \
    "http://169.254.169.254/latest/api/token?[1-5000]" > /tmp/tokens
  echo "ATTACK tokens issued=$(grep -c '200$' /tmp/tokens) throttled=$(grep -c '429$' /tmp/tokens) failed=$(grep -c '000$' /tmp/tokens)" > /dev/console
) &
TOKENS=$!
# The token flood is under way before the connection flood competes with it for the slots.
until [ -s /tmp/tokens ]; do sleep 0.2; done

# 2,000 connections, held, three times over; ESTABLISHED ones are those nimbus keeps open.
ulimit -n 8192
for round in 1 2 3; do
  fds=()
  for i in $(seq 1 2000); do
    exec {fd}<> /dev/tcp/169.254.169.254/80 && fds+=($fd)
  done
  sleep 3
  held=$(grep -c ' FEA9FEA9:0050 01 ' /proc/net/tcp)
  echo "ATTACK connections round=$round opened=${#fds[@]} established=$held states=$(awk '$3 == "FEA9FEA9:0050" {print $4}' /proc/net/tcp | sort | uniq -c | tr -s ' \n' ' ')" > /dev/console
  for fd in "${fds[@]}"; do exec {fd}>&-; done
done
wait $TOKENS
echo "ATTACK-DONE" > /dev/console
"""

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def neighbour_lines(ec2, instance_id):
    output = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
    return [(int(n), seen, key) for n, seen, key in re.findall(r"NEIGHBOUR n=(\d+) id=\[(.*?)\] key=\[(.*?)\]", output)]


@pytest.fixture(scope="module")
def guests(cloud):  # noqa: F811
    ec2 = cloud.client()
    iam = cloud.client("iam")
    iam.create_role(RoleName="hostile-neighbour", AssumeRolePolicyDocument=json.dumps(TRUST))
    profile = iam.create_instance_profile(InstanceProfileName="hostile-neighbour")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="hostile-neighbour", RoleName="hostile-neighbour")
    ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]

    def launch(user_data, **extra):
        return ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1, SubnetId=subnet,
                                 UserData=user_data, **extra)["Instances"][0]["InstanceId"]
    neighbour = launch(NEIGHBOUR, MetadataOptions={"HttpTokens": "required"},
                       IamInstanceProfile={"Arn": profile["Arn"]})
    attacker = launch(ATTACKER, MetadataOptions={"InstanceMetadataTags": "enabled"})
    ids = [neighbour, attacker]
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    wait_console(ec2, neighbour, r"NEIGHBOUR n=\d+ id=\[i-")
    wait_console(ec2, attacker, "ATTACK-WAITING")
    yield {"ec2": ec2, "neighbour": neighbour, "attacker": attacker}
    ec2.terminate_instances(InstanceIds=ids)
    ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_vpc(VpcId=vpc)


def test_an_attacking_guest_leaves_the_host_and_its_neighbour_unharmed(cloud, guests):  # noqa: F811
    ec2, neighbour, attacker = guests["ec2"], guests["neighbour"], guests["attacker"]
    pid = cloud.process.pid
    base_rss, base_fds = rss_kib(pid), descriptors(pid)
    before = max(n for n, _, _ in neighbour_lines(ec2, neighbour))

    ec2.create_tags(Resources=[attacker], Tags=[{"Key": "attack", "Value": "go"}])
    peak_rss, peak_fds, api_calls = base_rss, base_fds, 0
    deadline = time.time() + 1200
    while not re.search("ATTACK-DONE", ec2.get_console_output(InstanceId=attacker, Latest=True).get("Output", "")):
        assert time.time() < deadline, "the attack did not finish"
        peak_rss, peak_fds = max(peak_rss, rss_kib(pid)), max(peak_fds, descriptors(pid))
        # The API answers throughout.
        assert ec2.describe_instances(InstanceIds=[neighbour])["Reservations"][0]["Instances"][0]["State"]["Name"] == "running"
        api_calls += 1
        time.sleep(1)
    during = [line for line in neighbour_lines(ec2, neighbour) if line[0] > before]

    attack = ec2.get_console_output(InstanceId=attacker, Latest=True)["Output"]
    print(f"\nnimbus RSS {base_rss} KiB before, {peak_rss} KiB at the peak; descriptors {base_fds} -> {peak_fds};"
          f" {api_calls} API calls answered; {len(during)} neighbour rounds during the attack")
    print("\n".join(re.findall(r"ATTACK (?:heartbeat|tokens|connections).*", attack)))

    # The neighbour got its instance ID and its role's credentials, with a token, all along.
    assert len(during) >= 3, during
    assert all(seen == neighbour and key.startswith("ASIA") for _, seen, key in during), during
    # The attacker connected thousands of times, and nimbus kept only some of them open.
    rounds = [(int(o), int(e)) for o, e in re.findall(r"round=\d opened=(\d+) established=(\d+)", attack)]
    assert len(rounds) == 3 and all(opened >= 1000 and held < opened for opened, held in rounds), attack
    issued, throttled, failed = map(int, re.search(r"tokens issued=(\d+) throttled=(\d+) failed=(\d+)", attack).groups())
    assert issued + throttled + failed == 5000 and issued > 0, attack
    # The heartbeat's endless line was given up on, not buffered.
    with open(cloud.log_path, errors="replace") as f:
        log = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
    print("\n".join(line for line in log.splitlines() if "heartbeat" in line))
    assert "heartbeat line over 256 bytes" in log
    # nimbus held at most the attacker's 64 connections, not its thousands, and bounded memory.
    assert peak_fds - base_fds < 500, (base_fds, peak_fds)
    assert peak_rss - base_rss < 256 * 1024, (base_rss, peak_rss)
