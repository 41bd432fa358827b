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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::followers::{Followers, Live};
use super::handover::{sign, verify};
use crate::ha::{Cause, Mode, NodeStatus, Settings, hand_over, take_back};
use crate::host::HostPort;
use crate::http::hold::{Held, WriteHold};
use crate::node::Node;
use crate::node::view::NodeView;
use crate::peer::message::{
    HandoverAnswer, HandoverStep, SwitchoverOutcome, SwitchoverReport, SwitchoverStep, SwitchoverTo,
};
use crate::peer::{Hello, Peer};
use crate::ssh::client::SshLink;
use crate::store::{Handover, handover_statement, now_text};

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
    hand(run, peer, standby, settings, to_epoch).await
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

/// Steps 2 to 5: hold writes, prepare, decide, commit.
async fn hand(
    mut run: Run<'_>,
    mut peer: Peer<SshLink>,
    standby: Standby,
    before: Settings,
    to_epoch: u64,
) -> SwitchoverReport {
    let Some(held) = run.parts.hold.hold(BOUND).await else {
        peer.close().await;
        return run.end(
            SwitchoverOutcome::Aborted,
            format!("device writes under way did not finish within {} ms; nothing changed", BOUND.as_millis()),
        );
    };
    let held_at = Instant::now();
    run.held_at = Some(held_at);
    let settle = Duration::from_millis(u64::from(before.switchover_settle_ms));
    let deadline = held_at + settle + BOUND;
    run.report.bound_ms = (settle + BOUND).as_millis() as u64;
    let last = match run.node.core().and_then(|c| c.log_head()) {
        Ok(h) => h,
        Err(e) => {
            return abort(run, peer, None, held, held_at, format!("cannot read this node's change log: {e}")).await;
        }
    };
    run.step(format!("device writes held; this node's last change is {}", last.seq));
    (run.report.seq, run.report.checksum) = (Some(last.seq), Some(last.checksum.clone()));
    let id = handover_id();
    let prepare = HandoverStep::Prepare {
        id: id.clone(),
        seq: last.seq,
        checksum: last.checksum.clone(),
        from_epoch: before.epoch,
        to_epoch,
        ttl_ms: (settle + BOUND).as_millis() as u32,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let signature = match tokio::time::timeout(left, peer.handover(prepare)).await {
        Ok(Ok(HandoverAnswer::Prepared { signature })) => signature,
        Ok(Ok(HandoverAnswer::Refused { why })) => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby refused: {why}")).await;
        }
        Ok(Ok(other)) => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby answered {other:?} to prepare"))
                .await;
        }
        Ok(Err(e)) => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby did not answer: {e}")).await;
        }
        Err(_) => {
            let why = format!("the standby was not ready within {} ms", BOUND.as_millis());
            return abort(run, peer, Some(&id), held, held_at, why).await;
        }
    };
    let hello = peer.hello().clone();
    let statement =
        handover_statement(&id, last.seq, &last.checksum, (&run.node.id, before.epoch), (&hello.node_id, to_epoch));
    if !verify(&standby.live.key, &statement, &signature) {
        return abort(
            run,
            peer,
            Some(&id),
            held,
            held_at,
            "the standby's signature of the handover does not verify".into(),
        )
        .await;
    }
    run.step(format!("{} applied change {} and proved checksum {}", standby.name, last.seq, short(&last.checksum)));
    // The load balancer sees this node's status page fail while the standby still says
    // standby (switchover settle); a standby that breaks off meanwhile ends it here.
    tokio::select! {
        () = tokio::time::sleep_until((held_at + settle).into()) => {}
        e = peer.broke_off() => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby broke off while ready: {e}")).await;
        }
    }
    let moved = run.node.core().and_then(|c| c.log_head()).map(|h| h != last).unwrap_or(true);
    if moved || Instant::now() > deadline {
        let why = if moved { "this node's data changed while writes were held" } else { "the bound passed" };
        return abort(run, peer, Some(&id), held, held_at, why.into()).await;
    }
    let ours = match sign(&run.parts.data_dir, &statement) {
        Ok(s) => s,
        Err(why) => return abort(run, peer, Some(&id), held, held_at, why).await,
    };
    let handover = Handover {
        id: id.clone(),
        at: now_text(),
        seq: last.seq,
        checksum: last.checksum.clone(),
        from_node: run.node.id.clone(),
        from_host: before.hostname.clone(),
        from_epoch: before.epoch,
        to_node: hello.node_id.clone(),
        to_host: hello.hostname.clone(),
        to_epoch,
        from_signature: ours.clone(),
        to_signature: signature,
    };
    let cause = Cause { actor: "switchover".into(), reason: format!("switchover to {} (handover {id})", standby.name) };
    if let Err(e) = hand_over(&mut run.node.store, &cause, &handover, &standby.address) {
        return abort(run, peer, Some(&id), held, held_at, format!("cannot record the handover here: {e}")).await;
    }
    held.handed_over();
    run.note_held(held_at);
    run.step("handed over: this node is now a standby of the new primary");
    let commit = HandoverStep::Commit { id: id.clone(), signature: ours };
    if let Err(e) = peer.handover_send(commit).await {
        // It never left: the standby cannot take over without it.
        peer.close().await;
        return back(run, held, &before, &handover, format!("the commit could not be sent: {e}")).await;
    }
    let answer = tokio::time::timeout(COMMIT_WAIT, peer.handover_answer()).await;
    peer.close().await;
    match answer {
        Ok(Ok(HandoverAnswer::Committed)) => switched(run, held, &standby, &handover).await,
        Ok(Ok(HandoverAnswer::Refused { why })) => {
            back(run, held, &before, &handover, format!("the standby refused to take over: {why}")).await
        }
        Ok(Ok(other)) => back(run, held, &before, &handover, format!("the standby answered {other:?} to commit")).await,
        Ok(Err(_)) | Err(_) => resolve(run, held, &standby, &before, &handover).await,
    }
}

async fn switched(mut run: Run<'_>, held: Held, standby: &Standby, h: &Handover) -> SwitchoverReport {
    run.step(format!("{} took over at epoch {}", standby.name, h.to_epoch));
    // Writes stay held until the live view has this node as a standby, which refuses them.
    let mut view = run.parts.view.clone();
    match view_shows(&mut view, |s| s.mode == Mode::Secondary).await {
        true => drop(held),
        false => held.keep(),
    }
    let detail = format!(
        "{} is primary at epoch {} from change {} (checksum {}); this node follows it",
        standby.name,
        h.to_epoch,
        h.seq,
        short(&h.checksum)
    );
    let event = crate::notify::Event::Switchover { to: standby.name.clone(), detail: detail.clone(), done: true };
    crate::notify::raise_or_log(&mut run.node.store, &run.node.id, &event);
    run.end(SwitchoverOutcome::Switched, detail)
}

/// The standby said it did not take over: this node is the primary again.
async fn back(mut run: Run<'_>, held: Held, before: &Settings, h: &Handover, why: String) -> SwitchoverReport {
    let cause = Cause { actor: "switchover".into(), reason: format!("handover {} did not happen: {why}", h.id) };
    if let Err(e) = take_back(&mut run.node.store, &cause, before, h) {
        held.keep();
        let detail = format!(
            "{why}; and this node could not take its role back ({e}): it takes no writes; run 'failover mode primary'"
        );
        return run.end(SwitchoverOutcome::InDoubt, detail);
    }
    let mut view = run.parts.view.clone();
    let _ = view_shows(&mut view, |s| s.mode == Mode::Primary).await;
    drop(held);
    if let Some(at) = run.held_at {
        run.note_held(at);
    }
    run.step("this node is the primary again");
    let held_ms = run.report.writes_held_ms.unwrap_or_default();
    run.end(
        SwitchoverOutcome::Aborted,
        format!("{why}; this node took writes again ({held_ms} ms held) and nothing changed"),
    )
}

/// The commit's answer did not come: ask until the standby says what it did.
async fn resolve(mut run: Run<'_>, held: Held, standby: &Standby, before: &Settings, h: &Handover) -> SwitchoverReport {
    run.step(format!("{} did not answer the commit; asking it what it did", standby.name));
    let settings = run.parts.view.borrow().settings.clone();
    let ours = Hello::of(&settings, &run.node.id);
    let until = Instant::now() + RESOLVE_FOR;
    while Instant::now() < until {
        if let Ok(mut peer) = Peer::trusted(&run.node, &standby.address, &ours).await {
            let answer =
                tokio::time::timeout(COMMIT_WAIT, peer.handover(HandoverStep::Abort { id: h.id.clone() })).await;
            peer.close().await;
            match answer {
                Ok(Ok(HandoverAnswer::Committed)) => return switched(run, held, standby, h).await,
                Ok(Ok(HandoverAnswer::Aborted)) => {
                    return back(run, held, before, h, format!("{} did not take over", standby.name)).await;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    held.keep();
    let detail = format!(
        "this node handed over to {} at change {}, which did not say within {} s whether it took over; this node stays its standby",
        standby.name,
        h.seq,
        RESOLVE_FOR.as_secs()
    );
    let event = crate::notify::Event::Switchover { to: standby.name.clone(), detail: detail.clone(), done: false };
    crate::notify::raise_or_log(&mut run.node.store, &run.node.id, &event);
    run.end(SwitchoverOutcome::InDoubt, detail)
}

/// Before the decision: tell the standby to forget it (when it may have prepared) and
/// take writes again.
async fn abort(
    mut run: Run<'_>,
    mut peer: Peer<SshLink>,
    id: Option<&str>,
    held: Held,
    held_at: Instant,
    why: String,
) -> SwitchoverReport {
    if let Some(id) = id {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), peer.handover(HandoverStep::Abort { id: id.into() })).await;
    }
    peer.close().await;
    drop(held);
    run.note_held(held_at);
    let held_ms = run.report.writes_held_ms.unwrap_or_default();
    run.end(
        SwitchoverOutcome::Aborted,
        format!("{why}; this node took writes again ({held_ms} ms held) and nothing changed"),
    )
}

async fn view_shows(view: &mut watch::Receiver<Arc<NodeView>>, want: impl Fn(&Settings) -> bool) -> bool {
    let wait = async {
        loop {
            if want(&view.borrow_and_update().settings) {
                return true;
            }
            if view.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(VIEW_WAIT, wait).await.unwrap_or(false)
}

fn handover_id() -> String {
    let mut raw = [0u8; 8];
    let _ = getrandom::fill(&mut raw);
    format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"), hex::encode(raw))
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}
