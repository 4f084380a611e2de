//! The block store's files hold guests' disks: only the user nimbus runs as may open them,
//! whatever the process umask (files 0600, directories 0700). Snapshot chunks in a local
//! object store are written by `object_store`, which follows the umask: the `nimbus` binary
//! sets it to 077 (docs/blockstore.md).

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents, 0700.
pub(crate) fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Options that create a file 0600; the caller adds how it opens it.
pub(crate) fn file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn files_and_dirs_are_private_under_a_loose_umask() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("volumes/vol-1");
        create_dir(&dir).expect("create dir");
        let file = dir.join("data.raw");
        file_options()
            .write(true)
            .create_new(true)
            .open(&file)
            .expect("create file");
        assert_eq!(mode(&root.path().join("volumes")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&file), 0o600);
    }
}
