//! A service model: a committed subset of botocore's `service-2.json` (see
//! `scripts/gen-awsmodel.py`), parsed once into shapes indexed by number. The protocol codecs
//! walk these shapes; they never name a service's members themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Deserialize;

#[derive(Deserialize)]
struct RawModel {
    metadata: Metadata,
    operations: BTreeSet<String>,
    modeled: HashMap<String, RawOperation>,
    shapes: BTreeMap<String, RawShape>,
}

/// The protocol facts of a service, as botocore's model states them.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub protocol: String,
    #[serde(default)]
    pub protocols: Vec<String>,
    pub target_prefix: Option<String>,
    pub json_version: Option<String>,
    pub xml_namespace: Option<String>,
    pub signing_name: Option<String>,
    pub endpoint_prefix: String,
    /// A JSON or CBOR service that also speaks Query: its errors carry the Query code in
    /// `x-amzn-query-error`, which query-compatible clients show.
    pub aws_query_compatible: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOperation {
    input: Option<String>,
    output: Option<String>,
    result_wrapper: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMember {
    shape: String,
    location_name: Option<String>,
    #[serde(default)]
    flattened: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    /// In the model's order, which is the order of XML elements in responses.
    #[serde(default, deserialize_with = "in_order")]
    members: Vec<(String, RawMember)>,
    #[serde(default)]
    required: Vec<String>,
    member: Option<RawMember>,
    key: Option<RawMember>,
    value: Option<RawMember>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    flattened: bool,
}

/// A JSON object's entries in document order (serde_json's map would sort them).
fn in_order<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, RawMember)>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<(String, RawMember)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of members")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    deserializer.deserialize_map(Entries)
}

pub type ShapeId = usize;

/// Inclusive bounds from the model: a value for numbers, a length for strings, lists and maps.
#[derive(Clone, Copy, Default, Debug)]
pub struct Limits {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Limits {
    pub fn admits(self, value: f64) -> bool {
        self.min.is_none_or(|min| value >= min) && self.max.is_none_or(|max| value <= max)
    }

    pub fn describe(self) -> String {
        match (self.min, self.max) {
            (Some(min), Some(max)) => format!("between {min} and {max}"),
            (Some(min), None) => format!("at least {min}"),
            (None, Some(max)) => format!("at most {max}"),
            (None, None) => "unbounded".to_owned(),
        }
    }
}

/// A reference to a shape from a structure member, a list element or a map key or value.
#[derive(Debug)]
pub struct MemberRef {
    pub shape: ShapeId,
    /// `locationName`: the XML element name and Query key, when it differs from the default.
    pub location_name: Option<String>,
    pub flattened: bool,
}

#[derive(Debug)]
pub struct Member {
    /// The member name: the JSON key services read and write.
    pub name: String,
    pub target: MemberRef,
}

impl Member {
    /// The element name in XML and the key segment in Query forms.
    pub fn wire_name(&self) -> &str {
        self.target.location_name.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug)]
pub enum Kind {
    Structure {
        members: Vec<Member>,
        required: Vec<usize>,
    },
    List {
        member: MemberRef,
        flattened: bool,
        length: Limits,
    },
    Map {
        key: MemberRef,
        value: MemberRef,
        flattened: bool,
        length: Limits,
    },
    String {
        allowed: Option<HashSet<String>>,
        length: Limits,
    },
    Integer(Limits),
    Double(Limits),
    Boolean,
    Timestamp,
    Blob(Limits),
}

#[derive(Debug)]
pub struct Shape {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub name: &'a str,
    pub input: Option<ShapeId>,
    pub output: Option<ShapeId>,
    /// The Query protocol's `<OpResult>` element name.
    pub result_wrapper: Option<&'a str>,
}

struct OperationShapes {
    input: Option<ShapeId>,
    output: Option<ShapeId>,
    result_wrapper: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("The service model is not usable: {0}")]
pub struct ModelError(String);

pub struct ServiceModel {
    pub metadata: Metadata,
    operations: BTreeSet<String>,
    modeled: HashMap<String, OperationShapes>,
    shapes: Vec<Shape>,
}

/// Whether the operation exists in the service, and whether nimbus carries its shapes.
pub enum Lookup<'a> {
    Modeled(Operation<'a>),
    NotModeled,
    Unknown,
}

impl ServiceModel {
    /// Parses a model written by `scripts/gen-awsmodel.py`.
    pub fn from_json(json: &str) -> Result<ServiceModel, ModelError> {
        build(json).map_err(ModelError)
    }

    pub fn shape(&self, id: ShapeId) -> &Shape {
        // Ids come only from `build`, which checked every reference.
        &self.shapes[id]
    }

    pub fn lookup(&self, operation: &str) -> Lookup<'_> {
        if let Some((name, shapes)) = self.modeled.get_key_value(operation) {
            return Lookup::Modeled(Operation {
                name,
                input: shapes.input,
                output: shapes.output,
                result_wrapper: shapes.result_wrapper.as_deref(),
            });
        }
        if self.operations.contains(operation) {
            Lookup::NotModeled
        } else {
            Lookup::Unknown
        }
    }

    pub fn operations(&self) -> impl Iterator<Item = &str> {
        self.operations.iter().map(String::as_str)
    }

    pub fn is_modeled(&self, operation: &str) -> bool {
        self.modeled.contains_key(operation)
    }
}

/// Shape names → the numbers shapes are stored under: the names in sorted order, numbered.
pub struct ShapeIndex<'a>(HashMap<&'a str, ShapeId>);

impl<'a> ShapeIndex<'a> {
    pub fn new(names: impl Iterator<Item = &'a String>) -> ShapeIndex<'a> {
        ShapeIndex(
            names
                .enumerate()
                .map(|(id, name)| (name.as_str(), id))
                .collect(),
        )
    }

    pub fn resolve(&self, name: &str) -> Result<ShapeId, String> {
        self.0
            .get(name)
            .copied()
            .ok_or_else(|| format!("shape {name} is referenced but not in the model"))
    }
}

fn limits(shape: &RawShape) -> Limits {
    Limits {
        min: shape.min,
        max: shape.max,
    }
}

fn build(json: &str) -> Result<ServiceModel, String> {
    let raw: RawModel = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let index = ShapeIndex::new(raw.shapes.keys());
    let resolve = |name: &str| index.resolve(name);
    let reference = |raw: &RawMember| -> Result<MemberRef, String> {
        Ok(MemberRef {
            shape: resolve(&raw.shape)?,
            location_name: raw.location_name.clone(),
            flattened: raw.flattened,
        })
    };
    let part = |shape: &str, part: Option<&RawMember>, what: &str| {
        part.ok_or_else(|| format!("{shape} has no {what}"))
            .and_then(reference)
    };
    let mut shapes = Vec::with_capacity(raw.shapes.len());
    for (name, shape) in &raw.shapes {
        let kind = match shape.kind.as_str() {
            "structure" => {
                let mut members = Vec::with_capacity(shape.members.len());
                let mut required = Vec::new();
                for (position, (member_name, member)) in shape.members.iter().enumerate() {
                    if shape.required.contains(member_name) {
                        required.push(position);
                    }
                    members.push(Member {
                        name: member_name.clone(),
                        target: reference(member)?,
                    });
                }
                Kind::Structure { members, required }
            }
            "list" => Kind::List {
                member: part(name, shape.member.as_ref(), "member")?,
                flattened: shape.flattened,
                length: limits(shape),
            },
            "map" => Kind::Map {
                key: part(name, shape.key.as_ref(), "key")?,
                value: part(name, shape.value.as_ref(), "value")?,
                flattened: shape.flattened,
                length: limits(shape),
            },
            "string" => Kind::String {
                allowed: shape
                    .enum_values
                    .as_ref()
                    .map(|v| v.iter().cloned().collect()),
                length: limits(shape),
            },
            "integer" | "long" => Kind::Integer(limits(shape)),
            "double" | "float" => Kind::Double(limits(shape)),
            "boolean" => Kind::Boolean,
            "timestamp" => Kind::Timestamp,
            "blob" => Kind::Blob(limits(shape)),
            other => return Err(format!("shape {name} has unsupported type {other}")),
        };
        shapes.push(Shape {
            name: name.clone(),
            kind,
        });
    }
    let mut modeled = HashMap::with_capacity(raw.modeled.len());
    for (operation, shapes) in raw.modeled {
        let entry = OperationShapes {
            input: shapes.input.as_deref().map(resolve).transpose()?,
            output: shapes.output.as_deref().map(resolve).transpose()?,
            result_wrapper: shapes.result_wrapper,
        };
        modeled.insert(operation, entry);
    }
    Ok(ServiceModel {
        metadata: raw.metadata,
        operations: raw.operations,
        modeled,
        shapes,
    })
}
