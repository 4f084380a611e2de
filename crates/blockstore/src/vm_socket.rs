//! One VM's own NBD socket.
//!
//! QEMU reaches its disks by the path of this socket rather than through a connection handed
//! over once, so that its NBD client can reconnect (`reconnect-delay`) when nimbus restarts:
//! the new process binds the same path again and QEMU's retries land there, with the
//! requests the guest had in flight resent. The guest sees a pause, never an I/O error.
//!
//! Invariants:
//! - A connection opens only the exports the VM may open ([`ExportFilter`], asked at each
//!   handshake, so a volume attached or detached since needs no update here); any other name
//!   answers as an export that does not exist, and `NBD_OPT_LIST` lists only the VM's own.
//! - Only the VM's process connects: a peer is accepted by the credentials the kernel reports
//!   for it (`SO_PEERCRED`): nimbus's own user (QEMU opening its disks before it drops its
//!   privileges) or the process [`VmSocket::admit`]ted. Every QEMU runs as one user, so the
//!   file's mode cannot tell them apart; the process ID can.
//! - Dropping the [`VmSocket`] stops the listener and removes the file, unless the path has
//!   been bound again since (a VM launched anew for the same instance).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::error::Result;
use crate::nbd::ExportFilter;
use crate::store::BlockStore;

/// A VM's socket, served while this value lives.
pub struct VmSocket {
    path: PathBuf,
    /// The socket file's (device, inode), to remove only our own.
    file: (u64, u64),
    /// The process allowed to connect besides nimbus's own user; 0 for none yet.
    admitted: Arc<AtomicI32>,
    listener: tokio::task::AbortHandle,
}

impl VmSocket {
    /// Lets process `pid` (the VM's QEMU, running as its own user) connect.
    pub fn admit(&self, pid: i32) {
        self.admitted.store(pid, Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for VmSocket {
    fn drop(&mut self) {
        self.listener.abort();
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.file);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl BlockStore {
    /// Serves the exports `may_open` admits on a unix socket at `path` (replacing a stale
    /// file), for one VM. Must be called within the Tokio runtime.
    pub fn serve_vm(&self, path: &Path, may_open: ExportFilter) -> Result<VmSocket> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let listener = UnixListener::bind(path)?;
        // QEMU connects as its own unprivileged user; the peer check below is the gate.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        let meta = std::fs::symlink_metadata(path)?;
        let admitted = Arc::new(AtomicI32::new(0));
        let store = self.clone();
        let allowed = admitted.clone();
        let task = tokio::spawn(async move {
            let own_uid = rustix::process::geteuid().as_raw();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: wait rather than spin.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                let Ok(peer) = stream.peer_cred() else {
                    continue;
                };
                let admitted = allowed.load(Ordering::Relaxed);
                let trusted = peer.uid() == own_uid
                    || peer
                        .pid()
                        .is_some_and(|pid| admitted != 0 && pid == admitted);
                if trusted {
                    store.spawn_connection(stream, Some(may_open.clone()));
                } else {
                    tracing::warn!(pid = ?peer.pid(), uid = peer.uid(), "NBD connection from a process that is not this VM's refused");
                }
            }
        });
        Ok(VmSocket {
            path: path.to_owned(),
            file: (meta.dev(), meta.ino()),
            admitted,
            listener: task.abort_handle(),
        })
    }
}
