//! The working set: one table per kind, each a map from ID to resource, and the [`Txn`] through
//! which every change goes, so the engine can commit exactly what changed.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};

use store::{Change, Record, Store};

use crate::{Error, Registry, Resource, Result};

/// The resources of one kind, by ID.
pub type Table<T> = BTreeMap<String, T>;

/// Every resource of every kind registered in its [`Registry`], by kind, by ID.
pub struct State {
    registry: &'static Registry,
    /// `TypeId::of::<T>()` → `Table<T>`; a kind without any resource may have no entry.
    tables: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl State {
    /// An empty working set of the kinds of `registry`.
    pub fn new(registry: &'static Registry) -> State {
        State {
            registry,
            tables: HashMap::new(),
        }
    }

    /// Loads every kind, upgrading documents written in an older format and writing the
    /// upgraded documents back in one transaction.
    pub fn load(store: &dyn Store, registry: &'static Registry) -> Result<State> {
        let mut state = State::new(registry);
        let upgraded = registry.load(store, &mut state)?;
        if !upgraded.is_empty() {
            store.commit(&upgraded)?;
        }
        Ok(state)
    }

    pub fn registry(&self) -> &'static Registry {
        self.registry
    }

    /// Every resource of type `T`.
    pub fn table<T: Resource>(&self) -> &Table<T> {
        self.tables
            .get(&TypeId::of::<T>())
            .and_then(|table| table.downcast_ref())
            .unwrap_or(const { &BTreeMap::new() })
    }

    pub fn get<T: Resource>(&self, id: &str) -> Option<&T> {
        self.table::<T>().get(id)
    }

    fn table_mut<T: Resource>(&mut self) -> &mut Table<T> {
        self.tables
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(Table::<T>::new()))
            .downcast_mut()
            .expect("tables are keyed by the type of their resources")
    }
}

/// Mutations of the working set inside one call; committed together or not at all.
pub struct Txn<'a> {
    state: &'a mut State,
    changes: Vec<Change>,
}

impl<'a> Txn<'a> {
    pub(crate) fn new(state: &'a mut State) -> Txn<'a> {
        Txn {
            state,
            changes: Vec::new(),
        }
    }

    pub(crate) fn into_changes(self) -> Vec<Change> {
        self.changes
    }

    pub fn state(&self) -> &State {
        self.state
    }

    /// Inserts or replaces a resource. A kind missing from the registry is refused: it would
    /// be written, but never loaded again.
    pub fn put<T: Resource>(&mut self, item: T) -> Result<()> {
        if !self.state.registry.knows(T::KIND) {
            return Err(Error::Internal(format!(
                "the kind {} is not registered",
                T::KIND
            )));
        }
        self.changes.push(Change::Put(record_of(&item)?));
        self.state
            .table_mut::<T>()
            .insert(item.id().to_owned(), item);
        Ok(())
    }

    pub fn delete<T: Resource>(&mut self, id: &str) {
        if self.state.table_mut::<T>().remove(id).is_some() {
            self.changes.push(Change::Delete {
                kind: T::KIND.as_str().to_owned(),
                id: id.to_owned(),
            });
        }
    }
}

/// A resource as the store keeps it, in its kind's current format.
pub fn record_of<T: Resource>(item: &T) -> Result<Record> {
    Ok(Record {
        kind: T::KIND.as_str().to_owned(),
        id: item.id().to_owned(),
        format: T::KIND.spec().format(),
        body: serde_json::to_value(item).map_err(|e| Error::Internal(e.to_string()))?,
    })
}

/// Loads the records of `T`, running the migrations of those of an older format; the upgraded
/// records go to `upgraded`. A record of a format newer than this nimbus knows is refused
/// rather than misread.
pub(crate) fn load_table<T: Resource>(
    store: &dyn Store,
    state: &mut State,
    upgraded: &mut Vec<Change>,
) -> Result<()> {
    let spec = T::KIND.spec();
    let table = state.table_mut::<T>();
    for mut record in store.load_kind(spec.name)? {
        let unreadable = |reason: String| Error::Unreadable {
            kind: T::KIND,
            id: record.id.clone(),
            reason,
        };
        if record.format == 0 || record.format > spec.format() {
            return Err(unreadable(format!(
                "format {} is not one this nimbus knows (1 to {})",
                record.format,
                spec.format()
            )));
        }
        let pending = &spec.migrations[record.format as usize - 1..];
        for migration in pending {
            migration(&mut record.body).map_err(unreadable)?;
        }
        let item: T =
            serde_json::from_value(record.body.clone()).map_err(|e| unreadable(e.to_string()))?;
        if !pending.is_empty() {
            upgraded.push(Change::Put(record_of(&item)?));
        }
        table.insert(record.id, item);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use store::{Change, Record, Store};

    use crate::toy::{engine_with, registry, widget, MemoryStore, Note, Tables, Widget};
    use crate::{Error, Resource, State};

    /// A widget as format 1 stored it.
    fn widget_format_1() -> Record {
        Record {
            kind: "widget".into(),
            id: widget(1).widget_id,
            format: 1,
            body: serde_json::json!({"widget_id": widget(1).widget_id, "colour": "blue", "tags": {}}),
        }
    }

    #[test]
    fn older_formats_are_migrated_on_load_and_written_back() {
        let store = MemoryStore::default();
        store
            .commit(&[Change::Put(widget_format_1())])
            .expect("seed");
        let state = State::load(&store, registry()).expect("load");
        assert_eq!(state.widgets()[&widget(1).widget_id].color, "blue");
        let stored = store.load_kind("widget").expect("stored");
        assert_eq!(stored[0].format, Widget::KIND.spec().format());
        assert_eq!(stored[0].body["color"], "blue");
        // Loading again finds nothing left to upgrade.
        let again = State::load(&store, registry()).expect("reload");
        assert_eq!(again.widgets().len(), 1);
    }

    #[test]
    fn a_format_newer_than_known_is_refused() {
        let store = MemoryStore::default();
        let mut record = widget_format_1();
        record.format = Widget::KIND.spec().format() + 1;
        store.commit(&[Change::Put(record)]).expect("seed");
        assert!(matches!(
            State::load(&store, registry()),
            Err(Error::Unreadable { .. })
        ));
    }

    #[test]
    fn tables_of_kinds_without_resources_are_empty() {
        let (engine, _) = engine_with(2);
        let state = engine.read();
        assert_eq!(state.widgets().len(), 2);
        assert!(state.notes().is_empty());
        assert!(state.get::<Note>("anything").is_none());
    }

    #[test]
    fn a_kind_outside_the_registry_is_not_written() {
        #[derive(Clone, serde::Serialize, serde::Deserialize)]
        struct Stray {
            id: String,
        }
        impl crate::filter::Filterable for Stray {
            const FILTERS: &'static [crate::filter::FilterField<Self>] = &[];
        }
        crate::kinds! {
            trait StrayTables; fn stray_registry;
            Stray, table strays, id id, tags untagged {
                name: "stray",
                prefix: None,
                not_found: "InvalidStray.NotFound",
                missing: "The {id} does not exist",
                malformed: "InvalidStray.Malformed",
                migrations: &[],
            }
        }
        let (engine, store) = engine_with(0);
        let refused = engine.mutate(|txn| txn.put(Stray { id: "s".into() }));
        assert!(matches!(refused, Err(Error::Internal(_))));
        assert!(store.load_kind("stray").expect("load").is_empty());
        assert!(engine.read().strays().is_empty());
        assert!(stray_registry().knows(Stray::KIND));
    }

    #[test]
    fn a_transaction_writes_what_it_changed() {
        let (engine, store) = engine_with(3);
        engine
            .mutate(|txn| {
                txn.delete::<Widget>(&widget(0).widget_id);
                txn.delete::<Widget>("wdg-missing");
                txn.put(Note { name: "n".into() })
            })
            .map_err(|e: Error| e)
            .expect("commit");
        let stored = store.records.lock().expect("records");
        let mut ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            [
                "n",
                widget(1).widget_id.as_str(),
                widget(2).widget_id.as_str()
            ]
        );
    }
}
