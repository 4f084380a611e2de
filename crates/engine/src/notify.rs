//! Commit notifications: a commit announces the kinds it changed, and every subscription to
//! one of them is told, before the working set's lock is released. A subscriber (a reconciler)
//! then reads the working set, which already holds the change.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Kind;

/// Interest in the commits that change some kinds.
pub struct Subscription {
    kinds: Vec<Kind>,
    commits: AtomicU64,
    signal: tokio::sync::Notify,
}

impl Subscription {
    pub(crate) fn new(kinds: &[Kind]) -> Subscription {
        Subscription {
            kinds: kinds.to_vec(),
            commits: AtomicU64::new(0),
            signal: tokio::sync::Notify::new(),
        }
    }

    /// How many commits so far changed one of the kinds. A reader of the working set that
    /// reads this count first has seen at least that many of them.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Waits for the next commit (or [`Subscription::wake`]) since the last wait; one that
    /// came while nobody waited is not lost.
    pub async fn changed(&self) {
        self.signal.notified().await
    }

    /// Wakes the subscriber as a commit would, without counting one.
    pub fn wake(&self) {
        self.signal.notify_one();
    }

    /// Called with the kinds of each commit.
    pub(crate) fn announce(&self, changed: &[&str]) {
        if self
            .kinds
            .iter()
            .any(|kind| changed.contains(&kind.as_str()))
        {
            self.commits.fetch_add(1, Ordering::SeqCst);
            self.wake();
        }
    }
}
