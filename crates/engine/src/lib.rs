//! The resource engine every service builds on. It names no service: services declare their
//! kinds (types implementing [`Resource`], usually through [`kinds!`]) and register them in a
//! [`Registry`]; the engine dispatches on that registry at run time.
//!
//! It holds the working set ([`State`], one table per kind), written through to the
//! [`store::Store`] one transaction per call ([`Engine::mutate`]), the generic Describe
//! ([`describe`]: IDs, filters, pages), tags, ClientToken idempotency, the migrations of stored
//! formats, and commit notifications ([`Subscription`]).
//!
//! Invariants:
//! - reads take a shared lock on the working set and never touch the store;
//! - a mutation runs under the exclusive lock and commits everything it changed in one
//!   [`store::Store::commit`] before the lock is released; a failed commit reloads the working
//!   set from the store, so memory never runs ahead of what is durable;
//! - every subscription whose kinds a commit changed is told so before the lock is released.

pub mod describe;
mod error;
pub mod filter;
pub mod idempotency;
mod kind;
mod notify;
pub mod pagination;
pub mod reconciler;
mod registry;
mod state;
pub mod tags;
#[cfg(test)]
mod toy;
mod working_set;

pub use error::{Error, Result};
pub use kind::{Kind, KindSpec, Migration, Resource};
pub use notify::Subscription;
pub use reconciler::{PassFigures, Passes, Reconciler};
pub use registry::Registry;
pub use state::{State, Table, Txn};
pub use working_set::Engine;

/// Tags of one resource, ordered by key.
pub type Tags = std::collections::BTreeMap<String, String>;

/// Declares a service's resource kinds, one entry per kind: its type, its table accessor, its
/// ID field, its tags field (or `untagged`), and its [`KindSpec`]. It implements [`Resource`]
/// for each type, and generates `$tables`, a trait giving [`State`] one accessor per table,
/// and `$registry()`, the service's [`Registry`] of these kinds.
///
/// ```ignore
/// engine::kinds! {
///     pub trait Tables; pub fn registry;
///     Volume, table volumes, id volume_id, tags tags {
///         name: "volume", prefix: Some("vol"), not_found: "InvalidVolume.NotFound",
///         missing: "The volume '{id}' does not exist.",
///         malformed: "InvalidVolumeID.Malformed", migrations: &[],
///     }
/// }
/// ```
#[macro_export]
macro_rules! kinds {
    (
        $vis:vis trait $tables:ident; $rvis:vis fn $registry:ident;
        $(
            $(#[$doc:meta])*
            $type:ty, table $table:ident, id $($id:ident).+, tags $tags:ident {
                name: $name:literal,
                prefix: $prefix:expr,
                not_found: $not_found:literal,
                missing: $missing:literal,
                malformed: $malformed:literal,
                migrations: $migrations:expr $(,)?
            }
        )*
    ) => {
        $(
            $(#[$doc])*
            impl $crate::Resource for $type {
                const KIND: $crate::Kind = $crate::Kind::new(&$crate::KindSpec {
                    name: $name,
                    id_prefix: $prefix,
                    taggable: $crate::kinds!(@taggable $tags),
                    not_found_code: $not_found,
                    not_found_message: $missing,
                    malformed_code: $malformed,
                    migrations: $migrations,
                });
                fn id(&self) -> &str {
                    &self.$($id).+
                }
                $crate::kinds!(@tags $tags);
            }
        )*

        /// One accessor per table of the working set.
        $vis trait $tables {
            $(fn $table(&self) -> &$crate::Table<$type>;)*
        }

        impl $tables for $crate::State {
            $(fn $table(&self) -> &$crate::Table<$type> {
                self.table::<$type>()
            })*
        }

        /// The registry of these kinds, built once.
        $rvis fn $registry() -> &'static $crate::Registry {
            static REGISTRY: std::sync::LazyLock<$crate::Registry> =
                std::sync::LazyLock::new(|| $crate::Registry::new()$(.with::<$type>())*);
            &REGISTRY
        }
    };
    (@taggable untagged) => { false };
    (@taggable $field:ident) => { true };
    (@tags untagged) => {
        fn tags(&self) -> Option<&$crate::Tags> {
            None
        }
        fn tags_mut(&mut self) -> Option<&mut $crate::Tags> {
            None
        }
    };
    (@tags $field:ident) => {
        fn tags(&self) -> Option<&$crate::Tags> {
            Some(&self.$field)
        }
        fn tags_mut(&mut self) -> Option<&mut $crate::Tags> {
            Some(&mut self.$field)
        }
    };
}
