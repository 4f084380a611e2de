//! AWS's public parameters that name AMIs, answered with nimbus's own images: the names tools
//! and documentation use to find "the latest Amazon Linux" or "Debian 12", pointing at the
//! image of nimbus that stands for it. Read-only, owned by no account, and present only while
//! their image is registered (`nimbus image build`).

use crate::parameters::{DataType, Parameter, ParameterKind, ParameterVersion};
use crate::Images;

/// Every public parameter nimbus answers, and the name of the nimbus image it points at
/// (`docs/ssm.md` says why each maps where it does).
pub const PUBLIC_ALIASES: &[(&str, &str)] = &[
    (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        "nimbus-minimal",
    ),
    (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64",
        "nimbus-minimal",
    ),
    (
        "/aws/service/ami-amazon-linux-latest/al2023-ami-minimal-kernel-default-x86_64",
        "nimbus-minimal",
    ),
    (
        "/aws/service/ami-amazon-linux-latest/amzn2-ami-hvm-x86_64-gp2",
        "nimbus-minimal",
    ),
    (
        "/aws/service/ami-amazon-linux-latest/amzn2-ami-kernel-5.10-hvm-x86_64-gp2",
        "nimbus-minimal",
    ),
    ("/aws/service/debian/release/12/latest/amd64", "debian-12"),
    (
        "/aws/service/debian/release/bookworm/latest/amd64",
        "debian-12",
    ),
];

/// Whether `name` is AWS's (under `/aws/`), so owned by no account.
pub fn is_public(name: &str) -> bool {
    name.starts_with("/aws/")
}

/// The public parameter `name`, if it names an image this nimbus has.
pub fn lookup(images: &dyn Images, name: &str) -> Option<Parameter> {
    let (_, image) = PUBLIC_ALIASES.iter().find(|(alias, _)| *alias == name)?;
    of_image(images, name, image)
}

/// Every public parameter whose image this nimbus has.
pub fn all(images: &dyn Images) -> Vec<Parameter> {
    PUBLIC_ALIASES
        .iter()
        .filter_map(|(name, image)| of_image(images, name, image))
        .collect()
}

fn of_image(images: &dyn Images, name: &str, image: &str) -> Option<Parameter> {
    let (image_id, created) = images.by_name(image)?;
    Some(Parameter {
        name: name.to_owned(),
        versions: vec![ParameterVersion {
            version: 1,
            kind: ParameterKind::String,
            value: image_id,
            description: None,
            allowed_pattern: None,
            data_type: DataType::Text,
            last_modified: created,
            last_modified_user: "nimbus".to_owned(),
            labels: Vec::new(),
        }],
        tags: Default::default(),
    })
}
