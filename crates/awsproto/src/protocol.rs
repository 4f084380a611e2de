//! Which protocol a request speaks, and the one entry point per direction: decode a request
//! by a service model, encode an output or an error the way the client spoke.
//!
//! The protocol is read from the request itself (a JSON `X-Amz-Target`, a `smithy-protocol`
//! header, a form body), not only from the model: CloudWatch's model lists CBOR, JSON and
//! Query, and each client picks one. The answer goes back in the protocol the client sent.

use serde_json::Value;

use crate::form::parse_form;
use crate::input::InputError;
use crate::model::{Lookup, Operation, ServiceModel};
use crate::query::Params;
use crate::xml_answer::EncodeError;
use crate::{cbor, json, query, HttpRequestParts};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Query,
    /// AWS JSON; the version is `"1.0"` or `"1.1"`, as in the content type.
    Json(JsonVersion),
    RpcV2Cbor,
    RestJson,
    RestXml,
    Ec2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonVersion {
    V1_0,
    V1_1,
}

impl JsonVersion {
    fn content_type(self) -> &'static str {
        match self {
            JsonVersion::V1_0 => "application/x-amz-json-1.0",
            JsonVersion::V1_1 => "application/x-amz-json-1.1",
        }
    }
}

impl Protocol {
    /// botocore's name for a protocol (`query`, `json`, `smithy-rpc-v2-cbor`, …).
    pub fn from_model(name: &str, json_version: Option<&str>) -> Option<Protocol> {
        Some(match name {
            "query" => Protocol::Query,
            "json" if json_version == Some("1.0") => Protocol::Json(JsonVersion::V1_0),
            "json" => Protocol::Json(JsonVersion::V1_1),
            "smithy-rpc-v2-cbor" => Protocol::RpcV2Cbor,
            "rest-json" => Protocol::RestJson,
            "rest-xml" => Protocol::RestXml,
            "ec2" => Protocol::Ec2,
            _ => return None,
        })
    }
}

impl HttpRequestParts<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or_default()
    }
}

/// The protocol a request speaks, when its headers or body say so.
pub fn detect(request: &HttpRequestParts) -> Option<Protocol> {
    if request
        .header("smithy-protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("rpc-v2-cbor"))
    {
        return Some(Protocol::RpcV2Cbor);
    }
    let content_type = request.content_type();
    if request.header("x-amz-target").is_some() || content_type.contains("x-amz-json") {
        let version = if content_type.contains("1.0") {
            JsonVersion::V1_0
        } else {
            JsonVersion::V1_1
        };
        return Some(Protocol::Json(version));
    }
    let form = content_type.starts_with("application/x-www-form-urlencoded");
    let has_action =
        |bytes: &[u8]| bytes.starts_with(b"Action=") || bytes.windows(8).any(|w| w == b"&Action=");
    (form || has_action(request.raw_query.as_bytes()) || has_action(request.body))
        .then_some(Protocol::Query)
}

/// Why a request cannot be decoded. Each protocol names these with its own AWS codes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("The request does not name an operation.")]
    MissingOperation,
    #[error("The operation {0} is not valid for this service.")]
    UnknownOperation(String),
    #[error("Could not find operation {operation} for version {version}.")]
    WrongVersion { operation: String, version: String },
    #[error("The operation {0} is not supported by nimbus.")]
    NotSupported(String),
    #[error("The request is not in a protocol this service speaks.")]
    WrongProtocol,
    #[error(transparent)]
    Input(#[from] InputError),
}

impl RequestError {
    /// The code `protocol`'s clients expect (AWS's common Query errors, Smithy's JSON and
    /// CBOR framework errors).
    pub fn aws_code(&self, protocol: Protocol) -> &'static str {
        let query = matches!(protocol, Protocol::Query | Protocol::Ec2);
        match (self, query) {
            (RequestError::MissingOperation, true) => "MissingAction",
            (RequestError::UnknownOperation(_) | RequestError::WrongVersion { .. }, true) => {
                "InvalidAction"
            }
            (RequestError::MissingOperation | RequestError::UnknownOperation(_), false) => {
                "UnknownOperationException"
            }
            (RequestError::WrongVersion { .. }, false) => "UnknownOperationException",
            (RequestError::NotSupported(_), _) => "UnsupportedOperation",
            (RequestError::WrongProtocol, true) => "InvalidAction",
            (RequestError::WrongProtocol, false) => "SerializationException",
            (RequestError::Input(InputError::MissingMember(_)), true) => "MissingParameter",
            (RequestError::Input(_), true) => "ValidationError",
            (RequestError::Input(InputError::InvalidValue(_)), false) => "SerializationException",
            (RequestError::Input(_), false) => "ValidationException",
        }
    }
}

/// A decoded request: the operation (with its shapes) and its input, keyed by member names.
pub struct Decoded<'m> {
    pub operation: Operation<'m>,
    pub input: Value,
}

/// Decodes `request`, spoken in `protocol`, by `model`. An operation of the service that
/// nimbus does not carry answers [`RequestError::NotSupported`].
pub fn decode<'m>(
    model: &'m ServiceModel,
    protocol: Protocol,
    request: &HttpRequestParts,
) -> Result<Decoded<'m>, RequestError> {
    match protocol {
        Protocol::Query => {
            let mut params = query_params(request)?;
            let name = params
                .remove("Action")
                .ok_or(RequestError::MissingOperation)?;
            let version = params.remove("Version");
            let operation = modeled(model, &name)?;
            if let Some(version) = version.filter(|v| *v != model.metadata.api_version) {
                return Err(RequestError::WrongVersion {
                    operation: name,
                    version,
                });
            }
            let input = query::decode_input(model, operation.input, params)?;
            Ok(Decoded { operation, input })
        }
        Protocol::Json(_) => {
            let target = request
                .header("x-amz-target")
                .ok_or(RequestError::MissingOperation)?;
            let name = match (target.split_once('.'), &model.metadata.target_prefix) {
                (Some((prefix, name)), Some(expected)) if prefix == expected => name,
                _ => return Err(RequestError::UnknownOperation(target.to_owned())),
            };
            let operation = modeled(model, name)?;
            let input = json::decode_input(model, operation.input, request.body)?;
            Ok(Decoded { operation, input })
        }
        Protocol::RpcV2Cbor => {
            let name = request
                .raw_path
                .rsplit_once("/operation/")
                .map(|(_, name)| name)
                .ok_or(RequestError::MissingOperation)?;
            let operation = modeled(model, name)?;
            let input = cbor::decode_input(model, operation.input, request.body)?;
            Ok(Decoded { operation, input })
        }
        Protocol::RestJson | Protocol::RestXml | Protocol::Ec2 => Err(RequestError::WrongProtocol),
    }
}

fn modeled<'m>(model: &'m ServiceModel, name: &str) -> Result<Operation<'m>, RequestError> {
    match model.lookup(name) {
        Lookup::Modeled(operation) => Ok(operation),
        Lookup::NotModeled => Err(RequestError::NotSupported(name.to_owned())),
        Lookup::Unknown => Err(RequestError::UnknownOperation(name.to_owned())),
    }
}

/// The form of a Query request: the query string and the body together, each key once.
fn query_params(request: &HttpRequestParts) -> Result<Params, RequestError> {
    let bad = |e: crate::ProtoError| RequestError::Input(InputError::InvalidValue(e.to_string()));
    let mut pairs = parse_form(request.raw_query.as_bytes()).map_err(bad)?;
    pairs.extend(parse_form(request.body).map_err(bad)?);
    let mut params = Params::new();
    for (key, value) in pairs {
        // Presigned-URL keys belong to SigV4, which has checked them.
        if key.starts_with("X-Amz-") {
            continue;
        }
        if params.insert(key.clone(), value).is_some() {
            return Err(RequestError::Input(InputError::InvalidValue(format!(
                "The parameter {key} is given more than once."
            ))));
        }
    }
    Ok(params)
}

/// An HTTP answer, ready for any server.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

fn cbor_headers() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/cbor".to_owned()),
        ("smithy-protocol", "rpc-v2-cbor".to_owned()),
    ]
}

/// A successful answer to `operation`, in `protocol`.
pub fn encode_output(
    model: &ServiceModel,
    protocol: Protocol,
    operation: &Operation,
    output: &Value,
    request_id: &str,
) -> Answer {
    let (headers, body) = match protocol {
        Protocol::Json(version) => (
            vec![("content-type", version.content_type().to_owned())],
            json::encode_output(model, operation.output, output),
        ),
        Protocol::RpcV2Cbor => (
            cbor_headers(),
            cbor::encode_output(model, operation.output, output),
        ),
        _ => match query::encode_output(model, operation, output, request_id) {
            Ok(xml) => (
                vec![("content-type", "text/xml".to_owned())],
                xml.into_bytes(),
            ),
            Err(failure) => return unencodable(model, protocol, &failure, request_id),
        },
    };
    let mut headers = headers;
    headers.push(("x-amzn-requestid", request_id.to_owned()));
    Answer {
        status: 200,
        headers,
        body,
    }
}

/// The answer to an output that could not be encoded: a fault of the service, not the caller.
fn unencodable(
    model: &ServiceModel,
    protocol: Protocol,
    failure: &EncodeError,
    request_id: &str,
) -> Answer {
    let style = ErrorStyle {
        xml_namespace: model.metadata.xml_namespace.as_deref(),
        query_compatible: false,
    };
    let error = WireError {
        status: 500,
        code: "InternalFailure",
        message: &failure.to_string(),
    };
    encode_error(protocol, style, &error, request_id)
}

/// An error as a service names it.
pub struct WireError<'a> {
    pub status: u16,
    pub code: &'a str,
    pub message: &'a str,
}

/// What the error envelope needs to know of the service.
#[derive(Clone, Copy, Default)]
pub struct ErrorStyle<'a> {
    /// The Query and REST-XML envelopes' namespace.
    pub xml_namespace: Option<&'a str>,
    /// JSON and CBOR errors also carry `x-amzn-query-error: Code;Sender|Receiver`.
    pub query_compatible: bool,
}

/// An error answer in `protocol`.
pub fn encode_error(
    protocol: Protocol,
    style: ErrorStyle,
    error: &WireError,
    request_id: &str,
) -> Answer {
    let sender_fault = error.status < 500;
    let mut headers = vec![("x-amzn-requestid", request_id.to_owned())];
    let body = match protocol {
        Protocol::Query => {
            headers.push(("content-type", "text/xml".to_owned()));
            query::encode_error(
                style.xml_namespace,
                error.code,
                error.message,
                sender_fault,
                request_id,
            )
            .into_bytes()
        }
        Protocol::Ec2 => {
            headers.push(("content-type", "text/xml".to_owned()));
            crate::ec2_error(error.code, error.message, request_id).into_bytes()
        }
        Protocol::RestXml => {
            headers.push(("content-type", "application/xml".to_owned()));
            rest_xml_error(error, request_id).into_bytes()
        }
        Protocol::Json(_) | Protocol::RestJson | Protocol::RpcV2Cbor => {
            headers.push(("x-amzn-errortype", error.code.to_owned()));
            if style.query_compatible {
                let fault = if sender_fault { "Sender" } else { "Receiver" };
                headers.push(("x-amzn-query-error", format!("{};{fault}", error.code)));
            }
            match protocol {
                Protocol::RpcV2Cbor => {
                    headers.extend(cbor_headers());
                    cbor::encode_error(error.code, error.message)
                }
                Protocol::Json(version) => {
                    headers.push(("content-type", version.content_type().to_owned()));
                    json::encode_error(error.code, error.message)
                }
                _ => {
                    headers.push(("content-type", "application/json".to_owned()));
                    json::encode_error(error.code, error.message)
                }
            }
        }
    };
    Answer {
        status: error.status,
        headers,
        body,
    }
}

/// S3's `<Error><Code/><Message/><RequestId/></Error>`, which botocore reads for every REST-XML
/// service.
fn rest_xml_error(error: &WireError, request_id: &str) -> String {
    let mut xml = crate::XmlWriter::document();
    xml.start("Error");
    xml.leaf("Code", error.code);
    xml.leaf("Message", error.message);
    xml.leaf("RequestId", request_id);
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> HttpRequestParts<'a> {
        HttpRequestParts {
            method: "POST",
            raw_path: "/service/T/operation/Put",
            raw_query: "",
            headers,
            body,
        }
    }

    #[test]
    fn json_and_cbor_requests_decode_and_refuse_with_their_codes() {
        let model = ServiceModel::from_json(crate::query::tests::MODEL).expect("model");
        let json_headers = vec![("X-Amz-Target".to_owned(), "Nope.Put".to_owned())];
        let json = Protocol::Json(JsonVersion::V1_0);
        let refused = decode(&model, json, &request(&json_headers, b"{}")).err();
        assert_eq!(
            refused.map(|e| e.aws_code(json)),
            Some("UnknownOperationException")
        );

        let cbor_headers = vec![("smithy-protocol".to_owned(), "rpc-v2-cbor".to_owned())];
        assert_eq!(
            detect(&request(&cbor_headers, b"")),
            Some(Protocol::RpcV2Cbor)
        );
        let body = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("Name".into()),
                ciborium::Value::Text("n".into()),
            ),
            (
                ciborium::Value::Text("At".into()),
                ciborium::Value::Tag(1, Box::new(ciborium::Value::Float(1_795_953_600.5))),
            ),
        ]);
        let mut bytes = Vec::new();
        ciborium::into_writer(&body, &mut bytes).expect("cbor");
        let decoded =
            decode(&model, Protocol::RpcV2Cbor, &request(&cbor_headers, &bytes)).expect("decodes");
        assert_eq!(decoded.input["At"], "2026-11-29T12:00:00.500Z");
        let missing = decode(
            &model,
            Protocol::RpcV2Cbor,
            &request(&cbor_headers, &[0xa0]),
        )
        .err();
        assert_eq!(
            missing.map(|e| e.aws_code(Protocol::RpcV2Cbor)),
            Some("ValidationException")
        );
    }

    proptest::proptest! {
        /// Whatever the body, every protocol answers (an input or an error), never panics.
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let model = ServiceModel::from_json(crate::query::tests::MODEL).expect("model");
            let json_headers = vec![("X-Amz-Target".to_owned(), "Put".to_owned())];
            for protocol in [Protocol::Query, Protocol::Json(JsonVersion::V1_1), Protocol::RpcV2Cbor] {
                let _ = decode(&model, protocol, &request(&json_headers, &body));
            }
        }
    }
}
