//! AWS STS (Query protocol) over control's credential operations.

use control::credentials::{AssumeRoleInput, Caller, Credentials};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{params, IdentityServiceError};
use crate::service::{BoxFuture, ModelService};
use crate::ApiContext;

pub(crate) struct Sts;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct GetSessionToken {
    duration_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct AssumeRole {
    role_arn: String,
    role_session_name: String,
    duration_seconds: Option<u32>,
}

fn credentials(credentials: &Credentials) -> Value {
    json!({
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key,
        "SessionToken": credentials.session_token,
        "Expiration": nimbus_core::iso8601_millis(credentials.expiration),
    })
}

fn run(
    context: &ApiContext,
    caller: &Caller,
    operation: &str,
    input: Value,
) -> Result<Value, IdentityServiceError> {
    let control = &context.control;
    match operation {
        "GetCallerIdentity" => Ok(json!({
            "UserId": caller.user_id,
            "Account": caller.account_id,
            "Arn": caller.arn,
        })),
        "GetSessionToken" => {
            let input: GetSessionToken = params(input)?;
            let issued = control.get_session_token(caller, input.duration_seconds)?;
            Ok(json!({ "Credentials": credentials(&issued) }))
        }
        "AssumeRole" => {
            let input: AssumeRole = params(input)?;
            let assumed = control.assume_role(
                caller,
                &AssumeRoleInput {
                    role_arn: input.role_arn,
                    role_session_name: input.role_session_name,
                    duration_seconds: input.duration_seconds,
                },
            )?;
            Ok(json!({
                "Credentials": credentials(&assumed.credentials),
                "AssumedRoleUser": {
                    "Arn": assumed.assumed_role_arn,
                    "AssumedRoleId": assumed.assumed_role_id,
                },
            }))
        }
        other => Err(IdentityServiceError::NotSupported(other.to_owned())),
    }
}

impl ModelService for Sts {
    type Error = IdentityServiceError;

    fn signing_name(&self) -> &'static str {
        "sts"
    }

    fn call<'a>(
        &'a self,
        context: &'a ApiContext,
        caller: &'a Caller,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, IdentityServiceError>> {
        Box::pin(async move { run(context, caller, operation, input) })
    }
}
