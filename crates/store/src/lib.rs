//! Durable state of nimbus: every resource is a JSON document keyed by (kind, id), stamped
//! with the format version of its kind it was written in (its owner upgrades older ones).
//!
//! The control plane keeps the working set in memory and writes each mutating API call through
//! one [`Store::commit`] (one transaction), so whatever a response confirmed survives `kill -9`.
//! SQLite (WAL, synchronous=FULL) is the embedded implementation; a PostgreSQL one will implement
//! the same trait for many hosts.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

/// One stored resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: String,
    pub id: String,
    /// The version of the kind's document format `body` is written in; records stored before
    /// formats were versioned are format 1.
    pub format: u32,
    pub body: serde_json::Value,
}

/// One change inside a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Put(Record),
    Delete { kind: String, id: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored document {kind}/{id} is not valid JSON: {source}")]
    Corrupt {
        kind: String,
        id: String,
        source: serde_json::Error,
    },
    #[error("database schema version {found} is newer than this nimbus understands ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store lock was poisoned by a panic")]
    Poisoned,
    #[error("cannot create the database file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Persistence for the control plane. Implementations must apply a `commit` atomically and
/// durably before returning.
pub trait Store: Send + Sync {
    /// Every stored record of one kind.
    fn load_kind(&self, kind: &str) -> Result<Vec<Record>>;
    /// Applies all changes in one transaction.
    fn commit(&self, changes: &[Change]) -> Result<()>;
}

/// Schema migrations, applied in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE resources (
        kind TEXT NOT NULL,
        id   TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    ) WITHOUT ROWID;",
    "ALTER TABLE resources ADD COLUMN format INTEGER NOT NULL DEFAULT 1;",
];

pub struct SqliteStore {
    connection: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        create_private(path)?;
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&connection)?;
        Ok(SqliteStore {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.connection.lock().map_err(|_| StoreError::Poisoned)
    }
}

/// Creates the database file 0600 if it is missing: SQLite would create it 0644, and gives its
/// `-wal` and `-shm` files the database's mode, so this keeps all three private.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Create {
            path: path.display().to_string(),
            source,
        })
}

fn migrate(connection: &Connection) -> Result<()> {
    connection
        .execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);")?;
    let current: i64 = connection
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let transaction = connection.unchecked_transaction()?;
        transaction.execute_batch(sql)?;
        transaction.execute("DELETE FROM schema_version", [])?;
        transaction.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [index as i64 + 1],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn load_kind(&self, kind: &str) -> Result<Vec<Record>> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare("SELECT id, format, body FROM resources WHERE kind = ?1 ORDER BY id")?;
        let rows = statement.query_map([kind], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, u32>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut records = Vec::new();
        for row in rows {
            let (id, format, body) = row?;
            let body = serde_json::from_str(&body).map_err(|source| StoreError::Corrupt {
                kind: kind.to_owned(),
                id: id.clone(),
                source,
            })?;
            records.push(Record {
                kind: kind.to_owned(),
                id,
                format,
                body,
            });
        }
        Ok(records)
    }

    fn commit(&self, changes: &[Change]) -> Result<()> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        for change in changes {
            match change {
                Change::Put(record) => {
                    transaction.execute(
                        "INSERT OR REPLACE INTO resources (kind, id, format, body) VALUES (?1, ?2, ?3, ?4)",
                        params![record.kind, record.id, record.format, record.body.to_string()],
                    )?;
                }
                Change::Delete { kind, id } => {
                    transaction.execute(
                        "DELETE FROM resources WHERE kind = ?1 AND id = ?2",
                        params![kind, id],
                    )?;
                }
            }
        }
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, value: i64) -> Record {
        Record {
            kind: "key-pair".into(),
            id: id.into(),
            format: 1,
            body: serde_json::json!({ "value": value }),
        }
    }

    #[test]
    fn commits_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .commit(&[Change::Put(record("a", 1)), Change::Put(record("b", 2))])
                .expect("commit");
            store
                .commit(&[
                    Change::Put(record("a", 3)),
                    Change::Delete {
                        kind: "key-pair".into(),
                        id: "b".into(),
                    },
                ])
                .expect("commit");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        assert_eq!(
            store.load_kind("key-pair").expect("load"),
            vec![record("a", 3)]
        );
        assert!(store.load_kind("volume").expect("load").is_empty());
    }

    #[test]
    fn records_of_the_first_schema_read_as_format_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        let connection = Connection::open(&path).expect("raw open");
        connection
            .execute_batch(&format!(
                "{} CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version (version) VALUES (1);
                 INSERT INTO resources (kind, id, body) VALUES ('key-pair', 'a', '{{\"value\":1}}');",
                MIGRATIONS[0]
            ))
            .expect("first schema");
        drop(connection);
        let store = SqliteStore::open(&path).expect("open");
        assert_eq!(
            store.load_kind("key-pair").expect("load"),
            vec![record("a", 1)]
        );
        let newer = Record {
            format: 2,
            ..record("a", 2)
        };
        store.commit(&[Change::Put(newer.clone())]).expect("commit");
        assert_eq!(store.load_kind("key-pair").expect("load"), vec![newer]);
    }

    #[test]
    fn refuses_newer_schema() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).expect("open"));
        let connection = Connection::open(&path).expect("raw open");
        connection
            .execute("UPDATE schema_version SET version = 99", [])
            .expect("bump");
        drop(connection);
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
