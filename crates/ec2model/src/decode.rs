//! EC2 Query form → JSON, by the model. Keys are split on `.` into a tree; each structure
//! consumes its members' keys, lists consume 1-based indexes. Anything left over is unknown.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};

use crate::model::{model, Kind, Model};
use crate::DecodeError;

const MAX_INDEX: u64 = 10_000;
const MAX_LIST_LENGTH: usize = 1_000;
const MAX_DEPTH: usize = 12;

#[derive(Default)]
struct Node<'a> {
    value: Option<&'a str>,
    children: BTreeMap<&'a str, Node<'a>>,
}

fn build_tree(params: &[(String, String)]) -> Result<Node<'_>, DecodeError> {
    let mut root = Node::default();
    for (key, value) in params {
        let segments: Vec<&str> = key.split('.').collect();
        if segments.len() > MAX_DEPTH || segments.iter().any(|s| s.is_empty()) {
            return Err(DecodeError::UnknownParameter(key.clone()));
        }
        let mut node = &mut root;
        for segment in segments {
            node = node.children.entry(segment).or_default();
        }
        node.value = Some(value.as_str());
    }
    Ok(root)
}

/// Decodes the parameters of `action` (without `Action` and `Version`).
pub fn decode(action: &str, params: &[(String, String)]) -> Result<Value, DecodeError> {
    let model = model();
    let input = model
        .inputs
        .get(action)
        .ok_or_else(|| DecodeError::UnknownAction(action.to_owned()))?;
    let tree = build_tree(params)?;
    match input {
        Some(shape) => decode_structure(model, *shape, &tree, ""),
        None if tree.children.is_empty() => Ok(Value::Object(Map::new())),
        None => Err(DecodeError::UnknownParameter(first_key(&tree, ""))),
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn first_key(node: &Node, prefix: &str) -> String {
    match node.children.iter().next() {
        Some((key, child)) if child.value.is_none() => first_key(child, &join(prefix, key)),
        Some((key, _)) => join(prefix, key),
        None => prefix.to_owned(),
    }
}

fn decode_structure(
    model: &Model,
    shape: usize,
    node: &Node,
    prefix: &str,
) -> Result<Value, DecodeError> {
    let Some(Kind::Structure {
        by_query_key,
        required,
        ..
    }) = model.shapes.get(shape)
    else {
        return Err(DecodeError::InvalidParameterValue(format!(
            "{prefix} is not a structure"
        )));
    };
    if node.value.is_some() && !prefix.is_empty() {
        return Err(DecodeError::InvalidParameterValue(format!(
            "{prefix} cannot have a value of its own"
        )));
    }
    let mut object = Map::new();
    for (key, child) in &node.children {
        let path = join(prefix, key);
        let member = by_query_key
            .get(*key)
            .ok_or_else(|| DecodeError::UnknownParameter(path.clone()))?;
        object.insert(
            member.name.clone(),
            decode_value(model, member.shape, child, &path)?,
        );
    }
    for key in required {
        if !node.children.contains_key(key.as_str()) {
            return Err(DecodeError::MissingParameter(join(prefix, key)));
        }
    }
    Ok(Value::Object(object))
}

fn decode_value(
    model: &Model,
    shape: usize,
    node: &Node,
    path: &str,
) -> Result<Value, DecodeError> {
    let invalid = |why: &str| {
        DecodeError::InvalidParameterValue(format!("Invalid value for parameter {path}: {why}"))
    };
    let kind = model
        .shapes
        .get(shape)
        .ok_or_else(|| invalid("unknown shape"))?;
    if let Kind::Structure { .. } = kind {
        return decode_structure(model, shape, node, path);
    }
    if let Kind::List { member, .. } = kind {
        return decode_list(model, *member, node, path);
    }
    if let Some((child, _)) = node.children.iter().next() {
        return Err(DecodeError::UnknownParameter(join(path, child)));
    }
    let text = node.value.unwrap_or_default();
    Ok(match kind {
        // Enums are not enforced here: botocore's lists lag behind what EC2 accepts (e.g.
        // account attribute names), so handlers validate the values they act on.
        Kind::String { .. } => Value::String(text.to_owned()),
        Kind::Integer { min, max } => {
            let number: i64 = text
                .trim()
                .parse()
                .map_err(|_| invalid(&format!("'{text}' is not an integer")))?;
            if min.is_some_and(|m| number < m) || max.is_some_and(|m| number > m) {
                return Err(invalid(&format!("{number} is out of range")));
            }
            Value::from(number)
        }
        Kind::Boolean => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(invalid(&format!("'{text}' is not true or false"))),
        },
        Kind::Double => {
            let number: f64 = text
                .trim()
                .parse()
                .map_err(|_| invalid(&format!("'{text}' is not a number")))?;
            serde_json::Number::from_f64(number)
                .map(Value::Number)
                .ok_or_else(|| invalid(&format!("'{text}' is not a finite number")))?
        }
        Kind::Timestamp => {
            let well_formed =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .is_ok()
                    || text.parse::<f64>().is_ok_and(f64::is_finite);
            if !well_formed {
                return Err(invalid(&format!("'{text}' is not an ISO 8601 timestamp")));
            }
            Value::String(text.to_owned())
        }
        Kind::Blob => {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| invalid("the value is not valid base64"))?;
            Value::String(text.to_owned())
        }
        Kind::Structure { .. } | Kind::List { .. } => return Err(invalid("unexpected shape")),
    })
}

fn decode_list(
    model: &Model,
    member: usize,
    node: &Node,
    path: &str,
) -> Result<Value, DecodeError> {
    if node.value.is_some() {
        return Err(DecodeError::InvalidParameterValue(format!(
            "{path} is a list: use {path}.1, {path}.2, …"
        )));
    }
    if node.children.len() > MAX_LIST_LENGTH {
        return Err(DecodeError::InvalidParameterValue(format!(
            "{path} has more than {MAX_LIST_LENGTH} elements"
        )));
    }
    let mut elements: Vec<(u64, Value)> = Vec::with_capacity(node.children.len());
    for (key, child) in &node.children {
        let index: u64 = key
            .parse()
            .ok()
            .filter(|i| (1..=MAX_INDEX).contains(i))
            .ok_or_else(|| {
                DecodeError::InvalidParameterValue(format!(
                    "{} is not a valid list index (1–{MAX_INDEX})",
                    join(path, key)
                ))
            })?;
        elements.push((index, decode_value(model, member, child, &join(path, key))?));
    }
    elements.sort_by_key(|(index, _)| *index);
    Ok(Value::Array(
        elements.into_iter().map(|(_, value)| value).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decodes_nested_lists_and_types() {
        let value = decode(
            "DescribeTags",
            &form(&[
                ("Filter.2.Name", "key"),
                ("Filter.2.Value.1", "a"),
                ("Filter.1.Name", "value"),
                ("Filter.1.Value.3", "z"),
                ("Filter.1.Value.1", "x"),
                ("MaxResults", "50"),
                ("DryRun", "true"),
            ]),
        )
        .expect("decodes");
        assert_eq!(
            value,
            serde_json::json!({
                "Filters": [{"Name": "value", "Values": ["x", "z"]}, {"Name": "key", "Values": ["a"]}],
                "MaxResults": 50,
                "DryRun": true
            })
        );
        let run = decode(
            "RunInstances",
            &form(&[
                ("ImageId", "ami-1"),
                ("MinCount", "1"),
                ("MaxCount", "2"),
                ("BlockDeviceMapping.1.DeviceName", "/dev/sdf"),
                ("BlockDeviceMapping.1.Ebs.VolumeSize", "8"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
            ]),
        )
        .expect("decodes");
        assert_eq!(run["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"], 8);
        assert_eq!(run["TagSpecifications"][0]["Tags"][0]["Key"], "Name");
    }

    #[test]
    fn reports_errors_by_kind() {
        let code = |action: &str, pairs: &[(&str, &str)]| {
            decode(action, &form(pairs)).map_err(|e| e.aws_code())
        };
        assert_eq!(
            code("DescribeRegions", &[("Colour", "x")]),
            Err("UnknownParameter")
        );
        assert_eq!(code("CreateKeyPair", &[]), Err("MissingParameter"));
        assert_eq!(
            code("DescribeTags", &[("MaxResults", "lots")]),
            Err("InvalidParameterValue")
        );
        assert_eq!(
            code("DescribeTags", &[("DryRun", "yes")]),
            Err("InvalidParameterValue")
        );
        assert_eq!(
            code("DescribeTags", &[("Filter.0.Name", "x")]),
            Err("InvalidParameterValue")
        );
        assert_eq!(
            code("DescribeTags", &[("Filter.99999999999999999999.Name", "x")]),
            Err("InvalidParameterValue")
        );
        assert_eq!(
            code("DescribeTags", &[("Filter.1.Name.Extra", "x")]),
            Err("UnknownParameter")
        );
        assert_eq!(
            code("DescribeTags", &[("Filter..Name", "x")]),
            Err("UnknownParameter")
        );
        assert_eq!(
            code("DescribeTags", &[("Filter", "x")]),
            Err("InvalidParameterValue")
        );
        assert_eq!(
            code(
                "ImportKeyPair",
                &[("KeyName", "a"), ("PublicKeyMaterial", "%%%")]
            ),
            Err("InvalidParameterValue")
        );
        assert_eq!(code("NoSuchAction", &[]), Err("InvalidAction"));
    }
}
