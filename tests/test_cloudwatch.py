"""CloudWatch end to end with real clients (boto3, the aws CLI, the JavaScript SDK): custom
metrics round trip with the right statistics, alarms evaluated for real with their history,
everything kept across kill -9, and bad input refused with CloudWatch's codes."""

import datetime
import json
import math
import subprocess
import time

import pytest
from botocore.exceptions import ClientError

from test_js_sdk import run_js

# The evaluator looks at a 10-second alarm every 10 seconds; this bounds a wait for a state,
# it is not a timing assertion.
STATE_WAIT_SECONDS = 120


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def error_of(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response


@pytest.fixture(scope="module")
def cloudwatch(nimbus):
    return nimbus.client("cloudwatch")


def one_datapoint(cloudwatch, namespace, name, dimensions, at, **statistics):
    answer = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=dimensions,
        StartTime=at - datetime.timedelta(minutes=2),
        EndTime=at + datetime.timedelta(minutes=2),
        Period=240,
        **statistics,
    )
    assert len(answer["Datapoints"]) == 1, answer
    return answer["Datapoints"][0]


def test_put_then_get_statistics_and_data_round_trip(cloudwatch):
    at = now()
    dimensions = [{"Name": "Service", "Value": "checkout"}]
    cloudwatch.put_metric_data(
        Namespace="Shop",
        MetricData=[
            {"MetricName": "Latency", "Dimensions": dimensions, "Timestamp": at,
             "Values": [float(v) for v in range(1, 101)], "Unit": "Milliseconds"},
            {"MetricName": "Latency", "Dimensions": dimensions, "Timestamp": at,
             "StatisticValues": {"SampleCount": 2, "Sum": 300, "Minimum": 100, "Maximum": 200},
             "Unit": "Milliseconds"},
        ],
    )
    point = one_datapoint(cloudwatch, "Shop", "Latency", dimensions, at,
                          Statistics=["Sum", "Average", "SampleCount", "Minimum", "Maximum"])
    assert point["Sum"] == 5050 + 300
    assert point["SampleCount"] == 102
    assert point["Average"] == pytest.approx(5350 / 102)
    assert point["Minimum"] == 1 and point["Maximum"] == 200
    assert point["Unit"] == "Milliseconds"

    cloudwatch.put_metric_data(
        Namespace="Shop",
        MetricData=[{"MetricName": "Size", "Dimensions": dimensions, "Timestamp": at,
                     "Values": [float(v) for v in range(1, 101)], "Counts": [1.0] * 100}],
    )
    point = one_datapoint(cloudwatch, "Shop", "Size", dimensions, at, ExtendedStatistics=["p99", "p50"])
    assert point["ExtendedStatistics"] == {"p99": 99.0, "p50": 50.0}

    data = cloudwatch.get_metric_data(
        StartTime=at - datetime.timedelta(minutes=2),
        EndTime=at + datetime.timedelta(minutes=2),
        MetricDataQueries=[
            {"Id": "sum", "Label": "total", "MetricStat": {
                "Metric": {"Namespace": "Shop", "MetricName": "Size", "Dimensions": dimensions},
                "Period": 240, "Stat": "Sum"}},
            {"Id": "tail", "MetricStat": {
                "Metric": {"Namespace": "Shop", "MetricName": "Size", "Dimensions": dimensions},
                "Period": 240, "Stat": "p99"}},
            {"Id": "hidden", "ReturnData": False, "MetricStat": {
                "Metric": {"Namespace": "Shop", "MetricName": "Size", "Dimensions": dimensions},
                "Period": 240, "Stat": "Maximum"}},
        ],
    )
    results = {r["Id"]: r for r in data["MetricDataResults"]}
    assert set(results) == {"sum", "tail"}
    assert results["sum"]["Values"] == [5050.0] and results["sum"]["Label"] == "total"
    assert results["tail"]["Values"] == [99.0]
    assert results["sum"]["StatusCode"] == "Complete"


def test_the_aws_cli_puts_and_gets_statistics(nimbus):
    env = nimbus.cli_env()
    at = now().replace(microsecond=0)
    put = ["aws", "cloudwatch", "put-metric-data", "--namespace", "Cli", "--metric-name", "Jobs",
           "--dimensions", "Queue=emails", "--value", "7", "--unit", "Count",
           "--timestamp", at.isoformat()]
    result = subprocess.run(put, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    get = ["aws", "cloudwatch", "get-metric-statistics", "--namespace", "Cli", "--metric-name", "Jobs",
           "--dimensions", "Name=Queue,Value=emails", "--statistics", "Sum", "SampleCount",
           "--start-time", (at - datetime.timedelta(minutes=2)).isoformat(),
           "--end-time", (at + datetime.timedelta(minutes=2)).isoformat(), "--period", "240",
           "--output", "json"]
    result = subprocess.run(get, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["Label"] == "Jobs"
    assert [(p["Sum"], p["SampleCount"], p["Unit"]) for p in answer["Datapoints"]] == [(7.0, 1.0, "Count")]


def test_the_javascript_sdk(nimbus):
    result = run_js(nimbus, "cloudwatch")
    assert result["sums"] == [9.0]
    assert result["status"] == "Complete"
    assert result["alarms"] == [["js-orders", "INSUFFICIENT_DATA"]]
    # The SDK names the modeled exception shape (its query code is InvalidParameterValue).
    assert result["refused"]["name"] == "InvalidParameterValueException"
    assert result["refused"]["status"] == 400


def test_list_metrics_filters_and_pages(cloudwatch):
    cloudwatch.put_metric_data(
        Namespace="Listing",
        MetricData=[{"MetricName": "Hits", "Value": 1.0, "Dimensions": [{"Name": "Host", "Value": f"h{i}"}]}
                    for i in range(3)],
    )
    listed = cloudwatch.list_metrics(Namespace="Listing")["Metrics"]
    assert sorted(m["Dimensions"][0]["Value"] for m in listed) == ["h0", "h1", "h2"]
    assert cloudwatch.list_metrics(Namespace="Listing", Dimensions=[{"Name": "Host", "Value": "h1"}])["Metrics"] == [
        {"Namespace": "Listing", "MetricName": "Hits", "Dimensions": [{"Name": "Host", "Value": "h1"}]}
    ]
    assert len(cloudwatch.list_metrics(Namespace="Listing", RecentlyActive="PT3H")["Metrics"]) == 3
    paginated = [m for page in cloudwatch.get_paginator("list_metrics").paginate(Namespace="Listing")
                 for m in page["Metrics"]]
    assert len(paginated) == 3


def alarm_state(cloudwatch, name):
    return cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"]


def wait_for_state(cloudwatch, name, state, feed=None):
    """Polls until the alarm is in `state`; `feed` publishes a datapoint on each round."""
    deadline = time.time() + STATE_WAIT_SECONDS
    while time.time() < deadline:
        if feed:
            feed()
        if alarm_state(cloudwatch, name) == state:
            return
        time.sleep(1)
    raise AssertionError(f"{name} never reached {state}: {cloudwatch.describe_alarms(AlarmNames=[name])}")


def test_high_resolution_alarm_goes_ok_alarm_ok_with_history(cloudwatch):
    def feed(value):
        return lambda: cloudwatch.put_metric_data(
            Namespace="Queue",
            MetricData=[{"MetricName": "Depth", "Value": value, "StorageResolution": 1}],
        )

    feed(1.0)()
    cloudwatch.put_metric_alarm(
        AlarmName="queue-deep", Namespace="Queue", MetricName="Depth", Statistic="Maximum",
        Period=10, EvaluationPeriods=1, Threshold=50, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    wait_for_state(cloudwatch, "queue-deep", "OK", feed(1.0))
    wait_for_state(cloudwatch, "queue-deep", "ALARM", feed(90.0))
    alarm = cloudwatch.describe_alarms(AlarmNames=["queue-deep"])["MetricAlarms"][0]
    assert alarm["StateReason"].startswith("Threshold Crossed")
    assert json.loads(alarm["StateReasonData"])["threshold"] == 50.0
    wait_for_state(cloudwatch, "queue-deep", "OK", feed(2.0))
    history = cloudwatch.describe_alarm_history(AlarmName="queue-deep", ScanBy="TimestampAscending")
    items = [(i["HistoryItemType"], i["HistorySummary"]) for i in history["AlarmHistoryItems"]]
    assert items[0] == ("ConfigurationUpdate", 'Alarm "queue-deep" created')
    states = [s for kind, s in items if kind == "StateUpdate"]
    assert states == ["Alarm updated from INSUFFICIENT_DATA to OK", "Alarm updated from OK to ALARM",
                      "Alarm updated from ALARM to OK"]
    data = json.loads(history["AlarmHistoryItems"][2]["HistoryData"])
    assert data["oldState"]["stateValue"] == "OK" and data["newState"]["stateValue"] == "ALARM"
    assert cloudwatch.describe_alarms_for_metric(Namespace="Queue", MetricName="Depth")["MetricAlarms"][0][
        "AlarmName"] == "queue-deep"


def test_set_alarm_state_enable_disable_and_delete(cloudwatch):
    cloudwatch.put_metric_alarm(
        AlarmName="manual", Namespace="Manual", MetricName="M", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
        # With no data and `ignore`, the evaluator leaves the state SetAlarmState gave.
        TreatMissingData="ignore",
        AlarmActions=["arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:0b1c:autoScalingGroupName/web:policyName/up"],
    )
    cloudwatch.set_alarm_state(AlarmName="manual", StateValue="ALARM", StateReason="testing the pager")
    alarm = cloudwatch.describe_alarms(AlarmNames=["manual"])["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "testing the pager")
    actions = cloudwatch.describe_alarm_history(AlarmName="manual", HistoryItemType="Action")["AlarmHistoryItems"]
    assert "Failed to execute action arn:aws:autoscaling" in actions[0]["HistorySummary"]
    assert "does not exist" in json.loads(actions[0]["HistoryData"])["error"]
    cloudwatch.disable_alarm_actions(AlarmNames=["manual"])
    assert cloudwatch.describe_alarms(AlarmNames=["manual"])["MetricAlarms"][0]["ActionsEnabled"] is False
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms(StateValue="ALARM", AlarmNamePrefix="man")["MetricAlarms"]] == ["manual"]
    error = error_of(lambda: cloudwatch.delete_alarms(AlarmNames=["manual", "never-was"]))
    assert error["Error"]["Code"] == "ResourceNotFound"
    cloudwatch.delete_alarms(AlarmNames=["manual"])
    assert cloudwatch.describe_alarms(AlarmNames=["manual"])["MetricAlarms"] == []


def test_alarms_and_datapoints_survive_kill_9(fresh_nimbus):
    fresh_nimbus.start()
    cloudwatch = fresh_nimbus.client("cloudwatch")
    at = now()
    cloudwatch.put_metric_data(Namespace="Durable", MetricData=[
        {"MetricName": "Writes", "Timestamp": at, "Values": [1.0, 2.0, 3.0]}])
    cloudwatch.put_metric_alarm(
        AlarmName="durable", Namespace="Durable", MetricName="Writes", Statistic="Sum", Period=60,
        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="ignore")
    cloudwatch.set_alarm_state(AlarmName="durable", StateValue="ALARM", StateReason="before the crash")
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    cloudwatch = fresh_nimbus.client("cloudwatch")
    assert one_datapoint(cloudwatch, "Durable", "Writes", [], at, Statistics=["Sum"])["Sum"] == 6.0
    alarm = cloudwatch.describe_alarms(AlarmNames=["durable"])["MetricAlarms"][0]
    assert (alarm["StateValue"], alarm["StateReason"]) == ("ALARM", "before the crash")
    history = cloudwatch.describe_alarm_history(AlarmName="durable")["AlarmHistoryItems"]
    assert any(i["HistorySummary"] == "Alarm updated from INSUFFICIENT_DATA to ALARM" for i in history)
    assert cloudwatch.list_metrics(Namespace="Durable")["Metrics"][0]["MetricName"] == "Writes"


def test_gzipped_put_metric_data_from_boto3(cloudwatch):
    sent = {}

    def remember(request, **_):
        sent["encoding"] = request.headers.get("Content-Encoding")
        sent["size"] = len(request.body)

    cloudwatch.meta.events.register("before-send.cloudwatch.PutMetricData", remember)
    at = now()
    try:
        cloudwatch.put_metric_data(Namespace="Zipped", MetricData=[
            {"MetricName": f"M{i}", "Timestamp": at, "Values": [float(v) for v in range(100)]}
            for i in range(40)])
    finally:
        cloudwatch.meta.events.unregister("before-send.cloudwatch.PutMetricData", remember)
    assert sent["encoding"] in ("gzip", b"gzip"), sent
    assert one_datapoint(cloudwatch, "Zipped", "M39", [], at, Statistics=["Sum"])["Sum"] == 4950.0


def refused(call):
    error = error_of(call)
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


def test_bad_input_gets_cloudwatch_codes(cloudwatch):
    alarm = dict(AlarmName="bad", Namespace="Bad", MetricName="M", Statistic="Sum", Period=60,
                 EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    assert refused(lambda: cloudwatch.put_metric_alarm(**dict(alarm, Period=45))) == ("InvalidParameterValue", 400)
    assert refused(lambda: cloudwatch.put_metric_alarm(
        **dict(alarm, AlarmActions=["arn:aws:sns:us-east-1:000000000000:pager"]))) == ("ValidationError", 400)
    assert refused(lambda: cloudwatch.put_metric_alarm(
        **dict(alarm, AlarmActions=["arn:aws:automate:eu-west-1:ec2:stop"],
               Dimensions=[{"Name": "InstanceId", "Value": "i-0123456789abcdef0"}]))) == ("ValidationError", 400)
    put = lambda datum: lambda: cloudwatch.put_metric_data(Namespace="Bad", MetricData=[datum])  # noqa: E731
    assert refused(put({"MetricName": "M", "Values": [1.0] * 1001})) == ("InvalidParameterValue", 400)
    dimensions = [{"Name": f"D{i}", "Value": "v"} for i in range(31)]
    assert refused(put({"MetricName": "M", "Value": 1.0, "Dimensions": dimensions})) == ("InvalidParameterValue", 400)
    for value in (math.nan, math.inf, -math.inf):
        assert refused(put({"MetricName": "M", "Value": value})) == ("InvalidParameterValue", 400)
    assert refused(put({"MetricName": "M", "Value": 1.0, "Timestamp": now() - datetime.timedelta(days=15)})) == (
        "InvalidParameterValue", 400)
    big = [{"MetricName": f"M{i}", "Values": [i + j / 7 for j in range(1000)]} for i in range(150)]
    code, status = refused(lambda: cloudwatch.put_metric_data(Namespace="Bad", MetricData=big))
    assert status == 413
    assert refused(lambda: cloudwatch.get_metric_statistics(
        Namespace="Bad", MetricName="M", StartTime=now() - datetime.timedelta(days=2), EndTime=now(),
        Period=60, Statistics=["Sum"])) == ("InvalidParameterCombination", 400)
    assert refused(lambda: cloudwatch.get_metric_data(
        StartTime=now() - datetime.timedelta(hours=1), EndTime=now(),
        MetricDataQueries=[{"Id": "e1", "Expression": "SUM(METRICS())"}])) == ("InvalidParameterValue", 400)
