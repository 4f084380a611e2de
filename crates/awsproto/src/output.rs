//! Encodes a service's output (JSON keyed by member names) by its shape into a protocol's
//! document tree: one walk, with the per-protocol choices (how a timestamp or a blob is
//! written) in an [`OutputEncoding`].

use serde_json::Value;

use crate::model::{Kind, ServiceModel, ShapeId};

pub trait OutputEncoding {
    type Node;
    fn object(&self, entries: Vec<(String, Self::Node)>) -> Self::Node;
    fn array(&self, elements: Vec<Self::Node>) -> Self::Node;
    /// A scalar of `kind`; `value` is as the service wrote it (timestamps as ISO 8601
    /// strings or epoch numbers, blobs as base64).
    fn scalar(&self, kind: &Kind, value: &Value) -> Self::Node;
}

/// Members the shape does not have are left out: only modeled members reach the wire.
pub fn encode<E: OutputEncoding>(
    model: &ServiceModel,
    shape: ShapeId,
    value: &Value,
    encoding: &E,
) -> E::Node {
    match (&model.shape(shape).kind, value) {
        (Kind::Structure { members, .. }, Value::Object(object)) => encoding.object(
            members
                .iter()
                .filter_map(|member| {
                    let child = object.get(&member.name).filter(|child| !child.is_null())?;
                    let node = encode(model, member.target.shape, child, encoding);
                    Some((member.name.clone(), node))
                })
                .collect(),
        ),
        (Kind::List { member, .. }, Value::Array(elements)) => encoding.array(
            elements
                .iter()
                .map(|element| encode(model, member.shape, element, encoding))
                .collect(),
        ),
        (Kind::Map { value: entry, .. }, Value::Object(entries)) => encoding.object(
            entries
                .iter()
                .map(|(key, child)| (key.clone(), encode(model, entry.shape, child, encoding)))
                .collect(),
        ),
        (kind, scalar) => encoding.scalar(kind, scalar),
    }
}
