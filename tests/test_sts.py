"""STS end to end through boto3 and the aws CLI: the AWS Query protocol, its error envelope,
and the caller's identity."""

import json
import subprocess
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"


def test_aws_cli_get_caller_identity(nimbus):
    result = subprocess.run(
        ["aws", "sts", "get-caller-identity", "--output", "json"],
        env=nimbus.cli_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    identity = json.loads(result.stdout)
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"


def test_boto3_get_caller_identity(nimbus):
    identity = nimbus.client("sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT
    assert identity["UserId"]
    assert identity["ResponseMetadata"]["RequestId"]


def signed_post(nimbus, body):
    request = AWSRequest(
        method="POST",
        url=nimbus.endpoint + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials("test", "test"), "sts", "us-east-1").add_auth(request)
    prepared = urllib.request.Request(
        request.url, data=body.encode(), headers=dict(request.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(prepared) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_a_missing_parameter_gets_the_query_error_envelope(nimbus):
    status, body = signed_post(nimbus, "Action=AssumeRole&Version=2011-06-15&RoleSessionName=s")
    assert status == 400
    root = ET.fromstring(body)
    ns = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
    assert root.tag == "{https://sts.amazonaws.com/doc/2011-06-15/}ErrorResponse"
    assert root.findtext("sts:Error/sts:Type", namespaces=ns) == "Sender"
    assert root.findtext("sts:Error/sts:Code", namespaces=ns) == "MissingParameter"
    assert "RoleArn" in root.findtext("sts:Error/sts:Message", namespaces=ns)
    assert root.findtext("sts:RequestId", namespaces=ns)

    # boto3, with its own validation off so that the request reaches nimbus, shows the same.
    sts = boto3.client(
        "sts",
        endpoint_url=nimbus.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as caught:
        sts.assume_role(RoleSessionName="s")
    error = caught.value.response["Error"]
    assert error["Code"] == "MissingParameter"
    assert error["Type"] == "Sender"
    assert "RoleArn" in error["Message"]


def test_unknown_and_unsupported_operations_are_coded(nimbus):
    status, body = signed_post(nimbus, "Action=NoSuchThing&Version=2011-06-15")
    assert status == 400 and b"<Code>InvalidAction</Code>" in body
    with pytest.raises(ClientError) as caught:
        nimbus.client("sts").decode_authorization_message(EncodedMessage="x")
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperation"
