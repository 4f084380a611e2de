//! The kinds Elastic Load Balancing stores, registered in its own engine registry.

use crate::listeners::{Listener, Rule};
use crate::load_balancers::LoadBalancer;
use crate::target_groups::TargetGroup;

engine::kinds! {
    pub trait Tables; pub fn registry;
    LoadBalancer, table load_balancers, id arn, tags untagged {
        name: "load-balancer",
        prefix: None,
        not_found: "LoadBalancerNotFound",
        missing: "One or more load balancers not found",
        malformed: "ValidationError",
        migrations: &[],
    }
    TargetGroup, table target_groups, id arn, tags untagged {
        name: "target-group",
        prefix: None,
        not_found: "TargetGroupNotFound",
        missing: "One or more target groups not found",
        malformed: "ValidationError",
        migrations: &[],
    }
    Listener, table listeners, id arn, tags untagged {
        name: "listener",
        prefix: None,
        not_found: "ListenerNotFound",
        missing: "One or more listeners not found",
        malformed: "ValidationError",
        migrations: &[],
    }
    Rule, table rules, id arn, tags untagged {
        name: "listener-rule",
        prefix: None,
        not_found: "RuleNotFound",
        missing: "One or more rules not found",
        malformed: "ValidationError",
        migrations: &[],
    }
}

impl engine::filter::Filterable for LoadBalancer {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}

impl engine::filter::Filterable for TargetGroup {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}

impl engine::filter::Filterable for Listener {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}

impl engine::filter::Filterable for Rule {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}
