"""Launch templates end to end: boto3 and the aws CLI, no VMs."""

import base64
import json
import re
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError

DATA = {
    "ImageId": "ami-0123456789abcdef0",
    "InstanceType": "t3.micro",
    "KeyName": "deployer",
    "UserData": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
    "SecurityGroupIds": ["sg-0123456789abcdef0"],
    "BlockDeviceMappings": [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8, "VolumeType": "gp3"}}
    ],
    "TagSpecifications": [
        {"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web"}]}
    ],
    "IamInstanceProfile": {"Name": "web-profile"},
    "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
    "Monitoring": {"Enabled": True},
}

# boto3 sends nothing for an empty structure, so a template's data has at least one field.
SMALL = {"InstanceType": "t3.nano"}


def code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_create_describe_and_versions(ec2):
    name = unique("web")
    created = ec2.create_launch_template(
        LaunchTemplateName=name,
        VersionDescription="first",
        LaunchTemplateData=DATA,
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "team", "Value": "a"}]}
        ],
    )["LaunchTemplate"]
    template_id = created["LaunchTemplateId"]
    assert re.fullmatch(r"lt-[0-9a-f]{17}", template_id)
    assert created["LaunchTemplateName"] == name
    assert created["DefaultVersionNumber"] == 1
    assert created["LatestVersionNumber"] == 1
    assert created["CreatedBy"] == "arn:aws:iam::000000000000:root"
    assert created["Tags"] == [{"Key": "team", "Value": "a"}]

    described = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])
    assert described["LaunchTemplates"][0]["LaunchTemplateName"] == name
    by_name = ec2.describe_launch_templates(LaunchTemplateNames=[name])["LaunchTemplates"]
    assert [t["LaunchTemplateId"] for t in by_name] == [template_id]

    # A second version from the first, changing only the instance type.
    second = ec2.create_launch_template_version(
        LaunchTemplateId=template_id,
        SourceVersion="1",
        VersionDescription="bigger",
        LaunchTemplateData={"InstanceType": "t3.large"},
    )["LaunchTemplateVersion"]
    assert second["VersionNumber"] == 2
    assert second["DefaultVersion"] is False
    assert second["LaunchTemplateData"]["InstanceType"] == "t3.large"
    assert second["LaunchTemplateData"]["ImageId"] == DATA["ImageId"]
    assert second["LaunchTemplateData"]["SecurityGroupIds"] == DATA["SecurityGroupIds"]

    # A third without a source has only its own data.
    third = ec2.create_launch_template_version(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-0fedcba9876543210"}
    )["LaunchTemplateVersion"]
    assert third["VersionNumber"] == 3
    assert "InstanceType" not in third["LaunchTemplateData"]

    template = ec2.describe_launch_templates(LaunchTemplateIds=[template_id])["LaunchTemplates"][0]
    assert (template["DefaultVersionNumber"], template["LatestVersionNumber"]) == (1, 3)

    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)
    numbers = [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]]
    assert numbers == [1, 2, 3]
    first = versions["LaunchTemplateVersions"][0]
    assert first["DefaultVersion"] is True
    assert first["VersionDescription"] == "first"
    assert first["CreatedBy"] == "arn:aws:iam::000000000000:root"
    data = first["LaunchTemplateData"]
    assert data["ImageId"] == DATA["ImageId"]
    assert data["UserData"] == DATA["UserData"]
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 8
    assert data["TagSpecifications"][0]["Tags"] == [{"Key": "role", "Value": "web"}]
    assert data["IamInstanceProfile"] == {"Name": "web-profile"}
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert data["Monitoring"] == {"Enabled": True}

    aliases = ec2.describe_launch_template_versions(
        LaunchTemplateName=name, Versions=["$Latest", "$Default"]
    )["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in aliases] == [1, 3]
    ranged = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, MinVersion="2", MaxVersion="3"
    )["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in ranged] == [2, 3]
    filtered = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id,
        Filters=[{"Name": "instance-type", "Values": ["t3.large"]}],
    )["LaunchTemplateVersions"]
    assert [v["VersionNumber"] for v in filtered] == [2]
    paged = ec2.describe_launch_template_versions(LaunchTemplateId=template_id, MaxResults=2)
    assert len(paged["LaunchTemplateVersions"]) == 2
    rest = ec2.describe_launch_template_versions(
        LaunchTemplateId=template_id, MaxResults=2, NextToken=paged["NextToken"]
    )
    assert [v["VersionNumber"] for v in rest["LaunchTemplateVersions"]] == [3]

    # The default version moves; then the old default can go, the new one cannot.
    modified = ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="2")
    assert modified["LaunchTemplate"]["DefaultVersionNumber"] == 2
    outcome = ec2.delete_launch_template_versions(
        LaunchTemplateId=template_id, Versions=["1", "2", "9"]
    )
    assert [v["VersionNumber"] for v in outcome["SuccessfullyDeletedLaunchTemplateVersions"]] == [1]
    refused = {
        v["VersionNumber"]: v["ResponseError"]["Code"]
        for v in outcome["UnsuccessfullyDeletedLaunchTemplateVersions"]
    }
    assert refused == {2: "unexpectedError", 9: "launchTemplateVersionDoesNotExist"}
    remaining = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)
    assert [v["VersionNumber"] for v in remaining["LaunchTemplateVersions"]] == [2, 3]
    # Numbers are never given twice.
    fourth = ec2.create_launch_template_version(
        LaunchTemplateId=template_id, LaunchTemplateData=SMALL
    )["LaunchTemplateVersion"]
    assert fourth["VersionNumber"] == 4

    deleted = ec2.delete_launch_template(LaunchTemplateName=name)["LaunchTemplate"]
    assert deleted["LaunchTemplateId"] == template_id
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(LaunchTemplateIds=[template_id])
    assert code(e) == "InvalidLaunchTemplateId.NotFound"


def test_errors(ec2):
    name = unique("errors")
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=SMALL)
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=SMALL)
    assert code(e) == "InvalidLaunchTemplateName.AlreadyExistsException"
    # (boto3 checks the length itself.)
    for bad in ["has space", "star*", "caf\u00e9"]:
        with pytest.raises(ClientError) as e:
            ec2.create_launch_template(LaunchTemplateName=bad, LaunchTemplateData=SMALL)
        assert code(e) == "InvalidLaunchTemplateName.MalformedException", bad
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(LaunchTemplateNames=["no-such-template"])
    assert code(e) == "InvalidLaunchTemplateName.NotFoundException"
    with pytest.raises(ClientError) as e:
        ec2.delete_launch_template(LaunchTemplateId="lt-0123456789abcdef0")
    assert code(e) == "InvalidLaunchTemplateId.NotFound"
    assert e.value.response["Error"]["Message"] == (
        "The specified launch template, with template ID lt-0123456789abcdef0, does not exist."
    )
    with pytest.raises(ClientError) as e:
        ec2.delete_launch_template(LaunchTemplateId="lt-nothex")
    assert code(e) == "InvalidLaunchTemplateId.Malformed"
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_template_versions(LaunchTemplateName=name, Versions=["7"])
    assert code(e) == "InvalidLaunchTemplateId.VersionNotFound"
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template_version(
            LaunchTemplateName=name, SourceVersion="5", LaunchTemplateData=SMALL
        )
    assert code(e) == "InvalidLaunchTemplateId.VersionNotFound"
    with pytest.raises(ClientError) as e:
        ec2.describe_launch_templates(Filters=[{"Name": "image-id", "Values": ["x"]}])
    assert code(e) == "InvalidParameterValue"
    # A field RunInstances does not honour is refused by name, never ignored.
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(
            LaunchTemplateName=unique("spot"),
            LaunchTemplateData={"InstanceMarketOptions": {"MarketType": "spot"}},
        )
    assert code(e) == "UnsupportedOperation"
    assert "InstanceMarketOptions" in e.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(
            LaunchTemplateName=unique("dry"), LaunchTemplateData=SMALL, DryRun=True
        )
    assert code(e) == "DryRunOperation"


def test_tags_filters_and_idempotency(ec2):
    tagged = unique("tagged")
    plain = unique("plain")
    ec2.create_launch_template(
        LaunchTemplateName=tagged,
        LaunchTemplateData=SMALL,
        TagSpecifications=[
            {"ResourceType": "launch-template", "Tags": [{"Key": "env", "Value": "prod"}]}
        ],
    )
    plain_id = ec2.create_launch_template(LaunchTemplateName=plain, LaunchTemplateData=SMALL)[
        "LaunchTemplate"
    ]["LaunchTemplateId"]
    ec2.create_tags(Resources=[plain_id], Tags=[{"Key": "env", "Value": "dev"}])

    def names(filters):
        found = ec2.describe_launch_templates(Filters=filters)["LaunchTemplates"]
        return sorted(t["LaunchTemplateName"] for t in found)

    assert names([{"Name": "tag:env", "Values": ["prod"]}]) == [tagged]
    assert sorted(names([{"Name": "tag-key", "Values": ["env"]}])) == sorted([tagged, plain])
    assert names([{"Name": "launch-template-name", "Values": [plain]}]) == [plain]
    rows = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [plain_id]}])["Tags"]
    assert rows == [
        {"Key": "env", "Value": "dev", "ResourceId": plain_id, "ResourceType": "launch-template"}
    ]

    token = uuid.uuid4().hex
    name = unique("idem")
    first = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData=SMALL, ClientToken=token
    )["LaunchTemplate"]
    again = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData=SMALL, ClientToken=token
    )["LaunchTemplate"]
    assert again["LaunchTemplateId"] == first["LaunchTemplateId"]
    with pytest.raises(ClientError) as e:
        ec2.create_launch_template(
            LaunchTemplateName=unique("other"), LaunchTemplateData=SMALL, ClientToken=token
        )
    assert code(e) == "IdempotentParameterMismatch"
    version_token = uuid.uuid4().hex
    made = [
        ec2.create_launch_template_version(
            LaunchTemplateName=name, LaunchTemplateData=SMALL, ClientToken=version_token
        )["LaunchTemplateVersion"]["VersionNumber"]
        for _ in range(2)
    ]
    assert made == [2, 2]


def test_aws_cli(nimbus, ec2):
    name = unique("cli")
    ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={"InstanceType": "t3.nano"})
    result = subprocess.run(
        ["aws", "ec2", "describe-launch-templates", "--launch-template-names", name,
         "--output", "json"],
        env=nimbus.cli_env(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    templates = json.loads(result.stdout)["LaunchTemplates"]
    assert [t["LaunchTemplateName"] for t in templates] == [name]
    assert templates[0]["LatestVersionNumber"] == 1


def test_templates_survive_a_restart(fresh_nimbus):
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    template_id = ec2.create_launch_template(
        LaunchTemplateName="durable", LaunchTemplateData=DATA
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData=SMALL)
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="durable")
    assert [v["VersionNumber"] for v in versions["LaunchTemplateVersions"]] == [1, 2]
    assert versions["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"] == DATA["ImageId"]


def test_run_instances_reads_the_template(ec2):
    """RunInstances takes the template's parameters, its own over them. No VM starts: the
    images named do not exist, and the error names the image the merge chose."""
    name = unique("launch")
    template_id = ec2.create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-0000000000000000a"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template_id, LaunchTemplateData={"ImageId": "ami-0000000000000000b"}
    )

    def launch_error(**kwargs):
        with pytest.raises(ClientError) as e:
            ec2.run_instances(MinCount=1, MaxCount=1, **kwargs)
        return code(e), e.value.response["Error"]["Message"]

    assert launch_error(LaunchTemplate={"LaunchTemplateId": template_id}) == (
        "InvalidAMIID.NotFound", "The image id '[ami-0000000000000000a]' does not exist")
    latest = launch_error(LaunchTemplate={"LaunchTemplateName": name, "Version": "$Latest"})
    assert latest[1] == "The image id '[ami-0000000000000000b]' does not exist"
    own = launch_error(LaunchTemplate={"LaunchTemplateId": template_id},
                       ImageId="ami-0000000000000000c")
    assert own[1] == "The image id '[ami-0000000000000000c]' does not exist"
    assert launch_error(LaunchTemplate={"LaunchTemplateId": template_id, "Version": "9"})[0] == (
        "InvalidLaunchTemplateId.VersionNotFound")
    assert launch_error(LaunchTemplate={"LaunchTemplateName": "no-such-template"})[0] == (
        "InvalidLaunchTemplateName.NotFoundException")
