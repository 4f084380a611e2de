//! Checks a decoded request against its input shape and brings it to the one form services
//! read, whatever the protocol: JSON keyed by member names, timestamps as ISO 8601 UTC strings
//! with milliseconds, blobs as base64 strings, numbers as numbers.
//!
//! Query forms carry every scalar as text ([`Scalars::Text`]); JSON and CBOR carry typed
//! scalars ([`Scalars::Typed`]).

use base64::Engine;
use serde_json::{Map, Value};

use crate::model::{Kind, Limits, ServiceModel, ShapeId};
use crate::timestamp;

/// Why a request does not fit its operation's input shape; the path names the member.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("The parameter {0} is not recognized.")]
    UnknownMember(String),
    #[error("The request must contain the parameter {0}.")]
    MissingMember(String),
    /// A value of the wrong type or form.
    #[error("{0}")]
    InvalidValue(String),
    /// A well-formed value outside its shape's constraints (length, range, enumeration).
    #[error("{0}")]
    Constraint(String),
}

#[derive(Clone, Copy, PartialEq)]
pub enum Scalars {
    Text,
    Typed,
}

/// Longest excerpt of a bad value quoted back in an error message.
const MAX_QUOTED: usize = 64;

fn quote(value: &Value) -> String {
    let text = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars().take(MAX_QUOTED).collect()
}

fn join(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

fn count(n: usize) -> f64 {
    n as f64
}

/// Conforms `value` to `shape`; `path` names `value` in error messages.
pub fn conform(
    model: &ServiceModel,
    shape: ShapeId,
    value: Value,
    path: &str,
    scalars: Scalars,
) -> Result<Value, InputError> {
    let bad = |why: &str, value: &Value| {
        InputError::InvalidValue(format!(
            "Invalid value '{}' for {path}: {why}.",
            quote(value)
        ))
    };
    let outside = |why: &str, value: &Value| {
        InputError::Constraint(format!(
            "Invalid value '{}' for {path}: {why}.",
            quote(value)
        ))
    };
    let check_length = |length: Limits, n: usize, value: &Value| {
        if length.admits(count(n)) {
            Ok(())
        } else {
            Err(outside(
                &format!("the length must be {}", length.describe()),
                value,
            ))
        }
    };
    match &model.shape(shape).kind {
        Kind::Structure { members, required } => {
            let Value::Object(object) = value else {
                return Err(bad("expected a structure", &value));
            };
            let mut out = Map::new();
            for (key, child) in object {
                if child.is_null() {
                    continue;
                }
                let member = members
                    .iter()
                    .find(|member| member.name == key)
                    .ok_or_else(|| InputError::UnknownMember(join(path, &key)))?;
                let child = conform(
                    model,
                    member.target.shape,
                    child,
                    &join(path, &key),
                    scalars,
                )?;
                out.insert(key, child);
            }
            if let Some(missing) = required
                .iter()
                .map(|position| &members[*position].name)
                .find(|name| !out.contains_key(*name))
            {
                return Err(InputError::MissingMember(join(path, missing)));
            }
            Ok(Value::Object(out))
        }
        Kind::List { member, length, .. } => {
            let Value::Array(elements) = value else {
                return Err(bad("expected a list", &value));
            };
            check_length(*length, elements.len(), &Value::Array(Vec::new()))?;
            elements
                .into_iter()
                .enumerate()
                .map(|(index, element)| {
                    let element_path = join(path, &(index + 1).to_string());
                    conform(model, member.shape, element, &element_path, scalars)
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Kind::Map {
            key: key_shape,
            value: value_shape,
            length,
            ..
        } => {
            let Value::Object(entries) = value else {
                return Err(bad("expected a map", &value));
            };
            check_length(*length, entries.len(), &Value::Object(Map::new()))?;
            let mut out = Map::new();
            for (key, entry) in entries {
                let entry_path = join(path, &key);
                conform(
                    model,
                    key_shape.shape,
                    Value::String(key.clone()),
                    &entry_path,
                    scalars,
                )?;
                let entry = conform(model, value_shape.shape, entry, &entry_path, scalars)?;
                out.insert(key, entry);
            }
            Ok(Value::Object(out))
        }
        Kind::String { allowed, length } => {
            let Value::String(text) = &value else {
                return Err(bad("expected a string", &value));
            };
            if allowed.as_ref().is_some_and(|a| !a.contains(text)) {
                return Err(outside("not one of the accepted values", &value));
            }
            check_length(*length, text.chars().count(), &value)?;
            Ok(value)
        }
        Kind::Integer(limits) => {
            let number = match (&value, scalars) {
                (Value::String(text), Scalars::Text) => text.parse::<i64>().ok(),
                (Value::Number(number), Scalars::Typed) => number.as_i64(),
                _ => None,
            }
            .ok_or_else(|| bad("expected an integer", &value))?;
            if !limits.admits(number as f64) {
                return Err(outside(&format!("must be {}", limits.describe()), &value));
            }
            Ok(Value::from(number))
        }
        Kind::Double(limits) => {
            let number = match (&value, scalars) {
                (Value::String(text), Scalars::Text) => text.parse::<f64>().ok(),
                (Value::Number(number), Scalars::Typed) => number.as_f64(),
                _ => None,
            }
            .filter(|number| number.is_finite())
            .ok_or_else(|| bad("expected a finite number", &value))?;
            if !limits.admits(number) {
                return Err(outside(&format!("must be {}", limits.describe()), &value));
            }
            Ok(Value::from(number))
        }
        Kind::Boolean => match (&value, scalars) {
            (Value::String(text), Scalars::Text) if text == "true" => Ok(Value::Bool(true)),
            (Value::String(text), Scalars::Text) if text == "false" => Ok(Value::Bool(false)),
            (Value::Bool(_), Scalars::Typed) => Ok(value),
            _ => Err(bad("expected true or false", &value)),
        },
        Kind::Timestamp => {
            let parsed = match &value {
                Value::String(text) => timestamp::parse(text),
                Value::Number(number) if scalars == Scalars::Typed => {
                    number.as_f64().and_then(timestamp::from_epoch)
                }
                _ => None,
            }
            .ok_or_else(|| bad("expected a timestamp", &value))?;
            Ok(Value::String(timestamp::iso8601(parsed)))
        }
        Kind::Blob(length) => {
            let decoded = value
                .as_str()
                .and_then(|text| base64::engine::general_purpose::STANDARD.decode(text).ok())
                .ok_or_else(|| bad("expected base64-encoded bytes", &value))?;
            check_length(*length, decoded.len(), &value)?;
            Ok(value)
        }
    }
}
