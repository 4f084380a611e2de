"""Elastic network interfaces: one made in a second subnet is hot-plugged into the running
instance at device index 1 (the guest's eth1 takes the interface's address by DHCP, as its
init says on the console) and unplugged again (the guest says the card is gone); then attached
to the stopped instance, and after the start the guest's eth1 holds the interface's address,
which only the VPC's DHCP server (dnsmasq on the host) could have handed it. Read back through
the serial console. Then detach and delete, and the error codes of misuse. One small VM,
booted twice."""

import re

from botocore.exceptions import ClientError

from test_instances import cloud, ec2vm, minimal_ami, wait_console, wait_for  # noqa: F401  (fixtures)

# Every boot: eth1's IPv4 address once its lease is in (the init script asks DHCP on every
# card), or "none" when the VM has a single card.
USER_DATA = """#!/bin/sh
if [ -e /sys/class/net/eth1 ]; then
  for i in $(seq 120); do
    ADDR=$(ip -4 addr show dev eth1 | awk '/inet / {print $2}')
    [ -n "$ADDR" ] && break
    sleep 1
  done
  MAC=$(cat /sys/class/net/eth1/address)
  echo "NIMBUS-ETH1 addr=${ADDR:-missing} mac=$MAC \
default=$(ip route | awk '/^default/ {print $5}') \
imds=$(imds-get meta-data/network/interfaces/macs/$MAC/interface-id),\
$(imds-get meta-data/network/interfaces/macs/$MAC/device-number) END" > /dev/console
else
  echo "NIMBUS-ETH1 addr=none END" > /dev/console
fi
"""

WAIT = {"Delay": 1, "MaxAttempts": 300}


def attachment_status(ec2, eni):
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    return described.get("Attachment", {}).get("Status")


def code_of(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as error:
        return error.response["Error"]["Code"]
    raise AssertionError(f"{call.__name__} succeeded")


def test_an_attached_interface_reaches_the_guest(ec2vm, minimal_ami):  # noqa: F811
    ec2 = ec2vm
    vpc_id = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    first = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.31.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    second = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.31.2.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    other_zone = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.31.3.0/24", AvailabilityZone="us-east-1b")["Subnet"]
    default_group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                          {"Name": "group-name", "Values": ["default"]}])
    default_group = default_group["SecurityGroups"][0]["GroupId"]

    created = ec2.create_network_interface(
        SubnetId=second["SubnetId"], Description="second leg",
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "Name", "Value": "leg"}]}],
    )["NetworkInterface"]
    eni = created["NetworkInterfaceId"]
    address = created["PrivateIpAddress"]
    assert created["Status"] == "available" and "Attachment" not in created
    assert address == "10.31.2.4" and created["MacAddress"].startswith("02:")
    assert created["AvailabilityZone"] == "us-east-1a" and created["VpcId"] == vpc_id
    assert [g["GroupId"] for g in created["Groups"]] == [default_group]
    assert created["TagSet"] == [{"Key": "Name", "Value": "leg"}]
    subnet = ec2.describe_subnets(SubnetIds=[second["SubnetId"]])["Subnets"][0]
    assert subnet["AvailableIpAddressCount"] == second["AvailableIpAddressCount"] - 1
    listed = ec2.describe_network_interfaces(Filters=[{"Name": "status", "Values": ["available"]}])
    assert [i["NetworkInterfaceId"] for i in listed["NetworkInterfaces"]] == [eni]
    tagged = ec2.describe_network_interfaces(Filters=[{"Name": "tag:Name", "Values": ["leg"]}])
    assert [i["NetworkInterfaceId"] for i in tagged["NetworkInterfaces"]] == [eni]
    far = ec2.create_network_interface(SubnetId=other_zone["SubnetId"])["NetworkInterface"]["NetworkInterfaceId"]

    reservation = ec2.run_instances(ImageId=minimal_ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    SubnetId=first["SubnetId"], UserData=USER_DATA)
    instance_id = reservation["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    assert wait_console(ec2, instance_id, r"NIMBUS-ETH1 addr=none END")
    # Hot-plug: attaching, then attached once the card is in; the guest leases its address.
    hot = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance_id,
                                       DeviceIndex=1)["AttachmentId"]
    now = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert now["Status"] == "in-use" and now["Attachment"]["Status"] in ("attaching", "attached")
    assert code_of(ec2.delete_network_interface, NetworkInterfaceId=eni) == "InvalidNetworkInterface.InUse"
    assert wait_for(lambda: attachment_status(ec2, eni) == "attached", timeout=120, interval=1)
    assert wait_console(ec2, instance_id, rf"nimbus-minimal: eth1 has {re.escape(address)}\b")
    # Hot-unplug: detaching until the guest gave the card back, then gone from the guest.
    ec2.detach_network_interface(AttachmentId=hot)
    assert attachment_status(ec2, eni) in ("detaching", None)
    assert wait_for(lambda: attachment_status(ec2, eni) is None, timeout=120, interval=1)
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Status"] == "available"
    assert wait_console(ec2, instance_id, r"nimbus-minimal: eth1 removed")

    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    assert code_of(ec2.attach_network_interface, NetworkInterfaceId=eni, InstanceId=instance_id,
                   DeviceIndex=0) == "InvalidParameterValue"
    assert code_of(ec2.attach_network_interface, NetworkInterfaceId=far, InstanceId=instance_id,
                   DeviceIndex=1) == "InvalidParameterCombination"
    attachment = ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=instance_id,
                                              DeviceIndex=1)["AttachmentId"]
    assert attachment.startswith("eni-attach-")
    assert code_of(ec2.attach_network_interface, NetworkInterfaceId=eni, InstanceId=instance_id,
                   DeviceIndex=2) == "InvalidNetworkInterface.InUse"
    assert code_of(ec2.delete_network_interface, NetworkInterfaceId=eni) == "InvalidNetworkInterface.InUse"
    described = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["NetworkInterfaces"]
    by_index = {i["Attachment"]["DeviceIndex"]: i for i in described}
    assert sorted(by_index) == [0, 1] and by_index[1]["NetworkInterfaceId"] == eni
    assert by_index[1]["Status"] == "in-use" and by_index[1]["Attachment"]["AttachmentId"] == attachment
    assert by_index[1]["Attachment"]["DeleteOnTermination"] is False
    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, Attachment={
        "AttachmentId": attachment, "DeleteOnTermination": True})
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]
    assert described["Attachment"]["DeleteOnTermination"] is True
    primary = by_index[0]
    assert code_of(ec2.delete_network_interface,
                   NetworkInterfaceId=primary["NetworkInterfaceId"]) == "InvalidNetworkInterface.InUse"
    assert code_of(ec2.detach_network_interface,
                   AttachmentId=primary["Attachment"]["AttachmentId"]) == "OperationNotPermitted"

    ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert sorted(i["NetworkInterfaceId"] for i in instance["NetworkInterfaces"]) == sorted(
        [primary["NetworkInterfaceId"], eni])
    seen = wait_console(ec2, instance_id, r"NIMBUS-ETH1 addr=(\S+) mac=(\S+) default=(\S*) imds=(\S*) END")
    assert seen.group(1) == f"{address}/24", seen.group(0)
    assert seen.group(2) == created["MacAddress"]
    assert seen.group(3) == "eth0", "only the primary card holds the default route"
    assert seen.group(4) == f"{eni},1", "the metadata service describes the second card"

    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)
    ec2.detach_network_interface(AttachmentId=attachment)
    assert ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Status"] == "available"
    ec2.delete_network_interface(NetworkInterfaceId=eni)
    ec2.delete_network_interface(NetworkInterfaceId=far)
    assert code_of(ec2.describe_network_interfaces, NetworkInterfaceIds=[eni]) == "InvalidNetworkInterfaceID.NotFound"
    ec2.terminate_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig=WAIT)


def test_bad_input_codes(ec2vm):  # noqa: F811
    ec2 = ec2vm
    assert code_of(ec2.delete_network_interface, NetworkInterfaceId="eni-nothex!") == "InvalidNetworkInterfaceID.Malformed"
    assert code_of(ec2.delete_network_interface,
                   NetworkInterfaceId="eni-0123456789abcdef0") == "InvalidNetworkInterfaceID.NotFound"
    assert code_of(ec2.detach_network_interface,
                   AttachmentId="eni-attach-0123456789abcdef0") == "InvalidAttachmentID.NotFound"
    assert code_of(ec2.create_network_interface, SubnetId="subnet-0123456789abcdef0") == "InvalidSubnetID.NotFound"
    vpc_id = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.32.1.0/28")["Subnet"]["SubnetId"]
    assert code_of(ec2.create_network_interface, SubnetId=subnet_id,
                   PrivateIpAddress="10.99.0.5") == "InvalidParameterValue"
    assert code_of(ec2.create_network_interface, SubnetId=subnet_id,
                   Ipv6AddressCount=1) == "UnsupportedOperation"
    eni = ec2.create_network_interface(SubnetId=subnet_id, SecondaryPrivateIpAddressCount=2)["NetworkInterface"]
    assert [a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]] == ["10.32.1.4", "10.32.1.5", "10.32.1.6"]
    assert code_of(ec2.create_network_interface, SubnetId=subnet_id,
                   PrivateIpAddress="10.32.1.5") == "InvalidIPAddress.InUse"
    assert code_of(ec2.attach_network_interface, NetworkInterfaceId=eni["NetworkInterfaceId"],
                   InstanceId="i-0123456789abcdef0", DeviceIndex=1) == "InvalidInstanceID.NotFound"
    assert code_of(ec2.delete_subnet, SubnetId=subnet_id) == "DependencyViolation"
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    ec2.delete_subnet(SubnetId=subnet_id)
    ec2.delete_vpc(VpcId=vpc_id)
    assert not re.search("eni-", str(ec2.describe_network_interfaces(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkInterfaces"]))
