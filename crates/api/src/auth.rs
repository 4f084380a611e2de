//! Who is calling: the SigV4 gate in front of every service.

use crate::{ApiContext, ApiError};

/// Verifies a request's signature against the configured credentials.
pub(crate) fn authenticate(
    context: &ApiContext,
    request: &awsproto::HttpRequestParts,
) -> Result<awsproto::SigV4Auth, ApiError> {
    let auth = awsproto::parse_sigv4(request)?;
    let credential = context
        .control
        .config()
        .credentials
        .iter()
        .find(|c| c.access_key_id == auth.access_key_id)
        .ok_or_else(|| ApiError::from(awsproto::AuthError::UnknownAccessKey))?;
    if credential.session_token != auth.security_token {
        return Err(awsproto::AuthError::InvalidSecurityToken.into());
    }
    awsproto::verify_sigv4(
        request,
        &auth,
        &credential.secret_access_key,
        time::OffsetDateTime::now_utc(),
    )?;
    Ok(auth)
}
