//! Smithy RPC v2 CBOR: `POST /service/<Service>/operation/<Operation>` with
//! `smithy-protocol: rpc-v2-cbor`, a CBOR map keyed by member names, timestamps as tag 1
//! (epoch seconds), blobs as byte strings, errors as a map with `__type`.

use base64::Engine;
use ciborium::Value as Cbor;
use serde_json::{Map, Value};

use crate::input::{conform, InputError, Scalars};
use crate::model::{Kind, ServiceModel, ShapeId};
use crate::output::{encode, OutputEncoding};
use crate::timestamp;

/// The CBOR tag of an epoch-seconds timestamp.
const EPOCH_TAG: u64 = 1;

fn malformed(why: &str) -> InputError {
    InputError::InvalidValue(format!(
        "The body is not valid CBOR for this operation: {why}."
    ))
}

/// CBOR → JSON as the JSON protocol would carry it (bytes as base64, tag 1 as a number), so
/// that one checker serves both.
fn to_json(value: Cbor) -> Result<Value, InputError> {
    Ok(match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => {
            let wide = i128::from(i);
            i64::try_from(wide)
                .map(Value::from)
                .map_err(|_| malformed("an integer is out of range"))?
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| malformed("a number is not finite"))?,
        Cbor::Text(text) => Value::String(text),
        Cbor::Bytes(bytes) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        Cbor::Array(elements) => Value::Array(
            elements
                .into_iter()
                .map(to_json)
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut object = Map::new();
            for (key, entry) in entries {
                let Cbor::Text(key) = key else {
                    return Err(malformed("a map key is not text"));
                };
                object.insert(key, to_json(entry)?);
            }
            Value::Object(object)
        }
        Cbor::Tag(EPOCH_TAG, inner) => to_json(*inner)?,
        Cbor::Tag(..) => return Err(malformed("an unknown tag")),
        _ => return Err(malformed("an unsupported item")),
    })
}

/// Decodes a CBOR body (empty means an empty map) by the operation's input shape.
pub fn decode_input(
    model: &ServiceModel,
    input: Option<ShapeId>,
    body: &[u8],
) -> Result<Value, InputError> {
    let value = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        let cbor: Cbor = ciborium::from_reader(body).map_err(|e| malformed(&e.to_string()))?;
        to_json(cbor)?
    };
    match input {
        Some(shape) => conform(model, shape, value, "", Scalars::Typed),
        None => match value {
            Value::Object(object) if object.is_empty() => Ok(Value::Object(object)),
            _ => Err(malformed("this operation takes no input")),
        },
    }
}

struct CborEncoding;

impl OutputEncoding for CborEncoding {
    type Node = Cbor;

    fn object(&self, entries: Vec<(String, Cbor)>) -> Cbor {
        Cbor::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Cbor::Text(k), v))
                .collect(),
        )
    }

    fn array(&self, elements: Vec<Cbor>) -> Cbor {
        Cbor::Array(elements)
    }

    fn scalar(&self, kind: &Kind, value: &Value) -> Cbor {
        let at = match (kind, value) {
            (Kind::Timestamp, Value::String(text)) => timestamp::parse(text),
            (Kind::Timestamp, Value::Number(n)) => n.as_f64().and_then(timestamp::from_epoch),
            _ => None,
        };
        if let Some(at) = at {
            let seconds = Cbor::Float(timestamp::epoch_seconds(at));
            return Cbor::Tag(EPOCH_TAG, Box::new(seconds));
        }
        match (kind, value) {
            (Kind::Blob(_), Value::String(text)) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Cbor::Bytes)
                .unwrap_or_else(|_| Cbor::Text(text.clone())),
            _ => plain(value),
        }
    }
}

fn plain(value: &Value) -> Cbor {
    match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(text) => Cbor::Text(text.clone()),
        Value::Array(elements) => Cbor::Array(elements.iter().map(plain).collect()),
        Value::Object(object) => Cbor::Map(
            object
                .iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), plain(v)))
                .collect(),
        ),
    }
}

fn to_bytes(value: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

/// The response body: the output by its shape, or an empty map.
pub fn encode_output(model: &ServiceModel, output: Option<ShapeId>, value: &Value) -> Vec<u8> {
    let encoded = match output {
        Some(shape) => encode(model, shape, value, &CborEncoding),
        None => Cbor::Map(Vec::new()),
    };
    to_bytes(&encoded)
}

pub fn encode_error(code: &str, message: &str) -> Vec<u8> {
    to_bytes(&Cbor::Map(vec![
        (Cbor::Text("__type".into()), Cbor::Text(code.into())),
        (Cbor::Text("message".into()), Cbor::Text(message.into())),
    ]))
}
