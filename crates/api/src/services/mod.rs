//! Services served from their botocore models through [`crate::service::ModelService`].

pub(crate) mod iam;
pub(crate) mod sts;
