//! EC2 as Auto Scaling reaches it: each operation of [`autoscaling::Ec2`] is one or two of
//! EC2's own actions, run by the same handlers a client's request reaches, as Auto Scaling's
//! service-linked role. Auto Scaling therefore sees exactly what a user of the API would.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use autoscaling::ec2::{Ec2Refusal, FoundTemplate, InstanceView, Launch, TemplateSpec};
use serde_json::{json, Value};

use crate::actions;
use crate::{ApiContext, ApiError};

/// The tag EC2 puts on every instance a group launches, as in AWS.
const GROUP_TAG: &str = "aws:autoscaling:groupName";

pub struct Ec2ForAutoScaling {
    /// Set once the API context exists (it holds Auto Scaling, which holds this).
    context: OnceLock<Weak<ApiContext>>,
    caller_arn: String,
}

impl Ec2ForAutoScaling {
    pub fn new(account_id: &str) -> Ec2ForAutoScaling {
        Ec2ForAutoScaling {
            context: OnceLock::new(),
            caller_arn: autoscaling::service_linked_role(account_id),
        }
    }

    pub fn connect(&self, context: &Arc<ApiContext>) {
        let _ = self.context.set(Arc::downgrade(context));
    }

    async fn call(&self, action: &str, input: Value) -> Result<Value, Ec2Refusal> {
        let context = self.context()?;
        actions::call_as(&context, &self.caller_arn, action, input)
            .await
            .map_err(refusal)
    }

    fn context(&self) -> Result<Arc<ApiContext>, Ec2Refusal> {
        self.context
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| Ec2Refusal {
                code: "ServiceUnavailable".into(),
                message: "EC2 is not serving".into(),
            })
    }
}

fn refusal(error: ApiError) -> Ec2Refusal {
    Ec2Refusal {
        code: error.code,
        message: error.message,
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

#[async_trait]
impl autoscaling::Ec2 for Ec2ForAutoScaling {
    async fn find_template(&self, spec: &TemplateSpec) -> Result<FoundTemplate, Ec2Refusal> {
        let (key, value) =
            match (&spec.id, &spec.name) {
                (Some(id), _) => ("LaunchTemplateIds", id),
                (None, Some(name)) => ("LaunchTemplateNames", name),
                (None, None) => return Err(Ec2Refusal {
                    code: "ValidationError".into(),
                    message:
                        "Valid requests must contain either launchTemplateId or LaunchTemplateName"
                            .into(),
                }),
            };
        let not_found = |_| {
            Ec2Refusal {
            code: "ValidationError".into(),
            message: format!(
                "You must use a valid fully-formed launch template. The specified launch template, with template {} {value}, does not exist.",
                if spec.id.is_some() { "ID" } else { "name" }
            ),
        }
        };
        let found = self
            .call("DescribeLaunchTemplates", json!({ key: [value] }))
            .await
            .map_err(not_found)?;
        let template = &found["LaunchTemplates"][0];
        let id = text(&template["LaunchTemplateId"]);
        let version = spec.version.as_deref().unwrap_or("$Default");
        let versions = self
            .call(
                "DescribeLaunchTemplateVersions",
                json!({ "LaunchTemplateId": id, "Versions": [version] }),
            )
            .await
            .map_err(|refused| Ec2Refusal {
                code: "ValidationError".into(),
                message: format!(
                    "You must use a valid fully-formed launch template. {}",
                    refused.message
                ),
            })?;
        let data = &versions["LaunchTemplateVersions"][0]["LaunchTemplateData"];
        Ok(FoundTemplate {
            id,
            name: text(&template["LaunchTemplateName"]),
            hibernation: data["HibernationOptions"]["Configured"] == json!(true),
        })
    }

    async fn subnet_zones(&self, subnet_ids: &[String]) -> Result<Vec<String>, Ec2Refusal> {
        let found = self
            .call("DescribeSubnets", json!({ "SubnetIds": subnet_ids }))
            .await?;
        let zones: BTreeMap<String, String> = found["Subnets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (text(&s["SubnetId"]), text(&s["AvailabilityZone"])))
            .collect();
        subnet_ids
            .iter()
            .map(|id| {
                zones.get(id).cloned().ok_or_else(|| Ec2Refusal {
                    code: "InvalidSubnetID.NotFound".into(),
                    message: format!("The subnet ID '{id}' does not exist"),
                })
            })
            .collect()
    }

    async fn zones(&self) -> Result<Vec<String>, Ec2Refusal> {
        let found = self.call("DescribeAvailabilityZones", json!({})).await?;
        Ok(found["AvailabilityZones"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|z| text(&z["ZoneName"]))
            .collect())
    }

    async fn launch(&self, launch: &Launch) -> Result<InstanceView, Ec2Refusal> {
        let mut template = json!({});
        match (&launch.template.id, &launch.template.name) {
            (Some(id), _) => template["LaunchTemplateId"] = json!(id),
            (None, name) => template["LaunchTemplateName"] = json!(name),
        }
        if let Some(version) = &launch.template.version {
            template["Version"] = json!(version);
        }
        let mut request = json!({
            "LaunchTemplate": template,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": launch.client_token,
            // A member whose VM dies is replaced by its group, not recovered in place.
            "MaintenanceOptions": { "AutoRecovery": "disabled" },
        });
        match &launch.subnet_id {
            Some(subnet) => request["SubnetId"] = json!(subnet),
            None => request["Placement"] = json!({ "AvailabilityZone": launch.zone }),
        }
        if let Some(instance_type) = &launch.instance_type {
            request["InstanceType"] = json!(instance_type);
        }
        if !launch.tags.is_empty() {
            let tags: Vec<Value> = (launch.tags.iter())
                .map(|(key, value)| json!({ "Key": key, "Value": value }))
                .collect();
            request["TagSpecifications"] = json!([{ "ResourceType": "instance", "Tags": tags }]);
        }
        let reserved = control::Tags::from([(GROUP_TAG.to_owned(), launch.group_name.clone())]);
        let context = self.context()?;
        let launched = actions::run_instances_as(&context, &self.caller_arn, request, reserved)
            .await
            .map_err(refusal)?;
        let instance = &launched["Instances"][0];
        Ok(InstanceView {
            instance_id: text(&instance["InstanceId"]),
            instance_type: text(&instance["InstanceType"]),
            state: text(&instance["State"]["Name"]),
            impaired: false,
            zone: launch.zone.clone(),
            subnet_id: launch.subnet_id.clone(),
        })
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2Refusal> {
        match self
            .call(
                "TerminateInstances",
                json!({ "InstanceIds": [instance_id] }),
            )
            .await
        {
            Err(refused) if refused.code == "InvalidInstanceID.NotFound" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn stop(&self, instance_id: &str, hibernate: bool) -> Result<(), Ec2Refusal> {
        let request = json!({ "InstanceIds": [instance_id], "Hibernate": hibernate });
        self.call("StopInstances", request).await.map(|_| ())
    }

    async fn start(&self, instance_id: &str) -> Result<(), Ec2Refusal> {
        let request = json!({ "InstanceIds": [instance_id] });
        self.call("StartInstances", request).await.map(|_| ())
    }

    async fn set_group(&self, instance_id: &str, group: Option<&str>) -> Result<(), Ec2Refusal> {
        let context = self.context()?;
        (context.control)
            .set_service_tag(instance_id, GROUP_TAG, group)
            .map_err(|error| refusal(ApiError::from(error)))?;
        let recovery = if group.is_some() {
            "disabled"
        } else {
            "default"
        };
        self.call(
            "ModifyInstanceMaintenanceOptions",
            json!({ "InstanceId": instance_id, "AutoRecovery": recovery }),
        )
        .await
        .map(|_| ())
    }

    async fn instances(&self, ids: &[String]) -> Result<Vec<InstanceView>, Ec2Refusal> {
        let by_id = json!({ "Filters": [{ "Name": "instance-id", "Values": ids }] });
        let described = self.call("DescribeInstances", by_id.clone()).await?;
        let mut statuses = by_id;
        statuses["IncludeAllInstances"] = json!(true);
        let statuses = self.call("DescribeInstanceStatus", statuses).await?;
        let impaired: Vec<String> = statuses["InstanceStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                s["InstanceStatus"]["Status"] == "impaired"
                    || s["SystemStatus"]["Status"] == "impaired"
            })
            .map(|s| text(&s["InstanceId"]))
            .collect();
        Ok(described["Reservations"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|r| r["Instances"].as_array().into_iter().flatten())
            .map(|i| {
                let instance_id = text(&i["InstanceId"]);
                InstanceView {
                    impaired: impaired.contains(&instance_id),
                    instance_type: text(&i["InstanceType"]),
                    state: text(&i["State"]["Name"]),
                    zone: text(&i["Placement"]["AvailabilityZone"]),
                    subnet_id: i["SubnetId"].as_str().map(str::to_owned),
                    instance_id,
                }
            })
            .collect())
    }
}
