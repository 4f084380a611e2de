"""VPC data plane end to end: real guests on nimbus's network, driven through boto3.

One VPC holds A and B in a public subnet and C in a private one; the host reaches A and B
by their public IPs over SSH, and C through A (ssh with a ProxyCommand). Guests run busybox
`httpd` servers whose pages name the instance, and probe each other with `curl` (busybox
1.35's `wget -T` crashes). Every check asserts what a user would see; nothing depends on
timing beyond waiting for a state.

Needs root (the network is real), the default image (built into IMAGE_CACHE) and the VPC
API. A second VPC with the same CIDR checks isolation; kill -9 of nimbus checks that
traffic survives; terminating and deleting checks that nothing is left behind.
"""

import http.server
import os
import subprocess
import threading

import pytest

from test_host_guard import PORT, attached_namespace
from test_instances import cloud, wait_console  # noqa: F401 (cloud is a fixture)
from test_volumes import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the data plane needs root"),
]

# Pages on ports 80, 8005, 8011 and 8020 that name the instance; the console says when
# they are up.
USER_DATA = """#!/bin/sh
ID=$(wget -q -O - http://169.254.169.254/latest/meta-data/instance-id)
for port in 80 8005 8011 8020; do
  mkdir -p /www/$port && echo "page-of-$ID" > /www/$port/index.html
  busybox httpd -p $port -h /www/$port
done
echo "NIMBUS-NET-READY $ID" > /dev/console
"""

SSH_OPTIONS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=10", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]


def tcp(port, **peer):
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **peer}


def cidr(block):
    return {"IpRanges": [{"CidrIp": block}]}


def group(group_id):
    return {"UserIdGroupPairs": [{"GroupId": group_id}]}


class Guest:
    """An instance reached over SSH, by its public IP or through another guest."""

    def __init__(self, ec2, instance_id, key_path, jump=None):
        self.ec2, self.id, self.key_path, self.jump = ec2, instance_id, key_path, jump
        self.refresh()

    def refresh(self):
        """Reads the addresses again: an elastic IP coming and going changes the public one."""
        described = self.ec2.describe_instances(InstanceIds=[self.id])["Reservations"][0]["Instances"][0]
        self.private_ip = described["PrivateIpAddress"]
        self.public_ip = described.get("PublicIpAddress")

    def ssh_args(self, command):
        args = ["ssh", "-i", self.key_path, *SSH_OPTIONS]
        if self.jump:
            # Not `-J`: options given on the command line do not reach the jump host's ssh.
            hop = " ".join(["ssh", "-i", self.key_path, *SSH_OPTIONS, "-W", "%h:%p", f"root@{self.jump.public_ip}"])
            args += ["-o", f"ProxyCommand={hop}"]
        target = self.public_ip if self.jump is None else self.private_ip
        return args + [f"root@{target}", command]

    def run(self, command, timeout=60):
        return subprocess.run(self.ssh_args(command), capture_output=True, text=True, timeout=timeout)

    def start(self, command):
        """A command left running in the guest, its output read by the host as it comes."""
        # stdin stays open: busybox nc ends its connection when its input ends.
        return subprocess.Popen(self.ssh_args(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

    def fetch(self, address, port=80):
        """The page at address:port as this guest sees it, or None."""
        result = self.run(f"curl -s -m 3 http://{address}:{port}/")
        return result.stdout.strip() if result.returncode == 0 else None

    def reaches(self, other, port):
        return self.fetch(other.private_ip, port) == f"page-of-{other.id}"


def host_fetch(address, port=80):
    result = subprocess.run(["curl", "-s", "-m", "3", f"http://{address}:{port}/"], capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def host_address():
    """The host's address that guests reach it by (its source towards the outside)."""
    route = subprocess.run(["ip", "-o", "route", "get", "192.0.2.1"], capture_output=True, text=True).stdout.split()
    return route[route.index("src") + 1]


@pytest.fixture(scope="module")
def net(cloud, tmp_path_factory):
    """The VPC of the tests and its three guests."""
    ec2 = cloud.client()
    key_path = str(tmp_path_factory.mktemp("keys") / "net.pem")
    with open(key_path, "w") as f:
        f.write(ec2.create_key_pair(KeyName="net", KeyType="ed25519")["KeyMaterial"])
    os.chmod(key_path, 0o600)
    ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]["ImageId"]

    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24")["Subnet"]["SubnetId"]
    routes = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=routes, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=routes, SubnetId=public)

    # ssh: the host to every guest (A is C's jump host); client: A; web: B and C.
    ssh = ec2.create_security_group(GroupName="ssh", Description="ssh", VpcId=vpc)["GroupId"]
    client = ec2.create_security_group(GroupName="client", Description="client", VpcId=vpc)["GroupId"]
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=ssh, IpPermissions=[tcp(22, **cidr("0.0.0.0/0"))])
    ec2.authorize_security_group_ingress(GroupId=web, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8010, **group(client)}, tcp(8020, **group(client))])

    def launch(subnet, groups, public_ip):
        return ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1, KeyName="net",
                                 UserData=USER_DATA, NetworkInterfaces=[{
                                     "DeviceIndex": 0, "SubnetId": subnet, "Groups": groups,
                                     "AssociatePublicIpAddress": public_ip}])["Instances"][0]["InstanceId"]
    ids = [launch(public, [ssh, client], True), launch(public, [ssh, web], True), launch(private, [ssh, web], False)]
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    for instance_id in ids:
        wait_console(ec2, instance_id, "NIMBUS-NET-READY")
    a = Guest(ec2, ids[0], key_path)
    b = Guest(ec2, ids[1], key_path)
    c = Guest(ec2, ids[2], key_path, jump=a)
    for guest in (a, b, c):
        assert wait_for(lambda: guest.run("true").returncode == 0, timeout=120, interval=2), guest.id
    yield {"ec2": ec2, "vpc": vpc, "igw": igw, "public": public, "private": private, "routes": routes,
           "ssh": ssh, "client": client, "web": web, "a": a, "b": b, "c": c, "ami": ami, "key_path": key_path,
           "cloud": cloud}


def test_dhcp_and_dns_names(net):
    a, b = net["a"], net["b"]
    assert f"inet {a.private_ip}/24" in a.run("ip -4 addr show eth0").stdout
    name = "ip-" + b.private_ip.replace(".", "-") + ".ec2.internal"
    assert b.private_ip in a.run(f"nslookup {name}").stdout


def test_flow_matrix(net):
    ec2, a, b, c = net["ec2"], net["a"], net["b"], net["c"]
    # By group reference and port range, within a subnet and across; the replies (to
    # ephemeral ports no rule opens) pass because groups are stateful.
    assert a.reaches(b, 8005)
    assert a.reaches(c, 8005)
    # Outside the range, or from a non-member: denied by default.
    assert not a.reaches(b, 8011)
    assert not c.reaches(b, 8005)
    assert host_fetch(b.public_ip, 8005) is None
    # By CIDR.
    ec2.authorize_security_group_ingress(GroupId=net["web"], IpPermissions=[tcp(8011, **cidr(f"{a.private_ip}/32"))])
    assert a.reaches(b, 8011)
    assert not c.reaches(b, 8011)
    ec2.revoke_security_group_ingress(GroupId=net["web"], IpPermissions=[tcp(8011, **cidr(f"{a.private_ip}/32"))])
    assert not a.reaches(b, 8011)


def test_egress_removal_and_nacl_deny(net):
    ec2, a, b, c = net["ec2"], net["a"], net["b"], net["c"]
    everything = [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    # A's egress is the union of its groups' (ssh and client): both lose their allow-all.
    # SSH into A still works: its replies belong to an allowed inbound flow.
    a_groups = (net["ssh"], net["client"])
    for group_id in a_groups:
        ec2.revoke_security_group_egress(GroupId=group_id, IpPermissions=everything)
    try:
        assert not a.reaches(b, 8005)
    finally:
        for group_id in a_groups:
            ec2.authorize_security_group_egress(GroupId=group_id, IpPermissions=everything)
    assert a.reaches(b, 8005)

    # A NACL deny rule wins over a group allow, at the subnet boundary only.
    acl = ec2.create_network_acl(VpcId=net["vpc"])["NetworkAcl"]["NetworkAclId"]
    for egress in (False, True):
        ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=100, Protocol="-1", RuleAction="allow",
                                     Egress=egress, CidrBlock="0.0.0.0/0")
    ec2.create_network_acl_entry(NetworkAclId=acl, RuleNumber=50, Protocol="6", RuleAction="deny", Egress=False,
                                 CidrBlock="10.20.1.0/24", PortRange={"From": 8005, "To": 8005})
    acls = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [net["private"]]}])
    association = next(x["NetworkAclAssociationId"] for x in acls["NetworkAcls"][0]["Associations"]
                       if x["SubnetId"] == net["private"])
    original = acls["NetworkAcls"][0]["NetworkAclId"]
    new_association = ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)["NewAssociationId"]
    try:
        assert not a.reaches(c, 8005)
        assert a.reaches(c, 8020)
        assert a.reaches(b, 8005)
    finally:
        ec2.replace_network_acl_association(AssociationId=new_association, NetworkAclId=original)
    assert a.reaches(c, 8005)
    ec2.delete_network_acl(NetworkAclId=acl)


def test_live_revoke_keeps_an_established_flow_through_unrelated_changes(net):
    ec2, a, b = net["ec2"], net["a"], net["b"]
    # A long upload from A to B on 8009 (the web group's 8000-8010 from client), each end
    # held by an SSH session of the host, which counts the lines B receives.
    receiver = b.start("nc -l -p 8009")
    received = []
    threading.Thread(target=lambda: received.extend(receiver.stdout), daemon=True).start()
    assert wait_for(lambda: ":8009 " in b.run("netstat -ltn").stdout, timeout=60, interval=1)
    sender = a.start(f"for i in $(seq 1 600); do echo tick-$i; sleep 1; done | nc {b.private_ip} 8009")
    ticks = lambda: len(received)
    flowing = lambda: (lambda seen: wait_for(lambda: ticks() > seen + 2, timeout=60, interval=1))(ticks())
    unrelated = [tcp(9999, **cidr("10.99.0.0/16"))]
    port_8020 = [tcp(8020, **group(net["client"]))]
    try:
        assert flowing()
        # An unrelated change re-applies the whole ruleset: the flow goes on.
        ec2.authorize_security_group_ingress(GroupId=net["web"], IpPermissions=unrelated)
        assert flowing()
        ec2.revoke_security_group_ingress(GroupId=net["web"], IpPermissions=unrelated)
        # A revoke stops new connections at once; the flow on another port goes on.
        assert a.reaches(b, 8020)
        ec2.revoke_security_group_ingress(GroupId=net["web"], IpPermissions=port_8020)
        try:
            assert not a.reaches(b, 8020)
            assert flowing()
        finally:
            ec2.authorize_security_group_ingress(GroupId=net["web"], IpPermissions=port_8020)
    finally:
        sender.kill()
        receiver.kill()


def test_spoofed_source_is_dropped(net):
    a, b = net["a"], net["b"]
    assert a.run(f"echo hi | nc -w 3 {b.private_ip} 8005").returncode == 0
    a.run("ip addr add 10.20.1.250/24 dev eth0")
    try:
        assert a.run(f"echo hi | nc -w 3 -s 10.20.1.250 {b.private_ip} 8005").returncode != 0
    finally:
        a.run("ip addr del 10.20.1.250/24 dev eth0")


def test_metadata_answers_for_the_asking_guest_only(net):
    a, b = net["a"], net["b"]
    url = "http://169.254.169.254/latest/meta-data/instance-id"
    assert a.run(f"wget -q -O - {url}").stdout.strip() == a.id
    assert b.run(f"wget -q -O - {url}").stdout.strip() == b.id
    # The IMDSv2 snippet from AWS's documentation, verbatim, with curl.
    snippet = ('TOKEN=$(curl -s -X PUT "http://169.254.169.254/latest/api/token" '
               '-H "X-aws-ec2-metadata-token-ttl-seconds: 21600") && '
               f'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" {url}')
    assert b.run(snippet).stdout.strip() == b.id
    # A's token is no good on B.
    token = a.run('curl -s -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60"').stdout.strip()
    answer = b.run(f'curl -s -o /dev/null -w "%{{http_code}}" -H "X-aws-ec2-metadata-token: {token}" {url}').stdout
    assert answer == "401"


def test_from_the_host_public_ip_follows_port_80_and_elastic_ips_move(net):
    ec2, a, b = net["ec2"], net["a"], net["b"]
    assert host_fetch(b.public_ip) is None
    ec2.authorize_security_group_ingress(GroupId=net["web"], IpPermissions=[tcp(80, **cidr("0.0.0.0/0"))])
    assert host_fetch(b.public_ip) == f"page-of-{b.id}"
    ec2.revoke_security_group_ingress(GroupId=net["web"], IpPermissions=[tcp(80, **cidr("0.0.0.0/0"))])
    assert host_fetch(b.public_ip) is None

    ec2.authorize_security_group_ingress(GroupId=net["ssh"], IpPermissions=[tcp(80, **cidr("0.0.0.0/0"))])
    allocation = ec2.allocate_address(Domain="vpc")
    try:
        # A, then B, then A again: each time the elastic IP answers for its holder, and every
        # other public address of the VPC keeps answering.
        for holder in (a, b, a):
            ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=holder.id,
                                  AllowReassociation=True)
            assert wait_for(lambda: host_fetch(allocation["PublicIp"]) == f"page-of-{holder.id}",
                            timeout=30, interval=1)
            for guest in (a, b):
                guest.refresh()
                assert host_fetch(guest.public_ip) == f"page-of-{guest.id}", guest.id
    finally:
        ec2.disassociate_address(AssociationId=ec2.describe_addresses(
            AllocationIds=[allocation["AllocationId"]])["Addresses"][0]["AssociationId"])
        ec2.release_address(AllocationId=allocation["AllocationId"])
        ec2.revoke_security_group_ingress(GroupId=net["ssh"], IpPermissions=[tcp(80, **cidr("0.0.0.0/0"))])
    # Both were launched with public IPs: each has a new one since the elastic IP left it.
    for guest in (a, b):
        guest.refresh()
        assert guest.public_ip and guest.public_ip != allocation["PublicIp"]
        assert guest.run("true").returncode == 0


def test_an_elastic_ip_replaces_the_only_public_ip_of_its_vpc(net):
    """The VPC's uplink holds one address: replacing it must not drop the namespace's routes."""
    ec2 = net["ec2"]
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    routes = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=routes, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    group_id = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                     {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[tcp(80, **cidr("0.0.0.0/0"))])
    instance_id = ec2.run_instances(ImageId=net["ami"], InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    UserData=USER_DATA, NetworkInterfaces=[{
                                        "DeviceIndex": 0, "SubnetId": subnet, "Groups": [group_id],
                                        "AssociatePublicIpAddress": True}])["Instances"][0]["InstanceId"]
    allocation = ec2.allocate_address(Domain="vpc")
    try:
        wait_console(ec2, instance_id, "NIMBUS-NET-READY")
        launched_ip = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
        assert host_fetch(launched_ip) == f"page-of-{instance_id}"
        association = ec2.associate_address(AllocationId=allocation["AllocationId"], InstanceId=instance_id)
        assert wait_for(lambda: host_fetch(allocation["PublicIp"]) == f"page-of-{instance_id}", timeout=10, interval=0.5)
        # Back to an auto-assigned address when the elastic IP leaves.
        ec2.disassociate_address(AssociationId=association["AssociationId"])
        public_ip = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
        assert public_ip != allocation["PublicIp"]
        assert wait_for(lambda: host_fetch(public_ip) == f"page-of-{instance_id}", timeout=10, interval=0.5)
    finally:
        held = ec2.describe_addresses(AllocationIds=[allocation["AllocationId"]])["Addresses"][0]
        if "AssociationId" in held:
            ec2.disassociate_address(AssociationId=held["AssociationId"])
        ec2.release_address(AllocationId=allocation["AllocationId"])
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        ec2.delete_subnet(SubnetId=subnet)
        ec2.detach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        ec2.delete_internet_gateway(InternetGatewayId=igw)
        ec2.delete_vpc(VpcId=vpc)


def test_public_subnet_reaches_the_outside_not_the_host_and_a_private_subnet_has_no_way_out(net):
    a, c = net["a"], net["c"]

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host-page")

        def log_message(self, *args):
            pass
    server = http.server.HTTPServer(("0.0.0.0", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The outside: a server beyond a gateway of the host (docs/security.md).
    outside = "203.0.113.88"
    with attached_namespace("net-out", "netout0", "198.51.100.81/30", "198.51.100.82/30", beyond=outside, http=True):
        try:
            port = server.server_address[1]
            assert a.fetch(outside, PORT) == "PONG-net-out"
            assert c.fetch(outside, PORT) is None
            # The host itself guards its services from guests.
            assert host_fetch("127.0.0.1", port) == "host-page"
            assert a.fetch(host_address(), port) is None
        finally:
            server.shutdown()


def test_two_vpcs_with_the_same_cidr_are_isolated(net):
    ec2, a = net["ec2"], net["a"]
    other = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=other, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    group_id = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [other]},
                                                     {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    instance_id = ec2.run_instances(ImageId=net["ami"], InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                    SubnetId=subnet, PrivateIpAddress=net["b"].private_ip,
                                    UserData=USER_DATA)["Instances"][0]["InstanceId"]
    try:
        wait_console(ec2, instance_id, "NIMBUS-NET-READY")
        # The same address in A's VPC is B, never the other VPC's twin.
        assert a.fetch(net["b"].private_ip, 8005) == f"page-of-{net['b'].id}"
    finally:
        ec2.terminate_instances(InstanceIds=[instance_id])
        ec2.get_waiter("instance_terminated").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 1, "MaxAttempts": 300})
        ec2.delete_subnet(SubnetId=subnet)
        ec2.delete_vpc(VpcId=other)
    assert not os.path.exists(f"/run/netns/nimbus-{other}")


def test_kill9_keeps_traffic_and_terminate_leaves_nothing(net):
    ec2, a, b, c = net["ec2"], net["a"], net["b"], net["c"]
    cloud = net["cloud"]
    cloud.kill9()
    # Nimbus is down: the guests' traffic does not depend on it.
    assert a.reaches(b, 8005)
    cloud.start()
    ec2 = cloud.client()
    assert a.reaches(b, 8005)
    assert a.reaches(c, 8005)

    vpc = net["vpc"]
    namespace = f"nimbus-{vpc}"
    ids = [a.id, b.id, c.id]
    ec2.terminate_instances(InstanceIds=ids)
    ec2.get_waiter("instance_terminated").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    links = subprocess.run(["ip", "-n", namespace, "-o", "link", "show"], capture_output=True, text=True).stdout
    assert not [line for line in links.splitlines() if ": t" in line], links

    for subnet in (net["public"], net["private"]):
        ec2.delete_subnet(SubnetId=subnet)
    ec2.delete_route_table(RouteTableId=net["routes"])
    ec2.detach_internet_gateway(InternetGatewayId=net["igw"], VpcId=vpc)
    ec2.delete_internet_gateway(InternetGatewayId=net["igw"])
    # web's rules name client: web goes first (EC2 refuses to delete a referenced group).
    for group_id in (net["web"], net["client"], net["ssh"]):
        ec2.delete_security_group(GroupId=group_id)
    ec2.delete_vpc(VpcId=vpc)
    assert wait_for(lambda: not os.path.exists(f"/run/netns/{namespace}"), timeout=30, interval=1)
    dnsmasq = subprocess.run(["pgrep", "-f", f"dnsmasq.*{vpc}"], capture_output=True, text=True).stdout
    assert dnsmasq.strip() == ""
    veth = subprocess.run(["ip", "link", "show", "nv" + vpc.split("-")[1][:13]], capture_output=True)
    assert veth.returncode != 0
