//! The metric operations: PutMetricData, GetMetricStatistics, GetMetricData, ListMetrics,
//! with CloudWatch's limits and period rules.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::{json, Value};

use crate::stats::{Statistic, Summary};
use crate::store::{Point, RAW_RETENTION_MS, ROLLUP_TIERS};
use crate::{
    dimension_pairs, dimensions_json, millis_of, next_token, read_token, Dimension, MetricKey,
    Monitoring, MonitoringError, Result,
};

/// Values (and counts) one `MetricDatum` may carry.
const MAX_VALUES_PER_DATUM: usize = 1000;
const MAX_DIMENSIONS: usize = 30;
/// CloudWatch refuses magnitudes beyond 2^360 and non-zero ones below 2^-260.
const MAX_MAGNITUDE: f64 = 2.348_542_582_773_833e108;
const MIN_MAGNITUDE: f64 = 5.397_605_346_934_028e-79;
/// How far from now a datapoint's timestamp may be.
const MAX_PAST_MS: i64 = 14 * 24 * 3_600_000;
const MAX_FUTURE_MS: i64 = 2 * 3_600_000;
/// GetMetricStatistics answers at most this many datapoints.
const MAX_STATISTICS_DATAPOINTS: i64 = 1440;
const DEFAULT_MAX_DATAPOINTS: usize = 100_800;
const LIST_PAGE: usize = 500;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct PutMetricDataInput {
    namespace: String,
    metric_data: Vec<MetricDatum>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetricDatum {
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    timestamp: Option<String>,
    value: Option<f64>,
    statistic_values: Option<StatisticSet>,
    values: Option<Vec<f64>>,
    counts: Option<Vec<f64>>,
    unit: Option<String>,
    storage_resolution: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct StatisticSet {
    sample_count: f64,
    sum: f64,
    minimum: f64,
    maximum: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetMetricStatisticsInput {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<Dimension>,
    start_time: String,
    end_time: String,
    period: i64,
    #[serde(default)]
    statistics: Vec<String>,
    #[serde(default)]
    extended_statistics: Vec<String>,
    unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GetMetricDataInput {
    metric_data_queries: Vec<MetricDataQuery>,
    start_time: String,
    end_time: String,
    next_token: Option<String>,
    scan_by: Option<String>,
    max_datapoints: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetricDataQuery {
    id: String,
    metric_stat: Option<MetricStat>,
    expression: Option<String>,
    label: Option<String>,
    return_data: Option<bool>,
    period: Option<i64>,
    account_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetricStat {
    metric: MetricShape,
    period: i64,
    stat: String,
    unit: Option<String>,
}

/// A metric as the `Metric` shape names it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct MetricShape {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<Dimension>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ListMetricsInput {
    namespace: Option<String>,
    metric_name: Option<String>,
    #[serde(default)]
    dimensions: Vec<DimensionFilter>,
    next_token: Option<String>,
    recently_active: Option<String>,
    include_linked_accounts: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct DimensionFilter {
    name: String,
    value: Option<String>,
}

fn invalid(message: String) -> MonitoringError {
    MonitoringError::InvalidParameterValue(message)
}

fn check_dimensions(dimensions: &[Dimension], parameter: &str) -> Result<()> {
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "The collection {parameter} must not have a size greater than {MAX_DIMENSIONS}."
        )));
    }
    let mut names = HashSet::new();
    if let Some(repeated) = dimensions.iter().find(|d| !names.insert(&d.name)) {
        return Err(invalid(format!(
            "No metric may have duplicate dimension names: {parameter} names {} twice.",
            repeated.name
        )));
    }
    Ok(())
}

fn check_value(value: f64, parameter: &str) -> Result<()> {
    let magnitude = value.abs();
    if !value.is_finite()
        || magnitude > MAX_MAGNITUDE
        || (value != 0.0 && magnitude < MIN_MAGNITUDE)
    {
        return Err(invalid(format!(
            "The value {value} for parameter {parameter} is invalid: values must be finite and \
             between -2^360 and 2^360, and 0 or at least 2^-260 in magnitude."
        )));
    }
    Ok(())
}

/// The longest period that can hold data: the longest retention.
const MAX_PERIOD_SECONDS: i64 = 455 * 86_400;

/// A standard period (1, 5, 10, 30 or a multiple of 60 seconds).
fn check_period(period: i64, parameter: &str) -> Result<()> {
    if period > MAX_PERIOD_SECONDS {
        return Err(invalid(format!(
            "The parameter {parameter} must be at most {MAX_PERIOD_SECONDS} seconds."
        )));
    }
    if period <= 0 || !(matches!(period, 1 | 5 | 10 | 30) || period % 60 == 0) {
        return Err(invalid(format!(
            "The parameter {parameter} must be 1, 5, 10, 30 or a multiple of 60 (got {period})."
        )));
    }
    Ok(())
}

/// Whether data that starts `age_ms` ago is kept at a granularity that `period_ms` divides
/// into: AWS answers nothing otherwise (e.g. a 10-second period over yesterday).
fn period_fits_tier(age_ms: i64, period_ms: i64) -> bool {
    if age_ms <= RAW_RETENTION_MS {
        return true;
    }
    ROLLUP_TIERS
        .iter()
        .find(|(_, retention)| age_ms <= *retention)
        .is_some_and(|(width, _)| period_ms % width == 0)
}

/// The start of the first period: rounded down as AWS does (to the period below a minute,
/// to the minute within 15 days, then 5 minutes, then the hour).
fn aligned_start(start_ms: i64, period_ms: i64, now_ms: i64) -> i64 {
    let age = now_ms - start_ms;
    let unit = if period_ms < 60_000 {
        period_ms
    } else {
        ROLLUP_TIERS
            .iter()
            .find(|(_, retention)| age <= *retention)
            .map_or(3_600_000, |(width, _)| *width)
    };
    start_ms.div_euclid(unit) * unit
}

fn parse_statistic(text: &str, parameter: &str) -> Result<Statistic> {
    Statistic::parse(text).ok_or_else(|| {
        invalid(format!(
            "The value {text} for parameter {parameter} is not supported: nimbus serves \
             SampleCount, Average, Sum, Minimum, Maximum and percentiles pNN.NN."
        ))
    })
}

/// One metric's summaries, by period start.
type Series = BTreeMap<i64, (String, Summary)>;

impl Monitoring {
    pub fn put_metric_data(&self, input: PutMetricDataInput) -> Result<Value> {
        if input.namespace.starts_with("AWS/") {
            return Err(invalid(format!(
                "The value {} for parameter Namespace is invalid: the AWS/ namespaces are \
                 reserved for metrics AWS (nimbus) measures itself.",
                input.namespace
            )));
        }
        let now = self.now_ms();
        let mut points = Vec::new();
        for (index, datum) in input.metric_data.into_iter().enumerate() {
            let path = format!("MetricData.member.{}", index + 1);
            check_dimensions(&datum.dimensions, &format!("{path}.Dimensions"))?;
            let timestamp_ms = match &datum.timestamp {
                Some(text) => millis_of(text, &format!("{path}.Timestamp"))?,
                None => now,
            };
            if timestamp_ms < now - MAX_PAST_MS || timestamp_ms > now + MAX_FUTURE_MS {
                return Err(invalid(format!(
                    "The parameter {path}.Timestamp must specify a time no more than two weeks \
                     in the past and no more than two hours in the future."
                )));
            }
            let storage_resolution = match datum.storage_resolution {
                None | Some(60) => 60,
                Some(1) => 1,
                Some(other) => {
                    return Err(invalid(format!(
                        "The value {other} for parameter {path}.StorageResolution is invalid: \
                         it must be 1 or 60."
                    )))
                }
            };
            let summaries = datum_summaries(&datum, &path)?;
            let key = MetricKey::new(
                &input.namespace,
                &datum.metric_name,
                dimension_pairs(&datum.dimensions),
            );
            let unit = datum.unit.clone().unwrap_or_else(|| "None".to_owned());
            points.extend(summaries.into_iter().map(|summary| Point {
                key: key.clone(),
                unit: unit.clone(),
                timestamp_ms,
                storage_resolution,
                summary,
            }));
        }
        self.store.put(&points, now)?;
        Ok(json!({}))
    }

    /// The datapoints of `key` in `[start, end)` summarised per period, keyed by period start.
    pub(crate) fn series(
        &self,
        key: &MetricKey,
        unit: Option<&str>,
        start_ms: i64,
        end_ms: i64,
        period_ms: i64,
    ) -> Result<Series> {
        let now = self.now_ms();
        let mut series = Series::new();
        if !period_fits_tier(now - start_ms, period_ms) {
            return Ok(series);
        }
        let first = aligned_start(start_ms, period_ms, now);
        for (at, row_unit, summary) in self.store.read(key, first, end_ms, period_ms, now)? {
            if unit.is_some_and(|unit| unit != row_unit) {
                continue;
            }
            let period_start = first + (at - first).div_euclid(period_ms) * period_ms;
            series
                .entry(period_start)
                .and_modify(|(_, existing)| existing.merge(&summary))
                .or_insert((row_unit, summary));
        }
        Ok(series)
    }

    pub fn get_metric_statistics(&self, input: GetMetricStatisticsInput) -> Result<Value> {
        check_dimensions(&input.dimensions, "Dimensions")?;
        let (start, end) = time_range(&input.start_time, &input.end_time)?;
        check_period(input.period, "Period")?;
        let period_ms = input.period * 1000;
        let requested = (end - start + period_ms - 1) / period_ms;
        if requested > MAX_STATISTICS_DATAPOINTS {
            return Err(MonitoringError::InvalidParameterCombination(format!(
                "You have requested up to {requested} datapoints, which exceeds the limit of \
                 {MAX_STATISTICS_DATAPOINTS}. You may reduce the datapoints requested by \
                 increasing Period, or decreasing the time range."
            )));
        }
        let simple = input
            .statistics
            .iter()
            .map(|s| match Statistic::parse(s) {
                Some(Statistic::Percentile(_)) | None => Err(invalid(format!(
                    "The value {s} for parameter Statistics is not one of SampleCount, \
                     Average, Sum, Minimum, Maximum."
                ))),
                Some(statistic) => Ok((s, statistic)),
            })
            .collect::<Result<Vec<_>>>()?;
        let extended = input
            .extended_statistics
            .iter()
            .map(|s| match Statistic::parse(s) {
                Some(statistic @ Statistic::Percentile(_)) => Ok((s, statistic)),
                _ => Err(invalid(format!(
                    "The value {s} for parameter ExtendedStatistics is not a percentile pNN.NN."
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        match (simple.is_empty(), extended.is_empty()) {
            (true, true) => {
                return Err(MonitoringError::MissingParameter(
                    "The parameter Statistics or ExtendedStatistics must be specified.".into(),
                ))
            }
            (false, false) => {
                return Err(MonitoringError::InvalidParameterCombination(
                    "The parameters Statistics and ExtendedStatistics are mutually exclusive."
                        .into(),
                ))
            }
            _ => {}
        }
        let key = MetricKey::new(
            &input.namespace,
            &input.metric_name,
            dimension_pairs(&input.dimensions),
        );
        let series = self.series(&key, input.unit.as_deref(), start, end, period_ms)?;
        let datapoints: Vec<Value> = series
            .iter()
            .map(|(at, (unit, summary))| {
                let mut datapoint = json!({
                    "Timestamp": nimbus_core::iso8601_millis(*at),
                    "Unit": unit,
                });
                for (name, statistic) in &simple {
                    if let Some(value) = summary.statistic(*statistic) {
                        datapoint[name.as_str()] = json!(value);
                    }
                }
                if !extended.is_empty() {
                    let values: serde_json::Map<String, Value> = extended
                        .iter()
                        .filter_map(|(name, statistic)| {
                            Some(((*name).clone(), json!(summary.statistic(*statistic)?)))
                        })
                        .collect();
                    datapoint["ExtendedStatistics"] = Value::Object(values);
                }
                datapoint
            })
            .collect();
        Ok(json!({ "Label": input.metric_name, "Datapoints": datapoints }))
    }

    pub fn get_metric_data(&self, input: GetMetricDataInput) -> Result<Value> {
        let (start, end) = time_range(&input.start_time, &input.end_time)?;
        let descending = match input.scan_by.as_deref() {
            None | Some("TimestampDescending") => true,
            Some("TimestampAscending") => false,
            Some(other) => {
                return Err(invalid(format!(
                    "The value {other} for parameter ScanBy is invalid."
                )))
            }
        };
        let limit = match input.max_datapoints {
            None => DEFAULT_MAX_DATAPOINTS,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                return Err(invalid(format!(
                    "The value {n} for parameter MaxDatapoints must be positive."
                )))
            }
        };
        let mut offset = read_token(input.next_token.as_deref())?;
        let mut ids = HashSet::new();
        let mut results = Vec::new();
        let mut remaining = limit;
        let mut more = false;
        for (index, query) in input.metric_data_queries.iter().enumerate() {
            let path = format!("MetricDataQueries.member.{}", index + 1);
            let (key, stat, unit, period_ms) = self.metric_query(query, &path)?;
            if !ids.insert(query.id.as_str()) {
                return Err(MonitoringError::Validation(format!(
                    "The value {} for parameter {path}.Id is used by more than one query.",
                    query.id
                )));
            }
            if !query.return_data.unwrap_or(true) {
                continue;
            }
            let series = self.series(&key, unit.as_deref(), start, end, period_ms)?;
            let mut points: Vec<(i64, f64)> = series
                .iter()
                .filter_map(|(at, (_, summary))| Some((*at, summary.statistic(stat)?)))
                .collect();
            if descending {
                points.reverse();
            }
            let skipped = offset.min(points.len());
            offset -= skipped;
            let page: Vec<(i64, f64)> = points[skipped..].iter().take(remaining).copied().collect();
            remaining -= page.len();
            let partial = skipped + page.len() < points.len();
            more |= partial;
            results.push(json!({
                "Id": query.id,
                "Label": query.label.clone().unwrap_or_else(|| key.name.clone()),
                "Timestamps": page.iter().map(|(at, _)| nimbus_core::iso8601_millis(*at)).collect::<Vec<_>>(),
                "Values": page.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
                "StatusCode": if partial { "PartialData" } else { "Complete" },
            }));
        }
        let mut output = json!({ "MetricDataResults": results, "Messages": [] });
        if more {
            let first = read_token(input.next_token.as_deref())?;
            output["NextToken"] = json!(next_token(first.saturating_add(limit - remaining)));
        }
        Ok(output)
    }

    /// What one query of GetMetricData asks for: metric, statistic, unit and period.
    fn metric_query(
        &self,
        query: &MetricDataQuery,
        path: &str,
    ) -> Result<(MetricKey, Statistic, Option<String>, i64)> {
        let id_ok = query.id.starts_with(|c: char| c.is_ascii_lowercase())
            && query
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !id_ok {
            return Err(MonitoringError::Validation(format!(
                "The value {} for parameter {path}.Id is invalid: it must start with a \
                 lowercase letter and hold only letters, digits and underscores.",
                query.id
            )));
        }
        if let Some(expression) = &query.expression {
            return Err(invalid(format!(
                "The parameter {path}.Expression is not supported: nimbus does not evaluate \
                 metric math or Metrics Insights queries ({expression}). Use MetricStat."
            )));
        }
        if query.period.is_some() {
            return Err(MonitoringError::InvalidParameterCombination(format!(
                "The parameter {path}.Period belongs to expressions; give the period in \
                 {path}.MetricStat.Period."
            )));
        }
        if let Some(account) = query.account_id.as_ref().filter(|a| **a != self.account_id) {
            return Err(invalid(format!(
                "The value {account} for parameter {path}.AccountId is not this account: \
                 nimbus has no cross-account observability."
            )));
        }
        let Some(stat) = &query.metric_stat else {
            return Err(MonitoringError::Validation(format!(
                "Exactly one of {path}.MetricStat and {path}.Expression must be specified."
            )));
        };
        let metric = &stat.metric;
        let (Some(namespace), Some(name)) = (&metric.namespace, &metric.metric_name) else {
            return Err(MonitoringError::MissingParameter(format!(
                "The parameters {path}.MetricStat.Metric.Namespace and MetricName are required."
            )));
        };
        check_dimensions(
            &metric.dimensions,
            &format!("{path}.MetricStat.Metric.Dimensions"),
        )?;
        check_period(stat.period, &format!("{path}.MetricStat.Period"))?;
        let statistic = parse_statistic(&stat.stat, &format!("{path}.MetricStat.Stat"))?;
        let key = MetricKey::new(namespace, name, dimension_pairs(&metric.dimensions));
        Ok((key, statistic, stat.unit.clone(), stat.period * 1000))
    }

    pub fn list_metrics(&self, input: ListMetricsInput) -> Result<Value> {
        if input.include_linked_accounts == Some(true) {
            return Err(invalid(
                "The parameter IncludeLinkedAccounts is not supported: nimbus has no \
                 cross-account observability."
                    .into(),
            ));
        }
        let active_since = match input.recently_active.as_deref() {
            None => None,
            Some("PT3H") => Some(self.now_ms() - 3 * 3_600_000),
            Some(other) => {
                return Err(invalid(format!(
                    "The value {other} for parameter RecentlyActive is invalid: it must be PT3H."
                )))
            }
        };
        let offset = read_token(input.next_token.as_deref())?;
        let matching: Vec<_> = self
            .store
            .metrics(input.namespace.as_deref())?
            .into_iter()
            .filter(|metric| {
                input
                    .metric_name
                    .as_ref()
                    .is_none_or(|n| *n == metric.key.name)
                    && active_since.is_none_or(|since| metric.last_seen_ms >= since)
                    && input.dimensions.iter().all(|filter| {
                        metric.key.dimension(&filter.name).is_some_and(|value| {
                            filter.value.as_ref().is_none_or(|wanted| wanted == value)
                        })
                    })
            })
            .collect();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(LIST_PAGE)
            .map(|metric| {
                json!({
                    "Namespace": metric.key.namespace,
                    "MetricName": metric.key.name,
                    "Dimensions": dimensions_json(&metric.key.dimensions),
                })
            })
            .collect();
        let mut output = json!({ "Metrics": page });
        if offset.saturating_add(LIST_PAGE) < matching.len() {
            output["NextToken"] = json!(next_token(offset + LIST_PAGE));
        }
        Ok(output)
    }
}

/// The summaries a datum publishes: a value, values with counts, or a statistic set.
fn datum_summaries(datum: &MetricDatum, path: &str) -> Result<Vec<Summary>> {
    let combination = |message: String| MonitoringError::InvalidParameterCombination(message);
    match (&datum.value, &datum.statistic_values, &datum.values) {
        (Some(value), None, None) => {
            if datum.counts.is_some() {
                return Err(combination(format!(
                    "The parameter {path}.Counts can only be given with {path}.Values."
                )));
            }
            check_value(*value, &format!("{path}.Value"))?;
            Ok(vec![Summary::of_value(*value, 1.0)])
        }
        (None, Some(set), None) => {
            if datum.counts.is_some() {
                return Err(combination(format!(
                    "The parameter {path}.Counts can only be given with {path}.Values."
                )));
            }
            for (value, name) in [
                (set.sample_count, "SampleCount"),
                (set.sum, "Sum"),
                (set.minimum, "Minimum"),
                (set.maximum, "Maximum"),
            ] {
                check_value(value, &format!("{path}.StatisticValues.{name}"))?;
            }
            if set.sample_count <= 0.0 || set.minimum > set.maximum {
                return Err(invalid(format!(
                    "The parameter {path}.StatisticValues is invalid: SampleCount must be \
                     positive and Minimum at most Maximum."
                )));
            }
            Ok(vec![Summary::of_set(
                set.sample_count,
                set.sum,
                set.minimum,
                set.maximum,
            )])
        }
        (None, None, Some(values)) => {
            if values.len() > MAX_VALUES_PER_DATUM {
                return Err(invalid(format!(
                    "The collection {path}.Values must not have a size greater than \
                     {MAX_VALUES_PER_DATUM}."
                )));
            }
            let counts = match &datum.counts {
                Some(counts) if counts.len() != values.len() => {
                    return Err(combination(format!(
                        "The parameters {path}.Values and {path}.Counts must be of the same size."
                    )))
                }
                Some(counts) => counts.clone(),
                None => vec![1.0; values.len()],
            };
            values
                .iter()
                .zip(counts)
                .enumerate()
                .map(|(i, (value, count))| {
                    check_value(*value, &format!("{path}.Values.member.{}", i + 1))?;
                    if !(count.is_finite() && count > 0.0) {
                        return Err(invalid(format!(
                            "The value {count} for parameter {path}.Counts.member.{} must be \
                             positive.",
                            i + 1
                        )));
                    }
                    Ok(Summary::of_value(*value, count))
                })
                .collect()
        }
        (None, None, None) => Err(MonitoringError::MissingParameter(format!(
            "One of {path}.Value, {path}.Values or {path}.StatisticValues must be specified."
        ))),
        _ => Err(combination(format!(
            "Only one of {path}.Value, {path}.Values and {path}.StatisticValues may be given."
        ))),
    }
}

fn time_range(start: &str, end: &str) -> Result<(i64, i64)> {
    let start = millis_of(start, "StartTime")?;
    let end = millis_of(end, "EndTime")?;
    if start >= end {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.".into(),
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::{harness, input, T0};

    fn iso(ms: i64) -> String {
        nimbus_core::iso8601_millis(ms)
    }

    #[test]
    fn put_then_statistics_and_data_round_trip() {
        let h = harness();
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        h.monitoring
            .put_metric_data(input(json!({
                "Namespace": "App",
                "MetricData": [
                    {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}],
                     "Timestamp": iso(T0 - 30_000), "Values": values, "Unit": "Milliseconds"},
                    {"MetricName": "Latency", "Dimensions": [{"Name": "Host", "Value": "a"}],
                     "Timestamp": iso(T0 - 90_000),
                     "StatisticValues": {"SampleCount": 2.0, "Sum": 10.0, "Minimum": 4.0, "Maximum": 6.0},
                     "Unit": "Milliseconds"},
                ],
            })))
            .expect("put");
        let statistics = h
            .monitoring
            .get_metric_statistics(input(json!({
                "Namespace": "App", "MetricName": "Latency",
                "Dimensions": [{"Name": "Host", "Value": "a"}],
                "StartTime": iso(T0 - 120_000), "EndTime": iso(T0),
                "Period": 60, "Statistics": ["Sum", "Average", "SampleCount", "Minimum", "Maximum"],
            })))
            .expect("statistics");
        let datapoints = statistics["Datapoints"].as_array().expect("datapoints");
        assert_eq!(datapoints.len(), 2);
        let recent = &datapoints[1];
        assert_eq!(recent["Sum"], json!(5050.0));
        assert_eq!(recent["Average"], json!(50.5));
        assert_eq!(recent["SampleCount"], json!(100.0));
        assert_eq!(recent["Minimum"], json!(1.0));
        assert_eq!(recent["Maximum"], json!(100.0));
        assert_eq!(recent["Unit"], json!("Milliseconds"));
        assert_eq!(datapoints[0]["Average"], json!(5.0));
        let p99 = h
            .monitoring
            .get_metric_statistics(input(json!({
                "Namespace": "App", "MetricName": "Latency",
                "Dimensions": [{"Name": "Host", "Value": "a"}],
                "StartTime": iso(T0 - 60_000), "EndTime": iso(T0),
                "Period": 60, "ExtendedStatistics": ["p99"],
            })))
            .expect("p99");
        assert_eq!(
            p99["Datapoints"][0]["ExtendedStatistics"]["p99"],
            json!(99.0)
        );
        let data = h
            .monitoring
            .get_metric_data(input(json!({
                "StartTime": iso(T0 - 120_000), "EndTime": iso(T0),
                "MetricDataQueries": [{"Id": "m1", "MetricStat": {
                    "Metric": {"Namespace": "App", "MetricName": "Latency",
                               "Dimensions": [{"Name": "Host", "Value": "a"}]},
                    "Period": 60, "Stat": "Sum"}}],
            })))
            .expect("data");
        let result = &data["MetricDataResults"][0];
        assert_eq!(result["Values"], json!([5050.0, 10.0]));
        assert_eq!(result["Timestamps"][0], json!(iso(T0 - 60_000)));
        assert_eq!(result["StatusCode"], json!("Complete"));
    }

    #[test]
    fn get_metric_data_pages_by_max_datapoints() {
        let h = harness();
        let data: Vec<_> = (0..5)
            .map(|i| json!({"MetricName": "Hits", "Value": i as f64, "Timestamp": iso(T0 - 60_000 * (i + 1))}))
            .collect();
        h.monitoring
            .put_metric_data(input(json!({"Namespace": "App", "MetricData": data})))
            .expect("put");
        let query = |token: Option<String>| {
            let mut request = json!({
                "StartTime": iso(T0 - 600_000), "EndTime": iso(T0), "MaxDatapoints": 3,
                "ScanBy": "TimestampAscending",
                "MetricDataQueries": [{"Id": "hits", "MetricStat": {
                    "Metric": {"Namespace": "App", "MetricName": "Hits"}, "Period": 60, "Stat": "Maximum"}}],
            });
            if let Some(token) = token {
                request["NextToken"] = json!(token);
            }
            h.monitoring.get_metric_data(input(request)).expect("data")
        };
        let first = query(None);
        assert_eq!(
            first["MetricDataResults"][0]["Values"],
            json!([4.0, 3.0, 2.0])
        );
        assert_eq!(
            first["MetricDataResults"][0]["StatusCode"],
            json!("PartialData")
        );
        let token = first["NextToken"].as_str().expect("token").to_owned();
        let second = query(Some(token));
        assert_eq!(second["MetricDataResults"][0]["Values"], json!([1.0, 0.0]));
        assert!(second.get("NextToken").is_none());
    }

    #[test]
    fn refuses_what_cloudwatch_refuses() {
        let h = harness();
        let put = |datum: serde_json::Value, namespace: &str| {
            h.monitoring
                .put_metric_data(input(
                    json!({"Namespace": namespace, "MetricData": [datum]}),
                ))
                .map_err(|e| e.to_string())
        };
        assert!(put(json!({"MetricName": "m", "Value": 1.0}), "AWS/EC2")
            .expect_err("reserved")
            .contains("reserved"));
        let many: Vec<f64> = vec![1.0; 1001];
        assert!(put(json!({"MetricName": "m", "Values": many}), "App").is_err());
        let dims: Vec<_> = (0..31)
            .map(|i| json!({"Name": format!("d{i}"), "Value": "v"}))
            .collect();
        assert!(put(
            json!({"MetricName": "m", "Value": 1.0, "Dimensions": dims}),
            "App"
        )
        .is_err());
        assert!(put(json!({"MetricName": "m", "Value": 1e200}), "App").is_err());
        assert!(put(
            json!({"MetricName": "m", "Value": 1.0, "Values": [1.0]}),
            "App"
        )
        .is_err());
        assert!(put(
            json!({"MetricName": "m", "Values": [1.0, 2.0], "Counts": [1.0]}),
            "App"
        )
        .is_err());
        assert!(put(
            json!({"MetricName": "m", "Value": 1.0, "Timestamp": iso(T0 - 15 * 86_400_000)}),
            "App"
        )
        .is_err());
        let statistics = |period: i64, hours: i64| {
            h.monitoring.get_metric_statistics(input(json!({
                "Namespace": "App", "MetricName": "m", "StartTime": iso(T0 - hours * 3_600_000),
                "EndTime": iso(T0), "Period": period, "Statistics": ["Sum"],
            })))
        };
        assert!(statistics(45, 1).is_err());
        assert!(statistics(9_223_372_036_854_775_800, 1).is_err());
        assert!(statistics(60, 25)
            .expect_err("1500 datapoints")
            .to_string()
            .contains("1440"));
        assert!(statistics(60, 24).is_ok());
        let expression = h.monitoring.get_metric_data(input(json!({
            "StartTime": iso(T0 - 60_000), "EndTime": iso(T0),
            "MetricDataQueries": [{"Id": "e1", "Expression": "SUM(METRICS())"}],
        })));
        assert!(expression
            .expect_err("math")
            .to_string()
            .contains("Expression"));
    }

    #[test]
    fn lists_metrics_with_filters_and_recent_activity() {
        let h = harness();
        h.monitoring
            .put_metric_data(input(json!({"Namespace": "App", "MetricData": [
                {"MetricName": "A", "Value": 1.0, "Dimensions": [{"Name": "Host", "Value": "x"}]},
                {"MetricName": "B", "Value": 1.0, "Dimensions": [{"Name": "Host", "Value": "y"}]},
            ]})))
            .expect("put");
        let listed = |filter: serde_json::Value| {
            let names: Vec<String> = h.monitoring.list_metrics(input(filter)).expect("list")
                ["Metrics"]
                .as_array()
                .expect("metrics")
                .iter()
                .map(|m| m["MetricName"].as_str().expect("name").to_owned())
                .collect();
            names
        };
        assert_eq!(listed(json!({"Namespace": "App"})), ["A", "B"]);
        assert_eq!(
            listed(json!({"Dimensions": [{"Name": "Host", "Value": "y"}]})),
            ["B"]
        );
        assert_eq!(listed(json!({"RecentlyActive": "PT3H"})), ["A", "B"]);
        h.clock.advance(4 * 3_600_000);
        assert!(listed(json!({"RecentlyActive": "PT3H"})).is_empty());
        assert_eq!(listed(json!({"MetricName": "A"})), ["A"]);
        let beyond = crate::next_token(usize::MAX);
        assert!(listed(json!({"NextToken": beyond})).is_empty());
        let forged = h
            .monitoring
            .list_metrics(input(json!({"NextToken": "forged"})));
        assert!(matches!(
            forged,
            Err(crate::MonitoringError::InvalidNextToken(_))
        ));
    }
}
