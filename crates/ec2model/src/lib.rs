//! botocore's EC2 model (a committed subset, `model/ec2.json`, made by
//! `scripts/gen-ec2model.py`) and what it drives: a decoder that turns EC2 Query forms into
//! JSON keyed by the model's member names, checked for unknown keys, missing members and
//! malformed values; the encoder of answers from the output shapes; and a checker of response
//! bodies for tests.

mod answer;
mod check;
mod decode;
mod model;

pub use answer::{encode_output, modeled_actions};
pub use check::check_output_xml;
pub use decode::decode;
pub use model::{is_modeled, operation_exists};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("The parameter {0} is not recognized")]
    UnknownParameter(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("The action {0} is not modeled by nimbus")]
    UnknownAction(String),
}

impl DecodeError {
    /// The EC2 error code a client should see.
    pub fn aws_code(&self) -> &'static str {
        match self {
            DecodeError::UnknownParameter(_) => "UnknownParameter",
            DecodeError::MissingParameter(_) => "MissingParameter",
            DecodeError::InvalidParameterValue(_) => "InvalidParameterValue",
            DecodeError::UnknownAction(_) => "InvalidAction",
        }
    }
}
