"""Real instances: QEMU VMs booted from the nimbus-minimal AMI, user data via IMDS, console,
lifecycle, hot attach/detach, SSH and restarts — all driven through boto3."""

import base64
import contextlib
import os
import pwd
import re
import subprocess
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Nimbus
from test_foundation import error_code
from test_volumes import qemu_io, wait_for, wait_volume

IMAGE_CACHE = os.environ.get("NIMBUS_TEST_IMAGE_DIR", "/tmp/nimbus-test-images")

USER_DATA = """#!/bin/sh
# IMDSv2: a session token (imds-token speaks HTTP PUT with nc, busybox wget cannot PUT).
TOKEN=$(imds-token 60)
ID=$(wget -q -O - --header "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/instance-id)
V1=$(wget -q -O - http://169.254.169.254/latest/meta-data/instance-id 2>&1 || true)
echo "NIMBUS-MARKER id=$ID cpus=$(nproc) mem=$(awk '/MemTotal/ {print $2}' /proc/meminfo) v1=[$V1]" > /dev/console
while [ ! -b /dev/vdb ]; do sleep 0.2; done
echo "volume-marker-$ID" | dd of=/dev/vdb bs=512 conv=sync,fsync 2>/dev/null
echo "NIMBUS-WROTE-VOLUME" > /dev/console
"""


def image_server(data_dir, **server_args):
    """A started nimbus on `data_dir` with the default image built (cached across runs)."""
    build = subprocess.run([os.environ.get("NIMBUS_BIN", "target/debug/nimbus"), "image", "build",
                            "--data-dir", data_dir, "--cache-dir", IMAGE_CACHE],
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout + build.stderr
    return Nimbus(data_dir, **server_args).start()


def stop_leaving_no_vm(server):
    """Terminates every instance of `server`, stops it, and checks no QEMU of it is left."""
    ec2 = server.client()
    ids = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
        ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    server.stop()
    leftovers = subprocess.run(["pgrep", "-f", f"qemu-system.*{server.data_dir}"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "QEMU processes left behind"


@contextlib.contextmanager
def running_cloud(config_text=None):
    """A nimbus with the default image built (cached across runs) on its data dir; its
    instances are terminated and no QEMU may be left at the end."""
    with tempfile.TemporaryDirectory(prefix="nimbus-vm-test-") as data_dir:
        server = image_server(data_dir, config_text=config_text)
        yield server
        stop_leaving_no_vm(server)


@pytest.fixture(scope="module")
def cloud():
    """A nimbus with the default image built on its data dir."""
    with running_cloud() as server:
        yield server


@pytest.fixture(scope="module")
def ec2vm(cloud):
    return cloud.client()


@pytest.fixture(scope="module")
def minimal_ami(ec2vm):
    images = ec2vm.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"]
    assert len(images) == 1, images
    return images[0]["ImageId"]


def console(ec2, instance_id):
    output = ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output", "")
    return output


def wait_console(ec2, instance_id, pattern, timeout=300):
    return wait_for(lambda: re.search(pattern, console(ec2, instance_id)), timeout=timeout, interval=1)


def test_images_listed(ec2vm, minimal_ami):
    image = ec2vm.describe_images(ImageIds=[minimal_ami])["Images"][0]
    assert image["State"] == "available" and image["RootDeviceType"] == "ebs"
    root = image["BlockDeviceMappings"][0]
    assert root["DeviceName"] == image["RootDeviceName"] and root["Ebs"]["SnapshotId"].startswith("snap-")


def test_launch_user_data_attach_detach_lifecycle(cloud, ec2vm, minimal_ami):
    key = ec2vm.create_key_pair(KeyName="vm-key", KeyType="ed25519")
    reservation = ec2vm.run_instances(
        ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1, KeyName="vm-key",
        UserData=USER_DATA, MetadataOptions={"HttpTokens": "required"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}]}])
    instance = reservation["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["State"]["Name"] == "pending" and instance["InstanceType"] == "t3.nano"
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    marker = wait_console(ec2vm, instance_id, r"NIMBUS-MARKER id=(\S+) cpus=(\d+) mem=(\d+) v1=\[(.*)\]")
    assert marker.group(1) == instance_id
    assert "401" in marker.group(4)  # HttpTokens=required: no token, no metadata
    assert int(marker.group(2)) == 2
    assert 400_000 < int(marker.group(3)) <= 512 * 1024  # t3.nano: 512 MiB
    if os.geteuid() == 0:
        # QEMU drops to an unprivileged uid of its own, from nimbus-qemu's subordinate range
        # (the metadata service is reached over the VPC's network only: tests/test_network.py).
        with open(os.path.join(cloud.data_dir, "instances", instance_id, "qemu.pid")) as f:
            pid = f.read().strip()
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        first, count = next(line.split(":")[1:] for line in open("/etc/subuid") if line.startswith("nimbus-qemu:"))
        assert len(set(uids)) == 1 and int(first) <= int(uids[0]) < int(first) + int(count), uids
    described = ec2vm.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["web"]}])["Reservations"]
    assert described[0]["Instances"][0]["InstanceId"] == instance_id
    root_volume = described[0]["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]

    # Hot-attach a volume: the user data waits for /dev/vdb and writes a marker to it.
    volume_id = ec2vm.create_volume(AvailabilityZone=instance["Placement"]["AvailabilityZone"], Size=1)["VolumeId"]
    wait_volume(ec2vm, volume_id)
    ec2vm.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    ec2vm.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
    wait_console(ec2vm, instance_id, "NIMBUS-WROTE-VOLUME")
    # The instance check turns ok once the guest's heartbeats are seen.
    status = wait_for(lambda: next((s for s in ec2vm.describe_instance_status(InstanceIds=[instance_id])["InstanceStatuses"]
                                    if s["InstanceStatus"]["Status"] == "ok"), None), timeout=120, interval=1)
    assert status["InstanceState"]["Name"] == "running"
    ec2vm.detach_volume(VolumeId=volume_id)
    ec2vm.get_waiter("volume_available").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
    dump = qemu_io(cloud, volume_id, "read -v 0 64")
    rows = [line.split(":", 1)[1].split()[:16] for line in dump.splitlines() if re.match(r"^[0-9a-f]{8}:", line)]
    data = bytes(int(byte, 16) for row in rows for byte in row)
    assert data.startswith(f"volume-marker-{instance_id}".encode()), data

    # Stop and start keep the root volume; reboot works.
    ec2vm.stop_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    ec2vm.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.micro"})
    ec2vm.start_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    wait_console(ec2vm, instance_id, r"NIMBUS-MARKER id=\S+ cpus=2 mem=(9\d{5}|10\d{5})")
    ec2vm.reboot_instances(InstanceIds=[instance_id])
    wait_for(lambda: len(re.findall("NIMBUS-MARKER", console(ec2vm, instance_id))) >= 3, timeout=300, interval=1)

    # Terminate deletes the DeleteOnTermination root volume and leaves the instance visible.
    ec2vm.terminate_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    wait_for(lambda: not ec2vm.describe_volumes(Filters=[{"Name": "volume-id", "Values": [root_volume]}])["Volumes"])
    with pytest.raises(ClientError) as e:
        ec2vm.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdg")
    assert error_code(e) == "IncorrectInstanceState"


def test_bad_launches(ec2vm, minimal_ami):
    with pytest.raises(ClientError) as e:
        ec2vm.run_instances(ImageId="ami-0123456789abcdef0", MinCount=1, MaxCount=1)
    assert error_code(e) == "InvalidAMIID.NotFound"
    with pytest.raises(ClientError) as e:
        ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.colossal", MinCount=1, MaxCount=1)
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2vm.run_instances(ImageId=minimal_ami, MinCount=1, MaxCount=1, UserData="x" * 17000)
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2vm.run_instances(ImageId=minimal_ami, MinCount=1, MaxCount=1, KeyName="nope")
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        ec2vm.run_instances(ImageId=minimal_ami, MinCount=1, MaxCount=1, DryRun=True)
    assert error_code(e) == "DryRunOperation"


def test_a_console_flood_keeps_the_newest_output_within_bounds(cloud, ec2vm, minimal_ami):
    """A guest printing megabytes to its console fills neither the data dir nor the answer:
    the log stays under its cap and GetConsoleOutput returns the newest 64 KiB, whole
    characters only."""
    flood = "#!/bin/sh\nyes 'flood-€-0123456789abcdef' | head -c 3000000 > /dev/console\necho CONSOLE-END > /dev/console\n"
    instance_id = ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                      UserData=flood)["Instances"][0]["InstanceId"]
    try:
        wait_console(ec2vm, instance_id, "CONSOLE-END", timeout=600)
        answer = ec2vm.get_console_output(InstanceId=instance_id, Latest=True)["Output"]
        assert len(answer.encode()) <= 64 * 1024
        assert "CONSOLE-END" in answer[-200:]
        assert "flood-€-0123456789abcdef" in answer
        log = os.path.join(cloud.data_dir, "instances", instance_id, "serial.log")
        assert os.path.getsize(log) <= 1 << 20
    finally:
        ec2vm.terminate_instances(InstanceIds=[instance_id])


def test_ssh_with_created_key_and_online_volume_growth(ec2vm, minimal_ami, tmp_path):
    key = ec2vm.create_key_pair(KeyName="ssh-key", KeyType="ed25519")
    path = tmp_path / "key.pem"
    path.write_text(key["KeyMaterial"])
    path.chmod(0o600)
    instance_id = ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                      KeyName="ssh-key")["Instances"][0]["InstanceId"]
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    wait_console(ec2vm, instance_id, "ssh ready")
    instance = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    # The default subnet maps a public IP on launch, which the host routes to the guest; the
    # default group lets in only its members until SSH is opened.
    host = instance["PublicIpAddress"]
    ec2vm.authorize_security_group_ingress(GroupId=instance["SecurityGroups"][0]["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    def ssh(command):
        result = subprocess.run(["ssh", "-i", str(path), "-o", "StrictHostKeyChecking=no",
                                 "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "BatchMode=yes",
                                 f"root@{host}", command],
                                capture_output=True, text=True, timeout=60)
        return result.returncode == 0 and result.stdout
    output = wait_for(lambda: ssh("cat /proc/cpuinfo | grep -c processor; hostname"), timeout=120, interval=2)
    assert output.split()[0] == "2"
    # The guest has the private address DescribeInstances reports.
    assert f"inet {instance['PrivateIpAddress']}/" in ssh("ip -4 addr show eth0")

    # ModifyVolume grows an attached volume and the running guest sees the new size.
    volume_id = ec2vm.create_volume(AvailabilityZone=instance["Placement"]["AvailabilityZone"], Size=1)["VolumeId"]
    wait_volume(ec2vm, volume_id)
    ec2vm.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    ec2vm.get_waiter("volume_in_use").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
    sectors = lambda: (ssh("cat /sys/block/vdb/size") or "").strip()
    assert wait_for(lambda: sectors() == str(2 << 20), timeout=120, interval=1)
    ssh("echo grown-marker > /dev/vdb && sync")
    ec2vm.modify_volume(VolumeId=volume_id, Size=3)
    assert wait_for(lambda: sectors() == str(6 << 20), timeout=120, interval=1)
    assert ssh("head -c 12 /dev/vdb") == "grown-marker"
    ec2vm.terminate_instances(InstanceIds=[instance_id])


# Numbered records, each flushed before the next, to the root file system and to the raw data
# volume (record n at sector n); the console says which were flushed and any write that failed.
IO_LOOP = """#!/bin/sh
while [ ! -b /dev/vdb ]; do sleep 0.2; done
n=0
while true; do
  n=$((n+1))
  if echo "record-$n" >> /root/io.log && sync && \\
     printf 'record-%08d' $n | dd of=/dev/vdb bs=512 seek=$n conv=sync,fsync 2>/dev/null; then
    echo "flushed $n" > /dev/console
  else
    echo "NIMBUS-IO-ERROR $n" > /dev/console
  fi
  sleep 0.2
done
"""


def flushed(ec2, instance_id):
    return max([int(n) for n in re.findall(r"flushed (\d+)", console(ec2, instance_id))] or [0])


def nbd_options(socket_path, option, name=b""):
    """Negotiates one NBD option on a unix socket; returns the reply types and payloads, or
    None when the server closes the connection (it refused the peer)."""
    import socket as sockets
    import struct
    with sockets.socket(sockets.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(socket_path)
        greeting = conn.recv(18, sockets.MSG_WAITALL)
        if len(greeting) < 18:
            return None
        conn.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        if option == 7:  # NBD_OPT_GO: name, no info requests
            payload = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        else:
            payload = b""
        conn.sendall(struct.pack(">QII", 0x49484156454F5054, option, len(payload)) + payload)
        replies = []
        while True:
            header = conn.recv(20, sockets.MSG_WAITALL)
            if len(header) < 20:
                return replies or None
            _, _, reply, length = struct.unpack(">QIII", header)
            data = conn.recv(length, sockets.MSG_WAITALL) if length else b""
            replies.append((reply, data))
            if reply == 1 or reply >= 1 << 31:  # ACK or an error ends the option
                return replies


def test_restarts_are_invisible_to_guest_io(minimal_ami, tmp_path):
    """A guest flushing writes to its root and data volumes across kill -9 and a clean restart
    of nimbus sees no I/O error, its VM is re-adopted (same QEMU), every write it flushed is
    on its volume, and its disk socket serves only its own volumes, to its own QEMU only."""
    build = subprocess.run([os.environ.get("NIMBUS_BIN", "target/debug/nimbus"), "image", "build",
                            "--data-dir", str(tmp_path), "--cache-dir", IMAGE_CACHE], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    server = Nimbus(str(tmp_path)).start()
    try:
        ec2 = server.client()
        ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                     UserData=IO_LOOP)["Instances"][0]
        instance_id = instance["InstanceId"]
        zone = instance["Placement"]["AvailabilityZone"]
        data = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
        other = ec2.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
        wait_volume(ec2, data)
        wait_volume(ec2, other)
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        ec2.attach_volume(VolumeId=data, InstanceId=instance_id, Device="/dev/sdf")
        wait_for(lambda: flushed(ec2, instance_id) >= 5, timeout=120)

        # The VM's own socket: its volumes only, and only to nimbus's user or its QEMU.
        socket_path = f"/run/nimbus/disks/{instance_id}.sock"
        listed = nbd_options(socket_path, 3)
        assert sorted(d[4:].decode() for r, d in listed if r == 2) == sorted(
            [data, instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]])
        assert nbd_options(socket_path, 7, other.encode())[-1][0] >= 1 << 31
        assert nbd_options(socket_path, 7, data.encode())[-1][0] == 1
        qemu_uid = pwd.getpwnam("nimbus-qemu").pw_uid
        probe = subprocess.run(["setpriv", f"--reuid={qemu_uid}", f"--regid={qemu_uid}", "--clear-groups",
                                "python3", "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); "
                                f"s.connect('{socket_path}'); sys.exit(0 if len(s.recv(18)) == 18 else 3)"],
                               capture_output=True, text=True, timeout=30)
        assert probe.returncode == 3, probe.stdout + probe.stderr

        # Its QEMU runs as a uid no other process has, in an empty network namespace: a
        # process there, as that uid, reaches no address (not the API on loopback) and cannot
        # signal another user's process (nimbus's own).
        pid = open(os.path.join(str(tmp_path), "instances", instance_id, "qemu.pid")).read().strip()
        with open(f"/proc/{pid}/status") as f:
            uid = next(line for line in f if line.startswith("Uid:")).split()[1]
        others = subprocess.run(["pgrep", "-u", uid], capture_output=True, text=True).stdout.split()
        assert others == [pid], others
        as_qemu = ["nsenter", "-t", pid, "-n", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        reach = subprocess.run(as_qemu + ["python3", "-c", "import socket; socket.create_connection(('127.0.0.1', "
                                          f"{server.port}), timeout=5)"], capture_output=True, text=True, timeout=30)
        assert reach.returncode != 0 and "unreachable" in reach.stderr.lower(), reach.stderr
        signal = subprocess.run(as_qemu + ["kill", "-0", str(server.process.pid)], capture_output=True, text=True)
        assert signal.returncode != 0 and "not permitted" in signal.stderr.lower(), signal.stderr

        for restart in (server.kill9, server.stop):
            before = flushed(ec2, instance_id)
            restart()
            time.sleep(3)
            server.start()
            ec2 = server.client()
            described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
            assert described["State"]["Name"] == "running"
            assert open(os.path.join(str(tmp_path), "instances", instance_id, "qemu.pid")).read().strip() == pid
            wait_for(lambda: flushed(ec2, instance_id) > before + 20, timeout=120)

        ec2.stop_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        output = console(ec2, instance_id)
        for failure in ("NIMBUS-IO-ERROR", "I/O error", "read-only", "EXT4-fs error"):
            assert failure not in output, output[-3000:]
        last = flushed(ec2, instance_id)
        dump = tmp_path / "data.raw"
        nbd = f"nbd+unix:///{data}?socket={tmp_path}/nbd.sock"
        copied = subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=512", f"count={last + 1}",
                                 f"if={nbd}", f"of={dump}"], capture_output=True, text=True, timeout=120)
        assert copied.returncode == 0, copied.stderr
        sectors = dump.read_bytes()
        for n in range(1, last + 1):
            assert sectors[n * 512:n * 512 + 15] == f"record-{n:08d}".encode(), n

        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        assert not os.path.exists(os.path.join(str(tmp_path), "instances", instance_id))
        assert not os.path.exists(socket_path)
    finally:
        server.stop()


def test_register_image_from_ebs_direct_snapshot_and_create_image(cloud, ec2vm, minimal_ami):
    """An AMI registered from a snapshot written block by block boots; CreateImage of an
    instance gives an AMI whose instances see the original's files."""
    import base64
    import hashlib
    ebs = cloud.client("ebs")
    cached = [d for d in os.listdir(IMAGE_CACHE) if d.startswith("nimbus-minimal-")]
    rootfs = os.path.join(IMAGE_CACHE, sorted(cached)[-1], "rootfs.img")
    block = 512 * 1024
    snapshot_id = ebs.start_snapshot(VolumeSize=1, Description="root fs via EBS direct")["SnapshotId"]
    written = 0
    with open(rootfs, "rb") as f:
        index = 0
        while True:
            data = f.read(block)
            if not data:
                break
            data = data.ljust(block, b"\0")
            if data.strip(b"\0"):
                ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data, DataLength=block,
                                       Checksum=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                                       ChecksumAlgorithm="SHA256")
                written += 1
            index += 1
    ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=written)
    ec2vm.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig={"Delay": 1})
    ami = ec2vm.register_image(Name="direct-root", RootDeviceName="/dev/xvda",
                               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot_id}}])["ImageId"]
    user_data = "#!/bin/sh\necho persisted > /root/from-first; sync; echo NIMBUS-DIRECT-BOOT > /dev/console\n"
    first = ec2vm.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                UserData=user_data)["Instances"][0]["InstanceId"]
    wait_console(ec2vm, first, "NIMBUS-DIRECT-BOOT")
    image = ec2vm.create_image(InstanceId=first, Name="from-instance")["ImageId"]
    ec2vm.get_waiter("image_available").wait(ImageIds=[image], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    second = ec2vm.run_instances(ImageId=image, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                 UserData="#!/bin/sh\necho NIMBUS-SAW-$(cat /root/from-first) > /dev/console\n")["Instances"][0]["InstanceId"]
    wait_console(ec2vm, second, "NIMBUS-SAW-persisted")
    ec2vm.terminate_instances(InstanceIds=[first, second])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[first, second], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    ec2vm.deregister_image(ImageId=image)
    assert ec2vm.describe_images(ImageIds=[], Filters=[{"Name": "name", "Values": ["from-instance"]}])["Images"] == []


def test_debian12_with_cloud_init(tmp_path):
    """The debian-12 image: systemd and cloud-init with its real EC2 datasource run the user data."""
    build = subprocess.run([os.environ.get("NIMBUS_BIN", "target/debug/nimbus"), "image", "build", "--debian-12",
                            "--data-dir", str(tmp_path), "--cache-dir", IMAGE_CACHE],
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stdout + build.stderr
    server = Nimbus(str(tmp_path)).start()
    try:
        ec2 = server.client()
        ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["debian-12"]}])["Images"][0]["ImageId"]
        user_data = "#!/bin/sh\necho NIMBUS-DEBIAN $(cloud-init query v1.instance_id) $(cloud-init query v1.cloud_name) > /dev/console\n"
        instance_id = ec2.run_instances(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                                        UserData=user_data)["Instances"][0]["InstanceId"]
        marker = wait_console(ec2, instance_id, r"NIMBUS-DEBIAN (\S+) (\S+)", timeout=900)
        assert marker.group(1) == instance_id  # read by cloud-init from the metadata service
        assert "systemd" in console(ec2, instance_id)
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 2, "MaxAttempts": 300})
    finally:
        server.stop()
