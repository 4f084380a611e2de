"""A CloudWatch alarm's EC2 action on a real instance: `arn:aws:automate:us-east-1:ec2:stop` on
a custom metric with the instance's InstanceId dimension stops the QEMU VM."""

import json
import os
import subprocess
import time

from conftest import Nimbus
from test_instances import IMAGE_CACHE

# Bounds a wait; not a timing assertion.
STOP_WAIT_SECONDS = 300


def test_stop_action_stops_a_real_instance(tmp_path):
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
        dimensions = [{"Name": "InstanceId", "Value": instance_id}]
        cloudwatch.put_metric_alarm(
            AlarmName="stop-when-unhealthy", Namespace="App", MetricName="Unhealthy", Dimensions=dimensions,
            Statistic="Maximum", Period=10, EvaluationPeriods=1, Threshold=0,
            ComparisonOperator="GreaterThanThreshold", AlarmActions=["arn:aws:automate:us-east-1:ec2:stop"])
        deadline = time.time() + STOP_WAIT_SECONDS
        state = "running"
        while state != "stopped" and time.time() < deadline:
            cloudwatch.put_metric_data(Namespace="App", MetricData=[
                {"MetricName": "Unhealthy", "Dimensions": dimensions, "Value": 1.0, "StorageResolution": 1}])
            time.sleep(1)
            state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
        assert state == "stopped"
        alarm = cloudwatch.describe_alarms(AlarmNames=["stop-when-unhealthy"])["MetricAlarms"][0]
        assert alarm["StateValue"] == "ALARM"
        actions = cloudwatch.describe_alarm_history(AlarmName="stop-when-unhealthy",
                                                    HistoryItemType="Action")["AlarmHistoryItems"]
        assert [a["HistorySummary"] for a in actions] == [
            "Successfully executed action arn:aws:automate:us-east-1:ec2:stop"]
        assert json.loads(actions[0]["HistoryData"])["actionState"] == "Succeeded"
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    finally:
        server.stop()
