"""SSM Parameter Store end to end with boto3, the aws CLI and the JavaScript SDK: parameters,
versions, labels and selectors, paths, filters, tags, history, the refusals AWS answers, and
parameters surviving kill -9. Public image parameters and `resolve:ssm:` launches need built
images: tests/test_ec2_rest.py."""

import json
import subprocess

import pytest
from botocore.exceptions import ClientError

from test_js_sdk import run_js

ACCOUNT = "000000000000"


@pytest.fixture(scope="module")
def ssm(nimbus):
    return nimbus.client("ssm")


def refusal(call):
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_put_get_overwrite_and_read_old_versions(ssm):
    first = ssm.put_parameter(Name="/web/prod/url", Value="http://a", Type="String", Description="front door")
    assert (first["Version"], first["Tier"]) == (1, "Standard")
    code, _ = refusal(lambda: ssm.put_parameter(Name="/web/prod/url", Value="http://b", Type="String"))
    assert code == "ParameterAlreadyExists"
    assert ssm.put_parameter(Name="/web/prod/url", Value="http://b", Overwrite=True)["Version"] == 2

    current = ssm.get_parameter(Name="/web/prod/url")["Parameter"]
    assert {k: current[k] for k in ("Name", "Type", "Value", "Version", "DataType", "ARN")} == {
        "Name": "/web/prod/url", "Type": "String", "Value": "http://b", "Version": 2, "DataType": "text",
        "ARN": f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/web/prod/url",
    }
    old = ssm.get_parameter(Name="/web/prod/url:1")["Parameter"]
    assert (old["Value"], old["Version"], old["Selector"]) == ("http://a", 1, ":1")
    assert refusal(lambda: ssm.get_parameter(Name="/web/prod/url:9"))[0] == "ParameterVersionNotFound"
    assert refusal(lambda: ssm.get_parameter(Name="/web/prod/none"))[0] == "ParameterNotFound"

    history = ssm.get_parameter_history(Name="/web/prod/url")["Parameters"]
    assert [(h["Version"], h["Value"], h["Description"]) for h in history] == [
        (1, "http://a", "front door"), (2, "http://b", "front door")]
    assert history[0]["LastModifiedUser"] == f"arn:aws:iam::{ACCOUNT}:root"


def test_labels_select_versions_and_move(ssm):
    ssm.put_parameter(Name="release", Value="1.0", Type="String")
    ssm.put_parameter(Name="release", Value="1.1", Type="String", Overwrite=True)
    labelled = ssm.label_parameter_version(Name="release", ParameterVersion=1, Labels=["stable", "9lives"])
    assert (labelled["ParameterVersion"], labelled["InvalidLabels"]) == (1, ["9lives"])
    assert ssm.get_parameter(Name="release:stable")["Parameter"]["Value"] == "1.0"
    ssm.label_parameter_version(Name="release", Labels=["stable"])  # the current version
    assert ssm.get_parameter(Name="release:stable")["Parameter"]["Value"] == "1.1"
    history = ssm.get_parameter_history(Name="release")["Parameters"]
    assert [h["Labels"] for h in history] == [[], ["stable"]]
    removed = ssm.unlabel_parameter_version(Name="release", ParameterVersion=2, Labels=["stable", "other"])
    assert (removed["RemovedLabels"], removed["InvalidLabels"]) == (["stable"], ["other"])


def test_paths_pages_and_filters(ssm):
    for name, kind in [("/svc/a", "String"), ("/svc/b", "StringList"), ("/svc/deep/c", "String"), ("/svcx/d", "String")]:
        ssm.put_parameter(Name=name, Value="x,y", Type=kind, Tags=[{"Key": "team", "Value": name.split("/")[-1]}])
    one_level = ssm.get_parameters_by_path(Path="/svc")["Parameters"]
    assert [p["Name"] for p in one_level] == ["/svc/a", "/svc/b"]
    paginator = ssm.get_paginator("get_parameters_by_path")
    pages = list(paginator.paginate(Path="/svc/", Recursive=True, PaginationConfig={"PageSize": 2}))
    assert [[p["Name"] for p in page["Parameters"]] for page in pages] == [["/svc/a", "/svc/b"], ["/svc/deep/c"]]
    lists = ssm.get_parameters_by_path(Path="/svc", Recursive=True,
                                       ParameterFilters=[{"Key": "Type", "Values": ["StringList"]}])
    assert [p["Name"] for p in lists["Parameters"]] == ["/svc/b"]
    assert refusal(lambda: ssm.get_parameters_by_path(Path="svc"))[0] == "ValidationException"
    assert refusal(lambda: ssm.get_parameters_by_path(
        Path="/svc", ParameterFilters=[{"Key": "Name", "Values": ["/svc/a"]}]))[0] == "InvalidFilterKey"

    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": ["/svc"]}])
    assert [p["Name"] for p in described["Parameters"]] == ["/svc/a", "/svc/b", "/svc/deep/c"]
    meta = described["Parameters"][0]
    assert (meta["Tier"], meta["Policies"], meta["Version"], meta["DataType"]) == ("Standard", [], 1, "text")
    tagged = ssm.describe_parameters(ParameterFilters=[{"Key": "tag:team", "Values": ["d"]}])["Parameters"]
    assert [p["Name"] for p in tagged] == ["/svcx/d"]
    begins = ssm.describe_parameters(Filters=[{"Key": "Name", "Values": ["/svcx"]}])["Parameters"]
    assert [p["Name"] for p in begins] == ["/svcx/d"]
    assert refusal(lambda: ssm.describe_parameters(
        ParameterFilters=[{"Key": "Type", "Option": "Contains", "Values": ["String"]}]))[0] == "InvalidFilterOption"
    # One page is at most 50, as in AWS; 51 is refused by the model's bounds.
    assert refusal(lambda: ssm.describe_parameters(MaxResults=51))[0] == "ValidationException"


def test_get_and_delete_many(ssm):
    ssm.put_parameter(Name="many-1", Value="1", Type="String")
    ssm.put_parameter(Name="many-2", Value="2", Type="String")
    got = ssm.get_parameters(Names=["many-1", "many-2", "many-3", "many-1"])
    assert sorted(p["Name"] for p in got["Parameters"]) == ["many-1", "many-2"]
    assert got["InvalidParameters"] == ["many-3"]
    deleted = ssm.delete_parameters(Names=["many-1", "many-2", "many-3"])
    assert (deleted["DeletedParameters"], deleted["InvalidParameters"]) == (["many-1", "many-2"], ["many-3"])
    assert refusal(lambda: ssm.delete_parameter(Name="many-1"))[0] == "ParameterNotFound"


def test_tags_of_a_parameter(ssm):
    ssm.put_parameter(Name="/tagged", Value="v", Type="String", Tags=[{"Key": "env", "Value": "dev"}])
    ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId="/tagged", Tags=[{"Key": "owner", "Value": "me"}])
    ssm.remove_tags_from_resource(ResourceType="Parameter", ResourceId="/tagged", TagKeys=["env"])
    listed = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/tagged")["TagList"]
    assert listed == [{"Key": "owner", "Value": "me"}]
    assert refusal(lambda: ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="/untagged"))[0] == \
        "InvalidResourceId"
    code, _ = refusal(lambda: ssm.put_parameter(
        Name="/tagged", Value="w", Overwrite=True, Tags=[{"Key": "k", "Value": "v"}]))
    assert code == "ValidationException"


def test_what_aws_refuses_and_what_nimbus_does_not_do(ssm):
    assert refusal(lambda: ssm.put_parameter(Name="/aws/service/mine", Value="v", Type="String"))[0] == \
        "AccessDeniedException"
    assert refusal(lambda: ssm.put_parameter(Name="ssm-thing", Value="v", Type="String"))[0] == "ValidationException"
    assert refusal(lambda: ssm.put_parameter(Name="a/b", Value="v", Type="String"))[0] == "ValidationException"
    assert refusal(lambda: ssm.put_parameter(Name="/" + "/".join(["l"] * 16), Value="v", Type="String"))[0] == \
        "HierarchyLevelLimitExceededException"
    assert refusal(lambda: ssm.put_parameter(Name="untyped", Value="v"))[0] == "ValidationException"
    assert refusal(lambda: ssm.put_parameter(Name="big", Value="x" * 4097, Type="String"))[0] == "ValidationException"
    code, message = refusal(lambda: ssm.put_parameter(Name="secret", Value="v", Type="SecureString"))
    assert code == "UnsupportedOperation" and "SecureString" in message
    code, message = refusal(lambda: ssm.put_parameter(Name="adv", Value="v", Type="String", Tier="Advanced"))
    assert code == "UnsupportedOperation" and "Tier=Advanced" in message
    assert ssm.put_parameter(Name="smart", Value="v", Type="String", Tier="Intelligent-Tiering")["Tier"] == "Standard"
    code, _ = refusal(lambda: ssm.put_parameter(Name="port", Value="http", Type="String", AllowedPattern=r"^\d+$"))
    assert code == "ParameterPatternMismatchException"
    assert refusal(lambda: ssm.put_parameter(Name="port", Value="80", Type="String", AllowedPattern="("))[0] == \
        "InvalidAllowedPatternException"
    code, message = refusal(lambda: ssm.put_parameter(
        Name="/ami/none", Value="ami-0123456789abcdef0", Type="String", DataType="aws:ec2:image"))
    assert code == "ValidationException" and "does not exist" in message
    assert refusal(lambda: ssm.send_command(InstanceIds=["i-0123456789abcdef0"], DocumentName="AWS-RunShellScript"))[0] \
        == "UnsupportedOperation"


def test_the_aws_cli_reads_parameters(nimbus, ssm):
    ssm.put_parameter(Name="/cli/greeting", Value="hello", Type="String")
    result = subprocess.run(["aws", "ssm", "get-parameter", "--name", "/cli/greeting", "--output", "json"],
                            env=nimbus.cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Parameter"]["Value"] == "hello"
    result = subprocess.run(["aws", "ssm", "get-parameters-by-path", "--path", "/cli", "--query",
                             "Parameters[].Name", "--output", "text"],
                            env=nimbus.cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/cli/greeting"]
    result = subprocess.run(["aws", "ssm", "get-parameter", "--name", "/cli/none"],
                            env=nimbus.cli_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "ParameterNotFound" in result.stderr


def test_the_javascript_sdk_writes_and_reads_parameters(nimbus):
    result = run_js(nimbus, "parameters")
    assert result["version"] == 1
    assert result["first"] == {"value": "postgres://db", "version": 1, "selector": ":1", "modified": True}
    assert result["byPath"] == [[f"{result['path']}/db/url", "postgres://db2", 2]]
    assert result["reserved"]["name"] == "AccessDeniedException" and result["reserved"]["status"] == 400
    assert result["missing"]["name"] == "ParameterNotFound"


def test_parameters_survive_kill_9(fresh_nimbus):
    fresh_nimbus.start()
    ssm = fresh_nimbus.client("ssm")
    ssm.put_parameter(Name="/durable", Value="one", Type="String")
    ssm.put_parameter(Name="/durable", Value="two", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name="/durable", ParameterVersion=1, Labels=["first"])
    fresh_nimbus.kill9()
    fresh_nimbus.start()
    ssm = fresh_nimbus.client("ssm")
    assert ssm.get_parameter(Name="/durable")["Parameter"]["Value"] == "two"
    assert ssm.get_parameter(Name="/durable:first")["Parameter"]["Value"] == "one"
