//! The verifier against real signers: the `aws-sigv4` crate (the Rust SDK's signer) and
//! botocore (what boto3 and the aws CLI use). Every signed request must verify, and every
//! tampered copy must fail with `SignatureDoesNotMatch`.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use awsproto::{parse_sigv4, verify_sigv4, AuthError, HttpRequestParts};
use time::OffsetDateTime;

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// A request as the server receives it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn parts(&self) -> HttpRequestParts<'_> {
        HttpRequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    /// Splits an absolute URL, and adds the `host` header an HTTP client would send.
    fn from_url(method: &str, url: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        let uri: http::Uri = url.parse().expect("signer produced a valid URL");
        let mut headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        if !headers.iter().any(|(name, _)| name == "host") {
            let authority = uri.authority().expect("absolute URL").as_str().to_owned();
            headers.push(("host".to_owned(), authority));
        }
        Received {
            method: method.to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            headers,
            body,
        }
    }

    fn verify(&self, secret: &str, now: OffsetDateTime) -> Result<(), AuthError> {
        let parts = self.parts();
        let auth = parse_sigv4(&parts)?;
        verify_sigv4(&parts, &auth, secret, now)
    }
}

#[derive(Clone, Copy, Debug)]
enum Body {
    /// SHA-256 of the body, no `x-amz-content-sha256` header (EC2 clients).
    Hashed,
    /// SHA-256 of the body, also sent as `x-amz-content-sha256`.
    HashedWithHeader,
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
}

struct Case {
    method: &'static str,
    service: &'static str,
    /// Path and query, already percent-encoded as a client sends them.
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
}

const CASES: &[Case] = &[
    Case {
        method: "POST",
        service: "ec2",
        target: "/",
        headers: &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body: b"Action=DescribeRegions&Version=2016-11-15",
    },
    Case {
        method: "GET",
        service: "ec2",
        target: "/?Action=DescribeInstances&Filter.1.Name=tag%3AName&Filter.1.Value.1=caf%C3%A9%20%E2%98%83&Version=2016-11-15",
        headers: &[],
        body: b"",
    },
    Case {
        method: "GET",
        service: "ec2",
        target: "/?b=2&a=2&a=1&flag&empty=&plus=a+b&odd=!*'()&tilde=~-._&eq=%3D%26",
        headers: &[],
        body: b"",
    },
    Case {
        method: "PUT",
        service: "ebs",
        target: "/snapshots/snap-0123456789abcdef0/blocks/7?pageToken=a%2Fb%2Bc",
        headers: &[
            ("x-amz-data-length", "524288"),
            ("x-amz-checksum", "  abc==  "),
            ("x-amz-meta-repeated", "one"),
            ("x-amz-meta-repeated", "two   words   here"),
            ("content-type", "application/octet-stream"),
        ],
        body: &[0, 1, 2, 255, 254, 10, 13, 0],
    },
    Case {
        method: "GET",
        service: "ebs",
        target: "/caf%C3%A9/a%20b/%E2%98%83/~user/x+y/",
        headers: &[("accept", "application/json")],
        body: b"",
    },
    Case {
        method: "DELETE",
        service: "ec2",
        target: "/a/./b/../c//d",
        headers: &[("x-custom", "\"quoted\" value;with=chars")],
        body: b"{\"json\": true}",
    },
];

fn sign_with_aws_sigv4(
    case: &Case,
    body: Body,
    presigned: bool,
    token: Option<&str>,
    at: SystemTime,
) -> Received {
    let identity: Identity =
        Credentials::new(ACCESS_KEY, SECRET, token.map(str::to_owned), None, "oracle").into();
    let mut settings = SigningSettings::default();
    if matches!(body, Body::HashedWithHeader | Body::Unsigned) {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    if presigned {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(3600));
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(case.service)
        .time(at)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let url = format!("http://localhost:4566{}", case.target);
    let signable_body = match body {
        Body::Hashed | Body::HashedWithHeader => SignableBody::Bytes(case.body),
        Body::Unsigned => SignableBody::UnsignedPayload,
    };
    let signable = SignableRequest::new(
        case.method,
        url.as_str(),
        case.headers.iter().copied(),
        signable_body,
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut request = http::Request::builder().method(case.method).uri(&url);
    for (name, value) in case.headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().expect("ASCII header");
            (name.as_str().to_owned(), value.to_owned())
        })
        .collect();
    Received::from_url(
        case.method,
        &request.uri().to_string(),
        headers,
        case.body.to_vec(),
    )
}

/// Copies of `request` that each change one signed thing.
fn tampered(request: &Received, body_is_signed: bool) -> Vec<(&'static str, Received)> {
    let mut copies = Vec::new();
    let mut copy = request.clone();
    copy.method = if request.method == "GET" {
        "POST"
    } else {
        "GET"
    }
    .to_owned();
    copies.push(("method", copy));
    let mut copy = request.clone();
    copy.path.push('x');
    copies.push(("path", copy));
    let mut copy = request.clone();
    copy.query = if copy.query.is_empty() {
        "extra=1".to_owned()
    } else {
        format!("{}&extra=1", copy.query)
    };
    copies.push(("query", copy));
    let mut copy = request.clone();
    for (name, value) in copy.headers.iter_mut() {
        if name == "host" {
            value.push('1');
        }
    }
    copies.push(("host header", copy));
    if body_is_signed {
        let mut copy = request.clone();
        match copy.body.first_mut() {
            Some(byte) => *byte ^= 1,
            None => copy.body.push(b'x'),
        }
        copies.push(("body", copy));
    }
    let mut copy = request.clone();
    let signature_at = |text: &str| text.find("Signature=").map(|at| at + "Signature=".len());
    for (name, value) in copy.headers.iter_mut() {
        if name == "authorization" {
            let at = signature_at(value).expect("signature in header");
            let flipped = if value[at..].starts_with('0') {
                "1"
            } else {
                "0"
            };
            value.replace_range(at..at + 1, flipped);
        }
    }
    if let Some(at) = copy.query.find("X-Amz-Signature=") {
        let at = at + "X-Amz-Signature=".len();
        let flipped = if copy.query[at..].starts_with('0') {
            "1"
        } else {
            "0"
        };
        copy.query.replace_range(at..at + 1, flipped);
    }
    copies.push(("signature", copy));
    copies
}

#[test]
fn verifies_what_aws_sigv4_signs_and_rejects_tampering() {
    let signed_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_395_723);
    let now = OffsetDateTime::from(signed_at) + time::Duration::minutes(1);
    let (mut verified, mut refused) = (0, 0);
    for case in CASES {
        for body in [Body::Hashed, Body::HashedWithHeader, Body::Unsigned] {
            for presigned in [false, true] {
                for token in [
                    None,
                    Some("FwoGZXIvYXdzEJr//////////wEaDH+token/with=odd&chars"),
                ] {
                    let label = format!(
                        "{} {} {body:?} presigned={presigned} token={token:?}",
                        case.method, case.target
                    );
                    let request = sign_with_aws_sigv4(case, body, presigned, token, signed_at);
                    if matches!(body, Body::Unsigned)
                        && !case.body.is_empty()
                        && case.service != "ebs"
                    {
                        // A body outside the signature is refused: it could be swapped.
                        assert!(request.verify(SECRET, now).is_err(), "{label}");
                        refused += 1;
                        continue;
                    }
                    assert_eq!(request.verify(SECRET, now), Ok(()), "{label}: {request:?}");
                    let auth = parse_sigv4(&request.parts()).expect("parse");
                    assert_eq!(auth.access_key_id, ACCESS_KEY);
                    assert_eq!(auth.service, case.service);
                    assert_eq!(auth.security_token.as_deref(), token, "{label}");
                    assert_eq!(auth.presigned_expires, presigned.then_some(3600));
                    assert_eq!(
                        request.verify("wrong secret", now),
                        Err(AuthError::SignatureMismatch),
                        "{label}"
                    );
                    let body_is_signed = !matches!(body, Body::Unsigned);
                    for (what, copy) in tampered(&request, body_is_signed) {
                        let verdict = copy.verify(SECRET, now);
                        if !body_is_signed && matches!(what, "method" | "path") {
                            // No longer PutSnapshotBlock, so its unsigned body is refused first.
                            assert!(verdict.is_err(), "{label}: tampered {what}");
                        } else {
                            assert_eq!(
                                verdict,
                                Err(AuthError::SignatureMismatch),
                                "{label}: tampered {what}"
                            );
                        }
                    }
                    // 20 minutes later: too late for a header signature, fine for a URL
                    // presigned for an hour; two hours later both have expired.
                    let later = request.verify(SECRET, now + time::Duration::minutes(20));
                    assert_eq!(later.is_ok(), presigned, "{label}");
                    let error = request
                        .verify(SECRET, now + time::Duration::hours(2))
                        .expect_err("expired");
                    assert_eq!(error.aws_code(), "RequestExpired");
                    verified += 1;
                }
            }
        }
    }
    assert_eq!(verified + refused, CASES.len() * 12);
    assert!(refused > 0 && verified > refused);
}

#[test]
fn verifies_what_botocore_signs() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sign_with_botocore.py");
    let output = match Command::new("python3")
        .arg(script)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            println!("SKIPPED: python3 is not available ({error})");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains("No module named 'botocore'") {
        println!("SKIPPED: botocore is not installed");
        return;
    }
    assert!(output.status.success(), "botocore signer failed: {stderr}");
    let requests: Vec<serde_json::Value> =
        serde_json::from_slice(&output.stdout).expect("JSON from the botocore signer");
    assert_eq!(requests.len(), 5);
    let now = OffsetDateTime::now_utc();
    let mut tokens = Vec::new();
    for request in &requests {
        let text = |key: &str| request[key].as_str().expect("string field").to_owned();
        let headers = request["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|pair| {
                let field = |i: usize| pair[i].as_str().expect("header text").to_owned();
                (field(0), field(1))
            })
            .collect();
        let body = hex::decode(text("body_hex")).expect("hex body");
        let received = Received::from_url(&text("method"), &text("url"), headers, body);
        assert_eq!(received.verify("test", now), Ok(()), "{received:?}");
        let auth = parse_sigv4(&received.parts()).expect("parse");
        assert_eq!(
            (auth.access_key_id.as_str(), auth.service.as_str()),
            ("test", "ec2")
        );
        tokens.push(auth.security_token);
        assert_eq!(
            received.verify("wrong", now),
            Err(AuthError::SignatureMismatch)
        );
        for (what, copy) in tampered(&received, true) {
            assert_eq!(
                copy.verify("test", now),
                Err(AuthError::SignatureMismatch),
                "tampered {what}: {copy:?}"
            );
        }
    }
    assert_eq!(
        tokens,
        [
            None,
            None,
            None,
            Some("session/token+with=odd&chars".to_owned()),
            None
        ]
    );
}
