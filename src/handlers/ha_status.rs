//! What an operator checks first, in the spirit of ASA's `show failover`: this node's HA
//! state, the peer as the heartbeat sees it, a misconfigured heartbeat, whether this
//! secondary may promote itself, the replication chain, how it replicates (its streams
//! both ways: `replication_view`), the last failover and its reason, stale and clock
//! warnings (`show failover`); every mode and state change
//! (`show failover history`); the HA module log (`show logging high-availability`);
//! and the writes a full sync replaced (`show failover divergence`).

use chrono::Utc;
use serde::Serialize;
use tabled::Tabled;

use super::quorum_view::QuorumView;
use super::replication_view::Replication;
use super::show::last;
use super::{Ctx, next_sync_text};
use crate::cli::Args;
use crate::ha::heartbeat::CLOCK_WARN_MS;
use crate::ha::{Mode, Readiness, Settings};
use crate::peer::hello::version_mismatch;
use crate::replication::divergence::Kept;
use crate::report::{CmdError, Reply, Text, fields, table};
use crate::store::{ChainLink, HaLogEntry, HistoryEntry, PeerStatus, SyncSummary};

/// `show failover`.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Failover {
    hostname: String,
    high_availability: &'static str,
    mode: String,
    state: String,
    epoch: u64,
    /// Why this primary is stale (a newer primary exists), when it is.
    stale: Option<String>,
    client_connections: &'static str,
    primary_host: Option<String>,
    last_sync: Option<SyncSummary>,
    next_sync: Option<String>,
    next_sync_text: String,
    heartbeat_interval: u32,
    heartbeat_failures: u32,
    heartbeat_recheck_interval: u32,
    on_failure: String,
    /// A configuration error that keeps the heartbeat from telling whether the primary
    /// is alive (no automatic failover while it lasts).
    heartbeat_alarm: Option<String>,
    /// Whether this secondary may promote itself now, and why not when it may not.
    failover_ready: Option<bool>,
    failover_readiness: Option<String>,
    /// The replication chain, from the primary at the top down to the last follower.
    chain: Vec<ChainNode>,
    /// The peers as the heartbeat last saw them.
    peers: Vec<PeerStatus>,
    /// Peers that run another release, and which node to upgrade.
    version_mismatches: Vec<String>,
    /// The last promotion of this node, with who or what caused it and why.
    last_failover: Option<HistoryEntry>,
    /// How this node replicates, and its streams both ways.
    #[serde(flatten)]
    replication: Replication,
    /// The witness and the quorum's engine, when one is configured.
    #[serde(flatten)]
    quorum: QuorumView,
}

/// One node of the chain as `show failover` draws it.
#[derive(Serialize, schemars::JsonSchema)]
struct ChainNode {
    hostname: String,
    node_id: String,
    mode: String,
    node_status: String,
    epoch: u64,
    /// `upstream`, `this node` or `follower`.
    relation: &'static str,
}

impl ChainNode {
    fn of(l: &ChainLink, relation: &'static str) -> ChainNode {
        ChainNode {
            hostname: l.hostname.clone(),
            node_id: l.node_id.clone(),
            mode: l.mode.clone(),
            node_status: l.node_status.clone(),
            epoch: l.epoch,
            relation,
        }
    }

    fn text(&self) -> String {
        let role =
            if self.mode == "primary" { "primary".to_string() } else { format!("{} {}", self.mode, self.node_status) };
        match self.relation {
            "this node" => format!("{} (this node, {role}, epoch {})", self.hostname, self.epoch),
            relation => format!("{} ({relation}, {role}, epoch {})", self.hostname, self.epoch),
        }
    }
}

/// The chain from the top: what this node's primary relayed above it, its primary, this
/// node, and the followers it recorded (with theirs).
fn chain(s: &Settings, node_id: &str, up: &[ChainLink], down: &[ChainLink]) -> Vec<ChainNode> {
    let mut nodes: Vec<ChainNode> = up.iter().rev().map(|l| ChainNode::of(l, "upstream")).collect();
    nodes.push(ChainNode {
        hostname: s.hostname.clone(),
        node_id: node_id.to_string(),
        mode: s.mode.to_string(),
        node_status: s.state().to_string(),
        epoch: s.epoch,
        relation: "this node",
    });
    nodes.extend(down.iter().map(|l| ChainNode::of(l, "follower")));
    nodes
}

fn enabled(on: bool) -> &'static str {
    if on { "enabled" } else { "disabled" }
}

fn peer_line(p: &PeerStatus) -> String {
    let what = if p.role == "primary" { "primary-host" } else { "peer" };
    let state = if p.reachable {
        format!("reachable, checked {}", p.checked_at)
    } else {
        format!("UNREACHABLE ({} failed probes: {})", p.failures, p.error)
    };
    let seen = match (&p.last_seen, &p.mode) {
        (Some(at), Some(mode)) => format!(
            "; last seen {at}: {} mode {mode}, epoch {}, version {}, clock offset {}",
            p.hostname.as_deref().unwrap_or("?"),
            p.epoch.unwrap_or(0),
            p.version.as_deref().unwrap_or("?"),
            p.offset_ms.map_or_else(|| "unknown".into(), |o| format!("{o:+} ms"))
        ),
        _ => "; never seen".into(),
    };
    format!("{} ({what}): {state}{seen}", p.host)
}

impl Text for Failover {
    fn text(&self) -> String {
        let last = match &self.last_sync {
            Some(s) => format!(
                "{} from {} ({}, {})",
                s.finished_at.as_deref().unwrap_or(&s.started_at),
                s.peer,
                s.kind,
                s.result
            ),
            None => "never".into(),
        };
        let mut rows = vec![
            ("High availability", self.high_availability.to_string()),
            ("Mode", self.mode.clone()),
            ("State", self.state.clone()),
            ("Epoch", self.epoch.to_string()),
        ];
        if let Some(stale) = &self.stale {
            rows.push((
                "STALE PRIMARY",
                format!("{stale}; recover with 'failover mode secondary', then 'failover sync'"),
            ));
        }
        rows.extend([
            ("Client connections", self.client_connections.to_string()),
            ("Primary host", self.primary_host.clone().unwrap_or_else(|| "not configured".into())),
            ("Last sync", last),
            ("Next sync", self.next_sync_text.clone()),
            (
                "Heartbeat",
                match &self.heartbeat_alarm {
                    Some(alarm) => format!(
                        "MISCONFIGURED: {alarm}; no automatic failover until it is fixed (every {} s)",
                        self.heartbeat_interval
                    ),
                    None => format!(
                        "every {} s, re-check every {} s, {} failures before {}",
                        self.heartbeat_interval,
                        self.heartbeat_recheck_interval,
                        self.heartbeat_failures,
                        self.on_failure
                    ),
                },
            ),
            ("Replication", self.replication.summary()),
        ]);
        if let (Some(ready), Some(why)) = (self.failover_ready, &self.failover_readiness) {
            let verdict = if ready { "ready" } else { "NOT READY" };
            rows.push(("Failover readiness", format!("{verdict}: {why}")));
        }
        if self.chain.len() > 1 {
            rows.push(("Chain", self.chain.iter().map(ChainNode::text).collect::<Vec<_>>().join(" -> ")));
        }
        for p in &self.peers {
            rows.push(("Peer", peer_line(p)));
            if let Some(o) = p.offset_ms.filter(|o| o.abs() > CLOCK_WARN_MS) {
                rows.push(("WARNING", format!("clock offset to {} is {o:+} ms: set both nodes' clocks (NTP)", p.host)));
            }
        }
        rows.extend(self.replication.rows());
        rows.extend(self.quorum.rows(Utc::now()));
        for mismatch in &self.version_mismatches {
            rows.push(("WARNING", format!("{mismatch}; replication stops until then")));
        }
        let failover = match &self.last_failover {
            Some(h) => format!("{} by {}: {}", h.at, h.actor, h.reason),
            None => "never".into(),
        };
        rows.push(("Last failover", failover));
        fields(&rows)
    }
}

pub fn show_failover(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let s = ctx.settings()?;
    let store = &ctx.node.store;
    let last_failover = store.last_promotion()?;
    let peers = store.peer_statuses()?;
    let ours = crate::peer::hello::reported_version();
    let (up, down) = store.chain_links_of(&peers)?;
    let primary = peers.iter().find(|p| p.role == "primary");
    let heartbeat_alarm = primary.and_then(|p| p.alarm.clone());
    let readiness = match (&s.primary_host, s.mode) {
        (Some(host), Mode::Secondary) => {
            let host = host.to_string();
            let node = primary.and_then(|p| p.node_id.as_deref());
            let r = Readiness::of(&s, &host, node, Utc::now());
            Some((r.ready(), r.describe(&s, &host)))
        }
        _ => None,
    };
    let mut failover = Failover {
        hostname: s.hostname.clone(),
        high_availability: enabled(s.enabled),
        mode: s.mode.to_string(),
        state: s.state().to_string(),
        epoch: s.epoch,
        stale: s.stale.clone(),
        client_connections: enabled(s.client_connections),
        primary_host: s.primary_host.as_ref().map(ToString::to_string),
        last_sync: store.last_sync()?,
        next_sync: s.next_sync_after(Utc::now()).ok().map(|t| t.to_rfc3339()),
        next_sync_text: next_sync_text(&s),
        heartbeat_interval: s.heartbeat_interval,
        heartbeat_failures: s.heartbeat_failures,
        heartbeat_recheck_interval: s.heartbeat_recheck,
        on_failure: s.on_failure.to_string(),
        heartbeat_alarm,
        failover_ready: readiness.as_ref().map(|r| r.0),
        failover_readiness: readiness.map(|r| r.1),
        chain: chain(&s, &ctx.node.id, &up, &down),
        version_mismatches: peers
            .iter()
            .filter_map(|p| {
                let name = p.hostname.clone().unwrap_or_else(|| p.host.clone());
                version_mismatch(&ours, &name, p.version.as_deref()?)
            })
            .collect(),
        peers,
        last_failover,
        replication: Replication::default(),
        quorum: QuorumView::of(&s, &ctx.node.data_dir),
    };
    let replication = Replication::of(&s, &ctx.node.store, Utc::now())?;
    // Where the change log ends matters only to the streams this node feeds: a node that
    // feeds none shows its state without opening the Core data.
    failover.replication =
        if replication.feeds() { replication.with_head(ctx.node.log_head()?.seq) } else { replication };
    Ok(Reply::show(failover))
}

#[derive(Tabled)]
struct LogRow<'a> {
    #[tabled(rename = "Time (UTC)")]
    at: &'a str,
    #[tabled(rename = "Level")]
    level: &'a str,
    #[tabled(rename = "Message")]
    message: &'a str,
}

/// `show logging high-availability`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct HaLog(Vec<HaLogEntry>);

impl Text for HaLog {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "The HA module log is empty: the heartbeat runs in the daemon ('coresh serve') while high availability is enabled.".into();
        }
        table(&self.0.iter().map(|e| LogRow { at: &e.at, level: &e.level, message: &e.message }).collect::<Vec<_>>())
    }
}

/// Lines `show logging high-availability` prints unless told otherwise.
const LOG_DEFAULT: u64 = 100;

pub fn show_logging_ha(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(HaLog(ctx.node.store.ha_log_entries(Some(last(args).unwrap_or(LOG_DEFAULT)))?)))
}

#[derive(Tabled)]
struct KeptRow<'a> {
    #[tabled(rename = "Detected (UTC)")]
    at: &'a str,
    #[tabled(rename = "Replaced by")]
    peer: &'a str,
    #[tabled(rename = "After change")]
    fork: String,
    #[tabled(rename = "Changes")]
    entries: u64,
    #[tabled(rename = "Rows")]
    rows: u64,
    #[tabled(rename = "Tables")]
    tables: String,
    #[tabled(rename = "File")]
    file: &'a str,
}

/// `show failover divergence`.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Divergence(Vec<Kept>);

impl Text for Divergence {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No writes of this node were replaced by a sync.".into();
        }
        let rows: Vec<KeptRow> = self
            .0
            .iter()
            .map(|k| KeptRow {
                at: &k.detected_at,
                peer: &k.peer,
                fork: k.fork.map_or_else(|| "unknown".into(), |f| f.to_string()),
                entries: k.entries,
                rows: k.rows,
                tables: k
                    .tables
                    .iter()
                    .map(|t| format!("{}: +{} ~{} -{}", t.table, t.inserted, t.updated, t.deleted))
                    .collect::<Vec<_>>()
                    .join(", "),
                file: &k.file,
            })
            .collect();
        table(&rows)
    }
}

pub fn show_failover_divergence(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(Divergence(crate::replication::divergence::list(&ctx.node.data_dir)?)))
}

#[derive(Tabled)]
struct HistoryRow<'a> {
    #[tabled(rename = "Time (UTC)")]
    at: &'a str,
    #[tabled(rename = "Event")]
    event: &'a str,
    #[tabled(rename = "Change")]
    change: String,
    #[tabled(rename = "By")]
    actor: &'a str,
    #[tabled(rename = "Reason")]
    reason: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct History(Vec<HistoryEntry>);

impl Text for History {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No mode or state changes recorded.".into();
        }
        let rows: Vec<HistoryRow> = self
            .0
            .iter()
            .map(|h| HistoryRow {
                at: &h.at,
                event: &h.event,
                change: format!("{} -> {}", h.old, h.new),
                actor: &h.actor,
                reason: &h.reason,
            })
            .collect();
        table(&rows)
    }
}

pub fn show_failover_history(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(History(ctx.node.store.history(last(args))?)))
}
