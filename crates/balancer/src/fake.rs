//! An in-memory driver for the elbv2 service's unit tests: it keeps the last spec applied to
//! each balancer (checked as the real driver checks it) and reports every target healthy
//! unless a test says otherwise. Deregistered targets leave at once (no draining). Its
//! counters are the ones a test set, or none carried, with the target states' counts.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::counters::healthy_and_unhealthy;
use crate::{
    check, BalancerCounters, BalancerDriver, BalancerSpec, Error, GroupCounters, ListenerCounters,
    Result, Target, TargetHealth, TargetState,
};

#[derive(Default)]
pub struct FakeBalancers {
    applied: Mutex<BTreeMap<String, BalancerSpec>>,
    /// States tests set, by balancer, group and target.
    states: Mutex<BTreeMap<(String, String, Target), TargetState>>,
    /// Counters tests set, by balancer.
    counters: Mutex<BTreeMap<String, BalancerCounters>>,
}

impl FakeBalancers {
    /// The spec last applied to a balancer, if it runs.
    pub fn applied(&self, balancer_id: &str) -> Option<BalancerSpec> {
        self.lock().get(balancer_id).cloned()
    }

    /// Makes `target_health` report `state` for a target of a group, as a real health
    /// check would (a killed server turning unhealthy, say).
    pub fn set_state(&self, balancer_id: &str, group: &str, target: Target, state: TargetState) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((balancer_id.into(), group.into(), target), state);
    }

    /// Makes `counters` report these for a balancer, as traffic through it would.
    pub fn set_counters(&self, balancer_id: &str, counters: BalancerCounters) {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(balancer_id.into(), counters);
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, BalancerSpec>> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl BalancerDriver for FakeBalancers {
    async fn apply(&self, spec: &BalancerSpec) -> Result<()> {
        check(spec)?;
        self.lock().insert(spec.balancer_id.clone(), spec.clone());
        Ok(())
    }

    async fn remove(&self, balancer_id: &str) -> Result<()> {
        self.lock().remove(balancer_id);
        Ok(())
    }

    async fn balancers(&self) -> Result<Vec<String>> {
        Ok(self.lock().keys().cloned().collect())
    }

    async fn target_health(&self, balancer_id: &str) -> Result<Vec<TargetHealth>> {
        let spec = self
            .applied(balancer_id)
            .ok_or_else(|| Error::UnknownBalancer(balancer_id.to_owned()))?;
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        Ok(spec
            .target_groups
            .iter()
            .flat_map(|group| {
                group.targets.iter().map(|target| TargetHealth {
                    target_group_id: group.id.clone(),
                    target: *target,
                    state: states
                        .get(&(balancer_id.to_owned(), group.id.clone(), *target))
                        .copied()
                        .unwrap_or(TargetState::Healthy),
                })
            })
            .collect())
    }

    async fn counters(&self, balancer_id: &str) -> Result<BalancerCounters> {
        let health = self.target_health(balancer_id).await?;
        let set = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = set.get(balancer_id) {
            return Ok(counters.clone());
        }
        let spec = self
            .applied(balancer_id)
            .ok_or_else(|| Error::UnknownBalancer(balancer_id.to_owned()))?;
        Ok(BalancerCounters {
            listeners: spec
                .listeners
                .iter()
                .map(|l| ListenerCounters {
                    port: l.port,
                    ..ListenerCounters::default()
                })
                .collect(),
            target_groups: spec
                .target_groups
                .iter()
                .map(|g| {
                    let (healthy, unhealthy) = healthy_and_unhealthy(&health, &g.id);
                    GroupCounters {
                        target_group_id: g.id.clone(),
                        healthy,
                        unhealthy,
                        ..GroupCounters::default()
                    }
                })
                .collect(),
            ..BalancerCounters::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::spec;
    use crate::UnhealthyReason;

    #[tokio::test]
    async fn the_fake_keeps_specs_and_reports_the_states_tests_set() {
        let fake = FakeBalancers::default();
        let spec = spec();
        fake.apply(&spec).await.expect("apply");
        let target = spec.target_groups[0].targets[0];
        fake.set_state(
            "app-0a1b",
            "tg-web",
            target,
            TargetState::Unhealthy(UnhealthyReason::Timeout),
        );
        let health = fake.target_health("app-0a1b").await.expect("health");
        assert_eq!(health.len(), 3);
        assert_eq!(
            health[0].state,
            TargetState::Unhealthy(UnhealthyReason::Timeout)
        );
        assert_eq!(health[1].state, TargetState::Healthy);
        assert_eq!(fake.balancers().await.expect("list"), ["app-0a1b"]);

        let counters = fake.counters("app-0a1b").await.expect("counters");
        assert_eq!(counters.listeners.len(), 2);
        let web = &counters.target_groups[0];
        assert_eq!(
            (web.healthy, web.unhealthy, web.traffic.requests),
            (1, 1, 0)
        );
        let mut carried = counters.clone();
        carried.listeners[0].traffic.requests = 12;
        fake.set_counters("app-0a1b", carried.clone());
        assert_eq!(fake.counters("app-0a1b").await.expect("set"), carried);

        let mut bad = spec.clone();
        bad.namespace = "a/b".into();
        assert!(fake.apply(&bad).await.is_err(), "checked like the real one");

        fake.remove("app-0a1b").await.expect("remove");
        assert!(fake.target_health("app-0a1b").await.is_err());
    }
}
