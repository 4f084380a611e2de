//! Kinds declared for the engine's own tests, as a service declares its kinds, and a store in
//! memory.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use store::{Change, Record, Store, StoreError};

use crate::filter::{FilterField, Filterable};
use crate::{Engine, Tags};

/// A taggable kind whose stored format 1 named its colour `colour`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Widget {
    pub widget_id: String,
    pub color: String,
    pub tags: Tags,
}

impl Filterable for Widget {
    const FILTERS: &'static [FilterField<Self>] = &[("color", |w, _| vec![w.color.clone()])];
}

/// An internal record: no prefix, no tags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub name: String,
}

impl Filterable for Note {
    const FILTERS: &'static [FilterField<Self>] = &[];
}

fn rename_colour(body: &mut serde_json::Value) -> Result<(), String> {
    let object = body.as_object_mut().ok_or("not an object")?;
    let colour = object.remove("colour").ok_or("no colour")?;
    object.insert("color".into(), colour);
    Ok(())
}

crate::kinds! {
    pub trait Tables; pub fn registry;
    Widget, table widgets, id widget_id, tags tags {
        name: "widget",
        prefix: Some("wdg"),
        not_found: "InvalidWidgetID.NotFound",
        missing: "The {id} does not exist",
        malformed: "InvalidWidgetID.Malformed",
        migrations: &[rename_colour],
    }
    Note, table notes, id name, tags untagged {
        name: "note",
        prefix: None,
        not_found: "InvalidNote.NotFound",
        missing: "The {id} does not exist",
        malformed: "InvalidNote.Malformed",
        migrations: &[],
    }
}

pub fn widget(n: u32) -> Widget {
    Widget {
        widget_id: format!("wdg-{n:017x}"),
        color: if n.is_multiple_of(2) { "red" } else { "blue" }.into(),
        tags: [("n".to_owned(), n.to_string())].into(),
    }
}

/// Records in memory; `fail` makes every commit fail, as a full disk would.
#[derive(Default)]
pub struct MemoryStore {
    pub records: Mutex<Vec<Record>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl Store for MemoryStore {
    fn load_kind(&self, kind: &str) -> store::Result<Vec<Record>> {
        let records = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(records.iter().filter(|r| r.kind == kind).cloned().collect())
    }

    fn commit(&self, changes: &[Change]) -> store::Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        let mut records = self.records.lock().map_err(|_| StoreError::Poisoned)?;
        for change in changes {
            let (kind, id) = match change {
                Change::Put(record) => (&record.kind, &record.id),
                Change::Delete { kind, id } => (kind, id),
            };
            records.retain(|r| !(&r.kind == kind && &r.id == id));
            if let Change::Put(record) = change {
                records.push(record.clone());
            }
        }
        Ok(())
    }
}

/// An engine on an empty store in memory, holding widgets `0..count`.
pub fn engine_with(count: u32) -> (Engine, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let engine = Engine::open(store.clone(), registry()).expect("open");
    engine
        .mutate(|txn| (0..count).try_for_each(|n| txn.put(widget(n))))
        .map_err(|e: crate::Error| e)
        .expect("seed");
    (engine, store)
}
