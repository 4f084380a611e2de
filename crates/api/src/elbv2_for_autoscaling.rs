//! Elastic Load Balancing as Auto Scaling reaches it: each operation of
//! [`autoscaling::LoadBalancing`] is one of the elbv2 service's own operations, with the input
//! a client would send, so Auto Scaling sees exactly what a user of the API would.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use autoscaling::ec2::Ec2Refusal;
use elbv2::{Elbv2, Elbv2Error};
use serde_json::{json, Value};

pub struct Elbv2ForAutoScaling {
    elbv2: Arc<Elbv2>,
}

impl Elbv2ForAutoScaling {
    pub fn new(elbv2: Arc<Elbv2>) -> Elbv2ForAutoScaling {
        Elbv2ForAutoScaling { elbv2 }
    }
}

fn refusal(error: Elbv2Error) -> Ec2Refusal {
    Ec2Refusal {
        code: "ValidationError".into(),
        message: error.to_string(),
    }
}

fn input<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Ec2Refusal> {
    serde_json::from_value(value).map_err(|e| Ec2Refusal {
        code: "ValidationError".into(),
        message: e.to_string(),
    })
}

fn targets(arn: &str, instance_ids: &[String]) -> Value {
    let targets: Vec<Value> = instance_ids.iter().map(|id| json!({ "Id": id })).collect();
    json!({ "TargetGroupArn": arn, "Targets": targets })
}

#[async_trait]
impl autoscaling::LoadBalancing for Elbv2ForAutoScaling {
    async fn check_target_groups(&self, arns: &[String]) -> Result<(), Ec2Refusal> {
        let asked = input(json!({ "TargetGroupArns": arns }))?;
        self.elbv2
            .describe_target_groups(asked)
            .map(|_| ())
            .map_err(refusal)
    }

    async fn register(&self, arn: &str, instance_ids: &[String]) -> Result<(), Ec2Refusal> {
        let asked = input(targets(arn, instance_ids))?;
        self.elbv2
            .register_targets(asked)
            .await
            .map(|_| ())
            .map_err(refusal)
    }

    async fn deregister(&self, arn: &str, instance_ids: &[String]) -> Result<(), Ec2Refusal> {
        let asked = input(targets(arn, instance_ids))?;
        self.elbv2
            .deregister_targets(asked)
            .map(|_| ())
            .map_err(refusal)
    }

    async fn target_states(&self, arn: &str) -> Result<BTreeMap<String, String>, Ec2Refusal> {
        let asked = input(json!({ "TargetGroupArn": arn }))?;
        let health = self
            .elbv2
            .describe_target_health(asked)
            .await
            .map_err(refusal)?;
        Ok((health["TargetHealthDescriptions"]
            .as_array()
            .into_iter()
            .flatten())
        .filter_map(|d| {
            let id = d["Target"]["Id"].as_str()?;
            let state = d["TargetHealth"]["State"].as_str()?;
            Some((id.to_owned(), state.to_owned()))
        })
        .collect())
    }
}
