//! AssociateIamInstanceProfile, DescribeIamInstanceProfileAssociations,
//! ReplaceIamInstanceProfileAssociation, DisassociateIamInstanceProfile.

use control::credentials::InstanceProfileSpecification;
use control::profile_associations::AssociationRow;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{answer, describe_request, input, page_output, Handler, NoOtherParameters, Output};
use crate::ApiContext;

/// The actions this module answers.
pub(super) const HANDLERS: &[(&str, Handler)] = &[
    (
        "AssociateIamInstanceProfile",
        Handler::Sync(associate_iam_instance_profile),
    ),
    (
        "DescribeIamInstanceProfileAssociations",
        Handler::Sync(describe_iam_instance_profile_associations),
    ),
    (
        "ReplaceIamInstanceProfileAssociation",
        Handler::Sync(replace_iam_instance_profile_association),
    ),
    (
        "DisassociateIamInstanceProfile",
        Handler::Sync(disassociate_iam_instance_profile),
    ),
];

/// The model's `IamInstanceProfileSpecification` (also RunInstances' `IamInstanceProfile`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub(super) struct ProfileInput {
    arn: Option<String>,
    name: Option<String>,
}

impl From<ProfileInput> for InstanceProfileSpecification {
    fn from(profile: ProfileInput) -> InstanceProfileSpecification {
        InstanceProfileSpecification {
            arn: profile.arn,
            name: profile.name,
        }
    }
}

/// One association (the model's `IamInstanceProfileAssociation`).
fn association_output(row: &AssociationRow) -> Value {
    json!({
        "AssociationId": row.association_id,
        "InstanceId": row.instance_id,
        "IamInstanceProfile": {"Arn": row.profile_arn, "Id": row.profile_id},
        "State": row.state,
        "Timestamp": nimbus_core::iso8601_millis(row.timestamp),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssociateIamInstanceProfile {
    iam_instance_profile: ProfileInput,
    instance_id: String,
}

fn associate_iam_instance_profile(context: &ApiContext, request: Value) -> Output {
    let request: AssociateIamInstanceProfile = input(request)?;
    let row = context.control.associate_iam_instance_profile(
        &request.instance_id,
        &request.iam_instance_profile.into(),
    )?;
    answer(json!({"IamInstanceProfileAssociation": association_output(&row)}))
}

fn describe_iam_instance_profile_associations(context: &ApiContext, request: Value) -> Output {
    let (query, NoOtherParameters {}) = describe_request(request, Some("AssociationIds"))?;
    let page = context
        .control
        .describe_iam_instance_profile_associations(&query)?;
    Ok(page_output("IamInstanceProfileAssociations", page, |row| {
        association_output(&row)
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ReplaceIamInstanceProfileAssociation {
    iam_instance_profile: ProfileInput,
    association_id: String,
}

fn replace_iam_instance_profile_association(context: &ApiContext, request: Value) -> Output {
    let request: ReplaceIamInstanceProfileAssociation = input(request)?;
    let row = context.control.replace_iam_instance_profile_association(
        &request.association_id,
        &request.iam_instance_profile.into(),
    )?;
    answer(json!({"IamInstanceProfileAssociation": association_output(&row)}))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DisassociateIamInstanceProfile {
    association_id: String,
}

fn disassociate_iam_instance_profile(context: &ApiContext, request: Value) -> Output {
    let request: DisassociateIamInstanceProfile = input(request)?;
    let row = context
        .control
        .disassociate_iam_instance_profile(&request.association_id)?;
    answer(json!({"IamInstanceProfileAssociation": association_output(&row)}))
}
