//! The data dir is private to the user nimbus runs as: it holds guests' disks, snapshots and
//! `state.db` (key pairs, credentials), so no other local user may read anything in it.
//!
//! - The process umask is 077, so what nimbus and its children create is 0600 (directories
//!   0700): SQLite's files, snapshot chunks written by `object_store`, and QEMU's serial
//!   log, QMP socket and pid file. The block store and the store also set these modes
//!   explicitly.
//! - The data dir is created 0700. An existing one (an older release made it 0755 with 0644
//!   files) is tightened on start: it and everything under it lose their group and other
//!   permission bits.
//! - The data dir must belong to the user nimbus runs as, and the tightening walk changes
//!   each entry through a descriptor opened without following links.
//! - QEMU, which runs as a uid of its own, needs no access here: it opens its kernel,
//!   initrd, sockets and pid file as root before it drops privileges, and reaches its disks
//!   on its own socket outside the data dir (docs/compute.md).

use std::fs::{DirBuilder, File, Permissions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Group and other permission bits.
const SHARED_BITS: u32 = 0o077;

/// Makes everything this process and its children create private to its user.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(SHARED_BITS));
}

/// Creates or tightens the data dir and takes its exclusive lock: one nimbus per data dir.
pub fn open(dir: &Path) -> anyhow::Result<File> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    check_owner(dir)?;
    let lock = File::create(dir.join("nimbus.lock"))?;
    lock.try_lock().map_err(|_| {
        anyhow::anyhow!(
            "another nimbus is using data dir {} (stop it first)",
            dir.display()
        )
    })?;
    tighten(dir)?;
    Ok(lock)
}

/// Removes group and other permissions from `dir` and everything under it (symbolic links
/// under it are not followed; `dir` itself may be one). An entry that disappears meanwhile (a temporary file of the object
/// store) is skipped.
pub fn tighten(dir: &Path) -> anyhow::Result<()> {
    let mut tightened = 0u64;
    let root = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot resolve data dir {}", dir.display()))?;
    let mut pending = vec![root];
    while let Some(path) = pending.pop() {
        let Some(metadata) = unless_vanished(std::fs::symlink_metadata(&path), "read", &path)?
        else {
            continue;
        };
        if metadata.file_type().is_symlink() {
            continue;
        }
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & SHARED_BITS != 0 {
            if unless_vanished(chmod_nofollow(&path, mode & !SHARED_BITS), "chmod", &path)?
                .is_none()
            {
                continue;
            }
            tightened += 1;
        }
        if metadata.is_dir() {
            let Some(entries) = unless_vanished(std::fs::read_dir(&path), "list", &path)? else {
                continue;
            };
            for entry in entries {
                pending.push(entry?.path());
            }
        }
    }
    if tightened > 0 {
        tracing::warn!(
            data_dir = %dir.display(),
            tightened,
            "removed other users' access to files in the data dir"
        );
    }
    Ok(())
}

/// Refuses a data dir owned by another user: they could swap its entries under the walk
/// that tightens it, or read what nimbus writes.
fn check_owner(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(dir)?.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        anyhow::bail!(
            "data dir {} belongs to uid {owner}, not to uid {me} that nimbus runs as: use a data dir of your own",
            dir.display()
        );
    }
    Ok(())
}

/// Sets `mode` on the entry at `path` itself: it is opened without following a link and
/// changed through its descriptor, so an entry swapped for a symbolic link after it was
/// read is not followed. Sockets cannot be opened, and are changed by path.
fn chmod_nofollow(path: &Path, mode: u32) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => Ok(rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?),
        Err(rustix::io::Errno::NXIO) => {
            std::fs::set_permissions(path, Permissions::from_mode(mode))
        }
        Err(errno) => Err(errno.into()),
    }
}

/// `None` when `path` is gone: it was removed while the walk went on.
fn unless_vanished<T>(
    result: std::io::Result<T>,
    doing: &str,
    path: &Path,
) -> anyhow::Result<Option<T>> {
    match result {
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        other => other
            .map(Some)
            .with_context(|| format!("cannot {doing} {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn a_loose_data_dir_is_tightened_without_following_links() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = root.path().join("outside");
        std::fs::write(&outside, "not nimbus's").expect("write");
        std::fs::set_permissions(&outside, Permissions::from_mode(0o644)).expect("chmod");
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("volumes/vol-1")).expect("mkdir");
        std::fs::write(data.join("volumes/vol-1/data.raw"), "disk").expect("write");
        std::fs::write(data.join("build.sh"), "#!/bin/sh").expect("write");
        for (path, loose) in [
            ("", 0o755),
            ("volumes", 0o755),
            ("volumes/vol-1", 0o775),
            ("volumes/vol-1/data.raw", 0o644),
            ("build.sh", 0o755),
        ] {
            std::fs::set_permissions(data.join(path), Permissions::from_mode(loose))
                .expect("chmod");
        }
        symlink(&outside, data.join("link")).expect("symlink");

        let _lock = open(&data).expect("open");

        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("volumes")), 0o700);
        assert_eq!(mode(&data.join("volumes/vol-1")), 0o700);
        assert_eq!(mode(&data.join("volumes/vol-1/data.raw")), 0o600);
        assert_eq!(mode(&data.join("build.sh")), 0o700);
        assert_eq!(mode(&outside), 0o644);
    }

    #[test]
    fn a_data_dir_reached_through_a_link_is_tightened() {
        let root = tempfile::tempdir().expect("tempdir");
        let real = root.path().join("disk/nimbus");
        std::fs::create_dir_all(&real).expect("mkdir");
        std::fs::set_permissions(&real, Permissions::from_mode(0o755)).expect("chmod");
        let link = root.path().join("nimbus");
        symlink(&real, &link).expect("symlink");
        let _lock = open(&link).expect("open");
        assert_eq!(mode(&real), 0o700);
        assert_eq!(mode(&real.join("nimbus.lock")), 0o600);
    }

    #[test]
    fn a_new_data_dir_is_private() {
        let root = tempfile::tempdir().expect("tempdir");
        let data = root.path().join("new/data");
        let _lock = open(&data).expect("open");
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("nimbus.lock")) & SHARED_BITS, 0);
    }
}
