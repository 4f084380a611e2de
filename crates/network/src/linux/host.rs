//! Running the host's tools (`ip`, `nft`, `sysctl`) and code inside a VPC's namespace.

use std::io;
use std::os::fd::AsFd;

use crate::{Error, Result};

/// Runs a program, feeding `stdin`, and returns its standard output.
pub async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Command {
            command: program.to_owned(),
            stderr: format!("cannot run it: {e}"),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).await?;
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        return Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ip -batch -` in a namespace (or on the host): one process for many changes, stopping
/// at the first that fails.
pub async fn ip_batch(namespace: Option<&str>, commands: &[String]) -> Result<()> {
    if commands.is_empty() {
        return Ok(());
    }
    let mut args = Vec::new();
    if let Some(namespace) = namespace {
        args.extend(["-n", namespace]);
    }
    args.extend(["-batch", "-"]);
    run("ip", &args, Some(&(commands.join("\n") + "\n")))
        .await
        .map(|_| ())
}

/// `ip -j …` parsed, in a namespace or on the host.
pub async fn ip_json(namespace: Option<&str>, args: &[&str]) -> Result<Vec<serde_json::Value>> {
    let mut all = vec!["-j"];
    if let Some(namespace) = namespace {
        all.extend(["-n", namespace]);
    }
    all.extend(args);
    let text = run("ip", &all, None).await?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("ip printed odd JSON: {e}")))
}

/// Runs `work` on a fresh thread that has entered the namespace, so that sockets and taps
/// it makes belong there; the thread ends with it, so no other code runs in the namespace.
pub fn in_namespace<T: Send>(
    namespace: &str,
    work: impl FnOnce() -> io::Result<T> + Send,
) -> Result<T> {
    let file = std::fs::File::open(format!("/run/netns/{namespace}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                work()
            })
            .join()
            .map_err(|_| Error::Invalid("a namespace thread panicked".into()))?
            .map_err(Error::from)
    })
}

/// The host's IPv4 routes of every table, parsed (`ip -4 -j route show table all`). Run to
/// completion on the calling thread: address allocation asks from inside a transaction,
/// and the command takes milliseconds.
pub fn host_routes() -> Result<Vec<serde_json::Value>> {
    let output = std::process::Command::new("ip")
        .args(["-4", "-j", "route", "show", "table", "all"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Command {
            command: "ip".into(),
            stderr: format!("cannot run it: {e}"),
        })?;
    if !output.status.success() {
        return Err(Error::Command {
            command: "ip -4 -j route show table all".into(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| Error::Invalid(format!("ip printed odd JSON: {e}")))
}
