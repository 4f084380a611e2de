"""Private by default: nothing under the data dir is readable by another local user (volumes
hold guests' disks), and protected mode keeps the well-known test/test credentials off any
address but loopback."""

import os
import stat
import subprocess
import tempfile

import pytest
from botocore.exceptions import ClientError

from conftest import BINARY, Nimbus, free_port
from test_foundation import error_code
from test_instances import IMAGE_CACHE, wait_console
from test_volumes import qemu_io, wait_snapshot, wait_volume


@pytest.fixture
def shared_parent():
    """A directory every user may enter, so that only the data dir's own modes stand
    between another user and nimbus's files."""
    with tempfile.TemporaryDirectory(prefix="nimbus-private-") as parent:
        os.chmod(parent, 0o755)
        yield parent


def loose_entries(root):
    """Every file or directory under `root` (itself included) that grants its group or
    others any access; symbolic links are not followed."""
    paths = [root]
    for directory, subdirs, files in os.walk(root):
        paths += [os.path.join(directory, name) for name in subdirs + files]
    loose = []
    for path in paths:
        mode = os.lstat(path).st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            loose.append(f"{oct(mode & 0o7777)} {path}")
    return loose


def readable_by_nobody(paths):
    """The paths that the user `nobody` can read."""
    script = 'for f do cat -- "$f" >/dev/null 2>&1 && echo "$f"; done'
    result = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", script, "sh", *paths],
                            capture_output=True, text=True, timeout=120)
    return result.stdout.split()


def all_files(root):
    return [os.path.join(directory, name) for directory, _, files in os.walk(root) for name in files]


def loosen(root):
    """What a data dir written by an older release looks like: 0755 dirs, 0644 files."""
    os.chmod(root, 0o755)
    for directory, subdirs, files in os.walk(root):
        for name in subdirs:
            os.chmod(os.path.join(directory, name), 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path) and stat.S_ISREG(os.lstat(path).st_mode):
                os.chmod(path, 0o644)


def test_nothing_under_the_data_dir_is_readable_by_another_user(shared_parent):
    data_dir = os.path.join(shared_parent, "data")
    os.mkdir(data_dir, 0o755)  # as `mkdir /var/lib/nimbus` would leave it
    build = subprocess.run([BINARY, "image", "build", "--data-dir", data_dir, "--cache-dir", IMAGE_CACHE],
                           capture_output=True, text=True, timeout=1200)
    assert build.returncode == 0, build.stdout + build.stderr
    server = Nimbus(data_dir).start()
    ec2 = server.client()
    instance_id = None
    try:
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
        wait_volume(ec2, volume)
        qemu_io(server, volume, "write -P 0x5a 0 1M")
        snapshot = wait_snapshot(ec2, ec2.create_snapshot(VolumeId=volume)["SnapshotId"])["SnapshotId"]
        image = ec2.register_image(Name="private-image", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}])["ImageId"]
        assert image.startswith("ami-")
        ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]
        instance_id = ec2.run_instances(ImageId=ami["ImageId"], InstanceType="t3.nano",
                                        MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        # QEMU, running as nimbus-qemu, still writes its console log.
        wait_console(ec2, instance_id, r"nimbus-minimal: ready")

        assert stat.S_IMODE(os.stat(data_dir).st_mode) == 0o700
        assert loose_entries(data_dir) == []
        files = all_files(data_dir)
        assert any(name.endswith("state.db") for name in files)
        assert any(name.endswith("data.raw") for name in files)
        assert any(name.endswith("serial.log") for name in files)
        assert readable_by_nobody(files) == []
        listing = subprocess.run(["runuser", "-u", "nobody", "--", "ls", data_dir], capture_output=True, text=True)
        assert listing.returncode != 0 and "Permission denied" in listing.stderr
    finally:
        if instance_id:
            ec2.terminate_instances(InstanceIds=[instance_id])
            ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id],
                                                       WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        server.stop()


def test_a_loose_data_dir_is_tightened_on_start(shared_parent):
    data_dir = os.path.join(shared_parent, "data")
    os.mkdir(data_dir)
    server = Nimbus(data_dir).start()
    ec2 = server.client()
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    wait_volume(ec2, volume)
    qemu_io(server, volume, "write -P 0x33 0 64k")
    wait_snapshot(ec2, ec2.create_snapshot(VolumeId=volume)["SnapshotId"])
    server.stop()

    loosen(data_dir)
    assert readable_by_nobody(all_files(data_dir)) != []
    server.start()
    assert loose_entries(data_dir) == []
    assert readable_by_nobody(all_files(data_dir)) == []
    assert [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]] == [volume]
    server.stop()


def test_protected_mode_refuses_default_credentials_on_a_public_address(tmp_path):
    result = subprocess.run([BINARY, "serve", "--listen", f"0.0.0.0:{free_port()}", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "default credentials" in result.stderr and "--allow-default-credentials" in result.stderr


@pytest.mark.parametrize("how", ["flag", "config key"])
def test_default_credentials_on_a_public_address_when_allowed(tmp_path, how):
    if how == "flag":
        server = Nimbus(str(tmp_path), listen_host="0.0.0.0", extra_args=["--allow-default-credentials"])
    else:
        server = Nimbus(str(tmp_path), listen_host="0.0.0.0", config_text="allow_default_credentials = true\n")
    try:
        server.start()
        assert server.client().describe_regions()["Regions"]
    finally:
        server.stop()


def test_own_credentials_on_a_public_address(tmp_path):
    config = '[[credentials]]\naccess_key_id = "AKIAPRIVATEEXAMPLE"\nsecret_access_key = "not-the-default"\n'
    server = Nimbus(str(tmp_path), listen_host="0.0.0.0", config_text=config)
    try:
        server.start()
        own = server.client(key="AKIAPRIVATEEXAMPLE", secret="not-the-default")
        assert own.describe_regions()["Regions"]
        with pytest.raises(ClientError) as refused:
            server.client().describe_regions()
        assert error_code(refused) == "AuthFailure"
    finally:
        server.stop()
