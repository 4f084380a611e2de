"""The user's latest intent wins: a request answered with success is never undone by a
background step finishing late, and a request AWS refuses in the resource's current state is
refused with AWS's code. Real VMs and volumes, driven through boto3."""

import subprocess

import pytest
from botocore.exceptions import ClientError

from test_foundation import error_code
from test_instances import cloud, ec2vm, minimal_ami  # noqa: F401 (module fixtures)
from test_volumes import wait_for, wait_volume

WAIT = {"Delay": 1, "MaxAttempts": 300}


def instance_state(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def qemu_running(instance_id):
    found = subprocess.run(["pgrep", "-f", f"process=nimbus-{instance_id}"], capture_output=True, text=True)
    return found.stdout.strip() != ""


def volume_state(ec2, volume_id):
    volumes = ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume_id]}])["Volumes"]
    return volumes[0]["State"] if volumes else "deleted"


def states_until_terminated(ec2, instance_id):
    """Every state the instance shows until it is terminated."""
    seen = []

    def terminated():
        seen.append(instance_state(ec2, instance_id))
        return seen[-1] == "terminated"

    wait_for(terminated, timeout=300, interval=0.2)
    return seen


def test_pending_instance_refuses_stop_and_detach_and_terminates(ec2vm, minimal_ami):
    launched = ec2vm.run_instances(
        ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": False}}])
    instance = launched["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["State"]["Name"] == "pending"
    data_volume = next(m["Ebs"]["VolumeId"] for m in
                       ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
                       if m["DeviceName"] == "/dev/sdf")

    # EC2 refuses to stop an instance that is still pending, and to detach a volume that is
    # still being attached: nothing is accepted that a background step would undo.
    with pytest.raises(ClientError) as e:
        ec2vm.stop_instances(InstanceIds=[instance_id])
    assert error_code(e) == "IncorrectInstanceState"
    with pytest.raises(ClientError) as e:
        ec2vm.detach_volume(VolumeId=data_volume)
    assert error_code(e) == "IncorrectState"

    # Terminating a pending instance is accepted, and it ends terminated: the launch that was
    # under way never brings it back to running, and no QEMU is left.
    answer = ec2vm.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]
    assert answer["CurrentState"]["Name"] == "shutting-down"
    seen = states_until_terminated(ec2vm, instance_id)
    assert "running" not in seen and "pending" not in seen, seen
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    assert not qemu_running(instance_id)
    # The volume that was not DeleteOnTermination is released, usable.
    wait_volume(ec2vm, data_volume)
    assert ec2vm.describe_volumes(VolumeIds=[data_volume])["Volumes"][0]["Attachments"] == []


def test_terminate_while_stopping_ends_terminated(ec2vm, minimal_ami):
    instance_id = ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1,
                                      MaxCount=1)["Instances"][0]["InstanceId"]
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    stopping = ec2vm.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert stopping["CurrentState"]["Name"] == "stopping"
    answer = ec2vm.terminate_instances(InstanceIds=[instance_id])["TerminatingInstances"][0]
    assert answer["CurrentState"]["Name"] == "shutting-down"
    seen = states_until_terminated(ec2vm, instance_id)
    assert "stopped" not in seen and "running" not in seen, seen
    assert not qemu_running(instance_id)


def test_detach_races_attach_and_the_answer_holds(ec2vm, minimal_ami):
    """DetachVolume right after AttachVolume is either refused (the attachment is still being
    made; it then ends attached) or accepted (then the volume ends available): never
    accepted and then undone."""
    instance = ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1,
                                   MaxCount=1)["Instances"][0]
    instance_id = instance["InstanceId"]
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    zone = instance["Placement"]["AvailabilityZone"]
    for device in ["/dev/sdf", "/dev/sdg", "/dev/sdh"]:
        volume_id = ec2vm.create_volume(AvailabilityZone=zone, Size=1)["VolumeId"]
        wait_volume(ec2vm, volume_id)
        ec2vm.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=device)
        try:
            ec2vm.detach_volume(VolumeId=volume_id)
            wanted = "available"
        except ClientError as e:
            assert e.response["Error"]["Code"] == "IncorrectState", e
            wanted = "in-use"
        wait_volume(ec2vm, volume_id, wanted)
        if wanted == "in-use":
            wait_for(lambda: ec2vm.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]["Attachments"][0]["State"]
                     == "attached")
            ec2vm.detach_volume(VolumeId=volume_id)
            wait_volume(ec2vm, volume_id)
        ec2vm.delete_volume(VolumeId=volume_id)
    ec2vm.terminate_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)


def test_delete_volume_races_creation_and_the_answer_holds(ec2vm, minimal_ami):
    """DeleteVolume right after CreateVolume (blank, and from a snapshot) is either refused
    with IncorrectState while the volume is `creating` (it then ends available) or accepted
    (then the volume is gone for good, never available again)."""
    snapshot_id = ec2vm.describe_images(ImageIds=[minimal_ami])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    sources = [{"Size": 1}, {"SnapshotId": snapshot_id}] * 3
    refused = 0
    for source in sources:
        volume_id = ec2vm.create_volume(AvailabilityZone="us-east-1a", **source)["VolumeId"]
        try:
            ec2vm.delete_volume(VolumeId=volume_id)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "IncorrectState", e
            refused += 1
            wait_volume(ec2vm, volume_id)
            ec2vm.delete_volume(VolumeId=volume_id)
        ec2vm.get_waiter("volume_deleted").wait(VolumeIds=[volume_id], WaiterConfig={"Delay": 1})
        assert volume_state(ec2vm, volume_id) == "deleted"
    print(f"{refused} of {len(sources)} deletes came while the volume was creating")
