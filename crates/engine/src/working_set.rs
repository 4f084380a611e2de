//! [`Engine`]: the working set behind a lock, written through to the store one transaction per
//! call (the invariants are in the crate's docs).

use std::sync::{Arc, RwLock, RwLockReadGuard};

use store::{Change, Store};

use crate::{Error, Kind, Registry, State, Subscription, Txn};

pub struct Engine {
    store: Arc<dyn Store>,
    registry: &'static Registry,
    state: RwLock<State>,
    subscriptions: Vec<Arc<Subscription>>,
}

impl Engine {
    /// Loads the working set of `registry`'s kinds from `store`.
    pub fn open(store: Arc<dyn Store>, registry: &'static Registry) -> crate::Result<Engine> {
        let state = State::load(store.as_ref(), registry)?;
        Ok(Engine {
            store,
            registry,
            state: RwLock::new(state),
            subscriptions: Vec::new(),
        })
    }

    /// Subscribes to the commits that change any of `kinds`.
    pub fn subscribe(&mut self, kinds: &[Kind]) -> Arc<Subscription> {
        let subscription = Arc::new(Subscription::new(kinds));
        self.subscriptions.push(subscription.clone());
        subscription
    }

    /// A consistent read view of every resource.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-mutated in a way the store
        // disagrees with (see `mutate`), so a poisoned lock is still safe to read.
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `operation` against the working set and commits what it changed in one store
    /// transaction, then announces the commit to the subscriptions of the kinds it changed.
    /// `E` is the caller's error type, so a service's rules keep their own errors.
    pub fn mutate<R, E: From<Error>>(
        &self,
        operation: impl FnOnce(&mut Txn) -> std::result::Result<R, E>,
    ) -> std::result::Result<R, E> {
        let mut state = self
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut txn = Txn::new(&mut state);
        let outcome = operation(&mut txn);
        let changes = txn.into_changes();
        let value = match outcome {
            Ok(value) if changes.is_empty() => return Ok(value),
            Ok(value) => value,
            Err(error) if changes.is_empty() => return Err(error),
            Err(error) => {
                *state = State::load(self.store.as_ref(), self.registry)?;
                return Err(error);
            }
        };
        if let Err(error) = self.store.commit(&changes) {
            *state = State::load(self.store.as_ref(), self.registry)?;
            return Err(Error::from(error).into());
        }
        // Announced under the state lock: a subscriber that reads the count and then the
        // working set sees this change.
        let changed = changed_kinds(&changes);
        for subscription in &self.subscriptions {
            subscription.announce(&changed);
        }
        Ok(value)
    }
}

fn changed_kinds(changes: &[Change]) -> Vec<&str> {
    let mut kinds: Vec<&str> = changes
        .iter()
        .map(|change| match change {
            Change::Put(record) => record.kind.as_str(),
            Change::Delete { kind, .. } => kind.as_str(),
        })
        .collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use crate::toy::{registry, widget, MemoryStore, Note, Tables, Widget};
    use crate::{Engine, Error, Resource};

    #[test]
    fn a_failed_commit_leaves_memory_as_the_store_has_it() {
        let store = Arc::new(MemoryStore::default());
        let engine = Engine::open(store.clone(), registry()).expect("open");
        store.fail.store(true, Ordering::SeqCst);
        let failed = engine.mutate(|txn| txn.put(widget(1)));
        assert!(matches!(failed, Err(Error::Store(_))));
        assert!(engine.read().widgets().is_empty());
        store.fail.store(false, Ordering::SeqCst);
        // A refused operation changes nothing either, even after it put something.
        let refused: Result<(), Error> = engine.mutate(|txn| {
            txn.put(widget(2))?;
            Err(Error::TooManyTags)
        });
        assert!(refused.is_err());
        assert!(engine.read().widgets().is_empty());
    }

    #[test]
    fn commits_are_announced_to_the_subscribers_of_their_kinds() {
        let store = Arc::new(MemoryStore::default());
        let mut engine = Engine::open(store, registry()).expect("open");
        let widgets = engine.subscribe(&[Widget::KIND]);
        let notes = engine.subscribe(&[Note::KIND]);
        let put = |engine: &Engine, n: u32| {
            engine
                .mutate(|txn| txn.put(widget(n)))
                .map_err(|e: Error| e)
                .expect("put")
        };
        put(&engine, 1);
        put(&engine, 2);
        // A call that changes nothing commits nothing.
        engine.mutate(|_| Ok::<_, Error>(())).expect("read only");
        assert_eq!((widgets.commits(), notes.commits()), (2, 0));
        engine
            .mutate(|txn| {
                txn.put(Note { name: "n".into() })?;
                txn.put(widget(3))
            })
            .map_err(|e: Error| e)
            .expect("both");
        assert_eq!((widgets.commits(), notes.commits()), (3, 1));
        // The wake-up of a commit nobody waited for is kept for the next wait.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), notes.changed())
                .await
                .expect("woken");
        });
    }
}
