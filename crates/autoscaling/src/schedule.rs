//! Scheduled actions: Put/Describe/DeleteScheduledAction (`PutScheduledUpdateGroupAction`,
//! `DescribeScheduledActions`, `DeleteScheduledAction`). At its time (once, or at every
//! match of its `Recurrence`, a Unix cron expression in UTC) an action sets the group's
//! min, max and desired capacity, unless the group's `ScheduledActions` process is suspended.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::groups::{existing_group, Group};
use crate::{AutoScaling, AutoScalingError, Result};

/// Actions per group, as AWS's quota.
const MAX_PER_GROUP: usize = 125;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledAction {
    pub name: String,
    pub arn: String,
    pub recurrence: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub min_size: Option<u32>,
    pub max_size: Option<u32>,
    pub desired_capacity: Option<u32>,
    /// When it runs next; `None` once a one-time action ran or a recurrence ended.
    pub next_ms: Option<i64>,
}

impl ScheduledAction {
    fn output(&self, group: &str) -> Value {
        let mut output = json!({
            "AutoScalingGroupName": group,
            "ScheduledActionName": self.name,
            "ScheduledActionARN": self.arn,
            "TimeZone": "Etc/UTC",
        });
        let optional = [
            ("Recurrence", json!(self.recurrence)),
            ("MinSize", json!(self.min_size)),
            ("MaxSize", json!(self.max_size)),
            ("DesiredCapacity", json!(self.desired_capacity)),
            (
                "StartTime",
                json!(self
                    .next_ms
                    .or(self.start_ms)
                    .map(nimbus_core::iso8601_millis)),
            ),
            (
                "Time",
                json!(self
                    .next_ms
                    .or(self.start_ms)
                    .map(nimbus_core::iso8601_millis)),
            ),
            (
                "EndTime",
                json!(self.end_ms.map(nimbus_core::iso8601_millis)),
            ),
        ];
        for (key, value) in optional {
            if !value.is_null() {
                output[key] = value;
            }
        }
        output
    }

    /// The first time at or after `after_ms` the action runs.
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        let from = after_ms.max(self.start_ms.unwrap_or(after_ms));
        let next = match &self.recurrence {
            Some(cron) => Cron::parse(cron).ok()?.next_at_or_after(from)?,
            None => self.start_ms.filter(|start| *start >= after_ms)?,
        };
        self.end_ms.is_none_or(|end| next <= end).then_some(next)
    }
}

/// A Unix cron expression (minute, hour, day of month, month, day of week), as sets.
struct Cron {
    minutes: Vec<u8>,
    hours: Vec<u8>,
    days: Vec<u8>,
    months: Vec<u8>,
    weekdays: Vec<u8>,
    /// Both day fields restricted: either may match, as cron does.
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field of a cron expression: `*`, numbers, names, ranges, lists and steps.
fn cron_field(field: &str, low: u8, high: u8, names: &[&str], name_base: u8) -> Option<Vec<u8>> {
    let value = |text: &str| -> Option<u8> {
        let upper = text.to_ascii_uppercase();
        match names.iter().position(|n| *n == upper) {
            Some(index) => Some(index as u8 + name_base),
            None => text.parse().ok(),
        }
    };
    let mut set = Vec::new();
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, step.parse::<u8>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (start, end) = match range {
            "*" => (low, high),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if part.contains('/') => (value(range)?, high),
                None => (value(range)?, value(range)?),
            },
        };
        if start < low || end > high || start > end {
            return None;
        }
        set.extend((start..=end).step_by(usize::from(step)));
    }
    set.sort_unstable();
    set.dedup();
    Some(set)
}

impl Cron {
    fn parse(expression: &str) -> std::result::Result<Cron, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let invalid = || format!("Given recurrence string {expression} is invalid");
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(invalid());
        };
        let mut weekdays = cron_field(weekday, 0, 7, &WEEKDAYS, 0).ok_or_else(invalid)?;
        // 7 is Sunday too.
        if weekdays.contains(&7) {
            weekdays.retain(|d| *d != 7);
            weekdays.insert(0, 0);
            weekdays.dedup();
        }
        Ok(Cron {
            minutes: cron_field(minute, 0, 59, &[], 0).ok_or_else(invalid)?,
            hours: cron_field(hour, 0, 23, &[], 0).ok_or_else(invalid)?,
            days: cron_field(day, 1, 31, &[], 0).ok_or_else(invalid)?,
            months: cron_field(month, 1, 12, &MONTHS, 1).ok_or_else(invalid)?,
            either_day: day != "*" && weekday != "*",
            weekdays,
        })
    }

    fn day_matches(&self, at: OffsetDateTime) -> bool {
        let day = self.days.contains(&at.day());
        let weekday = self
            .weekdays
            .contains(&at.weekday().number_days_from_sunday());
        if self.either_day {
            day || weekday
        } else {
            day && weekday
        }
    }

    /// The first whole minute at or after `from_ms` that matches, within four years. A month,
    /// day or hour that cannot match is skipped whole, so an expression that never matches
    /// (`0 0 31 2 *`) costs a few thousand steps, not two million.
    fn next_at_or_after(&self, from_ms: i64) -> Option<i64> {
        let (minute_ms, hour_ms, day_ms) = (60_000, 3_600_000, 86_400_000);
        let mut at_ms = from_ms.div_euclid(minute_ms) * minute_ms;
        if at_ms < from_ms {
            at_ms += minute_ms;
        }
        let limit = at_ms + 4 * 366 * day_ms;
        while at_ms <= limit {
            let at = OffsetDateTime::from_unix_timestamp(at_ms / 1000).ok()?;
            if !self.months.contains(&u8::from(at.month())) {
                // The first minute of the next month.
                let next_month = at.month().next();
                let year = at.year() + i32::from(next_month == time::Month::January);
                let first = PrimitiveDateTime::new(
                    time::Date::from_calendar_date(year, next_month, 1).ok()?,
                    time::Time::MIDNIGHT,
                );
                at_ms = first.assume_utc().unix_timestamp() * 1000;
            } else if !self.day_matches(at) {
                at_ms = (at_ms.div_euclid(day_ms) + 1) * day_ms;
            } else if !self.hours.contains(&at.hour()) {
                at_ms = (at_ms.div_euclid(hour_ms) + 1) * hour_ms;
            } else if self.minutes.contains(&at.minute()) {
                return Some(at_ms);
            } else {
                at_ms += minute_ms;
            }
        }
        None
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutScheduledActionInput {
    auto_scaling_group_name: String,
    scheduled_action_name: String,
    time: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    recurrence: Option<String>,
    min_size: Option<i64>,
    max_size: Option<i64>,
    desired_capacity: Option<i64>,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DescribeScheduledActionsInput {
    auto_scaling_group_name: Option<String>,
    #[serde(default)]
    scheduled_action_names: Vec<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    next_token: Option<String>,
    max_records: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DeleteScheduledActionInput {
    auto_scaling_group_name: String,
    scheduled_action_name: String,
}

fn validation(message: impl Into<String>) -> AutoScalingError {
    AutoScalingError::Validation(message.into())
}

/// An ISO 8601 timestamp as the decoder hands it over, in milliseconds.
fn millis(name: &str, text: &str) -> Result<i64> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| validation(format!("{name} {text} is not a valid time")))
}

fn size(name: &str, value: Option<i64>) -> Result<Option<u32>> {
    value
        .map(|v| u32::try_from(v).map_err(|_| validation(format!("{name} must be at least 0"))))
        .transpose()
}

impl Group {
    /// Runs the scheduled actions that are due; true when one changed the group.
    pub(crate) fn run_due_actions(&mut self, now_ms: i64) -> bool {
        if self.suspended("ScheduledActions") {
            return false;
        }
        let mut changed = false;
        let mut actions = std::mem::take(&mut self.scheduled_actions);
        for action in &mut actions {
            if action.next_ms.is_none_or(|next| next > now_ms) {
                continue;
            }
            if let Some(min) = action.min_size {
                self.min_size = min;
            }
            if let Some(max) = action.max_size {
                self.max_size = max;
            }
            let desired = action
                .desired_capacity
                .unwrap_or(self.desired_capacity)
                .clamp(self.min_size, self.max_size.max(self.min_size));
            let why = format!(
                "a scheduled action update of AutoScalingGroup constraints to min: {}, max: {}, desired: {desired}",
                self.min_size, self.max_size
            );
            self.set_desired(desired, &why);
            action.next_ms = action.next_after(now_ms + 60_000 - now_ms.rem_euclid(60_000));
            changed = true;
        }
        // A one-time action that ran is gone, as in AWS.
        actions.retain(|a| a.next_ms.is_some() || a.recurrence.is_some());
        self.scheduled_actions = actions;
        changed
    }
}

impl AutoScaling {
    pub fn put_scheduled_action(&self, input: PutScheduledActionInput) -> Result<Value> {
        if input
            .time_zone
            .as_deref()
            .is_some_and(|z| !matches!(z, "UTC" | "Etc/UTC" | "GMT"))
        {
            return Err(validation(
                "TimeZone other than UTC is not supported by nimbus",
            ));
        }
        if input.min_size.is_none() && input.max_size.is_none() && input.desired_capacity.is_none()
        {
            return Err(validation(
                "At least one of MinSize, MaxSize or DesiredCapacity must be specified",
            ));
        }
        if let Some(recurrence) = &input.recurrence {
            Cron::parse(recurrence).map_err(validation)?;
        }
        let start = match input.start_time.as_deref().or(input.time.as_deref()) {
            Some(text) => Some(millis("StartTime", text)?),
            None => None,
        };
        let end = match input.end_time.as_deref() {
            Some(text) => Some(millis("EndTime", text)?),
            None => None,
        };
        if input.recurrence.is_none() && start.is_none() {
            return Err(validation(
                "Either StartTime or Recurrence must be specified",
            ));
        }
        if let (Some(start), Some(end)) = (start, end) {
            if end <= start {
                return Err(validation("EndTime must be after StartTime"));
            }
        }
        let now = nimbus_core::now_millis();
        if input.recurrence.is_none() && start.is_some_and(|s| s < now) {
            return Err(validation("Given start time is in the past"));
        }
        let name = input.scheduled_action_name;
        let group_name = input.auto_scaling_group_name;
        let mut action = ScheduledAction {
            arn: format!(
                "arn:aws:autoscaling:{}:{}:scheduledUpdateGroupAction:{}:autoScalingGroupName/{group_name}:scheduledActionName/{name}",
                self.region,
                self.account_id,
                nimbus_core::new_uuid()
            ),
            name: name.clone(),
            recurrence: input.recurrence,
            start_ms: start,
            end_ms: end,
            min_size: size("MinSize", input.min_size)?,
            max_size: size("MaxSize", input.max_size)?,
            desired_capacity: size("DesiredCapacity", input.desired_capacity)?,
            next_ms: None,
        };
        action.next_ms = action.next_after(now);
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &group_name)?.clone();
            if let Some(previous) = group.scheduled_actions.iter().find(|a| a.name == name) {
                action.arn = previous.arn.clone();
            }
            group.scheduled_actions.retain(|a| a.name != name);
            if group.scheduled_actions.len() >= MAX_PER_GROUP {
                return Err(AutoScalingError::LimitExceeded(format!(
                    "A group may have at most {MAX_PER_GROUP} scheduled actions"
                )));
            }
            group.scheduled_actions.push(action);
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }

    pub fn describe_scheduled_actions(
        &self,
        input: DescribeScheduledActionsInput,
    ) -> Result<Value> {
        let (from, to) = (
            input
                .start_time
                .as_deref()
                .map(|t| millis("StartTime", t))
                .transpose()?,
            input
                .end_time
                .as_deref()
                .map(|t| millis("EndTime", t))
                .transpose()?,
        );
        let state = self.engine.read();
        if let Some(name) = &input.auto_scaling_group_name {
            existing_group(&state, name)?;
        }
        let mut rows: Vec<(String, Value)> = Vec::new();
        for group in crate::kinds::Tables::groups(&*state).values() {
            if input
                .auto_scaling_group_name
                .as_ref()
                .is_some_and(|g| g != &group.name)
            {
                continue;
            }
            for action in &group.scheduled_actions {
                let named = input.scheduled_action_names.is_empty()
                    || input.scheduled_action_names.contains(&action.name);
                let next = action.next_ms.unwrap_or(i64::MAX);
                let in_window = from.is_none_or(|f| next >= f) && to.is_none_or(|t| next <= t);
                if named && in_window {
                    rows.push((
                        format!("{}\n{}", group.name, action.name),
                        action.output(&group.name),
                    ));
                }
            }
        }
        let next_token = input.next_token.as_deref();
        let member = "ScheduledUpdateGroupActions";
        crate::page_of(member, rows, input.max_records, next_token, (50, 100))
    }

    pub fn delete_scheduled_action(&self, input: DeleteScheduledActionInput) -> Result<Value> {
        let name = input.scheduled_action_name;
        self.change(|txn| {
            let mut group = existing_group(txn.state(), &input.auto_scaling_group_name)?.clone();
            if !group.scheduled_actions.iter().any(|a| a.name == name) {
                return Err(validation(format!(
                    "Scheduled Update Group Action name not found - {name}"
                )));
            }
            group.scheduled_actions.retain(|a| a.name != name);
            Ok(txn.put(group)?)
        })?;
        Ok(json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        millis("t", text).expect("time")
    }

    #[test]
    fn cron_finds_the_next_matching_minute() {
        let every_five = Cron::parse("*/5 * * * *").expect("cron");
        assert_eq!(
            every_five.next_at_or_after(at("2026-12-07T22:01:30Z")),
            Some(at("2026-12-07T22:05:00Z"))
        );
        let weekday_mornings = Cron::parse("30 8 * * MON-FRI").expect("cron");
        // 2026-12-12 is a Saturday: the next is Monday the 14th.
        assert_eq!(
            weekday_mornings.next_at_or_after(at("2026-12-11T09:00:00Z")),
            Some(at("2026-12-14T08:30:00Z"))
        );
        let new_year = Cron::parse("0 0 1 JAN *").expect("cron");
        assert_eq!(
            new_year.next_at_or_after(at("2026-12-07T00:00:00Z")),
            Some(at("2027-01-01T00:00:00Z"))
        );
        let sundays = Cron::parse("0 12 * * 7").expect("cron");
        assert_eq!(
            sundays.next_at_or_after(at("2026-12-07T00:00:00Z")),
            Some(at("2026-12-13T12:00:00Z"))
        );
        for bad in [
            "* * * *",
            "60 * * * *",
            "*/0 * * * *",
            "1-x * * * *",
            "0 0 32 * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_recurring_action_stops_at_its_end_time() {
        let action = ScheduledAction {
            name: "n".into(),
            arn: "a".into(),
            recurrence: Some("0 * * * *".into()),
            start_ms: None,
            end_ms: Some(at("2026-12-07T23:30:00Z")),
            min_size: None,
            max_size: None,
            desired_capacity: Some(1),
            next_ms: None,
        };
        assert_eq!(
            action.next_after(at("2026-12-07T22:10:00Z")),
            Some(at("2026-12-07T23:00:00Z"))
        );
        assert_eq!(action.next_after(at("2026-12-07T23:10:00Z")), None);
    }
}
