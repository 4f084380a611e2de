//! What the engine can fail at. Variants say what went wrong, in the words AWS uses; each
//! service chooses the AWS code (a kind's NotFound/Malformed codes are in its [`KindSpec`]).
//!
//! [`KindSpec`]: crate::KindSpec

use store::StoreError;

use crate::Kind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", kind.spec().not_found_message.replace("{id}", id))]
    NotFound { kind: Kind, id: String },
    /// An ID that cannot name a resource of `kind` (or of any kind, when `None`).
    #[error("{}", malformed_id_message(*kind, id))]
    MalformedId { kind: Option<Kind>, id: String },
    /// A filter name the described type does not answer.
    #[error("The filter '{0}' is invalid")]
    UnknownFilter(String),
    #[error("Value ( {value} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}.")]
    MaxResultsOutOfRange { value: i64, min: i64, max: i64 },
    /// An ID list (named by its wire name) the action refuses together with `MaxResults`.
    #[error("The parameter {0} cannot be used with the parameter maxResults")]
    IdsWithMaxResults(&'static str),
    #[error("The pagination token '{0}' is invalid.")]
    InvalidPaginationToken(String),
    /// A tag, or a tag specification, the rules of tags refuse.
    #[error("{0}")]
    InvalidTag(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(&'static str),
    #[error(
        "The maximum number of tags per resource is {}.",
        crate::tags::MAX_TAGS_PER_RESOURCE
    )]
    TooManyTags,
    #[error("The client token must be {0}.")]
    InvalidClientToken(&'static str),
    #[error("Client token '{0}' was used with different parameters.")]
    ClientTokenReused(String),
    /// A stored document this nimbus cannot read (a newer format, or one its type refuses).
    #[error("internal error: stored {kind} {id} is unreadable: {reason}")]
    Unreadable {
        kind: Kind,
        id: String,
        reason: String,
    },
    #[error("storage failure: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

fn malformed_id_message(kind: Option<Kind>, id: &str) -> String {
    match kind.and_then(|kind| kind.spec().id_prefix) {
        Some(prefix) => format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"),
        None => format!("Invalid id: \"{id}\""),
    }
}

impl Error {
    /// A well-formed ID that names no resource of `kind`.
    pub fn not_found(kind: Kind, id: &str) -> Error {
        Error::NotFound {
            kind,
            id: id.to_owned(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
