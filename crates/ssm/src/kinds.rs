//! The kind Parameter Store stores, registered in its own engine registry.

use crate::parameters::Parameter;

engine::kinds! {
    pub trait Tables; pub fn registry;
    Parameter, table parameters, id name, tags untagged {
        name: "ssm-parameter",
        prefix: None,
        not_found: "ParameterNotFound",
        missing: "Parameter {id} not found.",
        malformed: "ValidationException",
        migrations: &[],
    }
}

impl engine::filter::Filterable for Parameter {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}
