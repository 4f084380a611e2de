"""Elastic Load Balancing v2 as the tools users drive it with see it, no VMs needed: the call
sequences of Terraform's aws_lb, aws_lb_target_group, aws_lb_listener, aws_lb_listener_rule
and aws_lb_target_group_attachment (hashicorp/terraform-provider-aws
internal/service/elbv2/*.go) replayed with boto3, with the attribute values Terraform sends and
reads back; boto3's waiters; AWS's error codes for bad input; the aws CLI. (Health through real
instances is tests/test_elbv2.py's; the JS SDK is in test_js_sdk.py, Ansible in
test_ansible.py.)"""

import json
import re
import subprocess
import time
import uuid

import pytest
from botocore.exceptions import ClientError
from test_ansible import run_playbook

# Terraform's modifyLoadBalancerAttributes drops a key whose error matches this and retries.
TERRAFORM_ATTRIBUTE_RETRY = re.compile(r"""attribute key ('|")?([^'" ]+)('|")? is not (recognized|supported)""")

# What Terraform's aws_lb sends at create with nothing configured (load_balancer.go:
# access_logs, connection_logs, then loadBalancerAttributes.expand for the type).
TERRAFORM_ALB_ATTRIBUTES = {
    "access_logs.s3.enabled": "false",
    "connection_logs.s3.enabled": "false",
    "client_keep_alive.seconds": "3600",
    "routing.http.desync_mitigation_mode": "defensive",
    "routing.http.drop_invalid_header_fields.enabled": "false",
    "deletion_protection.enabled": "false",
    "routing.http2.enabled": "true",
    "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
    "waf.fail_open.enabled": "false",
    "routing.http.xff_client_port.enabled": "false",
    "zonal_shift.config.enabled": "false",
    "idle_timeout.timeout_seconds": "60",
    "routing.http.preserve_host_header.enabled": "false",
    "routing.http.xff_header_processing.mode": "append",
}
TERRAFORM_NLB_ATTRIBUTES = {
    "access_logs.s3.enabled": "false",
    "dns_record.client_routing_policy": "any_availability_zone",
    "load_balancing.cross_zone.enabled": "false",
    "deletion_protection.enabled": "false",
    "zonal_shift.config.enabled": "false",
}
# A key AWS has that nimbus does not: Terraform must drop it and retry.
UNKNOWN_KEY = "health_check_logs.s3.enabled"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def code(error):
    return error.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def elb(nimbus):
    return nimbus.client("elbv2")


@pytest.fixture(scope="module")
def vpc(ec2):
    """A VPC with an internet gateway and two subnets in two zones, and a second VPC."""
    vpc_id = ec2.create_vpc(CidrBlock="10.91.0.0/16")["Vpc"]["VpcId"]
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=vpc_id)
    table = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"][0]
    ec2.create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)
    subnets = [ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.91.{i}.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"]
               for i, zone in ((1, "us-east-1a"), (2, "us-east-1b"))]
    other = ec2.create_vpc(CidrBlock="10.92.0.0/16")["Vpc"]["VpcId"]
    ec2.create_subnet(VpcId=other, CidrBlock="10.92.1.0/24", AvailabilityZone="us-east-1a")
    return {"id": vpc_id, "subnets": subnets, "other": other}


def suffix(arn):
    """Terraform's loadBalancerNameFromARN: app/NAME/ID."""
    return arn.split(":loadbalancer/", 1)[1]


def terraform_modify_lb_attributes(elb, arn, attributes):
    """Terraform's modifyLoadBalancerAttributes: on a not-recognized key, drop it and retry.
    Returns the keys dropped."""
    attributes = dict(attributes)
    dropped = []
    while attributes:
        try:
            elb.modify_load_balancer_attributes(
                LoadBalancerArn=arn, Attributes=[{"Key": k, "Value": v} for k, v in attributes.items()])
            return dropped
        except ClientError as error:
            match = TERRAFORM_ATTRIBUTE_RETRY.search(str(error))
            if not match:
                raise
            dropped.append(match.group(2))
            attributes.pop(match.group(2))
    return dropped


def terraform_node_interfaces(ec2, arn):
    """Terraform's waitForALB/NLBNetworkInterfacesToDetach look-up, for the balancer's owner."""
    owner = "amazon-elb" if ":loadbalancer/app/" in arn else "amazon-aws"
    return ec2.describe_network_interfaces(Filters=[
        {"Name": "attachment.instance-owner-id", "Values": [owner]},
        {"Name": "description", "Values": ["ELB " + suffix(arn)]},
    ])["NetworkInterfaces"]


def wait_gone(ec2, arn):
    """Terraform polls until no interface is left (the reconciler deletes them)."""
    polls = 0
    while terraform_node_interfaces(ec2, arn):
        polls += 1
        assert polls < 600, "the balancer's interfaces never went"
        time.sleep(0.5)


def terraform_lb_read(elb, arn):
    """resourceLoadBalancerRead: the balancer, its attributes, its capacity reservation, its tags."""
    [lb] = elb.describe_load_balancers(LoadBalancerArns=[arn])["LoadBalancers"]
    attributes = {a["Key"]: a["Value"] for a in elb.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]}
    capacity = elb.describe_capacity_reservation(LoadBalancerArn=arn)
    tags = {t["Key"]: t["Value"] for t in elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"]}
    return lb, attributes, capacity, tags


@pytest.mark.parametrize("kind,internal", [("application", False), ("application", True),
                                           ("network", False), ("network", True)])
def test_terraform_aws_lb_lifecycle_with_the_attribute_retry(ec2, elb, vpc, kind, internal):
    name = unique("tf-lb")
    # Create: Terraform first looks the name up, expecting LoadBalancerNotFound.
    with pytest.raises(ClientError) as absent:
        elb.describe_load_balancers(Names=[name])
    assert code(absent) == "LoadBalancerNotFound"
    create = dict(Name=name, Type=kind, Subnets=vpc["subnets"], Tags=[{"Key": "tool", "Value": "terraform"}])
    if internal:
        create["Scheme"] = "internal"
    [lb] = elb.create_load_balancer(**create)["LoadBalancers"]
    arn = lb["LoadBalancerArn"]
    assert lb["State"]["Code"] == "provisioning"
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[arn], WaiterConfig={"Delay": 1})

    sent = dict(TERRAFORM_ALB_ATTRIBUTES if kind == "application" else TERRAFORM_NLB_ATTRIBUTES)
    sent[UNKNOWN_KEY] = "false"
    assert terraform_modify_lb_attributes(elb, arn, sent) == [UNKNOWN_KEY]
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[arn], WaiterConfig={"Delay": 1})

    lb, attributes, capacity, tags = terraform_lb_read(elb, arn)
    assert lb["LoadBalancerName"] == name and lb["Type"] == kind and lb["State"]["Code"] == "active"
    assert lb["Scheme"] == ("internal" if internal else "internet-facing")
    assert lb["VpcId"] == vpc["id"] and lb["IpAddressType"] == "ipv4"
    assert sorted(z["SubnetId"] for z in lb["AvailabilityZones"]) == sorted(vpc["subnets"])
    assert lb["DNSName"].startswith(("internal-" if internal else "") + name.lower() + "-")
    assert lb["CanonicalHostedZoneId"]
    assert arn.split(":loadbalancer/")[1].startswith(("app/" if kind == "application" else "net/") + name + "/")
    if kind == "application":
        assert len(lb["SecurityGroups"]) == 1  # the VPC's default group
    else:
        assert lb["SecurityGroups"] == []
        for zone in lb["AvailabilityZones"]:
            [address] = zone["LoadBalancerAddresses"]
            assert address["PrivateIPv4Address"].startswith("10.91.")
            assert ("IpAddress" in address) != internal
    # Every key Terraform sent is read back with the value it sent.
    for key, value in sent.items():
        if key != UNKNOWN_KEY:
            assert attributes[key] == value, key
    assert "MinimumLoadBalancerCapacity" not in capacity
    assert tags == {"tool": "terraform"}

    # The balancer's interfaces, as Terraform's delete looks them up.
    nodes = terraform_node_interfaces(ec2, arn)
    assert len(nodes) == 2
    for node in nodes:
        assert node["RequesterManaged"] and node["Status"] == "in-use"
        assert node["InterfaceType"] == ("interface" if kind == "application" else "network_load_balancer")
        assert node["Attachment"]["InstanceOwnerId"] == node["RequesterId"]
        assert (node.get("Association") is None) == internal

    # Update: the changed attributes only, then a read.
    changed = {"deletion_protection.enabled": "true"}
    if kind == "application":
        changed["idle_timeout.timeout_seconds"] = "120"
    else:
        changed["load_balancing.cross_zone.enabled"] = "true"
    assert terraform_modify_lb_attributes(elb, arn, changed) == []
    _, attributes, _, _ = terraform_lb_read(elb, arn)
    assert {k: attributes[k] for k in changed} == changed

    # A value nimbus does not carry out is refused by name, in words Terraform does not read
    # as "drop this key".
    with pytest.raises(ClientError) as refused:
        terraform_modify_lb_attributes(elb, arn, {"access_logs.s3.enabled": "true"})
    assert code(refused) == "UnsupportedOperation"
    assert not TERRAFORM_ATTRIBUTE_RETRY.search(str(refused.value))

    # Delete: refused while protected, then the interfaces go.
    with pytest.raises(ClientError) as protected:
        elb.delete_load_balancer(LoadBalancerArn=arn)
    assert code(protected) == "OperationNotPermitted"
    terraform_modify_lb_attributes(elb, arn, {"deletion_protection.enabled": "false"})
    elb.delete_load_balancer(LoadBalancerArn=arn)
    wait_gone(ec2, arn)
    elb.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[arn], WaiterConfig={"Delay": 1})
    with pytest.raises(ClientError) as gone:
        elb.describe_capacity_reservation(LoadBalancerArn=arn)
    assert code(gone) == "LoadBalancerNotFound"


def terraform_tg_attributes(elb, arn):
    return {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(TargetGroupArn=arn)["Attributes"]}


@pytest.mark.parametrize("protocol", ["HTTP", "TCP"])
def test_terraform_aws_lb_target_group_lifecycle(elb, vpc, protocol):
    name = unique("tf-tg")
    with pytest.raises(ClientError) as absent:
        elb.describe_target_groups(Names=[name])
    assert code(absent) == "TargetGroupNotFound"
    # resourceTargetGroupCreate with a health_check block: an HTTP group also sends the
    # (computed, so empty) protocol_version.
    create = dict(Name=name, Protocol=protocol, Port=8080, VpcId=vpc["id"], TargetType="ip",
                  HealthCheckEnabled=True, HealthCheckIntervalSeconds=10, HealthyThresholdCount=3,
                  UnhealthyThresholdCount=3, HealthCheckPort="traffic-port", HealthCheckProtocol=protocol,
                  Tags=[{"Key": "tool", "Value": "terraform"}])
    if protocol == "HTTP":
        create.update(ProtocolVersion="", HealthCheckPath="/health", Matcher={"HttpCode": "200-299"})
    [group] = elb.create_target_group(**create)["TargetGroups"]
    arn = group["TargetGroupArn"]
    [read] = elb.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    assert read == group

    # The attributes Terraform sends at create: deregistration_delay (default 300) and the
    # blocks the user wrote.
    attributes = [{"Key": "deregistration_delay.timeout_seconds", "Value": "300"}]
    if protocol == "HTTP":
        attributes += [{"Key": "stickiness.enabled", "Value": "true"}, {"Key": "stickiness.type", "Value": "lb_cookie"},
                       {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "3600"}]
    else:
        attributes += [{"Key": "stickiness.enabled", "Value": "false"}, {"Key": "stickiness.type", "Value": "source_ip"},
                       {"Key": "target_health_state.unhealthy.connection_termination.enabled", "Value": "true"},
                       {"Key": "target_health_state.unhealthy.draining_interval_seconds", "Value": "0"}]
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=attributes)

    # resourceTargetGroupRead: the group, its attributes (every key Terraform flattens), tags.
    [read] = elb.describe_target_groups(TargetGroupArns=[arn])["TargetGroups"]
    assert (read["TargetGroupName"], read["Protocol"], read["Port"], read["VpcId"], read["TargetType"]) == \
        (name, protocol, 8080, vpc["id"], "ip")
    assert (read["HealthCheckEnabled"], read["HealthCheckIntervalSeconds"], read["HealthyThresholdCount"],
            read["UnhealthyThresholdCount"], read["HealthCheckPort"], read["HealthCheckProtocol"]) == \
        (True, 10, 3, 3, "traffic-port", protocol)
    assert read["LoadBalancerArns"] == [] and read["IpAddressType"] == "ipv4"
    if protocol == "HTTP":
        assert (read["HealthCheckPath"], read["Matcher"], read["ProtocolVersion"], read["HealthCheckTimeoutSeconds"]) == \
            ("/health", {"HttpCode": "200-299"}, "HTTP1", 5)
    else:
        assert "HealthCheckPath" not in read and "Matcher" not in read and "ProtocolVersion" not in read
        assert read["HealthCheckTimeoutSeconds"] == 10
    values = terraform_tg_attributes(elb, arn)
    for attribute in attributes:
        assert values[attribute["Key"]] == attribute["Value"], attribute
    assert values["load_balancing.cross_zone.enabled"] == "use_load_balancer_configuration"
    assert values.get("slow_start.duration_seconds", "0") == "0"
    assert elb.describe_tags(ResourceArns=[arn])["TagDescriptions"][0]["Tags"] == [{"Key": "tool", "Value": "terraform"}]

    # resourceTargetGroupUpdate: ModifyTargetGroup with the whole health_check block, then
    # the attributes that changed.
    modify = dict(TargetGroupArn=arn, HealthCheckEnabled=True, HealthCheckIntervalSeconds=15,
                  HealthyThresholdCount=2, UnhealthyThresholdCount=4, HealthCheckTimeoutSeconds=6,
                  HealthCheckPort="8081", HealthCheckProtocol=protocol)
    if protocol == "HTTP":
        modify.update(HealthCheckPath="/ready", Matcher={"HttpCode": "200"})
    [modified] = elb.modify_target_group(**modify)["TargetGroups"]
    assert (modified["HealthCheckIntervalSeconds"], modified["HealthCheckTimeoutSeconds"],
            modified["HealthCheckPort"]) == (15, 6, "8081")
    changed = [{"Key": "deregistration_delay.timeout_seconds", "Value": "30"}]
    if protocol == "HTTP":
        changed.append({"Key": "load_balancing.algorithm.type", "Value": "least_outstanding_requests"})
    elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=changed)
    values = terraform_tg_attributes(elb, arn)
    assert all(values[c["Key"]] == c["Value"] for c in changed)

    elb.delete_target_group(TargetGroupArn=arn)
    with pytest.raises(ClientError) as gone:
        elb.describe_target_groups(TargetGroupArns=[arn])
    assert code(gone) == "TargetGroupNotFound"


def test_terraform_listener_rule_and_attachment_on_an_alb(ec2, elb, vpc):
    name = unique("tf-alb")
    [lb] = elb.create_load_balancer(Name=name, Subnets=vpc["subnets"], Scheme="internal")["LoadBalancers"]
    lb_arn = lb["LoadBalancerArn"]
    web = elb.create_target_group(Name=unique("tf-web"), Protocol="HTTP", Port=80, VpcId=vpc["id"],
                                  TargetType="ip", ProtocolVersion="")["TargetGroups"][0]["TargetGroupArn"]
    api = elb.create_target_group(Name=unique("tf-api"), Protocol="HTTP", Port=80, VpcId=vpc["id"],
                                  TargetType="ip", ProtocolVersion="")["TargetGroups"][0]["TargetGroupArn"]

    # aws_lb_listener: create (Protocol defaults to HTTP for an ALB; actions carry Order),
    # read back until found, then the attributes Terraform always sends for HTTP (the
    # computed server header flag, false), then the read with DescribeListenerAttributes.
    [listener] = elb.create_listener(
        LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80, Tags=[{"Key": "tool", "Value": "terraform"}],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": web, "Order": 1}])["Listeners"]
    listener_arn = listener["ListenerArn"]
    elb.modify_listener_attributes(ListenerArn=listener_arn,
                                   Attributes=[{"Key": "routing.http.response.server.enabled", "Value": "false"}])
    [read] = elb.describe_listeners(ListenerArns=[listener_arn])["Listeners"]
    assert (read["LoadBalancerArn"], read["Port"], read["Protocol"]) == (lb_arn, 80, "HTTP")
    assert read["DefaultActions"][0]["Type"] == "forward" and read["DefaultActions"][0]["TargetGroupArn"] == web
    attributes = elb.describe_listener_attributes(ListenerArn=listener_arn)["Attributes"]
    assert {"Key": "routing.http.response.server.enabled", "Value": "false"} in attributes
    assert elb.describe_tags(ResourceArns=[listener_arn])["TagDescriptions"][0]["Tags"] == \
        [{"Key": "tool", "Value": "terraform"}]
    [group] = elb.describe_target_groups(TargetGroupArns=[web])["TargetGroups"]
    assert group["LoadBalancerArns"] == [lb_arn]
    # Update: Port and Protocol always, the default action when it changed.
    [updated] = elb.modify_listener(ListenerArn=listener_arn, Port=8080, Protocol="HTTP", DefaultActions=[
        {"Type": "fixed-response", "Order": 1,
         "FixedResponseConfig": {"ContentType": "text/plain", "MessageBody": "hello", "StatusCode": "200"}}])["Listeners"]
    assert updated["Port"] == 8080 and updated["DefaultActions"][0]["FixedResponseConfig"]["MessageBody"] == "hello"
    assert elb.describe_target_groups(TargetGroupArns=[web])["TargetGroups"][0]["LoadBalancerArns"] == []

    # aws_lb_listener_rule: without a priority Terraform reads the listener's rules and takes
    # the highest plus one; then reads the rule back by ARN.
    rules = elb.describe_rules(ListenerArn=listener_arn)["Rules"]
    assert [r["IsDefault"] for r in rules] == [True] and rules[0]["Priority"] == "default"
    priority = 1 + max([int(r["Priority"]) for r in rules if not r["IsDefault"]], default=0)
    [rule] = elb.create_rule(
        ListenerArn=listener_arn, Priority=priority, Tags=[{"Key": "tool", "Value": "terraform"}],
        Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}],
        Actions=[{"Type": "forward", "Order": 1,
                  "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": api, "Weight": 1}],
                                    "TargetGroupStickinessConfig": {"Enabled": False}}}])["Rules"]
    rule_arn = rule["RuleArn"]
    [read] = elb.describe_rules(RuleArns=[rule_arn])["Rules"]
    assert (read["Priority"], read["IsDefault"]) == ("1", False)
    assert read["Conditions"][0]["Field"] == "path-pattern"
    assert read["Conditions"][0]["PathPatternConfig"]["Values"] == ["/api/*"]
    assert read["Actions"][0]["ForwardConfig"]["TargetGroups"] == [{"TargetGroupArn": api, "Weight": 1}]
    # Update: ModifyRule with actions and conditions, SetRulePriorities for a new priority.
    elb.modify_rule(RuleArn=rule_arn,
                    Conditions=[{"Field": "host-header", "HostHeaderConfig": {"Values": ["api.example.com"]}}],
                    Actions=[{"Type": "forward", "TargetGroupArn": api, "Order": 1}])
    elb.set_rule_priorities(RulePriorities=[{"RuleArn": rule_arn, "Priority": 7}])
    [read] = elb.describe_rules(RuleArns=[rule_arn])["Rules"]
    assert read["Priority"] == "7" and read["Conditions"][0]["HostHeaderConfig"]["Values"] == ["api.example.com"]

    # aws_lb_target_group_attachment: register, read with DescribeTargetHealth naming the
    # target, deregister; the target then leaves.
    target = {"Id": "10.91.1.200", "Port": 80}
    elb.modify_target_group_attributes(TargetGroupArn=api, Attributes=[
        {"Key": "deregistration_delay.timeout_seconds", "Value": "0"}])
    elb.register_targets(TargetGroupArn=api, Targets=[target])
    [health] = elb.describe_target_health(TargetGroupArn=api, Targets=[target])["TargetHealthDescriptions"]
    assert health["Target"]["Id"] == target["Id"] and health["Target"]["Port"] == 80
    assert health["TargetHealth"]["State"] in ("initial", "unhealthy")
    assert health["TargetHealth"].get("Reason") != "Target.NotRegistered"
    elb.deregister_targets(TargetGroupArn=api, Targets=[target])
    elb.get_waiter("target_deregistered").wait(TargetGroupArn=api, Targets=[target], WaiterConfig={"Delay": 1})
    [health] = elb.describe_target_health(TargetGroupArn=api, Targets=[target])["TargetHealthDescriptions"]
    assert (health["TargetHealth"]["State"], health["TargetHealth"]["Reason"]) == ("unused", "Target.NotRegistered")

    # Destroy in Terraform's order: the group in use is refused with the message its retry
    # reads, then rule, listener, groups, balancer.
    with pytest.raises(ClientError) as in_use:
        elb.delete_target_group(TargetGroupArn=api)
    assert code(in_use) == "ResourceInUse"
    assert "is currently in use by a listener or a rule" in str(in_use.value)
    elb.delete_rule(RuleArn=rule_arn)
    elb.delete_listener(ListenerArn=listener_arn)
    for group_arn in (web, api):
        elb.delete_target_group(TargetGroupArn=group_arn)
    elb.delete_load_balancer(LoadBalancerArn=lb_arn)
    wait_gone(ec2, lb_arn)


def test_terraform_tcp_listener_reads_its_attributes(ec2, elb, vpc):
    [lb] = elb.create_load_balancer(Name=unique("tf-nlb"), Type="network", Subnets=vpc["subnets"][:1],
                                    Scheme="internal")["LoadBalancers"]
    group = elb.create_target_group(Name=unique("tf-tcp"), Protocol="TCP", Port=5432, VpcId=vpc["id"],
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    [listener] = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=5432,
                                     DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])["Listeners"]
    attributes = elb.describe_listener_attributes(ListenerArn=listener["ListenerArn"])["Attributes"]
    assert attributes == [{"Key": "tcp.idle_timeout.seconds", "Value": "350"}]
    with pytest.raises(ClientError) as rules:
        elb.create_rule(ListenerArn=listener["ListenerArn"], Priority=1,
                        Conditions=[{"Field": "path-pattern", "Values": ["/x"]}],
                        Actions=[{"Type": "forward", "TargetGroupArn": group}])
    assert code(rules) == "ValidationError"
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    elb.delete_target_group(TargetGroupArn=group)
    wait_gone(ec2, lb["LoadBalancerArn"])


def test_bad_input_gets_aws_codes(ec2, elb, vpc):
    name = unique("bad")
    [lb] = elb.create_load_balancer(Name=name, Subnets=vpc["subnets"], Scheme="internal")["LoadBalancers"]
    lb_arn = lb["LoadBalancerArn"]
    group = elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc["id"],
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    refusals = {}

    def refused(label, call, **kwargs):
        with pytest.raises(ClientError) as error:
            call(**kwargs)
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, label
        refusals[label] = code(error)

    # The same name with other settings (the same settings answer the existing one, as AWS).
    assert elb.create_load_balancer(Name=name, Subnets=vpc["subnets"], Scheme="internal")[
        "LoadBalancers"][0]["LoadBalancerArn"] == lb_arn
    refused("lb name", elb.create_load_balancer, Name=name, Subnets=vpc["subnets"])
    refused("tg name", elb.create_target_group, Name=name, Protocol="HTTP", Port=81, VpcId=vpc["id"], TargetType="ip")
    refused("other vpc", elb.register_targets, TargetGroupArn=group, Targets=[{"Id": "10.92.1.10"}])
    refused("not an ip", elb.register_targets, TargetGroupArn=group, Targets=[{"Id": "i-0123456789abcdef0"}])
    listener = elb.create_listener(LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    listener_arn = listener["Listeners"][0]["ListenerArn"]
    refused("port", elb.create_listener, LoadBalancerArn=lb_arn, Protocol="HTTP", Port=80,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    rule = dict(ListenerArn=listener_arn, Priority=5, Actions=[{"Type": "forward", "TargetGroupArn": group}],
                Conditions=[{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/a"]}}])
    elb.create_rule(**rule)
    refused("priority", elb.create_rule, **rule)
    refused("in use", elb.delete_target_group, TargetGroupArn=group)
    refused("https", elb.create_listener, LoadBalancerArn=lb_arn, Protocol="HTTPS", Port=443,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    refused("certificate", elb.create_listener, LoadBalancerArn=lb_arn, Protocol="HTTP", Port=444,
            Certificates=[{"CertificateArn": "arn:aws:acm:us-east-1:000000000000:certificate/x"}],
            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
    [nlb] = elb.create_load_balancer(Name=unique("bad-nlb"), Type="network", Subnets=vpc["subnets"][:1],
                                     Scheme="internal")["LoadBalancers"]
    tcp = elb.create_target_group(Name=unique("bad-tcp"), Protocol="TCP", Port=80, VpcId=vpc["id"],
                                  TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    refused("tls", elb.create_listener, LoadBalancerArn=nlb["LoadBalancerArn"], Protocol="TLS", Port=443,
            DefaultActions=[{"Type": "forward", "TargetGroupArn": tcp}])
    missing = lb_arn.rsplit("/", 1)[0] + "/0123456789abcdef"
    refused("lb arn", elb.describe_load_balancers, LoadBalancerArns=[missing])
    refused("tg arn", elb.describe_target_groups,
            TargetGroupArns=[group.rsplit("/", 1)[0] + "/0123456789abcdef"])
    refused("listener arn", elb.describe_listeners, ListenerArns=[listener_arn.rsplit("/", 1)[0] + "/0123456789abcdef"])
    refused("rule arn", elb.describe_rules,
            RuleArns=[listener_arn.replace(":listener/", ":listener-rule/") + "/0123456789abcdef"])
    for bad in ("under_score", "-leading", "trailing-", "x" * 33, "sp ace"):
        refused(f"lb name {bad!r}", elb.create_load_balancer, Name=bad, Subnets=vpc["subnets"])
        refused(f"tg name {bad!r}", elb.create_target_group, Name=bad, Protocol="HTTP", Port=80, VpcId=vpc["id"])
    assert refusals == {
        "lb name": "DuplicateLoadBalancerName", "tg name": "DuplicateTargetGroupName",
        "other vpc": "InvalidTarget", "not an ip": "InvalidTarget", "port": "DuplicateListener",
        "priority": "PriorityInUse", "in use": "ResourceInUse", "https": "UnsupportedOperation",
        "certificate": "UnsupportedOperation", "tls": "UnsupportedOperation",
        "lb arn": "LoadBalancerNotFound", "tg arn": "TargetGroupNotFound",
        "listener arn": "ListenerNotFound", "rule arn": "RuleNotFound",
        **{f"{kind} name {bad!r}": "ValidationError" for bad in ("under_score", "-leading", "trailing-", "x" * 33, "sp ace")
           for kind in ("lb", "tg")},
    }
    # Nothing half-made: the refused names left no balancer or group behind.
    names = {b["LoadBalancerName"] for b in elb.describe_load_balancers()["LoadBalancers"]}
    assert not names & {"under_score", "-leading", "trailing-", "sp ace"}
    for arn in (lb_arn, nlb["LoadBalancerArn"]):
        elb.delete_load_balancer(LoadBalancerArn=arn)
    for arn in (group, tcp):
        elb.delete_target_group(TargetGroupArn=arn)
    for arn in (lb_arn, nlb["LoadBalancerArn"]):
        wait_gone(ec2, arn)


def aws_elbv2(nimbus, *args):
    result = subprocess.run(["aws", "elbv2", *args, "--output", "json"], env=nimbus.cli_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def test_aws_cli(nimbus, ec2, vpc):
    name = unique("cli")
    lb = aws_elbv2(nimbus, "create-load-balancer", "--name", name, "--subnets", *vpc["subnets"],
                   "--scheme", "internal", "--tags", "Key=tool,Value=cli")["LoadBalancers"][0]
    arn = lb["LoadBalancerArn"]
    subprocess.run(["aws", "elbv2", "wait", "load-balancer-available", "--load-balancer-arns", arn],
                   env=nimbus.cli_env(), check=True, timeout=300)
    group = aws_elbv2(nimbus, "create-target-group", "--name", name, "--protocol", "HTTP", "--port", "80",
                      "--vpc-id", vpc["id"], "--target-type", "ip",
                      "--health-check-path", "/health")["TargetGroups"][0]
    listener = aws_elbv2(nimbus, "create-listener", "--load-balancer-arn", arn, "--protocol", "HTTP",
                         "--port", "80", "--default-actions",
                         f"Type=forward,TargetGroupArn={group['TargetGroupArn']}")["Listeners"][0]
    aws_elbv2(nimbus, "modify-load-balancer-attributes", "--load-balancer-arn", arn,
              "--attributes", "Key=idle_timeout.timeout_seconds,Value=30")
    described = aws_elbv2(nimbus, "describe-load-balancers", "--names", name)["LoadBalancers"][0]
    assert (described["LoadBalancerArn"], described["State"]["Code"], described["Scheme"]) == (arn, "active", "internal")
    attributes = aws_elbv2(nimbus, "describe-load-balancer-attributes", "--load-balancer-arn", arn)["Attributes"]
    assert {"Key": "idle_timeout.timeout_seconds", "Value": "30"} in attributes
    listed = aws_elbv2(nimbus, "describe-listeners", "--load-balancer-arn", arn)["Listeners"]
    assert [l["ListenerArn"] for l in listed] == [listener["ListenerArn"]]
    groups = aws_elbv2(nimbus, "describe-target-groups", "--load-balancer-arn", arn)["TargetGroups"]
    assert [(g["TargetGroupName"], g["HealthCheckPath"]) for g in groups] == [(name, "/health")]
    tags = aws_elbv2(nimbus, "describe-tags", "--resource-arns", arn)["TagDescriptions"][0]["Tags"]
    assert tags == [{"Key": "tool", "Value": "cli"}]
    failed = subprocess.run(["aws", "elbv2", "delete-target-group", "--target-group-arn", group["TargetGroupArn"]],
                            env=nimbus.cli_env(), capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and "(ResourceInUse)" in failed.stderr
    aws_elbv2(nimbus, "delete-load-balancer", "--load-balancer-arn", arn)
    subprocess.run(["aws", "elbv2", "wait", "load-balancers-deleted", "--load-balancer-arns", arn],
                   env=nimbus.cli_env(), check=True, timeout=300)
    aws_elbv2(nimbus, "delete-target-group", "--target-group-arn", group["TargetGroupArn"])
    wait_gone(ec2, arn)


def test_ansible_playbook_creates_then_changes_nothing(nimbus, elb, tmp_path):
    outputs = tmp_path / "outputs.json"
    changed, first, _ = run_playbook(nimbus, None, outputs, playbook="elbv2.yml")
    assert changed >= 7
    [lb] = elb.describe_load_balancers(LoadBalancerArns=[first["alb"]])["LoadBalancers"]
    assert (lb["LoadBalancerName"], lb["State"]["Code"], lb["DNSName"]) == ("ansible-alb", "active", first["dns"])
    attributes = {a["Key"]: a["Value"] for a in
                  elb.describe_load_balancer_attributes(LoadBalancerArn=first["alb"])["Attributes"]}
    assert attributes["idle_timeout.timeout_seconds"] == "30"
    [listener] = elb.describe_listeners(LoadBalancerArn=first["alb"])["Listeners"]
    assert listener["DefaultActions"][0]["TargetGroupArn"] == first["web"]
    rules = elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"]
    assert [(r["Priority"], r["Actions"][0]["TargetGroupArn"]) for r in rules] == \
        [("10", first["api"]), ("default", first["web"])]
    [web] = elb.describe_target_groups(TargetGroupArns=[first["web"]])["TargetGroups"]
    assert (web["HealthCheckPath"], web["HealthCheckIntervalSeconds"], web["Matcher"]) == \
        ("/health", 15, {"HttpCode": "200-299"})
    web_attributes = {a["Key"]: a["Value"] for a in
                      elb.describe_target_group_attributes(TargetGroupArn=first["web"])["Attributes"]}
    assert (web_attributes["deregistration_delay.timeout_seconds"], web_attributes["stickiness.enabled"],
            web_attributes["stickiness.lb_cookie.duration_seconds"]) == ("30", "true", "3600")
    targets = elb.describe_target_health(TargetGroupArn=first["web"])["TargetHealthDescriptions"]
    assert [(t["Target"]["Id"], t["Target"]["Port"]) for t in targets] == [("10.94.1.50", 80)]

    changed, second, log = run_playbook(nimbus, None, outputs, playbook="elbv2.yml")
    assert changed == 0, log
    assert second == first
    assert len([b for b in elb.describe_load_balancers()["LoadBalancers"] if b["LoadBalancerName"] == "ansible-alb"]) == 1
