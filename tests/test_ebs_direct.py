"""The EBS direct APIs through boto3's `ebs` client, on snapshots of real volumes and on
snapshots written block by block, which then become volumes."""

import base64
import hashlib
import os

import pytest
from botocore.exceptions import ClientError

from test_volumes import ZONE, qemu_io, wait_snapshot, wait_volume

BLOCK = 512 * 1024


def checksum(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture(scope="module")
def ebs(nimbus):
    return nimbus.client("ebs")


def test_read_blocks_of_volume_snapshots(ec2, ebs, nimbus):
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"]
    wait_volume(ec2, volume_id)
    qemu_io(nimbus, volume_id, "write -P 0x61 0 512k", "write -P 0x62 10M 512k", "flush")
    first = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_snapshot(ec2, first)
    qemu_io(nimbus, volume_id, "write -P 0x63 10M 512k", "write -P 0x64 20M 512k", "flush")
    second = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    wait_snapshot(ec2, second)

    listed = ebs.list_snapshot_blocks(SnapshotId=first)
    assert listed["BlockSize"] == BLOCK and listed["VolumeSize"] == 1
    indexes = {b["BlockIndex"]: b["BlockToken"] for b in listed["Blocks"]}
    assert {0, 20} <= set(indexes)
    block = ebs.get_snapshot_block(SnapshotId=first, BlockIndex=20, BlockToken=indexes[20])
    data = block["BlockData"].read()
    assert data == b"\x62" * BLOCK and block["Checksum"] == checksum(data)

    changed = ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second)["ChangedBlocks"]
    assert sorted(b["BlockIndex"] for b in changed) == [20, 40]
    newer = {b["BlockIndex"]: b for b in changed}
    data = ebs.get_snapshot_block(SnapshotId=second, BlockIndex=40,
                                  BlockToken=newer[40]["SecondBlockToken"])["BlockData"].read()
    assert data == b"\x64" * BLOCK
    with pytest.raises(ClientError) as e:
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_write_snapshot_then_volume(ec2, ebs, nimbus):
    # An open snapshot fails after Timeout idle minutes (checked in the blockstore tests).
    started = ebs.start_snapshot(VolumeSize=1, Description="direct", Tags=[{"Key": "via", "Value": "ebs"}],
                                 Timeout=10)
    snapshot_id = started["SnapshotId"]
    assert started["Status"] == "pending" and started["BlockSize"] == BLOCK
    blocks = {3: os.urandom(BLOCK), 7: b"\x7a" * BLOCK}
    for index, data in blocks.items():
        answer = ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data,
                                        DataLength=BLOCK, Checksum=checksum(data), ChecksumAlgorithm="SHA256")
        assert answer["Checksum"] == checksum(data)
    with pytest.raises(ClientError) as e:
        ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=9, BlockData=b"\x00" * BLOCK,
                               DataLength=BLOCK, Checksum=checksum(b"wrong"), ChecksumAlgorithm="SHA256")
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=2)["Status"] in ("pending", "completed")
    done = wait_snapshot(ec2, snapshot_id)
    assert done["Description"] == "direct" and done["VolumeSize"] == 1
    listed = ebs.list_snapshot_blocks(SnapshotId=snapshot_id)["Blocks"]
    assert [b["BlockIndex"] for b in listed] == [3, 7]
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=snapshot_id)["VolumeId"]
    wait_volume(ec2, volume_id)
    qemu_io(nimbus, volume_id, f"read -P 0x7a {7 * BLOCK} {BLOCK}", f"read -P 0 0 {BLOCK}")
