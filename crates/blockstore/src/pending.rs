//! Durable pending snapshots. A snapshot's frozen chunk list is written when it is taken,
//! and the old content of a frozen chunk is appended to a log (and synced) before a write
//! replaces it, so a snapshot whose upload a crash cut short resumes after the restart with
//! exactly the content it captured.
//!
//! Chunks already in the object store are recorded too (their hash), before writes stop
//! copying them, so a resumed upload neither redoes them nor reads their newer content.
//!
//! Files, in `<volume dir>/pending/`: `<snapshot>.json` (a [`PendingRecord`]) and
//! `<snapshot>.saved`, entries of `chunk (u64 LE) | length (u32 LE) | payload | blake3 of
//! the three`: a saved chunk's content, or, when the length has its top bit set, the hex
//! hash a stored chunk got (empty for an all-zero chunk). A torn entry at the end (a crash
//! while appending) is dropped: what it protected had not started.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::private;
use crate::volume::{from_json, write_atomic};

const PENDING_DIR: &str = "pending";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PendingRecord {
    pub snapshot_id: String,
    pub created_millis: i64,
    pub size: u64,
    pub chunks: Vec<u64>,
}

/// The append-only log of chunk contents saved for one pending snapshot.
pub(crate) struct SavedLog {
    file: File,
}

/// What a pending snapshot's log holds.
#[derive(Default)]
pub(crate) struct Logged {
    /// Old contents of chunks overwritten since the snapshot, by chunk index.
    pub saved: HashMap<u64, Arc<Vec<u8>>>,
    /// Chunks already in the object store: their hash, `None` for an all-zero chunk.
    pub stored: HashMap<u64, Option<String>>,
}

/// The length bit that marks a stored-chunk entry.
const STORED: u32 = 1 << 31;

fn paths(volume_dir: &Path, snapshot_id: &str) -> (PathBuf, PathBuf) {
    let dir = volume_dir.join(PENDING_DIR);
    (
        dir.join(format!("{snapshot_id}.json")),
        dir.join(format!("{snapshot_id}.saved")),
    )
}

/// Makes a new pending snapshot durable: an empty log, then its record.
pub(crate) fn create(volume_dir: &Path, record: &PendingRecord) -> Result<SavedLog> {
    let (record_path, log_path) = paths(volume_dir, &record.snapshot_id);
    private::create_dir(&volume_dir.join(PENDING_DIR))?;
    let file = private::file_options()
        .create(true)
        .truncate(true)
        .write(true)
        .open(log_path)?;
    file.sync_all()?;
    let json = serde_json::to_vec(record)
        .map_err(|e| Error::CorruptMetadata("pending snapshot".into(), e.to_string()))?;
    write_atomic(&record_path, &json)?;
    Ok(SavedLog { file })
}

/// Forgets a pending snapshot (it completed or failed).
pub(crate) fn remove(volume_dir: &Path, snapshot_id: &str) -> Result<()> {
    let (record_path, log_path) = paths(volume_dir, snapshot_id);
    for path in [record_path, log_path] {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// The pending snapshots of a volume with their saved chunks, oldest first.
pub(crate) fn load(volume_dir: &Path) -> Result<Vec<(PendingRecord, SavedLog, Logged)>> {
    let dir = volume_dir.join(PENDING_DIR);
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let record: PendingRecord = from_json(&path)?;
        let (log, logged) = SavedLog::open(&paths(volume_dir, &record.snapshot_id).1)?;
        found.push((record, log, logged));
    }
    found.sort_by(|a, b| {
        (a.0.created_millis, &a.0.snapshot_id).cmp(&(b.0.created_millis, &b.0.snapshot_id))
    });
    Ok(found)
}

impl SavedLog {
    /// Reads every whole entry and cuts off a torn one at the end.
    fn open(path: &Path) -> Result<(SavedLog, Logged)> {
        let mut file = private::file_options()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut logged = Logged::default();
        let mut at = 0;
        while let Some((chunk, stored, payload, next)) = parse_entry(&bytes, at) {
            if stored {
                let hash = String::from_utf8_lossy(payload).into_owned();
                logged
                    .stored
                    .insert(chunk, Some(hash).filter(|h| !h.is_empty()));
            } else {
                logged.saved.insert(chunk, Arc::new(payload.to_vec()));
            }
            at = next;
        }
        if at < bytes.len() {
            file.set_len(at as u64)?;
            file.sync_all()?;
        }
        Ok((SavedLog { file }, logged))
    }

    /// Appends a chunk's old content durably.
    pub fn append(&mut self, chunk: u64, data: &[u8]) -> Result<()> {
        self.file.write_all(&entry(chunk, 0, data))?;
        self.file.sync_data()?;
        Ok(())
    }

    /// Records durably that chunks are in the object store, with their hashes.
    pub fn append_stored(&mut self, chunks: &[(u64, Option<String>)]) -> Result<()> {
        let mut entries = Vec::new();
        for (chunk, hash) in chunks {
            entries.extend(entry(
                *chunk,
                STORED,
                hash.as_deref().unwrap_or("").as_bytes(),
            ));
        }
        self.file.write_all(&entries)?;
        self.file.sync_data()?;
        Ok(())
    }
}

fn entry(chunk: u64, flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(payload.len() + 44);
    entry.extend_from_slice(&chunk.to_le_bytes());
    entry.extend_from_slice(&(payload.len() as u32 | flags).to_le_bytes());
    entry.extend_from_slice(payload);
    let hash = blake3::hash(&entry);
    entry.extend_from_slice(hash.as_bytes());
    entry
}

/// One entry at `at`: (chunk, whether it records a stored chunk, payload, offset of the
/// next entry), if whole and intact.
fn parse_entry(bytes: &[u8], at: usize) -> Option<(u64, bool, &[u8], usize)> {
    let header = bytes.get(at..at + 12)?;
    let chunk = u64::from_le_bytes(header[..8].try_into().ok()?);
    let length = u32::from_le_bytes(header[8..].try_into().ok()?);
    let body_end = at + 12 + (length & !STORED) as usize;
    let hash = bytes.get(body_end..body_end + 32)?;
    (blake3::hash(&bytes[at..body_end]).as_bytes() == hash).then(|| {
        let payload = &bytes[at + 12..body_end];
        (chunk, length & STORED != 0, payload, body_end + 32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_entry_is_dropped_and_the_log_continues_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = PendingRecord {
            snapshot_id: "snap-1".into(),
            created_millis: 1,
            size: 1 << 20,
            chunks: vec![0, 1],
        };
        let mut log = create(dir.path(), &record).expect("create");
        log.append(0, &[7; 100]).expect("append");
        log.append_stored(&[(2, Some("ab".repeat(32))), (3, None)])
            .expect("append stored");
        log.append(1, &[8; 100]).expect("append");
        let log_path = paths(dir.path(), "snap-1").1;
        let full = std::fs::metadata(&log_path).expect("stat").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log_path)
            .and_then(|f| f.set_len(full - 5))
            .expect("tear");
        let mut loaded = load(dir.path()).expect("load");
        assert_eq!(loaded.len(), 1);
        let (found, mut log, logged) = loaded.remove(0);
        assert_eq!(found.chunks, vec![0, 1]);
        assert_eq!(logged.saved.len(), 1);
        assert_eq!(logged.saved[&0].as_slice(), &[7; 100]);
        assert_eq!(logged.stored[&2], Some("ab".repeat(32)));
        assert_eq!(logged.stored[&3], None);
        log.append(1, &[9; 100])
            .expect("append after the torn entry");
        let (_, _, logged) = load(dir.path()).expect("load").remove(0);
        assert_eq!(logged.saved[&1].as_slice(), &[9; 100]);
        remove(dir.path(), "snap-1").expect("remove");
        assert!(load(dir.path()).expect("load").is_empty());
    }
}
