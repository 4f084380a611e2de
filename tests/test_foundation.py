"""The EC2 API foundation, as boto3 and the aws CLI meet it."""

import base64
import datetime
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import Nimbus


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def http_status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- catalog actions -------------------------------------------------------------------------

def test_health(nimbus):
    with urllib.request.urlopen(nimbus.endpoint + "/_nimbus/health") as r:
        assert r.status == 200
        assert json.loads(r.read())["status"] == "ok"


def test_describe_regions(ec2):
    regions = ec2.describe_regions()["Regions"]
    assert [r["RegionName"] for r in regions] == ["us-east-1"]
    filtered = ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["us-*"]}])
    assert len(filtered["Regions"]) == 1
    assert ec2.describe_regions(Filters=[{"Name": "region-name", "Values": ["eu-*"]}])["Regions"] == []
    with pytest.raises(ClientError) as e:
        ec2.describe_regions(RegionNames=["mars-1"])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_availability_zones(ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [z["ZoneName"] for z in zones] == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert all(z["State"] == "available" and z["RegionName"] == "us-east-1" for z in zones)
    one = ec2.describe_availability_zones(Filters=[{"Name": "zone-name", "Values": ["*b"]}])
    assert [z["ZoneName"] for z in one["AvailabilityZones"]] == ["us-east-1b"]
    by_id = ec2.describe_availability_zones(ZoneIds=[zones[2]["ZoneId"]])["AvailabilityZones"]
    assert by_id[0]["ZoneName"] == "us-east-1c"
    with pytest.raises(ClientError) as e:
        ec2.describe_availability_zones(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_account_attributes(ec2):
    attributes = ec2.describe_account_attributes()["AccountAttributes"]
    names = {a["AttributeName"] for a in attributes}
    assert {"supported-platforms", "default-vpc", "max-instances"} <= names
    one = ec2.describe_account_attributes(AttributeNames=["max-instances"])["AccountAttributes"]
    assert one[0]["AttributeValues"][0]["AttributeValue"] == "20"


def test_describe_instance_types(ec2):
    types = ec2.describe_instance_types(InstanceTypes=["t3.micro", "m5.large", "c5.4xlarge"])["InstanceTypes"]
    by_name = {t["InstanceType"]: t for t in types}
    assert by_name["t3.micro"]["VCpuInfo"]["DefaultVCpus"] == 2
    assert by_name["t3.micro"]["MemoryInfo"]["SizeInMiB"] == 1024
    assert by_name["m5.large"]["MemoryInfo"]["SizeInMiB"] == 8192
    assert by_name["c5.4xlarge"]["VCpuInfo"]["DefaultVCpus"] == 16
    everything = []
    for page in ec2.get_paginator("describe_instance_types").paginate(PaginationConfig={"PageSize": 5}):
        assert len(page["InstanceTypes"]) <= 5
        everything += [t["InstanceType"] for t in page["InstanceTypes"]]
    assert len(everything) == len(set(everything)) >= 15
    assert {"t3.nano", "t3.2xlarge", "m5.4xlarge", "c5.large"} <= set(everything)
    four = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["4"]}])
    assert {t["InstanceType"] for t in four["InstanceTypes"]} == {
        f"{family}.xlarge" for family in ["t2", "t3", "t3a", "m5", "m6i", "c5", "c6i", "r5", "r6i"]}
    with pytest.raises(ClientError) as e:
        ec2.describe_instance_types(InstanceTypes=["t3.gigantic"])
    assert error_code(e) == "InvalidInstanceType"


# --- key pairs -------------------------------------------------------------------------------

def test_create_rsa_and_ed25519_key_pairs(ec2, tmp_path):
    rsa_name, ed_name = unique("rsa"), unique("ed")
    rsa = ec2.create_key_pair(KeyName=rsa_name)
    assert rsa["KeyPairId"].startswith("key-") and len(rsa["KeyPairId"]) == 21
    assert rsa["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert len(rsa["KeyFingerprint"].split(":")) == 20
    ed = ec2.create_key_pair(KeyName=ed_name, KeyType="ed25519")
    assert ed["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # The private keys are real: ssh-keygen derives the public key from them.
    path = tmp_path / "ed"
    path.write_text(ed["KeyMaterial"])
    path.chmod(0o600)
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=True)
    described = ec2.describe_key_pairs(KeyNames=[ed_name], IncludePublicKey=True)["KeyPairs"][0]
    assert described["PublicKey"].split()[:2] == public.stdout.split()[:2]
    assert described["KeyType"] == "ed25519"
    assert described["KeyFingerprint"] == ed["KeyFingerprint"]
    with pytest.raises(ClientError) as e:
        ec2.create_key_pair(KeyName=rsa_name)
    assert error_code(e) == "InvalidKeyPair.Duplicate"


def test_import_key_pair(ec2, tmp_path):
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True)
    name = unique("imported")
    imported = ec2.import_key_pair(KeyName=name, PublicKeyMaterial=(tmp_path / "id.pub").read_bytes())
    assert len(imported["KeyFingerprint"].split(":")) == 16  # MD5, as AWS does for imported RSA
    pem = subprocess.run(
        ["ssh-keygen", "-e", "-m", "PKCS8", "-f", str(tmp_path / "id.pub")], capture_output=True, check=True
    ).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem, capture_output=True)
    if der.returncode == 0:
        import hashlib

        expected = ":".join(f"{b:02x}" for b in hashlib.md5(der.stdout).digest())
        assert imported["KeyFingerprint"] == expected
    with pytest.raises(ClientError) as e:
        ec2.import_key_pair(KeyName=unique("bad"), PublicKeyMaterial=b"not a key")
    assert error_code(e) == "InvalidKey.Format"


def test_describe_and_delete_key_pairs(ec2):
    name = unique("kp")
    created = ec2.create_key_pair(
        KeyName=name,
        KeyType="ed25519",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "team", "Value": "blue"}]}],
    )
    assert created["Tags"] == [{"Key": "team", "Value": "blue"}]
    by_tag = ec2.describe_key_pairs(Filters=[{"Name": "tag:team", "Values": ["bl*"]}])["KeyPairs"]
    assert name in [k["KeyName"] for k in by_tag]
    by_id = ec2.describe_key_pairs(KeyPairIds=[created["KeyPairId"]])["KeyPairs"]
    assert by_id[0]["KeyName"] == name
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=["no-such-key"])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    ec2.delete_key_pair(KeyName=name)
    assert name not in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    ec2.delete_key_pair(KeyName=name)  # EC2 accepts deleting a name that is gone
    with pytest.raises(ClientError) as e:
        ec2.delete_key_pair(KeyPairId="key-0123456789abcdef0")
    assert error_code(e) == "InvalidKeyPair.NotFound"


# --- tags ------------------------------------------------------------------------------------

def test_tags_lifecycle_and_filters(ec2):
    ids = [ec2.create_key_pair(KeyName=unique("tagged"), KeyType="ed25519")["KeyPairId"] for _ in range(3)]
    ec2.create_tags(Resources=ids, Tags=[{"Key": "env", "Value": "prod"}, {"Key": "owner", "Value": "ana"}])
    ec2.create_tags(Resources=ids[:1], Tags=[{"Key": "env", "Value": "dev"}])
    rows = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": ids}])["Tags"]
    assert len(rows) == 6
    assert {"Key": "env", "ResourceId": ids[0], "ResourceType": "key-pair", "Value": "dev"} in rows
    prod = ec2.describe_tags(
        Filters=[{"Name": "key", "Values": ["env"]}, {"Name": "value", "Values": ["pro?"]},
                 {"Name": "resource-id", "Values": ids}]
    )["Tags"]
    assert sorted(r["ResourceId"] for r in prod) == sorted(ids[1:])
    ec2.delete_tags(Resources=ids[1:2], Tags=[{"Key": "env", "Value": "wrong-value"}])
    ec2.delete_tags(Resources=ids[1:2], Tags=[{"Key": "owner"}])
    left = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [ids[1]]}])["Tags"]
    assert [(r["Key"], r["Value"]) for r in left] == [("env", "prod")]
    ec2.delete_tags(Resources=ids[2:])
    assert ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [ids[2]]}])["Tags"] == []
    keyed = ec2.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": ["env"]}])["KeyPairs"]
    assert {ids[0], ids[1]} <= {k["KeyPairId"] for k in keyed}


def test_tag_errors(ec2):
    kp = ec2.create_key_pair(KeyName=unique("t"), KeyType="ed25519")["KeyPairId"]
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=["key-0000000000000000f"], Tags=[{"Key": "a", "Value": "b"}])
    assert error_code(e) == "InvalidKeyPair.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=["bogus"], Tags=[{"Key": "a", "Value": "b"}])
    assert error_code(e) == "InvalidID"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[kp], Tags=[{"Key": "aws:reserved", "Value": "b"}])
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[kp], Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(51)])
    assert error_code(e) == "TagLimitExceeded"
    with pytest.raises(ClientError) as e:
        ec2.describe_tags(Filters=[{"Name": "colour", "Values": ["x"]}])
    assert error_code(e) == "InvalidParameterValue"


def test_describe_tags_pagination(ec2):
    ids = [ec2.create_key_pair(KeyName=unique("page"), KeyType="ed25519")["KeyPairId"] for _ in range(12)]
    ec2.create_tags(Resources=ids, Tags=[{"Key": "paged", "Value": "yes"}])
    seen = []
    pages = ec2.get_paginator("describe_tags").paginate(
        Filters=[{"Name": "key", "Values": ["paged"]}], PaginationConfig={"PageSize": 5}
    )
    for page in pages:
        assert len(page["Tags"]) <= 5
        seen += [t["ResourceId"] for t in page["Tags"]]
    assert sorted(seen) == sorted(ids)
    with pytest.raises(ClientError) as e:
        ec2.describe_tags(MaxResults=1)
    assert error_code(e) == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.describe_tags(NextToken="not-a-token")
    assert error_code(e) == "InvalidPaginationToken"


# --- protocol errors -------------------------------------------------------------------------

def test_dry_run(ec2):
    with pytest.raises(ClientError) as e:
        ec2.describe_regions(DryRun=True)
    assert error_code(e) == "DryRunOperation" and http_status(e) == 412
    name = unique("dry")
    with pytest.raises(ClientError) as e:
        ec2.create_key_pair(KeyName=name, DryRun=True)
    assert error_code(e) == "DryRunOperation"
    assert name not in [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]]
    with pytest.raises(ClientError) as e:
        ec2.describe_key_pairs(KeyNames=["absent"], DryRun=True)
    assert error_code(e) == "InvalidKeyPair.NotFound"  # a call that would fail is not a dry-run success


def signed_post(nimbus, form, key="test", secret="test", token=None, when=None, service="ec2"):
    body = urllib.parse.urlencode(form)
    request = AWSRequest(
        method="POST",
        url=nimbus.endpoint + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    signer = SigV4Auth(Credentials(key, secret, token), service, "us-east-1")
    if when is not None:
        original = datetime.datetime
        try:
            import botocore.auth

            class Frozen(datetime.datetime):
                @classmethod
                def utcnow(cls):
                    return when

                @classmethod
                def now(cls, tz=None):
                    return when if tz is None else when.replace(tzinfo=tz)

            botocore.auth.datetime.datetime = Frozen
            signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = original
    else:
        signer.add_auth(request)
    return send(nimbus.endpoint + "/", request.body, dict(request.headers))


def send(url, body, headers, method="POST"):
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def code_of(xml):
    start = xml.find("<Code>")
    return xml[start + 6 : xml.find("</Code>")] if start >= 0 else None


def test_unknown_and_unsupported_actions(nimbus):
    status, body = signed_post(nimbus, {"Action": "FlyToTheMoon", "Version": "2016-11-15"})
    assert (status, code_of(body)) == (400, "InvalidAction")
    assert "<RequestID>" in body
    status, body = signed_post(nimbus, {"Action": "DescribeVpcEndpoints", "Version": "2016-11-15"})
    assert (status, code_of(body)) == (400, "UnsupportedOperation")


def test_missing_and_malformed_parameters(nimbus, ec2):
    status, body = signed_post(nimbus, {"Action": "CreateKeyPair", "Version": "2016-11-15"})
    assert (status, code_of(body)) == (400, "MissingParameter")
    status, body = signed_post(
        nimbus, {"Action": "DescribeTags", "Version": "2016-11-15", "MaxResults": "lots"}
    )
    assert (status, code_of(body)) == (400, "InvalidParameterValue")
    status, body = signed_post(
        nimbus, {"Action": "DescribeRegions", "Version": "2016-11-15", "Colour": "blue"}
    )
    assert (status, code_of(body)) == (400, "UnknownParameter")
    with pytest.raises(ClientError) as e:
        ec2.create_key_pair(KeyName=unique("k"), KeyType="dsa")
    assert error_code(e) == "InvalidParameterValue"


def test_authentication(nimbus):
    form = {"Action": "DescribeRegions", "Version": "2016-11-15"}
    assert signed_post(nimbus, form)[0] == 200
    status, body = signed_post(nimbus, form, key="nobody")
    assert (status, code_of(body)) == (401, "AuthFailure")
    status, body = signed_post(nimbus, form, secret="wrong")
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")
    old = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    status, body = signed_post(nimbus, form, when=old)
    assert code_of(body) == "RequestExpired" and 400 <= status < 500
    status, body = send(nimbus.endpoint + "/", urllib.parse.urlencode(form),
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert 400 <= status < 500 and code_of(body) is not None
    # A presigned GET works, and a tampered one does not.
    request = AWSRequest(method="GET", url=nimbus.endpoint + "/?" + urllib.parse.urlencode(form))
    SigV4QueryAuth(Credentials("test", "test"), "ec2", "us-east-1", expires=300).add_auth(request)
    assert send(request.url, None, {}, method="GET")[0] == 200
    status, body = send(request.url.replace("DescribeRegions", "DescribeKeyPairs"), None, {}, method="GET")
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def test_temporary_credentials(tmp_path):
    config = """
[[credentials]]
access_key_id = "ASIATEMPORARY"
secret_access_key = "temp-secret"
session_token = "the-session-token"
"""
    server = Nimbus(str(tmp_path), config_text=config).start()
    try:
        form = {"Action": "DescribeRegions", "Version": "2016-11-15"}
        ok = signed_post(server, form, key="ASIATEMPORARY", secret="temp-secret", token="the-session-token")
        assert ok[0] == 200
        status, body = signed_post(server, form, key="ASIATEMPORARY", secret="temp-secret", token="other")
        assert 400 <= status < 500 and code_of(body) is not None
        status, _ = signed_post(server, form, key="ASIATEMPORARY", secret="temp-secret")
        assert 400 <= status < 500
        assert signed_post(server, form)[0] == 401  # the default test key is not configured here
    finally:
        server.stop()


def test_oversized_body(nimbus):
    form = {"Action": "DescribeRegions", "Version": "2016-11-15", "RegionName.1": "x" * (1024 * 1024 + 10)}
    status, body = signed_post(nimbus, form)
    assert status == 413
    assert code_of(body) is not None


# --- durability ------------------------------------------------------------------------------

def test_kill9_keeps_key_pairs_and_tags(fresh_nimbus):
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    created = ec2.create_key_pair(KeyName="survivor", KeyType="ed25519")
    ec2.create_tags(Resources=[created["KeyPairId"]], Tags=[{"Key": "durable", "Value": "yes"}])
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    after = ec2.describe_key_pairs(KeyNames=["survivor"])["KeyPairs"][0]
    assert after["KeyPairId"] == created["KeyPairId"]
    assert after["KeyFingerprint"] == created["KeyFingerprint"]
    assert after["Tags"] == [{"Key": "durable", "Value": "yes"}]


# --- the aws CLI -----------------------------------------------------------------------------

def aws(nimbus, *args):
    result = subprocess.run(["aws", "ec2", *args, "--output", "json"], env=nimbus.cli_env(),
                            capture_output=True, text=True, timeout=120)
    return result


def test_aws_cli(nimbus):
    result = aws(nimbus, "describe-regions")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Regions"][0]["RegionName"] == "us-east-1"
    name = unique("cli")
    result = aws(nimbus, "create-key-pair", "--key-name", name, "--key-type", "ed25519")
    assert result.returncode == 0, result.stderr
    key_id = json.loads(result.stdout)["KeyPairId"]
    assert aws(nimbus, "create-tags", "--resources", key_id, "--tags", "Key=cli,Value=yes").returncode == 0
    tags = json.loads(aws(nimbus, "describe-tags", "--filters", "Name=key,Values=cli").stdout)["Tags"]
    assert tags == [{"Key": "cli", "ResourceId": key_id, "ResourceType": "key-pair", "Value": "yes"}]
    result = aws(nimbus, "describe-key-pairs", "--key-names", "missing-key")
    assert result.returncode != 0 and "InvalidKeyPair.NotFound" in result.stderr
    zones = json.loads(aws(nimbus, "describe-availability-zones").stdout)["AvailabilityZones"]
    assert len(zones) == 3


def test_short_legacy_ids_are_well_formed_and_unknown_ones_answer_in_aws_words(ec2):
    """AWS still accepts its 8-digit IDs: an unknown one is NotFound, in AWS's words."""
    cases = [
        (lambda: ec2.describe_images(ImageIds=["ami-abcd1234"]), "InvalidAMIID.NotFound",
         "The image id '[ami-abcd1234]' does not exist"),
        (lambda: ec2.describe_security_groups(GroupIds=["sg-00000000"]), "InvalidGroup.NotFound",
         "The security group 'sg-00000000' does not exist"),
        (lambda: ec2.describe_addresses(AllocationIds=["eipalloc-12345678"]), "InvalidAllocationID.NotFound",
         "The allocation ID 'eipalloc-12345678' does not exist"),
        (lambda: ec2.describe_volumes(VolumeIds=["vol-1234abcd"]), "InvalidVolume.NotFound",
         "The volume 'vol-1234abcd' does not exist."),
        (lambda: ec2.describe_instances(InstanceIds=["i-1234abcd"]), "InvalidInstanceID.NotFound",
         "The instance ID 'i-1234abcd' does not exist"),
    ]
    for call, code, message in cases:
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == code
        assert raised.value.response["Error"]["Message"] == message
