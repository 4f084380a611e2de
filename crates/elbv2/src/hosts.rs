//! Balancers' DNS names on the host: each server keeps its own marked block in the hosts
//! file (`/etc/hosts`), so `curl http://NAME.elb.amazonaws.com/` works with no setup. The
//! block names its server's data dir; blocks of servers whose data dir is gone are removed.

use std::net::Ipv4Addr;
use std::path::Path;

const BEGIN: &str = "# nimbus load balancers of ";
const END: &str = "# end of nimbus load balancers";

/// `hosts` with `owner`'s block holding `entries` (none: no block), and without the blocks
/// of owners `gone` says are gone.
pub fn with_block(
    hosts: &str,
    owner: &str,
    entries: &[(String, Ipv4Addr)],
    gone: impl Fn(&str) -> bool,
) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in hosts.lines() {
        if let Some(block_owner) = line.strip_prefix(BEGIN) {
            skipping = block_owner == owner || gone(block_owner);
            if skipping {
                continue;
            }
        }
        if skipping {
            if line == END {
                skipping = false;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !entries.is_empty() {
        out.push_str(&format!("{BEGIN}{owner}\n"));
        for (name, ip) in entries {
            out.push_str(&format!("{ip} {name}\n"));
        }
        out.push_str(END);
        out.push('\n');
    }
    out
}

/// Rewrites the hosts file when its text changes: through a new file renamed over it, or in
/// place where it cannot be replaced (a container's bind-mounted `/etc/hosts`).
pub fn update(path: &Path, owner: &str, entries: &[(String, Ipv4Addr)]) -> std::io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let new = with_block(&old, owner, entries, |o| !Path::new(o).exists());
    if new == old {
        return Ok(());
    }
    let staged = path.with_extension("nimbus-new");
    std::fs::write(&staged, &new)?;
    let mode = std::fs::metadata(path).map(|m| m.permissions());
    if let Ok(mode) = mode {
        std::fs::set_permissions(&staged, mode)?;
    }
    if std::fs::rename(&staged, path).is_err() {
        let _ = std::fs::remove_file(&staged);
        std::fs::write(path, &new)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_replaced_and_dead_owners_blocks_go() {
        let hosts = "127.0.0.1 localhost\n";
        let one = vec![(
            "web-1.us-east-1.elb.amazonaws.com".to_owned(),
            Ipv4Addr::new(198, 19, 0, 9),
        )];
        let text = with_block(hosts, "/data/a", &one, |_| false);
        assert!(text.starts_with("127.0.0.1 localhost\n"));
        assert!(text.contains("198.19.0.9 web-1.us-east-1.elb.amazonaws.com\n"));
        let other = with_block(&text, "/data/b", &one, |_| false);
        assert_eq!(other.matches(BEGIN).count(), 2);
        // Emptied: the owner's block goes; a dead owner's goes with any update.
        let emptied = with_block(&other, "/data/a", &[], |_| false);
        assert_eq!(emptied.matches(BEGIN).count(), 1);
        let swept = with_block(&other, "/data/c", &[], |owner| owner == "/data/b");
        assert_eq!(swept.matches(BEGIN).count(), 1);
        assert!(swept.contains("/data/a"));
    }

    #[test]
    fn the_file_is_rewritten_only_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.1 localhost\n").unwrap();
        let owner = dir.path().display().to_string();
        let one = vec![(
            "a.elb.amazonaws.com".to_owned(),
            Ipv4Addr::new(198, 19, 0, 1),
        )];
        update(&path, &owner, &one).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("198.19.0.1 a.elb"));
        update(&path, &owner, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "127.0.0.1 localhost\n"
        );
    }
}
