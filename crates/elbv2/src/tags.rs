//! AddTags, RemoveTags and DescribeTags, on the ARN of any of the four kinds.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::kinds::Tables;
use crate::listeners::{Listener, Rule};
use crate::load_balancers::LoadBalancer;
use crate::target_groups::TargetGroup;
use crate::{Elbv2, Elbv2Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// AWS's limit of tags per resource.
const MAX_TAGS: usize = 50;

/// A record carrying tags.
pub trait Tagged: engine::Resource + Clone {
    fn tag_list(&mut self) -> &mut Vec<Tag>;
}

macro_rules! tagged {
    ($($type:ty),*) => {$(
        impl Tagged for $type {
            fn tag_list(&mut self) -> &mut Vec<Tag> {
                &mut self.tags
            }
        }
    )*};
}
tagged!(LoadBalancer, TargetGroup, Listener, Rule);

/// Checks tags given at creation or by AddTags (keys 1–128, values ≤ 256, no `aws:`).
pub fn check_tags(tags: &[Tag]) -> Result<()> {
    for tag in tags {
        if tag.key.is_empty() || tag.key.len() > 128 || tag.value.len() > 256 {
            return Err(Elbv2Error::ValidationError(format!(
                "Tag key '{}' or its value is too long or empty",
                tag.key
            )));
        }
        if tag.key.starts_with("aws:") {
            return Err(Elbv2Error::ValidationError(
                "Tag keys starting with 'aws:' are reserved".into(),
            ));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Elbv2Error::TooManyTags(format!(
            "A resource can have at most {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

/// Merges `new` into `tags` (a key given again takes the new value).
pub fn merge(tags: &mut Vec<Tag>, new: Vec<Tag>) -> Result<()> {
    for tag in new {
        match tags.iter_mut().find(|t| t.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => tags.push(tag),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Elbv2Error::TooManyTags(format!(
            "A resource can have at most {MAX_TAGS} tags"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AddTagsInput {
    resource_arns: Vec<String>,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RemoveTagsInput {
    resource_arns: Vec<String>,
    tag_keys: Vec<String>,
}

fn change_in<T: Tagged>(
    txn: &mut engine::Txn,
    arn: &str,
    not_found: fn(String) -> Elbv2Error,
    change: &dyn Fn(&mut Vec<Tag>) -> Result<()>,
) -> Result<()> {
    let mut record = txn
        .state()
        .table::<T>()
        .get(arn)
        .cloned()
        .ok_or_else(|| not_found(format!("'{arn}' not found")))?;
    change(record.tag_list())?;
    txn.put(record)?;
    Ok(())
}

fn change_tags(
    txn: &mut engine::Txn,
    arn: &str,
    change: &dyn Fn(&mut Vec<Tag>) -> Result<()>,
) -> Result<()> {
    let kind = arn.splitn(6, ':').nth(5).and_then(|r| r.split('/').next());
    match kind {
        Some("loadbalancer") => {
            change_in::<LoadBalancer>(txn, arn, Elbv2Error::LoadBalancerNotFound, change)
        }
        Some("targetgroup") => {
            change_in::<TargetGroup>(txn, arn, Elbv2Error::TargetGroupNotFound, change)
        }
        Some("listener") => change_in::<Listener>(txn, arn, Elbv2Error::ListenerNotFound, change),
        Some("listener-rule") => change_in::<Rule>(txn, arn, Elbv2Error::RuleNotFound, change),
        _ => Err(Elbv2Error::ValidationError(format!(
            "'{arn}' is not a valid resource ARN"
        ))),
    }
}

fn tags_of(state: &engine::State, arn: &str) -> Option<Vec<Tag>> {
    let tags = |tags: &Vec<Tag>| Some(tags.clone());
    (state.load_balancers().get(arn).and_then(|r| tags(&r.tags)))
        .or_else(|| state.target_groups().get(arn).and_then(|r| tags(&r.tags)))
        .or_else(|| state.listeners().get(arn).and_then(|r| tags(&r.tags)))
        .or_else(|| state.rules().get(arn).and_then(|r| tags(&r.tags)))
}

impl Elbv2 {
    pub fn add_tags(&self, input: AddTagsInput) -> Result<Value> {
        check_tags(&input.tags)?;
        self.change(|txn| {
            for arn in &input.resource_arns {
                change_tags(txn, arn, &|tags| merge(tags, input.tags.clone()))?;
            }
            Ok(json!({}))
        })
    }

    pub fn remove_tags(&self, input: RemoveTagsInput) -> Result<Value> {
        self.change(|txn| {
            for arn in &input.resource_arns {
                change_tags(txn, arn, &|tags| {
                    tags.retain(|t| !input.tag_keys.contains(&t.key));
                    Ok(())
                })?;
            }
            Ok(json!({}))
        })
    }

    pub fn describe_tags(&self, arns: &[String]) -> Result<Value> {
        if arns.is_empty() || arns.len() > 20 {
            return Err(Elbv2Error::ValidationError(
                "Between 1 and 20 resource ARNs must be given".into(),
            ));
        }
        let state = self.engine.read();
        let descriptions = arns
            .iter()
            .map(|arn| {
                let tags = tags_of(&state, arn).ok_or_else(|| match arn {
                    a if a.contains(":targetgroup/") => {
                        Elbv2Error::TargetGroupNotFound(format!("'{a}' not found"))
                    }
                    a if a.contains(":listener-rule/") => {
                        Elbv2Error::RuleNotFound(format!("'{a}' not found"))
                    }
                    a if a.contains(":listener/") => {
                        Elbv2Error::ListenerNotFound(format!("'{a}' not found"))
                    }
                    a => Elbv2Error::LoadBalancerNotFound(format!("'{a}' not found")),
                })?;
                Ok(json!({ "ResourceArn": arn, "Tags": tags }))
            })
            .collect::<Result<Vec<Value>>>()?;
        Ok(json!({ "TagDescriptions": descriptions }))
    }
}
