//! The protocol codecs against real clients: requests serialized by botocore's own Query, JSON
//! and RPC v2 CBOR serializers, and CloudWatch requests captured from boto3, the aws CLI and
//! the JavaScript SDK v3 (`tests/fixtures/cloudwatch-requests.jsonl`), decode to the
//! parameters they came from.

use std::process::Command;

use awsproto::{decode, detect, HttpRequestParts, Protocol, RequestError};
use base64::Engine;
use serde_json::{json, Value};

/// Prints one JSON line per request: service, protocol, the parameters (timestamps as the
/// ISO 8601 nimbus normalizes to) and the serialized HTTP request. Exits 3 without botocore.
const SERIALIZE: &str = r##"
import base64, datetime, json, sys
try:
    import botocore.session, botocore.serialize
except ImportError:
    sys.exit(3)
session = botocore.session.get_session()
at = datetime.datetime(2026, 11, 29, 12, 0, 0, tzinfo=datetime.timezone.utc)
metric = {"Namespace": "App", "MetricData": [{"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}],
          "Timestamp": at, "Value": 1.5, "Values": [1.0, 2.5], "Counts": [1.0, 2.0], "Unit": "Seconds",
          "StorageResolution": 1}], "StrictEntityValidation": False}
query = {"MetricDataQueries": [{"Id": "q1", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "Latency",
         "Dimensions": [{"Name": "Host", "Value": "a"}]}, "Period": 60, "Stat": "Average"}, "ReturnData": True},
         {"Id": "q2", "Expression": "q1 * 2", "Label": "double"}], "StartTime": at, "EndTime": at, "MaxDatapoints": 100}
requests = [
    ("sts", "query", "GetCallerIdentity", {}),
    ("sts", "query", "AssumeRole", {"RoleArn": "arn:aws:iam::000000000000:role/r", "RoleSessionName": "session",
                                    "DurationSeconds": 900, "Policy": "{\"a\": \"b&c=d\"}",
                                    "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/p1"}, {"arn": "arn:aws:iam::aws:policy/p2"}],
                                    "Tags": [{"Key": "team", "Value": "x y"}], "TransitiveTagKeys": ["team"]}),
    ("sts", "query", "GetSessionToken", {"DurationSeconds": 3600}),
    ("iam", "query", "CreateRole", {"RoleName": "web", "Path": "/app/", "AssumeRolePolicyDocument": "{}",
                                    "MaxSessionDuration": 7200, "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}]}),
    ("iam", "query", "ListRoles", {"PathPrefix": "/", "MaxItems": 10, "Marker": "m"}),
    ("monitoring", "query", "PutMetricData", metric),
    ("monitoring", "query", "GetMetricData", query),
    ("monitoring", "json", "PutMetricData", metric),
    ("monitoring", "json", "GetMetricData", query),
    ("monitoring", "smithy-rpc-v2-cbor", "PutMetricData", metric),
    ("monitoring", "smithy-rpc-v2-cbor", "GetMetricData", query),
]
names = {"monitoring": "cloudwatch"}
def plain(value):
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
for service, protocol, operation, params in requests:
    model = session.get_service_model(names.get(service, service))
    serializer = botocore.serialize.create_serializer(protocol)
    request = serializer.serialize_to_request(params, model.operation_model(operation))
    body = request["body"]
    if isinstance(body, dict):
        from urllib.parse import urlencode
        body = urlencode(body)
    if isinstance(body, str):
        body = body.encode()
    print(json.dumps({"service": service, "protocol": protocol, "operation": operation, "params": plain(params),
                      "path": request["url_path"], "query": request["query_string"] or "",
                      "headers": {k: v for k, v in request["headers"].items()},
                      "body_b64": base64.b64encode(body).decode()}))
"##;

struct Captured {
    service: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Captured {
    fn from_json(line: &Value) -> Captured {
        let text = |key: &str| line[key].as_str().unwrap_or_default().to_owned();
        let headers = line["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        Captured {
            service: text("service"),
            path: text("path"),
            query: if line["query"].is_string() {
                text("query")
            } else {
                String::new()
            },
            headers,
            body: base64::engine::general_purpose::STANDARD
                .decode(text("body_b64"))
                .expect("base64 body"),
        }
    }

    fn wire(&self) -> HttpRequestParts<'_> {
        HttpRequestParts {
            method: "POST",
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

fn botocore_requests() -> Option<Vec<Value>> {
    let output = Command::new("python3")
        .args(["-c", SERIALIZE])
        .output()
        .expect("python3 runs");
    if output.status.code() == Some(3) {
        eprintln!("botocore is not installed: skipped");
        return None;
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = String::from_utf8(output.stdout).expect("utf-8");
    Some(
        lines
            .lines()
            .map(|line| serde_json::from_str(line).expect("json line"))
            .collect(),
    )
}

/// Numbers compare as numbers: botocore's `1.0` and `1` are the same parameter.
fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => expected == actual,
    }
}

#[test]
fn botocore_serialized_requests_decode_to_their_parameters() {
    let Some(requests) = botocore_requests() else {
        return;
    };
    for line in &requests {
        let captured = Captured::from_json(line);
        let model = awsmodel::service(&captured.service).expect("carried model");
        let protocol = detect(&captured.wire()).expect("a detectable protocol");
        let expected_protocol = match line["protocol"].as_str() {
            Some("query") => Protocol::Query,
            Some("smithy-rpc-v2-cbor") => Protocol::RpcV2Cbor,
            _ => Protocol::Json(awsproto::JsonVersion::V1_0),
        };
        assert_eq!(protocol, expected_protocol, "{line}");
        let decoded =
            decode(model, protocol, &captured.wire()).unwrap_or_else(|e| panic!("{e} for {line}"));
        assert_eq!(decoded.operation.name, line["operation"], "{line}");
        assert!(
            same(&line["params"], &decoded.input),
            "{line}\ndecoded as {}",
            decoded.input
        );
    }
}

#[test]
fn cloudwatch_requests_of_three_clients_decode() {
    let model = awsmodel::service("monitoring").expect("monitoring");
    let fixtures = include_str!("fixtures/cloudwatch-requests.jsonl");
    let mut clients = Vec::new();
    for line in fixtures.lines() {
        let mut line: Value = serde_json::from_str(line).expect("fixture line");
        line["service"] = json!("monitoring");
        let captured = Captured::from_json(&line);
        let agent = captured
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .map(|(_, v)| v.split('/').next().unwrap_or_default().to_owned());
        clients.push(agent.unwrap_or_default());
        let protocol = detect(&captured.wire()).expect("detectable");
        // All three send AWS JSON 1.0 today (see docs/protocols.md).
        assert_eq!(protocol, Protocol::Json(awsproto::JsonVersion::V1_0));
        let decoded = decode(model, protocol, &captured.wire()).expect("decodes");
        let timestamp = match decoded.operation.name {
            "PutMetricData" => &decoded.input["MetricData"][0]["Timestamp"],
            _ => &decoded.input["EndTime"],
        };
        assert_eq!(timestamp, "2026-11-29T12:00:00.000Z");
        assert_eq!(captured.service, "monitoring");
    }
    clients.dedup();
    assert_eq!(clients, ["Boto3", "aws-cli", "aws-sdk-js"]);
}

fn query_request(body: &str) -> Result<Value, RequestError> {
    let headers = vec![(
        "Content-Type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let wire = HttpRequestParts {
        method: "POST",
        raw_path: "/",
        raw_query: "",
        headers: &headers,
        body: body.as_bytes(),
    };
    let model = awsmodel::service("sts").expect("sts");
    decode(model, Protocol::Query, &wire).map(|decoded| decoded.input)
}

#[test]
fn query_validation_names_the_parameter_with_aws_codes() {
    let code = |body: &str| {
        query_request(body)
            .expect_err(body)
            .aws_code(Protocol::Query)
    };
    assert_eq!(
        code("Action=AssumeRole&Version=2011-06-15&RoleSessionName=session"),
        "MissingParameter"
    );
    let missing = query_request("Action=AssumeRole&Version=2011-06-15&RoleSessionName=session");
    assert_eq!(
        missing.expect_err("missing").to_string(),
        "The request must contain the parameter RoleArn."
    );
    assert_eq!(
        code("Action=NoSuchThing&Version=2011-06-15"),
        "InvalidAction"
    );
    assert_eq!(code("Version=2011-06-15"), "MissingAction");
    assert_eq!(
        code("Action=GetCallerIdentity&Version=2011-06-15&Extra=1"),
        "ValidationError"
    );
    assert_eq!(
        code("Action=GetSessionToken&Version=2011-06-15&DurationSeconds=soon"),
        "ValidationError"
    );
    assert_eq!(
        code("Action=GetCallerIdentity&Version=2010-05-08"),
        "InvalidAction"
    );
    assert_eq!(
        code("Action=DecodeAuthorizationMessage&Version=2011-06-15&EncodedMessage=x"),
        "UnsupportedOperation"
    );
    // Gaps in a list leave the later elements unclaimed: refused by name, not dropped.
    let gap = "Action=AssumeRole&Version=2011-06-15&RoleArn=a&RoleSessionName=session&TransitiveTagKeys.member.2=x";
    assert_eq!(
        query_request(gap).expect_err("gap").to_string(),
        "The parameter TransitiveTagKeys.member.2 is not recognized."
    );
    let empty = "Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::000000000000:role/r&RoleSessionName=session&TransitiveTagKeys=";
    assert_eq!(
        query_request(empty).expect("empty list")["TransitiveTagKeys"],
        json!([])
    );
}

#[test]
fn outputs_and_errors_are_written_in_each_protocol() {
    let model = awsmodel::service("sts").expect("sts");
    let awsproto::Lookup::Modeled(operation) = model.lookup("GetCallerIdentity") else {
        panic!("modeled");
    };
    let output = json!({"UserId": "u", "Account": "000000000000", "Arn": "arn:aws:iam::000000000000:root", "Extra": 1});
    let answer = awsproto::encode_output(model, Protocol::Query, &operation, &output, "r-1");
    assert_eq!(
        String::from_utf8(answer.body).expect("utf-8"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <GetCallerIdentityResult><UserId>u</UserId><Account>000000000000</Account><Arn>arn:aws:iam::000000000000:root</Arn>\
         </GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
    );

    let iam = awsmodel::service("iam").expect("iam");
    let awsproto::Lookup::Modeled(list_roles) = iam.lookup("ListRoles") else {
        panic!("modeled");
    };
    let roles = json!({"Roles": [{"RoleName": "a", "Path": "/", "RoleId": "AROA1", "Arn": "arn",
                                  "CreateDate": 1_795_953_600, "Tags": []}], "IsTruncated": false});
    let answer = awsproto::encode_output(iam, Protocol::Query, &list_roles, &roles, "r");
    let xml = String::from_utf8(answer.body).expect("utf-8");
    assert!(xml.contains("<ListRolesResult><Roles><member><Path>/</Path><RoleName>a</RoleName><RoleId>AROA1</RoleId><Arn>arn</Arn>\
         <CreateDate>2026-11-29T12:00:00.000Z</CreateDate><Tags></Tags></member></Roles><IsTruncated>false</IsTruncated></ListRolesResult>"), "{xml}");

    let monitoring = awsmodel::service("monitoring").expect("monitoring");
    let style = awsproto::ErrorStyle {
        xml_namespace: monitoring.metadata.xml_namespace.as_deref(),
        query_compatible: true,
    };
    let error = awsproto::WireError {
        status: 400,
        code: "UnsupportedOperation",
        message: "no",
    };
    let json_error = awsproto::encode_error(
        Protocol::Json(awsproto::JsonVersion::V1_0),
        style,
        &error,
        "r",
    );
    assert_eq!(
        json_error.body,
        br#"{"__type":"UnsupportedOperation","message":"no"}"#
    );
    assert!(json_error.headers.contains(&(
        "x-amzn-query-error",
        "UnsupportedOperation;Sender".to_owned()
    )));
    let cbor_error = awsproto::encode_error(Protocol::RpcV2Cbor, style, &error, "r");
    let decoded: ciborium::Value = ciborium::from_reader(&cbor_error.body[..]).expect("cbor");
    assert_eq!(
        decoded.as_map().and_then(|m| m[0].1.as_text()),
        Some("UnsupportedOperation")
    );
    let query_error = awsproto::encode_error(Protocol::Query, style, &error, "r");
    assert_eq!(
        String::from_utf8(query_error.body).expect("utf-8"),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"http://monitoring.amazonaws.com/doc/2010-08-01/\">\
         <Error><Type>Sender</Type><Code>UnsupportedOperation</Code><Message>no</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    );
}
