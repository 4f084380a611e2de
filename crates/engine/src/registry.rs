//! The kinds a service registered, for what must pick a kind at run time: loading every kind,
//! tagging a resource named only by its ID, listing every tag.

use std::marker::PhantomData;

use store::{Change, Store};

use crate::idempotency::ClientTokenRecord;
use crate::state::{self, State, Txn};
use crate::{Error, Kind, Resource, Result, Tags};

/// The operations the engine runs on a kind chosen at run time; implemented once, generically,
/// for every [`Resource`].
trait KindOps: Send + Sync {
    fn kind(&self) -> Kind;
    fn load(&self, store: &dyn Store, state: &mut State, upgraded: &mut Vec<Change>) -> Result<()>;
    /// Applies `change` to the tags of the resource `id` (which must exist).
    fn update_tags(&self, txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()>;
    /// Calls `each` with every (resource ID, key, value) of the kind.
    fn each_tag(&self, state: &State, each: &mut dyn FnMut(&str, &str, &str));
}

struct Ops<T>(PhantomData<fn() -> T>);

impl<T: Resource> KindOps for Ops<T> {
    fn kind(&self) -> Kind {
        T::KIND
    }

    fn load(&self, store: &dyn Store, state: &mut State, upgraded: &mut Vec<Change>) -> Result<()> {
        state::load_table::<T>(store, state, upgraded)
    }

    fn update_tags(&self, txn: &mut Txn, id: &str, change: &dyn Fn(&mut Tags)) -> Result<()> {
        let mut item = crate::describe::existing::<T>(txn.state(), id)?.clone();
        if let Some(tags) = item.tags_mut() {
            change(tags);
            crate::tags::check_count(tags)?;
        }
        txn.put(item)
    }

    fn each_tag(&self, state: &State, each: &mut dyn FnMut(&str, &str, &str)) {
        for item in state.table::<T>().values() {
            for (key, value) in item.tags().into_iter().flatten() {
                each(item.id(), key, value);
            }
        }
    }
}

/// The kinds of a service, built once at start (see [`kinds!`](crate::kinds)). The engine's own
/// kind, ClientToken records, is always there.
pub struct Registry {
    kinds: Vec<Box<dyn KindOps>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new()
    }
}

impl Registry {
    pub fn new() -> Registry {
        Registry { kinds: Vec::new() }.with::<ClientTokenRecord>()
    }

    /// Registers `T`.
    ///
    /// # Panics
    /// When another kind has `T`'s name, or `T`'s ID prefix: a mistake in the service's
    /// declarations, caught by the first test that builds the registry.
    pub fn with<T: Resource>(mut self) -> Registry {
        let spec = T::KIND.spec();
        for other in self.kinds() {
            assert!(
                other.as_str() != spec.name,
                "two kinds are named {}",
                spec.name
            );
            assert!(
                spec.id_prefix.is_none() || other.spec().id_prefix != spec.id_prefix,
                "{other} and {} share an ID prefix",
                spec.name
            );
        }
        self.kinds.push(Box::new(Ops::<T>(PhantomData)));
        self
    }

    /// Every registered kind, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        self.kinds.iter().map(|ops| ops.kind())
    }

    /// Whether `kind` is registered.
    pub fn knows(&self, kind: Kind) -> bool {
        self.kinds().any(|k| k == kind)
    }

    /// Kinds that carry tags, in the order DescribeTags lists them.
    pub fn taggable_kinds(&self) -> Vec<Kind> {
        let mut kinds: Vec<Kind> = self.kinds().filter(|k| k.spec().taggable).collect();
        kinds.sort_by_key(|kind| kind.as_str());
        kinds
    }

    /// The taggable kind a resource ID names, judged by its prefix.
    pub fn kind_of_id(&self, id: &str) -> Option<Kind> {
        self.ops_of_id(id).map(|ops| ops.kind())
    }

    fn ops_of_id(&self, id: &str) -> Option<&dyn KindOps> {
        let prefix = id.split_once('-')?.0;
        self.kinds
            .iter()
            .map(|ops| ops.as_ref())
            .find(|ops| ops.kind().spec().taggable && ops.kind().spec().id_prefix == Some(prefix))
    }

    /// Loads every kind into `state`, upgrading documents written in an older format; the
    /// upgraded documents are returned for the caller to write back.
    pub(crate) fn load(&self, store: &dyn Store, state: &mut State) -> Result<Vec<Change>> {
        let mut upgraded = Vec::new();
        for ops in &self.kinds {
            ops.load(store, state, &mut upgraded)?;
        }
        Ok(upgraded)
    }

    /// Applies `change` to the tags of the resource `id`, whatever its kind.
    pub(crate) fn update_tags(
        &self,
        txn: &mut Txn,
        id: &str,
        change: &dyn Fn(&mut Tags),
    ) -> Result<()> {
        let ops = self.ops_of_id(id).ok_or_else(|| Error::MalformedId {
            kind: None,
            id: id.to_owned(),
        })?;
        ops.update_tags(txn, id, change)
    }

    /// Calls `each` with every tag of every taggable kind, kind by kind in DescribeTags order.
    pub(crate) fn each_tag(&self, state: &State, each: &mut dyn FnMut(Kind, &str, &str, &str)) {
        for kind in self.taggable_kinds() {
            if let Some(ops) = self.kinds.iter().find(|ops| ops.kind() == kind) {
                ops.each_tag(state, &mut |id, key, value| each(kind, id, key, value));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toy::{registry, Note, Widget};

    #[test]
    fn kinds_are_found_by_their_ids() {
        assert_eq!(
            registry().kind_of_id("wdg-0123456789abcdef0"),
            Some(Widget::KIND)
        );
        // Only taggable kinds are named by an ID; internal records have no prefix.
        assert_eq!(registry().kind_of_id("client-token"), None);
        assert_eq!(registry().kind_of_id("nothing"), None);
        assert_eq!(registry().taggable_kinds(), [Widget::KIND]);
        let names: Vec<&str> = registry().kinds().map(Kind::as_str).collect();
        assert_eq!(names, ["client-token", "widget", "note"]);
    }

    #[test]
    fn ids_are_checked_by_the_declared_prefix() {
        assert!(Widget::KIND.check_id("wdg-0123456789abcdef0").is_ok());
        assert!(Widget::KIND.check_id("wdg-ffffffff").is_ok());
        for bad in [
            "wdg-",
            "wdg-123",
            "vol-0123456789abcdef0",
            "wdg-0123456789ABCDEF0",
        ] {
            let error = Widget::KIND.check_id(bad).expect_err(bad);
            assert!(matches!(error, Error::MalformedId { kind: Some(k), .. } if k == Widget::KIND));
            assert_eq!(
                error.to_string(),
                format!("Invalid id: \"{bad}\" (expecting \"wdg-...\")")
            );
        }
        assert!(Note::KIND.check_id("anything").is_ok());
    }

    #[test]
    #[should_panic(expected = "two kinds are named widget")]
    fn a_kind_is_registered_once() {
        let _ = Registry::new().with::<Widget>().with::<Widget>();
    }
}
