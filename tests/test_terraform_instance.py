"""Terraform's aws_instance, replayed with boto3: the calls the provider makes to create, read,
update and delete a t3.micro with a root and an extra EBS volume (hashicorp/terraform-provider-aws, internal/service/ec2/
ec2_instance.go: resourceInstanceCreate / Read / Update / Delete), with the attributes it reads
back. Also Packer's launch parameters, DescribeVpcAttribute as Terraform's aws_vpc reads it, and
the CreateInternetGateway answer Ansible's ec2_vpc_igw reads. One VM for the whole module: guests
run under TCG on shared cores."""

import base64

import pytest
from botocore.exceptions import ClientError

from test_foundation import error_code
from test_instances import cloud, ec2vm, minimal_ami  # noqa: F401 (module fixtures)

WAIT = {"Delay": 1, "MaxAttempts": 300}
USER_DATA = "#!/bin/sh\necho terraform-user-data > /dev/console\n"


def only_instance(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def attribute(ec2, instance_id, name):
    """DescribeInstanceAttribute's value, as Terraform reads it (`output.X.Value`)."""
    answer = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=name)
    member = name[0].upper() + name[1:]
    return answer[member].get("Value")


@pytest.fixture(scope="module")
def terraform_instance(ec2vm, minimal_ami):
    """resourceInstanceCreate: the AMI's root device (FetchRootDeviceName), the type's burstable
    flag (credit_specification), the security group, then RunInstances as buildInstanceOpts
    makes it and the wait until running."""
    ec2 = ec2vm
    image = ec2.describe_images(ImageIds=[minimal_ami])["Images"][0]
    root_device = image["RootDeviceName"]
    root_size = image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] + 1
    instance_type = ec2.describe_instance_types(InstanceTypes=["t3.micro"])["InstanceTypes"][0]
    assert instance_type["BurstablePerformanceSupported"] is True
    subnet = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"][0]
    group_id = ec2.create_security_group(GroupName="tf-web", Description="terraform aws_instance",
                                         VpcId=subnet["VpcId"])["GroupId"]
    launched = ec2.run_instances(
        ImageId=minimal_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
        DisableApiTermination=True,
        EbsOptimized=False,
        EnclaveOptions={"Enabled": False},
        MetadataOptions={"HttpEndpoint": "enabled", "HttpTokens": "required",
                         "HttpPutResponseHopLimit": 2, "InstanceMetadataTags": "disabled",
                         "HttpProtocolIpv6": "disabled"},
        CreditSpecification={"CpuCredits": "unlimited"},
        UserData=USER_DATA,
        BlockDeviceMappings=[{"DeviceName": "/dev/sdf",
                              "Ebs": {"DeleteOnTermination": True, "VolumeSize": 1, "VolumeType": "gp2"}},
                             {"DeviceName": root_device,
                              "Ebs": {"DeleteOnTermination": True, "VolumeSize": root_size, "VolumeType": "gp3"}}],
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet["SubnetId"], "Groups": [group_id],
                            "AssociatePublicIpAddress": True}],
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "tf"}]}],
    )
    instance_id = launched["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    yield {"id": instance_id, "group_id": group_id, "subnet": subnet, "root_device": root_device,
           "root_size": root_size}
    # Whatever a failed test left: lift the protection so that the cloud fixture terminates it.
    if only_instance(ec2, instance_id)["State"]["Name"] != "terminated":
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": False})


def test_read_after_create_shows_what_terraform_asked(ec2vm, terraform_instance):
    """resourceInstanceRead: DescribeInstances, DescribeVpcs (security groups by ID or name),
    DescribeVolumes (root_block_device), DescribeInstanceAttribute (instanceInitiatedShutdown-
    Behavior, disableApiStop, disableApiTermination, userData), DescribeInstanceCredit-
    Specifications (the type is burstable)."""
    ec2, instance_id = ec2vm, terraform_instance["id"]
    instance = only_instance(ec2, instance_id)
    assert instance["State"]["Name"] == "running"
    assert instance["InstanceType"] == "t3.micro"
    assert instance["EbsOptimized"] is False
    assert instance["CpuOptions"] == {"CoreCount": 1, "ThreadsPerCore": 2}
    assert instance["EnclaveOptions"] == {"Enabled": False}
    assert instance["HibernationOptions"] == {"Configured": False}
    assert instance["CapacityReservationSpecification"] == {"CapacityReservationPreference": "open"}
    assert instance["PrivateDnsNameOptions"] == {"HostnameType": "ip-name", "EnableResourceNameDnsARecord": False,
                                                 "EnableResourceNameDnsAAAARecord": False}
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["MetadataOptions"]["HttpPutResponseHopLimit"] == 2
    assert instance["MetadataOptions"]["HttpEndpoint"] == "enabled"
    assert instance["MaintenanceOptions"] == {"AutoRecovery": "default"}
    assert instance["Tags"] == [{"Key": "Name", "Value": "tf"}]
    assert "IamInstanceProfile" not in instance
    primary = next(n for n in instance["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    assert primary["SubnetId"] == terraform_instance["subnet"]["SubnetId"]
    assert "Association" in primary and instance["PublicIpAddress"] == primary["Association"]["PublicIp"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [terraform_instance["group_id"]]
    vpc = ec2.describe_vpcs(VpcIds=[instance["VpcId"]])["Vpcs"][0]
    assert vpc["IsDefault"] is True  # so Terraform stores the group names too
    assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["tf-web"]

    root = next(m for m in instance["BlockDeviceMappings"] if m["DeviceName"] == instance["RootDeviceName"])
    assert root["DeviceName"] == terraform_instance["root_device"] and root["Ebs"]["DeleteOnTermination"] is True
    volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert volume["Size"] == terraform_instance["root_size"] and volume["VolumeType"] == "gp3"
    assert volume["Encrypted"] is False and volume["Iops"] == 3000 and volume["Throughput"] == 125
    # ebs_block_device: every other mapping, with its volume's size and type.
    [extra] = [m for m in instance["BlockDeviceMappings"] if m["DeviceName"] != instance["RootDeviceName"]]
    assert extra["DeviceName"] == "/dev/sdf" and extra["Ebs"]["DeleteOnTermination"] is True
    data = ec2.describe_volumes(VolumeIds=[extra["Ebs"]["VolumeId"]])["Volumes"][0]
    assert data["Size"] == 1 and data["VolumeType"] == "gp2" and data["State"] == "in-use"

    assert attribute(ec2, instance_id, "instanceInitiatedShutdownBehavior") == "stop"
    assert attribute(ec2, instance_id, "disableApiStop") is False
    assert attribute(ec2, instance_id, "disableApiTermination") is True
    assert base64.b64decode(attribute(ec2, instance_id, "userData")).decode() == USER_DATA
    credits = ec2.describe_instance_credit_specifications(InstanceIds=[instance_id])
    assert credits["InstanceCreditSpecifications"] == [{"InstanceId": instance_id, "CpuCredits": "unlimited"}]


def test_update_changes_the_attributes_terraform_modifies(ec2vm, terraform_instance):
    """resourceInstanceUpdate of instance_initiated_shutdown_behavior, credit_specification,
    disable_api_stop; each read back as the next plan would."""
    ec2, instance_id = ec2vm, terraform_instance["id"]
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    assert attribute(ec2, instance_id, "instanceInitiatedShutdownBehavior") == "terminate"
    ec2.modify_instance_attribute(InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior", Value="stop")
    assert attribute(ec2, instance_id, "instanceInitiatedShutdownBehavior") == "stop"

    changed = ec2.modify_instance_credit_specification(
        InstanceCreditSpecifications=[{"InstanceId": instance_id, "CpuCredits": "standard"},
                                      {"InstanceId": "i-0123456789abcdef0", "CpuCredits": "standard"}])
    assert changed["SuccessfulInstanceCreditSpecifications"] == [{"InstanceId": instance_id}]
    [failed] = changed["UnsuccessfulInstanceCreditSpecifications"]
    assert failed["InstanceId"] == "i-0123456789abcdef0" and failed["Error"]["Code"] == "InvalidInstanceID.NotFound"
    credits = ec2.describe_instance_credit_specifications(InstanceIds=[instance_id])["InstanceCreditSpecifications"]
    assert credits == [{"InstanceId": instance_id, "CpuCredits": "standard"}]
    # Without IDs EC2 lists the unlimited ones only.
    listed = ec2.describe_instance_credit_specifications()["InstanceCreditSpecifications"]
    assert instance_id not in [c["InstanceId"] for c in listed]
    ec2.modify_instance_credit_specification(
        InstanceCreditSpecifications=[{"InstanceId": instance_id, "CpuCredits": "unlimited"}])

    # source_dest_check, which Terraform sets after create when it is false.
    ec2.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": False})
    assert only_instance(ec2, instance_id)["SourceDestCheck"] is False
    ec2.modify_instance_attribute(InstanceId=instance_id, Attribute="sourceDestCheck", Value="true")
    assert only_instance(ec2, instance_id)["SourceDestCheck"] is True

    # Stop protection: StopInstances is refused with EC2's code and message until it is lifted.
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": True})
    assert attribute(ec2, instance_id, "disableApiStop") is True
    with pytest.raises(ClientError) as refused:
        ec2.stop_instances(InstanceIds=[instance_id])
    assert error_code(refused) == "OperationNotPermitted"
    assert refused.value.response["Error"]["Message"] == (
        f"The instance '{instance_id}' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.")
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": False})
    assert only_instance(ec2, instance_id)["State"]["Name"] == "running"

    # EBS optimization, like the type, changes only on a stopped instance, as in EC2.
    with pytest.raises(ClientError) as running:
        ec2.modify_instance_attribute(InstanceId=instance_id, EbsOptimized={"Value": True})
    assert error_code(running) == "IncorrectInstanceState"
    assert attribute(ec2, instance_id, "ebsOptimized") is False
    with pytest.raises(ClientError) as two:
        ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": False},
                                      DisableApiTermination={"Value": True})
    assert error_code(two) == "InvalidParameterCombination"


def test_delete_is_refused_while_protected_then_terminates(ec2vm, terraform_instance):
    """resourceInstanceDelete lifts termination protection (ModifyInstanceAttribute) before
    TerminateInstances; without that, TerminateInstances is refused and nothing changes."""
    ec2, instance_id = ec2vm, terraform_instance["id"]
    with pytest.raises(ClientError) as refused:
        ec2.terminate_instances(InstanceIds=[instance_id])
    assert error_code(refused) == "OperationNotPermitted"
    assert refused.value.response["Error"]["Message"] == (
        f"The instance '{instance_id}' may not be terminated. "
        "Modify its 'disableApiTermination' instance attribute and try again.")
    assert only_instance(ec2, instance_id)["State"]["Name"] == "running"

    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
    assert attribute(ec2, instance_id, "disableApiTermination") is False
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    ec2.delete_security_group(GroupId=terraform_instance["group_id"])


def test_packer_launch_parameters_are_accepted(ec2vm, minimal_ami):
    """Packer's amazon-ebs sends EbsOptimized=false and IamInstanceProfile.Name="" when no
    profile is configured: a launch with no profile (DryRun: the module's one VM is Terraform's)."""
    with pytest.raises(ClientError) as dry:
        ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                            EbsOptimized=False, IamInstanceProfile={"Name": ""}, DryRun=True)
    assert error_code(dry) == "DryRunOperation"
    with pytest.raises(ClientError) as unknown:
        ec2vm.run_instances(ImageId=minimal_ami, MinCount=1, MaxCount=1,
                            IamInstanceProfile={"Name": "no-such-profile"}, DryRun=True)
    assert error_code(unknown) == "InvalidParameterValue"


@pytest.mark.parametrize("parameters, code, named", [
    ({"EnclaveOptions": {"Enabled": True}}, "UnsupportedOperation", "EnclaveOptions.Enabled=true"),
    ({"CpuOptions": {"CoreCount": 2, "ThreadsPerCore": 2}}, "UnsupportedOperation", "CpuOptions.CoreCount=2"),
    ({"PrivateDnsNameOptions": {"HostnameType": "resource-name"}}, "UnsupportedOperation", "HostnameType=resource-name"),
    ({"CapacityReservationSpecification": {"CapacityReservationTarget": {"CapacityReservationId": "cr-1"}}},
     "UnsupportedOperation", "CapacityReservationTarget"),
    ({"InstanceType": "m5.large", "CreditSpecification": {"CpuCredits": "unlimited"}},
     "InvalidParameterCombination", "m5.large"),
])
def test_values_nimbus_does_not_honour_are_refused_by_name(ec2vm, minimal_ami, parameters, code, named):
    with pytest.raises(ClientError) as refused:
        ec2vm.run_instances(**{"ImageId": minimal_ami, "MinCount": 1, "MaxCount": 1, "DryRun": True, **parameters})
    assert error_code(refused) == code
    assert named in refused.value.response["Error"]["Message"]


def test_launch_templates_take_the_same_options(ec2vm, minimal_ami):
    data = {"ImageId": minimal_ami, "InstanceType": "t3.micro", "DisableApiTermination": True,
            "EbsOptimized": False, "CreditSpecification": {"CpuCredits": "standard"},
            "EnclaveOptions": {"Enabled": False}, "HibernationOptions": {"Configured": False},
            "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
            "PrivateDnsNameOptions": {"HostnameType": "ip-name"}}
    template = ec2vm.create_launch_template(LaunchTemplateName="tf-options", LaunchTemplateData=data)["LaunchTemplate"]
    version = ec2vm.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
    assert version["LaunchTemplateVersions"][0]["LaunchTemplateData"] == data
    with pytest.raises(ClientError) as dry:
        ec2vm.run_instances(MinCount=1, MaxCount=1, DryRun=True,
                            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"]})
    assert error_code(dry) == "DryRunOperation"
    with pytest.raises(ClientError) as refused:
        ec2vm.create_launch_template_version(LaunchTemplateId=template["LaunchTemplateId"],
                                             LaunchTemplateData={"EnclaveOptions": {"Enabled": True}})
    assert error_code(refused) == "UnsupportedOperation"
    hibernating = ec2vm.create_launch_template_version(LaunchTemplateId=template["LaunchTemplateId"],
                                                       LaunchTemplateData={"HibernationOptions": {"Configured": True}})
    assert hibernating["LaunchTemplateVersion"]["LaunchTemplateData"]["HibernationOptions"] == {"Configured": True}
    ec2vm.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])


def test_vpc_attributes_as_terraforms_aws_vpc_reads_them(ec2vm):
    vpc_id = ec2vm.create_vpc(CidrBlock="10.71.0.0/16")["Vpc"]["VpcId"]
    read = {name: ec2vm.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)
            for name in ["enableDnsSupport", "enableDnsHostnames", "enableNetworkAddressUsageMetrics"]}
    assert read["enableDnsSupport"]["EnableDnsSupport"] == {"Value": True}
    assert read["enableDnsHostnames"]["EnableDnsHostnames"] == {"Value": False}
    assert read["enableNetworkAddressUsageMetrics"]["EnableNetworkAddressUsageMetrics"] == {"Value": False}
    ec2vm.modify_vpc_attribute(VpcId=vpc_id, EnableNetworkAddressUsageMetrics={"Value": False})
    with pytest.raises(ClientError) as refused:
        ec2vm.modify_vpc_attribute(VpcId=vpc_id, EnableNetworkAddressUsageMetrics={"Value": True})
    assert error_code(refused) == "UnsupportedOperation"
    assert "EnableNetworkAddressUsageMetrics" in refused.value.response["Error"]["Message"]
    ec2vm.delete_vpc(VpcId=vpc_id)


def test_a_new_untagged_internet_gateway_sends_empty_sets(ec2vm):
    """Ansible's ec2_vpc_igw reads `Tags` of the CreateInternetGateway answer, where AWS sends
    `<tagSet/>` and `<attachmentSet/>`."""
    raw = {}

    def keep_body(http_response, **_):
        raw["body"] = http_response.text

    ec2vm.meta.events.register("after-call.ec2.CreateInternetGateway", keep_body)
    gateway = ec2vm.create_internet_gateway()["InternetGateway"]
    assert gateway["Tags"] == [] and gateway["Attachments"] == []
    assert "<tagSet></tagSet>" in raw["body"] and "<attachmentSet></attachmentSet>" in raw["body"]
    ec2vm.delete_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"])
