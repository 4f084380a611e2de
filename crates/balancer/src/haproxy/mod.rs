//! The HAProxy driver: one HAProxy per balancer, in its VPC's network namespace, run as the
//! unprivileged `haproxy` user Debian's package makes, chrooted into an empty directory.
//! See `docs/balancer.md`.
//!
//! Each balancer has a private directory (`<state_dir>/<balancer_id>/`, mode 0700): the
//! config, the pid file and the runtime API's socket (mode 0600). HAProxy reads the config
//! and binds its listeners and socket as root, then drops to its user. It daemonizes, so it
//! outlives nimbus: an apply after a restart finds it through its pid file (a live process
//! whose command line names this config) and keeps it when the config is the same.
//!
//! - **Targets** live in `server-template` slots filled through the runtime API, never in
//!   the config, so registering and deregistering targets reloads nothing.
//! - **A config change** (listeners, group settings, slot count) starts a new HAProxy next
//!   to the old one (both bind with `SO_REUSEPORT`), fills its slots, then tells the old one
//!   to finish its connections and exit (`SIGUSR1`, bounded by `hard-stop-after`): no
//!   connection is refused in between.
//! - **A crashed HAProxy** is started again by the next apply.
//!
//! What the driver keeps in memory (when targets were placed and whether they have been
//! up since, when drains end) only refines what it reports; after a restart a placed target
//! counts as having been up and a drain restarts its delay.

mod runtime;
mod stats;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rustix::process::{Pid, Signal};

use crate::render::{render, Layout};
use crate::spec::{check, check_id};
use crate::{BalancerCounters, BalancerDriver, BalancerSpec, Error, Result, Target, TargetHealth};
use runtime::{parse_stat, plan, send, stat_lines, state_of, Placement, ServerRow};

/// The user HAProxy drops to (`scripts/install-deps.sh` installs Debian's `haproxy`
/// package, which makes it).
const USER: &str = "haproxy";

/// The longest path a Unix socket may have (`sun_path`, less its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// What the driver remembers of one balancer between calls.
#[derive(Default)]
struct Memory {
    spec: Option<BalancerSpec>,
    placed: BTreeMap<(String, Target), Placement>,
    /// Per group, when each draining target is released.
    drains: BTreeMap<String, BTreeMap<Target, Instant>>,
}

impl Memory {
    /// The spec last applied to the balancer by this process.
    fn applied(&self, balancer_id: &str) -> Result<BalancerSpec> {
        self.spec
            .clone()
            .ok_or_else(|| Error::UnknownBalancer(balancer_id.to_owned()))
    }
}

/// The real driver (see the module docs). `nimbus serve` makes one for the elbv2 service's
/// reconciler.
pub struct HaproxyBalancers {
    state_dir: PathBuf,
    /// One change at a time per balancer; balancers do not wait for each other.
    balancers: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<Memory>>>>,
}

impl HaproxyBalancers {
    /// A driver keeping each balancer's files under `state_dir/<balancer_id>/`.
    pub fn new(state_dir: PathBuf) -> HaproxyBalancers {
        HaproxyBalancers {
            state_dir,
            balancers: Mutex::new(BTreeMap::new()),
        }
    }

    fn memory(&self, balancer_id: &str) -> Arc<tokio::sync::Mutex<Memory>> {
        let mut balancers = self.balancers.lock().unwrap_or_else(|e| e.into_inner());
        balancers.entry(balancer_id.to_owned()).or_default().clone()
    }

    /// The files of a balancer, once its ID and the directory's path are known to be plain.
    fn layout(&self, balancer_id: &str) -> Result<Layout> {
        check_id(balancer_id)?;
        let layout = Layout {
            dir: self.state_dir.join(balancer_id),
            user: USER.into(),
        };
        let text = layout.socket().display().to_string();
        let plain = text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b));
        if !plain || text.len() > SOCKET_PATH_MAX {
            return Err(Error::Invalid(format!(
                "{text:?} cannot hold HAProxy's socket: keep the data dir's path short and plain"
            )));
        }
        Ok(layout)
    }

    /// Starts a HAProxy on the config written at `layout.config()`.
    async fn start(&self, spec: &BalancerSpec, layout: &Layout) -> Result<()> {
        let config = layout.config().display().to_string();
        run("haproxy", &["-c", "-q", "-f", &config]).await?;
        run(
            "ip",
            &["netns", "exec", &spec.namespace, "haproxy", "-f", &config],
        )
        .await?;
        // HAProxy writes its pid file 0644; it is private, as the rest of nimbus's data dir.
        std::fs::set_permissions(layout.pid(), std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }

    /// Brings every group's slots to the spec: new targets placed, removed ones drained,
    /// drains that are over freed. `assume_up` names the targets a replaced process had up.
    async fn sync(
        &self,
        spec: &BalancerSpec,
        layout: &Layout,
        memory: &mut Memory,
        assume_up: &BTreeSet<(String, Target)>,
    ) -> Result<Vec<ServerRow>> {
        let socket = layout.socket();
        let rows = parse_stat(&send(&socket, "show stat").await?);
        let now = Instant::now();
        let mut changed = false;
        for group in &spec.target_groups {
            let slots: Vec<ServerRow> = rows
                .iter()
                .filter(|r| r.backend == group.id)
                .cloned()
                .collect();
            let drains = memory.drains.entry(group.id.clone()).or_default();
            let delay = Duration::from_secs(group.deregistration_delay_secs.into());
            let up = |t: &Target| assume_up.contains(&(group.id.clone(), *t));
            for step in plan(&group.targets, &slots, drains, delay, now, &up)? {
                send(&socket, &step.commands(&group.id)).await?;
                if let runtime::Step::Place { target, .. } = step {
                    let placement = Placement {
                        at: now,
                        seen_up: up(&target),
                    };
                    memory.placed.insert((group.id.clone(), target), placement);
                }
                changed = true;
            }
        }
        memory.placed.retain(|(group, target), _| {
            spec.target_groups
                .iter()
                .any(|g| &g.id == group && g.targets.contains(target))
        });
        if changed {
            return Ok(parse_stat(&send(&socket, "show stat").await?));
        }
        Ok(rows)
    }
}

#[async_trait]
impl BalancerDriver for HaproxyBalancers {
    async fn apply(&self, spec: &BalancerSpec) -> Result<()> {
        let checked = check(spec)?;
        let layout = self.layout(&spec.balancer_id)?;
        let config = render(checked, &layout);
        let memory = self.memory(&spec.balancer_id);
        let mut memory = memory.lock().await;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(layout.chroot())?;
        let running = running(&layout);
        let same_config = std::fs::read_to_string(layout.config()).is_ok_and(|c| c == config);
        if running.is_some() && same_config {
            self.sync(spec, &layout, &mut memory, &BTreeSet::new())
                .await?;
            memory.spec = Some(spec.clone());
            return Ok(());
        }
        // A new process: the targets the old one had up (or, after a crash, all of those
        // known) start up in it, so that a reload or a restart does not empty the balancer.
        let assume_up: BTreeSet<(String, Target)> = match running {
            Some(_) => send(&layout.socket(), "show stat")
                .await
                .map(|answer| parse_stat(&answer))
                .unwrap_or_default()
                .iter()
                .filter(|row| row.status.starts_with("UP"))
                .filter_map(|row| Some((row.backend.clone(), row.target()?)))
                .collect(),
            None => memory
                .spec
                .iter()
                .flat_map(|known| &known.target_groups)
                .flat_map(|g| g.targets.iter().map(|t| (g.id.clone(), *t)))
                .collect(),
        };
        let staged = layout.dir.join("haproxy.cfg.new");
        std::fs::write(&staged, &config)?;
        std::fs::rename(&staged, layout.config())?;
        if let Err(e) = self.start(spec, &layout).await {
            // The old config stays the running one's: the next apply tries again.
            let _ = std::fs::remove_file(layout.config());
            return Err(e);
        }
        memory.placed.clear();
        memory.drains.clear();
        let synced = self.sync(spec, &layout, &mut memory, &assume_up).await;
        if let Some(old) = running {
            tracing::info!(balancer = %spec.balancer_id, "HAProxy replaced for a new config");
            let _ = rustix::process::kill_process(old, Signal::USR1);
        }
        synced?;
        memory.spec = Some(spec.clone());
        Ok(())
    }

    async fn remove(&self, balancer_id: &str) -> Result<()> {
        let layout = self.layout(balancer_id)?;
        let memory = self.memory(balancer_id);
        let mut memory = memory.lock().await;
        for pid in processes_of(&layout.config()) {
            stop(pid).await;
        }
        match std::fs::remove_dir_all(&layout.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        *memory = Memory::default();
        self.balancers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(balancer_id);
        Ok(())
    }

    async fn balancers(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.state_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut found: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| check_id(name).is_ok())
            .collect();
        found.sort();
        Ok(found)
    }

    async fn target_health(&self, balancer_id: &str) -> Result<Vec<TargetHealth>> {
        let layout = self.layout(balancer_id)?;
        let memory = self.memory(balancer_id);
        let mut memory = memory.lock().await;
        let spec = memory.applied(balancer_id)?;
        let rows = self
            .sync(&spec, &layout, &mut memory, &BTreeSet::new())
            .await?;
        Ok(health(&spec, &rows, &mut memory))
    }

    async fn counters(&self, balancer_id: &str) -> Result<BalancerCounters> {
        let layout = self.layout(balancer_id)?;
        let memory = self.memory(balancer_id);
        let mut memory = memory.lock().await;
        let spec = memory.applied(balancer_id)?;
        let process = running(&layout).ok_or_else(|| Error::Runtime {
            command: "show stat".into(),
            answer: format!("no HAProxy runs {balancer_id}"),
        })?;
        let text = send(&layout.socket(), "show stat").await?;
        let health = health(&spec, &parse_stat(&text), &mut memory);
        let process_id = process.as_raw_nonzero().get().unsigned_abs();
        Ok(stats::counters(
            &spec,
            &stat_lines(&text),
            &health,
            process_id,
        ))
    }
}

/// How each target in the slots of `rows` fares (see `runtime::state_of`).
fn health(spec: &BalancerSpec, rows: &[ServerRow], memory: &mut Memory) -> Vec<TargetHealth> {
    let now = Instant::now();
    let mut health = Vec::new();
    for group in &spec.target_groups {
        let check = &group.health_check;
        let window = Duration::from_secs(
            u64::from(check.interval_secs) * u64::from(check.unhealthy_threshold)
                + u64::from(check.timeout_secs),
        );
        for row in rows.iter().filter(|r| r.backend == group.id) {
            let Some(target) = row.target() else {
                continue;
            };
            let placement = memory.placed.get_mut(&(group.id.clone(), target));
            let wanted = group.targets.contains(&target);
            if let Some(state) = state_of(row, wanted, placement, window, now) {
                health.push(TargetHealth {
                    target_group_id: group.id.clone(),
                    target,
                    state,
                });
            }
        }
    }
    health
}

/// Runs a program to its end; its error output says why it failed.
async fn run(program: &str, args: &[&str]) -> Result<()> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Command {
            command: program.to_owned(),
            stderr: format!("cannot run it: {e}"),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// The HAProxy of a balancer, if its pid file names a live process running its config.
fn running(layout: &Layout) -> Option<Pid> {
    let pid: i32 = std::fs::read_to_string(layout.pid())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let pid = Pid::from_raw(pid)?;
    (is_alive(pid) && runs_config(pid, &layout.config())).then_some(pid)
}

/// Whether a process's command line names `config` as one of its arguments.
fn runs_config(pid: Pid, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())) else {
        return false;
    };
    let config = config.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == config)
}

/// Every live process running this config: the current HAProxy and any replaced one still
/// finishing its connections.
fn processes_of(config: &Path) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(Pid::from_raw)
        .filter(|pid| is_alive(*pid) && runs_config(*pid, config))
        .collect()
}

/// Stops a HAProxy and waits for it to go (it stops at once on `SIGTERM`).
async fn stop(pid: Pid) {
    let _ = rustix::process::kill_process(pid, Signal::TERM);
    for _ in 0..500 {
        if !is_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _ = rustix::process::kill_process(pid, Signal::KILL);
}

/// Whether a process still runs. A daemon is reparented to the host's init, which may be
/// slow to reap it: a zombie counts as gone.
fn is_alive(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero())).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z')
    })
}
