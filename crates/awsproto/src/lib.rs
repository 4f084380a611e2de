//! AWS wire-protocol pieces that know nothing of nimbus: form decoding, SigV4 verification,
//! the XML writer and the EC2 error envelope.

mod form;
mod sigv4;
mod xml;

pub use form::{parse_form, ProtoError};
pub use sigv4::{parse_sigv4, verify_sigv4, AuthDialect, AuthError, HttpRequestParts, SigV4Auth};
pub use xml::{ec2_error, ec2_response, XmlWriter, EC2_XMLNS};
