"""kill -9 of the whole nimbus process while fio (nbd engine) writes with flushes and
verification headers; after every restart, fio re-reads everything each round wrote.

fio saves its verify state when the connection dies. The only blocks allowed to fail
verification are writes still in flight at the kill (at most `IODEPTH`, the last ones
fio issued): they were never acknowledged. A snapshot is taken during every round, so
crashes also hit the copy-on-write path of a pending snapshot, which must resume and
complete after the restart."""

import os
import re
import subprocess
import threading
import time

from test_volumes import ZONE, nbd_uri, wait_volume

ROUNDS = 4
REGION = 512 << 20
IODEPTH = 8
BLOCK = 4096


def fio_job(nimbus, volume_id, round_index, *extra):
    return [
        "fio", f"--name=round{round_index}", "--ioengine=nbd", f"--uri={nbd_uri(nimbus, volume_id)}",
        "--rw=randwrite", f"--bs={BLOCK}", f"--iodepth={IODEPTH}", f"--offset={round_index * REGION}",
        f"--size={REGION}", "--verify=crc32c", f"--randseed={round_index + 1}", "--fsync=4", *extra,
    ]


def write_until_killed(nimbus, ec2, volume_id, round_index, workdir):
    """Runs one write round and kills nimbus in the middle of it; returns the offsets
    fio issued last (in flight at the kill, at most IODEPTH)."""
    iolog = os.path.join(workdir, "iolog")
    fio = subprocess.Popen(
        fio_job(nimbus, volume_id, round_index, "--do_verify=0", "--verify_state_save=1",
                f"--write_iolog={iolog}"),
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.8 + 0.4 * round_index)
    snapshot = threading.Thread(target=lambda: ec2.create_snapshot(VolumeId=volume_id))
    snapshot.start()
    time.sleep(0.5)
    nimbus.kill9()
    output = fio.communicate(timeout=120)[0]
    snapshot.join()
    assert os.path.exists(os.path.join(workdir, f"local-round{round_index}-0-verify.state")), output
    with open(iolog) as f:
        writes = [int(line.split()[3]) for line in f if " write " in line]
    # fio must have been cut off mid-round, or the round proves nothing.
    assert 0 < len(writes) < REGION // BLOCK, output
    return set(writes[-IODEPTH:])


def verify_round(nimbus, volume_id, round_index, workdir, in_flight):
    result = subprocess.run(
        fio_job(nimbus, volume_id, round_index, "--verify_only", "--verify_state_load=1", "--verify_state_save=0"),
        cwd=workdir, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    bad = {int(offset) for offset in re.findall(r"verify.*? offset (\d+), length", output)}
    assert bad <= in_flight, f"acknowledged writes lost in round {round_index}: {sorted(bad - in_flight)}\n{output[-3000:]}"
    assert result.returncode == 0 or bad, output[-3000:]


def test_kill9_during_fio_verify_loses_no_acknowledged_write(fresh_nimbus, tmp_path):
    nimbus = fresh_nimbus.start()
    ec2 = nimbus.client()
    volume_id = ec2.create_volume(AvailabilityZone=ZONE, Size=128, VolumeType="io2", Iops=64000)["VolumeId"]
    wait_volume(ec2, volume_id)
    in_flight = {}
    for round_index in range(ROUNDS):
        workdir = tmp_path / f"round{round_index}"
        workdir.mkdir()
        in_flight[round_index] = write_until_killed(nimbus, ec2, volume_id, round_index, workdir)
        nimbus.start()
        ec2 = nimbus.client()
        # Every round so far, not only the last, still holds what fio wrote.
        for earlier in range(round_index + 1):
            verify_round(nimbus, volume_id, earlier, tmp_path / f"round{earlier}", in_flight[earlier])
    # Snapshots cut short by a kill resume after the restart.
    snapshots = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Snapshots"]
    assert len(snapshots) == ROUNDS
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[s["SnapshotId"] for s in snapshots],
                                              WaiterConfig={"Delay": 1, "MaxAttempts": 120})
