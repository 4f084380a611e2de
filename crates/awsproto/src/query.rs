//! The AWS Query protocol (STS, IAM, Auto Scaling, ELBv2, CloudWatch's Query variant):
//! form requests keyed as botocore's `QuerySerializer` writes them (`Tags.member.1.Key`,
//! `Attributes.entry.1.key`), XML responses `<OpResponse><OpResult>…` and the
//! `<ErrorResponse>` envelope.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::input::{conform, InputError, Scalars};
use crate::model::{Kind, MemberRef, Operation, ServiceModel, ShapeId};
use crate::timestamp;
use crate::xml::XmlWriter;

/// The form's parameters without `Action` and `Version`, each key once.
pub type Params = BTreeMap<String, String>;

fn join(prefix: &str, segment: &str) -> String {
    if prefix.is_empty() {
        segment.to_owned()
    } else {
        format!("{prefix}.{segment}")
    }
}

/// Decodes `params` by the operation's input shape; every key must be consumed.
pub fn decode_input(
    model: &ServiceModel,
    input: Option<ShapeId>,
    mut params: Params,
) -> Result<Value, InputError> {
    let value = match input {
        Some(shape) => gather(model, shape, false, "", &mut params)?
            .unwrap_or_else(|| Value::Object(Map::new())),
        None => Value::Object(Map::new()),
    };
    if let Some(key) = params.into_keys().next() {
        return Err(InputError::UnknownMember(key));
    }
    match input {
        Some(shape) => conform(model, shape, value, "", Scalars::Text),
        None => Ok(value),
    }
}

/// Takes the keys at and under `prefix` out of `params` into a value of `shape` (text scalars),
/// or `None` when there are none.
fn gather(
    model: &ServiceModel,
    shape: ShapeId,
    flattened_ref: bool,
    prefix: &str,
    params: &mut Params,
) -> Result<Option<Value>, InputError> {
    match &model.shape(shape).kind {
        Kind::Structure { members, .. } => {
            let mut object = Map::new();
            for member in members {
                let key = join(prefix, member.wire_name());
                let found = gather(
                    model,
                    member.target.shape,
                    member.target.flattened,
                    &key,
                    params,
                )?;
                if let Some(value) = found {
                    object.insert(member.name.clone(), value);
                }
            }
            let empty_given = !prefix.is_empty() && take_empty(params, prefix);
            Ok((prefix.is_empty() || empty_given || !object.is_empty()).then_some(object.into()))
        }
        Kind::List {
            member, flattened, ..
        } => {
            let base = element_prefix(prefix, member, *flattened || flattened_ref);
            let mut elements = Vec::new();
            while let Some(element) = gather(
                model,
                member.shape,
                false,
                &join(&base, &(elements.len() + 1).to_string()),
                params,
            )? {
                elements.push(element);
            }
            let empty_given = take_empty(params, prefix);
            Ok((empty_given || !elements.is_empty()).then_some(Value::Array(elements)))
        }
        Kind::Map {
            key,
            value,
            flattened,
            ..
        } => {
            let base = if *flattened || flattened_ref {
                prefix.to_owned()
            } else {
                join(prefix, "entry")
            };
            let mut entries = Map::new();
            for index in 1.. {
                let entry = join(&base, &index.to_string());
                let key_name = join(&entry, key.location_name.as_deref().unwrap_or("key"));
                let value_name = join(&entry, value.location_name.as_deref().unwrap_or("value"));
                let found_key = gather(model, key.shape, false, &key_name, params)?;
                let found_value = gather(model, value.shape, false, &value_name, params)?;
                match (found_key, found_value) {
                    (None, None) => break,
                    (Some(Value::String(k)), Some(v)) => {
                        entries.insert(k, v);
                    }
                    (Some(_), None) => return Err(InputError::MissingMember(value_name)),
                    _ => return Err(InputError::MissingMember(key_name)),
                }
            }
            let empty_given = take_empty(params, prefix);
            Ok((empty_given || !entries.is_empty()).then_some(Value::Object(entries)))
        }
        _ => Ok(params.remove(prefix).map(Value::String)),
    }
}

/// `Name=` with nothing after it stands for an empty list, map or structure.
fn take_empty(params: &mut Params, key: &str) -> bool {
    if params.get(key).is_some_and(String::is_empty) {
        params.remove(key);
        true
    } else {
        false
    }
}

/// Where a list's elements are numbered: `Name.member.N`, or for a flattened list `Name.N`
/// (with the last segment renamed to the element's `locationName` when it has one).
fn element_prefix(prefix: &str, member: &MemberRef, flattened: bool) -> String {
    match (flattened, &member.location_name) {
        (false, name) => join(prefix, name.as_deref().unwrap_or("member")),
        (true, None) => prefix.to_owned(),
        (true, Some(name)) => match prefix.rsplit_once('.') {
            Some((parent, _)) => join(parent, name),
            None => name.clone(),
        },
    }
}

/// `<?xml?><OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata>…</OpResponse>`
pub fn encode_output(
    model: &ServiceModel,
    operation: &Operation,
    output: &Value,
    request_id: &str,
) -> String {
    let mut xml = XmlWriter::document();
    let namespace = model.metadata.xml_namespace.as_deref().unwrap_or_default();
    xml.start_with_namespace(&format!("{}Response", operation.name), namespace);
    if let Some(shape) = operation.output {
        let wrapper = operation
            .result_wrapper
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}Result", operation.name));
        write_value(&mut xml, model, shape, &wrapper, output);
    }
    xml.start("ResponseMetadata");
    xml.leaf("RequestId", request_id);
    xml.finish()
}

fn write_value(
    xml: &mut XmlWriter,
    model: &ServiceModel,
    shape: ShapeId,
    name: &str,
    value: &Value,
) {
    match (&model.shape(shape).kind, value) {
        (_, Value::Null) => {}
        (Kind::Structure { members, .. }, Value::Object(object)) => {
            xml.start(name);
            for member in members {
                if let Some(child) = object.get(&member.name) {
                    write_member(xml, model, &member.target, member.wire_name(), child);
                }
            }
            xml.end();
        }
        (Kind::List { .. } | Kind::Map { .. }, _) => {
            write_member(xml, model, &unflattened(shape), name, value)
        }
        (kind, scalar) => xml.leaf(name, &scalar_text(kind, scalar)),
    }
}

fn unflattened(shape: ShapeId) -> MemberRef {
    MemberRef {
        shape,
        location_name: None,
        flattened: false,
    }
}

/// Writes a structure member: lists and maps wrapped in `<name>` unless flattened.
fn write_member(
    xml: &mut XmlWriter,
    model: &ServiceModel,
    target: &MemberRef,
    name: &str,
    value: &Value,
) {
    match (&model.shape(target.shape).kind, value) {
        (
            Kind::List {
                member, flattened, ..
            },
            Value::Array(elements),
        ) => {
            let flattened = *flattened || target.flattened;
            let element_name = match (flattened, &member.location_name) {
                (_, Some(location)) => location.as_str(),
                (true, None) => name,
                (false, None) => "member",
            };
            if !flattened {
                xml.start(name);
            }
            for element in elements {
                write_value(xml, model, member.shape, element_name, element);
            }
            if !flattened {
                xml.end();
            }
        }
        (
            Kind::Map {
                key,
                value: value_ref,
                flattened,
                ..
            },
            Value::Object(entries),
        ) => {
            let flattened = *flattened || target.flattened;
            if !flattened {
                xml.start(name);
            }
            for (entry_key, entry_value) in entries {
                xml.start(if flattened { name } else { "entry" });
                xml.leaf(key.location_name.as_deref().unwrap_or("key"), entry_key);
                let value_name = value_ref.location_name.as_deref().unwrap_or("value");
                write_value(xml, model, value_ref.shape, value_name, entry_value);
                xml.end();
            }
            if !flattened {
                xml.end();
            }
        }
        _ => write_value(xml, model, target.shape, name, value),
    }
}

/// A scalar as XML text: timestamps in ISO 8601, whatever form the service gave.
fn scalar_text(kind: &Kind, value: &Value) -> String {
    let at = match (kind, value) {
        (Kind::Timestamp, Value::String(text)) => timestamp::parse(text),
        (Kind::Timestamp, Value::Number(n)) => n.as_f64().and_then(timestamp::from_epoch),
        _ => None,
    };
    match (at, value) {
        (Some(at), _) => timestamp::iso8601(at),
        (None, Value::String(text)) => text.clone(),
        (None, other) => other.to_string(),
    }
}

/// `<ErrorResponse><Error><Type>Sender|Receiver</Type><Code/><Message/></Error><RequestId/>`
pub fn encode_error(
    namespace: Option<&str>,
    code: &str,
    message: &str,
    sender_fault: bool,
    request_id: &str,
) -> String {
    let mut xml = XmlWriter::document();
    match namespace {
        Some(namespace) => xml.start_with_namespace("ErrorResponse", namespace),
        None => xml.start("ErrorResponse"),
    }
    xml.start("Error");
    xml.leaf("Type", if sender_fault { "Sender" } else { "Receiver" });
    xml.leaf("Code", code);
    xml.leaf("Message", message);
    xml.end();
    xml.leaf("RequestId", request_id);
    xml.finish()
}
