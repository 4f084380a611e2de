//! Who is calling: the SigV4 gate in front of every service.
//!
//! An access key is either one of the configured long-term keys (the account's root user) or
//! a temporary credential issued by STS, which must come with its own session token and is
//! refused once expired. The credential scope must name the region this endpoint serves, or
//! `us-east-1` for the global services IAM and STS.

use axum::http::StatusCode;
use control::credentials::{Caller, CredentialError};

use crate::{ApiContext, ApiError};

/// The region IAM and STS's global endpoint are signed for, whatever region nimbus serves.
const GLOBAL_SIGNING_REGION: &str = "us-east-1";

/// An authenticated request: what its signature claims and who the caller is.
pub(crate) struct Authenticated {
    pub auth: awsproto::SigV4Auth,
    pub caller: Caller,
}

/// Verifies a request's signature and resolves its caller. Failures carry the code and status
/// that the service named in the credential scope answers (EC2's when no scope is readable).
pub(crate) fn authenticate(
    context: &ApiContext,
    request: &awsproto::HttpRequestParts,
) -> Result<Authenticated, ApiError> {
    let auth = awsproto::parse_sigv4(request)
        .map_err(|error| auth_error(&error, awsproto::AuthDialect::Ec2))?;
    let dialect = awsproto::AuthDialect::of_service(&auth.service);
    let caller = verify(context, request, &auth).map_err(|error| auth_error(&error, dialect))?;
    Ok(Authenticated { auth, caller })
}

fn verify(
    context: &ApiContext,
    request: &awsproto::HttpRequestParts,
    auth: &awsproto::SigV4Auth,
) -> Result<Caller, awsproto::AuthError> {
    if !region_served(&context.control.config().region, auth) {
        return Err(awsproto::AuthError::WrongRegion(auth.region.clone()));
    }
    let now = time::OffsetDateTime::now_utc();
    let now_millis = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let resolved = context
        .control
        .resolve_access_key(
            &auth.access_key_id,
            auth.security_token.as_deref(),
            now_millis,
        )
        .map_err(|error| match error {
            CredentialError::UnknownAccessKey => awsproto::AuthError::UnknownAccessKey,
            CredentialError::InvalidToken => awsproto::AuthError::InvalidSecurityToken,
            CredentialError::Expired => awsproto::AuthError::ExpiredToken,
        })?;
    awsproto::verify_sigv4(request, auth, &resolved.secret_access_key, now)?;
    Ok(resolved.caller)
}

/// Whether the credential scope's region is one this endpoint answers for. IAM and STS are
/// also served as global services: clients sign those for `us-east-1` when they use AWS's
/// global endpoints, and for their own region when given an endpoint URL such as nimbus's.
fn region_served(region: &str, auth: &awsproto::SigV4Auth) -> bool {
    let global = matches!(auth.service.as_str(), "iam" | "sts");
    auth.region == region || (global && auth.region == GLOBAL_SIGNING_REGION)
}

fn auth_error(error: &awsproto::AuthError, dialect: awsproto::AuthDialect) -> ApiError {
    let (code, status, message) = error.answer(dialect);
    ApiError::new(
        StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
        code,
        message,
    )
}
