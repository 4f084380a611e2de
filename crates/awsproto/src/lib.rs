//! AWS wire-protocol pieces that know nothing of nimbus: form decoding, SigV4 verification,
//! the XML writer, the EC2 error envelope, and the model-driven codecs of AWS Query, AWS JSON
//! 1.0/1.1 and Smithy RPC v2 CBOR (see `docs/protocols.md`).

mod cbor;
mod form;
mod input;
mod json;
mod model;
mod output;
mod protocol;
mod query;
mod sigv4;
mod timestamp;
mod xml;
mod xml_answer;

pub use form::{parse_form, ProtoError};
pub use input::InputError;
pub use model::{
    Kind, Limits, Lookup, Member, Metadata, ModelError, Operation, ServiceModel, ShapeId,
    ShapeIndex,
};
pub use protocol::{
    decode, detect, encode_error, encode_output, Answer, Decoded, ErrorStyle, JsonVersion,
    Protocol, RequestError, WireError,
};
pub use query::encode_ec2_output;
pub use sigv4::{parse_sigv4, verify_sigv4, AuthDialect, AuthError, HttpRequestParts, SigV4Auth};
pub use timestamp::iso8601;
pub use xml::{ec2_error, XmlWriter, EC2_XMLNS};
pub use xml_answer::EncodeError;
