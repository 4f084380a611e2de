"""STS end to end through boto3 and the aws CLI: the AWS Query protocol, its error envelope,
and the caller's identity."""

import json
import subprocess
import urllib.error
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
    status, body = signed_post(nimbus, "Action=AssumeRole&Version=2011-06-15&RoleSessionName=session")
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
        sts.assume_role(RoleSessionName="session")
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


TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def test_iam_roles_and_instance_profiles_through_boto3(nimbus):
    iam = nimbus.client("iam")
    created = iam.create_role(
        RoleName="wire-web",
        Path="/app/",
        AssumeRolePolicyDocument=json.dumps(TRUST),
        MaxSessionDuration=7200,
        Tags=[{"Key": "team", "Value": "web"}],
    )["Role"]
    assert created["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/app/wire-web"
    assert created["CreateDate"].tzinfo is not None
    role = iam.get_role(RoleName="wire-web")["Role"]
    # botocore decodes the URL-encoded policy document IAM sends into a dict.
    assert role["AssumeRolePolicyDocument"] == TRUST
    assert role["MaxSessionDuration"] == 7200
    assert role["Tags"] == [{"Key": "team", "Value": "web"}]
    assert "wire-web" in [r["RoleName"] for r in iam.list_roles(PathPrefix="/app/")["Roles"]]

    updated = dict(TRUST, Statement=[dict(TRUST["Statement"][0], Effect="Deny")])
    iam.update_assume_role_policy(RoleName="wire-web", PolicyDocument=json.dumps(updated))
    assert iam.get_role(RoleName="wire-web")["Role"]["AssumeRolePolicyDocument"] == updated

    profile = iam.create_instance_profile(InstanceProfileName="wire-profile")["InstanceProfile"]
    assert profile["Roles"] == []
    iam.add_role_to_instance_profile(InstanceProfileName="wire-profile", RoleName="wire-web")
    got = iam.get_instance_profile(InstanceProfileName="wire-profile")["InstanceProfile"]
    assert [r["RoleName"] for r in got["Roles"]] == ["wire-web"]
    listed = iam.list_instance_profiles()["InstanceProfiles"]
    assert "wire-profile" in [p["InstanceProfileName"] for p in listed]

    with pytest.raises(ClientError) as caught:
        iam.delete_role(RoleName="wire-web")
    assert caught.value.response["Error"]["Code"] == "DeleteConflict"
    iam.remove_role_from_instance_profile(InstanceProfileName="wire-profile", RoleName="wire-web")
    iam.delete_instance_profile(InstanceProfileName="wire-profile")
    iam.delete_role(RoleName="wire-web")
    with pytest.raises(ClientError) as caught:
        iam.get_role(RoleName="wire-web")
    assert caught.value.response["Error"]["Code"] == "NoSuchEntity"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_iam_refuses_what_it_does_not_honour_by_name(nimbus):
    iam = nimbus.client("iam")
    with pytest.raises(ClientError) as caught:
        iam.create_role(
            RoleName="wire-bounded",
            AssumeRolePolicyDocument=json.dumps(TRUST),
            PermissionsBoundary="arn:aws:iam::aws:policy/AdministratorAccess",
        )
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "PermissionsBoundary" in caught.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as caught:
        iam.list_users()
    assert caught.value.response["Error"]["Code"] == "UnsupportedOperation"


def test_assume_role_and_session_token_through_boto3(nimbus):
    iam = nimbus.client("iam")
    iam.create_role(RoleName="wire-assumed", AssumeRolePolicyDocument=json.dumps(TRUST))
    sts = nimbus.client("sts")
    assumed = sts.assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/wire-assumed", RoleSessionName="session", DurationSeconds=900
    )
    credentials = assumed["Credentials"]
    assert credentials["Expiration"].tzinfo is not None
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/wire-assumed/session"
    as_role = nimbus.client(
        "sts",
        key=credentials["AccessKeyId"],
        secret=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    assert as_role.get_caller_identity()["Arn"] == assumed["AssumedRoleUser"]["Arn"]

    session = sts.get_session_token(DurationSeconds=900)["Credentials"]
    assert session["AccessKeyId"] and session["SessionToken"]

    with pytest.raises(ClientError) as caught:
        sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/no-such-role", RoleSessionName="session")
    assert caught.value.response["Error"]["Code"] == "AccessDenied"


def test_a_presigned_url_works_but_its_body_cannot_be_swapped(nimbus):
    """A presigned URL signs no body (botocore presigns Query operations for POST): the URL
    works as it is, and a body sent with it, input nobody signed, is refused."""
    url = nimbus.client("sts").generate_presigned_url("get_caller_identity", ExpiresIn=300)

    def post(body):
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        return urllib.request.urlopen(request, timeout=10)

    with post(b"") as answer:
        assert b"<Arn>arn:aws:iam::000000000000:root</Arn>" in answer.read()
    swapped = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::000000000000:role/x&RoleSessionName=s"
    with pytest.raises(urllib.error.HTTPError) as refused:
        post(swapped)
    assert refused.value.code == 403
    assert b"SignatureDoesNotMatch" in refused.value.read()
