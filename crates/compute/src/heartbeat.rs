//! The guest's heartbeat: the images write a line every second to the virtio-serial port
//! named [`PORT_NAME`]; QEMU carries it to a unix socket in the VM's run dir, where nimbus
//! reads it and remembers when the last line came. A guest whose kernel hangs stops beating
//! although its vCPUs still "run", which QMP alone cannot tell. A guest whose image has no
//! heartbeat writer never beats, and its progress is judged by QMP only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The virtio-serial port the guest writes its heartbeat to.
pub const PORT_NAME: &str = "org.nimbus.heartbeat";

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
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(_)) = lines.next_line().await {
                beats.store(nimbus_core::now_millis(), Ordering::Relaxed);
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

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
