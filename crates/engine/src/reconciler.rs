//! Reconcilers: the background loops that bring the host toward the stored intent (volumes,
//! instances, networks, status checks, metrics, alarms). All have one shape, a pass and then
//! a wait for the next reason to pass (a tick, a commit they subscribed to, a wake-up), so
//! they are started from one list ([`run_all`]) and report their passes one way ([`Passes`],
//! which `/_nimbus/metrics` reads). A resource whose step fails is logged by the pass and
//! tried again at the next one: it never stops the loop, nor the other reconcilers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

#[async_trait]
pub trait Reconciler: Send + Sync {
    /// Its name in the metrics (`reconciler="…"`).
    fn name(&self) -> &'static str;
    /// One pass over what it drives.
    async fn pass(&self);
    /// Returns when the next pass is due.
    async fn wait(&self);
}

/// What one reconciler's passes came to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassFigures {
    pub passes: u64,
    /// When the last pass ended, in milliseconds since the epoch.
    pub last_end_ms: i64,
    pub last_pass: Duration,
}

/// Every reconciler's figures, by name.
#[derive(Default)]
pub struct Passes(Mutex<BTreeMap<&'static str, PassFigures>>);

impl Passes {
    fn record(&self, name: &'static str, took: Duration) {
        let mut figures = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = figures.entry(name).or_default();
        entry.passes += 1;
        entry.last_end_ms = nimbus_core::now_millis();
        entry.last_pass = took;
    }

    pub fn figures(&self) -> BTreeMap<&'static str, PassFigures> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Starts every reconciler's loop, each as its own task.
pub fn run_all(
    reconcilers: Vec<Arc<dyn Reconciler>>,
    passes: Arc<Passes>,
) -> Vec<tokio::task::JoinHandle<()>> {
    reconcilers
        .into_iter()
        .map(|reconciler| {
            let passes = passes.clone();
            tokio::spawn(async move {
                loop {
                    let started = Instant::now();
                    reconciler.pass().await;
                    passes.record(reconciler.name(), started.elapsed());
                    reconciler.wait().await;
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    struct Counting(AtomicU64, tokio::sync::Notify);

    #[async_trait]
    impl Reconciler for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }
        async fn pass(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        async fn wait(&self) {
            self.1.notified().await;
        }
    }

    #[tokio::test]
    async fn each_pass_is_counted_under_its_name_and_the_next_waits_for_its_reason() {
        let counting = Arc::new(Counting(AtomicU64::new(0), tokio::sync::Notify::new()));
        let passes = Arc::new(Passes::default());
        let tasks = run_all(vec![counting.clone()], passes.clone());
        while passes.figures().get("counting").map(|f| f.passes) != Some(1) {
            tokio::task::yield_now().await;
        }
        counting.1.notify_one();
        while passes.figures().get("counting").map(|f| f.passes) != Some(2) {
            tokio::task::yield_now().await;
        }
        assert_eq!(counting.0.load(Ordering::SeqCst), 2);
        assert!(passes.figures()["counting"].last_end_ms > 0);
        for task in tasks {
            task.abort();
        }
    }
}
