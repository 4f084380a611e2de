//! The embedded model, parsed once into shapes indexed by number, with per-structure lookup
//! tables for the decoder (wire key → member) and the output checker (XML name → member).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use awsproto::Limits;
use serde::Deserialize;

#[derive(Deserialize)]
struct RawModel {
    operations: BTreeSet<String>,
    modeled: HashMap<String, RawOperation>,
    shapes: BTreeMap<String, RawShape>,
}

#[derive(Deserialize)]
struct RawOperation {
    input: Option<String>,
    output: Option<String>,
}

#[derive(Deserialize)]
struct RawMember {
    shape: String,
    #[serde(rename = "locationName")]
    location_name: Option<String>,
    #[serde(rename = "queryName")]
    query_name: Option<String>,
}

#[derive(Deserialize)]
struct RawShape {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    members: BTreeMap<String, RawMember>,
    #[serde(default)]
    required: Vec<String>,
    member: Option<RawMember>,
    #[serde(rename = "enum")]
    enum_values: Option<Vec<String>>,
    min: Option<f64>,
    max: Option<f64>,
}

pub(crate) type ShapeId = usize;

pub(crate) struct Member {
    /// The member name: the JSON key handlers deserialize from.
    pub name: String,
    pub shape: ShapeId,
    /// The key in requests (botocore's EC2 serializer rules).
    pub wire_key: String,
    /// The element name in responses.
    pub xml_name: String,
}

pub(crate) struct Structure {
    pub members: Vec<Member>,
    pub by_wire_key: HashMap<String, usize>,
    pub by_xml_name: HashMap<String, usize>,
    pub required: Vec<usize>,
}

pub(crate) enum Kind {
    Structure(Structure),
    List {
        member: ShapeId,
        /// Element name of each item in responses (`item` in EC2).
        xml_item: String,
        length: Limits,
    },
    String {
        allowed: Option<HashSet<String>>,
        length: Limits,
    },
    Integer(Limits),
    Boolean,
    Double,
    Timestamp,
    Blob,
}

pub(crate) struct Shape {
    pub name: String,
    pub kind: Kind,
}

pub(crate) struct Model {
    operations: BTreeSet<String>,
    /// Modeled action → (input shape, output shape).
    modeled: HashMap<String, (Option<ShapeId>, Option<ShapeId>)>,
    shapes: Vec<Shape>,
}

impl Model {
    pub fn shape(&self, id: ShapeId) -> &Shape {
        // Ids come only from `build`, which checked every reference.
        &self.shapes[id]
    }

    pub fn input(&self, action: &str) -> Option<Option<ShapeId>> {
        self.modeled.get(action).map(|(input, _)| *input)
    }

    pub fn output(&self, action: &str) -> Option<Option<ShapeId>> {
        self.modeled.get(action).map(|(_, output)| *output)
    }
}

/// botocore's EC2 serializer: `queryName`, else `locationName` capitalized, else the name.
fn wire_key(name: &str, member: &RawMember) -> String {
    if let Some(query_name) = &member.query_name {
        return query_name.clone();
    }
    let Some(location) = &member.location_name else {
        return name.to_owned();
    };
    let mut chars = location.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn build(json: &str) -> Result<Model, String> {
    let raw: RawModel = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let index = awsproto::ShapeIndex::new(raw.shapes.keys());
    let resolve = |name: &str| index.resolve(name);
    let mut shapes = Vec::with_capacity(raw.shapes.len());
    for (name, shape) in &raw.shapes {
        let kind = match shape.kind.as_str() {
            "structure" => {
                let mut structure = Structure {
                    members: Vec::with_capacity(shape.members.len()),
                    by_wire_key: HashMap::new(),
                    by_xml_name: HashMap::new(),
                    required: Vec::new(),
                };
                for (position, (member_name, member)) in shape.members.iter().enumerate() {
                    let wire_key = wire_key(member_name, member);
                    let xml_name = member.location_name.as_deref().unwrap_or(member_name);
                    structure.by_wire_key.insert(wire_key.clone(), position);
                    structure.by_xml_name.insert(xml_name.to_owned(), position);
                    if shape.required.contains(member_name) {
                        structure.required.push(position);
                    }
                    structure.members.push(Member {
                        name: member_name.clone(),
                        shape: resolve(&member.shape)?,
                        wire_key,
                        xml_name: xml_name.to_owned(),
                    });
                }
                Kind::Structure(structure)
            }
            "list" => {
                let member = shape
                    .member
                    .as_ref()
                    .ok_or_else(|| format!("list {name} has no member"))?;
                Kind::List {
                    member: resolve(&member.shape)?,
                    xml_item: member.location_name.clone().unwrap_or("member".into()),
                    length: Limits {
                        min: shape.min,
                        max: shape.max,
                    },
                }
            }
            "string" => Kind::String {
                allowed: shape
                    .enum_values
                    .as_ref()
                    .map(|v| v.iter().cloned().collect()),
                length: Limits {
                    min: shape.min,
                    max: shape.max,
                },
            },
            "integer" | "long" => Kind::Integer(Limits {
                min: shape.min,
                max: shape.max,
            }),
            "boolean" => Kind::Boolean,
            "double" | "float" => Kind::Double,
            "timestamp" => Kind::Timestamp,
            "blob" => Kind::Blob,
            other => return Err(format!("shape {name} has unsupported type {other}")),
        };
        shapes.push(Shape {
            name: name.clone(),
            kind,
        });
    }
    let mut modeled = HashMap::with_capacity(raw.modeled.len());
    for (action, operation) in &raw.modeled {
        let input = operation.input.as_deref().map(resolve).transpose()?;
        let output = operation.output.as_deref().map(resolve).transpose()?;
        modeled.insert(action.clone(), (input, output));
    }
    Ok(Model {
        operations: raw.operations,
        modeled,
        shapes,
    })
}

pub(crate) fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        // The embedded file is generated and a test builds it: failing here is a build defect.
        build(include_str!("../model/ec2.json"))
            .unwrap_or_else(|e| panic!("model/ec2.json is not a usable model: {e}"))
    })
}

/// Whether `action` is an operation of the EC2 API at all.
pub fn operation_exists(action: &str) -> bool {
    model().operations.contains(action)
}

/// Whether nimbus carries the model of `action` (and so may implement it).
pub fn is_modeled(action: &str) -> bool {
    model().modeled.contains_key(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_builds_and_knows_its_operations() {
        let model = build(include_str!("../model/ec2.json")).expect("the embedded model builds");
        assert!(model.operations.len() > 700);
        let listed = include_str!("../model/actions.txt")
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        for action in listed {
            assert!(
                is_modeled(action),
                "{action} is in actions.txt but not modeled"
            );
        }
        assert!(
            operation_exists("CreateVpcPeeringConnection")
                && !is_modeled("CreateVpcPeeringConnection")
        );
        assert!(!operation_exists("CreateVolumes"));
    }

    #[test]
    fn wire_keys_follow_the_ec2_serializer() {
        let member = |location: Option<&str>, query: Option<&str>| RawMember {
            shape: String::new(),
            location_name: location.map(str::to_owned),
            query_name: query.map(str::to_owned),
        };
        assert_eq!(wire_key("Filters", &member(Some("Filter"), None)), "Filter");
        assert_eq!(wire_key("DryRun", &member(Some("dryRun"), None)), "DryRun");
        assert_eq!(
            wire_key("UserData", &member(Some("x"), Some("Data"))),
            "Data"
        );
        assert_eq!(wire_key("KeyName", &member(None, None)), "KeyName");
    }
}
