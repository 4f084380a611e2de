"""EBS volumes and snapshots through boto3, with the data checked over NBD by real clients
(qemu-io, nbdinfo)."""

import json
import os
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from test_foundation import error_code

ZONE = "us-east-1a"


def nbd_uri(nimbus, volume_id):
    return f"nbd+unix:///{volume_id}?socket={os.path.join(nimbus.data_dir, 'nbd.sock')}"


def qemu_io(nimbus, volume_id, *commands):
    args = ["qemu-io", "-f", "raw"]
    for command in commands:
        args += ["-c", command]
    result = subprocess.run(args + [nbd_uri(nimbus, volume_id)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "failed" not in result.stdout.lower(), result.stdout + result.stderr
    return result.stdout


def wait_for(check, timeout=120, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def wait_volume(ec2, volume_id, state="available"):
    return wait_for(lambda: next((v for v in ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
                                  if v["State"] == state), None))


def wait_snapshot(ec2, snapshot_id):
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snapshot_id], WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    return ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]


def test_create_describe_delete_volume(ec2, nimbus):
    created = ec2.create_volume(AvailabilityZone=ZONE, Size=1, VolumeType="gp3",
                                TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}])
    assert created["VolumeId"].startswith("vol-") and created["State"] in ("creating", "available")
    assert created["Iops"] == 3000 and created["Throughput"] == 125
    ec2.get_waiter("volume_available").wait(VolumeIds=[created["VolumeId"]], WaiterConfig={"Delay": 1})
    volume = ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["data"]}])["Volumes"][0]
    assert volume["Size"] == 1 and volume["AvailabilityZone"] == ZONE and volume["VolumeType"] == "gp3"
    info = json.loads(subprocess.run(["nbdinfo", "--json", nbd_uri(nimbus, created["VolumeId"])],
                                     capture_output=True, text=True, check=True, timeout=60).stdout)
    assert info["exports"][0]["export-size"] == 1024 ** 3
    # Unwritten blocks read as zeros.
    qemu_io(nimbus, created["VolumeId"], "read -P 0 0 1M")
    ec2.delete_volume(VolumeId=created["VolumeId"])
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[created["VolumeId"]], WaiterConfig={"Delay": 1})
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[created["VolumeId"]])
    assert error_code(e) == "InvalidVolume.NotFound"


def test_volume_validation(ec2):
    cases = [
        (dict(Size=0), "InvalidParameterValue"),
        (dict(Size=20000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="io1"), "MissingParameter"),
        (dict(Size=10, VolumeType="io1", Iops=1000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="gp2", Iops=1000), "InvalidParameterCombination"),
        (dict(Size=10, VolumeType="gp3", Throughput=2000), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="io2", Iops=1000, Throughput=200), "InvalidParameterCombination"),
        (dict(Size=100, VolumeType="st1"), "InvalidParameterValue"),
        (dict(Size=10, VolumeType="floppy"), "InvalidParameterValue"),
        (dict(Size=10, SnapshotId="snap-0123456789abcdef0"), "InvalidSnapshot.NotFound"),
        (dict(), "MissingParameter"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as e:
            ec2.create_volume(AvailabilityZone=ZONE, **params)
        assert error_code(e) == code, (params, e.value)
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone="us-east-1z", Size=1)
    assert error_code(e) == "InvalidZone.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone=ZONE, Size=1, Encrypted=True)
    assert error_code(e) == "UnsupportedOperation"
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId="vol-0123456789abcdef0")
    assert error_code(e) == "InvalidVolume.NotFound"


def test_client_token_idempotency(ec2):
    token = f"token-{time.time()}"
    first = ec2.create_volume(AvailabilityZone=ZONE, Size=2, ClientToken=token)
    again = ec2.create_volume(AvailabilityZone=ZONE, Size=2, ClientToken=token)
    assert again["VolumeId"] == first["VolumeId"]
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone=ZONE, Size=3, ClientToken=token)
    assert error_code(e) == "IdempotentParameterMismatch"


def test_snapshot_and_restore_keep_point_in_time(ec2, nimbus):
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
    wait_volume(ec2, volume_id)
    qemu_io(nimbus, volume_id, "write -P 0xab 0 4M", "write -P 0x11 512M 1M", "flush")
    started = time.time()
    snapshot = ec2.create_snapshot(VolumeId=volume_id, Description="before",
                                   TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "k", "Value": "v"}]}])
    assert snapshot["State"] in ("pending", "completed") and snapshot["VolumeSize"] == 1
    # Overwrite right away: the snapshot must keep the old data.
    qemu_io(nimbus, volume_id, "write -P 0xcd 0 4M", "flush")
    done = wait_snapshot(ec2, snapshot["SnapshotId"])
    assert done["Progress"] == "100%" and done["Description"] == "before"
    assert done["Tags"] == [{"Key": "k", "Value": "v"}]
    assert time.time() - started < 600
    restored = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=snapshot["SnapshotId"])
    assert restored["Size"] == 1 and restored["SnapshotId"] == snapshot["SnapshotId"]
    wait_volume(ec2, restored["VolumeId"])
    qemu_io(nimbus, restored["VolumeId"], "read -P 0xab 0 4M", "read -P 0x11 512M 1M", "read -P 0 4M 1M")
    qemu_io(nimbus, volume_id, "read -P 0xcd 0 4M")
    # Larger restore, and the original snapshot is listed by owner.
    mine = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [volume_id]}])
    assert [s["SnapshotId"] for s in mine["Snapshots"]] == [snapshot["SnapshotId"]]
    assert ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"] == []
    copy = ec2.copy_snapshot(SourceSnapshotId=snapshot["SnapshotId"], SourceRegion="us-east-1")
    wait_snapshot(ec2, copy["SnapshotId"])
    from_copy = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=copy["SnapshotId"], Size=2)["VolumeId"]
    wait_volume(ec2, from_copy)
    qemu_io(nimbus, from_copy, "read -P 0xab 0 4M")
    with pytest.raises(ClientError) as e:
        ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=snapshot["SnapshotId"], Size=0)
    assert error_code(e) in ("InvalidParameterValue",)
    for snap in (snapshot["SnapshotId"], copy["SnapshotId"]):
        ec2.delete_snapshot(SnapshotId=snap)
    assert ec2.describe_snapshots(SnapshotIds=[], Filters=[{"Name": "snapshot-id", "Values": [snapshot["SnapshotId"]]}])["Snapshots"] == []
    # Volumes made from a deleted snapshot keep their data.
    qemu_io(nimbus, restored["VolumeId"], "read -P 0xab 0 4M")


def test_modify_volume_grows_online(ec2, nimbus):
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=1, VolumeType="gp2")["VolumeId"]
    wait_volume(ec2, volume_id)
    qemu_io(nimbus, volume_id, "write -P 0x5a 0 1M", "flush")
    modification = ec2.modify_volume(VolumeId=volume_id, Size=4, VolumeType="io2", Iops=2000)["VolumeModification"]
    assert modification["TargetSize"] == 4 and modification["OriginalSize"] == 1
    assert modification["TargetVolumeType"] == "io2" and modification["TargetIops"] == 2000
    wait_for(lambda: ec2.describe_volumes_modifications(VolumeIds=[volume_id])["VolumesModifications"][0]
             ["ModificationState"] in ("optimizing", "completed"))
    volume = ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["Size"] == 4 and volume["VolumeType"] == "io2" and volume["Iops"] == 2000
    # A new client sees the new size and the old data.
    qemu_io(nimbus, volume_id, "read -P 0x5a 0 1M", "write -P 0x77 3584M 1M", "read -P 0x77 3584M 1M")
    with pytest.raises(ClientError) as e:
        ec2.modify_volume(VolumeId=volume_id, Size=1)
    assert error_code(e) == "InvalidParameterValue"


def test_volumes_survive_kill9(fresh_nimbus):
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
    wait_volume(ec2, volume_id)
    qemu_io(fresh_nimbus, volume_id, "write -P 0x42 0 2M", "flush")
    snapshot_id = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_snapshot(ec2, snapshot_id)
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    assert ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["State"] == "available"
    assert ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]["State"] == "completed"
    qemu_io(fresh_nimbus, volume_id, "read -P 0x42 0 2M")
