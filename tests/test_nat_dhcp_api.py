"""NAT gateways and DHCP options sets through boto3, without guests: Terraform's
aws_nat_gateway (with the aws_eip and aws_route around it), aws_vpc_dhcp_options and
aws_vpc_dhcp_options_association replayed call by call (hashicorp/terraform-provider-aws,
internal/service/ec2/vpc_nat_gateway.go, vpc_dhcp_options.go, vpc_dhcp_options_association.go,
wait.go, find.go), asserting the attributes Terraform reads back, and the errors of bad input.
The guests' side is tests/test_nat_dhcp.py."""

import pytest
from botocore.exceptions import ClientError

from test_foundation import error_code

WAIT = {"Delay": 1, "MaxAttempts": 120}


def public_and_private_subnets(ec2, prefix):
    """A VPC `prefix`.0.0/16 with a public subnet .1.0/24 (its route table sends 0.0.0.0/0 to an
    internet gateway) and a private one .2.0/24 with a route table of its own."""
    vpc = ec2.create_vpc(CidrBlock=f"{prefix}.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    subnets = {}
    for name, third in (("public", 1), ("private", 2)):
        subnets[name] = ec2.create_subnet(VpcId=vpc, CidrBlock=f"{prefix}.{third}.0/24")["Subnet"]["SubnetId"]
        routes = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        ec2.associate_route_table(RouteTableId=routes, SubnetId=subnets[name])
        subnets[f"{name}_routes"] = routes
    ec2.create_route(RouteTableId=subnets["public_routes"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    return {"vpc": vpc, **subnets}


@pytest.fixture(scope="module")
def layout(ec2):
    return public_and_private_subnets(ec2, "10.60")


def find_nat_gateway(ec2, nat_id):
    """findNATGatewayByID: one gateway, and a deleted one counts as gone."""
    gateways = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"]
    assert len(gateways) == 1
    return None if gateways[0]["State"] == "deleted" else gateways[0]


def test_terraform_aws_nat_gateway(ec2, layout):
    # aws_eip
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": "nat"}]}])
    # resourceNATGatewayCreate: a unique client token, the tags, then waitNATGatewayCreated.
    created = ec2.create_nat_gateway(
        AllocationId=eip["AllocationId"], ClientToken="terraform-20261208000000000001",
        ConnectivityType="public", SubnetId=layout["public"],
        TagSpecifications=[{"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "main"}]}])
    nat_id = created["NatGateway"]["NatGatewayId"]
    assert nat_id.startswith("nat-") and created["NatGateway"]["State"] == "pending"
    again = ec2.create_nat_gateway(
        AllocationId=eip["AllocationId"], ClientToken="terraform-20261208000000000001",
        ConnectivityType="public", SubnetId=layout["public"],
        TagSpecifications=[{"ResourceType": "natgateway", "Tags": [{"Key": "Name", "Value": "main"}]}])
    assert again["NatGateway"]["NatGatewayId"] == nat_id, "a retried create makes no second gateway"
    ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat_id], WaiterConfig=WAIT)

    # resourceNATGatewayRead
    nat = find_nat_gateway(ec2, nat_id)
    assert nat["State"] == "available"
    assert nat["ConnectivityType"] == "public" and nat["SubnetId"] == layout["public"]
    assert nat["VpcId"] == layout["vpc"]
    assert nat["Tags"] == [{"Key": "Name", "Value": "main"}]
    [address] = nat["NatGatewayAddresses"]
    assert address["IsPrimary"] is True
    assert address["AllocationId"] == eip["AllocationId"] and address["PublicIp"] == eip["PublicIp"]
    assert address["AssociationId"].startswith("eipassoc-")
    assert address["PrivateIp"].startswith("10.60.1.")
    interface_id = address["NetworkInterfaceId"]

    # The gateway's interface, as DescribeNetworkInterfaces shows it, and its elastic IP.
    [interface] = ec2.describe_network_interfaces(NetworkInterfaceIds=[interface_id])["NetworkInterfaces"]
    assert interface["InterfaceType"] == "nat_gateway" and interface["RequesterManaged"] is True
    assert interface["Status"] == "in-use" and interface["SubnetId"] == layout["public"]
    assert interface["Description"] == f"Interface for NAT Gateway {nat_id}"
    assert interface["PrivateIpAddress"] == address["PrivateIp"] and interface["Groups"] == []
    assert interface["Association"]["PublicIp"] == eip["PublicIp"]
    assert interface["Association"]["AllocationId"] == eip["AllocationId"]
    assert interface["Association"]["AssociationId"] == address["AssociationId"]
    [described] = ec2.describe_addresses(AllocationIds=[eip["AllocationId"]])["Addresses"]
    assert described["AssociationId"] == address["AssociationId"]
    assert described["NetworkInterfaceId"] == interface_id and "InstanceId" not in described
    assert described["PrivateIpAddress"] == address["PrivateIp"]

    # aws_route with nat_gateway_id, read back as Terraform's route finder does.
    ec2.create_route(RouteTableId=layout["private_routes"], DestinationCidrBlock="0.0.0.0/0",
                     NatGatewayId=nat_id)
    routes = ec2.describe_route_tables(RouteTableIds=[layout["private_routes"]])["RouteTables"][0]["Routes"]
    default = next(r for r in routes if r["DestinationCidrBlock"] == "0.0.0.0/0")
    assert default["NatGatewayId"] == nat_id and default["State"] == "active"
    assert "GatewayId" not in default
    by_filter = ec2.describe_route_tables(Filters=[{"Name": "route.nat-gateway-id", "Values": [nat_id]}])
    assert [t["RouteTableId"] for t in by_filter["RouteTables"]] == [layout["private_routes"]]

    # Tags: update, then read.
    ec2.create_tags(Resources=[nat_id], Tags=[{"Key": "Env", "Value": "test"}])
    ec2.delete_tags(Resources=[nat_id], Tags=[{"Key": "Name"}])
    assert find_nat_gateway(ec2, nat_id)["Tags"] == [{"Key": "Env", "Value": "test"}]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["natgateway"]}])["Tags"]
    assert [(t["ResourceId"], t["Key"]) for t in tags] == [(nat_id, "Env")]
    by_state = ec2.describe_nat_gateways(Filter=[{"Name": "state", "Values": ["available"]},
                                                 {"Name": "vpc-id", "Values": [layout["vpc"]]}])
    assert [n["NatGatewayId"] for n in by_state["NatGateways"]] == [nat_id]

    # What the gateway holds is refused as AWS refuses it.
    for call, code in [
        (lambda: ec2.release_address(AllocationId=eip["AllocationId"]), "InvalidIPAddress.InUse"),
        (lambda: ec2.disassociate_address(AssociationId=address["AssociationId"]), "InvalidIPAddress.InUse"),
        (lambda: ec2.delete_subnet(SubnetId=layout["public"]), "DependencyViolation"),
        (lambda: ec2.delete_network_interface(NetworkInterfaceId=interface_id), "InvalidNetworkInterface.InUse"),
        (lambda: ec2.modify_network_interface_attribute(NetworkInterfaceId=interface_id,
                                                        Description={"Value": "mine"}), "OperationNotPermitted"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"], AllocationId=eip["AllocationId"]),
         "Resource.AlreadyAssociated"),
    ]:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == code

    # resourceNATGatewayDelete, then waitNATGatewayDeleted.
    deleted = ec2.delete_nat_gateway(NatGatewayId=nat_id)
    assert deleted["NatGatewayId"] == nat_id
    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat_id], WaiterConfig=WAIT)
    assert find_nat_gateway(ec2, nat_id) is None
    gone = ec2.describe_nat_gateways(NatGatewayIds=[nat_id])["NatGateways"][0]
    assert gone["State"] == "deleted" and "DeleteTime" in gone
    routes = ec2.describe_route_tables(RouteTableIds=[layout["private_routes"]])["RouteTables"][0]["Routes"]
    assert next(r for r in routes if r.get("NatGatewayId") == nat_id)["State"] == "blackhole"
    assert ec2.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [interface_id]}])["NetworkInterfaces"] == []
    ec2.delete_route(RouteTableId=layout["private_routes"], DestinationCidrBlock="0.0.0.0/0")
    ec2.release_address(AllocationId=eip["AllocationId"])


def test_private_nat_gateway(ec2, layout):
    nat = ec2.create_nat_gateway(SubnetId=layout["private"], ConnectivityType="private",
                                 PrivateIpAddress="10.60.2.77")["NatGateway"]
    ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig=WAIT)
    [address] = find_nat_gateway(ec2, nat["NatGatewayId"])["NatGatewayAddresses"]
    assert address["PrivateIp"] == "10.60.2.77" and "PublicIp" not in address and "AllocationId" not in address
    assert nat["ConnectivityType"] == "private"
    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat["NatGatewayId"]], WaiterConfig=WAIT)


def test_nat_gateway_bad_input(ec2, layout):
    eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    other_vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    other_routes = ec2.create_route_table(VpcId=other_vpc)["RouteTable"]["RouteTableId"]
    nat_id = ec2.create_nat_gateway(SubnetId=layout["public"], AllocationId=eip)["NatGateway"]["NatGatewayId"]
    cases = [
        (lambda: ec2.describe_nat_gateways(NatGatewayIds=["nat-0123456789abcdef0"]), "NatGatewayNotFound"),
        (lambda: ec2.delete_nat_gateway(NatGatewayId="nat-0123456789abcdef0"), "NatGatewayNotFound"),
        (lambda: ec2.describe_nat_gateways(NatGatewayIds=["nat-zz"]), "NatGatewayMalformed"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"]), "MissingParameter"),
        (lambda: ec2.create_nat_gateway(SubnetId="subnet-0123456789abcdef0", AllocationId=eip),
         "InvalidSubnetID.NotFound"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"], AllocationId="eipalloc-0123456789abcdef0"),
         "InvalidAllocationID.NotFound"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"], ConnectivityType="private", AllocationId=eip),
         "InvalidParameterCombination"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"], ConnectivityType="private",
                                        PrivateIpAddress="10.99.0.5"), "InvalidParameterValue"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"], ConnectivityType="sideways"),
         "InvalidParameterValue"),
        (lambda: ec2.create_nat_gateway(SubnetId=layout["public"], AllocationId=eip,
                                        SecondaryAllocationIds=["eipalloc-0123456789abcdef0"]),
         "UnsupportedOperation"),
        (lambda: ec2.create_route(RouteTableId=other_routes, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id),
         "InvalidParameterValue"),
        (lambda: ec2.create_route(RouteTableId=layout["private_routes"], DestinationCidrBlock="0.0.0.0/0",
                                  NatGatewayId="nat-0123456789abcdef0"), "NatGatewayNotFound"),
        (lambda: ec2.describe_nat_gateways(Filter=[{"Name": "colour", "Values": ["x"]}]), "InvalidParameterValue"),
    ]
    for call, code in cases:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == code, code
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as excinfo:
        ec2.delete_nat_gateway(NatGatewayId=nat_id, DryRun=True)
    assert error_code(excinfo) == "DryRunOperation"
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat_id], WaiterConfig=WAIT)
    ec2.release_address(AllocationId=eip)
    ec2.delete_route_table(RouteTableId=other_routes)
    ec2.delete_vpc(VpcId=other_vpc)


def configurations(dhcp_options):
    """The set's options as Terraform's dhcpConfigurationsToResourceData reads them."""
    return {c["Key"]: [v["Value"] for v in c["Values"]] for c in dhcp_options["DhcpConfigurations"]}


def test_the_default_set_is_describable(ec2):
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    dhcp_options_id = default_vpc["DhcpOptionsId"]
    assert dhcp_options_id.startswith("dopt-")
    [described] = ec2.describe_dhcp_options(DhcpOptionsIds=[dhcp_options_id])["DhcpOptions"]
    assert configurations(described) == {"domain-name": ["ec2.internal"],
                                         "domain-name-servers": ["AmazonProvidedDNS"]}
    assert described["OwnerId"] == "000000000000"
    new_vpc = ec2.create_vpc(CidrBlock="10.62.0.0/16")["Vpc"]
    assert new_vpc["DhcpOptionsId"] == dhcp_options_id
    ec2.delete_vpc(VpcId=new_vpc["VpcId"])


def test_terraform_aws_vpc_dhcp_options_and_association(ec2, layout):
    # resourceVPCDHCPOptionsCreate, then Read (FindDHCPOptionsByID).
    created = ec2.create_dhcp_options(
        DhcpConfigurations=[
            {"Key": "domain-name", "Values": ["corp.example.com"]},
            {"Key": "domain-name-servers", "Values": ["AmazonProvidedDNS", "10.60.0.53"]},
            {"Key": "ntp-servers", "Values": ["10.60.0.123"]},
            {"Key": "netbios-name-servers", "Values": ["10.60.0.7"]},
            {"Key": "netbios-node-type", "Values": ["2"]},
        ],
        TagSpecifications=[{"ResourceType": "dhcp-options", "Tags": [{"Key": "Name", "Value": "corp"}]}],
    )["DhcpOptions"]
    dhcp_options_id = created["DhcpOptionsId"]
    [read] = ec2.describe_dhcp_options(DhcpOptionsIds=[dhcp_options_id])["DhcpOptions"]
    assert read["DhcpOptionsId"] == dhcp_options_id and read["OwnerId"] == "000000000000"
    assert configurations(read) == {
        "domain-name": ["corp.example.com"],
        "domain-name-servers": ["AmazonProvidedDNS", "10.60.0.53"],
        "ntp-servers": ["10.60.0.123"],
        "netbios-name-servers": ["10.60.0.7"],
        "netbios-node-type": ["2"],
    }
    assert read["Tags"] == [{"Key": "Name", "Value": "corp"}]
    # Update: tags only (every option forces a new set).
    ec2.create_tags(Resources=[dhcp_options_id], Tags=[{"Key": "Team", "Value": "net"}])
    [read] = ec2.describe_dhcp_options(DhcpOptionsIds=[dhcp_options_id])["DhcpOptions"]
    assert {t["Key"] for t in read["Tags"]} == {"Name", "Team"}
    by_key = ec2.describe_dhcp_options(Filters=[{"Name": "key", "Values": ["ntp-servers"]}])["DhcpOptions"]
    assert [d["DhcpOptionsId"] for d in by_key] == [dhcp_options_id]

    # aws_vpc_dhcp_options_association: Put, then Read (FindVPCDHCPOptionsAssociation).
    assert ec2.associate_dhcp_options(DhcpOptionsId=dhcp_options_id, VpcId=layout["vpc"])
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "dhcp-options-id", "Values": [dhcp_options_id]},
                                      {"Name": "vpc-id", "Values": [layout["vpc"]]}])["Vpcs"]
    assert [v["DhcpOptionsId"] for v in vpcs] == [dhcp_options_id]
    with pytest.raises(ClientError) as excinfo:
        ec2.delete_dhcp_options(DhcpOptionsId=dhcp_options_id)
    assert error_code(excinfo) == "DependencyViolation"

    # The association's Delete: back to `default` (no options).
    ec2.associate_dhcp_options(DhcpOptionsId="default", VpcId=layout["vpc"])
    assert ec2.describe_vpcs(VpcIds=[layout["vpc"]])["Vpcs"][0]["DhcpOptionsId"] == "default"
    # The set's Delete: FindVPCsByDHCPOptionsID, then DeleteDhcpOptions.
    assert ec2.describe_vpcs(Filters=[{"Name": "dhcp-options-id", "Values": [dhcp_options_id]}])["Vpcs"] == []
    ec2.delete_dhcp_options(DhcpOptionsId=dhcp_options_id)
    with pytest.raises(ClientError) as excinfo:
        ec2.describe_dhcp_options(DhcpOptionsIds=[dhcp_options_id])
    assert error_code(excinfo) == "InvalidDhcpOptionID.NotFound"
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=default, VpcId=layout["vpc"])


@pytest.mark.parametrize("configuration, code", [
    ([{"Key": "domain-name", "Values": ["bad_name.example"]}], "InvalidParameterValue"),
    ([{"Key": "domain-name", "Values": ["a.example", "b.example"]}], "InvalidParameterValue"),
    ([{"Key": "domain-name-servers", "Values": ["10.0.0.256"]}], "InvalidParameterValue"),
    ([{"Key": "domain-name-servers", "Values": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"]}],
     "InvalidParameterValue"),
    ([{"Key": "netbios-node-type", "Values": ["3"]}], "InvalidParameterValue"),
    ([{"Key": "tftp-server", "Values": ["10.0.0.1"]}], "InvalidParameterValue"),
    ([{"Key": "ntp-servers", "Values": ["fd00:ec2::123"]}], "UnsupportedOperation"),
    ([{"Key": "ipv6-address-preferred-lease-time", "Values": ["1440"]}], "UnsupportedOperation"),
])
def test_dhcp_options_are_validated(ec2, configuration, code):
    before = len(ec2.describe_dhcp_options()["DhcpOptions"])
    with pytest.raises(ClientError) as excinfo:
        ec2.create_dhcp_options(DhcpConfigurations=configuration)
    assert error_code(excinfo) == code
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(ec2.describe_dhcp_options()["DhcpOptions"]) == before


def test_dhcp_options_unknown_ids(ec2, layout):
    for call, code in [
        (lambda: ec2.describe_dhcp_options(DhcpOptionsIds=["dopt-0123456789abcdef0"]), "InvalidDhcpOptionID.NotFound"),
        (lambda: ec2.delete_dhcp_options(DhcpOptionsId="dopt-0123456789abcdef0"), "InvalidDhcpOptionID.NotFound"),
        (lambda: ec2.associate_dhcp_options(DhcpOptionsId="dopt-0123456789abcdef0", VpcId=layout["vpc"]),
         "InvalidDhcpOptionID.NotFound"),
        (lambda: ec2.describe_dhcp_options(DhcpOptionsIds=["dopt-nothex"]), "InvalidDhcpOptionsId.Malformed"),
        (lambda: ec2.associate_dhcp_options(DhcpOptionsId="default", VpcId="vpc-0123456789abcdef0"),
         "InvalidVpcID.NotFound"),
    ]:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_code(excinfo) == code
