//! The daemon's sync scheduler (guide step 6): while HA is enabled on a standby
//! secondary with a primary-host and a saved schedule, run a sync at StartTime and then
//! every Run Every (the changes since the last one; a full copy when the primary's log
//! cannot serve them). A change of settings is seen at once (the schedule is computed
//! again); slots missed while a sync ran or the node was down are skipped, never run
//! twice; a sync that finds another one running is refused by the sync lock and logged.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;

use crate::node::Node;
use crate::node::view::NodeView;
use crate::replication::pull::sync_from;
use crate::store::SyncKind;

/// Runs until `stop` turns true.
pub async fn run(mut view: watch::Receiver<Arc<NodeView>>, data_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut last_slot: Option<DateTime<Utc>> = None;
    loop {
        let settings = view.borrow_and_update().settings.clone();
        let after = match last_slot {
            Some(slot) => (slot + Duration::seconds(1)).max(Utc::now()),
            None => Utc::now(),
        };
        let next = settings.next_sync_after(after);
        let wait = match &next {
            Ok(at) => (*at - Utc::now()).to_std().unwrap_or_default(),
            Err(_) => std::time::Duration::from_secs(3600),
        };
        tokio::select! {
            _ = stop.changed() => return,
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
            () = tokio::time::sleep(wait) => {}
        }
        let (Ok(slot), Some(primary)) = (next, settings.primary_host.clone()) else { continue };
        last_slot = Some(slot);
        tracing::info!(subsystem = "scheduler", peer = %primary, slot = %slot, "scheduled sync starting");
        let dir = data_dir.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut node = Node::open(&dir).map_err(|e| e.to_string())?;
            sync_from(&mut node, &primary, SyncKind::Incremental, &mut |_| {}).map_err(|e| e.to_string())
        })
        .await;
        match outcome {
            Ok(Ok(report)) => tracing::info!(
                subsystem = "scheduler",
                peer = %report.peer,
                bytes = report.bytes,
                seconds = report.seconds,
                "scheduled sync completed"
            ),
            Ok(Err(e)) => tracing::warn!(subsystem = "scheduler", error = %e, "scheduled sync failed"),
            Err(e) => tracing::error!(subsystem = "scheduler", error = %e, "scheduled sync crashed"),
        }
    }
}
