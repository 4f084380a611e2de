//! AWS Signature Version 4 verification, for the `Authorization` header and for presigned
//! query strings. Parsing ([`parse_sigv4`]) needs no secret and tells who is calling and for
//! which service; [`verify_sigv4`] then checks the signature with that caller's secret.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::form::decode_component;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MAX_SKEW_SECONDS: i64 = 15 * 60;
const MAX_PRESIGN_EXPIRES: u64 = 7 * 24 * 3600;
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The parts of an HTTP request that SigV4 covers. Header names must be lowercase.
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
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date` as sent (`yyyymmddThhmmssZ`).
    pub amz_date: String,
    pub request_time: OffsetDateTime,
    pub security_token: Option<String>,
    /// Seconds of validity of a presigned URL; `None` for the header form.
    pub presigned_expires: Option<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AuthError {
    #[error("Request is missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Malformed(String),
    #[error("AWS was not able to validate the provided access credentials")]
    UnknownAccessKey,
    #[error("The security token included in the request is invalid.")]
    InvalidSecurityToken,
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")]
    SignatureMismatch,
    #[error("{0}")]
    Expired(String),
}

impl AuthError {
    pub fn aws_code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationToken",
            AuthError::Malformed(_) => "IncompleteSignature",
            // EC2 answers AuthFailure for an unknown key and for a bad session token alike.
            AuthError::UnknownAccessKey | AuthError::InvalidSecurityToken => "AuthFailure",
            AuthError::SignatureMismatch => "SignatureDoesNotMatch",
            AuthError::Expired(_) => "RequestExpired",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            AuthError::Missing | AuthError::UnknownAccessKey | AuthError::InvalidSecurityToken => {
                401
            }
            AuthError::SignatureMismatch => 403,
            AuthError::Malformed(_) | AuthError::Expired(_) => 400,
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

/// `AKID/yyyymmdd/region/service/aws4_request`
fn parse_credential(credential: &str) -> Result<(String, String, String, String), AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [key, date, region, service, "aws4_request"]
            if !key.is_empty()
                && date.len() == 8
                && date.bytes().all(|b| b.is_ascii_digit())
                && !region.is_empty()
                && !service.is_empty() =>
        {
            Ok((
                key.to_string(),
                date.to_string(),
                region.to_string(),
                service.to_string(),
            ))
        }
        _ => Err(malformed(format!(
            "Credential should be scoped to a valid region and service: '{credential}'"
        ))),
    }
}

fn query_pairs(raw_query: &str) -> Result<Vec<(String, String)>, AuthError> {
    raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((
                decode_component(key.as_bytes(), false).map_err(|e| malformed(e.to_string()))?,
                decode_component(value.as_bytes(), false).map_err(|e| malformed(e.to_string()))?,
            ))
        })
        .collect()
}

/// Reads who signed the request and for what, without checking the signature yet.
pub fn parse_sigv4(request: &HttpRequestParts) -> Result<SigV4Auth, AuthError> {
    if let Some(authorization) = header(request, "authorization") {
        return parse_header_form(request, authorization);
    }
    let query = query_pairs(request.raw_query).unwrap_or_default();
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
    let (access_key_id, date, region, service) = parse_credential(required("X-Amz-Credential")?)?;
    let amz_date = required("X-Amz-Date")?.to_owned();
    let expires: u64 = required("X-Amz-Expires")?
        .parse()
        .map_err(|_| malformed("X-Amz-Expires must be a number of seconds"))?;
    if expires == 0 || expires > MAX_PRESIGN_EXPIRES {
        return Err(malformed(
            "X-Amz-Expires must be between 1 and 604800 seconds",
        ));
    }
    Ok(SigV4Auth {
        access_key_id,
        date,
        region,
        service,
        signed_headers: split_signed_headers(required("X-Amz-SignedHeaders")?)?,
        signature: required("X-Amz-Signature")?.to_owned(),
        request_time: parse_amz_date(&amz_date)?,
        amz_date,
        security_token: get("X-Amz-Security-Token").map(str::to_owned),
        presigned_expires: Some(expires),
    })
}

fn split_signed_headers(text: &str) -> Result<Vec<String>, AuthError> {
    let headers: Vec<String> = text
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if headers.iter().any(|h| h.is_empty()) {
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
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {
                return Err(malformed(format!(
                    "Authorization header has an unknown component '{key}'"
                )))
            }
        }
    }
    let missing =
        |name: &str| malformed(format!("Authorization header requires '{name}' parameter"));
    let (access_key_id, date, region, service) =
        parse_credential(credential.ok_or_else(|| missing("Credential"))?)?;
    let amz_date = header(request, "x-amz-date")
        .ok_or_else(|| malformed("Authorization requires the X-Amz-Date header"))?
        .to_owned();
    Ok(SigV4Auth {
        access_key_id,
        date,
        region,
        service,
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

/// RFC 3986 encoding as SigV4 wants it: unreserved characters stay, everything else is %XX.
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The path with dot segments and empty segments removed, encoded once more (as botocore does
/// for every service but S3).
fn canonical_uri(raw_path: &str) -> String {
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
    let mut path = format!("/{}", segments.join("/"));
    if raw_path.ends_with('/') && path != "/" {
        path.push('/');
    }
    uri_encode(&path, true)
}

fn canonical_query(raw_query: &str, presigned: bool) -> Result<String, AuthError> {
    let mut pairs: Vec<(String, String)> = query_pairs(raw_query)?
        .into_iter()
        .filter(|(key, _)| !(presigned && key == "X-Amz-Signature"))
        .map(|(key, value)| (uri_encode(&key, false), uri_encode(&value, false)))
        .collect();
    pairs.sort();
    Ok(pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&"))
}

fn canonical_header_value(values: &[&str]) -> String {
    values
        .iter()
        .map(|value| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(",")
}

fn canonical_request(
    request: &HttpRequestParts,
    auth: &SigV4Auth,
    payload_hash: &str,
) -> Result<String, AuthError> {
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let values: Vec<&str> = request
            .headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect();
        if values.is_empty() {
            return Err(malformed(format!(
                "The signed header '{name}' is not in the request"
            )));
        }
        canonical_headers.push_str(&format!("{name}:{}\n", canonical_header_value(&values)));
    }
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_uri(request.raw_path),
        canonical_query(request.raw_query, auth.presigned_expires.is_some())?,
        canonical_headers,
        auth.signed_headers.join(";"),
        payload_hash
    ))
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The SigV4 signing key for a secret and a credential scope.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the signature, the credential date and the request's age against `now`.
pub fn verify_sigv4(
    request: &HttpRequestParts,
    auth: &SigV4Auth,
    secret_access_key: &str,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    if !auth.amz_date.starts_with(&auth.date) {
        return Err(malformed("The credential date does not match X-Amz-Date"));
    }
    let age = (now - auth.request_time).whole_seconds();
    match auth.presigned_expires {
        Some(expires) if age > expires as i64 => {
            return Err(AuthError::Expired(format!(
                "Request has expired (signed at {}).",
                auth.amz_date
            )))
        }
        _ if age.abs() > MAX_SKEW_SECONDS && (auth.presigned_expires.is_none() || age < 0) => {
            return Err(AuthError::Expired(format!(
                "Request timestamp {} is more than 15 minutes from the server time.",
                auth.amz_date
            )))
        }
        _ => {}
    }
    let body_hash = hex::encode(Sha256::digest(request.body));
    let claimed_hash = header(request, "x-amz-content-sha256");
    let mut candidates = vec![claimed_hash.unwrap_or(&body_hash).to_owned()];
    if auth.presigned_expires.is_some() && claimed_hash.is_none() {
        candidates.push(UNSIGNED_PAYLOAD.to_owned());
    }
    // A signed body hash that is not the body's hash means a tampered body.
    if let Some(claimed) = claimed_hash {
        if claimed != UNSIGNED_PAYLOAD && !claimed.starts_with("STREAMING-") && claimed != body_hash
        {
            return Err(AuthError::SignatureMismatch);
        }
    }
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

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// AWS's documented example (IAM ListUsers, "Create a signed AWS API request").
    #[test]
    fn aws_documented_example() {
        let key = signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let h = headers(&[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
            ("x-amz-date", "20150830T123600Z"),
        ]);
        let request = HttpRequestParts {
            method: "GET",
            raw_path: "/",
            raw_query: "Action=ListUsers&Version=2010-05-08",
            headers: &h,
            body: b"",
        };
        let auth = SigV4Auth {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into(),
            amz_date: "20150830T123600Z".into(),
            request_time: parse_amz_date("20150830T123600Z").expect("date"),
            security_token: None,
            presigned_expires: None,
        };
        let canonical = canonical_request(&request, &auth, &hex::encode(Sha256::digest(b"")))
            .expect("canonical");
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let at = auth.request_time;
        assert_eq!(
            verify_sigv4(
                &request,
                &auth,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                at
            ),
            Ok(())
        );
        let mut wrong = auth.clone();
        wrong.signature.replace_range(0..1, "6");
        assert_eq!(
            verify_sigv4(
                &request,
                &wrong,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                at
            ),
            Err(AuthError::SignatureMismatch)
        );
        let late = at + time::Duration::minutes(16);
        assert!(matches!(
            verify_sigv4(
                &request,
                &auth,
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                late
            ),
            Err(AuthError::Expired(_))
        ));
    }

    #[test]
    fn parses_header_form_and_rejects_garbage() {
        let h = headers(&[
            ("authorization", "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
            ("x-amz-date", "20261123T010203Z"),
            ("host", "localhost"),
        ]);
        let request = HttpRequestParts {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &h,
            body: b"",
        };
        let auth = parse_sigv4(&request).expect("parse");
        assert_eq!(
            (auth.access_key_id.as_str(), auth.service.as_str()),
            ("test", "ec2")
        );
        for bad in [
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 Credential=",
            "Basic dGVzdDp0ZXN0",
            "AWS4-HMAC-SHA256 Credential=test/2/3/4/5/6, SignedHeaders=, Signature=zz",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request, SignedHeaders=x-amz-date, Signature=1",
            "AWS4-HMAC-SHA256 Credential=a/20261123/r/s/aws4_request,,, Signature",
        ] {
            let h = headers(&[("authorization", bad), ("x-amz-date", "20261123T010203Z"), ("host", "h")]);
            let request = HttpRequestParts { method: "POST", raw_path: "/", raw_query: "", headers: &h, body: b"" };
            assert!(parse_sigv4(&request).is_err(), "{bad}");
        }
        let none = HttpRequestParts {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &[],
            body: b"",
        };
        assert_eq!(parse_sigv4(&none), Err(AuthError::Missing));
    }

    #[test]
    fn canonical_uri_normalizes_and_encodes() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(canonical_uri("/a%20b"), "/a%2520b");
    }
}
