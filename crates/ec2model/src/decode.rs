//! EC2 Query form → JSON keyed by member names. Each key is walked through the model once
//! (`Filter.1.Value.2`: member, index, member, index) into a typed tree of partial values;
//! a second pass turns the tree into JSON, orders list elements and checks required members
//! and list lengths.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use serde_json::{Map, Value};

use awsproto::Limits;

use crate::model::{model, Kind, Model, ShapeId};
use crate::DecodeError;

/// Largest list index accepted (`Key.10000`).
const MAX_INDEX: u32 = 10_000;
/// Most elements accepted in one list.
const MAX_LIST_LENGTH: usize = 1_000;
/// Longest excerpt of a bad value quoted back in an error message.
const MAX_QUOTED: usize = 64;

enum Partial {
    Structure(BTreeMap<usize, Partial>),
    List(BTreeMap<u32, Partial>),
    /// A scalar whose value is being converted; never left behind by a successful insert.
    Unset,
    Scalar(Value),
}

impl Partial {
    fn empty(kind: &Kind) -> Partial {
        match kind {
            Kind::Structure(_) => Partial::Structure(BTreeMap::new()),
            Kind::List { .. } => Partial::List(BTreeMap::new()),
            _ => Partial::Unset,
        }
    }
}

/// Decodes the parameters of `action`: the whole form without `Action` and `Version`
/// (SigV4 presign keys, `X-Amz-*`, are ignored too).
pub fn decode(action: &str, params: &[(String, String)]) -> Result<Value, DecodeError> {
    let model = model();
    let input = model
        .input(action)
        .ok_or_else(|| DecodeError::UnknownAction(action.to_owned()))?;
    let mut params = params.iter().filter(|(key, _)| !key.starts_with("X-Amz-"));
    let Some(input) = input else {
        return match params.next() {
            Some((key, _)) => Err(DecodeError::UnknownParameter(key.clone())),
            None => Ok(Value::Object(Map::new())),
        };
    };
    let mut root = Partial::Structure(BTreeMap::new());
    for (key, value) in params {
        insert(model, input, &mut root, key, value)?;
    }
    finish(model, input, root, &mut String::new())
}

/// Walks `key` from the input structure down to its shape and stores the converted value.
fn insert(
    model: &Model,
    input: ShapeId,
    root: &mut Partial,
    key: &str,
    value: &str,
) -> Result<(), DecodeError> {
    let mut shape = input;
    let mut node = root;
    for segment in key.split('.') {
        let child_shape;
        node = match (&model.shape(shape).kind, node) {
            (Kind::Structure(structure), Partial::Structure(members)) => {
                let position = *structure
                    .by_wire_key
                    .get(segment)
                    .ok_or_else(|| DecodeError::UnknownParameter(key.to_owned()))?;
                child_shape = structure.members[position].shape;
                members
                    .entry(position)
                    .or_insert_with(|| Partial::empty(&model.shape(child_shape).kind))
            }
            (Kind::List { member, .. }, Partial::List(elements)) => {
                let index = list_index(segment).ok_or_else(|| {
                    invalid(format!(
                        "{key} has the list index '{}', expected 1 to {MAX_INDEX}",
                        quote(segment)
                    ))
                })?;
                if elements.len() >= MAX_LIST_LENGTH && !elements.contains_key(&index) {
                    return Err(invalid(format!(
                        "{key}: a list has at most {MAX_LIST_LENGTH} elements"
                    )));
                }
                child_shape = *member;
                elements
                    .entry(index)
                    .or_insert_with(|| Partial::empty(&model.shape(child_shape).kind))
            }
            // A scalar has nothing below it.
            _ => return Err(DecodeError::UnknownParameter(key.to_owned())),
        };
        shape = child_shape;
    }
    match node {
        Partial::Unset => {
            *node = Partial::Scalar(scalar(&model.shape(shape).kind, key, value)?);
            Ok(())
        }
        Partial::Scalar(_) => Err(invalid(format!("{key} is given more than once"))),
        // `Key=` with nothing after it stands for an empty list or structure.
        Partial::Structure(_) | Partial::List(_) if value.is_empty() => Ok(()),
        Partial::Structure(_) => Err(invalid(format!(
            "{key} is a structure: give its members as {key}.Name"
        ))),
        Partial::List(_) => Err(invalid(format!(
            "{key} is a list: give its elements as {key}.1, {key}.2, …"
        ))),
    }
}

/// A canonical 1-based index (`7`, not `07` or `+7`), at most `MAX_INDEX`.
fn list_index(segment: &str) -> Option<u32> {
    let canonical = !segment.is_empty()
        && segment.len() <= 5
        && !segment.starts_with('0')
        && segment.bytes().all(|b| b.is_ascii_digit());
    canonical
        .then(|| segment.parse().ok())
        .flatten()
        .filter(|index| *index <= MAX_INDEX)
}

fn scalar(kind: &Kind, key: &str, text: &str) -> Result<Value, DecodeError> {
    let bad = |why: &str| invalid(format!("Invalid value '{}' for {key}: {why}", quote(text)));
    Ok(match kind {
        Kind::String { allowed, length } => {
            if let Some(allowed) = allowed.as_ref().filter(|allowed| !allowed.contains(text)) {
                return Err(bad(&not_accepted(allowed)));
            }
            if !length.admits(text.chars().count() as f64) {
                return Err(bad(&format!("the length must be {}", length.describe())));
            }
            Value::String(text.to_owned())
        }
        Kind::Integer(limits) => {
            let number: i64 = text.parse().map_err(|_| bad("not an integer"))?;
            if !limits.admits(number as f64) {
                return Err(bad(&format!("must be {}", limits.describe())));
            }
            Value::from(number)
        }
        Kind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("expected true or false")),
        },
        Kind::Double => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("not a finite number"))?,
        Kind::Timestamp => {
            if !is_timestamp(text) {
                return Err(bad("not an ISO 8601 timestamp"));
            }
            Value::String(text.to_owned())
        }
        Kind::Blob => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| bad("not valid base64"))?;
            Value::String(text.to_owned())
        }
        Kind::Structure(_) | Kind::List { .. } => {
            return Err(invalid(format!("{key} is not a single value")))
        }
    })
}

/// Names the accepted values when they are few enough to read.
fn not_accepted(allowed: &HashSet<String>) -> String {
    const MAX_LISTED: usize = 12;
    if allowed.len() > MAX_LISTED {
        return "not one of the accepted values".to_owned();
    }
    let mut values: Vec<&str> = allowed.iter().map(String::as_str).collect();
    values.sort_unstable();
    format!("expected one of {}", values.join(", "))
}

/// ISO 8601 as clients send it (`2024-05-01T12:00:00Z`, with fractions or an offset, or a
/// plain date), or epoch seconds.
pub(crate) fn is_timestamp(text: &str) -> bool {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    time::OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || time::OffsetDateTime::parse(text, &Iso8601::DEFAULT).is_ok()
        || time::PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).is_ok()
        || time::Date::parse(text, &Iso8601::DEFAULT).is_ok()
        || text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Turns the tree into JSON, checking what needs the whole request: required members and
/// list lengths. `path` is the wire key of `partial`, for error messages.
fn finish(
    model: &Model,
    shape: ShapeId,
    partial: Partial,
    path: &mut String,
) -> Result<Value, DecodeError> {
    match (&model.shape(shape).kind, partial) {
        (Kind::Structure(structure), Partial::Structure(members)) => {
            if let Some(missing) = structure
                .required
                .iter()
                .find(|position| !members.contains_key(position))
            {
                return Err(DecodeError::MissingParameter(join(
                    path,
                    &structure.members[*missing].wire_key,
                )));
            }
            let mut object = Map::new();
            for (position, child) in members {
                let member = &structure.members[position];
                let parent_length = path.len();
                push_segment(path, &member.wire_key);
                let value = finish(model, member.shape, child, path)?;
                path.truncate(parent_length);
                object.insert(member.name.clone(), value);
            }
            Ok(Value::Object(object))
        }
        (Kind::List { member, length, .. }, Partial::List(elements)) => {
            check_list_length(*length, elements.len(), path)?;
            let mut values = Vec::with_capacity(elements.len());
            for (index, child) in elements {
                let parent_length = path.len();
                push_segment(path, &index.to_string());
                values.push(finish(model, *member, child, path)?);
                path.truncate(parent_length);
            }
            Ok(Value::Array(values))
        }
        (_, Partial::Scalar(value)) => Ok(value),
        _ => Err(invalid(format!("{path} has no value"))),
    }
}

fn check_list_length(length: Limits, count: usize, path: &str) -> Result<(), DecodeError> {
    if length.admits(count as f64) {
        return Ok(());
    }
    Err(invalid(format!(
        "{path} has {count} elements; the number must be {}",
        length.describe()
    )))
}

fn push_segment(path: &mut String, segment: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
}

fn join(path: &str, segment: &str) -> String {
    let mut joined = path.to_owned();
    push_segment(&mut joined, segment);
    joined
}

fn invalid(message: String) -> DecodeError {
    DecodeError::InvalidParameterValue(message)
}

/// A bounded excerpt of untrusted text for error messages.
fn quote(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn code(action: &str, pairs: &[(&str, &str)]) -> Result<Value, &'static str> {
        decode(action, &form(pairs)).map_err(|e| e.aws_code())
    }

    #[test]
    fn decodes_nested_lists_in_index_order() {
        let value = decode(
            "DescribeTags",
            &form(&[
                ("Filter.2.Name", "key"),
                ("Filter.2.Value.1", "a"),
                ("Filter.1.Name", "value"),
                ("Filter.1.Value.30", "z"),
                ("Filter.1.Value.1", "x"),
                ("MaxResults", "50"),
                ("DryRun", "true"),
                ("X-Amz-Date", "20240101T000000Z"),
            ]),
        );
        assert_eq!(
            value,
            Ok(json!({
                "Filters": [{"Name": "value", "Values": ["x", "z"]}, {"Name": "key", "Values": ["a"]}],
                "MaxResults": 50,
                "DryRun": true
            }))
        );
    }

    #[test]
    fn decodes_structures_inside_lists() {
        let run = decode(
            "RunInstances",
            &form(&[
                ("ImageId", "ami-1"),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("InstanceType", "t3.micro"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
                ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "false"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", ""),
                ("MetadataOptions.HttpTokens", "required"),
            ]),
        )
        .expect("decodes");
        assert_eq!(
            run["BlockDeviceMappings"],
            json!([{"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 8, "DeleteOnTermination": false}}])
        );
        assert_eq!(
            run["TagSpecifications"],
            json!([{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": ""}]}])
        );
        assert_eq!(run["MetadataOptions"], json!({"HttpTokens": "required"}));
        let import = decode(
            "ImportKeyPair",
            &form(&[("KeyName", "k"), ("PublicKeyMaterial", "c3NoLWVkMjU1MTk=")]),
        );
        assert_eq!(
            import,
            Ok(json!({"KeyName": "k", "PublicKeyMaterial": "c3NoLWVkMjU1MTk="}))
        );
    }

    #[test]
    fn empty_value_stands_for_an_empty_list() {
        assert_eq!(
            code("DescribeKeyPairs", &[("KeyName", "")]),
            Ok(json!({"KeyNames": []}))
        );
        assert_eq!(
            code("DescribeKeyPairs", &[("KeyName", "k")]),
            Err("InvalidParameterValue")
        );
    }

    #[test]
    fn unknown_parameters_are_named() {
        for key in [
            "Colour",
            "Filter.1.Name.Extra",
            "Filter.1.Colour",
            "dryRun",
            "DryRun.1",
        ] {
            assert_eq!(
                decode("DescribeRegions", &form(&[(key, "x")])),
                Err(DecodeError::UnknownParameter(key.to_owned())),
                "{key}"
            );
        }
    }

    #[test]
    fn missing_parameters_are_named_by_wire_key() {
        assert_eq!(
            decode("CreateKeyPair", &[]),
            Err(DecodeError::MissingParameter("KeyName".into()))
        );
        assert_eq!(
            decode("RunInstances", &form(&[("MinCount", "1")])),
            Err(DecodeError::MissingParameter("MaxCount".into()))
        );
        assert_eq!(
            decode(
                "RunInstances",
                &form(&[
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("ElasticGpuSpecification.2.Colour", "")
                ])
            ),
            Err(DecodeError::UnknownParameter(
                "ElasticGpuSpecification.2.Colour".into()
            ))
        );
        assert_eq!(
            decode(
                "RunInstances",
                &form(&[("MinCount", "1"), ("MaxCount", "1"), ("Monitoring", "")])
            ),
            Err(DecodeError::MissingParameter("Monitoring.Enabled".into()))
        );
        assert_eq!(
            decode(
                "RunInstances",
                &form(&[
                    ("MinCount", "1"),
                    ("MaxCount", "1"),
                    ("ElasticInferenceAccelerator.3.Count", "1")
                ])
            ),
            Err(DecodeError::MissingParameter(
                "ElasticInferenceAccelerator.3.Type".into()
            ))
        );
        assert_eq!(
            decode(
                "AttachVolume",
                &form(&[("VolumeId", "vol-1"), ("Device", "/dev/sdf")])
            ),
            Err(DecodeError::MissingParameter("InstanceId".into()))
        );
        assert_eq!(
            decode(
                "ModifyInstanceAttribute",
                &form(&[("InstanceType.Value", "t3.micro")])
            ),
            Err(DecodeError::MissingParameter("InstanceId".into()))
        );
    }

    #[test]
    fn bad_values_are_invalid() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("DescribeTags", &[("MaxResults", "lots")]),
            ("DescribeTags", &[("MaxResults", "99999999999999999999")]),
            ("DescribeTags", &[("DryRun", "yes")]),
            ("DescribeTags", &[("DryRun", "True")]),
            ("DescribeTags", &[("DryRun", "true"), ("DryRun", "false")]),
            ("DescribeTags", &[("Filter", "x")]),
            ("DescribeTags", &[("Filter.0.Name", "x")]),
            ("DescribeTags", &[("Filter..Name", "x")]),
            ("DescribeTags", &[("Filter.01.Name", "x")]),
            ("DescribeTags", &[("Filter.+1.Name", "x")]),
            ("DescribeTags", &[("Filter.one.Name", "x")]),
            ("DescribeTags", &[("Filter.10001.Name", "x")]),
            ("DescribeTags", &[("Filter.99999999999999999999.Name", "x")]),
            ("DescribeTags", &[("Filter.1", "x")]),
            // Below the model's minimum (5) and above its maximum (100).
            ("DescribeInstanceTypes", &[("MaxResults", "4")]),
            ("DescribeInstanceTypes", &[("MaxResults", "101")]),
            (
                "CreateVolume",
                &[("AvailabilityZone", "a"), ("VolumeType", "gp9")],
            ),
            (
                "ImportKeyPair",
                &[("KeyName", "a"), ("PublicKeyMaterial", "%%%")],
            ),
            // Names are 3 to 128 characters long.
            ("CreateImage", &[("InstanceId", "i-1"), ("Name", "ab")]),
        ];
        for (action, pairs) in cases {
            assert_eq!(
                code(action, pairs),
                Err("InvalidParameterValue"),
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn enums_are_enforced_except_open_ones() {
        let error = decode(
            "CreateVolume",
            &form(&[("AvailabilityZone", "a"), ("VolumeType", "gp9")]),
        );
        assert_eq!(
            error,
            Err(DecodeError::InvalidParameterValue(
                "Invalid value 'gp9' for VolumeType: expected one of gp2, gp3, io1, io2, sc1, st1, standard"
                    .into()
            ))
        );
        // botocore lists two account attributes; EC2 answers more.
        assert_eq!(
            code(
                "DescribeAccountAttributes",
                &[("AttributeName.1", "max-instances")]
            ),
            Ok(json!({"AttributeNames": ["max-instances"]}))
        );
    }

    #[test]
    fn list_lengths_are_bounded() {
        let keys: Vec<(String, String)> = (1..=1001)
            .map(|i| (format!("KeyName.{i}"), "k".to_owned()))
            .collect();
        assert_eq!(
            decode("DescribeKeyPairs", &keys[..1000])
                .map(|v| v["KeyNames"].as_array().map(Vec::len)),
            Ok(Some(1000))
        );
        assert_eq!(
            decode("DescribeKeyPairs", &keys).map_err(|e| e.aws_code()),
            Err("InvalidParameterValue")
        );
        // The model allows at most 100 instance types per request.
        let types: Vec<(String, String)> = (1..=101)
            .map(|i| (format!("InstanceType.{i}"), "t3.micro".to_owned()))
            .collect();
        assert_eq!(
            decode("DescribeInstanceTypes", &types).map_err(|e| e.aws_code()),
            Err("InvalidParameterValue")
        );
        // A large index is fine on its own and costs nothing.
        assert_eq!(
            code(
                "DescribeKeyPairs",
                &[("KeyName.10000", "k"), ("KeyName.2", "j")]
            ),
            Ok(json!({"KeyNames": ["j", "k"]}))
        );
    }

    #[test]
    fn unknown_actions_and_inputs_without_members() {
        assert_eq!(code("NoSuchAction", &[]), Err("InvalidAction"));
        assert_eq!(code("DescribeRegions", &[]), Ok(json!({})));
    }

    #[test]
    fn messages_quote_a_bounded_excerpt() {
        let long = "x".repeat(10_000);
        let message = decode("DescribeTags", &form(&[("MaxResults", &long)]))
            .expect_err("not an integer")
            .to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("MaxResults"), "{message}");
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "Filter",
                "Name",
                "Value",
                "1",
                "2",
                "0",
                "10000",
                "10001",
                "",
                "Ebs",
                "BlockDeviceMapping",
                "TagSpecification",
                "Tag",
                "Key",
                "KeyName",
                "InstanceId",
                "MaxResults",
                "DryRun",
                "VolumeSize",
                "MetadataOptions",
                "HttpTokens",
            ])
            .prop_map(str::to_owned),
            "[A-Za-z0-9.]{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn garbage_never_panics(
            action in prop::sample::select(vec![
                "DescribeTags", "RunInstances", "CreateVolume", "ImportKeyPair", "RegisterImage",
                "DescribeInstanceTypes", "ModifyInstanceAttribute", "NoSuchAction",
            ]),
            pairs in prop::collection::vec(
                (prop::collection::vec(segment(), 1..6), prop_oneof![
                    Just(String::new()), Just("true".to_owned()), Just("8".to_owned()),
                    Just("-1".to_owned()), Just("gp3".to_owned()), any::<String>(),
                ]),
                0..12,
            ),
        ) {
            let params: Vec<(String, String)> =
                pairs.into_iter().map(|(segments, value)| (segments.join("."), value)).collect();
            if let Ok(value) = decode(action, &params) {
                prop_assert!(value.is_object());
            }
        }
    }
}
