"""Load balancers that carry real traffic (issue 18), end to end with real guests and boto3.

Two instances in two zones of a new VPC serve pages naming themselves with busybox httpd
(port 80, and port 8080 for the API pages). An internet-facing application load balancer in
front of them, reached from the host by its DNS name, splits traffic between them, routes
`/api/*` to a second target group, answers fixed responses and redirects, splits weighted
forwards, finds a target whose httpd died unhealthy and sends nothing to it, drains a
deregistered target, and keeps answering across a kill -9 of nimbus. A network load balancer
forwards TCP. The instances admit the application balancer only through its security group.
Needs root (the network is real) and the default image."""

import base64
import collections
import os
import subprocess
import time

import pytest

from test_instances import cloud, wait_console  # noqa: F401 (cloud is a fixture)
from test_volumes import wait_for

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the data plane needs root")]

# Pages that name the instance on 80 and 8080 (8080 also under /api/); port 80's httpd
# stops when the instance's tag `serve` says `off` (read from the metadata service).
USER_DATA = """#!/bin/sh
ID=$(wget -q -O - http://169.254.169.254/latest/meta-data/instance-id)
mkdir -p /www/80 /www/8080/api
echo "page-of-$ID" > /www/80/index.html
echo "api-of-$ID" > /www/8080/api/x
echo "other-of-$ID" > /www/8080/index.html
busybox httpd -f -p 80 -h /www/80 &
WEB=$!
busybox httpd -p 8080 -h /www/8080
echo "LB-TARGET-READY $ID" > /dev/console
while sleep 1; do
  if [ "$(wget -q -O - http://169.254.169.254/latest/meta-data/tags/instance/serve)" = off ]; then
    kill $WEB; echo "LB-TARGET-STOPPED $ID" > /dev/console; break
  fi
done &
# When the tag `lookup` names a host, the VPC resolver's answer goes to the console.
while sleep 1; do
  NAME=$(wget -q -O - http://169.254.169.254/latest/meta-data/tags/instance/lookup)
  if [ -n "$NAME" ]; then
    echo "LB-LOOKUP $(busybox nslookup $NAME 10.70.0.2 2>&1 | tr '\n' ' ') END" > /dev/console; break
  fi
done &
"""


def fetch(url, timeout=5):
    """The body at url as the host's curl gets it (status and body), or None."""
    result = subprocess.run(["curl", "-s", "-m", str(timeout), "-w", "\n%{http_code}", url],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body.strip()


@pytest.fixture(scope="module")
def web(cloud):  # noqa: F811
    """The VPC, two serving instances, and an application load balancer in front of them."""
    ec2, elb = cloud.client(), cloud.client("elbv2")
    ami = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": ["nimbus-minimal"]}])["Images"][0]["ImageId"]
    vpc = ec2.create_vpc(CidrBlock="10.70.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    routes = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=routes, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    subnets = []
    for zone, block in (("us-east-1a", "10.70.1.0/24"), ("us-east-1b", "10.70.2.0/24")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=block, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        ec2.associate_route_table(RouteTableId=routes, SubnetId=subnet)
        subnets.append(subnet)
    front = ec2.create_security_group(GroupName="front", Description="front", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=front, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    # The instances admit the balancer's group, and the VPC's addresses on 80 (the network
    # balancer, which has no group, as AWS's documentation advises).
    back = ec2.create_security_group(GroupName="back", Description="back", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=back, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": front}]},
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.70.0.0/16"}]}])
    ids = [ec2.run_instances(ImageId=ami, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                             UserData=USER_DATA, MetadataOptions={"InstanceMetadataTags": "enabled"},
                             NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [back],
                                                 "AssociatePublicIpAddress": True}])["Instances"][0]["InstanceId"]
           for subnet in subnets]
    balancer = elb.create_load_balancer(Name="web", Subnets=subnets, SecurityGroups=[front])["LoadBalancers"][0]
    health = {"HealthCheckIntervalSeconds": 5, "HealthCheckTimeoutSeconds": 2,
              "HealthyThresholdCount": 2, "UnhealthyThresholdCount": 2}
    pages = elb.create_target_group(Name="pages", Protocol="HTTP", Port=80, VpcId=vpc, **health)["TargetGroups"][0]["TargetGroupArn"]
    api = elb.create_target_group(Name="api", Protocol="HTTP", Port=8080, VpcId=vpc, **health)["TargetGroups"][0]["TargetGroupArn"]
    for group in (pages, api):
        elb.modify_target_group_attributes(TargetGroupArn=group, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": "3"}])
        elb.register_targets(TargetGroupArn=group, Targets=[{"Id": i} for i in ids])
    listener = elb.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": pages}])["Listeners"][0]["ListenerArn"]
    rule = lambda priority, path, action: elb.create_rule(  # noqa: E731
        ListenerArn=listener, Priority=priority, Conditions=[{"Field": "path-pattern", "Values": [path]}], Actions=[action])
    rule(10, "/api/*", {"Type": "forward", "TargetGroupArn": api})
    rule(20, "/teapot", {"Type": "fixed-response", "FixedResponseConfig": {
        "StatusCode": "418", "ContentType": "text/plain", "MessageBody": "short and stout"}})
    rule(30, "/old", {"Type": "redirect", "RedirectConfig": {"Path": "/new", "StatusCode": "HTTP_301"}})
    ec2.get_waiter("instance_running").wait(InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    for instance_id in ids:
        wait_console(ec2, instance_id, "LB-TARGET-READY")
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[balancer["LoadBalancerArn"]],
                                                   WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    for group in (pages, api):
        elb.get_waiter("target_in_service").wait(TargetGroupArn=group, WaiterConfig={"Delay": 1, "MaxAttempts": 180})
    yield {"ec2": ec2, "elb": elb, "ids": ids, "vpc": vpc, "back": back, "ami": ami, "subnets": subnets, "pages": pages, "api": api,
           "listener": listener, "balancer": balancer, "url": f"http://{balancer['DNSName']}"}


def bodies(url, count):
    return collections.Counter((fetch(url) or (None, None))[1] for _ in range(count))


def test_the_balancer_spreads_requests_routes_paths_and_answers_itself(web):
    ec2, ids, url = web["ec2"], web["ids"], web["url"]
    assert set(bodies(url + "/", 20)) == {f"page-of-{i}" for i in ids}
    assert set(bodies(url + "/api/x", 20)) == {f"api-of-{i}" for i in ids}
    assert fetch(url + "/teapot") == (418, "short and stout")
    redirect = subprocess.run(["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                               url + "/old?q=1"], capture_output=True, text=True).stdout
    assert redirect.startswith("301 ") and redirect.endswith("/new?q=1"), redirect
    # The instances admit the balancer's group only: their own public IPs do not answer.
    public = ec2.describe_instances(InstanceIds=ids[:1])["Reservations"][0]["Instances"][0]["PublicIpAddress"]
    assert fetch(f"http://{public}/", timeout=3) is None
    # The balancer's interfaces are visible as AWS shows them.
    interfaces = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": [web["vpc"]]}])["NetworkInterfaces"]
    nodes = [i for i in interfaces if i["Description"].startswith("ELB app/web/")]
    assert len(nodes) == 2 and all(i["RequesterManaged"] and i["Status"] == "in-use" for i in nodes)
    # Inside the VPC, its resolver answers the balancer's name with the nodes' addresses.
    ec2.create_tags(Resources=[ids[1]], Tags=[{"Key": "lookup", "Value": web["balancer"]["DNSName"]}])
    answer = wait_console(ec2, ids[1], r"LB-LOOKUP (.*?) END").group(1)
    assert all(i["PrivateIpAddress"] in answer for i in nodes), answer


def test_cloudwatch_counts_the_requests_the_balancer_carried(cloud, web):  # noqa: F811
    cloudwatch = cloud.client("cloudwatch")
    suffix = web["balancer"]["LoadBalancerArn"].split(":loadbalancer/")[1]
    group_suffix = web["pages"].rsplit(":", 1)[1]

    def summed(name, dimensions):
        now = time.time()
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApplicationELB", MetricName=name, Dimensions=dimensions, Statistics=["Sum", "Maximum"],
            StartTime=now - 3600, EndTime=now + 60, Period=3600)["Datapoints"]
        # The hour may straddle two of the hour-long periods.
        if not points:
            return None
        return {"Sum": sum(p["Sum"] for p in points), "Maximum": max(p["Maximum"] for p in points)}

    # Its own requests, counted on top of what came before (a config change starts a new
    # HAProxy, and what the old one counted since the last reading is not published).
    by_balancer = [{"Name": "LoadBalancer", "Value": suffix}]
    before = {name: (summed(name, by_balancer) or {"Sum": 0})["Sum"]
              for name in ("RequestCount", "HTTPCode_Target_2XX_Count")}
    assert bodies(web["url"] + "/", 50)
    for name in before:
        wait_for(lambda: (summed(name, by_balancer) or {"Sum": 0})["Sum"] >= before[name] + 50,
                 timeout=60, interval=2)
    healthy = summed("HealthyHostCount", [{"Name": "TargetGroup", "Value": group_suffix},
                                         {"Name": "LoadBalancer", "Value": suffix}])
    assert healthy and healthy["Maximum"] == 2, healthy


def test_weighted_forward_splits_traffic_by_weight(web):
    elb, url = web["elb"], web["url"]
    elb.modify_listener(ListenerArn=web["listener"], DefaultActions=[{"Type": "forward", "ForwardConfig": {
        "TargetGroups": [{"TargetGroupArn": web["pages"], "Weight": 3}, {"TargetGroupArn": web["api"], "Weight": 1}]}}])
    try:
        # The new config is served once a request reaches the second group.
        wait_for(lambda: any(b.startswith("other-of-") for b in bodies(url + "/", 5)), timeout=30)
        counts = bodies(url + "/", 1000)
        pages = sum(n for b, n in counts.items() if b and b.startswith("page-of-"))
        others = sum(n for b, n in counts.items() if b and b.startswith("other-of-"))
        assert pages + others == 1000, counts
        assert abs(pages / 1000 - 0.75) <= 0.075, counts
    finally:
        elb.modify_listener(ListenerArn=web["listener"],
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": web["pages"]}])


def state_of(elb, group, instance_id):
    described = elb.describe_target_health(TargetGroupArn=group, Targets=[{"Id": instance_id}])
    return described["TargetHealthDescriptions"][0]["TargetHealth"]


def test_a_target_whose_server_dies_is_unhealthy_and_gets_no_traffic(web):
    ec2, elb, ids, url = web["ec2"], web["elb"], web["ids"], web["url"]
    dead, alive = ids
    ec2.create_tags(Resources=[dead], Tags=[{"Key": "serve", "Value": "off"}])
    wait_console(ec2, dead, "LB-TARGET-STOPPED")
    health = wait_for(lambda: (lambda h: h if h["State"] == "unhealthy" else None)(state_of(elb, web["pages"], dead)),
                      timeout=60, interval=1)
    assert health["Reason"] == "Target.FailedHealthChecks", health
    assert state_of(elb, web["pages"], alive)["State"] == "healthy"
    # After detection every request is served, by the other target.
    assert bodies(url + "/", 50) == {f"page-of-{alive}": 50}
    # The API group still has both (its server lives).
    assert set(bodies(url + "/api/x", 20)) == {f"api-of-{i}" for i in ids}


def test_a_deregistered_target_drains_then_is_unused(web):
    elb, ids, url = web["elb"], web["ids"], web["url"]
    leaving = ids[1]
    elb.deregister_targets(TargetGroupArn=web["api"], Targets=[{"Id": leaving}])
    assert state_of(elb, web["api"], leaving)["State"] in ("draining", "unused")
    elb.get_waiter("target_deregistered").wait(TargetGroupArn=web["api"], Targets=[{"Id": leaving}],
                                               WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    assert state_of(elb, web["api"], leaving)["Reason"] == "Target.NotRegistered"
    assert bodies(url + "/api/x", 20) == {f"api-of-{ids[0]}": 20}
    elb.register_targets(TargetGroupArn=web["api"], Targets=[{"Id": leaving}])
    elb.get_waiter("target_in_service").wait(TargetGroupArn=web["api"], WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def test_a_network_load_balancer_forwards_tcp(web):
    elb, ids = web["elb"], web["ids"]
    balancer = elb.create_load_balancer(Name="tcp", Type="network", Subnets=web["subnets"])["LoadBalancers"][0]
    # Off by default on a network balancer: each node would send only to its own zone.
    elb.modify_load_balancer_attributes(LoadBalancerArn=balancer["LoadBalancerArn"], Attributes=[
        {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])
    group = elb.create_target_group(Name="tcp80", Protocol="TCP", Port=80, VpcId=web["vpc"],
                                    HealthCheckIntervalSeconds=5, HealthCheckTimeoutSeconds=2,
                                    HealthyThresholdCount=2)["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=group, Targets=[{"Id": ids[1]}])
    elb.create_listener(LoadBalancerArn=balancer["LoadBalancerArn"], Protocol="TCP", Port=8000,
                        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[balancer["LoadBalancerArn"]],
                                                   WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    elb.get_waiter("target_in_service").wait(TargetGroupArn=group, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    assert fetch(f"http://{balancer['DNSName']}:8000/") == (200, f"page-of-{ids[1]}")
    elb.delete_load_balancer(LoadBalancerArn=balancer["LoadBalancerArn"])
    elb.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[balancer["LoadBalancerArn"]],
                                                  WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    elb.delete_target_group(TargetGroupArn=group)
    assert wait_for(lambda: fetch(f"http://{balancer['DNSName']}:8000/", timeout=2) is None, timeout=30)


def test_an_auto_scaling_group_serves_behind_the_balancer_and_replaces_what_it_finds_unhealthy(cloud, web):  # noqa: F811
    ec2, elb, autoscaling, url = web["ec2"], web["elb"], cloud.client("autoscaling"), web["url"]
    template = ec2.create_launch_template(LaunchTemplateName="lb-members", LaunchTemplateData={
        "ImageId": web["ami"], "InstanceType": "t3.nano", "SecurityGroupIds": [web["back"]],
        "UserData": base64.b64encode(USER_DATA.encode()).decode(),
        "MetadataOptions": {"InstanceMetadataTags": "enabled"}})["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="behind", LaunchTemplate={"LaunchTemplateId": template}, MinSize=1, MaxSize=2,
        DesiredCapacity=1, VPCZoneIdentifier=",".join(web["subnets"]), TargetGroupARNs=[web["pages"]],
        HealthCheckType="ELB", HealthCheckGracePeriod=10)

    def healthy_member(exclude=()):
        members = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["behind"])["AutoScalingGroups"][0]["Instances"]
        for member in members:
            if member["InstanceId"] not in exclude and member["LifecycleState"] == "InService":
                if state_of(elb, web["pages"], member["InstanceId"])["State"] == "healthy":
                    return member["InstanceId"]
        return None

    first = wait_for(healthy_member, timeout=300, interval=2)
    assert f"page-of-{first}" in bodies(url + "/", 20)
    attached = autoscaling.describe_traffic_sources(AutoScalingGroupName="behind")["TrafficSources"]
    assert [s["Identifier"] for s in attached] == [web["pages"]]
    # The balancer finds its server dead: the group replaces it, and the new one serves.
    ec2.create_tags(Resources=[first], Tags=[{"Key": "serve", "Value": "off"}])
    second = wait_for(lambda: healthy_member(exclude=[first]), timeout=300, interval=2)
    causes = [a["Cause"] for a in autoscaling.describe_scaling_activities(AutoScalingGroupName="behind")["Activities"]]
    assert any("ELB health check" in c for c in causes), causes
    assert f"page-of-{second}" in bodies(url + "/", 20)
    # A forced delete deregisters the members before terminating them.
    autoscaling.delete_auto_scaling_group(AutoScalingGroupName="behind", ForceDelete=True)
    wait_for(lambda: not autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["behind"])["AutoScalingGroups"],
             timeout=300, interval=2)
    assert state_of(elb, web["pages"], second)["State"] == "unused"


def test_the_balancer_keeps_answering_across_a_kill_9_of_nimbus(cloud, web):  # noqa: F811
    url, alive = web["url"], web["ids"][1]
    cloud.kill9()
    assert fetch(url + "/") == (200, f"page-of-{alive}")
    cloud.start()
    assert fetch(url + "/") == (200, f"page-of-{alive}")
    # The restarted server still knows how targets fare.
    wait_for(lambda: state_of(web["elb"], web["pages"], alive)["State"] == "healthy", timeout=60, interval=1)
