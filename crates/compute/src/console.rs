//! The serial console. QEMU sends it to a socket in the VM's run dir and nimbus appends it to
//! `serial.log`, so that a guest printing forever cannot fill the data dir's disk.
//!
//! Invariants:
//! - `serial.log` never grows past [`LOG_CAP`]: before a write would take it there, the file
//!   is replaced by its newest [`OUTPUT_LIMIT`] bytes (the output EC2 keeps).
//! - The guest never waits for nimbus: while nimbus is not connected (a restart), QEMU drops
//!   the output; only what the guest printed meanwhile is missing from the log.
//! - [`console_output`] reads only the file's tail and returns at most [`OUTPUT_LIMIT`]
//!   bytes of text, cut on a character boundary.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;

/// What GetConsoleOutput returns at most: EC2's newest 64 KiB.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// The most `serial.log` may hold.
const LOG_CAP: u64 = 1 << 20;

fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("console.sock")
}

fn log_path(run_dir: &Path) -> PathBuf {
    run_dir.join("serial.log")
}

/// QEMU's arguments for the console: the first serial port on a listening socket that does
/// not wait for nimbus to connect.
pub(crate) fn qemu_args(run_dir: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!(
            "socket,id=console,path={},server=on,wait=off",
            socket_path(run_dir).display()
        ),
        "-serial".into(),
        "chardev:console".into(),
    ]
}

/// Copies a VM's console into its log for as long as the VM is kept.
pub(crate) struct Console {
    copier: tokio::task::JoinHandle<()>,
}

impl Console {
    /// Connects to the VM's console socket now, so that nothing the guest prints once it
    /// runs is missed (a VM started before consoles were sockets has none).
    pub(crate) async fn attach(run_dir: &Path) -> Console {
        let connected = tokio::net::UnixStream::connect(socket_path(run_dir)).await;
        let log = log_path(run_dir);
        let copier = tokio::spawn(async move {
            let Ok(mut stream) = connected else {
                return;
            };
            let mut chunk = vec![0; 16 << 10];
            while let Ok(read) = stream.read(&mut chunk).await {
                if read == 0 || append_capped(&log, &chunk[..read]).is_err() {
                    return;
                }
            }
        });
        Console { copier }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.copier.abort();
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Appends `bytes` to the log, first replacing it by its newest [`OUTPUT_LIMIT`] bytes if
/// the write would take it past [`LOG_CAP`].
fn append_capped(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A write larger than the room a rotation leaves keeps only its newest part.
    let bytes = &bytes[bytes.len().saturating_sub(LOG_CAP as usize - OUTPUT_LIMIT)..];
    let length = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if length + bytes.len() as u64 > LOG_CAP {
        let kept = read_tail(path, OUTPUT_LIMIT)?;
        let fresh = path.with_extension("log.new");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&fresh)?;
        file.write_all(&kept)?;
        std::fs::rename(&fresh, path)?;
    }
    open_log(path)?.write_all(bytes)
}

/// The last `limit` bytes of a file (all of a shorter one).
fn read_tail(path: &Path, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(limit as u64)))?;
    let mut tail = Vec::with_capacity(limit.min(length as usize));
    file.take(limit as u64).read_to_end(&mut tail)?;
    Ok(tail)
}

/// The newest console output of the VM that ran in `run_dir` (empty if none): at most
/// [`OUTPUT_LIMIT`] bytes of text, starting on a character boundary.
pub fn console_output(run_dir: &Path) -> String {
    let Ok(tail) = read_tail(&log_path(run_dir), OUTPUT_LIMIT) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&tail);
    // Invalid bytes grow into three-byte replacement characters: keep the newest text.
    let mut start = text.len().saturating_sub(OUTPUT_LIMIT);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// Appends a line of nimbus's own to an instance's console log (what it did to the VM).
pub fn note(run_dir: &Path, line: &str) -> std::io::Result<()> {
    append_capped(&log_path(run_dir), format!("\r\n{line}\r\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_output_under_its_cap() {
        let dir = tempfile::tempdir().expect("dir");
        let line = [b'x'; 1000];
        for _ in 0..3000 {
            append_capped(&log_path(dir.path()), &line).expect("append");
        }
        append_capped(&log_path(dir.path()), b"the end").expect("append");
        let length = std::fs::metadata(log_path(dir.path())).expect("log").len();
        assert!(length <= LOG_CAP, "{length}");
        let output = console_output(dir.path());
        assert!(output.len() <= OUTPUT_LIMIT);
        assert!(output.ends_with("the end"));
        // One write larger than the cap keeps its newest part.
        append_capped(&log_path(dir.path()), &vec![b'y'; 2 * LOG_CAP as usize]).expect("append");
        assert!(std::fs::metadata(log_path(dir.path())).expect("log").len() <= LOG_CAP);
    }

    #[test]
    fn output_starts_on_a_character_boundary() {
        let dir = tempfile::tempdir().expect("dir");
        // Three-byte characters, invalid bytes and a length that cuts one in the middle.
        let mut bytes = "é€".repeat(20_000).into_bytes();
        bytes.extend_from_slice(&[0xff; 5000]);
        bytes.extend_from_slice("€".repeat(10_001).as_bytes());
        std::fs::write(log_path(dir.path()), &bytes).expect("log");
        let output = console_output(dir.path());
        assert!(output.len() <= OUTPUT_LIMIT);
        assert!(output.ends_with('€'));
        assert_eq!(console_output(&dir.path().join("none")), "");
    }
}
