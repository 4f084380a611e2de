"""Guests reach only what they should, and two nimbus servers share a host (issue 20, items 3
and 7).

Two servers with their own data dirs; A has a guest in its default VPC (GA) and one in a VPC
of its own (NA), B one in its default VPC (GB), each on a public IP and answering `PONG-<name>`
on TCP 7000. The test makes, on the host: an address of the host's own (10.254.77.1 on a veth
of the host, where it listens, and where B's API listens too), a private LAN in a namespace
(10.254.78.2), and an "outside" namespace attached by a public /30 (198.51.100.78) with a
server beyond it (203.0.113.77, routed by the host via the /30). GA and GB then try each
target, told by a tag, and print what answered on their consoles.

Needs root (the network is real) and the default image (built into IMAGE_CACHE).
"""

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import threading

import pytest

from test_instances import cloud, image_server, stop_leaving_no_vm, wait_console  # noqa: F401
from test_volumes import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the data plane needs root"),
]

PORT = 7000
HOST_IP = "10.254.77.1"
LAN_IP = "10.254.78.2"
ATTACHED_IP = "198.51.100.78"
OUTSIDE_IP = "203.0.113.77"

# Answers PONG-<name> on TCP 7000; tries the targets of its `targets` tag ("phase name=ip:port
# ...") once per phase, printing `open:<first line>` or `closed` for each.
GUEST = r"""#!/bin/bash
NAME=$(curl -s http://169.254.169.254/latest/meta-data/tags/instance/Name)
while true; do echo "PONG-$NAME" | busybox nc -l -p 7000; done &
echo "GUARD-READY $NAME" > /dev/console
done_phase=
while true; do
  targets=$(curl -s -f http://169.254.169.254/latest/meta-data/tags/instance/targets)
  phase=${targets%% *}
  if [ -n "$targets" ] && [ "$phase" != "$done_phase" ]; then
    line="PROBE $phase"
    for target in ${targets#* }; do
      name=${target%%=*}; address=${target#*=}
      got=$(timeout 8 bash -c "exec 3<>/dev/tcp/${address%:*}/${address#*:} && echo -n open: && read -t 5 reply <&3; echo \$reply" 2>/dev/null)
      line="$line $name=[${got:-closed}]"
    done
    echo "$line END" > /dev/console
    done_phase=$phase
  fi
  sleep 2
done
"""


def sh(script):
    subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True)


def serve_pong(name, namespace=None, address="0.0.0.0", http=False):
    """A listener on PORT answering PONG-<name> (as an HTTP page with `http`): a thread on
    the host, a process in a namespace."""
    reply = (b"HTTP/1.0 200 OK\r\n\r\n" if http else b"") + f"PONG-{name}\n".encode()
    if namespace:
        code = ("import socket\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('{address}', {PORT})); s.listen()\n"
                f"while True:\n    c, _ = s.accept(); c.sendall({reply!r}); c.close()\n")
        return subprocess.Popen(["ip", "netns", "exec", namespace, "python3", "-c", code])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, PORT))
    listener.listen()

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.sendall(reply)
            connection.close()
    threading.Thread(target=serve, daemon=True).start()
    return listener


@contextlib.contextmanager
def attached_namespace(ns, dev, host_cidr, cidr, beyond=None, http=False):
    """A namespace attached to the host by a veth pair (`dev` on the host, with `host_cidr`;
    `eth0` in it, with `cidr`), answering PONG-<ns> on PORT: a network attached to the host
    or, with `beyond` on its loopback routed by the host through it, the outside."""
    address = cidr.split("/")[0]
    try:
        sh(f"ip netns add {ns} && ip -n {ns} link set lo up"
           f" && ip link add {dev} type veth peer name eth0 netns {ns}"
           f" && ip address add {host_cidr} dev {dev} && ip link set {dev} up"
           f" && ip -n {ns} address add {cidr} dev eth0 && ip -n {ns} link set eth0 up"
           f" && ip -n {ns} route add default via {host_cidr.split('/')[0]}")
        if beyond:
            sh(f"ip -n {ns} address add {beyond}/32 dev lo && ip route replace {beyond}/32 via {address}")
        listener = serve_pong(ns, ns, http=http)
        yield
        listener.kill()
    finally:
        subprocess.run(["sh", "-c", f"ip netns pids {ns} | xargs -r kill; ip netns del {ns}"], capture_output=True)
        if beyond:
            subprocess.run(["ip", "route", "del", f"{beyond}/32"], capture_output=True)


@pytest.fixture(scope="module")
def host_networks():
    """The host's own address, a private LAN and the outside, as the docstring says."""
    with contextlib.ExitStack() as stack:
        sh(f"ip link add hgself type veth peer name hgself1 && ip address add {HOST_IP}/32 dev hgself"
           " && ip link set hgself up")
        stack.callback(subprocess.run, ["ip", "link", "del", "hgself"], capture_output=True)
        stack.callback(serve_pong("host", address=HOST_IP).close)
        stack.enter_context(attached_namespace("hg-lan", "hglan0", "10.254.78.1/24", f"{LAN_IP}/24"))
        stack.enter_context(attached_namespace("hg-out", "hgout0", "198.51.100.77/30", f"{ATTACHED_IP}/30",
                                               beyond=OUTSIDE_IP))
        yield


def public_vpc(ec2, cidr):
    """A VPC with an internet gateway, one public subnet and its default group open on PORT."""
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc)
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
    ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    return vpc, subnet


def open_default_group(ec2, vpc):
    group = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                                  {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])


def launch(ec2, name, subnet=None):
    ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]
    network = {"DeviceIndex": 0, "AssociatePublicIpAddress": True}
    if subnet:
        network["SubnetId"] = subnet
    return ec2.run_instances(ImageId=ami["ImageId"], InstanceType="t3.nano", MinCount=1, MaxCount=1,
                             UserData=GUEST, NetworkInterfaces=[network],
                             MetadataOptions={"InstanceMetadataTags": "enabled"},
                             TagSpecifications=[{"ResourceType": "instance",
                                                 "Tags": [{"Key": "Name", "Value": name}]}])["Instances"][0]["InstanceId"]


@pytest.fixture(scope="module")
def servers(cloud, host_networks):  # noqa: F811
    """A (the module's cloud) and B (listening on every address), with their guests."""
    with tempfile.TemporaryDirectory(prefix="nimbus-vm-test-") as data_dir:
        other = image_server(data_dir, listen_host="0.0.0.0", extra_args=["--allow-default-credentials"])
        try:
            ec2_a, ec2_b = cloud.client(), other.client()
            for ec2 in (ec2_a, ec2_b):
                open_default_group(ec2, ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])
                                   ["Vpcs"][0]["VpcId"])
            vpc, subnet = public_vpc(ec2_a, "10.77.0.0/24")
            open_default_group(ec2_a, vpc)
            guests = {"ga": (ec2_a, launch(ec2_a, "ga")), "na": (ec2_a, launch(ec2_a, "na", subnet)),
                      "gb": (ec2_b, launch(ec2_b, "gb"))}
            public = {}
            for name, (ec2, instance) in guests.items():
                ec2.get_waiter("instance_running").wait(InstanceIds=[instance],
                                                        WaiterConfig={"Delay": 1, "MaxAttempts": 300})
                public[name] = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0][
                    "PublicIpAddress"]
            for name, (ec2, instance) in guests.items():
                wait_console(ec2, instance, f"GUARD-READY {name}", timeout=600)
            yield {"a": cloud, "b": other, "guests": guests, "public": public, "vpc": vpc}
        finally:
            stop_leaving_no_vm(other)


def probe(guest, phase, targets):
    """Has the guest try each target once; what answered each, by name."""
    ec2, instance = guest
    tag = " ".join([phase] + [f"{name}={address}" for name, address in targets.items()])
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "targets", "Value": tag}])
    line = wait_console(ec2, instance, rf"PROBE {phase} .* END", timeout=600)
    return dict(re.findall(r"(\w+)=\[(.*?)\]", line.group(0)))


def host_reaches(address):
    try:
        with socket.create_connection((address, PORT), timeout=5) as connection:
            return connection.recv(64).decode().strip()
    except OSError:
        return ""


def host_table_of(server):
    """The server's host table, by its owner marker, and the uplinks it guards."""
    network_dir = os.path.join(server.data_dir, "network")
    for name in os.listdir("/run/nimbus/vpc-owners"):
        path = os.path.join("/run/nimbus/vpc-owners", name)
        if name.startswith("nimbus_host_") and not name.endswith(".pid") and open(path).read() == network_dir:
            listed = subprocess.run(["nft", "list", "set", "inet", name, "uplinks"], capture_output=True, text=True)
            return name, set(re.findall(r'"(nv\w+)"', listed.stdout))
    return None, set()


def test_guests_reach_the_outside_and_their_own_but_not_the_host_or_its_networks(servers):
    public, guests = servers["public"], servers["guests"]
    api = f"{HOST_IP}:{servers['b'].port}"
    seen = probe(guests["ga"], "one", {
        "outside": f"{OUTSIDE_IP}:{PORT}", "na": f"{public['na']}:{PORT}",
        "host": f"{HOST_IP}:{PORT}", "api": api, "lan": f"{LAN_IP}:{PORT}",
        "attached": f"{ATTACHED_IP}:{PORT}", "gb": f"{public['gb']}:{PORT}"})
    print(f"\nGA (server A) reached: {seen}")
    assert seen["outside"] == "open:PONG-hg-out", seen
    assert seen["na"] == "open:PONG-na", seen
    for denied in ("host", "api", "lan", "attached", "gb"):
        assert seen[denied] == "closed", (denied, seen)
    seen = probe(guests["gb"], "one", {"outside": f"{OUTSIDE_IP}:{PORT}", "ga": f"{public['ga']}:{PORT}",
                                       "na": f"{public['na']}:{PORT}", "host": f"{HOST_IP}:{PORT}"})
    print(f"GB (server B) reached: {seen}")
    assert seen == {"outside": "open:PONG-hg-out", "ga": "closed", "na": "closed", "host": "closed"}, seen
    # The host reaches every public IP, of either server.
    assert [host_reaches(public[name]) for name in ("ga", "na", "gb")] == ["PONG-ga", "PONG-na", "PONG-gb"]


def test_two_servers_keep_their_own_host_tables_and_addresses(servers):
    (table_a, uplinks_a), (table_b, uplinks_b) = host_table_of(servers["a"]), host_table_of(servers["b"])
    assert table_a and table_b and table_a != table_b
    assert len(uplinks_a) == 2 and len(uplinks_b) == 1 and not uplinks_a & uplinks_b, (uplinks_a, uplinks_b)
    assert len(set(servers["public"].values())) == 3


def test_a_namespace_or_uplink_removed_from_outside_is_put_back(servers):
    vpc, public = servers["vpc"], servers["public"]["na"]
    ec2 = servers["a"].client()
    # A change to the network wakes the reconciler at once (it also runs every 30 s).
    sh(f"ip link del nv{vpc[4:17]}")
    assert host_reaches(public) == "", "the uplink is gone"
    ec2.create_security_group(GroupName="wake-uplink", Description="wake", VpcId=vpc)
    assert wait_for(lambda: host_reaches(public) == "PONG-na", timeout=120, interval=1)
    # The namespace lives on unnamed (its dnsmasq, its guest's tap are in it): named again.
    sh(f"ip netns del nimbus-{vpc}")
    ec2.create_security_group(GroupName="wake-namespace", Description="wake", VpcId=vpc)
    assert wait_for(lambda: os.path.exists(f"/run/netns/nimbus-{vpc}"), timeout=120, interval=1)
    assert host_reaches(public) == "PONG-na"
    seen = probe(servers["guests"]["ga"], "two", {"na": f"{public}:{PORT}", "host": f"{HOST_IP}:{PORT}"})
    assert seen == {"na": "open:PONG-na", "host": "closed"}, seen
