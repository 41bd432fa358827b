//! Status endpoints. The two pages answer exactly the strings of the guide's "Load
//! balancer setup", because existing monitors match on them:
//! `/status/status.html` -> `MOBILEIRON-STATUS: OK` while healthy;
//! `/hastatus.html` -> `MOBILEIRON-STATUS: OK (Mode: Standby)` on a standby secondary,
//! `MOBILEIRON-STATUS: OK (Mode: Primary)` on a node that serves as primary.
//! A node that must not take device traffic because a newer primary exists (a stale
//! primary) answers neither page with OK: both give 503 `MOBILEIRON-STATUS: ERROR (Mode:
//! Stale)`, so any monitor written from the guide routes around it. A standby and a node
//! with client connections disabled are healthy and say so: the standby is the guide's
//! failover target, and a maintenance drain must not move traffic to it. A primary that
//! runs a switchover answers `/status/status.html` with 503 `MOBILEIRON-STATUS: ERROR
//! (Switchover)` while its writes are held (the guide's load balancer fails over then),
//! and once it has handed its role over it says standby at once, before its new primary
//! can say primary.

use hyper::StatusCode;
use serde::Serialize;

use super::{AppState, Resp, json, text};
use crate::ha::{Mode, NodeStatus};
use crate::store::SyncSummary;

/// Why the node is not healthy, if it is not.
fn fault(state: &AppState) -> Option<String> {
    if !state.writer.is_running() {
        return Some("the Core data writer has stopped".into());
    }
    state.view.borrow().fault.clone()
}

/// The answer of a stale primary on both pages.
const STALE: &str = "MOBILEIRON-STATUS: ERROR (Mode: Stale)";

fn is_stale(state: &AppState) -> bool {
    state.view.borrow().settings.stale.is_some()
}

/// The answer of `/status/status.html` while a switchover holds this primary's writes.
const SWITCHOVER: &str = "MOBILEIRON-STATUS: ERROR (Switchover)";

/// The answer of a primary fenced for want of the quorum's lease, on both pages.
const FENCED: &str = "MOBILEIRON-STATUS: ERROR (Mode: Fenced)";

/// The answer of a quorum witness on both pages: no load balancer may send devices there.
const WITNESS: &str = "MOBILEIRON-STATUS: ERROR (Mode: Witness)";

fn is_witness(state: &AppState) -> bool {
    state.view.borrow().settings.mode == Mode::Witness
}

pub fn status_page(state: &AppState) -> Resp {
    if fault(state).is_some() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "MOBILEIRON-STATUS: ERROR");
    }
    if is_witness(state) {
        return text(StatusCode::SERVICE_UNAVAILABLE, WITNESS);
    }
    if state.hold.fenced().is_some() {
        return text(StatusCode::SERVICE_UNAVAILABLE, FENCED);
    }
    if state.hold.is_held() {
        // A load balancer set up from the guide fails over now, while the standby still
        // says Mode: Standby; its latch keeps traffic there after the standby took over.
        return text(StatusCode::SERVICE_UNAVAILABLE, SWITCHOVER);
    }
    if is_stale(state) {
        return text(StatusCode::SERVICE_UNAVAILABLE, STALE);
    }
    text(StatusCode::OK, "MOBILEIRON-STATUS: OK")
}

/// `Standby` only for a secondary in standby (safe to fail over to); a primary, or a
/// secondary that has been made active, serves as primary.
fn ha_mode(mode: Mode, status: NodeStatus) -> &'static str {
    match (mode, status) {
        (Mode::Secondary, NodeStatus::Standby) => "Standby",
        _ => "Primary",
    }
}

pub fn ha_status_page(state: &AppState) -> Resp {
    if fault(state).is_some() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "MOBILEIRON-STATUS: ERROR");
    }
    if is_witness(state) {
        return text(StatusCode::SERVICE_UNAVAILABLE, WITNESS);
    }
    if state.hold.fenced().is_some() {
        return text(StatusCode::SERVICE_UNAVAILABLE, FENCED);
    }
    if is_stale(state) {
        // A newer primary exists: a load balancer must not send devices here.
        return text(StatusCode::SERVICE_UNAVAILABLE, STALE);
    }
    let view = state.view.borrow();
    let mode = match state.hold.handed_over() {
        true => "Standby",
        false => ha_mode(view.settings.mode, view.settings.node_status),
    };
    text(StatusCode::OK, format!("MOBILEIRON-STATUS: OK (Mode: {mode})"))
}

/// The JSON status for peers and tools.
#[derive(Serialize)]
struct Status {
    healthy: bool,
    fault: Option<String>,
    hostname: String,
    node_id: String,
    software: &'static str,
    version: &'static str,
    high_availability: &'static str,
    mode: String,
    state: String,
    epoch: u64,
    /// Why this primary is stale, when a newer primary exists.
    stale: Option<String>,
    client_connections: &'static str,
    time: String,
    last_sync: Option<SyncSummary>,
    /// How this node replicates as a standby, and, while its stream from the primary
    /// runs, its state, the changes it lacks, for how long it has lacked some (0 when
    /// level) and the last change applied.
    replication_mode: String,
    replication_state: String,
    lag_changes: Option<i64>,
    lag_ms: Option<i64>,
    last_applied_seq: Option<i64>,
}

/// How far this standby's stream from its primary is behind, while it streams.
pub struct Lag {
    pub state: String,
    /// Changes it lacks.
    pub changes: i64,
    /// For how long it has lacked some (0 when level).
    pub ms: i64,
    pub applied_seq: i64,
}

/// The lag of `view`'s stream: only while this node is a standby that streams.
pub fn stream_lag(view: &crate::node::view::NodeView) -> Option<Lag> {
    let s = &view.settings;
    let streams = s.mode == Mode::Secondary && s.replication_mode != crate::ha::ReplicationMode::Scheduled;
    let st = view.stream.as_ref().filter(|st| streams && st.state != crate::store::StreamState::Off)?;
    Some(Lag {
        state: st.state.to_string(),
        changes: (st.peer_seq - st.applied_seq).max(0),
        ms: st
            .behind_since
            .as_deref()
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
            .map_or(0, |t| (chrono::Utc::now() - t).num_milliseconds().max(0)),
        applied_seq: st.applied_seq,
    })
}

pub fn status_json(state: &AppState) -> Resp {
    let fault = fault(state);
    let view = state.view.borrow();
    let s = &view.settings;
    let on = |b: bool| if b { "enabled" } else { "disabled" };
    let lag = stream_lag(&view);
    json(
        StatusCode::OK,
        &Status {
            healthy: fault.is_none(),
            fault,
            hostname: s.hostname.clone(),
            node_id: view.node_id.clone(),
            software: "coresh",
            version: env!("CARGO_PKG_VERSION"),
            high_availability: on(s.enabled),
            mode: s.mode.to_string(),
            state: s.state().to_string(),
            epoch: s.epoch,
            stale: s.stale.clone(),
            client_connections: on(s.client_connections),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            last_sync: view.last_sync.clone(),
            replication_mode: s.replication_mode.to_string(),
            replication_state: lag.as_ref().map_or_else(|| "off".to_string(), |l| l.state.clone()),
            lag_changes: lag.as_ref().map(|l| l.changes),
            lag_ms: lag.as_ref().map(|l| l.ms),
            last_applied_seq: lag.as_ref().map(|l| l.applied_seq),
        },
    )
}
