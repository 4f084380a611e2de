//! CreateTags, DeleteTags, DescribeTags and TagSpecifications, for every taggable kind.

use serde::Deserialize;

use crate::filter::{self, Filter, Filterable};
use crate::images::Image;
use crate::instances::Instance;
use crate::keypairs::KeyPair;
use crate::pagination::{paginate, PageBounds};
use crate::resource::TAGGABLE;
use crate::snapshots::Snapshot;
use crate::volumes::Volume;
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
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let value = match name {
            "key" => &self.key,
            "value" => &self.value,
            "resource-id" => &self.resource_id,
            "resource-type" => self.resource_type.as_str(),
            _ => return None,
        };
        Some(vec![value.to_owned()])
    }
}

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
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TagLimitExceeded(format!(
            "The maximum number of tags per resource is {MAX_TAGS_PER_RESOURCE}."
        )));
    }
    Ok(tags)
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
        if resource_type == kind.as_str() {
            tags.extend(validate_tags(&specification.tags)?);
        }
    }
    if tags.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TagLimitExceeded(format!(
            "The maximum number of tags per resource is {MAX_TAGS_PER_RESOURCE}."
        )));
    }
    Ok(tags)
}

/// Applies `change` to the tags of the resource `id`, whatever its kind.
fn update_tags(txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()> {
    let kind = ResourceKind::of_id(id).ok_or_else(|| Error::InvalidId(id.to_owned()))?;
    match kind {
        ResourceKind::KeyPair => update_tags_of::<KeyPair>(txn, id, change),
        ResourceKind::Volume => update_tags_of::<Volume>(txn, id, change),
        ResourceKind::Snapshot => update_tags_of::<Snapshot>(txn, id, change),
        ResourceKind::Image => update_tags_of::<Image>(txn, id, change),
        ResourceKind::Instance => update_tags_of::<Instance>(txn, id, change),
        ResourceKind::ClientToken
        | ResourceKind::Role
        | ResourceKind::InstanceProfile
        | ResourceKind::TemporaryCredential => Err(Error::NotFound {
            kind,
            id: id.to_owned(),
        }),
    }
}

fn update_tags_of<T: Resource>(txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()> {
    let mut item = txn
        .state()
        .get::<T>(id)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            kind: T::KIND,
            id: id.to_owned(),
        })?;
    if let Some(tags) = item.tags_mut() {
        change(tags);
        if tags.len() > MAX_TAGS_PER_RESOURCE {
            return Err(Error::TagLimitExceeded(format!(
                "The maximum number of tags per resource is {MAX_TAGS_PER_RESOURCE}."
            )));
        }
    }
    txn.put(item)
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
        self.mutate(|txn| {
            for id in resources {
                // Validate every resource before changing any, so a bad ID changes nothing.
                update_tags(txn, id, &|_| ())?;
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            for id in resources {
                update_tags(txn, id, &|existing| existing.extend(tags.clone()))?;
            }
            Ok(())
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
        self.mutate(|txn| {
            for id in resources {
                update_tags(txn, id, &|_| ())?;
            }
            if dry_run {
                return Err(Error::DryRunOperation);
            }
            for id in resources {
                update_tags(txn, id, &|existing| {
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
                })?;
            }
            Ok(())
        })
    }

    pub fn describe_tags(
        &self,
        filters: &[Filter],
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<(Vec<TagDescription>, Option<String>)> {
        let sample = TagDescription {
            resource_id: String::new(),
            resource_type: ResourceKind::KeyPair,
            key: String::new(),
            value: String::new(),
            sort_key: String::new(),
        };
        filter::validate_filters(filters, &sample)?;
        let state = self.read();
        let mut rows = Vec::new();
        for kind in TAGGABLE {
            collect_tags(&state, *kind, &mut |row| {
                if filter::matches(&row, filters) {
                    rows.push(row);
                }
            });
        }
        rows.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
        paginate(
            rows,
            |row| row.sort_key.as_str(),
            max_results,
            next_token,
            PageBounds { min: 5, max: 1000 },
        )
    }
}

fn collect_tags(state: &State, kind: ResourceKind, sink: &mut dyn FnMut(TagDescription)) {
    match kind {
        ResourceKind::KeyPair => collect_tags_of::<KeyPair>(state, sink),
        ResourceKind::Volume => collect_tags_of::<Volume>(state, sink),
        ResourceKind::Snapshot => collect_tags_of::<Snapshot>(state, sink),
        ResourceKind::Image => collect_tags_of::<Image>(state, sink),
        ResourceKind::Instance => collect_tags_of::<Instance>(state, sink),
        ResourceKind::ClientToken
        | ResourceKind::Role
        | ResourceKind::InstanceProfile
        | ResourceKind::TemporaryCredential => {}
    }
}

fn collect_tags_of<T: Resource>(state: &State, sink: &mut dyn FnMut(TagDescription)) {
    for item in T::table(state).values() {
        for (key, value) in item.tags().into_iter().flatten() {
            sink(TagDescription {
                resource_id: item.id().to_owned(),
                resource_type: T::KIND,
                key: key.clone(),
                value: value.clone(),
                sort_key: format!("{}\u{0}{}", item.id(), key),
            });
        }
    }
}
