//! What a kind of resource is: its [`KindSpec`], declared once by the service that owns it, and
//! the [`Resource`] trait its type implements.

use std::fmt;

use serde::{de::DeserializeOwned, Serialize};

use crate::filter::Filterable;
use crate::{Error, Result, Tags};

/// Upgrades a stored document by one format version.
pub type Migration = fn(&mut serde_json::Value) -> std::result::Result<(), String>;

/// What the engine knows about one kind of resource.
#[derive(Debug)]
pub struct KindSpec {
    /// The EC2 `resource-type`, and the store's kind column.
    pub name: &'static str,
    /// The prefix of the kind's AWS IDs (`vol` in `vol-0123…`); `None` for internal records.
    pub id_prefix: Option<&'static str>,
    pub taggable: bool,
    /// The AWS code for a well-formed ID that names nothing.
    pub not_found_code: &'static str,
    /// AWS's words for it, `{id}` standing for the ID: tools and users read them.
    pub not_found_message: &'static str,
    /// The AWS code for an ID that cannot be one of this kind.
    pub malformed_code: &'static str,
    /// `migrations[n]` turns a stored document of format `n + 1` into format `n + 2`.
    pub migrations: &'static [Migration],
}

impl KindSpec {
    /// The format version documents of this kind are written in.
    pub fn format(&self) -> u32 {
        self.migrations.len() as u32 + 1
    }
}

/// A kind of resource, as errors and tag rows name it. Two kinds are the same when their names
/// are (a registry refuses two kinds of one name).
#[derive(Clone, Copy)]
pub struct Kind(&'static KindSpec);

impl Kind {
    pub const fn new(spec: &'static KindSpec) -> Kind {
        Kind(spec)
    }

    pub fn spec(self) -> &'static KindSpec {
        self.0
    }

    /// The EC2 `resource-type` (and the store's kind column).
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// Refuses an ID that cannot be one of this kind: AWS IDs are the prefix, a dash and 8 or
    /// 17 lowercase hex digits.
    pub fn check_id(self, id: &str) -> Result<()> {
        let Some(prefix) = self.0.id_prefix else {
            return Ok(());
        };
        if nimbus_core::is_valid_id(id, prefix) {
            Ok(())
        } else {
            Err(Error::MalformedId {
                kind: Some(self),
                id: id.to_owned(),
            })
        }
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Kind) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for Kind {}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kind({})", self.0.name)
    }
}

/// A stored resource: serializable, addressable by ID, kept in one table of the
/// [`State`](crate::State). Services implement it through [`kinds!`](crate::kinds).
pub trait Resource:
    Serialize + DeserializeOwned + Clone + Filterable + Send + Sync + 'static
{
    const KIND: Kind;
    fn id(&self) -> &str;
    /// The tags of a taggable resource; `None` for internal records.
    fn tags(&self) -> Option<&Tags>;
    fn tags_mut(&mut self) -> Option<&mut Tags>;
}
