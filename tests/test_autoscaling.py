"""Auto Scaling groups of real instances, driven with boto3 the way Terraform's
`aws_autoscaling_group` drives them (create, wait for capacity, update, drain and delete):
instances balanced across two zones, the desired capacity followed, a member whose QEMU is
killed replaced, every step in DescribeScalingActivities, and a target tracking policy that
scales out on the guests' measured CPU and back in when they go idle.

The server reads metrics every second, so target tracking alarms have 10 s periods."""

import base64
import datetime
import json
import os
import re
import signal
import subprocess

import pytest
from botocore.exceptions import ClientError

from test_foundation import error_code
from test_health import measuring_cloud
from test_instances import console, ec2vm, minimal_ami, wait_console  # noqa: F401 (fixtures)
from test_volumes import wait_for

GROUP_TAG = "aws:autoscaling:groupName"

# Burns both vCPUs until the instance's tag `load` (read from the metadata service) says stop.
BURN_UNTIL_TOLD = """#!/bin/sh
load() { wget -q -O - http://169.254.169.254/latest/meta-data/tags/instance/load 2>/dev/null; }
burn() { while [ "$(load)" != "stop" ]; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; done; }
burn &
burn &
"""


@pytest.fixture(scope="module")
def cloud():
    with measuring_cloud() as server:
        yield server


@pytest.fixture(scope="module")
def autoscaling(cloud):  # noqa: F811
    return cloud.client("autoscaling")


@pytest.fixture(scope="module")
def cloudwatch(cloud):
    return cloud.client("cloudwatch")


@pytest.fixture(scope="module")
def network(ec2vm):  # noqa: F811
    vpc_id = ec2vm.create_vpc(CidrBlock="10.60.0.0/16")["Vpc"]["VpcId"]
    subnets = {zone: ec2vm.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for zone, cidr in (("us-east-1a", "10.60.1.0/24"), ("us-east-1b", "10.60.2.0/24"))}
    return subnets


@pytest.fixture(scope="module")
def template(ec2vm, minimal_ami):  # noqa: F811
    return ec2vm.create_launch_template(
        LaunchTemplateName="asg-web",
        LaunchTemplateData={"ImageId": minimal_ami, "InstanceType": "t3.micro"},
    )["LaunchTemplate"]["LaunchTemplateId"]


def group(autoscaling, name):
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return groups[0] if groups else None


def healthy_in_service(autoscaling, name, count):
    """Terraform's wait for capacity: `count` members Healthy and InService, and no failed
    activity since the group was made."""
    failed = [a for a in autoscaling.describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
              if a["StatusCode"] == "Failed" and a["Progress"] == 100]
    assert not failed, failed
    members = group(autoscaling, name)["Instances"]
    serving = [m for m in members if m["HealthStatus"] == "Healthy" and m["LifecycleState"] == "InService"]
    return serving if len(serving) == count and len(members) == count else None


def qemu_pid(cloud, instance_id):  # noqa: F811
    with open(os.path.join(cloud.data_dir, "instances", instance_id, "qemu.pid")) as f:
        return int(f.read().strip())


def test_a_group_balances_zones_follows_its_capacity_and_replaces_a_killed_member(
        cloud, ec2vm, autoscaling, network, template):  # noqa: F811
    name = "web"
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=4, DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        VPCZoneIdentifier=",".join(network.values()), HealthCheckGracePeriod=0,
        NewInstancesProtectedFromScaleIn=False,
        Tags=[{"Key": "team", "Value": "blue", "PropagateAtLaunch": True, "ResourceId": name,
               "ResourceType": "auto-scaling-group"},
              {"Key": "cost", "Value": "web", "PropagateAtLaunch": False, "ResourceId": name,
               "ResourceType": "auto-scaling-group"}])
    described = group(autoscaling, name)
    assert described["LaunchTemplate"] == {"LaunchTemplateId": template, "LaunchTemplateName": "asg-web",
                                           "Version": "$Latest"}
    assert sorted(described["AvailabilityZones"]) == ["us-east-1a", "us-east-1b"]
    assert described["TerminationPolicies"] == ["Default"] and described["HealthCheckType"] == "EC2"
    assert [t["Key"] for t in described["Tags"]] == ["cost", "team"]
    assert described["LoadBalancerNames"] == [] and described["SuspendedProcesses"] == []

    members = wait_for(lambda: healthy_in_service(autoscaling, name, 2), timeout=600, interval=1)
    assert sorted(m["AvailabilityZone"] for m in members) == ["us-east-1a", "us-east-1b"]
    # The instances are EC2's own, tagged as AWS tags them.
    reservations = ec2vm.describe_instances(Filters=[{"Name": f"tag:{GROUP_TAG}", "Values": [name]},
                                                     {"Name": "instance-state-name", "Values": ["running"]}])
    instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
    assert sorted(i["InstanceId"] for i in instances) == sorted(m["InstanceId"] for m in members)
    for instance in instances:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags == {GROUP_TAG: name, "team": "blue"}, tags
        assert instance["SubnetId"] == network[instance["Placement"]["AvailabilityZone"]]
    rows = autoscaling.describe_auto_scaling_instances(InstanceIds=[members[0]["InstanceId"]])
    assert rows["AutoScalingInstances"][0]["HealthStatus"] == "HEALTHY"
    assert rows["AutoScalingInstances"][0]["AutoScalingGroupName"] == name

    autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=3)
    members = wait_for(lambda: healthy_in_service(autoscaling, name, 3), timeout=600, interval=1)

    # kill -9 of a member's QEMU: the group replaces it (it is not recovered in place).
    victim = members[0]["InstanceId"]
    os.kill(qemu_pid(cloud, victim), signal.SIGKILL)
    replaced = wait_for(lambda: (lambda serving: serving if serving and victim not in
                                 [m["InstanceId"] for m in serving] else None)(
        healthy_in_service(autoscaling, name, 3)), timeout=600, interval=1)
    assert len(replaced) == 3
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName=name)["Activities"]
    took_out = [a for a in activities if a["Description"] == f"Terminating EC2 instance: {victim}"]
    assert len(took_out) == 1 and "an EC2 health check indicating it has been terminated or stopped" \
        in took_out[0]["Cause"], took_out
    assert any("an unhealthy instance needing to be replaced" in a["Cause"] for a in activities)
    launches = [a for a in activities if a["Description"].startswith("Launching a new EC2 instance: i-")]
    assert len(launches) == 4 and all(a["StatusCode"] == "Successful" for a in launches), launches
    first = launches[-1]
    assert "a user request created an AutoScalingGroup changing the desired capacity from 0 to 2." \
        in first["Cause"], first["Cause"]
    assert json.loads(first["Details"])["Availability Zone"] in network

    # An instance refresh replaces every member, keeping 2 of 3 (66 %) InService throughout.
    refresh_id = autoscaling.start_instance_refresh(
        AutoScalingGroupName=name, Preferences={"MinHealthyPercentage": 66, "InstanceWarmup": 0})["InstanceRefreshId"]
    fewest = 3

    def refreshed():
        nonlocal fewest
        members = group(autoscaling, name)["Instances"]
        fewest = min(fewest, sum(m["LifecycleState"] == "InService" for m in members))
        refresh = autoscaling.describe_instance_refreshes(AutoScalingGroupName=name,
                                                          InstanceRefreshIds=[refresh_id])["InstanceRefreshes"][0]
        return refresh if refresh["Status"] == "Successful" else None
    refresh = wait_for(refreshed, timeout=600, interval=0.5)
    assert refresh["PercentageComplete"] == 100 and fewest >= 2, (refresh, fewest)
    after = wait_for(lambda: healthy_in_service(autoscaling, name, 3), timeout=300, interval=1)
    assert not {m["InstanceId"] for m in after} & {m["InstanceId"] for m in replaced}
    replaced = after

    # Terraform's delete: drain through 0/0/0, wait for no instances at all, then delete.
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=name, MinSize=0, MaxSize=0, DesiredCapacity=0)
    wait_for(lambda: group(autoscaling, name)["Instances"] == [], timeout=300, interval=1)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=False)
    assert group(autoscaling, name) is None
    every = [m["InstanceId"] for m in replaced] + [victim]
    states = {i["State"]["Name"] for r in ec2vm.describe_instances(InstanceIds=every)["Reservations"]
              for i in r["Instances"]}
    assert states <= {"terminated", "shutting-down"}, states


def test_a_group_killed_mid_scale_out_converges_without_orphans(
        cloud, ec2vm, network, template):  # noqa: F811
    """kill -9 of nimbus while a scale-out is under way: after the restart the group has
    exactly its desired capacity, and no instance of it is left outside the group (launches
    are retried with the same ClientToken)."""
    autoscaling = cloud.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="crash", MinSize=0, MaxSize=3, DesiredCapacity=3,
        LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=",".join(network.values()))
    wait_for(lambda: ec2vm.describe_instances(Filters=[{"Name": f"tag:{GROUP_TAG}", "Values": ["crash"]}])
             ["Reservations"], timeout=60, interval=0.05)
    cloud.kill9()
    cloud.start()
    ec2 = cloud.client()
    autoscaling = cloud.client("autoscaling")
    members = wait_for(lambda: healthy_in_service(autoscaling, "crash", 3), timeout=600, interval=1)
    live = [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": f"tag:{GROUP_TAG}", "Values": ["crash"]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"] for i in r["Instances"]]
    assert sorted(live) == sorted(m["InstanceId"] for m in members)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="crash", ForceDelete=True)
    wait_for(lambda: group(autoscaling, "crash") is None, timeout=300, interval=1)


def test_instances_attached_moved_to_standby_and_detached(ec2vm, autoscaling, network, template):  # noqa: F811
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="moves", MinSize=0, MaxSize=2, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=network["us-east-1a"])
    instance_id = ec2vm.run_instances(LaunchTemplate={"LaunchTemplateId": template}, MinCount=1, MaxCount=1,
                                      SubnetId=network["us-east-1a"])["Instances"][0]["InstanceId"]
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})

    def tags():
        instance = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}

    def member():
        members = group(autoscaling, "moves")["Instances"]
        return (members[0]["LifecycleState"], group(autoscaling, "moves")["DesiredCapacity"]) if members else None

    # GetLaunchTemplateData reads the launch back from the instance.
    data = ec2vm.get_launch_template_data(InstanceId=instance_id)["LaunchTemplateData"]
    assert data["InstanceType"] == "t3.micro" and data["ImageId"].startswith("ami-")
    assert data["NetworkInterfaces"][0]["SubnetId"] == network["us-east-1a"]
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] >= 1
    assert data["Placement"]["AvailabilityZone"] == "us-east-1a"
    autoscaling.attach_instances(AutoScalingGroupName="moves", InstanceIds=[instance_id])
    assert member() == ("InService", 1) and tags() == {GROUP_TAG: "moves"}
    activities = autoscaling.enter_standby(AutoScalingGroupName="moves", InstanceIds=[instance_id],
                                           ShouldDecrementDesiredCapacity=True)["Activities"]
    assert activities[0]["Description"] == f"Moving EC2 instance to Standby: {instance_id}"
    assert member() == ("Standby", 0)
    autoscaling.exit_standby(AutoScalingGroupName="moves", InstanceIds=[instance_id])
    assert member() == ("InService", 1)
    autoscaling.detach_instances(AutoScalingGroupName="moves", InstanceIds=[instance_id],
                                 ShouldDecrementDesiredCapacity=True)
    assert member() is None and tags() == {}
    assert ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"] \
        == "running"
    with pytest.raises(ClientError) as excinfo:
        autoscaling.detach_instances(AutoScalingGroupName="moves", InstanceIds=[instance_id],
                                     ShouldDecrementDesiredCapacity=True)
    assert error_code(excinfo) == "ValidationError"
    ec2vm.terminate_instances(InstanceIds=[instance_id])
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="moves")


def test_a_scale_out_starts_a_stopped_warm_instance(ec2vm, autoscaling, network, template):  # noqa: F811
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="warm", MinSize=0, MaxSize=1, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=network["us-east-1b"])
    autoscaling.put_warm_pool(AutoScalingGroupName="warm", PoolState="Stopped", MinSize=1)

    def pool():
        return autoscaling.describe_warm_pool(AutoScalingGroupName="warm")
    rested = wait_for(lambda: [m for m in pool()["Instances"] if m["LifecycleState"] == "Warmed:Stopped"],
                      timeout=600, interval=1)
    warm_id = rested[0]["InstanceId"]
    assert pool()["WarmPoolConfiguration"]["PoolState"] == "Stopped"
    assert ec2vm.describe_instances(InstanceIds=[warm_id])["Reservations"][0]["Instances"][0]["State"]["Name"] \
        == "stopped"
    assert group(autoscaling, "warm")["Instances"] == [] and group(autoscaling, "warm")["WarmPoolSize"] == 1

    autoscaling.set_desired_capacity(AutoScalingGroupName="warm", DesiredCapacity=1)
    members = wait_for(lambda: healthy_in_service(autoscaling, "warm", 1), timeout=600, interval=1)
    assert members[0]["InstanceId"] == warm_id, "the warm instance itself went into service"
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName="warm")["Activities"]
    assert any(a["Description"] == f"Launching a new EC2 instance from warm pool: {warm_id}" for a in activities)
    # MinSize 1: the pool refills.
    wait_for(lambda: [m for m in pool()["Instances"] if m["LifecycleState"].startswith("Warmed:")],
             timeout=600, interval=1)

    autoscaling.delete_warm_pool(AutoScalingGroupName="warm", ForceDelete=True)
    wait_for(lambda: "WarmPoolConfiguration" not in pool(), timeout=600, interval=1)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="warm", ForceDelete=True)
    wait_for(lambda: group(autoscaling, "warm") is None, timeout=300, interval=1)


TICKING = """#!/bin/sh
sh -c 'n=0; while :; do n=$((n+1)); echo "WARM-TICK $$ $n" > /dev/console; sleep 1; done' &
"""


def test_a_hibernated_warm_instance_wakes_with_its_processes(
        cloud, ec2vm, autoscaling, network, minimal_ami):  # noqa: F811
    """A Hibernated warm pool: the warm instance's user data starts a process, a launch hook
    holds it until that process ticks, then it hibernates; a scale-out resumes it, and the same
    process (same PID) goes on counting, with no second boot."""
    template = ec2vm.create_launch_template(
        LaunchTemplateName="asg-sleepy",
        LaunchTemplateData={"ImageId": minimal_ami, "InstanceType": "t3.micro",
                            "HibernationOptions": {"Configured": True},
                            "UserData": base64.b64encode(TICKING.encode()).decode()},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="sleepy", MinSize=0, MaxSize=1, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=network["us-east-1a"])
    autoscaling.put_lifecycle_hook(AutoScalingGroupName="sleepy", LifecycleHookName="ticking",
                                   LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                                   HeartbeatTimeout=600)
    autoscaling.put_warm_pool(AutoScalingGroupName="sleepy", PoolState="Hibernated", MinSize=1)

    def warm(state):
        return [m for m in autoscaling.describe_warm_pool(AutoScalingGroupName="sleepy")["Instances"]
                if m["LifecycleState"] == state]

    instance_id = wait_for(lambda: warm("Warmed:Pending:Wait"), timeout=600, interval=1)[0]["InstanceId"]
    tick = wait_console(ec2vm, instance_id, r"WARM-TICK (\d+) (\d+)")
    pid = tick.group(1)
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="sleepy", LifecycleHookName="ticking",
                                          InstanceId=instance_id, LifecycleActionResult="CONTINUE")
    wait_for(lambda: warm("Warmed:Hibernated"), timeout=600, interval=1)
    instance = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped"
    assert instance["StateReason"]["Code"] == "Client.UserInitiatedHibernate"
    ticks_before = [int(n) for p, n in re.findall(r"WARM-TICK (\d+) (\d+)", console(ec2vm, instance_id)) if p == pid]

    autoscaling.set_desired_capacity(AutoScalingGroupName="sleepy", DesiredCapacity=1)
    # Leaving the warm pool runs the launch hook again, as in AWS.
    wait_for(lambda: [m for m in group(autoscaling, "sleepy")["Instances"]
                      if m["LifecycleState"] == "Pending:Wait"], timeout=600, interval=0.5)
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="sleepy", LifecycleHookName="ticking",
                                          InstanceId=instance_id, LifecycleActionResult="CONTINUE")
    members = wait_for(lambda: healthy_in_service(autoscaling, "sleepy", 1), timeout=300, interval=0.5)
    assert members[0]["InstanceId"] == instance_id
    after = wait_for(lambda: [int(n) for p, n in re.findall(r"WARM-TICK (\d+) (\d+)", console(ec2vm, instance_id))
                              if p == pid and int(n) > max(ticks_before) + 2], timeout=300, interval=1)
    assert after, "the process that started before hibernation counts on"
    assert console(ec2vm, instance_id).count("nimbus-minimal: booted kernel") <= 1
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="sleepy", ForceDelete=True)
    wait_for(lambda: group(autoscaling, "sleepy") is None, timeout=300, interval=1)


def test_a_lifecycle_hook_holds_a_launch_in_pending_wait_until_completed(
        ec2vm, autoscaling, network, template):  # noqa: F811
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="hooked", MinSize=0, MaxSize=1, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=network["us-east-1b"])
    autoscaling.put_lifecycle_hook(AutoScalingGroupName="hooked", LifecycleHookName="warm-up",
                                   LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                                   HeartbeatTimeout=600, DefaultResult="ABANDON")
    hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName="hooked")["LifecycleHooks"]
    assert [(h["LifecycleHookName"], h["HeartbeatTimeout"], h["DefaultResult"]) for h in hooks] == [
        ("warm-up", 600, "ABANDON")]
    autoscaling.set_desired_capacity(AutoScalingGroupName="hooked", DesiredCapacity=1)
    waiting = wait_for(lambda: [m for m in group(autoscaling, "hooked")["Instances"]
                                if m["LifecycleState"] == "Pending:Wait"], timeout=300, interval=1)
    instance_id = waiting[0]["InstanceId"]
    # Running in EC2, held out of service by the hook.
    instance = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "running"
    autoscaling.record_lifecycle_action_heartbeat(AutoScalingGroupName="hooked", LifecycleHookName="warm-up",
                                                  InstanceId=instance_id)
    assert group(autoscaling, "hooked")["Instances"][0]["LifecycleState"] == "Pending:Wait"
    autoscaling.complete_lifecycle_action(AutoScalingGroupName="hooked", LifecycleHookName="warm-up",
                                          InstanceId=instance_id, LifecycleActionResult="CONTINUE")
    wait_for(lambda: healthy_in_service(autoscaling, "hooked", 1), timeout=60, interval=0.5)
    with pytest.raises(ClientError) as excinfo:
        autoscaling.put_lifecycle_hook(AutoScalingGroupName="hooked", LifecycleHookName="bad",
                                       LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
                                       HeartbeatTimeout=7201)
    assert error_code(excinfo) == "ValidationError"
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="hooked", ForceDelete=True)
    wait_for(lambda: group(autoscaling, "hooked") is None, timeout=300, interval=1)


def test_target_tracking_scales_out_on_measured_cpu_and_back_in_when_idle(
        ec2vm, autoscaling, cloudwatch, network, minimal_ami):  # noqa: F811
    name = "busy"
    template = ec2vm.create_launch_template(
        LaunchTemplateName="asg-busy",
        LaunchTemplateData={"ImageId": minimal_ami, "InstanceType": "t3.micro", "Monitoring": {"Enabled": True},
                            "MetadataOptions": {"InstanceMetadataTags": "enabled"},
                            "UserData": base64.b64encode(BURN_UNTIL_TOLD.encode()).decode()},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=1, MaxSize=2, DesiredCapacity=1,
        LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=network["us-east-1a"],
        Tags=[{"Key": "load", "Value": "burn", "PropagateAtLaunch": True}])
    policy = autoscaling.put_scaling_policy(
        AutoScalingGroupName=name, PolicyName="cpu40", PolicyType="TargetTrackingScaling",
        EstimatedInstanceWarmup=600,
        TargetTrackingConfiguration={"PredefinedMetricSpecification": {
            "PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 40.0})
    names = sorted(a["AlarmName"] for a in policy["Alarms"])
    assert [n.split("-")[:3] for n in names] == [["TargetTracking", "busy", "AlarmHigh"],
                                                 ["TargetTracking", "busy", "AlarmLow"]], names
    alarms = cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]
    assert {a["MetricName"] for a in alarms} == {"CPUUtilization"}
    assert all(a["Dimensions"] == [{"Name": "AutoScalingGroupName", "Value": "busy"}] for a in alarms)
    assert all(a["AlarmActions"] == [policy["PolicyARN"]] for a in alarms)
    described = autoscaling.describe_policies(AutoScalingGroupName="busy")["ScalingPolicies"][0]
    assert described["TargetTrackingConfiguration"]["TargetValue"] == 40.0

    # The burning guest's CPU, aggregated by its group, raises the high alarm: a second member.
    wait_for(lambda: group(autoscaling, "busy")["DesiredCapacity"] == 2, timeout=600, interval=2)
    members = wait_for(lambda: healthy_in_service(autoscaling, "busy", 2), timeout=600, interval=1)
    activities = autoscaling.describe_scaling_activities(AutoScalingGroupName="busy")["Activities"]
    assert "in state ALARM triggered policy cpu40 changing the desired capacity from 1 to 2" in \
        activities[0]["Cause"], activities[0]["Cause"]

    # Told to stop, the guests go idle: the low alarm scales the group back in to its minimum.
    ec2vm.create_tags(Resources=[m["InstanceId"] for m in members], Tags=[{"Key": "load", "Value": "stop"}])
    wait_for(lambda: group(autoscaling, "busy")["DesiredCapacity"] == 1, timeout=900, interval=2)
    wait_for(lambda: healthy_in_service(autoscaling, "busy", 1), timeout=300, interval=1)
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="busy", ForceDelete=True)
    wait_for(lambda: group(autoscaling, "busy") is None, timeout=300, interval=1)
    # The policy's alarms go with the group.
    assert cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"] == []


def test_bad_groups_get_aws_errors(cloud, autoscaling, network, template):  # noqa: F811
    base = dict(LaunchTemplate={"LaunchTemplateId": template}, VPCZoneIdentifier=network["us-east-1a"])

    def refused(call, **kwargs):
        with pytest.raises(ClientError) as excinfo:
            call(**kwargs)
        return error_code(excinfo), excinfo.value.response["Error"]["Message"]

    create = autoscaling.create_auto_scaling_group
    assert refused(create, AutoScalingGroupName="bad", MinSize=5, MaxSize=3, **base) == (
        "ValidationError", "Max bound, 3, must be greater than or equal to min bound, 5")
    code, message = refused(create, AutoScalingGroupName="bad", MinSize=0, MaxSize=1,
                            LaunchTemplate={"LaunchTemplateName": "no-such-template"},
                            VPCZoneIdentifier=network["us-east-1a"])
    assert code == "ValidationError" and "no-such-template" in message and "does not exist" in message
    code, message = refused(create, AutoScalingGroupName="bad", MinSize=0, MaxSize=1,
                            LaunchTemplate={"LaunchTemplateId": template, "Version": "99"},
                            VPCZoneIdentifier=network["us-east-1a"])
    assert code == "ValidationError", message
    code, _ = refused(create, AutoScalingGroupName="bad", MinSize=0, MaxSize=1,
                      LaunchConfigurationName="old-style", VPCZoneIdentifier=network["us-east-1a"])
    assert code == "ValidationError"
    assert autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["bad"])["AutoScalingGroups"] == []

    create(AutoScalingGroupName="idle", MinSize=0, MaxSize=2, **base)
    assert refused(create, AutoScalingGroupName="idle", MinSize=0, MaxSize=2, **base)[0] == "AlreadyExists"
    assert refused(autoscaling.set_desired_capacity, AutoScalingGroupName="idle", DesiredCapacity=3) == (
        "ValidationError", "New SetDesiredCapacity value 3 is above max value 2 for the AutoScalingGroup.")
    code, message = refused(autoscaling.delete_auto_scaling_group, AutoScalingGroupName="missing")
    assert code == "ValidationError" and "not found" in message
    assert refused(autoscaling.put_warm_pool, AutoScalingGroupName="idle", PoolState="Running",
                   InstanceReusePolicy={"ReuseOnScaleIn": True})[0] == "ValidationError"
    assert autoscaling.describe_lifecycle_hooks(AutoScalingGroupName="idle")["LifecycleHooks"] == []
    # Ansible disables metrics collection on every run; Terraform suspends processes.
    autoscaling.disable_metrics_collection(AutoScalingGroupName="idle")
    autoscaling.suspend_processes(AutoScalingGroupName="idle", ScalingProcesses=["AZRebalance"])
    assert [p["ProcessName"] for p in group(autoscaling, "idle")["SuspendedProcesses"]] == ["AZRebalance"]

    # Scheduled actions: a one-time one runs at its time (and is gone), a recurring one stays.
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=3)
    autoscaling.put_scheduled_update_group_action(AutoScalingGroupName="idle", ScheduledActionName="grow",
                                                  StartTime=soon, MaxSize=3)
    autoscaling.put_scheduled_update_group_action(AutoScalingGroupName="idle", ScheduledActionName="nightly",
                                                  Recurrence="0 2 * * *", DesiredCapacity=0)
    actions = autoscaling.describe_scheduled_actions(AutoScalingGroupName="idle")["ScheduledUpdateGroupActions"]
    assert sorted(a["ScheduledActionName"] for a in actions) == ["grow", "nightly"]
    wait_for(lambda: group(autoscaling, "idle")["MaxSize"] == 3, timeout=60, interval=0.5)
    actions = autoscaling.describe_scheduled_actions(AutoScalingGroupName="idle")["ScheduledUpdateGroupActions"]
    assert [(a["ScheduledActionName"], a["Recurrence"]) for a in actions] == [("nightly", "0 2 * * *")]
    assert refused(autoscaling.put_scheduled_update_group_action, AutoScalingGroupName="idle",
                   ScheduledActionName="bad", Recurrence="61 * * * *", MinSize=0)[0] == "ValidationError"

    # The aws CLI reads the same answers.
    listed = subprocess.run(["aws", "autoscaling", "describe-auto-scaling-groups", "--auto-scaling-group-names",
                             "idle", "--output", "json"], env=cloud.cli_env(), capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["AutoScalingGroups"][0]["MaxSize"] == 3
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="idle")
    assert group(autoscaling, "idle") is None
