"""Identity end to end: temporary credentials from STS used by boto3 against EC2, how nimbus
refuses credentials it should not accept, and an instance reading its role's credentials from
the metadata service inside the guest."""

import json
import os
import re
import sqlite3
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from test_instances import cloud, ec2vm, minimal_ami, wait_console  # noqa: F401 (fixtures)

ACCOUNT = "000000000000"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def client(nimbus, service, credentials, region="us-east-1"):
    return boto3.client(
        service,
        endpoint_url=nimbus.endpoint,
        region_name=region,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials.get("SessionToken"),
        config=Config(retries={"max_attempts": 1}),
    )


def refusal(call):
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def create_role(nimbus, name, **extra):
    return nimbus.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST), **extra)["Role"]


def assume(nimbus, role_arn, session="e2e-session", **extra):
    return nimbus.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session, **extra)


def test_assumed_role_credentials_work_against_ec2_and_report_the_role(nimbus):
    role = create_role(nimbus, "e2e-operator")
    assumed = assume(nimbus, role["Arn"])
    credentials = assumed["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA")
    assert assumed["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/e2e-operator/e2e-session"

    ec2 = client(nimbus, "ec2", credentials)
    assert ec2.describe_regions()["Regions"]
    key = ec2.create_key_pair(KeyName="made-by-a-role")
    assert key["KeyName"] == "made-by-a-role"

    identity = client(nimbus, "sts", credentials).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/e2e-operator/e2e-session"
    assert identity["UserId"] == f"{role['RoleId']}:e2e-session"
    assert identity["Account"] == ACCOUNT


def test_forged_and_missing_session_tokens_are_refused(nimbus):
    role = create_role(nimbus, "e2e-refusals")
    credentials = assume(nimbus, role["Arn"])["Credentials"]
    forged = dict(credentials, SessionToken=credentials["SessionToken"][:-4] + "AAAA")
    without_token = {k: v for k, v in credentials.items() if k != "SessionToken"}
    unknown = dict(credentials, AccessKeyId="ASIAAAAAAAAAAAAAAAAA")
    for bad in (forged, without_token, unknown):
        assert refusal(lambda: client(nimbus, "ec2", bad).describe_regions()) == ("AuthFailure", 401)
        assert refusal(lambda: client(nimbus, "sts", bad).get_caller_identity()) == ("InvalidClientTokenId", 403)
    # A long-term key does not take a session token either.
    long_term_with_token = {"AccessKeyId": "test", "SecretAccessKey": "test", "SessionToken": credentials["SessionToken"]}
    assert refusal(lambda: client(nimbus, "ec2", long_term_with_token).describe_regions()) == ("AuthFailure", 401)


def test_session_tokens_speak_for_the_caller_and_cannot_be_chained(nimbus):
    credentials = nimbus.client("sts").get_session_token(DurationSeconds=900)["Credentials"]
    sts = client(nimbus, "sts", credentials)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert refusal(lambda: sts.get_session_token()) == ("AccessDenied", 403)
    assert refusal(lambda: nimbus.client("sts").get_session_token(DurationSeconds=129601))[0] == "ValidationError"


def test_assume_role_limits(nimbus):
    role = create_role(nimbus, "e2e-limits", MaxSessionDuration=7200)
    assert assume(nimbus, role["Arn"], DurationSeconds=7200)["Credentials"]
    code, status = refusal(lambda: assume(nimbus, role["Arn"], DurationSeconds=7201))
    assert (code, status) == ("ValidationError", 400)
    missing = f"arn:aws:iam::{ACCOUNT}:role/nobody"
    with pytest.raises(ClientError) as caught:
        assume(nimbus, missing)
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    assert caught.value.response["Error"]["Message"] == (
        f"User: arn:aws:iam::{ACCOUNT}:root is not authorized to perform: sts:AssumeRole on resource: {missing}"
    )


def test_requests_signed_for_another_region_are_refused(nimbus):
    long_term = {"AccessKeyId": "test", "SecretAccessKey": "test"}
    code, status = refusal(lambda: client(nimbus, "ec2", long_term, region="eu-west-1").describe_regions())
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert refusal(lambda: client(nimbus, "sts", long_term, region="eu-west-1").get_caller_identity()) == (
        "SignatureDoesNotMatch",
        403,
    )


def test_issued_credentials_survive_kill9(fresh_nimbus):
    fresh_nimbus.start()
    role = create_role(fresh_nimbus, "e2e-durable")
    credentials = assume(fresh_nimbus, role["Arn"])["Credentials"]
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    identity = client(fresh_nimbus, "sts", credentials).get_caller_identity()
    assert identity["Arn"].endswith(":assumed-role/e2e-durable/e2e-session")


def test_expired_session_tokens_are_refused(fresh_nimbus):
    """STS's shortest session is 15 minutes, so the stored credential's expiry is moved into the
    past while nimbus is down (the same record nimbus reads at start) instead of waiting."""
    fresh_nimbus.start()
    role = create_role(fresh_nimbus, "e2e-expiring")
    credentials = assume(fresh_nimbus, role["Arn"], DurationSeconds=900)["Credentials"]
    assert client(fresh_nimbus, "sts", credentials).get_caller_identity()["Arn"].endswith("/e2e-session")
    fresh_nimbus.stop()
    database = sqlite3.connect(os.path.join(fresh_nimbus.data_dir, "state.db"))
    with database:
        (body,) = database.execute(
            "SELECT body FROM resources WHERE id = ?", (credentials["AccessKeyId"],)
        ).fetchone()
        record = json.loads(body)
        record["expiration"] = int(time.time() * 1000) - 1000
        database.execute(
            "UPDATE resources SET body = ? WHERE id = ?", (json.dumps(record), credentials["AccessKeyId"])
        )
    database.close()
    fresh_nimbus.start()
    assert refusal(lambda: client(fresh_nimbus, "sts", credentials).get_caller_identity()) == ("ExpiredToken", 403)
    assert refusal(lambda: client(fresh_nimbus, "ec2", credentials).describe_regions()) == ("RequestExpired", 400)


def test_run_instances_refuses_an_unknown_instance_profile(ec2vm, minimal_ami):  # noqa: F811
    with pytest.raises(ClientError) as caught:
        ec2vm.run_instances(ImageId=minimal_ami, MinCount=1, MaxCount=1, IamInstanceProfile={"Name": "no-such-profile"})
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidParameterValue"
    assert error["Message"] == (
        "Value (no-such-profile) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
    )


GUEST_READS_ROLE_CREDENTIALS = """#!/bin/sh
TOKEN=$(imds-token 60)
get() { wget -q -O - --header "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }
ROLE=$(get iam/security-credentials/)
echo "NIMBUS-IAM role=[$ROLE] info=$(get iam/info | tr -d ' \\n') creds=$(get iam/security-credentials/$ROLE | tr -d ' \\n') END" > /dev/console
"""


def test_instance_reads_its_role_credentials_from_imds(cloud, ec2vm, minimal_ami):  # noqa: F811
    iam = cloud.client("iam")
    iam.create_role(RoleName="e2e-instance-role", AssumeRolePolicyDocument=json.dumps(TRUST))
    profile = iam.create_instance_profile(InstanceProfileName="e2e-instance-profile")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="e2e-instance-profile", RoleName="e2e-instance-role")

    instance = ec2vm.run_instances(
        ImageId=minimal_ami, MinCount=1, MaxCount=1, UserData=GUEST_READS_ROLE_CREDENTIALS,
        IamInstanceProfile={"Arn": profile["Arn"]},
    )["Instances"][0]
    instance_id = instance["InstanceId"]
    shown = {"Arn": profile["Arn"], "Id": profile["InstanceProfileId"]}
    assert instance["IamInstanceProfile"] == shown
    described = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["IamInstanceProfile"] == shown
    by_profile = ec2vm.describe_instances(Filters=[{"Name": "iam-instance-profile.arn", "Values": [profile["Arn"]]}])
    assert [i["InstanceId"] for r in by_profile["Reservations"] for i in r["Instances"]] == [instance_id]

    seen = wait_console(ec2vm, instance_id, r"NIMBUS-IAM role=\[(.*?)\] info=(.*?) creds=(.*?) END")
    assert seen.group(1) == "e2e-instance-role"
    info = json.loads(seen.group(2))
    assert info["Code"] == "Success"
    assert info["InstanceProfileArn"] == profile["Arn"]
    assert info["InstanceProfileId"] == profile["InstanceProfileId"]
    served = json.loads(seen.group(3))
    assert served["Code"] == "Success"
    assert served["Type"] == "AWS-HMAC"
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", served["AccessKeyId"])

    # What the guest read are working credentials of the role, in a session named after the instance.
    credentials = {"AccessKeyId": served["AccessKeyId"], "SecretAccessKey": served["SecretAccessKey"], "SessionToken": served["Token"]}
    identity = client(cloud, "sts", credentials).get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/e2e-instance-role/{instance_id}"
    assert client(cloud, "ec2", credentials).describe_instances(InstanceIds=[instance_id])["Reservations"]

    ec2vm.terminate_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
