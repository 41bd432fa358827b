//! The lease as the primary keeps it (`keep_lease`): renewed through the quorum every
//! [`RENEW_EVERY_MS`], and the node fenced (`WriteHold::fence`) once its last granted
//! renewal is [`FENCE_AFTER_MS`] old or the quorum gave the lease to another. Each change
//! of the fence goes to the HA log, and a fence to a mail.
//!
//! What the synchronous gate guarantees goes into the lease too (`quorum::Synchronous`):
//! the gate may degrade only once the lease says so ([`degrade_permit`]); its other
//! changes (synchronous again, off) are written after a renewal (`record_synchronous`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Quorum;
use crate::ha::Mode;
use crate::http::hold::WriteHold;
use crate::node::view::NodeView;
use crate::quorum::store::Storage;
use crate::quorum::{FENCE_AFTER_MS, LEASE_TTL_MS, Lease, LeaseAnswer, LeaseRequest, RENEW_EVERY_MS, Synchronous};
use crate::replication::gate::{Gate, Permit};

/// How many lease requests may be unanswered at once.
const IN_FLIGHT: usize = 4;

/// How long the gate's permit may take: the quorum write, and waiting for another such
/// write of this node.
const PERMIT_WITHIN: Duration = Duration::from_secs(2);

/// The synchronous gate's permit to degrade: on a primary whose quorum decides, the
/// lease must first say that it answers writes no standby confirmed (so no standby is
/// granted the lease without `force`). Without a quorum, always. Runs on the gate's
/// own thread, driving the daemon's runtime (`runtime`).
pub fn degrade_permit(quorum: Quorum, view: watch::Receiver<Arc<NodeView>>, runtime: tokio::runtime::Handle) -> Permit {
    Arc::new(move |_standby| {
        let (s, node) = {
            let v = view.borrow();
            (v.settings.clone(), v.node_id.clone())
        };
        if s.witness.is_none() || !quorum.formed() {
            return Ok(());
        }
        let degraded = Some(Synchronous { standby: None });
        let request = LeaseRequest::Synchronous { node, epoch: s.epoch, synchronous: degraded };
        let recorded = runtime.block_on(async {
            tokio::time::timeout(PERMIT_WITHIN, async {
                let _order = quorum.sync_record.lock().await;
                quorum.write(request).await
            })
            .await
        });
        match recorded {
            Ok(Ok(LeaseAnswer::Granted { .. })) => Ok(()),
            Ok(Ok(LeaseAnswer::Refused { why, .. })) => Err(format!("the quorum refused to record it ({why})")),
            Ok(Ok(LeaseAnswer::None)) => Err("the quorum gave no answer".into()),
            Ok(Err(e)) => Err(format!("the quorum could not record it ({e})")),
            Err(_) => Err(format!("the quorum did not record it within {} s", PERMIT_WITHIN.as_secs())),
        }
    })
}

/// What the gate guarantees, as the lease says it.
fn guaranteed(gate: &Gate) -> Option<Synchronous> {
    let state = gate.state();
    match state.state {
        "synchronous" => Some(Synchronous { standby: state.standby_node }),
        "degraded" => Some(Synchronous { standby: None }),
        _ => None,
    }
}

/// Writes what the gate guarantees into the lease `held` by `node` at `epoch`, when it
/// says otherwise (read again under the order lock: a degradation may have come first).
async fn record_synchronous(quorum: &Quorum, gate: &Gate, held: &Lease, node: &str, epoch: u64) {
    if guaranteed(gate) == held.synchronous {
        return;
    }
    let _order = quorum.sync_record.lock().await;
    let synchronous = guaranteed(gate);
    let request = LeaseRequest::Synchronous { node: node.to_string(), epoch, synchronous };
    match quorum.write(request).await {
        Ok(LeaseAnswer::Granted { .. }) => {}
        other => {
            tracing::warn!(subsystem = "quorum", answer = ?other, "cannot record the synchronous standby in the lease")
        }
    }
}

/// On the primary, while the quorum decides: sends a renewal of the lease every
/// [`RENEW_EVERY_MS`] (takes it first, at its own epoch) without waiting for the earlier
/// ones to be answered (up to [`IN_FLIGHT`] at once: one that hangs on a link a cut left
/// dead does not hold the next back), and fences this node once its last granted
/// renewal was sent [`FENCE_AFTER_MS`] ago or the quorum gave the lease to another;
/// lifts the fence once it holds the lease again. Each change of the fence goes to the
/// HA log, and a fence to a mail.
pub(super) async fn keep_lease(
    quorum: Quorum,
    hold: Arc<WriteHold>,
    gate: Gate,
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    node_id: String,
    storage: Storage,
) {
    let fence_after = Duration::from_millis(FENCE_AFTER_MS);
    let every = Duration::from_millis(RENEW_EVERY_MS);
    let not_renewed = format!("this primary has not renewed the quorum's lease within {FENCE_AFTER_MS} ms");
    let (answers, mut answered) = tokio::sync::mpsc::channel::<(Instant, Result<LeaseAnswer, String>)>(IN_FLIGHT);
    let mut in_flight = 0usize;
    let mut granted_at: Option<Instant> = None;
    let mut recording: Option<tokio::task::JoinHandle<()>> = None;
    let mut next = Instant::now() + every;
    loop {
        // The next renewal, an answer, or the fence's deadline, whichever comes first.
        let deadline = granted_at.map(|t| t + fence_after).filter(|d| *d > Instant::now());
        let wake = deadline.map_or(next, |d| d.min(next));
        let answer = tokio::select! {
            Some(answer) = answered.recv() => Some(answer),
            () = tokio::time::sleep_until(wake.into()) => None,
        };
        if view.has_changed().is_err() {
            return;
        }
        let s = view.borrow_and_update().settings.clone();
        let keeps = s.mode == Mode::Primary && s.witness.is_some() && quorum.formed();
        if let Some((sent, answer)) = answer {
            in_flight = in_flight.saturating_sub(1);
            // Late answers mean nothing once this node stopped keeping the lease, or while a
            // switchover moves it.
            if !keeps || hold.is_held() || hold.handed_over() {
                continue;
            }
            if sent.elapsed() > every {
                tracing::warn!(subsystem = "quorum", took_ms = sent.elapsed().as_millis() as u64, answer = ?answer, "slow lease request");
            }
            let why = match answer {
                Ok(LeaseAnswer::Granted { lease }) => {
                    granted_at = granted_at.max(Some(sent));
                    // Beside the renewals, never delaying one; one at a time.
                    if recording.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                        let (q, g, n, epoch) = (quorum.clone(), gate.clone(), node_id.clone(), s.epoch);
                        recording =
                            Some(tokio::spawn(async move { record_synchronous(&q, &g, &lease, &n, epoch).await }));
                    }
                    granted_at.filter(|t| t.elapsed() >= fence_after).map(|_| not_renewed.clone())
                }
                // Another holds it: fenced at once.
                Ok(LeaseAnswer::Refused { lease, why }) => Some(format!(
                    "the quorum refused this primary the lease ({why}); {} holds it at epoch {}",
                    lease.holder.unwrap_or_else(|| "nobody".into()),
                    lease.epoch
                )),
                Ok(LeaseAnswer::None) => continue,
                // No answer: fenced once the last granted renewal is too old.
                Err(e) => match granted_at.is_none_or(|t| t.elapsed() >= fence_after) {
                    true => {
                        Some(format!("this primary could not renew the quorum's lease for {FENCE_AFTER_MS} ms: {e}"))
                    }
                    false => continue,
                },
            };
            fence(&hold, &data_dir, &node_id, why).await;
            continue;
        }
        // A switchover under way here moves the lease itself (the standby's commit).
        if hold.is_held() || hold.handed_over() {
            next = Instant::now() + every;
            continue;
        }
        if !keeps {
            granted_at = None;
            fence(&hold, &data_dir, &node_id, None).await;
            next = Instant::now() + every;
            continue;
        }
        if granted_at.is_some_and(|t| t.elapsed() >= fence_after) {
            fence(&hold, &data_dir, &node_id, Some(not_renewed.clone())).await;
        }
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + every;
        if in_flight >= IN_FLIGHT {
            continue;
        }
        let sent = Instant::now();
        let at_ms = chrono::Utc::now().timestamp_millis();
        let held = storage.machine().ok().map(|m| m.lease);
        let ours = held.is_some_and(|l| l.holder.as_deref() == Some(node_id.as_str()) && l.epoch == s.epoch);
        let request = match ours {
            true => LeaseRequest::Renew { node: node_id.clone(), epoch: s.epoch, at_ms },
            false => LeaseRequest::Acquire { node: node_id.clone(), epoch: s.epoch, at_ms, ttl_ms: LEASE_TTL_MS },
        };
        in_flight += 1;
        let (q, tell) = (quorum.clone(), answers.clone());
        tokio::spawn(async move {
            let _ = tell.send((sent, q.write(request).await)).await;
        });
    }
}

/// Puts the fence on (`Some(why)`) or off, saying so when it changes.
async fn fence(hold: &WriteHold, data_dir: &std::path::Path, node_id: &str, why: Option<String>) {
    let text = why.clone();
    if !hold.fence(why).await {
        return;
    }
    let Ok(mut store) = crate::store::Store::open(data_dir) else { return };
    match text {
        Some(reason) => {
            let _ = store.ha_log("error", &format!("FENCED: {reason}; this primary takes no device writes"));
            crate::notify::raise_or_log(&mut store, node_id, &crate::notify::Event::Fenced { reason });
        }
        None => {
            let _ = store.ha_log("info", "this primary holds the quorum's lease: it takes device writes");
        }
    }
}
