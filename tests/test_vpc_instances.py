"""An instance launched into a new VPC subnet with its own security groups: DescribeInstances
shows its networking, and the guest's metadata service serves the same interface (read back
through the serial console). One small VM."""

import re

import pytest

from test_instances import cloud, ec2vm, minimal_ami, wait_console  # noqa: F401  (fixtures)

USER_DATA = """#!/bin/sh
MAC=$(imds-get meta-data/mac)
BASE=meta-data/network/interfaces/macs/$MAC
echo "NIMBUS-NET mac=$MAC ip=$(imds-get meta-data/local-ipv4) host=$(imds-get meta-data/local-hostname) \
subnet=$(imds-get $BASE/subnet-id) cidr=$(imds-get $BASE/subnet-ipv4-cidr-block) vpc=$(imds-get $BASE/vpc-id) \
vpccidr=$(imds-get $BASE/vpc-ipv4-cidr-block) eni=$(imds-get $BASE/interface-id) \
groups=$(imds-get meta-data/security-groups | tr '\\n' ',') ids=$(imds-get $BASE/security-group-ids | tr '\\n' ',') END" > /dev/console
"""


def test_instance_in_a_new_subnet_shows_its_network(ec2vm, minimal_ami):  # noqa: F811
    # 172.20.0.0/16 keeps the guest inside the user-mode network the VMs still use on this branch.
    vpc_id = ec2vm.create_vpc(CidrBlock="172.20.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2vm.create_subnet(VpcId=vpc_id, CidrBlock="172.20.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    web = ec2vm.create_security_group(GroupName="web", Description="web", VpcId=vpc_id)["GroupId"]
    ssh = ec2vm.create_security_group(GroupName="ssh", Description="ssh", VpcId=vpc_id)["GroupId"]
    reservation = ec2vm.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                      SubnetId=subnet_id, SecurityGroupIds=[web, ssh], UserData=USER_DATA,
                                      TagSpecifications=[{"ResourceType": "network-interface",
                                                          "Tags": [{"Key": "role", "Value": "web"}]}])
    instance = reservation["Instances"][0]
    instance_id = instance["InstanceId"]
    assert instance["Placement"]["AvailabilityZone"] == "us-east-1b"
    ec2vm.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    described = ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert described["VpcId"] == vpc_id and described["SubnetId"] == subnet_id
    assert described["PrivateIpAddress"] == "172.20.1.4"
    assert described["PrivateDnsName"] == "ip-172-20-1-4.ec2.internal"
    assert "PublicIpAddress" not in described  # the subnet does not map public IPs
    assert [g["GroupId"] for g in described["SecurityGroups"]] == [web, ssh]
    [interface] = described["NetworkInterfaces"]
    assert interface["Attachment"]["DeviceIndex"] == 0 and interface["Status"] == "in-use"
    assert interface["PrivateIpAddresses"][0]["Primary"] is True
    assert re.fullmatch(r"02(:[0-9a-f]{2}){5}", interface["MacAddress"])
    subnet = ec2vm.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
    assert subnet["AvailableIpAddressCount"] == 256 - 5 - 1
    assert ec2vm.describe_instances(Filters=[{"Name": "subnet-id", "Values": [subnet_id]}])["Reservations"]
    listed = ec2vm.describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["NetworkInterfaces"]
    assert [(i["NetworkInterfaceId"], i["PrivateIpAddress"], i["Attachment"]["InstanceId"]) for i in listed] == [
        (interface["NetworkInterfaceId"], "172.20.1.4", instance_id)]

    line = wait_console(ec2vm, instance_id, r"NIMBUS-NET (.*) END").group(1)
    seen = dict(pair.split("=", 1) for pair in line.split())
    assert seen["mac"] == interface["MacAddress"]
    assert seen["ip"] == "172.20.1.4" and seen["host"] == "ip-172-20-1-4.ec2.internal"
    assert seen["subnet"] == subnet_id and seen["cidr"] == "172.20.1.0/24"
    assert seen["vpc"] == vpc_id and seen["vpccidr"] == "172.20.0.0/16"
    assert seen["eni"] == interface["NetworkInterfaceId"]
    assert seen["groups"].rstrip(",") == "web,ssh" and seen["ids"].rstrip(",") == f"{web},{ssh}"

    # The primary interface's attributes and secondary addresses.
    eni = interface["NetworkInterfaceId"]
    ec2vm.modify_network_interface_attribute(NetworkInterfaceId=eni, Description={"Value": "primary"})
    assigned = ec2vm.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=1)
    assert [a["PrivateIpAddress"] for a in assigned["AssignedPrivateIpAddresses"]] == ["172.20.1.5"]
    described = ec2vm.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert described["Description"] == "primary"
    assert [(a["PrivateIpAddress"], a["Primary"]) for a in described["PrivateIpAddresses"]] == [("172.20.1.4", True), ("172.20.1.5", False)]
    ec2vm.unassign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=["172.20.1.5"])

    # The primary interface's tags: from the launch, CreateTags, DeleteTags, and every Describe.
    assert described["TagSet"] == [{"Key": "role", "Value": "web"}]
    ec2vm.create_tags(Resources=[eni], Tags=[{"Key": "Name", "Value": "front"}])
    ec2vm.delete_tags(Resources=[eni], Tags=[{"Key": "role"}])
    tagged = ec2vm.describe_network_interfaces(Filters=[{"Name": "tag:Name", "Values": ["front"]}])["NetworkInterfaces"]
    assert [(i["NetworkInterfaceId"], i["TagSet"]) for i in tagged] == [(eni, [{"Key": "Name", "Value": "front"}])]
    tags = ec2vm.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni]}])["Tags"]
    assert tags == [{"Key": "Name", "Value": "front", "ResourceId": eni, "ResourceType": "network-interface"}]

    # Groups change live; a group in use cannot be deleted.
    ec2vm.modify_instance_attribute(InstanceId=instance_id, Groups=[web])
    assert [g["GroupId"] for g in ec2vm.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["SecurityGroups"]] == [web]
    with pytest.raises(Exception) as raised:
        ec2vm.delete_security_group(GroupId=web)
    assert "DependencyViolation" in str(raised.value)
    ec2vm.terminate_instances(InstanceIds=[instance_id])
    ec2vm.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    # The primary interface and its tags went with the instance.
    assert not ec2vm.describe_tags(Filters=[{"Name": "resource-id", "Values": [eni]}])["Tags"]
    with pytest.raises(Exception) as raised:
        ec2vm.create_tags(Resources=[eni], Tags=[{"Key": "Name", "Value": "gone"}])
    assert "InvalidNetworkInterfaceID.NotFound" in str(raised.value)
    ec2vm.delete_security_group(GroupId=web)
    ec2vm.delete_security_group(GroupId=ssh)
    ec2vm.delete_subnet(SubnetId=subnet_id)
    ec2vm.delete_vpc(VpcId=vpc_id)
