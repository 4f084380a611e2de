"""The resource engine end to end: data dirs written by earlier releases, the generic
describe (filters, IDs, pagination) and the wire details every kind shares."""

import json
import os
import shutil
import sqlite3
import tempfile
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import Nimbus

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def normalized(value):
    """A describe answer as comparable JSON: datetimes as strings, empty tag lists dropped
    (AWS omits an untagged resource's tagSet, which boto3 shows as no `Tags` key)."""
    if isinstance(value, dict):
        return {
            key: normalized(item)
            for key, item in value.items()
            if not (key == "Tags" and item == [])
        }
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def describe_everything(ec2):
    return normalized(
        {
            "KeyPairs": ec2.describe_key_pairs()["KeyPairs"],
            "Volumes": ec2.describe_volumes()["Volumes"],
            "Snapshots": ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"],
            "Images": ec2.describe_images(Owners=["self"])["Images"],
            "Reservations": ec2.describe_instances()["Reservations"],
            "Tags": ec2.describe_tags()["Tags"],
            "VolumesModifications": ec2.describe_volumes_modifications()["VolumesModifications"],
        }
    )


FIXTURE_INSTANCE = "i-99b5f4b15a4dd6813"


def copy_fixture(data_dir, edit=None):
    """Copies the fixture's state.db into `data_dir`. Its terminated instance is stamped as
    terminated now, so that nimbus does not forget it after EC2's one-hour visibility window;
    `edit` may change the stored instance documents further (a list of dicts)."""
    path = os.path.join(data_dir, "state.db")
    shutil.copy(os.path.join(FIXTURES, "datadir-v1", "state.db"), path)
    with sqlite3.connect(path) as db:
        (body,) = db.execute(
            "SELECT body FROM resources WHERE kind = 'instance' AND id = ?", (FIXTURE_INSTANCE,)
        ).fetchone()
        instance = json.loads(body)
        instance["terminated_at"] = int(time.time() * 1000)
        instances = [instance]
        if edit:
            edit(instances)
        db.execute("DELETE FROM resources WHERE kind = 'instance'")
        for item in instances:
            db.execute(
                "INSERT INTO resources (kind, id, body) VALUES ('instance', ?, ?)",
                (item["instance_id"], json.dumps(item)),
            )


@pytest.fixture
def fixture_server():
    """nimbus on a copy of a data dir written by the release before format versions
    (key pairs, volumes, a modification, snapshots, an AMI, a terminated instance, tags,
    client tokens)."""
    with tempfile.TemporaryDirectory(prefix="nimbus-fixture-") as data_dir:
        copy_fixture(data_dir)
        server = Nimbus(data_dir).start()
        yield server
        server.stop()


def test_data_dir_of_previous_release_opens_intact(fixture_server):
    with open(os.path.join(FIXTURES, "datadir-v1", "expected.json")) as f:
        expected = json.load(f)
    ec2 = fixture_server.client()
    assert describe_everything(ec2) == expected
    # The stored client token still replays the first call's answer.
    replay = ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        VolumeType="gp3",
        ClientToken="fixture-token",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "fixture-volume"}]}
        ],
    )
    assert replay["VolumeId"] == "vol-9be67e4b83c5ac4ef"
    # Records rewritten by the new release still open after a restart.
    ec2.create_tags(Resources=["vol-ef473233a98a96310"], Tags=[{"Key": "k", "Value": "v"}])
    fixture_server.stop()
    fixture_server.start()
    tags = fixture_server.client().describe_volumes(VolumeIds=["vol-ef473233a98a96310"])
    assert tags["Volumes"][0]["Tags"] == [{"Key": "k", "Value": "v"}]


# Every Describe action of the generic describe, with a call that needs no other parameter.
DESCRIBES = {
    "describe_volumes": {},
    "describe_snapshots": {"OwnerIds": ["self"]},
    "describe_images": {"Owners": ["self"]},
    "describe_instances": {},
    "describe_key_pairs": {},
    "describe_tags": {},
    "describe_volumes_modifications": {},
    "describe_instance_status": {},
    "describe_regions": {},
    "describe_availability_zones": {},
    "describe_instance_types": {},
}


def error_code(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def empty_ec2():
    with tempfile.TemporaryDirectory(prefix="nimbus-empty-") as data_dir:
        server = Nimbus(data_dir).start()
        yield server.client()
        server.stop()


@pytest.mark.parametrize("action", sorted(DESCRIBES))
def test_unknown_filter_names_are_refused_on_an_empty_account(empty_ec2, action):
    call = getattr(empty_ec2, action)
    kwargs = DESCRIBES[action]
    call(**kwargs)
    bogus = [{"Name": "no-such-filter", "Values": ["x"]}]
    assert error_code(lambda: call(Filters=bogus, **kwargs)) == "InvalidParameterValue"


@pytest.mark.parametrize("action", sorted(DESCRIBES))
def test_unknown_filter_names_are_refused_on_a_full_account(fixture_server, action):
    ec2 = fixture_server.client()
    call = getattr(ec2, action)
    kwargs = DESCRIBES[action]
    bogus = [{"Name": "no-such-filter", "Values": ["x"]}]
    assert error_code(lambda: call(Filters=bogus, **kwargs)) == "InvalidParameterValue"


@pytest.mark.parametrize(
    "action, ids_member, code",
    [
        ("describe_volumes", "VolumeIds", "InvalidVolumeID.Malformed"),
        ("describe_snapshots", "SnapshotIds", "InvalidSnapshotID.Malformed"),
        ("describe_images", "ImageIds", "InvalidAMIID.Malformed"),
        ("describe_instances", "InstanceIds", "InvalidInstanceID.Malformed"),
        ("describe_key_pairs", "KeyPairIds", "InvalidKeyPair.Malformed"),
    ],
)
def test_malformed_and_missing_ids(empty_ec2, action, ids_member, code):
    call = getattr(empty_ec2, action)
    assert error_code(lambda: call(**{ids_member: ["foo-missing"]})) == code
    prefix = {"VolumeIds": "vol", "SnapshotIds": "snap", "ImageIds": "ami",
              "InstanceIds": "i", "KeyPairIds": "key"}[ids_member]
    missing = code.replace("Malformed", "NotFound").replace("VolumeID", "Volume").replace(
        "SnapshotID", "Snapshot")
    assert error_code(lambda: call(**{ids_member: [f"{prefix}-0123456789abcdef0"]})) == missing


def test_tags_on_an_unknown_kind_of_id_are_invalid_id(empty_ec2):
    code = error_code(lambda: empty_ec2.create_tags(Resources=["foo-missing"],
                                                    Tags=[{"Key": "k", "Value": "v"}]))
    assert code == "InvalidID"


def test_untagged_resources_have_no_tag_set(fixture_server):
    ec2 = fixture_server.client()
    # Read the wire answer itself: boto3 shows an empty tagSet and a missing one alike.
    raw = {}

    def keep_body(http_response, **_):
        raw["body"] = http_response.text

    ec2.meta.events.register("after-call.ec2.DescribeVolumes", keep_body)
    ec2.describe_volumes(VolumeIds=["vol-ef473233a98a96310"])
    assert "tagSet" not in raw["body"]
    ec2.describe_volumes(VolumeIds=["vol-9be67e4b83c5ac4ef"])
    assert "<tagSet>" in raw["body"]


def test_empty_tags_in_a_tag_specification_are_refused(empty_ec2):
    code = error_code(lambda: empty_ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=1,
        TagSpecifications=[{"ResourceType": "volume", "Tags": []}]))
    assert code == "InvalidParameterValue"
    assert empty_ec2.describe_volumes()["Volumes"] == []


def test_instance_filters_state_reason_code_and_owner_id(fixture_server):
    ec2 = fixture_server.client()
    owned = ec2.describe_instances(Filters=[{"Name": "owner-id", "Values": ["000000000000"]}])
    assert [i["InstanceId"] for r in owned["Reservations"] for i in r["Instances"]] == [
        FIXTURE_INSTANCE]
    other = ec2.describe_instances(Filters=[{"Name": "owner-id", "Values": ["123456789012"]}])
    assert other["Reservations"] == []
    reason = ec2.describe_instances(
        Filters=[{"Name": "state-reason-code", "Values": ["Client.*"]}])
    assert reason["Reservations"] == []


def test_describe_bounds_per_action(empty_ec2):
    assert error_code(lambda: empty_ec2.describe_volumes(MaxResults=4)) == "InvalidParameterValue"
    assert error_code(lambda: empty_ec2.describe_volumes(MaxResults=501)) == "InvalidParameterValue"
    empty_ec2.describe_volumes(MaxResults=500)
    empty_ec2.describe_snapshots(OwnerIds=["self"], MaxResults=1000)
    empty_ec2.describe_volumes_modifications(MaxResults=1)
    code = error_code(lambda: empty_ec2.describe_volumes(
        VolumeIds=["vol-0123456789abcdef0"], MaxResults=5))
    assert code == "InvalidParameterCombination"
    assert error_code(lambda: empty_ec2.describe_tags(NextToken="zz")) == "InvalidPaginationToken"


def test_reservation_lists_instances_in_launch_index_order():
    def three_in_one_reservation(instances):
        first = instances[0]
        # IDs that sort against the launch order.
        for index, instance_id in [(1, "i-0fffffffffffffff1"), (2, "i-00000000000000002")]:
            instances.append(dict(first, instance_id=instance_id, ami_launch_index=index,
                                  client_token=None, disks=[], tags={}))

    with tempfile.TemporaryDirectory(prefix="nimbus-fixture-") as data_dir:
        copy_fixture(data_dir, three_in_one_reservation)
        server = Nimbus(data_dir).start()
        try:
            reservations = server.client().describe_instances()["Reservations"]
        finally:
            server.stop()
    assert len(reservations) == 1
    assert [i["AmiLaunchIndex"] for i in reservations[0]["Instances"]] == [0, 1, 2]


def test_ebs_direct_errors_carry_the_ebs_model_codes(empty_ec2):
    ebs = boto3.client("ebs", endpoint_url=empty_ec2.meta.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    with pytest.raises(ClientError) as missing:
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["Reason"] == "SNAPSHOT_NOT_FOUND"
    with pytest.raises(ClientError) as malformed:
        ebs.list_snapshot_blocks(SnapshotId="foo-missing")
    assert malformed.value.response["Error"]["Code"] == "ValidationException"
    assert malformed.value.response["Reason"] == "INVALID_SNAPSHOT_ID"


def test_malformed_ids_in_other_actions(empty_ec2):
    code = error_code(lambda: empty_ec2.create_volume(
        AvailabilityZone="us-east-1a", SnapshotId="foo-missing"))
    assert code == "InvalidSnapshotID.Malformed"
    code = error_code(lambda: empty_ec2.run_instances(
        ImageId="foo-missing", MinCount=1, MaxCount=1))
    assert code == "InvalidAMIID.Malformed"
    code = error_code(lambda: empty_ec2.delete_volume(VolumeId="vol-0123456789abcdef0"))
    assert code == "InvalidVolume.NotFound"
