"""The VPC control plane through boto3: the default VPC as a fresh AWS account has it, VPCs,
subnets, security groups and rules, internet gateways, route tables, network ACLs, their
error codes, tags, pagination, and survival of kill -9. No VM is booted here."""

import tempfile

import pytest
from botocore.exceptions import ClientError

from conftest import Nimbus
from test_foundation import error_code


@pytest.fixture(scope="module")
def nimbus():
    """Pagination needs more VPCs than AWS's default quota of 5: an account with it raised."""
    with tempfile.TemporaryDirectory(prefix="nimbus-test-") as data_dir:
        server = Nimbus(data_dir, config_text="[limits]\nvpcs = 10\n").start()
        yield server
        server.stop()


def code_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    return error_code(raised)


@pytest.fixture(scope="module")
def default_vpc(ec2):
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]


def test_the_default_vpc_is_as_in_a_fresh_account(ec2, default_vpc):
    assert default_vpc["CidrBlock"] == "172.31.0.0/16"
    assert default_vpc["IsDefault"] is True
    assert default_vpc["State"] == "available"
    vpc_id = default_vpc["VpcId"]
    attributes = ec2.describe_account_attributes(AttributeNames=["default-vpc", "supported-platforms"])
    values = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]] for a in attributes["AccountAttributes"]}
    assert values == {"default-vpc": [vpc_id], "supported-platforms": ["VPC"]}

    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    by_zone = {s["AvailabilityZone"]: s for s in subnets}
    assert sorted(by_zone) == ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert [by_zone[z]["CidrBlock"] for z in sorted(by_zone)] == ["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"]
    for subnet in subnets:
        assert subnet["DefaultForAz"] is True and subnet["MapPublicIpOnLaunch"] is True
        assert subnet["AvailableIpAddressCount"] == 4096 - 5

    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    assert [g["GroupName"] for g in groups] == ["default"]
    default = groups[0]
    assert default["IpPermissions"][0]["IpProtocol"] == "-1"
    assert default["IpPermissions"][0]["UserIdGroupPairs"][0]["GroupId"] == default["GroupId"]
    assert default["IpPermissionsEgress"][0]["IpRanges"] == [{"CidrIp": "0.0.0.0/0"}]
    # GroupName lookups are in the default VPC.
    assert ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"] == default["GroupId"]

    gateways = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])["InternetGateways"]
    assert len(gateways) == 1
    assert gateways[0]["Attachments"] == [{"State": "available", "VpcId": vpc_id}]

    tables = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    assert len(tables) == 1 and tables[0]["Associations"][0]["Main"] is True
    routes = {r["DestinationCidrBlock"]: r["GatewayId"] for r in tables[0]["Routes"]}
    assert routes == {"172.31.0.0/16": "local", "0.0.0.0/0": gateways[0]["InternetGatewayId"]}

    acls = ec2.describe_network_acls(Filters=[{"Name": "default", "Values": ["true"]}, {"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]
    assert len(acls) == 1
    entries = sorted((e["Egress"], e["RuleNumber"], e["RuleAction"]) for e in acls[0]["Entries"])
    assert entries == [(False, 100, "allow"), (False, 32767, "deny"), (True, 100, "allow"), (True, 32767, "deny")]
    assert {a["SubnetId"] for a in acls[0]["Associations"]} == {s["SubnetId"] for s in subnets}


def make_vpc(ec2, cidr="10.0.0.0/16", name=None):
    tags = [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}] if name else []
    return ec2.create_vpc(CidrBlock=cidr, TagSpecifications=tags)["Vpc"]["VpcId"]


def test_a_new_vpc_gets_its_main_table_default_acl_and_group(ec2):
    vpc_id = make_vpc(ec2, name="fresh")
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["IsDefault"] is False and vpc["Tags"] == [{"Key": "Name", "Value": "fresh"}]
    only = [{"Name": "vpc-id", "Values": [vpc_id]}]
    tables = ec2.describe_route_tables(Filters=only)["RouteTables"]
    assert [[r["GatewayId"] for r in t["Routes"]] for t in tables] == [["local"]]
    assert ec2.describe_network_acls(Filters=only)["NetworkAcls"][0]["IsDefault"] is True
    group = ec2.describe_security_groups(Filters=only)["SecurityGroups"][0]
    assert group["GroupName"] == "default"
    assert code_of(ec2.delete_security_group, GroupId=group["GroupId"]) == "CannotDelete"
    # DNS attributes.
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"]["Value"] is True
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"] is False
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    assert ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")["EnableDnsHostnames"]["Value"] is True
    # Secondary CIDR blocks.
    association = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="10.1.0.0/16")["CidrBlockAssociation"]
    assert code_of(ec2.associate_vpc_cidr_block, VpcId=vpc_id, CidrBlock="10.0.128.0/17") == "InvalidVpc.Range"
    ec2.disassociate_vpc_cidr_block(AssociationId=association["AssociationId"])
    assert [c["CidrBlock"] for c in ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["CidrBlockAssociationSet"]] == ["10.0.0.0/16"]
    ec2.delete_vpc(VpcId=vpc_id)
    assert code_of(ec2.describe_vpcs, VpcIds=[vpc_id]) == "InvalidVpcID.NotFound"
    assert ec2.describe_route_tables(Filters=only)["RouteTables"] == []


def test_vpc_and_subnet_bad_input(ec2):
    for cidr in ["10.0.0.0/8", "10.0.0.0/29"]:
        assert code_of(ec2.create_vpc, CidrBlock=cidr) == "InvalidVpc.Range"
    for cidr in ["10.0.0.1/16", "10.0.0.0/33", "banana", "10.0.0.0/16;drop"]:
        assert code_of(ec2.create_vpc, CidrBlock=cidr) == "InvalidParameterValue"
    vpc_id = make_vpc(ec2, "10.20.0.0/16")
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]
    assert subnet["AvailableIpAddressCount"] == 251
    assert subnet["MapPublicIpOnLaunch"] is False and subnet["DefaultForAz"] is False
    assert code_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.20.1.128/25") == "InvalidSubnet.Conflict"
    assert code_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.20.0.0/16") == "InvalidSubnet.Conflict"
    assert code_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.21.0.0/24") == "InvalidSubnet.Range"
    assert code_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.20.2.0/29") == "InvalidSubnet.Range"
    assert code_of(ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.20.2.0/24", AvailabilityZone="mars-1a") == "InvalidZone.NotFound"
    assert code_of(ec2.create_subnet, VpcId="vpc-0123456789abcdef0", CidrBlock="10.20.2.0/24") == "InvalidVpcID.NotFound"
    assert code_of(ec2.create_subnet, VpcId="nope", CidrBlock="10.20.2.0/24") == "InvalidVpcID.Malformed"
    assert code_of(ec2.delete_vpc, VpcId=vpc_id) == "DependencyViolation"
    ec2.modify_subnet_attribute(SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": True})
    assert ec2.describe_subnets(SubnetIds=[subnet["SubnetId"]])["Subnets"][0]["MapPublicIpOnLaunch"] is True
    assert code_of(ec2.modify_subnet_attribute, SubnetId=subnet["SubnetId"], EnableDns64={"Value": True}) == "UnsupportedOperation"
    ec2.delete_subnet(SubnetId=subnet["SubnetId"])
    assert code_of(ec2.delete_subnet, SubnetId=subnet["SubnetId"]) == "InvalidSubnetID.NotFound"
    ec2.delete_vpc(VpcId=vpc_id)


def test_security_group_rules_follow_ec2(ec2):
    vpc_id = make_vpc(ec2, "10.30.0.0/16")
    web = ec2.create_security_group(GroupName="web", Description="web servers", VpcId=vpc_id)["GroupId"]
    app = ec2.create_security_group(GroupName="app", Description="app servers", VpcId=vpc_id)["GroupId"]
    assert code_of(ec2.create_security_group, GroupName="web", Description="again", VpcId=vpc_id) == "InvalidGroup.Duplicate"
    group = ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]
    assert group["IpPermissions"] == []
    assert group["IpPermissionsEgress"][0]["IpProtocol"] == "-1"

    added = ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "http"}]},
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100, "UserIdGroupPairs": [{"GroupId": app}]},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "10.30.0.0/16"}]},
    ])["SecurityGroupRules"]
    assert len(added) == 3 and all(r["SecurityGroupRuleId"].startswith("sgr-") for r in added)
    permissions = ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissions"]
    http = next(p for p in permissions if p.get("FromPort") == 80)
    assert http["IpRanges"] == [{"CidrIp": "0.0.0.0/0", "Description": "http"}]
    ref = next(p for p in permissions if p.get("FromPort") == 8000)
    assert ref["UserIdGroupPairs"][0]["GroupId"] == app

    duplicate = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    assert code_of(ec2.authorize_security_group_ingress, GroupId=web, IpPermissions=[duplicate]) == "InvalidPermission.Duplicate"
    missing = {"IpProtocol": "tcp", "FromPort": 81, "ToPort": 81, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    assert code_of(ec2.revoke_security_group_ingress, GroupId=web, IpPermissions=[missing]) == "InvalidPermission.NotFound"
    for bad in [
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 70000, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 90, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "bogus", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/33"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "1.2.3.4/8"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0\"; flush ruleset"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "x\" accept; #"}]},
    ]:
        assert code_of(ec2.authorize_security_group_ingress, GroupId=web, IpPermissions=[bad]) == "InvalidParameterValue", bad
    assert code_of(ec2.create_security_group, GroupName="quote'd", Description="d", VpcId=vpc_id) == "InvalidParameterValue"
    assert code_of(ec2.create_security_group, GroupName="ok", Description="new\nline", VpcId=vpc_id) == "InvalidParameterValue"
    assert code_of(ec2.authorize_security_group_ingress, GroupId="sg-0123456789abcdef0", IpPermissions=[missing]) == "InvalidGroup.NotFound"

    # Rules by ID: describe, change a description, modify, revoke.
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [web]}])["SecurityGroupRules"]
    assert len(rules) == 4 and sum(r["IsEgress"] for r in rules) == 1
    icmp_rule = next(r for r in rules if r["IpProtocol"] == "icmp")
    ec2.update_security_group_rule_descriptions_ingress(GroupId=web, SecurityGroupRuleDescriptions=[
        {"SecurityGroupRuleId": icmp_rule["SecurityGroupRuleId"], "Description": "ping"}])
    ec2.modify_security_group_rules(GroupId=web, SecurityGroupRules=[{
        "SecurityGroupRuleId": icmp_rule["SecurityGroupRuleId"],
        "SecurityGroupRule": {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "10.30.0.0/16", "Description": "ssh"}}])
    changed = ec2.describe_security_group_rules(SecurityGroupRuleIds=[icmp_rule["SecurityGroupRuleId"]])["SecurityGroupRules"][0]
    assert (changed["IpProtocol"], changed["FromPort"], changed["CidrIpv4"], changed["Description"]) == ("tcp", 22, "10.30.0.0/16", "ssh")
    ec2.revoke_security_group_ingress(GroupId=web, SecurityGroupRuleIds=[icmp_rule["SecurityGroupRuleId"]])
    assert code_of(ec2.revoke_security_group_ingress, GroupId=web, SecurityGroupRuleIds=[icmp_rule["SecurityGroupRuleId"]]) == "InvalidSecurityGroupRuleId.NotFound"

    # Egress, and a group referenced by another cannot be deleted.
    ec2.revoke_security_group_egress(GroupId=web, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    assert ec2.describe_security_groups(GroupIds=[web])["SecurityGroups"][0]["IpPermissionsEgress"] == []
    assert code_of(ec2.delete_security_group, GroupId=app) == "DependencyViolation"
    ec2.revoke_security_group_ingress(GroupId=web, IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8100, "UserIdGroupPairs": [{"GroupId": app}]}])
    ec2.delete_security_group(GroupId=app)
    assert code_of(ec2.describe_security_groups, GroupIds=[app]) == "InvalidGroup.NotFound"
    # Filters Terraform and Ansible use.
    found = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["web"]}, {"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [web]
    found = ec2.describe_security_groups(Filters=[{"Name": "ip-permission.from-port", "Values": ["80"]}])["SecurityGroups"]
    assert [g["GroupId"] for g in found] == [web]
    ec2.delete_security_group(GroupId=web)
    ec2.delete_vpc(VpcId=vpc_id)


def test_gateways_route_tables_and_acls(ec2):
    vpc_id = make_vpc(ec2, "10.40.0.0/16")
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    table = ec2.create_route_table(VpcId=vpc_id)["RouteTable"]["RouteTableId"]
    assert code_of(ec2.create_route, RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw) == "InvalidParameterValue"
    assert code_of(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc_id) == "Gateway.NotAttached"
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    assert code_of(ec2.attach_internet_gateway, InternetGatewayId=igw, VpcId=vpc_id) == "Resource.AlreadyAssociated"
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    assert code_of(ec2.create_route, RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw) == "RouteAlreadyExists"
    assert code_of(ec2.create_route, RouteTableId=table, DestinationCidrBlock="1.0.0.0/8", NatGatewayId="nat-0123456789abcdef0") == "NatGatewayNotFound"
    assert code_of(ec2.create_route, RouteTableId=table, DestinationCidrBlock="1.0.0.0/8", VpcPeeringConnectionId="pcx-0123456789abcdef0") == "UnsupportedOperation"
    assert code_of(ec2.delete_route, RouteTableId=table, DestinationCidrBlock="1.0.0.0/8") == "InvalidRoute.NotFound"
    assert code_of(ec2.delete_route, RouteTableId=table, DestinationCidrBlock="10.40.0.0/16") == "InvalidParameterValue"
    association = ec2.associate_route_table(RouteTableId=table, SubnetId=subnet_id)["AssociationId"]
    assert association.startswith("rtbassoc-")
    assert code_of(ec2.associate_route_table, RouteTableId=table, SubnetId=subnet_id) == "Resource.AlreadyAssociated"
    assert code_of(ec2.delete_route_table, RouteTableId=table) == "DependencyViolation"
    assert code_of(ec2.delete_internet_gateway, InternetGatewayId=igw) == "DependencyViolation"
    found = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["RouteTables"]
    assert [t["RouteTableId"] for t in found] == [table]
    # The custom table becomes the main one and back, as Terraform's main route table association does.
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    main_association = next(a for a in main["Associations"] if a["Main"])["RouteTableAssociationId"]
    moved = ec2.replace_route_table_association(AssociationId=main_association, RouteTableId=table)["NewAssociationId"]
    assert ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]["Associations"][-1]["Main"] is True
    ec2.replace_route_table_association(AssociationId=moved, RouteTableId=main["RouteTableId"])

    acl = ec2.create_network_acl(VpcId=vpc_id)["NetworkAcl"]
    acl_id = acl["NetworkAclId"]
    assert [(e["RuleNumber"], e["RuleAction"]) for e in acl["Entries"]] == [(32767, "deny"), (32767, "deny")]
    entry = dict(NetworkAclId=acl_id, RuleNumber=100, Protocol="6", RuleAction="allow", Egress=False, CidrBlock="0.0.0.0/0", PortRange={"From": 22, "To": 22})
    ec2.create_network_acl_entry(**entry)
    assert code_of(ec2.create_network_acl_entry, **entry) == "NetworkAclEntryAlreadyExists"
    ec2.replace_network_acl_entry(**dict(entry, RuleAction="deny"))
    assert code_of(ec2.replace_network_acl_entry, **dict(entry, RuleNumber=101)) == "InvalidNetworkAclEntry.NotFound"
    assert code_of(ec2.create_network_acl_entry, **dict(entry, RuleNumber=102, Protocol="xyz")) == "InvalidParameterValue"
    assert code_of(ec2.create_network_acl_entry, **dict(entry, RuleNumber=40000)) == "InvalidParameterValue"
    current = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])["NetworkAcls"][0]
    assert current["IsDefault"] is True
    old_association = next(a for a in current["Associations"] if a["SubnetId"] == subnet_id)["NetworkAclAssociationId"]
    new_association = ec2.replace_network_acl_association(AssociationId=old_association, NetworkAclId=acl_id)["NewAssociationId"]
    moved = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]
    assert moved["Associations"][0]["SubnetId"] == subnet_id
    assert any(e["RuleNumber"] == 100 and e["RuleAction"] == "deny" and e["PortRange"] == {"From": 22, "To": 22} for e in moved["Entries"])
    assert code_of(ec2.delete_network_acl, NetworkAclId=acl_id) == "DependencyViolation"
    assert code_of(ec2.replace_network_acl_association, AssociationId="aclassoc-0123456789abcdef0", NetworkAclId=acl_id) == "InvalidAssociationID.NotFound"
    ec2.delete_network_acl_entry(NetworkAclId=acl_id, RuleNumber=100, Egress=False)

    # Tear down in the order AWS requires.
    ec2.disassociate_route_table(AssociationId=association)
    assert code_of(ec2.disassociate_route_table, AssociationId=association) == "InvalidAssociationID.NotFound"
    ec2.delete_route_table(RouteTableId=table)
    ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw)
    assert code_of(ec2.delete_internet_gateway, InternetGatewayId=igw) == "InvalidInternetGatewayID.NotFound"
    ec2.delete_subnet(SubnetId=subnet_id)
    assert ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]["Associations"] == []
    assert new_association.startswith("aclassoc-")
    ec2.delete_network_acl(NetworkAclId=acl_id)
    ec2.delete_vpc(VpcId=vpc_id)


def test_unknown_ids_have_their_own_codes(ec2):
    cases = [
        (ec2.describe_vpcs, {"VpcIds": ["vpc-0123456789abcdef0"]}, "InvalidVpcID.NotFound"),
        (ec2.describe_subnets, {"SubnetIds": ["subnet-0123456789abcdef0"]}, "InvalidSubnetID.NotFound"),
        (ec2.describe_security_groups, {"GroupIds": ["sg-0123456789abcdef0"]}, "InvalidGroup.NotFound"),
        (ec2.describe_security_groups, {"GroupNames": ["nothing-here"]}, "InvalidGroup.NotFound"),
        (ec2.describe_internet_gateways, {"InternetGatewayIds": ["igw-0123456789abcdef0"]}, "InvalidInternetGatewayID.NotFound"),
        (ec2.describe_route_tables, {"RouteTableIds": ["rtb-0123456789abcdef0"]}, "InvalidRouteTableID.NotFound"),
        (ec2.describe_network_acls, {"NetworkAclIds": ["acl-0123456789abcdef0"]}, "InvalidNetworkAclID.NotFound"),
        (ec2.describe_vpcs, {"Filters": [{"Name": "colour", "Values": ["x"]}]}, "InvalidParameterValue"),
    ]
    for call, kwargs, code in cases:
        assert code_of(call, **kwargs) == code, (call, kwargs)


def test_pagination_and_tags(ec2):
    vpc_ids = [make_vpc(ec2, f"10.{50 + n}.0.0/16", name=f"page{n}") for n in range(7)]
    seen, token = [], None
    while True:
        kwargs = {"MaxResults": 5, "Filters": [{"Name": "tag:Name", "Values": ["page*"]}]}
        if token:
            kwargs["NextToken"] = token
        page = ec2.describe_vpcs(**kwargs)
        seen += [v["VpcId"] for v in page["Vpcs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(seen) == sorted(vpc_ids)
    ec2.create_tags(Resources=[vpc_ids[0]], Tags=[{"Key": "team", "Value": "blue"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vpc_ids[0]]}])["Tags"]
    assert {t["Key"]: t["ResourceType"] for t in tags} == {"Name": "vpc", "team": "vpc"}
    for vpc_id in vpc_ids:
        ec2.delete_vpc(VpcId=vpc_id)


def test_networking_survives_kill_9(fresh_nimbus):
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    vpc_id = make_vpc(ec2, "10.60.0.0/16", name="durable")
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.60.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="durable", Description="d", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    ec2 = fresh_nimbus.client()
    defaults = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    assert [v["VpcId"] for v in defaults] == [default_vpc]
    assert ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["Tags"] == [{"Key": "Name", "Value": "durable"}]
    assert ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["CidrBlock"] == "10.60.1.0/24"
    permissions = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["IpPermissions"]
    assert permissions[0]["FromPort"] == 443


def test_elastic_ips(ec2):
    allocated = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "eip"}]}])
    assert allocated["AllocationId"].startswith("eipalloc-") and allocated["Domain"] == "vpc"
    assert allocated["PublicIp"].startswith("198.19.")
    other = ec2.allocate_address(Domain="vpc")
    assert other["PublicIp"] != allocated["PublicIp"]
    found = ec2.describe_addresses(AllocationIds=[allocated["AllocationId"]])["Addresses"][0]
    assert found["PublicIp"] == allocated["PublicIp"] and found["Tags"] == [{"Key": "Name", "Value": "eip"}]
    assert "AssociationId" not in found
    by_ip = ec2.describe_addresses(PublicIps=[other["PublicIp"]])["Addresses"]
    assert [a["AllocationId"] for a in by_ip] == [other["AllocationId"]]
    assert code_of(ec2.describe_addresses, AllocationIds=["eipalloc-0123456789abcdef0"]) == "InvalidAllocationID.NotFound"
    assert code_of(ec2.describe_addresses, PublicIps=["203.0.113.9"]) == "InvalidAddress.NotFound"
    assert code_of(ec2.associate_address, AllocationId=allocated["AllocationId"], InstanceId="i-0123456789abcdef0") == "InvalidInstanceID.NotFound"
    assert code_of(ec2.disassociate_address, AssociationId="eipassoc-0123456789abcdef0") == "InvalidAssociationID.NotFound"
    ec2.release_address(AllocationId=allocated["AllocationId"])
    ec2.release_address(PublicIp=other["PublicIp"])
    assert code_of(ec2.release_address, AllocationId=allocated["AllocationId"]) == "InvalidAllocationID.NotFound"


def test_a_new_internet_gateway_has_empty_tag_and_attachment_sets(ec2):
    # As AWS answers CreateInternetGateway (Ansible's ec2_vpc_igw reads both); a Describe leaves
    # out the tagSet of an untagged gateway, as it does for every untagged resource.
    created = ec2.create_internet_gateway()["InternetGateway"]
    assert created["Tags"] == [] and created["Attachments"] == []
    gateway_id = created["InternetGatewayId"]
    described = ec2.describe_internet_gateways(InternetGatewayIds=[gateway_id])["InternetGateways"][0]
    assert "Tags" not in described and described["Attachments"] == []
    ec2.delete_internet_gateway(InternetGatewayId=gateway_id)
