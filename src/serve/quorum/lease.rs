//! The lease as the primary keeps it (`keep_lease`): renewed through the quorum every
//! [`RENEW_EVERY_MS`], and the node fenced (`WriteHold::fence`) once its last granted
//! renewal is [`FENCE_AFTER_MS`] old or the quorum gave the lease to another. Each change
//! of the fence goes to the HA log, and a fence to a mail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::Quorum;
use crate::ha::Mode;
use crate::http::hold::WriteHold;
use crate::node::view::NodeView;
use crate::quorum::store::Storage;
use crate::quorum::{FENCE_AFTER_MS, LEASE_TTL_MS, LeaseAnswer, LeaseRequest, RENEW_EVERY_MS};

/// On the primary, while the quorum decides: renews the lease every
/// [`RENEW_EVERY_MS`] (takes it first, at its own epoch), and fences this node once its
/// last granted renewal was sent [`FENCE_AFTER_MS`] ago or the quorum gave the lease to
/// another; lifts the fence once it holds the lease again. Each change of the fence goes
/// to the HA log, and a fence to a mail.
pub(super) async fn keep_lease(
    quorum: Quorum,
    hold: Arc<WriteHold>,
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    node_id: String,
    storage: Storage,
) {
    let mut granted_at: Option<Instant> = None;
    loop {
        tokio::time::sleep(Duration::from_millis(RENEW_EVERY_MS)).await;
        if view.has_changed().is_err() {
            return;
        }
        let s = view.borrow_and_update().settings.clone();
        // A switchover under way here moves the lease itself (the standby's commit).
        if hold.is_held() || hold.handed_over() {
            continue;
        }
        if !(s.mode == Mode::Primary && s.witness.is_some() && quorum.formed()) {
            granted_at = None;
            fence(&hold, &data_dir, &node_id, None).await;
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
        let too_old = |at: Option<Instant>| at.is_none_or(|t| t.elapsed() >= Duration::from_millis(FENCE_AFTER_MS));
        // The fence's deadline does not wait for a slow answer.
        let deadline = granted_at.map_or_else(Instant::now, |t| t + Duration::from_millis(FENCE_AFTER_MS));
        let answer = tokio::select! {
            answer = quorum.write(request) => answer,
            () = tokio::time::sleep_until(deadline.into()), if !too_old(granted_at) => {
                fence(&hold, &data_dir, &node_id, Some(format!(
                    "this primary has not renewed the quorum's lease within {FENCE_AFTER_MS} ms"
                ))).await;
                continue;
            }
        };
        if sent.elapsed() > Duration::from_millis(500) {
            tracing::warn!(subsystem = "quorum", took_ms = sent.elapsed().as_millis() as u64, answer = ?answer, "slow lease request");
        }
        let why = match answer {
            Ok(LeaseAnswer::Granted { .. }) => {
                granted_at = Some(sent);
                None
            }
            // Another holds it: fenced at once.
            Ok(LeaseAnswer::Refused { lease, why }) => Some(format!(
                "the quorum refused this primary the lease ({why}); {} holds it at epoch {}",
                lease.holder.unwrap_or_else(|| "nobody".into()),
                lease.epoch
            )),
            Ok(LeaseAnswer::None) => None,
            // No answer: fenced once the last granted renewal is too old.
            Err(e) => too_old(granted_at)
                .then(|| format!("this primary could not renew the quorum's lease for {FENCE_AFTER_MS} ms: {e}")),
        };
        fence(&hold, &data_dir, &node_id, why).await;
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
