"""Protocols end to end: services nimbus does not have, and services it carries the model of
but does not serve yet, answer a coded error in the protocol the client sent, so that boto3 and
the aws CLI show the code instead of "An error occurred (400)"."""

import datetime
import subprocess

import pytest
from botocore.exceptions import ClientError


def error_of(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]


@pytest.mark.parametrize(
    "service,call",
    [
        ("logs", lambda c: c.describe_log_groups()),  # AWS JSON 1.1
        ("kms", lambda c: c.list_keys()),  # AWS JSON 1.1
        ("sqs", lambda c: c.list_queues()),  # AWS JSON 1.0, query-compatible
        ("lambda", lambda c: c.list_functions()),  # REST-JSON
        ("s3", lambda c: c.list_buckets()),  # REST-XML
        ("sns", lambda c: c.list_topics()),  # AWS Query
    ],
)
def test_an_unknown_service_shows_the_code_in_its_own_protocol(nimbus, service, call):
    error = error_of(lambda: call(nimbus.client(service)))
    assert error["Code"] == "UnsupportedOperation"
    assert f"'{service}'" in error["Message"] or service == "s3"


# CloudWatch accepts datapoints from the last two weeks.
NOW = datetime.datetime.now(datetime.timezone.utc)


def test_cloudwatch_from_boto3_gets_a_coded_error(nimbus):
    cloudwatch = nimbus.client("cloudwatch")
    error = error_of(
        lambda: cloudwatch.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=[{"MetricName": "Latency", "Timestamp": NOW, "Value": 1.5, "Unit": "Seconds"}],
        )
    )
    assert error["Code"] == "InvalidParameterValue"
    assert "AWS/EC2" in error["Message"]
    error = error_of(lambda: cloudwatch.list_dashboards())
    assert error["Code"] == "UnsupportedOperation"
    assert "ListDashboards" in error["Message"]


def test_cloudwatch_from_the_aws_cli_gets_a_coded_error(nimbus):
    result = subprocess.run(
        ["aws", "cloudwatch", "list-dashboards"],
        env=nimbus.cli_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "(UnsupportedOperation)" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "service,call",
    [
        ("autoscaling", lambda c: c.describe_launch_configurations()),
        ("elbv2", lambda c: c.describe_ssl_policies()),
    ],
)
def test_services_of_coming_issues_answer_unsupported_operation(nimbus, service, call):
    assert error_of(lambda: call(nimbus.client(service)))["Code"] == "UnsupportedOperation"


def signed(nimbus, service, request):
    """Signs a botocore-serialized request for nimbus and sends it; returns status, headers, body."""
    import urllib.error
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = nimbus.endpoint + request["url_path"]
    aws_request = AWSRequest(method="POST", url=url, data=request["body"], headers=request["headers"])
    SigV4Auth(Credentials("test", "test"), service, "us-east-1").add_auth(aws_request)
    prepared = urllib.request.Request(url, data=request["body"], headers=dict(aws_request.headers), method="POST")
    try:
        with urllib.request.urlopen(prepared) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "query", "json"])
def test_cloudwatch_answers_in_each_protocol_its_model_lists(nimbus, protocol):
    """botocore's own serializer and parser for each protocol CloudWatch's model lists: the
    answer (and an error) comes back in the protocol the request was sent in."""
    import boto3
    import botocore.parsers
    import botocore.serialize

    model = boto3.session.Session().client("cloudwatch", region_name="us-east-1").meta.service_model
    operation = model.operation_model("PutMetricData")

    def send(namespace):
        request = botocore.serialize.create_serializer(protocol).serialize_to_request(
            {"Namespace": namespace, "MetricData": [{"MetricName": "Latency", "Timestamp": NOW, "Value": 1.5}]},
            operation,
        )
        if isinstance(request["body"], dict):
            from urllib.parse import urlencode

            request["body"] = urlencode(request["body"]).encode()
        status, headers, body = signed(nimbus, "monitoring", request)
        parsed = botocore.parsers.create_parser(protocol).parse(
            {"status_code": status, "headers": headers, "body": body}, operation.output_shape
        )
        return status, parsed

    status, _ = send(f"App/{protocol}")
    assert status == 200
    status, parsed = send("AWS/EC2")
    assert status == 400
    assert parsed["Error"]["Code"] == "InvalidParameterValue"


def test_an_sts_authentication_failure_comes_in_the_query_envelope(nimbus):
    error = error_of(nimbus.client("sts", secret="wrong").get_caller_identity)
    assert error["Code"] == "SignatureDoesNotMatch"
    assert error["Type"] == "Sender"
