//! CreateTags, DeleteTags, DescribeTags and TagSpecifications, for every taggable kind.

use nimbus_core::Config;
use serde::Deserialize;

use crate::describe::{self, Page, Paging, Query};
use crate::filter::{self, FilterField, Filterable};
use crate::instances::Instance;
use crate::resource::{taggable_kinds, KindVisitor};
use crate::{Control, Error, Resource, ResourceKind, Result, State, Tags, Txn};

const MAX_TAGS_PER_RESOURCE: usize = 50;

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
    pub resource_type: ResourceKind,
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
        return Err(Error::InvalidParameterValue(format!(
            "Tag key '{key}' must be between 1 and 128 characters."
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Error::InvalidParameterValue(format!(
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
            .ok_or_else(|| Error::MissingParameter("Tag.N.Key".into()))?;
        validate_key(key)?;
        let value = input.value.clone().unwrap_or_default();
        if value.chars().count() > 256 {
            return Err(Error::InvalidParameterValue(format!(
                "Tag value for key '{key}' must be at most 256 characters."
            )));
        }
        tags.insert(key.to_owned(), value);
    }
    check_count(&tags)?;
    Ok(tags)
}

/// The tags of an action that creates one resource of `kind` and nothing else.
pub fn tags_of_created(specifications: &[TagSpecification], kind: ResourceKind) -> Result<Tags> {
    tags_from_specifications(specifications, &[kind], kind)
}

/// The tags a creating action's TagSpecifications give to a resource of `kind`; a
/// specification for a type this action does not create is an error, as in EC2.
pub fn tags_from_specifications(
    specifications: &[TagSpecification],
    allowed: &[ResourceKind],
    kind: ResourceKind,
) -> Result<Tags> {
    let mut tags = Tags::new();
    for specification in specifications {
        let resource_type = specification
            .resource_type
            .as_deref()
            .ok_or_else(|| Error::MissingParameter("TagSpecification.N.ResourceType".into()))?;
        if !allowed.iter().any(|k| k.as_str() == resource_type) {
            return Err(Error::InvalidParameterValue(format!(
                "'{resource_type}' is not a valid taggable resource type for this operation."
            )));
        }
        if specification.tags.is_empty() {
            return Err(Error::InvalidParameterValue(format!(
                "Tag specification for '{resource_type}' must contain at least one tag."
            )));
        }
        if resource_type == kind.as_str() {
            tags.extend(validate_tags(&specification.tags)?);
        }
    }
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TooManyTags(format!(
            "The maximum number of tags per resource is {MAX_TAGS_PER_RESOURCE}."
        )));
    }
    Ok(tags)
}

/// Applies `change` to the tags of the resource `id`, whatever its kind.
fn update_tags(txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()> {
    let kind = ResourceKind::of_id(id).ok_or_else(|| Error::MalformedId {
        kind: None,
        id: id.to_owned(),
    })?;
    if kind == ResourceKind::NetworkInterface {
        if let Some(mut instance) = primary_interface_owner(txn.state(), id).cloned() {
            change(&mut instance.network_tags);
            check_count(&instance.network_tags)?;
            return txn.put(instance);
        }
    }
    kind.visit(UpdateTags { txn, id, change })
}

/// The live instance whose primary interface is `interface_id`.
fn primary_interface_owner<'a>(state: &'a State, interface_id: &str) -> Option<&'a Instance> {
    state.instances.values().find(|i| {
        i.live_network()
            .is_some_and(|n| n.interface_id == interface_id)
    })
}

fn check_count(tags: &Tags) -> Result<()> {
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TooManyTags(format!(
            "The maximum number of tags per resource is {MAX_TAGS_PER_RESOURCE}."
        )));
    }
    Ok(())
}

struct UpdateTags<'a, 'b> {
    txn: &'a mut Txn<'b>,
    id: &'a str,
    change: &'a dyn Fn(&mut Tags),
}

impl KindVisitor for UpdateTags<'_, '_> {
    type Output = Result<()>;

    fn visit<T: Resource>(self) -> Result<()> {
        let mut item = describe::existing::<T>(self.txn.state(), self.id)?.clone();
        if let Some(tags) = item.tags_mut() {
            (self.change)(tags);
            check_count(tags)?;
        }
        self.txn.put(item)
    }
}

fn require_resources(resources: &[String]) -> Result<()> {
    if resources.is_empty() {
        return Err(Error::MissingParameter("ResourceId.N".into()));
    }
    Ok(())
}

impl Control {
    pub fn create_tags(
        &self,
        resources: &[String],
        inputs: &[TagInput],
        dry_run: bool,
    ) -> Result<()> {
        require_resources(resources)?;
        if inputs.is_empty() {
            return Err(Error::MissingParameter("Tag.N".into()));
        }
        let tags = validate_tags(inputs)?;
        self.change_tags(resources, dry_run, &|existing| {
            existing.extend(tags.clone())
        })
    }

    /// Without tags, removes every tag; a tag with a value removes the key only when the value matches.
    pub fn delete_tags(
        &self,
        resources: &[String],
        inputs: &[TagInput],
        dry_run: bool,
    ) -> Result<()> {
        require_resources(resources)?;
        for input in inputs {
            validate_key(input.key.as_deref().unwrap_or_default())?;
        }
        self.change_tags(resources, dry_run, &|existing| {
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

    /// Applies `change` to the tags of every resource, after checking that every one exists,
    /// so a bad ID changes nothing.
    fn change_tags(
        &self,
        resources: &[String],
        dry_run: bool,
        change: &dyn Fn(&mut Tags),
    ) -> Result<()> {
        self.mutate(|txn| {
            for id in resources {
                update_tags(txn, id, &|_| ())?;
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            for id in resources {
                update_tags(txn, id, change)?;
            }
            Ok(())
        })
    }

    pub fn describe_tags(&self, query: &Query) -> Result<Page<TagDescription>> {
        let state = self.read();
        let mut rows = Vec::new();
        for kind in taggable_kinds() {
            kind.visit(CollectTags {
                state: &state,
                query,
                config: self.config(),
                rows: &mut rows,
            });
        }
        for instance in state.instances.values() {
            if let Some(network) = instance.live_network() {
                for (key, value) in &instance.network_tags {
                    let row = tag_row(
                        &network.interface_id,
                        ResourceKind::NetworkInterface,
                        key,
                        value,
                    );
                    keep_if_matching(row, query, self.config(), &mut rows);
                }
            }
        }
        rows.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        describe::describe_rows(
            rows,
            |row| row.sort_key.as_str(),
            self.config(),
            query,
            DESCRIBE_TAGS_PAGING,
        )
    }
}

/// Collects the tag rows that pass the query's filters (unknown filter names are refused
/// afterwards by `describe_rows`); filtering first keeps DescribeTags over many tagged
/// resources from building and sorting rows it will drop.
struct CollectTags<'a> {
    state: &'a State,
    query: &'a Query,
    config: &'a Config,
    rows: &'a mut Vec<TagDescription>,
}

impl KindVisitor for CollectTags<'_> {
    type Output = ();

    fn visit<T: Resource>(self) {
        for item in T::table(self.state).values() {
            for (key, value) in item.tags().into_iter().flatten() {
                let row = tag_row(item.id(), T::KIND, key, value);
                keep_if_matching(row, self.query, self.config, self.rows);
            }
        }
    }
}

fn tag_row(id: &str, kind: ResourceKind, key: &str, value: &str) -> TagDescription {
    TagDescription {
        resource_id: id.to_owned(),
        resource_type: kind,
        key: key.to_owned(),
        value: value.to_owned(),
        sort_key: String::new(),
    }
}

fn keep_if_matching(
    mut row: TagDescription,
    query: &Query,
    config: &Config,
    rows: &mut Vec<TagDescription>,
) {
    if filter::matches(&row, None, &query.filters, config) {
        row.sort_key = format!("{}\u{0}{}", row.resource_id, row.key);
        rows.push(row);
    }
}
