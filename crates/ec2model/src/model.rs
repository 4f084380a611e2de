//! The embedded model, parsed once, with per-structure lookup tables for decoding.

use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

use serde::Deserialize;

#[derive(Deserialize)]
struct RawModel {
    operations: BTreeSet<String>,
    modeled: HashMap<String, RawOperation>,
    shapes: HashMap<String, RawShape>,
}

#[derive(Deserialize)]
struct RawOperation {
    input: Option<String>,
    output: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawMember {
    pub shape: String,
    #[serde(rename = "locationName")]
    pub location_name: Option<String>,
    #[serde(rename = "queryName")]
    pub query_name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct RawShape {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub members: std::collections::BTreeMap<String, RawMember>,
    #[serde(default)]
    pub required: Vec<String>,
    pub member: Option<RawMember>,
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A structure member as the decoder and the checker need it.
pub(crate) struct Member {
    pub name: String,
    pub shape: usize,
    /// The element name in responses.
    pub xml_name: String,
}

pub(crate) enum Kind {
    Structure {
        /// Wire key (query name) → member.
        by_query_key: HashMap<String, Member>,
        /// Element name → member.
        by_xml_name: HashMap<String, usize>,
        members: Vec<Member>,
        /// Query keys of required members.
        required: Vec<String>,
    },
    List {
        member: usize,
        xml_item: String,
    },
    String {
        allowed: Option<BTreeSet<String>>,
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Boolean,
    Double,
    Timestamp,
    Blob,
}

pub(crate) struct Model {
    pub operations: BTreeSet<String>,
    pub inputs: HashMap<String, Option<usize>>,
    pub outputs: HashMap<String, Option<usize>>,
    pub shapes: Vec<Kind>,
}

/// botocore's EC2 serializer: `queryName`, else `locationName` capitalized, else the name.
fn query_key(name: &str, member: &RawMember) -> String {
    if let Some(query_name) = &member.query_name {
        return query_name.clone();
    }
    match &member.location_name {
        Some(location) => {
            let mut chars = location.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        None => name.to_owned(),
    }
}

fn build() -> Model {
    // The embedded file is generated and checked by tests; failing here is a build defect.
    let raw: RawModel =
        serde_json::from_str(include_str!("../model/ec2.json")).expect("model/ec2.json is valid");
    let names: Vec<&String> = raw.shapes.keys().collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let shape_index = |name: &str| index.get(name).copied().unwrap_or(usize::MAX);
    let shapes = names
        .iter()
        .map(|name| {
            let shape = &raw.shapes[*name];
            match shape.kind.as_str() {
                "structure" => {
                    let members: Vec<Member> = shape
                        .members
                        .iter()
                        .map(|(member_name, member)| Member {
                            name: member_name.clone(),
                            shape: shape_index(&member.shape),
                            xml_name: member
                                .location_name
                                .clone()
                                .unwrap_or_else(|| member_name.clone()),
                        })
                        .collect();
                    let by_query_key = shape
                        .members
                        .iter()
                        .map(|(member_name, member)| {
                            (
                                query_key(member_name, member),
                                Member {
                                    name: member_name.clone(),
                                    shape: shape_index(&member.shape),
                                    xml_name: String::new(),
                                },
                            )
                        })
                        .collect();
                    let by_xml_name = members
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (m.xml_name.clone(), i))
                        .collect();
                    let required = shape
                        .members
                        .iter()
                        .filter(|(member_name, _)| shape.required.contains(member_name))
                        .map(|(member_name, member)| query_key(member_name, member))
                        .collect();
                    Kind::Structure {
                        by_query_key,
                        by_xml_name,
                        members,
                        required,
                    }
                }
                "list" => {
                    let member = shape.member.as_ref();
                    Kind::List {
                        member: member.map(|m| shape_index(&m.shape)).unwrap_or(usize::MAX),
                        xml_item: member
                            .and_then(|m| m.location_name.clone())
                            .unwrap_or_else(|| "member".into()),
                    }
                }
                "integer" | "long" => Kind::Integer {
                    min: shape.min.map(|v| v as i64),
                    max: shape.max.map(|v| v as i64),
                },
                "boolean" => Kind::Boolean,
                "double" | "float" => Kind::Double,
                "timestamp" => Kind::Timestamp,
                "blob" => Kind::Blob,
                _ => Kind::String {
                    allowed: shape
                        .enum_values
                        .as_ref()
                        .map(|v| v.iter().cloned().collect()),
                },
            }
        })
        .collect();
    let lookup = |name: &Option<String>| name.as_deref().map(shape_index);
    Model {
        operations: raw.operations,
        inputs: raw
            .modeled
            .iter()
            .map(|(action, op)| (action.clone(), lookup(&op.input)))
            .collect(),
        outputs: raw
            .modeled
            .iter()
            .map(|(action, op)| (action.clone(), lookup(&op.output)))
            .collect(),
        shapes,
    }
}

pub(crate) fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(build)
}

/// Whether `action` is an operation of the EC2 API at all.
pub fn operation_exists(action: &str) -> bool {
    model().operations.contains(action)
}

/// Whether nimbus carries the model of `action` (and so may implement it).
pub fn is_modeled(action: &str) -> bool {
    model().inputs.contains_key(action)
}
