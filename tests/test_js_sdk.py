"""The AWS SDK for JavaScript v3 (@aws-sdk/client-ec2, -sts, -cloudwatch, -auto-scaling,
-elastic-load-balancing-v2, run by node) as a
second real SDK against nimbus: the scenarios live in tests/js/scenarios.mjs."""

import json
import os
import re
import subprocess

JS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js")


def run_js(nimbus, scenario):
    assert os.path.isdir(os.path.join(JS_DIR, "node_modules", "@aws-sdk", "client-sts")), \
        "the JavaScript SDK is not installed in tests/js: run scripts/install-deps.sh"
    # The JavaScript SDK reads AWS_REGION, the CLI AWS_DEFAULT_REGION.
    env = dict(nimbus.cli_env(), AWS_REGION="us-east-1")
    result = subprocess.run(["node", "scenarios.mjs", scenario], cwd=JS_DIR, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_describe_regions(nimbus):
    assert "us-east-1" in run_js(nimbus, "regions")["regions"]


def test_key_pairs_with_tags(nimbus):
    result = run_js(nimbus, "keyPairs")
    assert result["created"]["id"].startswith("key-")
    assert result["created"]["material"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert result["described"] == [{"id": result["created"]["id"], "name": result["name"], "type": "ed25519",
                                    "tags": [{"Key": "sdk", "Value": "js-v3"}]}]
    assert result["byTag"] == [result["name"]]
    assert result["name"] not in result["remaining"]


def test_volume_lifecycle(nimbus):
    result = run_js(nimbus, "volumes")
    assert re.fullmatch(r"vol-[0-9a-f]{17}", result["id"])
    assert result["createdState"] == "creating"
    described = result["described"]
    assert described["id"] == result["id"] and described["state"] == "available"
    assert (described["size"], described["type"], described["zone"]) == (2, "gp3", "us-east-1a")
    assert described["createTime"] is not None
    assert result["afterDelete"]["name"] == "InvalidVolume.NotFound"


def test_error_carries_the_aws_code(nimbus):
    error = run_js(nimbus, "error")
    assert error["name"] == "InvalidVolume.NotFound"
    assert error["fault"] == "client" and error["status"] == 400
    assert "vol-0123456789abcdef0" in error["message"]


def test_sts_get_caller_identity(nimbus):
    identity = run_js(nimbus, "callerIdentity")
    assert identity["account"] == "000000000000"
    assert identity["arn"] == "arn:aws:iam::000000000000:root"
    assert identity["userId"]


def test_sts_refuses_a_wrong_signature_with_the_aws_code(nimbus):
    error = run_js(nimbus, "wrongSecret")
    assert error["name"] == "SignatureDoesNotMatch"
    assert error["fault"] == "client" and error["status"] == 403


def test_auto_scaling_group_through_the_js_sdk(nimbus):
    result = run_js(nimbus, "autoScaling")
    assert result["described"] == {
        "name": result["name"], "sizes": [0, 2, 0], "zones": ["us-east-1a"],
        "template": {"LaunchTemplateId": result["templateId"], "LaunchTemplateName": result["name"],
                     "Version": "$Latest"},
        "tags": [{"ResourceId": result["name"], "ResourceType": "auto-scaling-group", "Key": "sdk",
                  "Value": "js-v3", "PropagateAtLaunch": True}],
        "created": True,
    }
    assert result["crossed"]["name"] == "ValidationError" and result["crossed"]["status"] == 400
    assert result["crossed"]["message"] == "Max bound, 2, must be greater than or equal to min bound, 3"
    assert result["activities"] == 0 and result["remaining"] == 0


def test_load_balancer_through_the_js_sdk(nimbus):
    result = run_js(nimbus, "loadBalancer")
    assert result["described"] == {"arn": True, "state": "active", "type": "application",
                                   "scheme": "internet-facing", "zones": ["us-east-1a", "us-east-1b"],
                                   "created": True}
    assert result["listener"] == {"port": 80, "protocol": "HTTP", "attributes": [
        {"Key": "routing.http.response.server.enabled", "Value": "true"}]}
    # The SDK names a modeled error by its shape (AWS's code DuplicateListener is the
    # DuplicateListenerException shape's).
    assert result["duplicate"]["name"] == "DuplicateListenerException" and result["duplicate"]["status"] == 400
    assert result["inUse"]["name"] == "ResourceInUseException"
    assert result["afterDelete"]["name"] == "TargetGroupNotFoundException"
