"""Account limits: a client creates VPCs, subnets, groups, rules, addresses, volumes,
snapshots and roles until each limit answers AWS's code, and a refused call leaves nothing
half-made (what Describe answers is the same before and after)."""

import tempfile

import pytest
from botocore.exceptions import ClientError

from conftest import Nimbus

ZONE = "us-east-1a"

LIMITS = """
[limits]
vpcs = 2
subnets_per_vpc = 1
security_groups_per_vpc = 3
inbound_rules_per_group = 3
groups_per_interface = 2
elastic_ips = 1
volumes = 2
snapshots = 1
iam_roles = 1
"""


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory(prefix="nimbus-test-") as data_dir:
        nimbus = Nimbus(data_dir, config_text=LIMITS).start()
        yield nimbus
        nimbus.stop()


@pytest.fixture(scope="module")
def ec2(server):
    return server.client()


@pytest.fixture(scope="module")
def vpc_id(ec2):
    """The account's second VPC (the default one is the first)."""
    return ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]


def refused(call, code, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    assert caught.value.response["Error"]["Code"] == code, caught.value.response
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    return caught.value.response


def network_view(ec2):
    """Everything a VPC brings with it, by ID."""
    return (
        sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
        sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
        sorted(a["NetworkAclId"] for a in ec2.describe_network_acls()["NetworkAcls"]),
        sorted(r["RouteTableId"] for r in ec2.describe_route_tables()["RouteTables"]),
    )


def test_a_vpc_past_the_limit_is_refused_with_nothing_made(ec2, vpc_id):
    before = network_view(ec2)
    response = refused(ec2.create_vpc, "VpcLimitExceeded", CidrBlock="10.8.0.0/16")
    assert response["Error"]["Message"] == "The maximum number of VPCs has been reached."
    assert network_view(ec2) == before


def test_subnets_and_groups_are_limited_per_vpc(ec2, vpc_id):
    ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.7.0.0/24", AvailabilityZone=ZONE)
    refused(ec2.create_subnet, "SubnetLimitExceeded", VpcId=vpc_id, CidrBlock="10.7.1.0/24")
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert len(subnets) == 1
    for name in ["a", "b"]:  # with the default group, three
        ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc_id)
    refused(ec2.create_security_group, "SecurityGroupLimitExceeded", GroupName="c", Description="c", VpcId=vpc_id)
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    assert len(ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]) == 3


def test_groups_per_interface_are_limited(ec2, vpc_id):
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
    subnet_id = ec2.describe_subnets(Filters=in_vpc)["Subnets"][0]["SubnetId"]
    groups = [g["GroupId"] for g in ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]]
    assert len(groups) == 3
    refused(ec2.create_network_interface, "SecurityGroupsPerInterfaceLimitExceeded", SubnetId=subnet_id, Groups=groups)
    assert ec2.describe_network_interfaces(Filters=in_vpc)["NetworkInterfaces"] == []
    interface = ec2.create_network_interface(SubnetId=subnet_id, Groups=groups[:2])["NetworkInterface"]
    refused(
        ec2.modify_network_interface_attribute,
        "SecurityGroupsPerInterfaceLimitExceeded",
        NetworkInterfaceId=interface["NetworkInterfaceId"],
        Groups=groups,
    )


def test_rules_past_the_limit_add_none_of_the_request(ec2):
    group_id = ec2.create_security_group(GroupName="rules", Description="rules")["GroupId"]

    def permission(*cidrs):
        return [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": c} for c in cidrs]}]

    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permission("10.0.0.0/8", "10.1.0.0/16"))
    response = refused(
        ec2.authorize_security_group_ingress,
        "RulesPerSecurityGroupLimitExceeded",
        GroupId=group_id,
        IpPermissions=permission("10.2.0.0/16", "10.3.0.0/16"),
    )
    assert response["Error"]["Message"] == "The maximum number of rules per security group has been reached."
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    cidrs = [r["CidrIp"] for p in group["IpPermissions"] for r in p["IpRanges"]]
    assert sorted(cidrs) == ["10.0.0.0/8", "10.1.0.0/16"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=permission("10.2.0.0/16"))


def test_elastic_ips_are_limited_and_reported(ec2):
    ec2.allocate_address(Domain="vpc")
    refused(ec2.allocate_address, "AddressLimitExceeded", Domain="vpc")
    assert len(ec2.describe_addresses()["Addresses"]) == 1
    attributes = {
        a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
        for a in ec2.describe_account_attributes()["AccountAttributes"]
    }
    assert attributes["max-elastic-ips"] == ["1"]
    assert attributes["vpc-max-elastic-ips"] == ["1"]
    assert attributes["vpc-max-security-groups-per-interface"] == ["2"]
    assert attributes["max-instances"] == ["20"]


def test_volumes_and_snapshots_are_limited(ec2):
    volume_ids = [ec2.create_volume(AvailabilityZone=ZONE, Size=1)["VolumeId"] for _ in range(2)]
    refused(ec2.create_volume, "VolumeLimitExceeded", AvailabilityZone=ZONE, Size=1)
    assert sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]) == sorted(volume_ids)
    ec2.get_waiter("volume_available").wait(VolumeIds=volume_ids, WaiterConfig={"Delay": 1})
    ec2.create_snapshot(VolumeId=volume_ids[0])
    refused(ec2.create_snapshot, "SnapshotLimitExceeded", VolumeId=volume_ids[1])
    assert len(ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]) == 1


def test_roles_past_the_quota_answer_iams_limit_exceeded(server):
    iam = server.client("iam")
    trust = '{"Version":"2012-10-17","Statement":[]}'
    iam.create_role(RoleName="first", AssumeRolePolicyDocument=trust)
    with pytest.raises(ClientError) as caught:
        iam.create_role(RoleName="second", AssumeRolePolicyDocument=trust)
    assert caught.value.response["Error"]["Code"] == "LimitExceeded"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["first"]
