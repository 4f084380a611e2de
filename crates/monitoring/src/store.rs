//! CloudWatch's own SQLite file, `<data_dir>/metrics.db`: metrics, their datapoints in
//! retention tiers, alarms and alarm history.
//!
//! Invariants:
//! - A call that writes commits one transaction before it returns: what PutMetricData
//!   acknowledged survives `kill -9` (WAL; `synchronous=NORMAL` loses nothing on a process
//!   crash, only on a power loss).
//! - Every datapoint is written to the raw tier (each value, kept 3 hours) and, in the same
//!   transaction, folded into the rolled-up tiers (1 minute kept 15 days, 5 minutes kept 63
//!   days, 1 hour kept 455 days). [`Store::compact`] only deletes what aged out of a tier.
//! - A query reads one tier: the finest whose retention still covers its start.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::functions::FunctionFlags;
use rusqlite::{params, Connection, OptionalExtension};

use crate::stats::{Distribution, Histogram, Summary};
use crate::{MetricKey, MonitoringError, Result};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
const DAY_MS: i64 = 24 * HOUR_MS;

/// How long raw datapoints (every value, any resolution) are kept.
pub const RAW_RETENTION_MS: i64 = 3 * HOUR_MS;
/// The rolled-up tiers: bucket width and retention, finest first.
pub const ROLLUP_TIERS: [(i64, i64); 3] = [
    (MINUTE_MS, 15 * DAY_MS),
    (5 * MINUTE_MS, 63 * DAY_MS),
    (HOUR_MS, 455 * DAY_MS),
];
/// How long alarm history items are kept (as in AWS).
const HISTORY_RETENTION_MS: i64 = 30 * DAY_MS;

/// One datapoint to store.
#[derive(Clone, Debug)]
pub struct Point {
    pub key: MetricKey,
    pub unit: String,
    pub timestamp_ms: i64,
    pub storage_resolution: u32,
    pub summary: Summary,
}

/// A metric as ListMetrics shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredMetric {
    pub key: MetricKey,
    pub storage_resolution: u32,
    pub last_seen_ms: i64,
}

/// One alarm history item.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryItem {
    pub alarm_name: String,
    pub timestamp_ms: i64,
    /// `ConfigurationUpdate`, `StateUpdate` or `Action`.
    pub item_type: String,
    pub summary: String,
    pub data: String,
}

/// What DescribeAlarmHistory asks for.
#[derive(Clone, Debug, Default)]
pub struct HistoryQuery {
    pub alarm_name: Option<String>,
    pub item_type: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub ascending: bool,
    pub offset: usize,
    pub limit: usize,
}

pub struct Store {
    connection: Mutex<Connection>,
    /// Metrics known to be stored: ID, and the last-seen time and resolution last written.
    /// Spares the metrics upsert for a metric written within the last minute (ListMetrics'
    /// `RecentlyActive` looks back 3 hours, so a minute of lag is invisible).
    known: Mutex<HashMap<MetricKey, KnownMetric>>,
}

#[derive(Clone, Copy)]
struct KnownMetric {
    id: i64,
    last_seen_ms: i64,
    storage_resolution: u32,
}

/// How stale a metric's stored last-seen time may get before a write refreshes it.
const LAST_SEEN_GRANULARITY_MS: i64 = MINUTE_MS;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    dimensions TEXT NOT NULL,
    storage_resolution INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    UNIQUE (namespace, name, dimensions)
);
CREATE TABLE IF NOT EXISTS raw_points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    metric_id INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    unit TEXT NOT NULL,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    value REAL
);
CREATE INDEX IF NOT EXISTS raw_points_by_time ON raw_points (metric_id, ts_ms);
CREATE TABLE IF NOT EXISTS rollups (
    metric_id INTEGER NOT NULL,
    width_ms INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    unit TEXT NOT NULL,
    count REAL NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    histogram BLOB,
    PRIMARY KEY (metric_id, width_ms, bucket_ms, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rolled_up_to (
    only INTEGER PRIMARY KEY CHECK (only = 0),
    raw_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    name TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alarm_history (
    id INTEGER PRIMARY KEY,
    alarm_name TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    item_type TEXT NOT NULL,
    summary TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_history_by_time ON alarm_history (ts_ms);
";

fn dimensions_text(dimensions: &[(String, String)]) -> String {
    serde_json::to_string(dimensions).unwrap_or_default()
}

fn storage_error(error: rusqlite::Error) -> MonitoringError {
    MonitoringError::Storage(error.to_string())
}

impl From<rusqlite::Error> for MonitoringError {
    fn from(error: rusqlite::Error) -> Self {
        storage_error(error)
    }
}

/// A stored summary row: what the raw tier or a rolled-up tier keeps.
fn summary_from_row(
    count: f64,
    sum: f64,
    min: f64,
    max: f64,
    distribution: Distribution,
) -> Summary {
    Summary {
        count,
        sum,
        min,
        max,
        distribution,
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.execute_batch(SCHEMA)?;
        connection.create_scalar_function(
            "merge_histograms",
            2,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |context| {
                let mine: Option<Vec<u8>> = context.get(0)?;
                let theirs: Option<Vec<u8>> = context.get(1)?;
                Ok(merge_histograms(mine.as_deref(), theirs.as_deref()))
            },
        )?;
        Ok(Store {
            connection: Mutex::new(connection),
            known: Mutex::new(HashMap::new()),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (it rolls back): go on.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores `points` in one transaction.
    pub fn put(&self, points: &[Point], now_ms: i64) -> Result<()> {
        let mut connection = self.connection();
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let transaction = connection.transaction()?;
        let mut written: HashMap<&MetricKey, KnownMetric> = HashMap::new();
        {
            let mut upsert_metric = transaction.prepare_cached(
                "INSERT INTO metrics (namespace, name, dimensions, storage_resolution, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (namespace, name, dimensions) DO UPDATE SET
                     last_seen_ms = max(last_seen_ms, excluded.last_seen_ms),
                     storage_resolution = min(storage_resolution, excluded.storage_resolution)
                 RETURNING id, storage_resolution",
            )?;
            let mut insert_raw = transaction.prepare_cached(
                "INSERT INTO raw_points (metric_id, ts_ms, unit, count, sum, min, max, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for point in points {
                let fresh = |metric: &KnownMetric| {
                    metric.last_seen_ms + LAST_SEEN_GRANULARITY_MS > now_ms
                        && metric.storage_resolution <= point.storage_resolution
                };
                let id = match written
                    .get(&point.key)
                    .or_else(|| known.get(&point.key))
                    .filter(|metric| fresh(metric))
                {
                    Some(metric) => metric.id,
                    None => {
                        let (id, storage_resolution) = upsert_metric.query_row(
                            params![
                                point.key.namespace,
                                point.key.name,
                                dimensions_text(&point.key.dimensions),
                                point.storage_resolution,
                                now_ms
                            ],
                            |row| Ok((row.get(0)?, row.get(1)?)),
                        )?;
                        let metric = KnownMetric {
                            id,
                            last_seen_ms: now_ms,
                            storage_resolution,
                        };
                        written.insert(&point.key, metric);
                        id
                    }
                };
                let summary = &point.summary;
                match &summary.distribution {
                    Distribution::Exact(values) => {
                        for (value, weight) in values {
                            insert_raw.execute(params![
                                id,
                                point.timestamp_ms,
                                point.unit,
                                weight,
                                value * weight,
                                value,
                                value,
                                value
                            ])?;
                        }
                    }
                    _ => {
                        insert_raw.execute(params![
                            id,
                            point.timestamp_ms,
                            point.unit,
                            summary.count,
                            summary.sum,
                            summary.min,
                            summary.max,
                            Option::<f64>::None
                        ])?;
                    }
                }
            }
        }
        transaction.commit()?;
        // Only what committed is known to be stored.
        for (key, metric) in written {
            known.insert(key.clone(), metric);
        }
        Ok(())
    }

    fn metric_id(connection: &Connection, key: &MetricKey) -> Result<Option<i64>> {
        Ok(connection
            .prepare_cached(
                "SELECT id FROM metrics WHERE namespace = ?1 AND name = ?2 AND dimensions = ?3",
            )?
            .query_row(
                params![key.namespace, key.name, dimensions_text(&key.dimensions)],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// The datapoints of `key` in `[start_ms, end_ms)`, each as (timestamp, unit, summary),
    /// for periods of `period_ms` starting at `start_ms`: raw rows when they still cover
    /// `start_ms` (exact percentiles), else the coarsest roll-up that covers it and whose
    /// buckets fit in the periods (fewest rows); none when no tier covers it.
    pub fn read(
        &self,
        key: &MetricKey,
        start_ms: i64,
        end_ms: i64,
        period_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<(i64, String, Summary)>> {
        let mut connection = self.connection();
        let Some(id) = Self::metric_id(&connection, key)? else {
            return Ok(Vec::new());
        };
        let age = now_ms - start_ms;
        if age <= RAW_RETENTION_MS {
            let mut statement = connection.prepare_cached(
                "SELECT ts_ms, unit, count, sum, min, max, value FROM raw_points
                 WHERE metric_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3",
            )?;
            let rows = statement.query_map(params![id, start_ms, end_ms], |row| {
                let value: Option<f64> = row.get(6)?;
                let count: f64 = row.get(2)?;
                let distribution = match value {
                    Some(value) => Distribution::Exact(vec![(value, count)]),
                    None => Distribution::Unknown,
                };
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    summary_from_row(count, row.get(3)?, row.get(4)?, row.get(5)?, distribution),
                ))
            })?;
            return Ok(rows.collect::<rusqlite::Result<_>>()?);
        }
        // What was written since the last roll-up counts too.
        roll_up_pending(&mut connection)?;
        let covering = ROLLUP_TIERS
            .iter()
            .filter(|(_, retention)| age <= *retention);
        let fitting = covering
            .clone()
            .rfind(|(width, _)| period_ms % width == 0 && start_ms % width == 0);
        let Some((width, _)) = fitting.or(covering.clone().next()) else {
            return Ok(Vec::new());
        };
        let mut statement = connection.prepare_cached(
            "SELECT bucket_ms, unit, count, sum, min, max, histogram FROM rollups
             WHERE metric_id = ?1 AND width_ms = ?2 AND bucket_ms >= ?3 AND bucket_ms < ?4",
        )?;
        let rows = statement.query_map(params![id, width, start_ms, end_ms], |row| {
            let summary = rollup_summary_at(row, 2)?;
            Ok((row.get(0)?, row.get(1)?, summary))
        })?;
        let mut points = Vec::new();
        for row in rows {
            let (at, unit, summary): (i64, String, Result<Summary>) = row?;
            points.push((at, unit, summary?));
        }
        Ok(points)
    }

    /// Every stored metric in `namespace` (all when `None`), ordered for stable pagination.
    pub fn metrics(&self, namespace: Option<&str>) -> Result<Vec<StoredMetric>> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT namespace, name, dimensions, storage_resolution, last_seen_ms FROM metrics
             WHERE ?1 IS NULL OR namespace = ?1 ORDER BY namespace, name, dimensions",
        )?;
        let rows = statement.query_map(params![namespace], |row| {
            let dimensions: String = row.get(2)?;
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                dimensions,
                row.get::<_, u32>(3)?,
                row.get::<_, i64>(4)?,
            ))
        })?;
        let mut metrics = Vec::new();
        for row in rows {
            let (namespace, name, dimensions, storage_resolution, last_seen_ms) = row?;
            let dimensions = serde_json::from_str(&dimensions)
                .map_err(|e| MonitoringError::Storage(format!("metric dimensions: {e}")))?;
            metrics.push(StoredMetric {
                key: MetricKey {
                    namespace,
                    name,
                    dimensions,
                },
                storage_resolution,
                last_seen_ms,
            });
        }
        Ok(metrics)
    }

    /// The storage resolution of a known metric.
    pub fn storage_resolution(&self, key: &MetricKey) -> Result<Option<u32>> {
        let connection = self.connection();
        let mut statement = connection.prepare_cached(
            "SELECT storage_resolution FROM metrics
             WHERE namespace = ?1 AND name = ?2 AND dimensions = ?3",
        )?;
        let resolution = statement
            .query_row(
                params![key.namespace, key.name, dimensions_text(&key.dimensions)],
                |row| row.get(0),
            )
            .optional()?;
        Ok(resolution)
    }

    /// Folds the raw rows written since the last roll-up into the rolled-up tiers.
    pub fn roll_up(&self) -> Result<()> {
        roll_up_pending(&mut self.connection())
    }

    /// Deletes what aged out of its tier (after rolling it up), and alarm history older
    /// than 30 days.
    pub fn compact(&self, now_ms: i64) -> Result<()> {
        let mut connection = self.connection();
        roll_up_pending(&mut connection)?;
        let transaction = connection.transaction()?;
        transaction.execute(
            "DELETE FROM raw_points WHERE ts_ms < ?1",
            params![now_ms - RAW_RETENTION_MS],
        )?;
        for (width, retention) in ROLLUP_TIERS {
            transaction.execute(
                "DELETE FROM rollups WHERE width_ms = ?1 AND bucket_ms < ?2",
                params![width, now_ms - retention],
            )?;
        }
        transaction.execute(
            "DELETE FROM alarm_history WHERE ts_ms < ?1",
            params![now_ms - HISTORY_RETENTION_MS],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Every alarm document, by name.
    pub fn alarms(&self) -> Result<Vec<String>> {
        let connection = self.connection();
        let mut statement =
            connection.prepare_cached("SELECT document FROM alarms ORDER BY name")?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Writes alarm documents, deletes alarms and appends history items, in one transaction.
    pub fn write_alarms(
        &self,
        upserts: &[(&str, String)],
        deletes: &[&str],
        history: &[HistoryItem],
    ) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        for (name, document) in upserts {
            transaction.execute(
                "INSERT OR REPLACE INTO alarms (name, document) VALUES (?1, ?2)",
                params![name, document],
            )?;
        }
        for name in deletes {
            transaction.execute("DELETE FROM alarms WHERE name = ?1", params![name])?;
        }
        for item in history {
            transaction.execute(
                "INSERT INTO alarm_history (alarm_name, ts_ms, item_type, summary, data)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    item.alarm_name,
                    item.timestamp_ms,
                    item.item_type,
                    item.summary,
                    item.data
                ],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// One page of alarm history, and whether more follows.
    pub fn history(&self, query: &HistoryQuery) -> Result<(Vec<HistoryItem>, bool)> {
        let connection = self.connection();
        let order = if query.ascending { "ASC" } else { "DESC" };
        let mut statement = connection.prepare_cached(&format!(
            "SELECT alarm_name, ts_ms, item_type, summary, data FROM alarm_history
             WHERE (?1 IS NULL OR alarm_name = ?1) AND (?2 IS NULL OR item_type = ?2)
               AND (?3 IS NULL OR ts_ms >= ?3) AND (?4 IS NULL OR ts_ms < ?4)
             ORDER BY ts_ms {order}, id {order} LIMIT ?5 OFFSET ?6"
        ))?;
        let rows = statement.query_map(
            params![
                query.alarm_name,
                query.item_type,
                query.start_ms,
                query.end_ms,
                (query.limit + 1) as i64,
                i64::try_from(query.offset).unwrap_or(i64::MAX)
            ],
            |row| {
                Ok(HistoryItem {
                    alarm_name: row.get(0)?,
                    timestamp_ms: row.get(1)?,
                    item_type: row.get(2)?,
                    summary: row.get(3)?,
                    data: row.get(4)?,
                })
            },
        )?;
        let mut items: Vec<HistoryItem> = rows.collect::<rusqlite::Result<_>>()?;
        let more = items.len() > query.limit;
        items.truncate(query.limit);
        Ok((items, more))
    }
}

/// Folds raw rows past the `rolled_up_to` mark into the 1-minute, 5-minute and hourly
/// roll-ups (one upsert per row; histograms merge through `merge_histograms`) and moves the
/// mark, in one transaction. Raw IDs only grow (AUTOINCREMENT), so no row is missed.
fn roll_up_pending(connection: &mut Connection) -> Result<()> {
    let transaction = connection.transaction()?;
    {
        let mark: i64 = transaction
            .query_row("SELECT raw_id FROM rolled_up_to", [], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        let mut pending = transaction.prepare_cached(
            "SELECT id, metric_id, ts_ms, unit, count, sum, min, max, value FROM raw_points
             WHERE id > ?1 ORDER BY id",
        )?;
        let mut rollups: HashMap<(i64, i64, i64, String), Summary> = HashMap::new();
        let mut last = mark;
        let mut rows = pending.query(params![mark])?;
        while let Some(row) = rows.next()? {
            last = row.get(0)?;
            let (id, at, unit): (i64, i64, String) = (row.get(1)?, row.get(2)?, row.get(3)?);
            let count: f64 = row.get(4)?;
            let value: Option<f64> = row.get(8)?;
            let summary = match value {
                Some(value) => Summary::of_value(value, count),
                None => Summary::of_set(count, row.get(5)?, row.get(6)?, row.get(7)?),
            }
            .rolled_up();
            for (width, _) in ROLLUP_TIERS {
                let bucket = at.div_euclid(width) * width;
                rollups
                    .entry((id, width, bucket, unit.clone()))
                    .and_modify(|existing| existing.merge(&summary))
                    .or_insert_with(|| summary.clone());
            }
        }
        if last == mark {
            return Ok(());
        }
        let mut upsert_rollup = transaction.prepare_cached(
            "INSERT INTO rollups
             (metric_id, width_ms, bucket_ms, unit, count, sum, min, max, histogram)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (metric_id, width_ms, bucket_ms, unit) DO UPDATE SET
                 count = rollups.count + excluded.count,
                 sum = rollups.sum + excluded.sum,
                 min = min(rollups.min, excluded.min),
                 max = max(rollups.max, excluded.max),
                 histogram = merge_histograms(rollups.histogram, excluded.histogram)",
        )?;
        for ((id, width, bucket, unit), summary) in rollups {
            let histogram = match &summary.distribution {
                Distribution::Approximate(histogram) => Some(histogram.to_bytes()),
                _ => None,
            };
            upsert_rollup.execute(params![
                id,
                width,
                bucket,
                unit,
                summary.count,
                summary.sum,
                summary.min,
                summary.max,
                histogram
            ])?;
        }
        transaction.execute(
            "INSERT OR REPLACE INTO rolled_up_to (only, raw_id) VALUES (0, ?1)",
            params![last],
        )?;
    }
    transaction.commit()?;
    Ok(())
}

/// Two stored histograms as one; none (an unknown distribution) when either is none or
/// unreadable.
fn merge_histograms(mine: Option<&[u8]>, theirs: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut merged = Histogram::from_bytes(mine?)?;
    merged.merge(&Histogram::from_bytes(theirs?)?);
    Some(merged.to_bytes())
}

/// A rolled-up row's summary from the columns count, sum, min, max, histogram at `first`.
fn rollup_summary_at(row: &rusqlite::Row, first: usize) -> rusqlite::Result<Result<Summary>> {
    let histogram: Option<Vec<u8>> = row.get(first + 4)?;
    let distribution = match histogram {
        Some(bytes) => match Histogram::from_bytes(&bytes) {
            Some(histogram) => Distribution::Approximate(histogram),
            None => {
                return Ok(Err(MonitoringError::Storage(
                    "A rolled-up histogram in metrics.db is damaged.".into(),
                )))
            }
        },
        None => Distribution::Unknown,
    };
    Ok(Ok(summary_from_row(
        row.get(first)?,
        row.get(first + 1)?,
        row.get(first + 2)?,
        row.get(first + 3)?,
        distribution,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Statistic;

    fn key(name: &str) -> MetricKey {
        MetricKey {
            namespace: "App".into(),
            name: name.into(),
            dimensions: vec![("Host".into(), "a".into())],
        }
    }

    fn point(name: &str, at: i64, value: f64) -> Point {
        Point {
            key: key(name),
            unit: "Count".into(),
            timestamp_ms: at,
            storage_resolution: 60,
            summary: Summary::of_value(value, 1.0),
        }
    }

    fn total(points: &[(i64, String, Summary)]) -> Summary {
        let mut all = points[0].2.clone();
        points[1..].iter().for_each(|(_, _, s)| all.merge(s));
        all
    }

    #[test]
    fn raw_and_rolled_up_tiers_agree_and_age_out() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("metrics.db")).expect("open");
        let now = 100 * DAY_MS;
        let points: Vec<Point> = (0..120)
            .map(|i| point("Latency", now - 2 * HOUR_MS + i * 30_000, i as f64))
            .collect();
        store.put(&points, now).expect("put");
        let raw = store
            .read(&key("Latency"), now - 2 * HOUR_MS, now, MINUTE_MS, now)
            .expect("raw");
        assert_eq!(raw.len(), 120);
        let raw = total(&raw);
        // Read later, the same data comes from the 1-minute tier.
        let later = now + 4 * HOUR_MS;
        let rolled = store
            .read(&key("Latency"), now - 2 * HOUR_MS, now, MINUTE_MS, later)
            .expect("rolled");
        assert_eq!(rolled.len(), 60);
        let rolled = total(&rolled);
        for statistic in [
            Statistic::SampleCount,
            Statistic::Sum,
            Statistic::Minimum,
            Statistic::Maximum,
        ] {
            assert_eq!(raw.statistic(statistic), rolled.statistic(statistic));
        }
        // Hour-long periods from an hour boundary read the hourly tier: one row.
        let hourly = store
            .read(&key("Latency"), now - 2 * HOUR_MS, now, HOUR_MS, later)
            .expect("hourly");
        assert_eq!(hourly.len(), 1);
        assert_eq!(hourly[0].2.count, 120.0);
        let p90 = rolled.percentile(90.0).expect("p90");
        assert!((p90 - 107.0).abs() <= 1.07, "{p90}");
        store.compact(later).expect("compact");
        let connection = store.connection();
        let raw_left: i64 = connection
            .query_row("SELECT count(*) FROM raw_points", [], |r| r.get(0))
            .expect("count");
        assert_eq!(raw_left, 0);
        drop(connection);
        // Beyond 455 days nothing is kept at all.
        let gone = now + 500 * DAY_MS;
        store.compact(gone).expect("compact");
        assert!(store
            .read(&key("Latency"), now - 2 * HOUR_MS, now, MINUTE_MS, gone)
            .expect("read")
            .is_empty());
    }

    #[test]
    fn separate_writes_to_one_bucket_merge_in_the_rollup() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("metrics.db")).expect("open");
        let now = 100 * DAY_MS;
        for value in 1..=100 {
            store
                .put(&[point("Merged", now, f64::from(value))], now)
                .expect("put");
        }
        let set = Point {
            summary: Summary::of_set(2.0, 10.0, 0.5, 9.5),
            ..point("Merged", now, 0.0)
        };
        let later = now + 4 * HOUR_MS;
        let before_set = total(
            &store
                .read(&key("Merged"), now, now + 1, MINUTE_MS, later)
                .expect("read"),
        );
        assert_eq!(before_set.statistic(Statistic::SampleCount), Some(100.0));
        let p50 = before_set.percentile(50.0).expect("p50");
        assert!((p50 - 50.0).abs() <= 0.5, "{p50}");
        store.put(&[set], now).expect("put set");
        let after_set = total(
            &store
                .read(&key("Merged"), now, now + 1, MINUTE_MS, later)
                .expect("read"),
        );
        assert_eq!(after_set.statistic(Statistic::Sum), Some(5060.0));
        assert_eq!(after_set.statistic(Statistic::Minimum), Some(0.5));
        assert_eq!(after_set.percentile(50.0), None);
    }

    #[test]
    fn survives_reopening_and_lists_metrics() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("metrics.db");
        let now = 10 * DAY_MS;
        {
            let store = Store::open(&path).expect("open");
            store
                .put(&[point("A", now, 1.0), point("B", now, 2.0)], now)
                .expect("put");
            store
                .write_alarms(
                    &[("alarm", "{}".into())],
                    &[],
                    &[HistoryItem {
                        alarm_name: "alarm".into(),
                        timestamp_ms: now,
                        item_type: "ConfigurationUpdate".into(),
                        summary: "Alarm \"alarm\" created".into(),
                        data: "{}".into(),
                    }],
                )
                .expect("alarm");
        }
        let store = Store::open(&path).expect("reopen");
        let metrics = store.metrics(Some("App")).expect("metrics");
        assert_eq!(
            metrics
                .iter()
                .map(|m| m.key.name.as_str())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert_eq!(
            store
                .read(&key("B"), now, now + 1, MINUTE_MS, now)
                .expect("read")
                .len(),
            1
        );
        assert_eq!(store.alarms().expect("alarms"), ["{}"]);
        let (items, more) = store
            .history(&HistoryQuery {
                limit: 10,
                ..HistoryQuery::default()
            })
            .expect("history");
        assert_eq!((items.len(), more), (1, false));
    }
}
