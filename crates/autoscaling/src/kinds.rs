//! The kinds Auto Scaling stores, registered in its own engine registry.

use crate::activities::Activity;
use crate::groups::Group;
use crate::policies::Policy;

engine::kinds! {
    pub trait Tables; pub fn registry;
    Group, table groups, id name, tags untagged {
        name: "auto-scaling-group",
        prefix: None,
        not_found: "ValidationError",
        missing: "AutoScalingGroup name not found - {id}",
        malformed: "ValidationError",
        migrations: &[],
    }
    Policy, table policies, id arn, tags untagged {
        name: "scaling-policy",
        prefix: None,
        not_found: "ValidationError",
        missing: "Policy {id} not found",
        malformed: "ValidationError",
        migrations: &[],
    }
    Activity, table activities, id activity_id, tags untagged {
        name: "scaling-activity",
        prefix: None,
        not_found: "ValidationError",
        missing: "Activity {id} not found",
        malformed: "ValidationError",
        migrations: &[],
    }
}

impl engine::filter::Filterable for Group {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}

impl engine::filter::Filterable for Policy {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}

impl engine::filter::Filterable for Activity {
    const FILTERS: &'static [engine::filter::FilterField<Self>] = &[];
}
