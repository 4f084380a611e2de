//! AWS Signature Version 4 verification, for the `Authorization` header and for presigned
//! query strings. Parsing ([`parse_sigv4`]) needs no secret and tells who is calling and for
//! which service; [`verify_sigv4`] then checks the signature with that caller's secret.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW_SECONDS: i64 = 15 * 60;
const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 3600;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// The only service whose requests may carry a body the signature does not cover.
const UNSIGNED_BODY_SERVICE: &str = "ebs";
const EC2_AUTH_FAILURE: &str = "AWS was not able to validate the provided access credentials";

/// The parts of an HTTP request that SigV4 covers, as received (path and query still
/// percent-encoded). Header names must be lowercase; a header may appear several times.
pub struct HttpRequestParts<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// What a request's signature claims: who, when, where, and the signature itself.
#[derive(Clone, Debug, PartialEq)]
pub struct SigV4Auth {
    pub access_key_id: String,
    /// `yyyymmdd` from the credential scope.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase names, in the order the client listed them.
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date` as sent (`yyyymmddThhmmssZ`).
    pub amz_date: String,
    pub request_time: OffsetDateTime,
    /// `X-Amz-Security-Token` (header or query), for temporary credentials.
    pub security_token: Option<String>,
    /// Seconds of validity of a presigned URL; `None` for the header form.
    pub presigned_expires: Option<u64>,
}

/// Which family of AWS services is answering an authentication failure: they disagree on
/// the codes (EC2 says `AuthFailure` where IAM and STS say `InvalidClientTokenId`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthDialect {
    /// EC2 and the EBS direct APIs.
    Ec2,
    /// IAM, STS and the other AWS Query / JSON services.
    Iam,
}

impl AuthDialect {
    /// The dialect of the service named in a credential scope.
    pub fn of_service(service: &str) -> AuthDialect {
        match service {
            "ec2" | "ebs" => AuthDialect::Ec2,
            _ => AuthDialect::Iam,
        }
    }
}

/// Why a request is not authenticated. [`AuthError::aws_code`] and [`AuthError::http_status`]
/// give what EC2 answers; [`AuthError::answer`] what a given family of services answers.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    /// Neither an `Authorization` header nor a presigned query string.
    #[error("{EC2_AUTH_FAILURE}")]
    Missing,
    /// The `Authorization` header, credential scope or presigned parameters cannot be read.
    #[error("{0}")]
    Malformed(String),
    /// The access key is not known; the caller decides this after [`parse_sigv4`].
    #[error("{EC2_AUTH_FAILURE}")]
    UnknownAccessKey,
    /// The session token does not belong to the access key; the caller decides this.
    /// EC2 answers `AuthFailure` (401) here, where IAM and STS would say `InvalidClientTokenId`:
    /// SDKs treat both as "bad credentials", and we answer as the service we emulate.
    #[error("The security token included in the request is invalid.")]
    InvalidSecurityToken,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    SignatureMismatch,
    /// More than 15 minutes of clock skew, or a presigned URL past its expiry.
    #[error("{0}")]
    Expired(String),
    /// The temporary credential's session has expired; the caller decides this.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// The credential scope names a region this endpoint does not serve.
    #[error("Credential should be scoped to a valid region, not '{0}'.")]
    WrongRegion(String),
}

impl AuthError {
    pub fn aws_code(&self) -> &'static str {
        match self {
            AuthError::Missing | AuthError::UnknownAccessKey | AuthError::InvalidSecurityToken => {
                "AuthFailure"
            }
            AuthError::Malformed(_) => "IncompleteSignature",
            AuthError::SignatureMismatch | AuthError::WrongRegion(_) => "SignatureDoesNotMatch",
            AuthError::Expired(_) | AuthError::ExpiredToken => "RequestExpired",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::UnknownAccessKey | AuthError::InvalidSecurityToken => {
                401
            }
            AuthError::SignatureMismatch | AuthError::WrongRegion(_) => 403,
            AuthError::Malformed(_) | AuthError::Expired(_) | AuthError::ExpiredToken => 400,
        }
    }

    /// The code, HTTP status and message that `dialect`'s services answer.
    pub fn answer(&self, dialect: AuthDialect) -> (&'static str, u16, String) {
        if dialect == AuthDialect::Ec2 {
            let message = match self {
                AuthError::ExpiredToken => "Request has expired.".to_owned(),
                other => other.to_string(),
            };
            return (self.aws_code(), self.http_status(), message);
        }
        match self {
            AuthError::Missing => (
                "MissingAuthenticationToken",
                403,
                "Request is missing Authentication Token".to_owned(),
            ),
            AuthError::UnknownAccessKey | AuthError::InvalidSecurityToken => {
                let message = AuthError::InvalidSecurityToken.to_string();
                ("InvalidClientTokenId", 403, message)
            }
            AuthError::ExpiredToken => ("ExpiredToken", 403, self.to_string()),
            AuthError::Expired(_) => ("RequestExpired", 400, self.to_string()),
            AuthError::Malformed(_) => ("IncompleteSignature", 400, self.to_string()),
            AuthError::SignatureMismatch | AuthError::WrongRegion(_) => {
                ("SignatureDoesNotMatch", 403, self.to_string())
            }
        }
    }
}

fn malformed(message: impl Into<String>) -> AuthError {
    AuthError::Malformed(message.into())
}

fn header<'a>(request: &'a HttpRequestParts, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn parse_amz_date(text: &str) -> Result<OffsetDateTime, AuthError> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(text, format)
        .map(|t| t.assume_utc())
        .map_err(|_| {
            malformed(format!(
                "Invalid X-Amz-Date '{text}': expected yyyyMMdd'T'HHmmss'Z'"
            ))
        })
}

/// The credential scope: access key, date, region, service.
struct Scope {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
}

/// `AKID/yyyymmdd/region/service/aws4_request`
fn parse_credential(credential: &str) -> Result<Scope, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"]
            if !key.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
                && !service.is_empty() =>
        {
            Ok(Scope {
                access_key_id: key.to_string(),
                date: date.to_string(),
                region: region.to_string(),
                service: service.to_string(),
            })
        }
        _ => Err(malformed(format!(
            "Credential should be scoped to a valid region and service: '{credential}'"
        ))),
    }
}

fn query_pairs(raw_query: &str) -> Result<Vec<(String, String)>, AuthError> {
    crate::form::parse_form(raw_query.as_bytes())
        .map_err(|e| malformed(format!("The query string is malformed: {e}")))
}

/// Reads who signed the request and for what, without checking the signature yet.
pub fn parse_sigv4(request: &HttpRequestParts) -> Result<SigV4Auth, AuthError> {
    if let Some(authorization) = header(request, "authorization") {
        return parse_header_form(request, authorization);
    }
    if request.raw_query.is_empty() {
        return Err(AuthError::Missing);
    }
    let query = query_pairs(request.raw_query)?;
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("X-Amz-Algorithm") {
        Some(ALGORITHM) => {}
        Some(other) => return Err(malformed(format!("Unsupported algorithm '{other}'"))),
        None => return Err(AuthError::Missing),
    }
    let required =
        |name: &str| get(name).ok_or_else(|| malformed(format!("Missing query parameter {name}")));
    let scope = parse_credential(required("X-Amz-Credential")?)?;
    let amz_date = required("X-Amz-Date")?.to_owned();
    let expires: u64 = required("X-Amz-Expires")?
        .parse()
        .map_err(|_| malformed("X-Amz-Expires must be a number of seconds"))?;
    if expires > MAX_PRESIGN_EXPIRES {
        return Err(malformed(
            "X-Amz-Expires must be less than a week (604800 seconds)",
        ));
    }
    Ok(SigV4Auth {
        access_key_id: scope.access_key_id,
        date: scope.date,
        region: scope.region,
        service: scope.service,
        signed_headers: split_signed_headers(required("X-Amz-SignedHeaders")?)?,
        signature: required("X-Amz-Signature")?.to_owned(),
        request_time: parse_amz_date(&amz_date)?,
        amz_date,
        security_token: get("X-Amz-Security-Token").map(str::to_owned),
        presigned_expires: Some(expires),
    })
}

fn split_signed_headers(text: &str) -> Result<Vec<String>, AuthError> {
    let headers: Vec<String> = text.split(';').map(str::to_ascii_lowercase).collect();
    if headers.iter().any(|h| h.is_empty() || h.contains(' ')) {
        return Err(malformed(
            "SignedHeaders must be a ';'-separated list of header names",
        ));
    }
    if !headers.iter().any(|h| h == "host") {
        return Err(malformed("The host header must be signed"));
    }
    Ok(headers)
}

fn parse_header_form(
    request: &HttpRequestParts,
    authorization: &str,
) -> Result<SigV4Auth, AuthError> {
    let rest = authorization
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| malformed(format!("Authorization header must use {ALGORITHM}")))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("Authorization header is malformed"))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(malformed(format!(
                    "Authorization header has an unknown component '{key}'"
                )))
            }
        };
        if slot.replace(value).is_some() {
            return Err(malformed(format!(
                "Authorization header repeats the '{key}' component"
            )));
        }
    }
    let missing =
        |name: &str| malformed(format!("Authorization header requires '{name}' parameter"));
    let scope = parse_credential(credential.ok_or_else(|| missing("Credential"))?)?;
    let amz_date = header(request, "x-amz-date")
        .ok_or_else(|| malformed("Authorization requires the X-Amz-Date header"))?
        .to_owned();
    Ok(SigV4Auth {
        access_key_id: scope.access_key_id,
        date: scope.date,
        region: scope.region,
        service: scope.service,
        signed_headers: split_signed_headers(
            signed_headers.ok_or_else(|| missing("SignedHeaders"))?,
        )?,
        signature: signature.ok_or_else(|| missing("Signature"))?.to_owned(),
        request_time: parse_amz_date(&amz_date)?,
        amz_date,
        security_token: header(request, "x-amz-security-token").map(str::to_owned),
        presigned_expires: None,
    })
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, every other byte is %XX.
fn uri_encode_into(out: &mut String, text: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
    }
}

/// The path with dot segments and empty segments removed (RFC 3986 5.2.4, plus the `//`
/// merging AWS does), then encoded once more, as every AWS SDK does for every service but S3.
fn canonical_uri_into(out: &mut String, raw_path: &str) {
    let mut segments: Vec<&str> = Vec::new();
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    out.push('/');
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode_into(out, segment, false);
    }
    let trailing_slash = ["/", "/.", "/.."].iter().any(|end| raw_path.ends_with(end));
    if trailing_slash && !segments.is_empty() {
        out.push('/');
    }
}

fn canonical_query_into(
    out: &mut String,
    raw_query: &str,
    presigned: bool,
) -> Result<(), AuthError> {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)?
        .into_iter()
        .filter(|(key, _)| !(presigned && key == "X-Amz-Signature"))
        .map(|(key, value)| {
            let (mut encoded_key, mut encoded_value) = (String::new(), String::new());
            uri_encode_into(&mut encoded_key, &key, false);
            uri_encode_into(&mut encoded_value, &value, false);
            (encoded_key, encoded_value)
        })
        .collect();
    pairs.sort_unstable();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    Ok(())
}

/// Values trimmed, inner runs of whitespace made one space, repeated headers joined by ",".
fn canonical_header_into(
    out: &mut String,
    request: &HttpRequestParts,
    name: &str,
) -> Result<(), AuthError> {
    out.push_str(name);
    out.push(':');
    let mut found = false;
    for (_, value) in request
        .headers
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
    {
        if found {
            out.push(',');
        }
        found = true;
        for (i, word) in value.split_ascii_whitespace().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    if !found {
        return Err(malformed(format!(
            "The signed header '{name}' is not in the request"
        )));
    }
    out.push('\n');
    Ok(())
}

fn canonical_request(
    request: &HttpRequestParts,
    auth: &SigV4Auth,
    payload_hash: &str,
) -> Result<String, AuthError> {
    let mut out = String::with_capacity(256 + request.raw_query.len() * 2);
    out.push_str(request.method);
    out.push('\n');
    canonical_uri_into(&mut out, request.raw_path);
    out.push('\n');
    canonical_query_into(
        &mut out,
        request.raw_query,
        auth.presigned_expires.is_some(),
    )?;
    out.push('\n');
    for name in &auth.signed_headers {
        canonical_header_into(&mut out, request, name)?;
    }
    out.push('\n');
    out.push_str(&auth.signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

fn hmac(key: &[u8], data: &str) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key for a secret and a credential scope.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    hmac(&k_service, "aws4_request")
}

fn signature_for(
    request: &HttpRequestParts,
    auth: &SigV4Auth,
    secret: &str,
    payload_hash: &str,
) -> Result<String, AuthError> {
    let canonical = canonical_request(request, auth, payload_hash)?;
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}/{}/{}/aws4_request\n{}",
        auth.amz_date,
        auth.date,
        auth.region,
        auth.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    Ok(hex::encode(hmac(
        &signing_key(secret, &auth.date, &auth.region, &auth.service),
        &string_to_sign,
    )))
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check_time(auth: &SigV4Auth, now: OffsetDateTime) -> Result<(), AuthError> {
    let age = (now - auth.request_time).whole_seconds();
    if let Some(expires) = auth.presigned_expires {
        if age > i64::try_from(expires).unwrap_or(i64::MAX) {
            return Err(AuthError::Expired(format!(
                "Request has expired: it was presigned at {} for {expires} seconds.",
                auth.amz_date
            )));
        }
    }
    // A presigned URL may be used long after signing, but neither form may come from the future.
    let too_old = auth.presigned_expires.is_none() && age > MAX_SKEW_SECONDS;
    if too_old || age < -MAX_SKEW_SECONDS {
        return Err(AuthError::Expired(format!(
            "Request timestamp {} is more than 15 minutes from the server time.",
            auth.amz_date
        )));
    }
    Ok(())
}

/// Whether the request is EBS's PutSnapshotBlock (`PUT /snapshots/{id}/blocks/{index}`)
/// with its data's checksum among the signed headers: the one request whose body may go
/// unsigned, since the checksum the signature covers vouches for it.
fn is_put_snapshot_block(request: &HttpRequestParts, auth: &SigV4Auth) -> bool {
    let segments: Vec<&str> = request
        .raw_path
        .trim_start_matches('/')
        .split('/')
        .collect();
    auth.service == UNSIGNED_BODY_SERVICE
        && request.method == "PUT"
        && matches!(segments.as_slice(), ["snapshots", _, "blocks", _])
        && auth.signed_headers.iter().any(|h| h == "x-amz-checksum")
}

/// Checks the request's age against `now`, then the signature with the caller's secret.
///
/// The payload hash is `x-amz-content-sha256` when sent (it must then match the body, unless
/// it is `UNSIGNED-PAYLOAD`), else the body's SHA-256: EC2 clients send no such header. A
/// presigned URL may also have been signed with `UNSIGNED-PAYLOAD`.
pub fn verify_sigv4(
    request: &HttpRequestParts,
    auth: &SigV4Auth,
    secret_access_key: &str,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    check_time(auth, now)?;
    if !auth.amz_date.starts_with(&auth.date) {
        return Err(malformed(format!(
            "The credential date {} does not match X-Amz-Date {}",
            auth.date, auth.amz_date
        )));
    }
    let body_hash = || hex::encode(Sha256::digest(request.body));
    // A body the signature does not cover could be swapped by anyone holding a presigned URL
    // or a captured request, and every service here acts on its body. The one exception is
    // the EBS direct API's PutSnapshotBlock (`v4-unsigned-body` in its model), whose data is
    // checked against the signed `x-amz-Checksum` header.
    let unsigned_allowed = request.body.is_empty() || is_put_snapshot_block(request, auth);
    let candidates = match header(request, "x-amz-content-sha256") {
        Some(UNSIGNED_PAYLOAD) if unsigned_allowed => vec![UNSIGNED_PAYLOAD.to_owned()],
        Some(UNSIGNED_PAYLOAD) => {
            return Err(malformed(
                "UNSIGNED-PAYLOAD is not accepted for a request with a body: sign the body.",
            ))
        }
        Some(streaming) if streaming.starts_with("STREAMING-") => {
            return Err(malformed(
                "Chunked (STREAMING-*) payload signing is not supported: sign the whole body.",
            ))
        }
        Some(claimed) => {
            let actual = body_hash();
            if claimed != actual {
                return Err(AuthError::SignatureMismatch);
            }
            vec![actual]
        }
        None if auth.presigned_expires.is_some() && unsigned_allowed => {
            vec![body_hash(), UNSIGNED_PAYLOAD.to_owned()]
        }
        None => vec![body_hash()],
    };
    for payload_hash in candidates {
        let expected = signature_for(request, auth, secret_access_key, &payload_hash)?;
        if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
            return Ok(());
        }
    }
    Err(AuthError::SignatureMismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn request<'a>(headers: &'a [(String, String)], query: &'a str) -> HttpRequestParts<'a> {
        HttpRequestParts {
            method: "GET",
            raw_path: "/",
            raw_query: query,
            headers,
            body: b"",
        }
    }

    /// The values of AWS's worked example in the SigV4 documentation ("Examples of how to
    /// derive a signing key", and the IAM `ListUsers` request of "Create a signed request").
    #[test]
    fn aws_documented_example() {
        assert_eq!(
            hex::encode(signing_key(EXAMPLE_SECRET, "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        assert_eq!(
            hex::encode(signing_key(EXAMPLE_SECRET, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let h = headers(&[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
        ]);
        let request = request(&h, "Action=ListUsers&Version=2010-05-08");
        let auth = parse_sigv4(&request).expect("parse");
        assert_eq!(
            (
                auth.access_key_id.as_str(),
                auth.region.as_str(),
                auth.service.as_str()
            ),
            ("AKIDEXAMPLE", "us-east-1", "iam")
        );
        let canonical = canonical_request(&request, &auth, &hex::encode(Sha256::digest(b"")))
            .expect("canonical");
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let at = auth.request_time;
        assert_eq!(verify_sigv4(&request, &auth, EXAMPLE_SECRET, at), Ok(()));
        assert_eq!(
            verify_sigv4(&request, &auth, "wrong", at),
            Err(AuthError::SignatureMismatch)
        );
        let mut wrong = auth.clone();
        wrong.signature.replace_range(0..1, "6");
        assert_eq!(
            verify_sigv4(&request, &wrong, EXAMPLE_SECRET, at),
            Err(AuthError::SignatureMismatch)
        );
        for skew in [16, -16] {
            let error = verify_sigv4(
                &request,
                &auth,
                EXAMPLE_SECRET,
                at + time::Duration::minutes(skew),
            )
            .expect_err("skewed");
            assert_eq!(
                (error.aws_code(), error.http_status()),
                ("RequestExpired", 400)
            );
        }
        for skew in [14, -14] {
            let now = at + time::Duration::minutes(skew);
            assert_eq!(verify_sigv4(&request, &auth, EXAMPLE_SECRET, now), Ok(()));
        }
    }

    #[test]
    fn error_codes_are_ec2s() {
        let cases = [
            (AuthError::Missing, "AuthFailure", 401),
            (AuthError::UnknownAccessKey, "AuthFailure", 401),
            (AuthError::InvalidSecurityToken, "AuthFailure", 401),
            (malformed("x"), "IncompleteSignature", 400),
            (AuthError::SignatureMismatch, "SignatureDoesNotMatch", 403),
            (AuthError::Expired("x".into()), "RequestExpired", 400),
            (AuthError::ExpiredToken, "RequestExpired", 400),
            (
                AuthError::WrongRegion("x".into()),
                "SignatureDoesNotMatch",
                403,
            ),
        ];
        for (error, code, status) in cases {
            assert_eq!((error.aws_code(), error.http_status()), (code, status));
        }
        assert_eq!(
            AuthError::Missing.to_string(),
            "AWS was not able to validate the provided access credentials"
        );
    }

    #[test]
    fn iam_and_sts_answer_their_own_codes() {
        let iam = |error: AuthError| {
            let (code, status, _) = error.answer(AuthDialect::Iam);
            (code, status)
        };
        assert_eq!(
            iam(AuthError::UnknownAccessKey),
            ("InvalidClientTokenId", 403)
        );
        assert_eq!(
            iam(AuthError::InvalidSecurityToken),
            ("InvalidClientTokenId", 403)
        );
        assert_eq!(iam(AuthError::ExpiredToken), ("ExpiredToken", 403));
        assert_eq!(iam(AuthError::Missing), ("MissingAuthenticationToken", 403));
        assert_eq!(
            iam(AuthError::WrongRegion("eu-west-1".into())),
            ("SignatureDoesNotMatch", 403)
        );
        assert_eq!(
            AuthError::ExpiredToken.answer(AuthDialect::Ec2),
            ("RequestExpired", 400, "Request has expired.".to_owned())
        );
        assert_eq!(AuthDialect::of_service("ebs"), AuthDialect::Ec2);
        assert_eq!(AuthDialect::of_service("sts"), AuthDialect::Iam);
    }

    #[test]
    fn parses_header_form_and_rejects_garbage() {
        let h = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
            ("x-amz-date", "20261123T010203Z"),
            ("host", "localhost"),
        ]);
        let auth = parse_sigv4(&request(&h, "")).expect("parse");
        assert_eq!(
            (auth.access_key_id.as_str(), auth.service.as_str()),
            ("test", "ec2")
        );
        for bad in [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 ",
            "AWS4-HMAC-SHA256Credential=a/20261123/r/s/aws4_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=",
            "Basic dGVzdDp0ZXN0",
            "AWS4-HMAC-SHA256 Credential=test/2/3/4/5/6, SignedHeaders=, Signature=zz",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, SignedHeaders=host;;x-amz-date, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request,,, Signature",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, SignedHeaders=host",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, Signature=1",
            "AWS4-HMAC-SHA256 SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/2026112/r/s/aws4_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/2026112x/r/s/aws4_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/20261123//s/aws4_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws5_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=/20261123/r/s/aws4_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, SignedHeaders=host, Signature=1, Extra=2",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, Credential=a/20261123/r/s/aws4_request, SignedHeaders=host, Signature=1",
            "AWS4-HMAC-SHA1 Credential=a/20261123/r/s/aws4_request, SignedHeaders=host, Signature=1",
        ] {
            let h = headers(&[("authorization", bad), ("x-amz-date", "20261123T010203Z"), ("host", "h")]);
            let error = parse_sigv4(&request(&h, "")).expect_err(bad);
            assert_eq!(error.aws_code(), "IncompleteSignature", "{bad}");
        }
        let good = "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, SignedHeaders=host, Signature=1";
        for date in ["", "20261123", "20261123T250000Z", "2026-11-23T01:02:03Z"] {
            let h = headers(&[("authorization", good), ("x-amz-date", date), ("host", "h")]);
            assert!(parse_sigv4(&request(&h, "")).is_err(), "{date}");
        }
        let h = headers(&[("authorization", good), ("host", "h")]);
        assert!(parse_sigv4(&request(&h, "")).is_err(), "no x-amz-date");
        assert_eq!(parse_sigv4(&request(&[], "")), Err(AuthError::Missing));
        assert_eq!(
            parse_sigv4(&request(&[], "Action=DescribeRegions")),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn parses_presigned_form_and_rejects_garbage() {
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261123%2Fus-east-1%2Fec2%2Faws4_request&X-Amz-Date=20261123T010203Z&X-Amz-SignedHeaders=host&X-Amz-Signature=ab";
        let auth = parse_sigv4(&request(
            &[],
            &format!("{base}&X-Amz-Expires=300&X-Amz-Security-Token=t%2Bk"),
        ))
        .expect("parse");
        assert_eq!(auth.presigned_expires, Some(300));
        assert_eq!(auth.security_token.as_deref(), Some("t+k"));
        for bad in [
            base.to_owned(),
            format!("{base}&X-Amz-Expires=soon"),
            format!("{base}&X-Amz-Expires=-1"),
            format!("{base}&X-Amz-Expires=604801"),
            format!("{base}&X-Amz-Expires=1&%zz"),
            base.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256") + "&X-Amz-Expires=1",
            base.replace("X-Amz-Date=20261123T010203Z", "X-Amz-Date=yesterday")
                + "&X-Amz-Expires=1",
            base.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=x-amz-date")
                + "&X-Amz-Expires=1",
            base.replace("&X-Amz-Signature=ab", "") + "&X-Amz-Expires=1",
        ] {
            assert!(parse_sigv4(&request(&[], &bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn presigned_urls_expire() {
        let auth = SigV4Auth {
            access_key_id: "a".into(),
            date: "20261123".into(),
            region: "r".into(),
            service: "s".into(),
            signed_headers: vec!["host".into()],
            signature: String::new(),
            amz_date: "20261123T000000Z".into(),
            request_time: parse_amz_date("20261123T000000Z").expect("date"),
            security_token: None,
            presigned_expires: Some(3600),
        };
        let at = auth.request_time;
        assert_eq!(check_time(&auth, at + time::Duration::minutes(59)), Ok(()));
        for now in [
            at + time::Duration::minutes(61),
            at - time::Duration::minutes(16),
        ] {
            assert!(matches!(check_time(&auth, now), Err(AuthError::Expired(_))));
        }
    }

    #[test]
    fn body_hash_header_must_match_the_body() {
        let h = headers(&[
            ("host", "h"),
            ("x-amz-date", "20261123T010203Z"),
            ("x-amz-content-sha256", "00"),
        ]);
        let auth = SigV4Auth {
            access_key_id: "a".into(),
            date: "20261123".into(),
            region: "r".into(),
            service: "s".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: String::new(),
            amz_date: "20261123T010203Z".into(),
            request_time: parse_amz_date("20261123T010203Z").expect("date"),
            security_token: None,
            presigned_expires: None,
        };
        let at = auth.request_time;
        assert_eq!(
            verify_sigv4(&request(&h, ""), &auth, "k", at),
            Err(AuthError::SignatureMismatch)
        );
        let h = headers(&[
            ("host", "h"),
            ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ]);
        assert!(matches!(
            verify_sigv4(&request(&h, ""), &auth, "k", at),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn only_put_snapshot_block_with_a_signed_checksum_may_leave_its_body_unsigned() {
        let auth = |signed: &[&str]| SigV4Auth {
            access_key_id: "a".into(),
            date: "20261123".into(),
            region: "r".into(),
            service: "ebs".into(),
            signed_headers: signed.iter().map(|h| h.to_string()).collect(),
            signature: String::new(),
            amz_date: "20261123T010203Z".into(),
            request_time: parse_amz_date("20261123T010203Z").expect("date"),
            security_token: None,
            presigned_expires: None,
        };
        let h = headers(&[
            ("host", "h"),
            ("x-amz-content-sha256", UNSIGNED_PAYLOAD),
            ("x-amz-checksum", "c2Vj"),
        ]);
        let put = |path: &'static str| HttpRequestParts {
            method: "PUT",
            raw_path: path,
            raw_query: "",
            headers: &h,
            body: b"data",
        };
        let with_checksum = auth(&["host", "x-amz-checksum"]);
        let at = with_checksum.request_time;
        let refused = |outcome| matches!(outcome, Err(AuthError::Malformed(_)));
        // Accepted as unsigned, then judged by the (empty, so wrong) signature.
        assert_eq!(
            verify_sigv4(&put("/snapshots/snap-1/blocks/0"), &with_checksum, "k", at),
            Err(AuthError::SignatureMismatch)
        );
        assert!(refused(verify_sigv4(
            &put("/snapshots"),
            &with_checksum,
            "k",
            at
        )));
        let unsigned_checksum = auth(&["host"]);
        assert!(refused(verify_sigv4(
            &put("/snapshots/snap-1/blocks/0"),
            &unsigned_checksum,
            "k",
            at
        )));
    }

    fn canonical_uri(raw_path: &str) -> String {
        let mut out = String::new();
        canonical_uri_into(&mut out, raw_path);
        out
    }

    #[test]
    fn canonical_uri_normalizes_and_encodes() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(canonical_uri("/a/b/.."), "/a/");
        assert_eq!(canonical_uri("/a/b/."), "/a/b/");
        assert_eq!(canonical_uri("/a/b/"), "/a/b/");
        assert_eq!(canonical_uri("/../.."), "/");
        assert_eq!(canonical_uri("/a%20b/~c d"), "/a%2520b/~c%20d");
    }

    #[test]
    fn canonical_query_sorts_and_encodes() {
        let mut out = String::new();
        canonical_query_into(
            &mut out,
            "b=2&a=%7e+x&a=1&c&X-Amz-Signature=s&%C3%A9=*",
            true,
        )
        .expect("query");
        // Sorted by the encoded key: "%" sorts before letters.
        assert_eq!(out, "%C3%A9=%2A&a=1&a=~%20x&b=2&c=");
    }

    /// Builds Authorization headers from pieces that look almost right.
    fn authorization_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("AWS4-HMAC-SHA256 ".to_owned()),
            Just("Credential=".to_owned()),
            Just("a/20261123/r/s/aws4_request".to_owned()),
            Just("SignedHeaders=".to_owned()),
            Just("host;x-amz-date".to_owned()),
            Just("Signature=".to_owned()),
            Just(", ".to_owned()),
            Just("/".to_owned()),
            Just("=".to_owned()),
            Just(";".to_owned()),
            "\\PC{0,8}",
            ".{0,4}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #[test]
        fn malformed_requests_never_panic(
            authorization in authorization_strategy(),
            date in "[0-9TZ]{0,17}",
            path in "\\PC{0,16}",
            query in "\\PC{0,32}",
            host in ".{0,8}",
        ) {
            let h = headers(&[("authorization", &authorization), ("x-amz-date", &date), ("host", &host)]);
            let request = HttpRequestParts { method: "POST", raw_path: &path, raw_query: &query, headers: &h, body: b"x" };
            if let Ok(auth) = parse_sigv4(&request) {
                proptest::prop_assert!(verify_sigv4(&request, &auth, "k", auth.request_time).is_err());
            }
            let presigned = HttpRequestParts { headers: &h[1..], ..request };
            if let Ok(auth) = parse_sigv4(&presigned) {
                proptest::prop_assert!(verify_sigv4(&presigned, &auth, "k", auth.request_time).is_err());
            }
        }
    }
}
