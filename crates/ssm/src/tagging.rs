//! AddTagsToResource, ListTagsForResource and RemoveTagsFromResource, for parameters: the
//! only SSM resources nimbus has.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::kinds::Tables;
use crate::parameters::{Parameter, Tag};
use crate::{names, Result, Ssm, SsmError};

/// Tags a resource may carry.
const MAX_TAGS: usize = 50;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AddTagsInput {
    resource_type: String,
    resource_id: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ListTagsInput {
    resource_type: String,
    resource_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RemoveTagsInput {
    resource_type: String,
    resource_id: String,
    tag_keys: Vec<String>,
}

/// Tags as a request gives them, checked: keys not under `aws:`, values in AWS's character
/// set, at most 50.
pub(crate) fn tags_of(tags: &[Tag]) -> Result<engine::Tags> {
    let allowed = |text: &str| {
        text.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c))
    };
    let mut checked = engine::Tags::new();
    for tag in tags {
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(SsmError::Validation(format!(
                "The tag key {} is reserved: keys cannot begin with aws:.",
                tag.key
            )));
        }
        if !allowed(&tag.key) || !allowed(&tag.value) {
            return Err(SsmError::Validation(format!(
                "The tag {}={} has characters tags cannot hold: letters, numbers, spaces and _.:/=+-@ only.",
                tag.key, tag.value
            )));
        }
        checked.insert(tag.key.clone(), tag.value.clone());
    }
    if checked.len() > MAX_TAGS {
        return Err(SsmError::TooManyTags(format!(
            "A resource can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(checked)
}

/// Parameters are the one resource type nimbus's SSM holds: no resource of another type
/// exists, so its ID is not found.
fn parameter_id<'a>(resource_type: &str, resource_id: &'a str) -> Result<&'a str> {
    if resource_type != "Parameter" {
        return Err(SsmError::InvalidResourceId(format!(
            "The resource {resource_id} of type {resource_type} does not exist: nimbus's Systems Manager has parameters only."
        )));
    }
    Ok(resource_id)
}

fn not_found(name: &str) -> SsmError {
    SsmError::InvalidResourceId(format!("The parameter {name} does not exist."))
}

impl Ssm {
    /// Changes the tags of the account's parameter `name` in one transaction.
    fn change_tags(
        &self,
        name: &str,
        change: impl FnOnce(&mut engine::Tags) -> Result<()>,
    ) -> Result<Value> {
        names::check_writable(name)?;
        self.engine.mutate(|txn| {
            let mut parameter: Parameter =
                (txn.state().parameters().get(name).cloned()).ok_or_else(|| not_found(name))?;
            change(&mut parameter.tags)?;
            if parameter.tags.len() > MAX_TAGS {
                return Err(SsmError::TooManyTags(format!(
                    "The parameter {name} would have more than {MAX_TAGS} tags."
                )));
            }
            txn.put(parameter)?;
            Ok(json!({}))
        })
    }

    pub fn add_tags(&self, input: AddTagsInput) -> Result<Value> {
        let name = parameter_id(&input.resource_type, &input.resource_id)?;
        let tags = tags_of(&input.tags)?;
        self.change_tags(name, |current| {
            current.extend(tags);
            Ok(())
        })
    }

    pub fn remove_tags(&self, input: RemoveTagsInput) -> Result<Value> {
        let name = parameter_id(&input.resource_type, &input.resource_id)?;
        self.change_tags(name, |current| {
            current.retain(|key, _| !input.tag_keys.contains(key));
            Ok(())
        })
    }

    pub fn list_tags(&self, input: ListTagsInput) -> Result<Value> {
        let name = parameter_id(&input.resource_type, &input.resource_id)?;
        let state = self.engine.read();
        let parameter = state
            .parameters()
            .get(name)
            .ok_or_else(|| not_found(name))?;
        let tags: Vec<Value> = (parameter.tags.iter())
            .map(|(key, value)| json!({ "Key": key, "Value": value }))
            .collect();
        Ok(json!({ "TagList": tags }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::service;

    #[test]
    fn tags_are_added_listed_and_removed() {
        let dir = tempfile::tempdir().expect("dir");
        let ssm = service(dir.path());
        let input = json!({"Name": "/t", "Value": "v", "Type": "String", "Tags": [{"Key": "a", "Value": "1"}]});
        ssm.put_parameter(serde_json::from_value(input).expect("in"), "me")
            .expect("put");
        fn call<T: serde::de::DeserializeOwned>(input: Value) -> T {
            serde_json::from_value(input).expect("input")
        }
        ssm.add_tags(call(json!({"ResourceType": "Parameter", "ResourceId": "/t", "Tags": [{"Key": "b", "Value": "2"}]})))
            .expect("add");
        ssm.remove_tags(call(
            json!({"ResourceType": "Parameter", "ResourceId": "/t", "TagKeys": ["a"]}),
        ))
        .expect("remove");
        let listed = ssm
            .list_tags(call(
                json!({"ResourceType": "Parameter", "ResourceId": "/t"}),
            ))
            .expect("list");
        assert_eq!(listed["TagList"], json!([{"Key": "b", "Value": "2"}]));
        let missing = ssm.list_tags(call(
            json!({"ResourceType": "Parameter", "ResourceId": "/none"}),
        ));
        assert!(matches!(missing, Err(SsmError::InvalidResourceId(_))));
        let document = ssm.list_tags(call(
            json!({"ResourceType": "Document", "ResourceId": "/t"}),
        ));
        assert!(matches!(document, Err(SsmError::InvalidResourceId(_))));
        let reserved = ssm.add_tags(call(json!({"ResourceType": "Parameter", "ResourceId": "/t", "Tags": [{"Key": "aws:x", "Value": "2"}]})));
        assert!(matches!(reserved, Err(SsmError::Validation(_))));
    }
}
