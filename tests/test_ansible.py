"""Ansible's amazon.aws collection (PyPI's `ansible`) against nimbus: a playbook creates a VPC,
a subnet, a security group and an instance in them; another an Auto Scaling group of real
instances from a launch template, waiting for them; a second run of each changes nothing."""

import json
import os
import re
import subprocess
import sys

from test_instances import cloud  # noqa: F401  (nimbus with the default image built)

PLAYBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ansible")


def run_playbook(cloud, image_id, outputs, playbook="vpc.yml"):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False", AWS_ACCESS_KEY_ID="test",
               AWS_SECRET_ACCESS_KEY="test")
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    extra = json.dumps({"endpoint": cloud.endpoint, "image_id": image_id, "outputs": str(outputs),
                        "ansible_python_interpreter": sys.executable})
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                             "-i", "localhost,", "-e", extra, os.path.join(PLAYBOOKS, playbook)],
                            capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)", result.stdout)
    assert recap, result.stdout
    return int(recap.group(2)), json.loads(outputs.read_text()), result.stdout


def test_playbook_creates_then_changes_nothing(cloud, tmp_path):  # noqa: F811
    ec2 = cloud.client()
    image_id = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]["ImageId"]
    changed, first, _ = run_playbook(cloud, image_id, tmp_path / "outputs.json")
    assert changed >= 4
    vpc = ec2.describe_vpcs(VpcIds=[first["vpc"]])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.70.0.0/16"
    assert {"Key": "Name", "Value": "ansible-vpc"} in vpc["Tags"]
    subnet = ec2.describe_subnets(SubnetIds=[first["subnet"]])["Subnets"][0]
    assert subnet["VpcId"] == first["vpc"] and subnet["CidrBlock"] == "10.70.1.0/24"
    group = ec2.describe_security_groups(GroupIds=[first["group"]])["SecurityGroups"][0]
    ports = sorted(p["FromPort"] for p in group["IpPermissions"])
    assert ports == [22, 80, 8000]
    [instance_id] = first["instances"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["SubnetId"] == first["subnet"] and instance["VpcId"] == first["vpc"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [first["group"]]
    assert instance["PrivateIpAddress"] == "10.70.1.4"

    changed, second, log = run_playbook(cloud, image_id, tmp_path / "outputs.json")
    # The same resources are found, so even the outputs file keeps its content.
    assert changed == 0, log
    assert second == first
    assert len(ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["ansible-vpc"]}])["Vpcs"]) == 1


def test_autoscaling_group_playbook_waits_for_instances_then_changes_nothing(cloud, tmp_path):  # noqa: F811
    ec2 = cloud.client()
    autoscaling = cloud.client("autoscaling")
    image_id = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]["ImageId"]
    outputs = tmp_path / "outputs.json"
    changed, first, _ = run_playbook(cloud, image_id, outputs, "autoscaling.yml")
    assert changed >= 4
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["ansible-asg"])["AutoScalingGroups"][0]
    members = group["Instances"]
    assert sorted(m["InstanceId"] for m in members) == first["instances"]
    assert all(m["LifecycleState"] == "InService" and m["HealthStatus"] == "Healthy" for m in members)
    assert sorted(m["AvailabilityZone"] for m in members) == ["us-east-1a", "us-east-1b"]
    assert {"Key": "team", "Value": "ansible", "PropagateAtLaunch": True, "ResourceId": "ansible-asg",
            "ResourceType": "auto-scaling-group"} in group["Tags"]

    changed, second, log = run_playbook(cloud, image_id, outputs, "autoscaling.yml")
    assert changed == 0, log
    assert second == first
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="ansible-asg", ForceDelete=True)
