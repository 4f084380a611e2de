//! Who owns what a nimbus leaves on the host. Several servers (data dirs) may share a host,
//! and namespaces and nft tables outlive the process that made them (on purpose: running
//! guests keep their network through a restart), so each piece has a marker in
//! `/run/nimbus/vpc-owners`: `<name>` holds the owner's directory in its data dir, and
//! `<name>.pid` the owner's process, `<pid> <start time in clock ticks after boot>` (a file
//! of its own, so that a nimbus of before, reading `<name>` whole as a path, still reads it).
//!
//! The owner is gone when its directory is (a deleted data dir: nobody will ever start on it
//! again), or when its process no longer runs (the pid with that start time, so a reused pid
//! does not count) — a dead owner's pieces are swept only when no guest relies on them
//! (`mod.rs`), since a restarted owner makes them again from its records anyway. A marker
//! without a process (written by a nimbus of before) counts as alive while its directory
//! exists.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Where the markers live; under `/run`, so they go with a reboot, as the namespaces do.
const OWNERS_DIR: &str = "/run/nimbus/vpc-owners";

/// A process, told apart from a later one with the same pid by its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Process {
    pid: u32,
    start: u64,
}

impl Process {
    fn current() -> Option<Process> {
        let pid = std::process::id();
        Some(Process {
            pid,
            start: start_time(pid)?,
        })
    }

    fn runs(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// The owner a marker names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub dir: PathBuf,
    process: Option<Process>,
}

impl Owner {
    /// Whether nobody will ever come back for what this owner left: its directory is gone.
    pub fn dir_gone(&self) -> bool {
        !self.dir.exists()
    }

    /// Whether the process that wrote the marker has ended (its pieces may still serve
    /// guests, and its next start adopts them).
    pub fn process_ended(&self) -> bool {
        self.process.is_some_and(|p| !p.runs())
    }
}

fn marker(name: &str) -> PathBuf {
    Path::new(OWNERS_DIR).join(name)
}

/// Marks `name` (a namespace or a table) as owned by `dir` and this process.
pub fn mark(name: &str, dir: &Path) -> Result<()> {
    let process = Process::current()
        .ok_or_else(|| Error::Invalid("cannot read this process's start time".into()))?;
    std::fs::create_dir_all(OWNERS_DIR)?;
    write_whole(name, &dir.display().to_string())?;
    write_whole(
        &format!("{name}.pid"),
        &format!("{} {}\n", process.pid, process.start),
    )
}

/// Writes a marker file unless it holds `text` already; aside and renamed, so a reader sees
/// the old text or the new, never half.
fn write_whole(file: &str, text: &str) -> Result<()> {
    if std::fs::read_to_string(marker(file)).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let temporary = marker(&format!(".{file}.new"));
    std::fs::write(&temporary, text)?;
    std::fs::rename(temporary, marker(file))?;
    Ok(())
}

/// The owner of `name`, if it has a marker.
pub fn read(name: &str) -> Option<Owner> {
    let dir = std::fs::read_to_string(marker(name)).ok()?;
    let process = std::fs::read_to_string(marker(&format!("{name}.pid"))).ok();
    parse(&dir, process.as_deref())
}

/// Forgets the owner of `name`.
pub fn forget(name: &str) -> Result<()> {
    for file in [name.to_owned(), format!("{name}.pid")] {
        match std::fs::remove_file(marker(&file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Removes process files whose marker is gone (a nimbus of before forgets only `<name>`).
pub fn forget_strays() -> Result<()> {
    let entries = match std::fs::read_dir(OWNERS_DIR) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        entries => entries?,
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if let Some(name) = file.strip_suffix(".pid") {
            if !marker(name).exists() {
                forget(name)?;
            }
        }
    }
    Ok(())
}

fn parse(dir: &str, process: Option<&str>) -> Option<Owner> {
    let dir = PathBuf::from(Some(dir).filter(|d| !d.is_empty())?);
    let process = process.and_then(|text| {
        let mut fields = text.split_whitespace();
        Some(Process {
            pid: fields.next()?.parse().ok()?,
            start: fields.next()?.parse().ok()?,
        })
    });
    Some(Owner { dir, process })
}

/// A process's start time (field 22 of `/proc/PID/stat`), if it runs and is no zombie.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the parenthesised name (which may hold spaces), from the state on.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_its_directory_and_process() {
        let this = Process::current().expect("this process");
        let owner = parse(
            "/data/network",
            Some(&format!("{} {}\n", this.pid, this.start)),
        )
        .expect("parsed");
        assert_eq!(owner.dir, Path::new("/data/network"));
        assert!(!owner.process_ended());
        let reused = parse(
            "/data/network",
            Some(&format!("{} {}\n", this.pid, this.start + 1)),
        )
        .expect("parsed");
        assert!(reused.process_ended(), "a reused pid is another process");
    }

    #[test]
    fn an_old_marker_names_only_its_directory() {
        let owner = parse("/data/network/vpc-0a", None).expect("parsed");
        assert!(!owner.process_ended());
        assert_eq!(parse("", None), None);
    }
}
