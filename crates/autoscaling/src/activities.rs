//! Scaling activities: the history of what a group did and why, which DescribeScalingActivities
//! answers (and which Terraform waits on).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::groups::Group;
use crate::kinds::Tables;
use crate::{AutoScaling, Result};

static NEXT_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Activities kept per group; older ones are dropped as new ones come.
const KEPT_PER_GROUP: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    WaitingForInstanceId,
    PreInService,
    InProgress,
    Successful,
    Failed,
    Cancelled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::WaitingForInstanceId => "WaitingForInstanceId",
            Status::PreInService => "PreInService",
            Status::InProgress => "InProgress",
            Status::Successful => "Successful",
            Status::Failed => "Failed",
            Status::Cancelled => "Cancelled",
        }
    }

    pub fn is_over(self) -> bool {
        matches!(
            self,
            Status::Successful | Status::Failed | Status::Cancelled
        )
    }
}

/// Where a launch goes; kept on its activity so a launch interrupted by a restart is retried
/// the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedLaunch {
    pub subnet_id: Option<String>,
    pub zone: String,
    pub instance_type: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Activity {
    pub activity_id: String,
    pub group_name: String,
    pub group_arn: String,
    pub description: String,
    pub cause: String,
    pub start_ms: i64,
    /// Orders the activities that started in the same millisecond.
    #[serde(default)]
    pub seq: u64,
    pub end_ms: Option<i64>,
    pub status: Status,
    pub status_message: Option<String>,
    pub progress: u8,
    pub zone: String,
    pub subnet_id: Option<String>,
    /// Set on launch activities.
    pub launch: Option<PlannedLaunch>,
}

impl Activity {
    pub fn new(group: &Group, description: String, cause: String, status: Status) -> Activity {
        Activity {
            activity_id: nimbus_core::new_uuid(),
            group_name: group.name.clone(),
            group_arn: group.arn.clone(),
            description,
            cause,
            start_ms: nimbus_core::now_millis(),
            seq: NEXT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            end_ms: None,
            status,
            status_message: None,
            progress: 0,
            zone: String::new(),
            subnet_id: None,
            launch: None,
        }
    }

    /// Sorts newest first.
    pub fn order_key(&self) -> String {
        format!(
            "{:020}{:020}{}",
            i64::MAX - self.start_ms,
            u64::MAX - self.seq,
            self.activity_id
        )
    }

    pub fn set_status(&mut self, status: Status, progress: u8) {
        self.status = status;
        self.progress = progress;
        if status.is_over() && self.end_ms.is_none() {
            self.end_ms = Some(nimbus_core::now_millis());
        }
    }

    pub fn output(&self) -> Value {
        let mut details = serde_json::Map::new();
        if let Some(subnet) = &self.subnet_id {
            details.insert("Subnet ID".into(), json!(subnet));
        }
        if !self.zone.is_empty() {
            details.insert("Availability Zone".into(), json!(self.zone));
        }
        let mut output = json!({
            "ActivityId": self.activity_id,
            "AutoScalingGroupName": self.group_name,
            "AutoScalingGroupARN": self.group_arn,
            "Description": self.description,
            "Cause": self.cause,
            "StartTime": nimbus_core::iso8601_millis(self.start_ms),
            "StatusCode": self.status.as_str(),
            "Progress": self.progress,
            "Details": Value::Object(details).to_string(),
        });
        if let Some(end) = self.end_ms {
            output["EndTime"] = json!(nimbus_core::iso8601_millis(end));
        }
        if let Some(message) = &self.status_message {
            output["StatusMessage"] = json!(message);
        }
        output
    }
}

/// Adds `activity`, dropping the group's oldest ones beyond [`KEPT_PER_GROUP`].
pub fn record(txn: &mut engine::Txn, activity: Activity) -> Result<()> {
    let mut older: Vec<(String, String)> = txn
        .state()
        .activities()
        .values()
        .filter(|a| a.group_name == activity.group_name && a.status.is_over())
        .map(|a| (a.order_key(), a.activity_id.clone()))
        .collect();
    older.sort();
    for (_, id) in older.into_iter().skip(KEPT_PER_GROUP - 1) {
        txn.delete::<Activity>(&id);
    }
    Ok(txn.put(activity)?)
}

/// Applies `change` to the activity `id`, when it still exists.
pub fn update(txn: &mut engine::Txn, id: &str, change: impl FnOnce(&mut Activity)) -> Result<()> {
    if let Some(activity) = txn.state().activities().get(id) {
        let mut activity = activity.clone();
        change(&mut activity);
        txn.put(activity)?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeScalingActivitiesInput {
    #[serde(default)]
    activity_ids: Vec<String>,
    auto_scaling_group_name: Option<String>,
    #[serde(default)]
    include_deleted_groups: bool,
    max_records: Option<i64>,
    next_token: Option<String>,
}

impl AutoScaling {
    pub fn describe_activities(&self, input: DescribeScalingActivitiesInput) -> Result<Value> {
        let state = self.engine.read();
        let found: Vec<&Activity> = state
            .activities()
            .values()
            .filter(|a| {
                input.activity_ids.is_empty() || input.activity_ids.contains(&a.activity_id)
            })
            .filter(|a| {
                input
                    .auto_scaling_group_name
                    .as_ref()
                    .is_none_or(|name| &a.group_name == name)
            })
            .filter(|a| input.include_deleted_groups || state.groups().contains_key(&a.group_name))
            .collect();
        let rows = found
            .into_iter()
            .map(|a| (a.order_key(), a.output()))
            .collect();
        let next_token = input.next_token.as_deref();
        crate::page_of(
            "Activities",
            rows,
            input.max_records,
            next_token,
            (100, 100),
        )
    }
}
