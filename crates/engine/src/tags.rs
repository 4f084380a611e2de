//! Tags of every taggable kind: their rules (AWS's limits on keys, values and counts),
//! TagSpecifications of creating actions, what CreateTags and DeleteTags do to one resource,
//! and the rows of DescribeTags. A resource named only by its ID is found through the
//! [`Registry`](crate::Registry) by its prefix.

use nimbus_core::Config;
use serde::Deserialize;

use crate::describe::{self, Page, Paging, Query};
use crate::filter::{self, FilterField, Filterable};
use crate::{Error, Kind, Result, State, Tags, Txn};

pub const MAX_TAGS_PER_RESOURCE: usize = 50;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagInput {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagSpecification {
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<TagInput>,
}

/// One row of DescribeTags.
#[derive(Clone, Debug, PartialEq)]
pub struct TagDescription {
    pub resource_id: String,
    pub resource_type: Kind,
    pub key: String,
    pub value: String,
    sort_key: String,
}

impl Filterable for TagDescription {
    const FILTERS: &'static [FilterField<Self>] = &[
        ("key", |row, _| vec![row.key.clone()]),
        ("value", |row, _| vec![row.value.clone()]),
        ("resource-id", |row, _| vec![row.resource_id.clone()]),
        ("resource-type", |row, _| {
            vec![row.resource_type.as_str().to_owned()]
        }),
    ];
}

/// DescribeTags's MaxResults bounds.
const DESCRIBE_TAGS_PAGING: Paging = Paging::within(5, 1000);

fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(Error::InvalidTag(format!(
            "Tag key '{key}' must be between 1 and 128 characters."
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Error::InvalidTag(format!(
            "Tag keys starting with 'aws:' are reserved for internal use: '{key}'"
        )));
    }
    Ok(())
}

fn validate_tags(inputs: &[TagInput]) -> Result<Tags> {
    let mut tags = Tags::new();
    for input in inputs {
        let key = input
            .key
            .as_deref()
            .ok_or(Error::MissingParameter("Tag.N.Key"))?;
        validate_key(key)?;
        let value = input.value.clone().unwrap_or_default();
        if value.chars().count() > 256 {
            return Err(Error::InvalidTag(format!(
                "Tag value for key '{key}' must be at most 256 characters."
            )));
        }
        tags.insert(key.to_owned(), value);
    }
    check_count(&tags)?;
    Ok(tags)
}

/// Refuses more tags than one resource may carry.
pub fn check_count(tags: &Tags) -> Result<()> {
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TooManyTags);
    }
    Ok(())
}

/// The tags of an action that creates one resource of `kind` and nothing else.
pub fn tags_of_created(specifications: &[TagSpecification], kind: Kind) -> Result<Tags> {
    tags_from_specifications(specifications, &[kind], kind)
}

/// The tags a creating action's TagSpecifications give to a resource of `kind`; a
/// specification for a type this action does not create is an error, as in EC2.
pub fn tags_from_specifications(
    specifications: &[TagSpecification],
    allowed: &[Kind],
    kind: Kind,
) -> Result<Tags> {
    let mut tags = Tags::new();
    for specification in specifications {
        let resource_type = specification
            .resource_type
            .as_deref()
            .ok_or(Error::MissingParameter("TagSpecification.N.ResourceType"))?;
        if !allowed.iter().any(|k| k.as_str() == resource_type) {
            return Err(Error::InvalidTag(format!(
                "'{resource_type}' is not a valid taggable resource type for this operation."
            )));
        }
        if specification.tags.is_empty() {
            return Err(Error::InvalidTag(format!(
                "Tag specification for '{resource_type}' must contain at least one tag."
            )));
        }
        if resource_type == kind.as_str() {
            tags.extend(validate_tags(&specification.tags)?);
        }
    }
    check_count(&tags)?;
    Ok(tags)
}

fn require_resources(resources: &[String]) -> Result<()> {
    if resources.is_empty() {
        return Err(Error::MissingParameter("ResourceId.N"));
    }
    Ok(())
}

/// What CreateTags does to the tags of each of `resources`, once the request is checked.
pub fn creating(resources: &[String], inputs: &[TagInput]) -> Result<impl Fn(&mut Tags)> {
    require_resources(resources)?;
    if inputs.is_empty() {
        return Err(Error::MissingParameter("Tag.N"));
    }
    let tags = validate_tags(inputs)?;
    Ok(move |existing: &mut Tags| existing.extend(tags.clone()))
}

/// What DeleteTags does to the tags of each of `resources`, once the request is checked:
/// without tags, removes every tag; a tag with a value removes the key only when the value
/// matches.
pub fn deleting<'a>(
    resources: &[String],
    inputs: &'a [TagInput],
) -> Result<impl Fn(&mut Tags) + 'a> {
    require_resources(resources)?;
    for input in inputs {
        validate_key(input.key.as_deref().unwrap_or_default())?;
    }
    Ok(move |existing: &mut Tags| {
        if inputs.is_empty() {
            existing.clear();
        }
        for input in inputs {
            let key = input.key.as_deref().unwrap_or_default();
            let matches = match &input.value {
                Some(value) => existing.get(key) == Some(value),
                None => true,
            };
            if matches {
                existing.remove(key);
            }
        }
    })
}

/// Applies `change` to the tags of the resource `id`, whatever its kind: the ID's prefix
/// names the kind (an unknown one is a malformed ID), and the resource must exist.
pub fn update(txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()> {
    txn.state().registry().update_tags(txn, id, change)
}

/// DescribeTags over every taggable kind, plus `more` rows (resource ID, kind, key, value)
/// of tags a service keeps outside its kinds' tag fields.
pub fn describe_tags<'a>(
    state: &State,
    config: &Config,
    query: &Query,
    more: impl IntoIterator<Item = (&'a str, Kind, &'a str, &'a str)>,
) -> Result<Page<TagDescription>> {
    let mut rows = Vec::new();
    // Rows are filtered before they are kept, in one reused row: DescribeTags over many tagged
    // resources neither allocates nor sorts rows it drops. Unknown filter names are refused by
    // `describe_rows`.
    let mut candidate: Option<TagDescription> = None;
    let mut keep = |kind: Kind, id: &str, key: &str, value: &str| {
        let row = candidate.get_or_insert_with(|| TagDescription {
            resource_id: String::new(),
            resource_type: kind,
            key: String::new(),
            value: String::new(),
            sort_key: String::new(),
        });
        for (field, text) in [
            (&mut row.resource_id, id),
            (&mut row.key, key),
            (&mut row.value, value),
        ] {
            field.clear();
            field.push_str(text);
        }
        row.resource_type = kind;
        if filter::matches(&*row, None, &query.filters, config) {
            let mut kept = row.clone();
            kept.sort_key = format!("{}\u{0}{}", kept.resource_id, kept.key);
            rows.push(kept);
        }
    };
    state.registry().each_tag(state, &mut keep);
    for (id, kind, key, value) in more {
        keep(kind, id, key, value);
    }
    rows.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    describe::describe_rows(
        rows,
        |row| row.sort_key.as_str(),
        config,
        query,
        DESCRIBE_TAGS_PAGING,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toy::{engine_with, widget, Note, Tables, Widget};
    use crate::Resource;

    fn inputs(pairs: &[(&str, Option<&str>)]) -> Vec<TagInput> {
        pairs
            .iter()
            .map(|(key, value)| TagInput {
                key: Some((*key).into()),
                value: value.map(Into::into),
            })
            .collect()
    }

    #[test]
    fn create_and_delete_reach_a_kind_named_by_the_id() {
        let (engine, _) = engine_with(2);
        let id = widget(1).widget_id;
        let ids = [id.clone()];
        let add = inputs(&[("env", Some("prod")), ("team", Some("a"))]);
        let create = creating(&ids, &add).expect("valid");
        engine
            .mutate(|txn| update(txn, &id, &create))
            .map_err(|e: Error| e)
            .expect("created");
        let remove = inputs(&[("env", Some("dev")), ("team", None)]);
        let delete = deleting(&ids, &remove).expect("valid");
        engine
            .mutate(|txn| update(txn, &id, &delete))
            .map_err(|e: Error| e)
            .expect("deleted");
        let tags = engine.read().widgets()[&id].tags.clone();
        assert_eq!(
            tags.into_iter().collect::<Vec<_>>(),
            [("env".into(), "prod".into()), ("n".into(), "1".into())]
        );
        let unknown: Result<()> = engine.mutate(|txn| update(txn, "foo-1", &create));
        assert!(matches!(
            unknown,
            Err(Error::MalformedId { kind: None, .. })
        ));
        let missing: Result<()> = engine.mutate(|txn| update(txn, &widget(7).widget_id, &create));
        assert!(matches!(missing, Err(Error::NotFound { .. })));
    }

    #[test]
    fn limits_of_keys_values_and_counts() {
        let ids = ["wdg-00000000".to_owned()];
        for bad in [
            inputs(&[("", None)]),
            inputs(&[("aws:x", None)]),
            inputs(&[("k", Some(&"v".repeat(257)))]),
        ] {
            assert!(matches!(creating(&ids, &bad), Err(Error::InvalidTag(_))));
        }
        let many: Vec<String> = (0..=MAX_TAGS_PER_RESOURCE).map(|n| n.to_string()).collect();
        let many: Vec<(&str, Option<&str>)> = many.iter().map(|k| (k.as_str(), None)).collect();
        assert!(matches!(
            creating(&ids, &inputs(&many)),
            Err(Error::TooManyTags)
        ));
        assert!(matches!(
            creating(&[], &inputs(&[("k", None)])),
            Err(Error::MissingParameter("ResourceId.N"))
        ));
    }

    #[test]
    fn specifications_name_the_created_kinds() {
        let spec = |kind: &str| TagSpecification {
            resource_type: Some(kind.into()),
            tags: inputs(&[("k", Some("v"))]),
        };
        let tags = tags_from_specifications(&[spec("widget")], &[Widget::KIND], Widget::KIND)
            .expect("widget tags");
        assert_eq!(tags.get("k").map(String::as_str), Some("v"));
        let other = tags_of_created(&[spec("note")], Widget::KIND);
        assert_eq!(
            other.expect_err("not created here").to_string(),
            "'note' is not a valid taggable resource type for this operation."
        );
        assert!(tags_from_specifications(
            &[spec("note")],
            &[Widget::KIND, Note::KIND],
            Widget::KIND
        )
        .expect("allowed")
        .is_empty());
    }

    #[test]
    fn describe_lists_every_tag_and_the_extra_rows() {
        let (engine, _) = engine_with(3);
        let state = engine.read();
        let config = Config::default();
        let extra = [("wdg-ffffffff", Widget::KIND, "extra", "x")];
        let (rows, _) =
            describe_tags(&state, &config, &Query::default(), extra).expect("described");
        let ids: Vec<&str> = rows.iter().map(|r| r.resource_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                widget(0).widget_id.as_str(),
                widget(1).widget_id.as_str(),
                widget(2).widget_id.as_str(),
                "wdg-ffffffff"
            ]
        );
        let query = Query {
            filters: vec![filter::Filter {
                name: "value".into(),
                values: vec!["1".into()],
            }],
            ..Query::default()
        };
        let (rows, _) = describe_tags(&state, &config, &query, []).expect("filtered");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].resource_type, Widget::KIND);
    }
}
