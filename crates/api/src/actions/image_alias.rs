//! `ImageId=resolve:ssm:<parameter>[:<version or label>]`: an AMI named by an SSM parameter.
//! RunInstances resolves it when it launches; a launch template keeps the alias as written
//! and resolves it at each launch (or when `ResolveAlias` asks to see the AMI).

use crate::ApiContext;
use crate::ApiError;

const PREFIX: &str = "resolve:ssm:";

fn invalid(image_id: &str, error: ssm::SsmError) -> ApiError {
    ApiError::from(control::Error::InvalidParameterValue(format!(
        "The image ID {image_id} cannot be resolved: {error}"
    )))
}

/// The AMI ID `image_id` stands for: itself, or the value of the parameter its alias names.
pub(super) fn resolve(context: &ApiContext, image_id: &str) -> Result<String, ApiError> {
    match image_id.strip_prefix(PREFIX) {
        None => Ok(image_id.to_owned()),
        Some(parameter) => (context.ssm.image_alias(parameter))
            .map(|alias| alias.image_id)
            .map_err(|error| invalid(image_id, error)),
    }
}

/// A launch template's alias must name a parameter that exists and holds an image (data type
/// `aws:ec2:image`, or a public image parameter), as EC2 checks when the version is made.
pub(super) fn check_for_template(context: &ApiContext, image_id: &str) -> Result<(), ApiError> {
    let Some(parameter) = image_id.strip_prefix(PREFIX) else {
        return Ok(());
    };
    let alias = (context.ssm.image_alias(parameter)).map_err(|error| invalid(image_id, error))?;
    if alias.holds_image {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "SsmInvalidParameter",
            "Unsupported data type. The following parameter data types are supported: aws:ec2:image",
        ))
    }
}
