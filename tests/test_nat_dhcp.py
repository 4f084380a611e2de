"""NAT gateways and DHCP options sets on real guests, through boto3.

One VPC: a bastion in a public subnet (reached by SSH on its public IP) and a private
instance in a private subnet (reached through the bastion). The test makes a network
namespace standing for the internet, routed from the host (198.51.100.0/30, which the
server's `public_ip_routed_networks` names, so the host does not masquerade what goes
there), with a web server answering each client its source address. The private instance
reaches it only through a NAT gateway, as the gateway's elastic IP, and nothing reaches the
instance through the gateway. A DHCP options set reaches the bastion's resolv.conf when its
DHCP client renews. Two guests for the module: they run under TCG on shared cores.

Needs root (the network is real) and the default image (built into IMAGE_CACHE).
"""

import os
import random
import subprocess

import pytest
from botocore.exceptions import ClientError

from test_foundation import error_code
from test_instances import running_cloud, wait_console
from test_nat_dhcp_api import public_and_private_subnets
from test_network import Guest, cidr, tcp
from test_volumes import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the data plane needs root"),
]

OUTSIDE = "nattest-out"
OUTSIDE_NET = "198.51.100.0/30"
SERVER = "198.51.100.2"
WAIT = {"Delay": 1, "MaxAttempts": 120}

# Answers every request with the address it came from, and says each on its output.
ECHO_SERVER = """
import http.server, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        source = self.client_address[0].encode()
        print(source.decode(), flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(source)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), Echo).serve_forever()
"""

USER_DATA = """#!/bin/sh
mkdir -p /www && echo "private-page" > /www/index.html
busybox httpd -p 80 -h /www
echo "NIMBUS-NAT-READY" > /dev/console
"""


def sh(command):
    return subprocess.run(command, shell=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def outside():
    """The namespace standing for the internet and its echo server; yields what the server
    saw, read as it comes."""
    sh(f"ip netns del {OUTSIDE}; ip link del ntout0")
    setup = sh(f"ip netns add {OUTSIDE} && ip -n {OUTSIDE} link set lo up && "
               f"ip link add ntout0 type veth peer name eth0 netns {OUTSIDE} && "
               f"ip address add 198.51.100.1/30 dev ntout0 && ip link set ntout0 up && "
               f"ip -n {OUTSIDE} address add {SERVER}/30 dev eth0 && ip -n {OUTSIDE} link set eth0 up && "
               f"ip -n {OUTSIDE} route add default via 198.51.100.1")
    assert setup.returncode == 0, setup.stderr
    server = subprocess.Popen(["ip", "netns", "exec", OUTSIDE, "python3", "-u", "-c", ECHO_SERVER],
                              stdout=subprocess.PIPE, text=True)
    assert wait_for(lambda: sh(f"ip netns exec {OUTSIDE} ss -ltnH 'sport = :8080'").stdout.strip(), timeout=30)
    yield server
    server.kill()
    server.wait()
    sh(f"ip netns del {OUTSIDE}; ip link del ntout0")


@pytest.fixture(scope="module")
def vpc(outside, tmp_path_factory):
    """The bastion and the private instance, on a nimbus whose public pool is routed back."""
    # Outside 198.19.0.0/16, which a nimbus with the default pool on this host masquerades.
    config = (f'public_ip_pool = "198.18.{random.randrange(256)}.0/24"\n'
              f'public_ip_routed_networks = ["{OUTSIDE_NET}"]\n'
              # The outside is attached to the host here, which the host guard refuses
              # guests unless the operator allows it.
              f'[network]\nreachable_from_guests = ["{OUTSIDE_NET}"]\n')
    with running_cloud(config) as cloud:
        ec2 = cloud.client()
        key_path = str(tmp_path_factory.mktemp("keys") / "nat.pem")
        with open(key_path, "w") as f:
            f.write(ec2.create_key_pair(KeyName="nat", KeyType="ed25519")["KeyMaterial"])
        os.chmod(key_path, 0o600)
        ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])[
            "Images"][0]["ImageId"]
        layout = public_and_private_subnets(ec2, "10.70")
        vpc_id, public, private = layout["vpc"], layout["public"], layout["private"]
        # Open to everyone on 22 and 80: whatever fails to come in, the groups did not stop.
        group = ec2.create_security_group(GroupName="open", Description="ssh and web", VpcId=vpc_id)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            tcp(22, **cidr("0.0.0.0/0")), tcp(80, **cidr("0.0.0.0/0"))])

        def launch(subnet, public_ip):
            return ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1, KeyName="nat",
                                     UserData=USER_DATA, NetworkInterfaces=[{
                                         "DeviceIndex": 0, "SubnetId": subnet, "Groups": [group],
                                         "AssociatePublicIpAddress": public_ip}])["Instances"][0]["InstanceId"]
        ids = [launch(public, True), launch(private, False)]
        ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        for instance_id in ids:
            wait_console(ec2, instance_id, "NIMBUS-NAT-READY")
        bastion = Guest(ec2, ids[0], key_path)
        inside = Guest(ec2, ids[1], key_path, jump=bastion)
        for guest in (bastion, inside):
            assert wait_for(lambda: guest.run("true").returncode == 0, timeout=120, interval=2), guest.id
        yield {"ec2": ec2, "vpc": vpc_id, "public": public, "private_routes": layout["private_routes"],
               "bastion": bastion, "inside": inside}


def test_a_private_subnet_reaches_the_outside_only_through_a_nat_gateway(vpc, outside):
    ec2, inside = vpc["ec2"], vpc["inside"]
    assert inside.fetch(SERVER, 8080) is None, "no route out yet"

    eip = ec2.allocate_address(Domain="vpc")
    nat_id = ec2.create_nat_gateway(SubnetId=vpc["public"], AllocationId=eip["AllocationId"])[
        "NatGateway"]["NatGatewayId"]
    ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat_id], WaiterConfig=WAIT)
    assert inside.fetch(SERVER, 8080) is None, "a gateway no route names carries nothing"
    ec2.create_route(RouteTableId=vpc["private_routes"], DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat_id)

    # Out: the server sees the gateway's elastic IP, not the instance or the host.
    assert inside.fetch(SERVER, 8080) == eip["PublicIp"]
    assert outside.stdout.readline().strip() == eip["PublicIp"]

    # In: nothing reaches the instance through the gateway, though its group is open.
    for port in (80, 22):
        attempt = sh(f"ip netns exec {OUTSIDE} curl -s -m 3 http://{eip['PublicIp']}:{port}/")
        assert attempt.returncode != 0, (port, attempt.stdout)
    assert sh(f"curl -s -m 3 http://{eip['PublicIp']}/").returncode != 0, "from the host"

    # Deleted: the route is a blackhole and the way out is gone with it.
    with pytest.raises(ClientError) as excinfo:
        ec2.release_address(AllocationId=eip["AllocationId"])
    assert error_code(excinfo) == "InvalidIPAddress.InUse"
    ec2.delete_nat_gateway(NatGatewayId=nat_id)
    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat_id], WaiterConfig=WAIT)
    routes = ec2.describe_route_tables(RouteTableIds=[vpc["private_routes"]])["RouteTables"][0]["Routes"]
    assert next(r for r in routes if r["DestinationCidrBlock"] == "0.0.0.0/0")["State"] == "blackhole"
    assert inside.fetch(SERVER, 8080) is None
    ec2.delete_route(RouteTableId=vpc["private_routes"], DestinationCidrBlock="0.0.0.0/0")
    ec2.release_address(AllocationId=eip["AllocationId"])


def resolv_conf(guest):
    return guest.run("cat /etc/resolv.conf").stdout


def renews_to(guest, expected):
    """Whether /etc/resolv.conf reads `expected` once the guest's DHCP client renews its lease
    (as it does at half the lease; SIGUSR1 asks it now)."""
    def renewed():
        guest.run("kill -USR1 $(pidof udhcpc)")
        return resolv_conf(guest) == expected
    return wait_for(renewed, timeout=60, interval=2)


def test_a_dhcp_options_set_reaches_a_running_guest_at_its_next_renewal(vpc):
    ec2, bastion = vpc["ec2"], vpc["bastion"]
    region_default = ec2.describe_vpcs(VpcIds=[vpc["vpc"]])["Vpcs"][0]["DhcpOptionsId"]
    assert resolv_conf(bastion) == "search ec2.internal\nnameserver 10.70.0.2\n"
    hostname = bastion.run("hostname").stdout.strip()

    custom = ec2.create_dhcp_options(DhcpConfigurations=[
        {"Key": "domain-name", "Values": ["corp.nimbus.test"]},
        {"Key": "domain-name-servers", "Values": ["10.70.0.53", "AmazonProvidedDNS"]},
        {"Key": "ntp-servers", "Values": ["10.70.0.123"]},
    ])["DhcpOptions"]["DhcpOptionsId"]
    ec2.associate_dhcp_options(DhcpOptionsId=custom, VpcId=vpc["vpc"])
    assert renews_to(bastion, "search corp.nimbus.test\nnameserver 10.70.0.53\nnameserver 10.70.0.2\n")
    # The renewal kept the address, the host name and the SSH session's way in.
    assert bastion.run("hostname").stdout.strip() == hostname
    assert f"inet {bastion.private_ip}/24" in bastion.run("ip -4 addr show eth0").stdout

    # `default`: no options at all, as AWS's no-options set.
    ec2.associate_dhcp_options(DhcpOptionsId="default", VpcId=vpc["vpc"])
    assert renews_to(bastion, "")
    ec2.delete_dhcp_options(DhcpOptionsId=custom)
    ec2.associate_dhcp_options(DhcpOptionsId=region_default, VpcId=vpc["vpc"])
    assert renews_to(bastion, "search ec2.internal\nnameserver 10.70.0.2\n")
