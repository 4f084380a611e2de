"""The resource engine end to end: data dirs written by earlier releases, the generic
describe (filters, IDs, pagination) and the wire details every kind shares."""

import json
import os
import shutil
import tempfile

import pytest

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


@pytest.fixture
def fixture_server():
    """nimbus on a copy of a data dir written by the release before format versions
    (key pairs, volumes, a modification, snapshots, an AMI, a terminated instance, tags,
    client tokens)."""
    with tempfile.TemporaryDirectory(prefix="nimbus-fixture-") as data_dir:
        shutil.copy(os.path.join(FIXTURES, "datadir-v1", "state.db"), data_dir)
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
