//! SSM Parameter Store: the account's own parameters (`String` and `StringList`, versions,
//! labels, tags, allowed patterns, the `aws:ec2:image` data type) and the public parameters
//! under `/aws/service/` that name nimbus's own images, as tools look AMIs up.
//!
//! Parameters are records of their own kind in their own engine working set over the same
//! store as EC2's, one record per parameter holding its versions, so a PutParameter is one
//! record write. Public parameters are not stored: they are read from the images EC2 has at
//! the moment of the call, through [`Images`], so this crate never reads EC2's tables.
//!
//! Operations take botocore's input shapes (read with serde) and answer JSON keyed by the
//! output shape's member names, which the api crate encodes in AWS JSON 1.1.

mod kinds;
mod listing;
mod names;
mod parameters;
mod public;
mod tagging;

use std::sync::Arc;

use store::Store;

pub use listing::{DescribeParametersInput, GetParametersByPathInput};
pub use parameters::{
    DeleteParameterInput, GetParameterHistoryInput, GetParameterInput, ImageAlias,
    LabelParameterVersionInput, NamesInput, PutParameterInput, UnlabelParameterVersionInput,
};
pub use public::PUBLIC_ALIASES;
pub use tagging::{AddTagsInput, ListTagsInput, RemoveTagsInput};

/// EC2's images as Parameter Store needs them: implemented by the api crate over EC2.
pub trait Images: Send + Sync {
    /// The ID and creation time (Unix milliseconds) of the available image named `name`.
    fn by_name(&self, name: &str) -> Option<(String, i64)>;
    /// Whether `image_id` names an image of the account.
    fn exists(&self, image_id: &str) -> bool;
}

/// Why a Parameter Store call failed; the api crate names the AWS code of each in one place.
#[derive(Debug, thiserror::Error)]
pub enum SsmError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("Parameter {0} not found.")]
    ParameterNotFound(String),
    #[error("The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")]
    ParameterAlreadyExists,
    #[error("{0}")]
    ParameterVersionNotFound(String),
    #[error("{0}")]
    ParameterVersionLabelLimitExceeded(String),
    #[error("{0}")]
    ParameterMaxVersionLimitExceeded(String),
    #[error("{0}")]
    ParameterLimitExceeded(String),
    #[error("Parameter value, cannot be validated against allowedPattern: {0}")]
    ParameterPatternMismatch(String),
    #[error("{0}")]
    InvalidAllowedPattern(String),
    #[error("{0}")]
    HierarchyLevelLimitExceeded(String),
    #[error("{0}")]
    InvalidFilterKey(String),
    #[error("{0}")]
    InvalidFilterOption(String),
    #[error("{0}")]
    InvalidFilterValue(String),
    #[error("The NextToken value is invalid: {0}")]
    InvalidNextToken(String),
    #[error("{0}")]
    InvalidResourceId(String),
    #[error("{0}")]
    InvalidResourceType(String),
    #[error("{0}")]
    TooManyTags(String),
    /// A parameter value nimbus does not honour, named (`SecureString`, `Tier=Advanced`…).
    #[error("{0}")]
    Unsupported(String),
    #[error("Parameter Store's store failed: {0}")]
    Storage(String),
}

impl From<engine::Error> for SsmError {
    fn from(error: engine::Error) -> SsmError {
        match error {
            engine::Error::InvalidPaginationToken(token) => SsmError::InvalidNextToken(token),
            engine::Error::MaxResultsOutOfRange { value, min, max } => SsmError::Validation(
                format!("MaxResults {value} is out of range: it must be between {min} and {max}."),
            ),
            other => SsmError::Storage(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, SsmError>;

/// The Parameter Store service: its working set and the images public parameters name.
pub struct Ssm {
    engine: engine::Engine,
    region: String,
    account_id: String,
    images: Arc<dyn Images>,
}

impl Ssm {
    /// Opens the service over `store`.
    pub fn open(
        store: Arc<dyn Store>,
        region: &str,
        account_id: &str,
        images: Arc<dyn Images>,
    ) -> Result<Ssm> {
        Ok(Ssm {
            engine: engine::Engine::open(store, kinds::registry())?,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            images,
        })
    }

    /// The ARN of the parameter `name`; public parameters belong to no account.
    fn arn(&self, name: &str) -> String {
        let account = if public::is_public(name) {
            ""
        } else {
            &self.account_id
        };
        let slash = if name.starts_with('/') { "" } else { "/" };
        format!(
            "arn:aws:ssm:{}:{account}:parameter{slash}{name}",
            self.region
        )
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Images by name, as a test sets them.
    #[derive(Default)]
    pub struct FakeImages(pub Mutex<BTreeMap<String, String>>);

    impl Images for FakeImages {
        fn by_name(&self, name: &str) -> Option<(String, i64)> {
            let images = self.0.lock().unwrap_or_else(|e| e.into_inner());
            images.get(name).map(|id| (id.clone(), 1_700_000_000_000))
        }

        fn exists(&self, image_id: &str) -> bool {
            let images = self.0.lock().unwrap_or_else(|e| e.into_inner());
            images.values().any(|id| id == image_id)
        }
    }

    /// A Parameter Store on a fresh store whose EC2 has `nimbus-minimal` as `ami-…1`.
    pub fn service(dir: &std::path::Path) -> Ssm {
        let store = store::SqliteStore::open(&dir.join("state.db")).expect("store");
        let images = FakeImages::default();
        images
            .0
            .lock()
            .expect("images")
            .insert("nimbus-minimal".into(), "ami-00000000000000001".into());
        Ssm::open(
            Arc::new(store),
            "us-east-1",
            "000000000000",
            Arc::new(images),
        )
        .expect("open")
    }
}
