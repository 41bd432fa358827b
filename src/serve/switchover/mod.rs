//! `failover switchover`, run by the primary's daemon (asked by a shell on this node
//! through the system database, or by its standby's shell over the trusted channel):
//! the primary hands its role to the standby that streams from it, losing nothing.
//!
//! 1. Checks: this node is an active primary; exactly one standby secondary streams
//!    from it, and its trusted-host entry says how to reach it. A dry run stops here
//!    and says what would happen and how far the standby is behind.
//! 2. Device writes are held ([`crate::http::hold`]; 503 with `Retry-After`), once the
//!    writes under way have been answered, and `/status/status.html` reports the
//!    switchover. At most the settle time (`switchover settle`) and [`BOUND`] pass from
//!    here to the decision; past that, or when any step fails, writes resume and
//!    nothing changed.
//! 3. The standby is asked to *prepare*: apply up to this node's last change, prove the
//!    same content checksum there and sign the handover (the change, the checksum, the
//!    epochs: one past every epoch either node has seen).
//!    The settle time passes (a load balancer set up from the guide sees this node
//!    fail while the standby still says standby, and fails over).
//! 4. The decision, durable here: this node signs too and becomes the standby of the
//!    other node, following it, the signed handover in its records.
//! 5. The standby is asked to *commit*: it becomes primary at the new epoch with the
//!    same record. Should that answer not come, this node asks again until the standby
//!    says whether it took over (then this node stays its standby) or will not (then
//!    this node takes its role back); while nobody can tell, it stays a standby: two
//!    writable primaries are worse than none for a while. It says so loudly (HA log,
//!    mail) and the report's outcome is `in-doubt`.
//!
//! This module runs step 1 (and the runner that takes requests); steps 2 to 5 and their
//! endings are in [`hand`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::followers::{Followers, Live};
use crate::ha::{Mode, NodeStatus, Settings};
use crate::host::HostPort;
use crate::http::hold::WriteHold;
use crate::node::Node;
use crate::node::view::NodeView;
use crate::peer::message::{SwitchoverOutcome, SwitchoverReport, SwitchoverStep, SwitchoverTo};
use crate::peer::{Hello, Peer};
use crate::ssh::client::SshLink;

mod hand;

/// The longest device writes are held on the old primary before the switchover either
/// decided or gave up (and they resume).
pub const BOUND: Duration = Duration::from_secs(5);
/// How long an old primary that handed over keeps asking a silent standby whether it
/// took over.
const RESOLVE_FOR: Duration = Duration::from_secs(30);
/// How long the commit's answer is waited for.
const COMMIT_WAIT: Duration = Duration::from_secs(5);
/// How long the live view may take to show a role change (it polls every 50 ms).
const VIEW_WAIT: Duration = Duration::from_secs(5);

type Ask = (bool, String, Option<SwitchoverTo>, oneshot::Sender<SwitchoverReport>);

/// Where switchover requests go: the one runner of this daemon, one at a time.
#[derive(Clone)]
pub struct Switchovers(mpsc::Sender<Ask>);

impl Switchovers {
    /// Runs a switchover (or a dry run) for `asked_by` and says how it went.
    pub async fn ask(&self, dry_run: bool, asked_by: String, to: Option<SwitchoverTo>) -> SwitchoverReport {
        let (reply, answer) = oneshot::channel();
        if self.0.send((dry_run, asked_by, to, reply)).await.is_err() {
            return unrun(dry_run, "this node's daemon is stopping");
        }
        answer.await.unwrap_or_else(|_| unrun(dry_run, "this node's switchover runner stopped"))
    }
}

/// A report of a switchover that never started.
pub fn unrun(dry_run: bool, why: &str) -> SwitchoverReport {
    SwitchoverReport {
        dry_run,
        outcome: SwitchoverOutcome::Refused,
        detail: why.to_string(),
        from: String::new(),
        to: None,
        from_epoch: 0,
        to_epoch: None,
        seq: None,
        checksum: None,
        lag_changes: None,
        lag_ms: None,
        writes_held_ms: None,
        bound_ms: BOUND.as_millis() as u64,
        took_ms: 0,
        steps: Vec::new(),
    }
}

/// What the runner works with.
pub struct Parts {
    pub view: watch::Receiver<Arc<NodeView>>,
    pub data_dir: PathBuf,
    pub hold: Arc<WriteHold>,
    pub followers: Arc<Followers>,
    pub stop: watch::Receiver<bool>,
}

/// Starts the runner on a thread of its own (it reaches the standby with the node's
/// own connections); it ends when `stop` turns true.
pub fn spawn(parts: Parts) -> std::io::Result<(Switchovers, std::thread::JoinHandle<()>)> {
    let (asks, asked) = mpsc::channel(4);
    let thread = std::thread::Builder::new().name("switchover".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(subsystem = "switchover", error = %e, "cannot start the switchover runner");
                return;
            }
        };
        runtime.block_on(serve(parts, asked));
    })?;
    Ok((Switchovers(asks), thread))
}

async fn serve(mut parts: Parts, mut asked: mpsc::Receiver<Ask>) {
    // One connection for the shells' requests, kept for the daemon's life.
    let mut store = match crate::store::Store::open(&parts.data_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subsystem = "switchover", error = %e, "cannot open the system database; no switchover runs");
            return;
        }
    };
    loop {
        take_local(&parts, &mut store).await;
        tokio::select! {
            Some((dry_run, by, to, reply)) = asked.recv() => {
                let _ = reply.send(run(&parts, dry_run, &by, to.as_ref()).await);
            }
            changed = parts.view.changed() => if changed.is_err() { return },
            _ = parts.stop.changed() => return,
        }
        if *parts.stop.borrow() {
            return;
        }
    }
}

/// Runs the requests shells on this node left in the system database.
async fn take_local(parts: &Parts, store: &mut crate::store::Store) {
    loop {
        let stale = serde_json::to_string(&unrun(false, "asked while no daemon ran here; not run")).unwrap_or_default();
        let taken = store.take_switchover(&stale);
        let request = match taken {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(subsystem = "switchover", error = %e, "cannot read the switchover requests");
                return;
            }
        };
        let to = request.to_host.clone().map(SwitchoverTo::Host);
        let report = run(parts, request.dry_run, &request.asked_by, to.as_ref()).await;
        let text = serde_json::to_string(&report).unwrap_or_default();
        let finished = store.finish_switchover(&request.id, &text);
        if let Err(e) = finished {
            tracing::error!(subsystem = "switchover", error = %e, "cannot write a switchover's report");
        }
    }
}

/// One switchover, step by step.
struct Run<'a> {
    parts: &'a Parts,
    node: Node,
    started: Instant,
    report: SwitchoverReport,
    /// When device writes were held.
    held_at: Option<Instant>,
}

/// The standby, as this node found it.
struct Standby {
    live: Live,
    /// Its trusted-host entries (the same key may be trusted under several names).
    addresses: Vec<HostPort>,
    /// The one it was reached at.
    address: HostPort,
    name: String,
}

impl Run<'_> {
    fn step(&mut self, what: impl Into<String>) {
        let what = what.into();
        tracing::info!(subsystem = "switchover", "{what}");
        let at_ms = self.started.elapsed().as_millis() as u64;
        self.report.steps.push(SwitchoverStep { at_ms, what });
    }

    fn end(mut self, outcome: SwitchoverOutcome, detail: impl Into<String>) -> SwitchoverReport {
        self.report.outcome = outcome;
        self.report.detail = detail.into();
        self.report.took_ms = self.started.elapsed().as_millis() as u64;
        let level = match outcome {
            SwitchoverOutcome::Switched | SwitchoverOutcome::WouldSwitch | SwitchoverOutcome::WouldRefuse => "info",
            SwitchoverOutcome::InDoubt => "error",
            _ => "warning",
        };
        if !self.report.dry_run {
            let line = format!("switchover {outcome}: {}", self.report.detail);
            let _ = self.node.store.ha_log(level, &line);
        }
        self.report
    }

    fn note_held(&mut self, held_at: Instant) {
        self.report.writes_held_ms = Some(held_at.elapsed().as_millis() as u64);
    }

    /// Finds the standby that streams from this node (the one `to` names), and how to
    /// reach it.
    fn standby(&self, to: Option<&SwitchoverTo>) -> Result<Standby, String> {
        let wanted_key = match to {
            Some(SwitchoverTo::Host(host)) => {
                let host: HostPort = host.parse().map_err(|e| format!("{host}: {e}"))?;
                Some(crate::ssh::client::trusted_key(&self.node, &host).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let standbys: Vec<Live> = self
            .parts
            .followers
            .live()
            .into_iter()
            .filter(|l| {
                l.hello.as_ref().is_some_and(|h| h.mode == Mode::Secondary && h.node_status == NodeStatus::Standby)
            })
            .filter(|l| match to {
                Some(SwitchoverTo::Node(id)) => l.hello.as_ref().is_some_and(|h| &h.node_id == id),
                _ => wanted_key.as_ref().is_none_or(|k| k.key_data() == l.key.key_data()),
            })
            .collect();
        let live = match (standbys.len(), to) {
            (0, None) => {
                return Err("no standby streams from this node: set 'replication mode continuous' (or synchronous) on the secondary, in (config-ha)#".into());
            }
            (0, Some(_)) => return Err("that node is not a standby streaming from this node".into()),
            (1, _) => standbys.into_iter().next().ok_or("no standby")?,
            (n, _) => {
                let names: Vec<String> =
                    standbys.iter().filter_map(|l| l.hello.as_ref().map(|h| h.hostname.clone())).collect();
                return Err(format!(
                    "{n} standbys stream from this node ({}): name one with 'failover switchover to HOST'",
                    names.join(", ")
                ));
            }
        };
        let trusted = self.node.store.trusted_hosts().map_err(|e| e.to_string())?;
        let addresses: Vec<HostPort> = trusted
            .iter()
            .filter(|t| crate::node::keys::parse_public(&t.key).is_ok_and(|k| k.key_data() == live.key.key_data()))
            .filter_map(|t| t.host.parse().ok())
            .collect();
        if addresses.is_empty() {
            return Err(
                "the standby's key is not in this node's trusted hosts (with an address this node can parse)".into()
            );
        }
        let hostname = live.hello.as_ref().map(|h| h.hostname.clone()).unwrap_or_default();
        Ok(Standby { name: hostname, live, address: addresses[0].clone(), addresses })
    }

    /// Reaches the standby at the first of its trusted-host entries that answers.
    async fn reach(&self, standby: &mut Standby, ours: &Hello) -> Result<Peer<SshLink>, String> {
        let mut failures = Vec::new();
        for address in standby.addresses.clone() {
            match Peer::trusted(&self.node, &address, ours).await {
                Ok(peer) => {
                    standby.name = format!("{} ({address})", peer.hello().hostname);
                    standby.address = address;
                    return Ok(peer);
                }
                Err(e) => failures.push(format!("{address}: {e}")),
            }
        }
        Err(failures.join("; "))
    }
}

async fn run(parts: &Parts, dry_run: bool, asked_by: &str, to: Option<&SwitchoverTo>) -> SwitchoverReport {
    let node = match Node::open(&parts.data_dir) {
        Ok(n) => n,
        Err(e) => return unrun(dry_run, &format!("cannot open this node: {e}")),
    };
    let settings = parts.view.borrow().settings.clone();
    let mut report = unrun(dry_run, "");
    report.from = settings.hostname.clone();
    report.from_epoch = settings.epoch;
    report.bound_ms = (Duration::from_millis(u64::from(settings.switchover_settle_ms)) + BOUND).as_millis() as u64;
    let mut run = Run { parts, node, started: Instant::now(), report, held_at: None };
    run.step(format!("asked by {asked_by}{}", if dry_run { " (dry run)" } else { "" }));
    let refuse = if dry_run { SwitchoverOutcome::WouldRefuse } else { SwitchoverOutcome::Refused };
    if let Err(why) = primary_now(&settings) {
        return run.end(refuse, why);
    }
    let mut standby = match run.standby(to) {
        Ok(s) => s,
        Err(why) => return run.end(refuse, why),
    };
    let head = match run.node.core().and_then(|c| c.log_head()) {
        Ok(h) => h,
        Err(e) => return run.end(refuse, format!("cannot read this node's change log: {e}")),
    };
    let f = &standby.live.follower;
    let lag = (head.seq - f.applied_seq).max(0);
    let lag_ms = match (lag, f.applied_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())) {
        (0, _) => 0,
        (_, Some(at)) => (chrono::Utc::now() - at.with_timezone(&chrono::Utc)).num_milliseconds().max(0),
        (_, None) => (chrono::Utc::now() - connected(f)).num_milliseconds().max(0),
    };
    (run.report.lag_changes, run.report.lag_ms) = (Some(lag), Some(lag_ms));
    run.step(format!("standby {} streams from this node: {lag} changes behind ({lag_ms} ms)", standby.name));
    let ours = Hello::of(&settings, &run.node.id);
    let peer = match run.reach(&mut standby, &ours).await {
        Ok(p) => p,
        Err(e) => return run.end(refuse, format!("cannot reach the standby: {e}")),
    };
    run.report.to = Some(standby.name.clone());
    let to_epoch = settings.highest_epoch().max(peer.hello().epoch) + 1;
    run.report.to_epoch = Some(to_epoch);
    run.step(format!(
        "reached {}: epoch {}, the new primary's epoch will be {to_epoch}",
        standby.name,
        peer.hello().epoch
    ));
    if dry_run {
        peer.close().await;
        let detail = format!(
            "{} would become primary at epoch {to_epoch} and this node its standby; device writes would be held here for {} ms to {} ms while it applies the last {lag} changes",
            standby.name,
            settings.switchover_settle_ms,
            u128::from(settings.switchover_settle_ms) + BOUND.as_millis()
        );
        return run.end(SwitchoverOutcome::WouldSwitch, detail);
    }
    hand::hand(run, peer, standby, settings, to_epoch).await
}

/// Why this node cannot hand its role over, if it cannot.
fn primary_now(s: &Settings) -> Result<(), String> {
    if !s.enabled {
        return Err("HA is disabled on this node ('service enable' in (config-ha)#)".into());
    }
    if s.mode != Mode::Primary || s.state() != NodeStatus::Active {
        return Err(format!(
            "this node is not the primary (it is {} {}); run it on the primary, or from its standby",
            s.mode,
            s.state()
        ));
    }
    if let Some(why) = &s.stale {
        return Err(format!("this node is a stale primary ({why})"));
    }
    Ok(())
}

fn connected(f: &crate::store::StreamFollower) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(&f.connected_at)
        .map_or_else(|_| chrono::Utc::now(), |t| t.with_timezone(&chrono::Utc))
}
