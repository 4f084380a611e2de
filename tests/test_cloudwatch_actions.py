"""A CloudWatch alarm's EC2 actions on a real instance. An alarm on a custom metric with the
instance's InstanceId dimension:
- `arn:aws:automate:us-east-1:ec2:stop` stops the QEMU VM;
- `arn:aws:automate:us-east-1:ec2:recover` brings the same instance (ID, private IP) back
  on a new VM, and the console says so."""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import Nimbus
from test_instances import IMAGE_CACHE, console

# Bounds a wait; not a timing assertion.
ACTION_WAIT_SECONDS = 300


def describe(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def recovered(ec2, instance_id):
    return re.search(rf"nimbus: instance {instance_id} recovered", console(ec2, instance_id)) is not None


@pytest.mark.parametrize("action", ["stop", "recover"])
def test_alarm_action_acts_on_a_real_instance(tmp_path, action):
    build = subprocess.run([os.environ.get("NIMBUS_BIN", "target/debug/nimbus"), "image", "build",
                            "--data-dir", str(tmp_path), "--cache-dir", IMAGE_CACHE], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    server = Nimbus(str(tmp_path)).start()
    try:
        ec2 = server.client()
        cloudwatch = server.client("cloudwatch")
        ami = ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
        instance_id = ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1,
                                        MaxCount=1)["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        before = describe(ec2, instance_id)
        arn = f"arn:aws:automate:us-east-1:ec2:{action}"
        dimensions = [{"Name": "InstanceId", "Value": instance_id}]
        cloudwatch.put_metric_alarm(
            AlarmName="act-when-unhealthy", Namespace="App", MetricName="Unhealthy", Dimensions=dimensions,
            Statistic="Maximum", Period=10, EvaluationPeriods=1, Threshold=0,
            ComparisonOperator="GreaterThanThreshold", AlarmActions=[arn])
        done = {"stop": lambda: describe(ec2, instance_id)["State"]["Name"] == "stopped",
                "recover": lambda: recovered(ec2, instance_id)}[action]
        deadline = time.time() + ACTION_WAIT_SECONDS
        while not done() and time.time() < deadline:
            cloudwatch.put_metric_data(Namespace="App", MetricData=[
                {"MetricName": "Unhealthy", "Dimensions": dimensions, "Value": 1.0, "StorageResolution": 1}])
            time.sleep(1)
        assert done()
        if action == "recover":
            ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id],
                                                   WaiterConfig={"Delay": 1, "MaxAttempts": 300})
            after = describe(ec2, instance_id)
            assert after["PrivateIpAddress"] == before["PrivateIpAddress"]
            assert after["InstanceId"] == instance_id
        alarm = cloudwatch.describe_alarms(AlarmNames=["act-when-unhealthy"])["MetricAlarms"][0]
        assert alarm["StateValue"] == "ALARM"
        actions = cloudwatch.describe_alarm_history(AlarmName="act-when-unhealthy",
                                                    HistoryItemType="Action")["AlarmHistoryItems"]
        assert [a["HistorySummary"] for a in actions] == [f"Successfully executed action {arn}"]
        assert json.loads(actions[0]["HistoryData"])["actionState"] == "Succeeded"
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    finally:
        server.stop()
