//! The AWS Query protocol (STS, IAM, Auto Scaling, ELBv2, CloudWatch's Query variant):
//! form requests keyed as botocore's `QuerySerializer` writes them (`Tags.member.1.Key`,
//! `Attributes.entry.1.key`), XML responses `<OpResponse><OpResult>…` and the
//! `<ErrorResponse>` envelope.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::input::{conform, InputError, Scalars};
use crate::model::{Kind, MemberRef, Operation, ServiceModel, ShapeId};
use crate::xml::{XmlWriter, EC2_XMLNS};
use crate::xml_answer::{EncodeError, SendsEmpty, XmlAnswer};

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
pub fn encode_output<T: Serialize + ?Sized>(
    model: &ServiceModel,
    operation: &Operation,
    output: &T,
    request_id: &str,
) -> Result<String, EncodeError> {
    let namespace = model.metadata.xml_namespace.as_deref().unwrap_or_default();
    let root = format!("{}Response", operation.name);
    let mut xml = XmlAnswer::document(model, &|_| true, &root, namespace);
    if let Some(shape) = operation.output {
        let wrapper = operation
            .result_wrapper
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}Result", operation.name));
        xml.value(shape, Some(&wrapper), output)?;
    }
    xml.open("ResponseMetadata");
    xml.leaf("RequestId", request_id);
    xml.close("ResponseMetadata");
    Ok(xml.finish(&root))
}

/// The EC2 dialect of the same answer: `<?xml?><OpResponse xmlns=EC2><requestId/>` and the
/// output's members right under the root (no result wrapper), lists as
/// `<locationName><item>…</item></locationName>` by their `locationName`s. An operation without
/// an output shape answers `<return>true</return>`, as EC2 does. `sends_empty(list shape
/// name)` says whether an empty list is written (`<tagSet></tagSet>`) or left out: EC2 decides
/// that per answer, so the caller holds the table.
pub fn encode_ec2_output<T: Serialize + ?Sized>(
    model: &ServiceModel,
    operation: &Operation,
    output: &T,
    request_id: &str,
    sends_empty: SendsEmpty,
) -> Result<String, EncodeError> {
    let root = format!("{}Response", operation.name);
    let mut xml = XmlAnswer::document(model, sends_empty, &root, EC2_XMLNS);
    xml.leaf("requestId", request_id);
    match operation.output {
        Some(shape) => xml.value(shape, None, output)?,
        None => xml.leaf("return", "true"),
    }
    Ok(xml.finish(&root))
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Maps, flattened lists and `locationName`s, which the committed models do not exercise.
    pub(crate) const MODEL: &str = r#"{
"metadata":{"apiVersion":"2020-01-01","protocol":"query","endpointPrefix":"t","xmlNamespace":"urn:t"},
"operations":["Put"],
"modeled":{"Put":{"input":"PutInput","output":"PutOutput","resultWrapper":"PutResult"}},
"shapes":{
"PutInput":{"type":"structure","required":["Name"],"members":{"Name":{"shape":"S"},"Attrs":{"shape":"M"},"Flat":{"shape":"FL","flattened":true},"Items":{"shape":"L"},"At":{"shape":"T"},"On":{"shape":"B"},"Size":{"shape":"I"}}},
"PutOutput":{"type":"structure","members":{"Attrs":{"shape":"M"},"Flat":{"shape":"FL","flattened":true},"Items":{"shape":"L","locationName":"itemSet"},"At":{"shape":"T"}}},
"M":{"type":"map","key":{"shape":"S","locationName":"Name"},"value":{"shape":"S","locationName":"Value"}},
"FL":{"type":"list","member":{"shape":"S","locationName":"Entry"}},
"L":{"type":"list","member":{"shape":"S"},"max":2},
"S":{"type":"string"},
"T":{"type":"timestamp"},
"B":{"type":"boolean"},
"I":{"type":"integer","min":1}
}}"#;

    fn model() -> ServiceModel {
        ServiceModel::from_json(MODEL).expect("test model")
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn put(model: &ServiceModel) -> Operation<'_> {
        match model.lookup("Put") {
            crate::Lookup::Modeled(operation) => operation,
            _ => panic!("Put is modeled"),
        }
    }

    #[test]
    fn decodes_maps_flattened_lists_and_scalars() {
        let model = model();
        let input = put(&model).input;
        let decoded = decode_input(
            &model,
            input,
            params(&[
                ("Name", "n"),
                ("Attrs.entry.1.Name", "a"),
                ("Attrs.entry.1.Value", "1"),
                ("Attrs.entry.2.Name", "b"),
                ("Attrs.entry.2.Value", ""),
                ("Entry.1", "x"),
                ("Entry.2", "y"),
                ("Items.member.1", "i"),
                ("At", "2026-11-29T13:00:00+01:00"),
                ("On", "true"),
                ("Size", "3"),
            ]),
        )
        .expect("decodes");
        assert_eq!(
            decoded,
            serde_json::json!({"Name": "n", "Attrs": {"a": "1", "b": ""}, "Flat": ["x", "y"],
                               "Items": ["i"], "At": "2026-11-29T12:00:00.000Z", "On": true, "Size": 3})
        );
        let refused = |pairs: &[(&str, &str)]| {
            decode_input(&model, input, params(pairs)).expect_err("refused")
        };
        assert_eq!(
            refused(&[("Name", "n"), ("Attrs.entry.1.Value", "1")]),
            InputError::MissingMember("Attrs.entry.1.Name".into())
        );
        assert_eq!(
            refused(&[("Attrs.entry.1.Name", "a"), ("Attrs.entry.1.Value", "1")]),
            InputError::MissingMember("Name".into())
        );
        assert!(matches!(
            refused(&[("Name", "n"), ("Size", "0")]),
            InputError::Constraint(_)
        ));
        assert!(matches!(
            refused(&[("Name", "n"), ("On", "yes")]),
            InputError::InvalidValue(_)
        ));
        let three = [
            ("Name", "n"),
            ("Items.member.1", "a"),
            ("Items.member.2", "b"),
            ("Items.member.3", "c"),
        ];
        assert!(matches!(refused(&three), InputError::Constraint(_)));
        assert_eq!(
            refused(&[("Name", "n"), ("Name.member.1", "x")]),
            InputError::UnknownMember("Name.member.1".into())
        );
    }

    #[test]
    fn encodes_maps_flattened_lists_and_location_names() {
        let model = model();
        let output = serde_json::json!({"Attrs": {"a": "1"}, "Flat": ["x", "y"], "Items": ["i"],
                                        "At": 1_795_953_600, "Unmodeled": "dropped"});
        let xml = encode_output(&model, &put(&model), &output, "r").expect("encodes");
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PutResponse xmlns=\"urn:t\"><PutResult>\
             <Attrs><entry><Name>a</Name><Value>1</Value></entry></Attrs><Entry>x</Entry><Entry>y</Entry>\
             <itemSet><member>i</member></itemSet><At>2026-11-29T12:00:00.000Z</At></PutResult>\
             <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PutResponse>"
        );
    }

    proptest::proptest! {
        /// Whatever the form, decoding answers (an input or an error), never panics.
        #[test]
        fn never_panics(pairs in proptest::collection::vec(("[A-Za-z.0-9]{0,20}", ".{0,8}"), 0..8)) {
            let model = model();
            let form: Params = pairs.into_iter().collect();
            let _ = decode_input(&model, put(&model).input, form);
        }
    }
}
