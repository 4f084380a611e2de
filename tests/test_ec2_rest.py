"""The rest of the EC2 calls Terraform, Packer and Ansible make (issue 19, items 4 and 5), with
boto3: AMIs by name (public SSM parameters, `resolve:ssm:` in RunInstances and launch
templates), instance profile associations that change what the guest's metadata service serves,
instance types and their offerings. Replays of Terraform's `aws_iam_instance_profile` with an
instance and of `data "aws_ssm_parameter"` with `aws_instance`. One VM for the module (TCG on
shared cores); the calls that need no image run on a nimbus of their own."""

import json
import re

import pytest
from botocore.exceptions import ClientError

from test_instances import cloud, console, ec2vm, minimal_ami  # noqa: F401 (module fixtures)
from test_volumes import wait_for, wait_snapshot, wait_volume

ACCOUNT = "000000000000"
WAIT = {"Delay": 1, "MaxAttempts": 300}
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# The guest says once a second which role its metadata service serves (none: an empty list).
GUEST_WATCHES_ITS_ROLE = """#!/bin/sh
while true; do
  TOKEN=$(imds-token 60)
  ROLE=$(wget -q -O - --header "X-aws-ec2-metadata-token: $TOKEN" \
    http://169.254.169.254/latest/meta-data/iam/security-credentials/ 2>/dev/null)
  echo "NIMBUS-ROLE [$ROLE]" > /dev/console
  sleep 1
done
"""


def error_of(call):
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


# --- Calls that need no image ---------------------------------------------------------------


def test_instance_types_carry_what_tools_read(ec2):
    described = ec2.describe_instance_types(InstanceTypes=["t3.micro", "t2.micro", "m6i.large"])["InstanceTypes"]
    by_name = {t["InstanceType"]: t for t in described}
    t3 = by_name["t3.micro"]
    assert t3["VCpuInfo"] == {"DefaultVCpus": 2, "DefaultCores": 1, "DefaultThreadsPerCore": 2,
                              "ValidCores": [1], "ValidThreadsPerCore": [2]}
    assert t3["MemoryInfo"] == {"SizeInMiB": 1024}
    assert t3["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    assert t3["NetworkInfo"]["MaximumNetworkInterfaces"] == 2
    assert t3["NetworkInfo"]["Ipv4AddressesPerInterface"] == 2
    assert t3["NetworkInfo"]["NetworkCards"][0]["NetworkCardIndex"] == 0
    assert t3["EbsInfo"]["EbsOptimizedSupport"] == "default"
    assert (t3["Hypervisor"], t3["BurstablePerformanceSupported"], t3["FreeTierEligible"]) == ("nitro", True, True)
    assert t3["SupportedUsageClasses"] == ["on-demand"] and t3["InstanceStorageSupported"] is False
    t2 = by_name["t2.micro"]
    assert (t2["Hypervisor"], t2["VCpuInfo"]["DefaultThreadsPerCore"], t2["EbsInfo"]["EbsOptimizedSupport"]) == \
        ("xen", 1, "unsupported")
    m6i = by_name["m6i.large"]
    assert (m6i["VCpuInfo"]["DefaultVCpus"], m6i["MemoryInfo"]["SizeInMiB"], m6i["BurstablePerformanceSupported"]) == \
        (2, 8192, False)

    every = [t["InstanceType"] for page in ec2.get_paginator("describe_instance_types").paginate()
             for t in page["InstanceTypes"]]
    for family in ["t2", "t3", "t3a", "m5", "m6i", "c5", "c6i", "r5", "r6i"]:
        assert f"{family}.large" in every, family
    code, message = error_of(lambda: ec2.describe_instance_types(InstanceTypes=["t4g.micro"]))
    assert code == "InvalidInstanceType" and "Arm" in message
    code, message = error_of(lambda: ec2.run_instances(ImageId="ami-0123456789abcdef0", InstanceType="m6g.large",
                                                       MinCount=1, MaxCount=1))
    assert code == "InvalidParameterValue" and "x86_64" in message
    bursting = ec2.describe_instance_types(Filters=[{"Name": "burstable-performance-supported", "Values": ["true"]}])
    assert {t["InstanceType"].split(".")[0] for t in bursting["InstanceTypes"]} == {"t2", "t3", "t3a"}


def test_instance_type_offerings_by_region_and_zone(ec2):
    region = ec2.describe_instance_type_offerings()["InstanceTypeOfferings"]
    assert {o["Location"] for o in region} == {"us-east-1"}
    assert {"InstanceType": "t3.micro", "LocationType": "region", "Location": "us-east-1"} in region
    zones = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": ["t3.micro"]}])["InstanceTypeOfferings"]
    assert sorted(o["Location"] for o in zones) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    one_zone = ec2.describe_instance_type_offerings(
        LocationType="availability-zone", Filters=[{"Name": "location", "Values": ["us-east-1b"]}])
    assert {o["Location"] for o in one_zone["InstanceTypeOfferings"]} == {"us-east-1b"}
    by_id = ec2.describe_instance_type_offerings(LocationType="availability-zone-id")["InstanceTypeOfferings"]
    assert {o["Location"] for o in by_id} == {"use1-az1", "use1-az2", "use1-az3"}
    assert not ec2.describe_instance_type_offerings(
        Filters=[{"Name": "instance-type", "Values": ["t4g.micro"]}])["InstanceTypeOfferings"]
    assert error_of(lambda: ec2.describe_instance_type_offerings(LocationType="outpost"))[0] == "InvalidParameterValue"


def test_profile_associations_on_an_empty_account(ec2):
    assert ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"] == []
    assert error_of(lambda: ec2.disassociate_iam_instance_profile(
        AssociationId="iip-assoc-0123456789abcdef0"))[0] == "InvalidAssociationID.NotFound"
    assert error_of(lambda: ec2.associate_iam_instance_profile(
        InstanceId="i-0123456789abcdef0", IamInstanceProfile={"Name": "none"}))[0] == "InvalidInstanceID.NotFound"


def test_ebs_encryption_defaults_as_a_new_account(ec2):
    answer = ec2.get_ebs_encryption_by_default()
    assert (answer["EbsEncryptionByDefault"], answer["SseType"]) == (False, "none")
    assert ec2.get_ebs_default_kms_key_id()["KmsKeyId"] == "alias/aws/ebs"


def test_prefix_lists_are_empty_but_checked(ec2):
    assert ec2.describe_prefix_lists()["PrefixLists"] == []
    assert ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "owner-id", "Values": ["AWS"]}])["PrefixLists"] == []
    assert error_of(lambda: ec2.describe_prefix_lists(PrefixListIds=["pl-63a5400a"]))[0] == \
        "InvalidPrefixListID.NotFound"
    assert error_of(lambda: ec2.describe_managed_prefix_lists(
        Filters=[{"Name": "color", "Values": ["x"]}]))[0] == "InvalidParameterValue"


def default_vpc(ec2):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return vpcs[0] if vpcs else None


def delete_default_vpc(ec2, vpc_id):
    for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]:
        ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    for gateway in ec2.describe_internet_gateways(
            Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]:
        ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc_id)
        ec2.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
    ec2.delete_vpc(VpcId=vpc_id)


def test_default_vpc_and_subnets_come_back_only_when_asked(fresh_nimbus):
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    vpc = default_vpc(ec2)
    assert error_of(ec2.create_default_vpc)[0] == "DefaultVpcAlreadyExists"
    code, _ = error_of(lambda: ec2.create_default_subnet(AvailabilityZone="us-east-1a"))
    assert code == "DefaultSubnetAlreadyExistsInAvailabilityZone"
    subnet_b = ec2.describe_subnets(Filters=[{"Name": "availability-zone", "Values": ["us-east-1b"]},
                                             {"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    ec2.delete_subnet(SubnetId=subnet_b["SubnetId"])
    again = ec2.create_default_subnet(AvailabilityZoneId="use1-az2")["Subnet"]
    assert (again["AvailabilityZone"], again["CidrBlock"], again["DefaultForAz"], again["MapPublicIpOnLaunch"]) == \
        ("us-east-1b", subnet_b["CidrBlock"], True, True)

    delete_default_vpc(ec2, vpc["VpcId"])
    assert error_of(lambda: ec2.create_default_subnet(AvailabilityZone="us-east-1a"))[0] == "DefaultVpcDoesNotExist"
    # A restart does not bring back what the user deleted.
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    assert default_vpc(ec2) is None
    attributes = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert attributes[0]["AttributeValues"] == [{"AttributeValue": "none"}]

    created = ec2.create_default_vpc()["Vpc"]
    assert (created["CidrBlock"], created["IsDefault"]) == ("172.31.0.0/16", True)
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [created["VpcId"]]}])["Subnets"]
    assert sorted((s["AvailabilityZone"], s["CidrBlock"]) for s in subnets) == [
        ("us-east-1a", "172.31.0.0/20"), ("us-east-1b", "172.31.16.0/20"), ("us-east-1c", "172.31.32.0/20")]
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [created["VpcId"]]}])["InternetGateways"]
    assert len(gateways) == 1
    routes = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [created["VpcId"]]}])["RouteTables"]
    assert any(r.get("GatewayId") == gateways[0]["InternetGatewayId"] and r["DestinationCidrBlock"] == "0.0.0.0/0"
               for table in routes for r in table["Routes"])


@pytest.fixture(scope="module")
def registered_image(ec2):
    """An image of the account without a VM: a volume's snapshot, registered."""
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    wait_volume(ec2, volume)
    snapshot = ec2.create_snapshot(VolumeId=volume, Description="root")["SnapshotId"]
    wait_snapshot(ec2, snapshot)
    image = ec2.register_image(
        Name="attr-image", RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}],
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "team", "Value": "web"}]}])["ImageId"]
    return image, snapshot


def test_image_attributes_and_launch_permissions(ec2, registered_image):
    image, _ = registered_image
    friend = "123456789012"
    ec2.modify_image_attribute(ImageId=image, Description={"Value": "golden"})
    assert ec2.describe_image_attribute(ImageId=image, Attribute="description")["Description"] == {"Value": "golden"}
    ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": friend}, {"Group": "all"}]})
    shown = ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"]
    assert shown == [{"Group": "all"}, {"UserId": friend}]
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["Public"] is True
    assert [i["ImageId"] for i in ec2.describe_images(ExecutableUsers=["all"])["Images"]] == [image]
    assert [i["ImageId"] for i in ec2.describe_images(Filters=[{"Name": "is-public", "Values": ["true"]}])["Images"]] \
        == [image]
    # The older form: OperationType with UserGroups.
    ec2.modify_image_attribute(ImageId=image, Attribute="launchPermission", OperationType="remove", UserGroups=["all"])
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["Public"] is False
    assert ec2.describe_images(ExecutableUsers=["all"])["Images"] == []
    assert [i["ImageId"] for i in ec2.describe_images(ExecutableUsers=[friend])["Images"]] == [image]
    ec2.reset_image_attribute(ImageId=image, Attribute="launchPermission")
    assert ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"] == []
    assert ec2.describe_images(ExecutableUsers=[friend])["Images"] == []

    devices = ec2.describe_image_attribute(ImageId=image, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    assert devices[0]["DeviceName"] == "/dev/xvda"
    assert ec2.describe_image_attribute(ImageId=image, Attribute="kernel")["KernelId"] == {}
    assert ec2.describe_image_attribute(ImageId=image, Attribute="lastLaunchedTime")["LastLaunchedTime"] == {}
    assert ec2.describe_image_attribute(ImageId=image, Attribute="productCodes")["ProductCodes"] == []
    assert error_of(lambda: ec2.modify_image_attribute(
        ImageId=image, LaunchPermission={"Add": [{"UserId": "not-an-account"}]}))[0] == "InvalidAMIAttributeItemValue"
    code, message = error_of(lambda: ec2.modify_image_attribute(ImageId=image, ProductCodes=["abc"]))
    assert code == "UnsupportedOperation" and "ProductCodes" in message
    assert error_of(lambda: ec2.describe_image_attribute(
        ImageId="ami-0123456789abcdef0", Attribute="description"))[0] == "InvalidAMIID.NotFound"


def test_snapshot_create_volume_permissions(ec2, registered_image):
    _, snapshot = registered_image
    ec2.modify_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=["210987654321"])
    shown = ec2.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
    assert shown["CreateVolumePermissions"] == [{"UserId": "210987654321"}]
    assert [s["SnapshotId"] for s in ec2.describe_snapshots(RestorableByUserIds=["210987654321"])["Snapshots"]] == \
        [snapshot]
    ec2.modify_snapshot_attribute(SnapshotId=snapshot, CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert snapshot in [s["SnapshotId"] for s in ec2.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"]]
    ec2.reset_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
    assert ec2.describe_snapshot_attribute(
        SnapshotId=snapshot, Attribute="createVolumePermission")["CreateVolumePermissions"] == []
    assert ec2.describe_snapshots(RestorableByUserIds=["all"])["Snapshots"] == []
    assert ec2.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="productCodes")["ProductCodes"] == []
    code, message = error_of(lambda: ec2.copy_snapshot(SourceSnapshotId=snapshot, SourceRegion="eu-west-1"))
    assert code == "UnsupportedOperation" and "SourceRegion" in message


def test_copy_image_within_the_region(ec2, registered_image):
    image, snapshot = registered_image
    copied = ec2.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="attr-image-copy",
                            CopyImageTags=True, ClientToken="copy-once")["ImageId"]
    assert ec2.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="attr-image-copy",
                          CopyImageTags=True, ClientToken="copy-once")["ImageId"] == copied
    ec2.get_waiter("image_available").wait(ImageIds=[copied], WaiterConfig=WAIT)
    shown = ec2.describe_images(ImageIds=[copied])["Images"][0]
    assert shown["Name"] == "attr-image-copy" and shown["Tags"] == [{"Key": "team", "Value": "web"}]
    copy_snapshot = shown["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert copy_snapshot != snapshot
    assert wait_snapshot(ec2, copy_snapshot)["Description"].startswith(f"Copied for DestinationAmi {copied}")
    code, message = error_of(lambda: ec2.copy_image(SourceImageId=image, SourceRegion="eu-west-1", Name="x-region"))
    assert code == "UnsupportedOperation" and "SourceRegion" in message
    assert error_of(lambda: ec2.copy_image(SourceImageId=image, SourceRegion="us-east-1", Name="enc",
                                           Encrypted=True))[0] == "UnsupportedOperation"


# --- AMIs by name: the public parameters of nimbus's own images -----------------------------


def test_public_parameters_name_the_nimbus_images(cloud, minimal_ami):  # noqa: F811
    ssm = cloud.client("ssm")
    parameter = ssm.get_parameter(Name=AL2023)["Parameter"]
    assert (parameter["Value"], parameter["Type"]) == (minimal_ami, "String")
    assert parameter["ARN"] == f"arn:aws:ssm:us-east-1::parameter{AL2023}"
    latest = ssm.get_parameters_by_path(Path="/aws/service/ami-amazon-linux-latest")["Parameters"]
    assert AL2023 in [p["Name"] for p in latest] and {p["Value"] for p in latest} == {minimal_ami}
    # Only the images this nimbus has: debian-12 is not built here.
    assert ssm.get_parameters(Names=["/aws/service/debian/release/12/latest/amd64"])["InvalidParameters"] == \
        ["/aws/service/debian/release/12/latest/amd64"]
    # Public parameters are read-only and are not the account's.
    assert error_of(lambda: ssm.delete_parameter(Name=AL2023))[0] == "AccessDeniedException"
    assert all(not p["Name"].startswith("/aws/") for p in ssm.describe_parameters()["Parameters"])


def test_launch_templates_keep_the_alias_and_resolve_it_on_request(cloud, ec2vm, minimal_ami):  # noqa: F811
    ssm = cloud.client("ssm")
    ssm.put_parameter(Name="/golden/web", Value=minimal_ami, Type="String", DataType="aws:ec2:image")
    assert ssm.get_parameter(Name="/golden/web")["Parameter"]["DataType"] == "aws:ec2:image"
    template = ec2vm.create_launch_template(
        LaunchTemplateName="by-alias",
        LaunchTemplateData={"ImageId": "resolve:ssm:/golden/web", "InstanceType": "t3.micro"},
    )["LaunchTemplate"]
    shown = ec2vm.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    assert shown["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"] == "resolve:ssm:/golden/web"
    resolved = ec2vm.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"], ResolveAlias=True)
    assert resolved["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"] == minimal_ami
    public = ec2vm.create_launch_template_version(
        LaunchTemplateId=template["LaunchTemplateId"], ResolveAlias=True,
        LaunchTemplateData={"ImageId": f"resolve:ssm:{AL2023}", "InstanceType": "t3.micro"})
    assert public["LaunchTemplateVersion"]["LaunchTemplateData"]["ImageId"] == minimal_ami

    ssm.put_parameter(Name="/golden/text", Value=minimal_ami, Type="String")
    code, message = error_of(lambda: ec2vm.create_launch_template(
        LaunchTemplateName="by-text", LaunchTemplateData={"ImageId": "resolve:ssm:/golden/text"}))
    assert code == "SsmInvalidParameter" and "aws:ec2:image" in message
    assert error_of(lambda: ec2vm.create_launch_template(
        LaunchTemplateName="by-none", LaunchTemplateData={"ImageId": "resolve:ssm:/golden/none"}))[0] == \
        "InvalidParameterValue"
    assert error_of(lambda: ec2vm.run_instances(ImageId="resolve:ssm:/golden/none", MinCount=1, MaxCount=1))[0] == \
        "InvalidParameterValue"
    ec2vm.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])


def test_terraform_data_aws_ssm_parameter_then_aws_instance(cloud, ec2vm, minimal_ami):  # noqa: F811
    """data "aws_ssm_parameter" reads the value (GetParameter WithDecryption); aws_instance
    launches with it, and reads ami back from DescribeInstances."""
    ssm = cloud.client("ssm")
    data = ssm.get_parameter(Name=AL2023, WithDecryption=True)["Parameter"]
    assert {k: data[k] for k in ("Name", "Type", "Version")} == {"Name": AL2023, "Type": "String", "Version": 1}
    launched = ec2vm.run_instances(ImageId=data["Value"], InstanceType="t3.micro", MinCount=1, MaxCount=1)
    instance_id = launched["Instances"][0]["InstanceId"]
    described = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["ImageId"] == minimal_ami
    ec2vm.terminate_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)


# --- One VM: launched by resolve:ssm, its instance profile changed under it -------------------


def latest_role(ec2, instance_id):
    """The role the guest last said its metadata service serves, or None before it said any."""
    seen = re.findall(r"NIMBUS-ROLE \[(.*?)\]", console(ec2, instance_id))
    return seen[-1] if seen else None


def wait_role(ec2, instance_id, role):
    wait_for(lambda: latest_role(ec2, instance_id) == role, timeout=300, interval=1)


def profile_waiter(ec2, instance_id, name):
    """waitInstanceIAMInstanceProfileUpdated: DescribeInstances until the profile's name is the
    one Terraform wants ("" for none)."""
    def current():
        instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        arn = instance.get("IamInstanceProfile", {}).get("Arn", "")
        return arn.rsplit("/", 1)[-1] if arn else ""
    wait_for(lambda: current() == name, timeout=60, interval=1)


def terraform_instance_profile(iam, name, role):
    """aws_iam_instance_profile's create: CreateInstanceProfile, AddRoleToInstanceProfile, then
    the read (GetInstanceProfile) of what it stores."""
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    created = iam.create_instance_profile(InstanceProfileName=name, Path="/")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role)
    read = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    assert (read["Arn"], [r["RoleName"] for r in read["Roles"]]) == (created["Arn"], [role])
    return read


@pytest.fixture(scope="module")
def watched(cloud, ec2vm, minimal_ami):  # noqa: F811
    """aws_iam_instance_profile twice, then aws_instance created with ami = "resolve:ssm:..."
    and iam_instance_profile = the first one's name: the module's one VM, whose guest says
    which role its metadata service serves."""
    iam = cloud.client("iam")
    profiles = {name: terraform_instance_profile(iam, name, f"{name}-role") for name in ["tf-web", "tf-batch"]}
    launched = ec2vm.run_instances(
        ImageId=f"resolve:ssm:{AL2023}", InstanceType="t3.micro", MinCount=1, MaxCount=1,
        IamInstanceProfile={"Name": "tf-web"}, UserData=GUEST_WATCHES_ITS_ROLE,
    )["Instances"][0]
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[launched["InstanceId"]], WaiterConfig=WAIT)
    yield launched, profiles
    ec2vm.terminate_instances(InstanceIds=[launched["InstanceId"]])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[launched["InstanceId"]], WaiterConfig=WAIT)
    assert ec2vm.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"] == []
    # aws_iam_instance_profile's delete.
    for name in profiles:
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=f"{name}-role")
        iam.delete_instance_profile(InstanceProfileName=name)


def test_terraform_instance_profile_association_changes_the_guest_credentials(ec2vm, minimal_ami, watched):  # noqa: F811
    launched, profiles = watched
    web, batch = profiles["tf-web"], profiles["tf-batch"]
    instance_id = launched["InstanceId"]
    assert launched["ImageId"] == minimal_ami
    assert launched["IamInstanceProfile"] == {"Arn": web["Arn"], "Id": web["InstanceProfileId"]}
    associations = ec2vm.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}])["IamInstanceProfileAssociations"]
    assert len(associations) == 1 and associations[0]["State"] == "associated"
    assert associations[0]["IamInstanceProfile"]["Arn"] == web["Arn"]
    wait_role(ec2vm, instance_id, "tf-web-role")

    # iam_instance_profile changed: Describe… by instance-id, Replace…, then the waiter.
    association_id = associations[0]["AssociationId"]
    replaced = ec2vm.replace_iam_instance_profile_association(
        AssociationId=association_id, IamInstanceProfile={"Name": "tf-batch"})["IamInstanceProfileAssociation"]
    assert (replaced["State"], replaced["InstanceId"]) == ("associating", instance_id)
    assert replaced["AssociationId"] != association_id
    profile_waiter(ec2vm, instance_id, "tf-batch")
    wait_role(ec2vm, instance_id, "tf-batch-role")
    listed = ec2vm.describe_iam_instance_profile_associations(AssociationIds=[replaced["AssociationId"]])
    assert listed["IamInstanceProfileAssociations"][0]["IamInstanceProfile"]["Id"] == batch["InstanceProfileId"]

    # iam_instance_profile removed: Disassociate…, the waiter, and the guest has no role.
    gone = ec2vm.disassociate_iam_instance_profile(AssociationId=replaced["AssociationId"])
    assert gone["IamInstanceProfileAssociation"]["State"] == "disassociating"
    profile_waiter(ec2vm, instance_id, "")
    wait_role(ec2vm, instance_id, "")
    assert ec2vm.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}])["IamInstanceProfileAssociations"] == []

    # Associated again, by ARN.
    again = ec2vm.associate_iam_instance_profile(InstanceId=instance_id, IamInstanceProfile={"Arn": web["Arn"]})
    assert again["IamInstanceProfileAssociation"]["State"] == "associating"
    code, _ = error_of(lambda: ec2vm.associate_iam_instance_profile(
        InstanceId=instance_id, IamInstanceProfile={"Name": "tf-batch"}))
    assert code == "IncorrectState"
    wait_role(ec2vm, instance_id, "tf-web-role")


def test_create_snapshots_of_a_running_instance(ec2vm, watched):
    """CreateSnapshots: the root and a hot-attached data volume of the running VM at one
    moment; ExcludeBootVolume, CopyTagsFromSource."""
    instance_id = watched[0]["InstanceId"]
    zone = watched[0]["Placement"]["AvailabilityZone"]
    data = ec2vm.create_volume(AvailabilityZone=zone, Size=1, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "role", "Value": "data"}]}])["VolumeId"]
    wait_volume(ec2vm, data)
    ec2vm.attach_volume(VolumeId=data, InstanceId=instance_id, Device="/dev/sdf")
    wait_volume(ec2vm, data, "in-use")
    taken = ec2vm.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id}, Description="set", CopyTagsFromSource="volume",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "set", "Value": "1"}]}])["Snapshots"]
    assert len(taken) == 2 and len({s["StartTime"] for s in taken}) == 1
    by_volume = {s["VolumeId"]: s for s in taken}
    assert {t["Key"]: t["Value"] for t in by_volume[data]["Tags"]} == {"role": "data", "set": "1"}
    for snapshot in taken:
        assert wait_snapshot(ec2vm, snapshot["SnapshotId"])["Description"] == "set"
    data_only = ec2vm.create_snapshots(InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": True})
    assert [s["VolumeId"] for s in data_only["Snapshots"]] == [data]
    code, _ = error_of(lambda: ec2vm.create_snapshots(
        InstanceSpecification={"InstanceId": instance_id, "ExcludeBootVolume": True, "ExcludeDataVolumeIds": [data]}))
    assert code == "InvalidParameterValue"
    wait_snapshot(ec2vm, data_only["Snapshots"][0]["SnapshotId"])
