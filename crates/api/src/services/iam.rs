//! AWS IAM roles and instance profiles (Query protocol) over control's identity operations.
//! Policies are stored, not evaluated (see `docs/compatibility.md`).

use control::credentials::Caller;
use control::iam::{
    CreateInstanceProfileInput, CreateRoleInput, IamPage, InstanceProfileView, ListInput, Role,
};
use control::Tags;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{params, IdentityServiceError};
use crate::service::{BoxFuture, ModelService};
use crate::ApiContext;

pub(crate) struct Iam;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateRole {
    role_name: String,
    path: Option<String>,
    assume_role_policy_document: String,
    description: Option<String>,
    max_session_duration: Option<u32>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct RoleName {
    role_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct UpdateAssumeRolePolicy {
    role_name: String,
    policy_document: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct CreateInstanceProfile {
    instance_profile_name: String,
    path: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ProfileName {
    instance_profile_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ProfileRole {
    instance_profile_name: String,
    role_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct List {
    path_prefix: Option<String>,
    marker: Option<String>,
    max_items: Option<u32>,
}

fn tag_pairs(tags: Vec<Tag>) -> Vec<(String, String)> {
    tags.into_iter().map(|tag| (tag.key, tag.value)).collect()
}

/// IAM answers `Tags` only when there are some.
fn tags_json(tags: &Tags) -> Option<Value> {
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(key, value)| json!({ "Key": key, "Value": value }))
            .collect()
    })
}

fn role_json(role: &Role) -> Value {
    json!({
        "Path": role.path,
        "RoleName": role.role_name,
        "RoleId": role.role_id,
        "Arn": role.arn,
        "CreateDate": nimbus_core::iso8601_millis(role.create_date),
        // IAM sends policy documents URL-encoded; clients decode them.
        "AssumeRolePolicyDocument":
            utf8_percent_encode(&role.assume_role_policy_document, NON_ALPHANUMERIC).to_string(),
        "Description": role.description,
        "MaxSessionDuration": role.max_session_duration,
        "Tags": tags_json(&role.tags),
    })
}

fn profile_json(view: &InstanceProfileView) -> Value {
    let profile = &view.profile;
    json!({
        "Path": profile.path,
        "InstanceProfileName": profile.instance_profile_name,
        "InstanceProfileId": profile.instance_profile_id,
        "Arn": profile.arn,
        "CreateDate": nimbus_core::iso8601_millis(profile.create_date),
        "Roles": view.roles.iter().map(role_json).collect::<Vec<_>>(),
        "Tags": tags_json(&profile.tags),
    })
}

fn page_json<T>(page: &IamPage<T>, member: &str, render: fn(&T) -> Value) -> Value {
    let mut out = json!({
        member: page.items.iter().map(render).collect::<Vec<_>>(),
        "IsTruncated": page.is_truncated,
    });
    if let Some(marker) = &page.marker {
        out["Marker"] = json!(marker);
    }
    out
}

fn list_input(input: Value) -> Result<ListInput, IdentityServiceError> {
    let input: List = params(input)?;
    Ok(ListInput {
        path_prefix: input.path_prefix,
        marker: input.marker,
        max_items: input.max_items,
    })
}

fn run(context: &ApiContext, operation: &str, input: Value) -> Result<Value, IdentityServiceError> {
    let control = &context.control;
    let empty = || json!({});
    Ok(match operation {
        "CreateRole" => {
            let input: CreateRole = params(input)?;
            let role = control.create_role(CreateRoleInput {
                role_name: input.role_name,
                path: input.path,
                assume_role_policy_document: input.assume_role_policy_document,
                description: input.description,
                max_session_duration: input.max_session_duration,
                tags: tag_pairs(input.tags),
            })?;
            json!({ "Role": role_json(&role) })
        }
        "GetRole" => {
            let input: RoleName = params(input)?;
            json!({ "Role": role_json(&control.get_role(&input.role_name)?) })
        }
        "ListRoles" => page_json(
            &control.list_roles(&list_input(input)?)?,
            "Roles",
            role_json,
        ),
        "DeleteRole" => {
            let input: RoleName = params(input)?;
            control.delete_role(&input.role_name)?;
            empty()
        }
        "UpdateAssumeRolePolicy" => {
            let input: UpdateAssumeRolePolicy = params(input)?;
            control.update_assume_role_policy(&input.role_name, &input.policy_document)?;
            empty()
        }
        "CreateInstanceProfile" => {
            let input: CreateInstanceProfile = params(input)?;
            let profile = control.create_instance_profile(CreateInstanceProfileInput {
                instance_profile_name: input.instance_profile_name,
                path: input.path,
                tags: tag_pairs(input.tags),
            })?;
            let view = InstanceProfileView {
                profile,
                roles: Vec::new(),
            };
            json!({ "InstanceProfile": profile_json(&view) })
        }
        "AddRoleToInstanceProfile" => {
            let input: ProfileRole = params(input)?;
            control.add_role_to_instance_profile(&input.instance_profile_name, &input.role_name)?;
            empty()
        }
        "RemoveRoleFromInstanceProfile" => {
            let input: ProfileRole = params(input)?;
            control.remove_role_from_instance_profile(
                &input.instance_profile_name,
                &input.role_name,
            )?;
            empty()
        }
        "GetInstanceProfile" => {
            let input: ProfileName = params(input)?;
            let view = control.get_instance_profile(&input.instance_profile_name)?;
            json!({ "InstanceProfile": profile_json(&view) })
        }
        "ListInstanceProfiles" => page_json(
            &control.list_instance_profiles(&list_input(input)?)?,
            "InstanceProfiles",
            profile_json,
        ),
        "DeleteInstanceProfile" => {
            let input: ProfileName = params(input)?;
            control.delete_instance_profile(&input.instance_profile_name)?;
            empty()
        }
        other => return Err(IdentityServiceError::NotSupported(other.to_owned())),
    })
}

impl ModelService for Iam {
    type Error = IdentityServiceError;

    fn signing_name(&self) -> &'static str {
        "iam"
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        _caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, IdentityServiceError>> {
        Box::pin(async move { run(context, operation, input) })
    }
}
