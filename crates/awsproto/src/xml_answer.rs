//! The XML of AWS Query answers and of their EC2 dialect, written straight from any
//! `Serialize` value (JSON keyed by member names, or a service's own answer struct with the
//! same member names) as the output shape says, into one `String`.
//!
//! The shape decides everything on the wire: element names (`locationName`s), list wrappers
//! and element names, timestamps, which members exist. Only the values come from the
//! answer, so a typed answer and a JSON one give the same bytes. Serializing straight into
//! XML spares the intermediate `serde_json::Value` per item that large Describe answers
//! would otherwise build and walk.
//!
//! Elements follow the model's member order, whatever order the value serializes its
//! members in (a JSON object's are sorted by name): each structure records where each
//! member's XML starts and, if members came out of order, puts them in order at its end.

use std::fmt::{Display, Write};

use base64::Engine;
use serde::ser::{self, Impossible, Serialize};

use crate::model::{Kind, Member, ServiceModel, ShapeId};
use crate::timestamp;
use crate::xml::{escape_into, XML_DECLARATION};

/// Whether an empty list of the named shape is written (`<name></name>`) or left out.
pub type SendsEmpty<'a> = &'a dyn Fn(&str) -> bool;

/// A value that did not serialize (only a `Serialize` impl's own error can cause one).
#[derive(Debug, thiserror::Error)]
#[error("The answer could not be encoded: {0}")]
pub struct EncodeError(String);

impl ser::Error for EncodeError {
    fn custom<T: Display>(message: T) -> EncodeError {
        EncodeError(message.to_string())
    }
}

type Result<T> = std::result::Result<T, EncodeError>;

/// One XML answer being written.
pub(crate) struct XmlAnswer<'m> {
    model: &'m ServiceModel,
    sends_empty: SendsEmpty<'m>,
    out: String,
    /// The members written so far by the structures still open, innermost last: each
    /// member's position in its shape and where its XML starts in `out`.
    written: Vec<(usize, usize)>,
    /// Where out-of-order members are copied while they are put in order.
    scratch: String,
}

impl<'m> XmlAnswer<'m> {
    /// An answer with the XML declaration and `<root xmlns="namespace">` written.
    pub(crate) fn document(
        model: &'m ServiceModel,
        sends_empty: SendsEmpty<'m>,
        root: &str,
        namespace: &str,
    ) -> XmlAnswer<'m> {
        let mut out = String::with_capacity(4096);
        out.push_str(XML_DECLARATION);
        out.push('<');
        out.push_str(root);
        out.push_str(" xmlns=\"");
        escape_into(&mut out, namespace);
        out.push_str("\">");
        XmlAnswer {
            model,
            sends_empty,
            out,
            written: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Writes `value` as shape `shape`: under `<name>`, or with `name` `None`, a structure's
    /// members right where the answer stands (EC2's answers have no result wrapper).
    pub(crate) fn value<T: Serialize + ?Sized>(
        &mut self,
        shape: ShapeId,
        name: Option<&str>,
        value: &T,
    ) -> Result<()> {
        self.element(shape, name, false, value)
    }

    /// Writes `value` as shape `shape`, its list or map flattened when `flattened` (a
    /// member's own `flattened`) or its shape says so.
    fn element<T: Serialize + ?Sized>(
        &mut self,
        shape: ShapeId,
        name: Option<&str>,
        flattened: bool,
        value: &T,
    ) -> Result<()> {
        value.serialize(Element {
            answer: self,
            shape,
            name,
            flattened,
        })
    }

    pub(crate) fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        escape_into(&mut self.out, text);
        self.close(name);
    }

    /// Closes the root element and gives the document.
    pub(crate) fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out
    }

    pub(crate) fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    pub(crate) fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// Puts the members written since `base` in the model's order (they are already, unless
    /// the value serialized them in another order).
    fn order_members(&mut self, base: usize) {
        let members = &self.written[base..];
        if members.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            return;
        }
        let Some(first) = members.iter().map(|&(_, start)| start).min() else {
            return;
        };
        // Each member's XML runs to where the next one written starts.
        self.scratch.clear();
        self.scratch.push_str(&self.out[first..]);
        let end = self.out.len();
        let mut spans: Vec<(usize, usize, usize)> = members
            .iter()
            .enumerate()
            .map(|(i, &(position, start))| {
                let next = members.get(i + 1).map_or(end, |&(_, next)| next);
                (position, start - first, next - first)
            })
            .collect();
        spans.sort_by_key(|&(position, _, _)| position);
        self.out.truncate(first);
        for (_, start, end) in spans {
            self.out.push_str(&self.scratch[start..end]);
        }
    }
}

/// The member of `members` named `name`, looked for from `from` on: members usually come in
/// the model's order, so the next one is usually the one after the last found.
fn find_member(members: &[Member], from: usize, name: &str) -> Option<usize> {
    let later = members.get(from..).unwrap_or_default();
    let found = later.iter().position(|member| member.name == name);
    found.map(|i| i + from).or_else(|| {
        members[..from.min(members.len())]
            .iter()
            .position(|member| member.name == name)
    })
}

/// A timestamp as the answer writes it: ISO 8601 UTC with milliseconds; text that is not a
/// timestamp is written as given.
fn timestamp_text(text: &str) -> Option<String> {
    if is_canonical_timestamp(text) {
        return None;
    }
    timestamp::parse(text).map(timestamp::iso8601)
}

/// Whether `text` is already `YYYY-MM-DDTHH:MM:SS.mmmZ` with a time of day in range, which
/// parsing and writing again would give back unchanged (the common case: services write
/// their timestamps so).
fn is_canonical_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    let digits_at = |i: usize| b[i].is_ascii_digit();
    b.len() == 24
        && (0..24).all(|i| match i {
            4 | 7 => b[i] == b'-',
            10 => b[i] == b'T',
            13 | 16 => b[i] == b':',
            19 => b[i] == b'.',
            23 => b[i] == b'Z',
            _ => digits_at(i),
        })
        && &text[11..13] <= "23"
        && b[14] <= b'5'
        && b[17] <= b'5'
}

/// Serializes one value as one element (or, with no name, as members in place).
struct Element<'e, 'm> {
    answer: &'e mut XmlAnswer<'m>,
    shape: ShapeId,
    name: Option<&'e str>,
    /// The member's own `flattened` (a list or map is also flattened if its shape says so).
    flattened: bool,
}

impl<'e, 'm> Element<'e, 'm> {
    fn kind(&self) -> &'m Kind {
        &self.answer.model.shape(self.shape).kind
    }

    /// A scalar: `<name>text</name>`, timestamps in ISO 8601.
    fn text(self, text: &str) -> Result<()> {
        let Some(name) = self.name else {
            return Ok(());
        };
        let rewritten = match self.kind() {
            Kind::Timestamp => timestamp_text(text),
            _ => None,
        };
        self.answer.leaf(name, rewritten.as_deref().unwrap_or(text));
        Ok(())
    }

    /// A number; a timestamp given as epoch seconds is written in ISO 8601.
    fn number(self, number: impl Display, seconds: f64) -> Result<()> {
        if let Kind::Timestamp = self.kind() {
            if let Some(at) = timestamp::from_epoch(seconds) {
                return self.text(&timestamp::iso8601(at));
            }
        }
        let Some(name) = self.name else {
            return Ok(());
        };
        let answer = self.answer;
        answer.open(name);
        // Writing into a String cannot fail.
        let _ = write!(answer.out, "{number}");
        answer.close(name);
        Ok(())
    }

    /// The writer of a structure's members, a map's entries, or nothing (a value that does
    /// not fit its shape is left out).
    fn members(self) -> Members<'e, 'm> {
        let model = self.answer.model;
        let mode = match (&model.shape(self.shape).kind, self.name) {
            (Kind::Structure { members, .. }, name) => Mode::Structure {
                members,
                base: self.answer.written.len(),
                next: 0,
                pending: None,
                close: name,
            },
            (
                Kind::Map {
                    key,
                    value,
                    flattened,
                    ..
                },
                Some(name),
            ) => {
                let flattened = *flattened || self.flattened;
                Mode::Map {
                    entry: if flattened { name } else { "entry" },
                    key: key.location_name.as_deref().unwrap_or("key"),
                    value: value.shape,
                    value_name: value.location_name.as_deref().unwrap_or("value"),
                    close: (!flattened).then_some(name),
                }
            }
            _ => Mode::Skip,
        };
        let answer = self.answer;
        match mode {
            Mode::Structure {
                close: Some(name), ..
            }
            | Mode::Map {
                close: Some(name), ..
            } => answer.open(name),
            _ => {}
        }
        Members { answer, mode }
    }

    /// The writer of a list's elements (nothing for a value that does not fit its shape).
    fn elements(self) -> Elements<'e, 'm> {
        let model = self.answer.model;
        let shape = model.shape(self.shape);
        let (
            Kind::List {
                member, flattened, ..
            },
            Some(name),
        ) = (&shape.kind, self.name)
        else {
            return Elements {
                answer: self.answer,
                list: None,
            };
        };
        let flattened = *flattened || self.flattened;
        let element_name = match (flattened, &member.location_name) {
            (_, Some(location)) => location.as_str(),
            (true, None) => name,
            (false, None) => "member",
        };
        let start = self.answer.out.len();
        let wrapper = (!flattened).then_some(name);
        if let Some(wrapper) = wrapper {
            self.answer.open(wrapper);
        }
        Elements {
            answer: self.answer,
            list: Some(List {
                shape: &shape.name,
                element: member.shape,
                element_name,
                wrapper,
                start,
                count: 0,
            }),
        }
    }
}

impl<'e, 'm> ser::Serializer for Element<'e, 'm> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Elements<'e, 'm>;
    type SerializeTuple = Elements<'e, 'm>;
    type SerializeTupleStruct = Impossible<(), EncodeError>;
    type SerializeTupleVariant = Impossible<(), EncodeError>;
    type SerializeMap = Members<'e, 'm>;
    type SerializeStruct = Members<'e, 'm>;
    type SerializeStructVariant = Impossible<(), EncodeError>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.text(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.number(v, f64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.number(v, f64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.number(v, f64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.number(v, v as f64)
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.number(v, f64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.number(v, f64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.number(v, f64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.number(v, v as f64)
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        // As JSON writes it (`1.0`, not `1`): the same text whether the answer is typed or JSON.
        match serde_json::Number::from_f64(v) {
            Some(number) => self.number(number, v),
            None => self.number(v, v),
        }
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.text(v)
    }
    /// Blobs are base64, as they are in JSON answers.
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.text(&base64::engine::general_purpose::STANDARD.encode(v))
    }
    /// A missing member (`None`, JSON's `null`) is left out.
    fn serialize_none(self) -> Result<()> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }
    /// An enum of names (`KeyType::Rsa` renamed `rsa`) is its name.
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.text(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Elements<'e, 'm>> {
        Ok(self.elements())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Elements<'e, 'm>> {
        Ok(self.elements())
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(ser::Error::custom(format!(
            "{name}: tuple structs have no XML form"
        )))
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(ser::Error::custom(format!(
            "{name}: tuple variants have no XML form"
        )))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Members<'e, 'm>> {
        Ok(self.members())
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Members<'e, 'm>> {
        Ok(self.members())
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        _: u32,
        _: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(ser::Error::custom(format!(
            "{name}: struct variants have no XML form"
        )))
    }
}

/// A list being written; `None` when the value does not fit the shape and is left out.
pub(crate) struct Elements<'e, 'm> {
    answer: &'e mut XmlAnswer<'m>,
    list: Option<List<'e, 'm>>,
}

struct List<'e, 'm> {
    /// The list shape's name, which decides whether an empty list is written.
    shape: &'m str,
    element: ShapeId,
    element_name: &'e str,
    /// `<name>` around the elements, unless the list is flattened.
    wrapper: Option<&'e str>,
    /// Where the list's XML starts, to take it back if it stays empty and is left out.
    start: usize,
    count: usize,
}

impl ser::SerializeSeq for Elements<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let Some(list) = &mut self.list else {
            return Ok(());
        };
        list.count += 1;
        self.answer
            .value(list.element, Some(list.element_name), value)
    }

    fn end(self) -> Result<()> {
        let Some(list) = self.list else {
            return Ok(());
        };
        if list.count == 0 && !(self.answer.sends_empty)(list.shape) {
            self.answer.out.truncate(list.start);
        } else if let Some(wrapper) = list.wrapper {
            self.answer.close(wrapper);
        }
        Ok(())
    }
}

impl ser::SerializeTuple for Elements<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<()> {
        ser::SerializeSeq::end(self)
    }
}

/// A structure's members or a map's entries being written.
pub(crate) struct Members<'e, 'm> {
    answer: &'e mut XmlAnswer<'m>,
    mode: Mode<'e, 'm>,
}

enum Mode<'e, 'm> {
    Structure {
        members: &'m [Member],
        /// Where this structure's members start in `XmlAnswer::written`.
        base: usize,
        /// Where to look for the next member first.
        next: usize,
        /// The member whose key was given (`serialize_key`), waiting for its value.
        pending: Option<usize>,
        /// The element to close at the end; `None` for members written in place.
        close: Option<&'e str>,
    },
    Map {
        entry: &'e str,
        key: &'m str,
        value: ShapeId,
        value_name: &'m str,
        close: Option<&'e str>,
    },
    Skip,
}

impl Members<'_, '_> {
    /// Writes the member at `position` of the structure; `None` is a member the shape does not
    /// have, left out: only modeled members reach the wire.
    fn member<T: Serialize + ?Sized>(&mut self, position: Option<usize>, value: &T) -> Result<()> {
        let Mode::Structure { members, next, .. } = &mut self.mode else {
            return Ok(());
        };
        let Some(position) = position else {
            return Ok(());
        };
        *next = position + 1;
        let member = &members[position];
        let start = self.answer.out.len();
        self.answer.written.push((position, start));
        let target = &member.target;
        let name = Some(member.wire_name());
        self.answer
            .element(target.shape, name, target.flattened, value)
    }

    /// The position of the member named `name` in the structure.
    fn position(&self, name: &str) -> Option<usize> {
        match &self.mode {
            Mode::Structure { members, next, .. } => find_member(members, *next, name),
            _ => None,
        }
    }

    fn end_members(self) -> Result<()> {
        let answer = self.answer;
        match self.mode {
            Mode::Structure { base, close, .. } => {
                answer.order_members(base);
                answer.written.truncate(base);
                if let Some(name) = close {
                    answer.close(name);
                }
            }
            Mode::Map {
                close: Some(name), ..
            } => answer.close(name),
            Mode::Map { close: None, .. } | Mode::Skip => {}
        }
        Ok(())
    }
}

impl ser::SerializeMap for Members<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        match &mut self.mode {
            Mode::Structure {
                members,
                next,
                pending,
                ..
            } => {
                let from = *next;
                *pending = key.serialize(KeyText(|name: &str| find_member(members, from, name)))?;
            }
            Mode::Map {
                entry, key: name, ..
            } => {
                let (entry, name) = (*entry, *name);
                self.answer.open(entry);
                let answer = &mut *self.answer;
                key.serialize(KeyText(|text: &str| answer.leaf(name, text)))?;
            }
            Mode::Skip => {}
        }
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        match &mut self.mode {
            Mode::Structure { pending, .. } => {
                let position = pending.take();
                self.member(position, value)
            }
            Mode::Map {
                entry,
                value: shape,
                value_name,
                ..
            } => {
                let (entry, shape, value_name) = (*entry, *shape, *value_name);
                self.answer.value(shape, Some(value_name), value)?;
                self.answer.close(entry);
                Ok(())
            }
            Mode::Skip => Ok(()),
        }
    }

    fn end(self) -> Result<()> {
        self.end_members()
    }
}

impl ser::SerializeStruct for Members<'_, '_> {
    type Ok = ();
    type Error = EncodeError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        if let Mode::Map { .. } = self.mode {
            ser::SerializeMap::serialize_key(self, key)?;
            return ser::SerializeMap::serialize_value(self, value);
        }
        let position = self.position(key);
        self.member(position, value)
    }

    fn end(self) -> Result<()> {
        self.end_members()
    }
}

/// Hands a key's text to a function: JSON objects' keys (member names, map keys) are strings.
struct KeyText<F>(F);

fn not_text() -> EncodeError {
    ser::Error::custom("keys of structures and maps are text")
}

/// The `Serializer` methods of kinds a key cannot be.
macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $out:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$out> { Err(not_text()) })*
    };
}

impl<R, F: FnOnce(&str) -> R> ser::Serializer for KeyText<F> {
    type Ok = R;
    type Error = EncodeError;
    type SerializeSeq = Impossible<R, EncodeError>;
    type SerializeTuple = Impossible<R, EncodeError>;
    type SerializeTupleStruct = Impossible<R, EncodeError>;
    type SerializeTupleVariant = Impossible<R, EncodeError>;
    type SerializeMap = Impossible<R, EncodeError>;
    type SerializeStruct = Impossible<R, EncodeError>;
    type SerializeStructVariant = Impossible<R, EncodeError>;

    fn serialize_str(self, v: &str) -> Result<R> {
        Ok((self.0)(v))
    }
    fn serialize_char(self, v: char) -> Result<R> {
        Ok((self.0)(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<R> {
        Ok((self.0)(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<R> {
        v.serialize(self)
    }
    refuse! {
        serialize_bool(bool) -> R;
        serialize_i8(i8) -> R;
        serialize_i16(i16) -> R;
        serialize_i32(i32) -> R;
        serialize_i64(i64) -> R;
        serialize_u8(u8) -> R;
        serialize_u16(u16) -> R;
        serialize_u32(u32) -> R;
        serialize_u64(u64) -> R;
        serialize_f32(f32) -> R;
        serialize_f64(f64) -> R;
        serialize_bytes(&[u8]) -> R;
        serialize_none() -> R;
        serialize_unit() -> R;
        serialize_unit_struct(&'static str) -> R;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<R> {
        Err(not_text())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<R> {
        Err(not_text())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::query::{encode_output, tests::MODEL};
    use crate::Lookup;

    fn put_answer<T: Serialize>(output: &T) -> String {
        let model = ServiceModel::from_json(MODEL).expect("test model");
        let Lookup::Modeled(put) = model.lookup("Put") else {
            panic!("Put is modeled");
        };
        encode_output(&model, &put, output, "r").expect("encodes")
    }

    /// Fields in another order than the model's, a map, a flattened list, an epoch
    /// timestamp: a struct answers as the JSON of the same members.
    #[test]
    fn structs_answer_as_their_json() {
        #[derive(serde::Serialize)]
        struct Put {
            #[serde(rename = "At")]
            at: u64,
            #[serde(rename = "Items")]
            items: Vec<&'static str>,
            #[serde(rename = "Flat")]
            flat: [&'static str; 2],
            #[serde(rename = "Attrs")]
            attrs: BTreeMap<&'static str, &'static str>,
            #[serde(rename = "Unmodeled")]
            unmodeled: bool,
        }
        let typed = Put {
            at: 1_795_953_600,
            items: vec!["i"],
            flat: ["x", "y"],
            attrs: [("a", "1"), ("b&", "2")].into(),
            unmodeled: true,
        };
        let json = serde_json::json!({"Attrs": {"a": "1", "b&": "2"}, "Flat": ["x", "y"],
                                      "Items": ["i"], "At": 1_795_953_600});
        let xml = put_answer(&typed);
        assert_eq!(xml, put_answer(&json));
        assert!(xml.contains(
            "<PutResult><Attrs><entry><Name>a</Name><Value>1</Value></entry><entry><Name>b&amp;\
             </Name><Value>2</Value></entry></Attrs><Entry>x</Entry><Entry>y</Entry><itemSet>\
             <member>i</member></itemSet><At>2026-11-29T12:00:00.000Z</At></PutResult>"
        ));
    }

    #[test]
    fn timestamps_are_written_in_iso8601_unless_they_are_not_timestamps() {
        let at = |text: &str| put_answer(&serde_json::json!({ "At": text }));
        assert!(at("2026-11-29T13:00:00+01:00").contains("<At>2026-11-29T12:00:00.000Z</At>"));
        assert!(at("2026-11-29T12:00:00.000Z").contains("<At>2026-11-29T12:00:00.000Z</At>"));
        assert!(at("soon & later").contains("<At>soon &amp; later</At>"));
        // Already in the answer's form: written as is, parsed only when out of range.
        assert!(is_canonical_timestamp("2026-11-29T23:59:59.999Z"));
        for text in [
            "2026-11-29T24:00:00.000Z",
            "2026-11-29T12:60:00.000Z",
            "2026-12-31T23:59:60.000Z",
            "2026-11-29T12:00:00.000+00:00",
            "2026-11-29 12:00:00.000Z",
        ] {
            assert!(!is_canonical_timestamp(text), "{text}");
        }
    }

    #[test]
    fn an_empty_list_is_written_or_left_out_as_the_caller_says() {
        let model = ServiceModel::from_json(MODEL).expect("test model");
        let Lookup::Modeled(put) = model.lookup("Put") else {
            panic!("Put is modeled");
        };
        let output = serde_json::json!({"Items": [], "Flat": []});
        let keeps = |shape: &str| shape == "L";
        let xml = crate::encode_ec2_output(&model, &put, &output, "r", &keeps).expect("encodes");
        assert!(xml.contains("<itemSet></itemSet>") && !xml.contains("Entry"));
        let drops = |_: &str| false;
        let xml = crate::encode_ec2_output(&model, &put, &output, "r", &drops).expect("encodes");
        assert!(xml.ends_with("<requestId>r</requestId></PutResponse>"));
    }
}
