//! HAProxy's runtime API (the stats socket) and what the driver reads and writes through
//! it: the slots of each backend (`show stat`), the steps that move targets in and out of
//! slots (a pure plan, unit-tested), and the health a slot's row reports.

use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Error, Result, Target, TargetState, UnhealthyReason};

/// How long one runtime command may take (HAProxy answers in microseconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The starts of the runtime API's refusals (its successes say nothing or what changed).
const REFUSALS: &[&str] = &[
    "No such",
    "Unknown command",
    "usage:",
    "Require",
    "Permission denied",
    "Invalid",
    "Can't",
    "Cannot",
    "cannot",
    "Missing",
];

/// Sends one line of commands (separated by `;`) and returns the answer; a refusal of any
/// of them is an error.
pub async fn send(socket: &Path, commands: &str) -> Result<String> {
    let exchange = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream.write_all(format!("{commands}\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .map_err(|_| Error::Runtime {
            command: commands.to_owned(),
            answer: "no answer in time".into(),
        })??;
    let refused = answer
        .lines()
        .any(|line| REFUSALS.iter().any(|r| line.trim_start().starts_with(r)));
    if refused {
        return Err(Error::Runtime {
            command: commands.to_owned(),
            answer: answer.trim().to_owned(),
        });
    }
    Ok(answer)
}

/// One server (slot) line of `show stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRow {
    pub backend: String,
    pub server: String,
    /// `UP`, `DOWN`, `UP 1/3`, `DOWN 1/2`, `MAINT`, `DRAIN`, `no check`…
    pub status: String,
    pub addr: Option<SocketAddrV4>,
    /// The last check's result (`L7OK`, `L7STS`, `L4TOUT`, `L4CON`, `INI`…).
    pub check_status: String,
    /// Connections open now.
    pub sessions: u64,
}

impl ServerRow {
    /// The target in this slot: none when it is free (in maintenance).
    pub fn target(&self) -> Option<Target> {
        if self.status.starts_with("MAINT") {
            return None;
        }
        self.addr.map(|a| Target {
            ip: *a.ip(),
            port: a.port(),
        })
    }

    pub fn draining(&self) -> bool {
        self.status.starts_with("DRAIN")
    }
}

/// One line of `show stat` (a frontend, a backend or a server), its fields by the
/// header's column names.
pub type StatLine<'a> = BTreeMap<&'a str, &'a str>;

/// The lines of `show stat`'s CSV.
pub fn stat_lines(text: &str) -> Vec<StatLine<'_>> {
    let mut lines = text.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split(',').collect();
    lines
        .filter(|line| !line.is_empty())
        .map(|line| columns.iter().copied().zip(line.split(',')).collect())
        .collect()
}

/// The server (slot) rows of `show stat`.
pub fn parse_stat(text: &str) -> Vec<ServerRow> {
    stat_lines(text)
        .iter()
        .filter_map(|line| {
            let field = |name: &str| line.get(name).copied().unwrap_or_default();
            let server = field("svname");
            if server.is_empty() || server == "FRONTEND" || server == "BACKEND" {
                return None;
            }
            Some(ServerRow {
                backend: field("pxname").to_owned(),
                server: server.to_owned(),
                status: field("status").to_owned(),
                addr: field("addr").parse().ok(),
                check_status: field("check_status").trim_start_matches("* ").to_owned(),
                sessions: field("scur").parse().unwrap_or(0),
            })
        })
        .collect()
}

/// A change to one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Puts a target into a free slot. A new target starts down and must pass its healthy
    /// threshold (AWS's `initial`); one carried over from a replaced process starts up.
    Place {
        slot: String,
        target: Target,
        start_down: bool,
    },
    /// A deregistered target takes no new connections.
    Drain { slot: String },
    /// A draining target registered again.
    Ready { slot: String },
    /// Frees a slot: maintenance, and whatever connections are left are closed.
    Free { slot: String },
}

impl Step {
    /// The runtime commands of this step on `backend`, as one line.
    pub fn commands(&self, backend: &str) -> String {
        match self {
            Step::Place {
                slot,
                target,
                start_down,
            } => {
                let server = format!("{backend}/{slot}");
                let addr = format!(
                    "set server {server} addr {} port {}",
                    target.ip, target.port
                );
                if *start_down {
                    // Weight 0 until it is marked down, so that no request reaches it in
                    // between: it leaves maintenance assumed up.
                    format!(
                        "{addr}; set server {server} weight 0; set server {server} state ready; set server {server} health down; set server {server} weight 1"
                    )
                } else {
                    format!("{addr}; set server {server} state ready")
                }
            }
            Step::Drain { slot } => format!("set server {backend}/{slot} state drain"),
            Step::Ready { slot } => format!("set server {backend}/{slot} state ready"),
            Step::Free { slot } => format!(
                "set server {backend}/{slot} state maint; shutdown sessions server {backend}/{slot}"
            ),
        }
    }
}

/// The steps that bring one backend's slots to `wanted`. `drains` holds when each draining
/// target of the group is released (kept by the caller between plans); a drain ends at
/// that time or once the target has no connection left.
pub fn plan(
    wanted: &[Target],
    slots: &[ServerRow],
    drains: &mut BTreeMap<Target, Instant>,
    delay: Duration,
    now: Instant,
    assume_up: &dyn Fn(&Target) -> bool,
) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let mut free = Vec::new();
    let mut placed = Vec::new();
    // Slots still draining, with when they are released, to take early if room runs out.
    let mut draining = Vec::new();
    for row in slots {
        let slot = row.server.clone();
        let Some(target) = row.target() else {
            free.push(slot);
            continue;
        };
        // A drained server that is down still shows `DOWN`: the plan's memory says it drains.
        let is_draining = row.draining() || drains.contains_key(&target);
        if wanted.contains(&target) && !placed.contains(&target) {
            placed.push(target);
            if drains.remove(&target).is_some() || row.draining() {
                steps.push(Step::Ready { slot });
            }
            continue;
        }
        if !is_draining && !delay.is_zero() {
            drains.insert(target, now + delay);
            steps.push(Step::Drain { slot: slot.clone() });
            draining.push((now + delay, slot, target));
            continue;
        }
        let until = *drains.entry(target).or_insert(now + delay);
        if is_draining && row.sessions > 0 && until > now {
            draining.push((until, slot, target));
            continue;
        }
        drains.remove(&target);
        steps.push(Step::Free { slot: slot.clone() });
        free.push(slot);
    }
    draining.sort();
    let mut draining = draining.into_iter();
    let unplaced: Vec<Target> = wanted
        .iter()
        .filter(|t| !placed.contains(t))
        .copied()
        .collect();
    for target in &unplaced {
        let slot = match free.pop() {
            Some(slot) => slot,
            None => {
                // Every slot holds a target: the drain ending soonest ends now.
                let (_, slot, drained) = draining
                    .next()
                    .ok_or_else(|| Error::Invalid(format!("no slot left for target {target}")))?;
                drains.remove(&drained);
                steps.push(Step::Free { slot: slot.clone() });
                slot
            }
        };
        steps.push(Step::Place {
            slot,
            target: *target,
            start_down: !assume_up(target),
        });
    }
    drains.retain(|target, _| !wanted.contains(target));
    Ok(steps)
}

/// When a target was put in its slot, and whether it has been seen healthy since.
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub at: Instant,
    pub seen_up: bool,
}

/// How the target in a slot fares; one no longer `wanted` is draining. A target that has never been up since it was placed is
/// `initial` for as long as its unhealthy threshold of checks takes; after that, or once it
/// has been up, a down target is unhealthy for the reason its last check gives.
pub fn state_of(
    row: &ServerRow,
    wanted: bool,
    placement: Option<&mut Placement>,
    initial_window: Duration,
    now: Instant,
) -> Option<TargetState> {
    row.target()?;
    if row.draining() || !wanted {
        return Some(TargetState::Draining);
    }
    let up = ["UP", "NOLB", "no check"]
        .iter()
        .any(|s| row.status.starts_with(s));
    if up {
        if let Some(placement) = placement {
            placement.seen_up = true;
        }
        return Some(TargetState::Healthy);
    }
    let initial = row.check_status == "INI"
        || placement.is_some_and(|p| !p.seen_up && now.duration_since(p.at) < initial_window);
    if initial {
        return Some(TargetState::Initial);
    }
    let reason = match row.check_status.as_str() {
        "L4TOUT" | "L6TOUT" | "L7TOUT" => UnhealthyReason::Timeout,
        "L7STS" => UnhealthyReason::ResponseCodeMismatch,
        _ => UnhealthyReason::Failed,
    };
    Some(TargetState::Unhealthy(reason))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `show stat` of HAProxy 2.6.12: a target up, one refusing connections, a free slot.
    pub(crate) const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n\
listener-80,FRONTEND,,,0,1,9984,1,82,183,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,1,0,1,,,,0,1,0,0,0,0,,1,1,1,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,1,1,1,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,79,283,0,0,\n\
tg-web,slot1,0,0,0,1,,1,82,183,,0,,0,0,0,0,UP,1,1,0,0,0,3,0,,1,3,1,,1,,2,1,,1,L7OK,200,0,0,1,0,0,0,0,,,,1,0,0,,,,,0,,,0,0,0,0,,,,Layer7 check passed,,2,2,3,,,,127.0.0.1:18001,4cfe4cdbcb23bebc,http,,,,,,,,0,1,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\
tg-web,slot2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,2,2,,1,3,2,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,2,0,,,,127.0.0.1:18009,f12081876aac0fd3,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\
tg-web,slot3,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,0,4,4,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,0.0.0.0:0,2e7a57c110c161f3,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\
tg-web,BACKEND,0,0,0,1,999,1,82,183,0,0,,0,0,0,0,UP,1,1,0,,0,3,0,,1,3,0,,1,,1,1,,1,,,,0,1,0,0,0,0,,,,1,0,0,0,0,0,0,0,,,0,0,0,0,,,,,,,,,,,,,AWSALB,http,roundrobin,,,,,,,0,1,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,7,7,766,259,0,0,\n";

    fn target(last: u8) -> Target {
        Target {
            ip: std::net::Ipv4Addr::new(10, 0, 1, last),
            port: 80,
        }
    }

    fn row(server: &str, status: &str, target: Option<Target>, sessions: u64) -> ServerRow {
        ServerRow {
            backend: "tg-web".into(),
            server: server.into(),
            status: status.into(),
            addr: target.map(|t| SocketAddrV4::new(t.ip, t.port)),
            check_status: "L7OK".into(),
            sessions,
        }
    }

    #[test]
    fn show_stat_gives_each_slot_its_target_and_check() {
        let rows = parse_stat(STAT);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].server, "slot1");
        assert_eq!(
            rows[0].target().map(|t| t.to_string()).as_deref(),
            Some("127.0.0.1:18001")
        );
        assert_eq!(rows[1].check_status, "L4CON");
        assert_eq!(rows[2].target(), None, "a slot in maintenance is free");
        let now = Instant::now();
        let window = Duration::from_secs(10);
        assert_eq!(
            state_of(&rows[0], true, None, window, now),
            Some(TargetState::Healthy)
        );
        assert_eq!(
            state_of(&rows[1], true, None, window, now),
            Some(TargetState::Unhealthy(UnhealthyReason::Failed))
        );
        assert_eq!(
            state_of(&rows[0], false, None, window, now),
            Some(TargetState::Draining)
        );
        let mut timed_out = rows[1].clone();
        timed_out.check_status = "L4TOUT".into();
        assert_eq!(
            state_of(&timed_out, true, None, window, now),
            Some(TargetState::Unhealthy(UnhealthyReason::Timeout))
        );
    }

    #[test]
    fn a_new_target_is_initial_until_up_or_out_of_time() {
        let now = Instant::now();
        let window = Duration::from_secs(10);
        let mut down = row("slot1", "DOWN", Some(target(1)), 0);
        down.check_status = "L7STS".into();
        let mut fresh = Placement {
            at: now,
            seen_up: false,
        };
        assert_eq!(
            state_of(&down, true, Some(&mut fresh), window, now),
            Some(TargetState::Initial)
        );
        let later = now + window;
        assert_eq!(
            state_of(&down, true, Some(&mut fresh), window, later),
            Some(TargetState::Unhealthy(
                UnhealthyReason::ResponseCodeMismatch
            ))
        );
        let up = row("slot1", "UP 1/2", Some(target(1)), 0);
        assert_eq!(
            state_of(&up, true, Some(&mut fresh), window, now),
            Some(TargetState::Healthy)
        );
        assert!(fresh.seen_up);
        down.check_status = "L4CON".into();
        assert_eq!(
            state_of(&down, true, Some(&mut fresh), window, now),
            Some(TargetState::Unhealthy(UnhealthyReason::Failed)),
            "once up, a failure counts at once"
        );
        let draining = row("slot1", "DRAIN", Some(target(1)), 0);
        assert_eq!(
            state_of(&draining, true, None, window, now),
            Some(TargetState::Draining)
        );
    }

    #[test]
    fn targets_move_into_free_slots_and_removed_ones_drain() {
        let now = Instant::now();
        let delay = Duration::from_secs(300);
        let slots = vec![
            row("slot1", "UP", Some(target(1)), 0),
            row("slot2", "UP", Some(target(2)), 3),
            row("slot3", "MAINT", None, 0),
            row("slot4", "MAINT", None, 0),
        ];
        let mut drains = BTreeMap::new();
        let steps = plan(
            &[target(1), target(3)],
            &slots,
            &mut drains,
            delay,
            now,
            &|_| false,
        )
        .expect("plan");
        assert_eq!(
            steps,
            vec![
                Step::Drain {
                    slot: "slot2".into()
                },
                Step::Place {
                    slot: "slot4".into(),
                    target: target(3),
                    start_down: true
                },
            ]
        );
        assert_eq!(drains.get(&target(2)), Some(&(now + delay)));

        // Still connected before the delay: it stays; at the delay it is freed.
        let slots = vec![
            row("slot1", "UP", Some(target(1)), 0),
            row("slot2", "DRAIN", Some(target(2)), 3),
            row("slot3", "MAINT", None, 0),
            row("slot4", "UP", Some(target(3)), 0),
        ];
        let wanted = [target(1), target(3)];
        assert_eq!(
            plan(&wanted, &slots, &mut drains, delay, now, &|_| false).expect("plan"),
            vec![]
        );
        assert_eq!(
            plan(&wanted, &slots, &mut drains, delay, now + delay, &|_| false).expect("plan"),
            vec![Step::Free {
                slot: "slot2".into()
            }]
        );
        assert!(drains.is_empty());
    }

    #[test]
    fn drains_end_without_connections_or_delay_and_end_early_for_room() {
        let now = Instant::now();
        let delay = Duration::from_secs(300);
        let mut drains = BTreeMap::new();
        let idle = vec![row("slot1", "DRAIN", Some(target(1)), 0)];
        assert_eq!(
            plan(&[], &idle, &mut drains, delay, now, &|_| true).expect("plan"),
            vec![Step::Free {
                slot: "slot1".into()
            }]
        );
        let up = vec![row("slot1", "UP", Some(target(1)), 5)];
        assert_eq!(
            plan(&[], &up, &mut drains, Duration::ZERO, now, &|_| true).expect("plan"),
            vec![Step::Free {
                slot: "slot1".into()
            }],
            "no delay: freed at once"
        );
        let busy = vec![row("slot1", "DRAIN", Some(target(1)), 5)];
        drains.insert(target(1), now + delay);
        assert_eq!(
            plan(&[target(2)], &busy, &mut drains, delay, now, &|_| true).expect("plan"),
            vec![
                Step::Free {
                    slot: "slot1".into()
                },
                Step::Place {
                    slot: "slot1".into(),
                    target: target(2),
                    start_down: false
                },
            ]
        );
        // A target down when drained still shows DOWN: the drain is remembered.
        let down = vec![row("slot1", "DOWN", Some(target(1)), 1)];
        drains.insert(target(1), now + delay);
        assert_eq!(
            plan(&[], &down, &mut drains, delay, now, &|_| true).expect("plan"),
            vec![]
        );
        let down = vec![row("slot1", "DOWN", Some(target(1)), 0)];
        assert_eq!(
            plan(&[], &down, &mut drains, delay, now, &|_| true).expect("plan"),
            vec![Step::Free {
                slot: "slot1".into()
            }]
        );
        drains.insert(target(1), now + delay);
        let registered_again = vec![row("slot1", "DRAIN", Some(target(1)), 5)];
        assert_eq!(
            plan(
                &[target(1)],
                &registered_again,
                &mut drains,
                delay,
                now,
                &|_| true
            )
            .expect("plan"),
            vec![Step::Ready {
                slot: "slot1".into()
            }]
        );
    }

    #[test]
    fn a_new_target_leaves_maintenance_with_no_weight_until_it_is_down() {
        let step = Step::Place {
            slot: "slot2".into(),
            target: target(7),
            start_down: true,
        };
        assert_eq!(
            step.commands("tg-web"),
            "set server tg-web/slot2 addr 10.0.1.7 port 80; set server tg-web/slot2 weight 0; set server tg-web/slot2 state ready; set server tg-web/slot2 health down; set server tg-web/slot2 weight 1"
        );
        assert_eq!(
            Step::Free {
                slot: "slot2".into()
            }
            .commands("tg-web"),
            "set server tg-web/slot2 state maint; shutdown sessions server tg-web/slot2"
        );
    }
}
