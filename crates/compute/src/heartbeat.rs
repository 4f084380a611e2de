//! The guest's heartbeat: the images write a line every second to the virtio-serial port
//! named [`PORT_NAME`]; QEMU carries it to a unix socket in the VM's run dir, where nimbus
//! reads it and remembers when the last line came. A guest whose kernel hangs stops beating
//! although its vCPUs still "run", which QMP alone cannot tell. A guest whose image has no
//! heartbeat writer never beats, and its progress is judged by QMP only.
//!
//! Invariants — what a guest writes costs nimbus a bounded amount, however much it writes:
//! - a line is at most [`MAX_LINE`] bytes; a guest that writes a longer one loses its
//!   heartbeat: nimbus closes the port's socket (QEMU passes nothing more on) and
//!   counts no more beats from that VM until it is launched or adopted again;
//! - the port is read in chunks of at most `CHUNK` bytes, at most once every
//!   `READ_PAUSE`: a flood of short lines waits in the guest (virtio-serial pushes back),
//!   not in nimbus.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The virtio-serial port the guest writes its heartbeat to.
pub const PORT_NAME: &str = "org.nimbus.heartbeat";

/// The longest line counted as a beat (the images write `alive <uptime>`, a dozen bytes).
pub const MAX_LINE: usize = 256;
/// The most read from the port at once.
const CHUNK: usize = 4096;
/// The pause after each read: at most 100 reads, 400 KiB, a second.
const READ_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("heartbeat.sock")
}

/// QEMU's arguments for the heartbeat port: a virtio-serial bus with one named port on a
/// listening socket that does not wait for nimbus to connect.
pub(crate) fn qemu_args(run_dir: &Path) -> Vec<String> {
    vec![
        "-chardev".into(),
        format!(
            "socket,id=heartbeat,path={},server=on,wait=off",
            socket_path(run_dir).display()
        ),
        "-device".into(),
        "virtio-serial-pci,id=heartbeat-serial".into(),
        "-device".into(),
        format!("virtserialport,bus=heartbeat-serial.0,chardev=heartbeat,name={PORT_NAME}"),
    ]
}

/// Reads a VM's heartbeat for as long as the VM is kept.
pub(crate) struct Heartbeat {
    /// Milliseconds since the epoch of the last line; 0 before the first.
    last_ms: Arc<AtomicI64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Connects to the VM's heartbeat socket (a VM started before it existed has none).
    pub(crate) fn listen(run_dir: &Path) -> Heartbeat {
        let last_ms = Arc::new(AtomicI64::new(0));
        let socket = socket_path(run_dir);
        let beats = last_ms.clone();
        let reader = tokio::spawn(async move {
            let Ok(stream) = tokio::net::UnixStream::connect(&socket).await else {
                return;
            };
            if read_beats(stream, &beats).await == Ended::LineTooLong {
                tracing::warn!(
                    socket = %socket.display(),
                    "guest wrote a heartbeat line over {MAX_LINE} bytes; its heartbeat is ignored"
                );
            }
        });
        Heartbeat { last_ms, reader }
    }

    /// When the guest last beat, if it ever did.
    pub(crate) fn last_ms(&self) -> Option<i64> {
        let last = self.last_ms.load(Ordering::Relaxed);
        (last > 0).then_some(last)
    }
}

#[derive(Debug, PartialEq)]
enum Ended {
    /// The port closed, or could not be read.
    Closed,
    /// The guest wrote a line over [`MAX_LINE`] bytes.
    LineTooLong,
}

/// Records the time of each complete line into `last_ms` until the port ends or the guest
/// breaks the line limit.
async fn read_beats(mut port: impl AsyncRead + Unpin, last_ms: &AtomicI64) -> Ended {
    let mut chunk = [0u8; CHUNK];
    // The length of the line being read so far.
    let mut line = 0usize;
    loop {
        let read = match port.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(read) => read,
        };
        let mut beat = false;
        for byte in &chunk[..read] {
            if *byte == b'\n' {
                beat = true;
                line = 0;
            } else {
                line += 1;
                if line > MAX_LINE {
                    return Ended::LineTooLong;
                }
            }
        }
        if beat {
            last_ms.store(nimbus_core::now_millis(), Ordering::Relaxed);
        }
        tokio::time::sleep(READ_PAUSE).await;
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// A reader on one end of a socket pair: the guest's end, the last beat, the reader.
    fn reading() -> (
        tokio::net::UnixStream,
        Arc<AtomicI64>,
        tokio::task::JoinHandle<Ended>,
    ) {
        let (host, guest) = tokio::net::UnixStream::pair().expect("socket pair");
        let last_ms = Arc::new(AtomicI64::new(0));
        let beats = last_ms.clone();
        let reader = tokio::spawn(async move { read_beats(host, &beats).await });
        (guest, last_ms, reader)
    }

    #[tokio::test]
    async fn beats_count_until_a_line_breaks_the_limit() {
        let (mut guest, last_ms, reader) = reading();
        guest.write_all(b"alive 1\n").await.expect("write");
        while last_ms.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // An endless line: the reader gives up on the guest after MAX_LINE bytes, so the
        // writes fail once it has closed its end, instead of filling the host's memory.
        last_ms.store(0, Ordering::Relaxed);
        let endless = vec![b'0'; CHUNK];
        let mut written = 0usize;
        while guest.write_all(&endless).await.is_ok() {
            written += endless.len();
            assert!(written < 1 << 30, "the reader kept reading an endless line");
        }
        assert_eq!(reader.await.expect("reader"), Ended::LineTooLong);
        assert_eq!(
            last_ms.load(Ordering::Relaxed),
            0,
            "no beat from the endless line"
        );
    }

    #[tokio::test]
    async fn a_flood_of_short_lines_still_beats_and_a_closed_port_ends() {
        let (mut guest, last_ms, reader) = reading();
        let flood = b"alive 2\n".repeat(10_000);
        guest.write_all(&flood).await.expect("write");
        drop(guest);
        assert_eq!(reader.await.expect("reader"), Ended::Closed);
        assert!(last_ms.load(Ordering::Relaxed) > 0);
    }
}
