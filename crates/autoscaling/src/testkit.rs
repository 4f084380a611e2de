//! A fake EC2 for the rules' unit tests: instances are records that the test moves between
//! states, and every call is remembered.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::ec2::{Ec2, Ec2Refusal, FoundTemplate, InstanceView, Launch, TemplateSpec};
use crate::AutoScaling;

#[derive(Default)]
pub struct FakeEc2 {
    pub instances: Mutex<BTreeMap<String, InstanceView>>,
    /// Launches by client token → instance ID (EC2's idempotency).
    pub launches: Mutex<BTreeMap<String, (String, Launch)>>,
    pub refuse_launches: Mutex<Option<String>>,
    /// Instances attached to a group by AttachInstances, by ID.
    pub groups: Mutex<BTreeMap<String, String>>,
}

impl FakeEc2 {
    pub fn set_state(&self, instance_id: &str, state: &str) {
        if let Some(view) = self.instances.lock().expect("fake").get_mut(instance_id) {
            view.state = state.to_owned();
        }
    }

    pub fn launched(&self) -> Vec<Launch> {
        let launches = self.launches.lock().expect("fake");
        launches
            .values()
            .map(|(_, launch)| launch.clone())
            .collect()
    }

    pub fn live(&self) -> Vec<String> {
        let instances = self.instances.lock().expect("fake");
        instances
            .values()
            .filter(|v| v.state != "terminated" && v.state != "shutting-down")
            .map(|v| v.instance_id.clone())
            .collect()
    }
}

fn refusal(code: &str, message: &str) -> Ec2Refusal {
    Ec2Refusal {
        code: code.into(),
        message: message.into(),
    }
}

#[async_trait]
impl Ec2 for FakeEc2 {
    async fn find_template(&self, spec: &TemplateSpec) -> Result<FoundTemplate, Ec2Refusal> {
        match spec.id.as_deref().or(spec.name.as_deref()) {
            Some("lt-0123456789abcdef0") | Some("web") => Ok(FoundTemplate {
                id: "lt-0123456789abcdef0".into(),
                name: "web".into(),
                hibernation: true,
            }),
            _ => Err(refusal(
                "InvalidLaunchTemplateName.NotFoundException",
                "The specified launch template, with template name missing, does not exist.",
            )),
        }
    }

    async fn subnet_zones(&self, subnet_ids: &[String]) -> Result<Vec<String>, Ec2Refusal> {
        subnet_ids
            .iter()
            .map(|id| match id.as_str() {
                "subnet-a" => Ok("us-east-1a".to_owned()),
                "subnet-b" => Ok("us-east-1b".to_owned()),
                other => Err(refusal(
                    "InvalidSubnetID.NotFound",
                    &format!("The subnet ID '{other}' does not exist"),
                )),
            })
            .collect()
    }

    async fn zones(&self) -> Result<Vec<String>, Ec2Refusal> {
        Ok(vec!["us-east-1a".into(), "us-east-1b".into()])
    }

    async fn launch(&self, launch: &Launch) -> Result<InstanceView, Ec2Refusal> {
        if let Some(message) = self.refuse_launches.lock().expect("fake").clone() {
            return Err(refusal("InsufficientInstanceCapacity", &message));
        }
        let mut launches = self.launches.lock().expect("fake");
        if let Some((id, _)) = launches.get(&launch.client_token) {
            return Ok(self.instances.lock().expect("fake")[id].clone());
        }
        let id = format!("i-{:017x}", launches.len() + 1);
        launches.insert(launch.client_token.clone(), (id.clone(), launch.clone()));
        let view = InstanceView {
            instance_id: id.clone(),
            instance_type: launch
                .instance_type
                .clone()
                .unwrap_or_else(|| "t3.micro".into()),
            state: "pending".into(),
            impaired: false,
            zone: launch.zone.clone(),
            subnet_id: launch.subnet_id.clone(),
        };
        self.instances
            .lock()
            .expect("fake")
            .insert(id, view.clone());
        Ok(view)
    }

    async fn terminate(&self, instance_id: &str) -> Result<(), Ec2Refusal> {
        self.set_state(instance_id, "terminated");
        Ok(())
    }

    async fn stop(&self, instance_id: &str, _hibernate: bool) -> Result<(), Ec2Refusal> {
        self.set_state(instance_id, "stopped");
        Ok(())
    }

    async fn start(&self, instance_id: &str) -> Result<(), Ec2Refusal> {
        self.set_state(instance_id, "pending");
        Ok(())
    }

    async fn set_group(&self, instance_id: &str, group: Option<&str>) -> Result<(), Ec2Refusal> {
        let mut groups = self.groups.lock().expect("fake");
        match group {
            Some(group) => groups.insert(instance_id.to_owned(), group.to_owned()),
            None => groups.remove(instance_id),
        };
        Ok(())
    }

    async fn instances(&self, ids: &[String]) -> Result<Vec<InstanceView>, Ec2Refusal> {
        let instances = self.instances.lock().expect("fake");
        Ok(ids
            .iter()
            .filter_map(|id| instances.get(id).cloned())
            .collect())
    }
}

/// A service over a fresh store, with the fake EC2 connected.
pub fn service() -> (Arc<AutoScaling>, Arc<FakeEc2>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(store::SqliteStore::open(&dir.path().join("state.db")).expect("store"));
    let service =
        Arc::new(AutoScaling::open(store, "us-east-1", "123456789012", 60).expect("open"));
    let ec2 = Arc::new(FakeEc2::default());
    service.set_ec2(ec2.clone());
    (service, ec2, dir)
}
