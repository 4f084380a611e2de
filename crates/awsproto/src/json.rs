//! AWS JSON 1.0 and 1.1: `X-Amz-Target: Prefix.Operation`, a JSON body keyed by member names,
//! timestamps as epoch seconds, errors as `{"__type": Code, "message": …}`.

use serde_json::{Map, Value};

use crate::input::{conform, InputError, Scalars};
use crate::model::{Kind, ServiceModel, ShapeId};
use crate::output::{encode, OutputEncoding};
use crate::timestamp;

/// Decodes a JSON body (empty means `{}`) by the operation's input shape.
pub fn decode_input(
    model: &ServiceModel,
    input: Option<ShapeId>,
    body: &[u8],
) -> Result<Value, InputError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| InputError::InvalidValue(format!("The body is not valid JSON: {e}.")))?
    };
    match input {
        Some(shape) => conform(model, shape, value, "", Scalars::Typed),
        None => match value {
            Value::Object(object) if object.is_empty() => Ok(Value::Object(object)),
            Value::Object(object) => Err(InputError::UnknownMember(
                object.keys().next().cloned().unwrap_or_default(),
            )),
            _ => Err(InputError::InvalidValue(
                "The body must be a JSON object.".to_owned(),
            )),
        },
    }
}

struct JsonEncoding;

impl OutputEncoding for JsonEncoding {
    type Node = Value;

    fn object(&self, entries: Vec<(String, Value)>) -> Value {
        Value::Object(entries.into_iter().collect())
    }

    fn array(&self, elements: Vec<Value>) -> Value {
        Value::Array(elements)
    }

    fn scalar(&self, kind: &Kind, value: &Value) -> Value {
        match (kind, value) {
            (Kind::Timestamp, Value::String(text)) => timestamp::parse(text)
                .map(|at| Value::from(timestamp::epoch_seconds(at)))
                .unwrap_or_else(|| value.clone()),
            _ => value.clone(),
        }
    }
}

/// The response body: the output by its shape, or `{}` for an operation without output.
pub fn encode_output(model: &ServiceModel, output: Option<ShapeId>, value: &Value) -> Vec<u8> {
    let encoded = match output {
        Some(shape) => encode(model, shape, value, &JsonEncoding),
        None => Value::Object(Map::new()),
    };
    encoded.to_string().into_bytes()
}

pub fn encode_error(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({ "__type": code, "message": message })
        .to_string()
        .into_bytes()
}
