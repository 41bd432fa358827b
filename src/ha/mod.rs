//! High-availability state of this node: the typed settings of the guide's HA
//! Configuration window, the node's mode, state and epoch, and the transitions between
//! them. Every change is saved in one transaction together with its failover-history
//! rows, so what `show failover history` tells is exactly what happened. Epochs agree
//! across the nodes: a promotion takes one more than the highest epoch this node has
//! seen anywhere, under the role lock ([`fence`]) that keeps it apart from a sync's swap.

pub mod config_lines;
mod fence;
mod handover;
pub mod heartbeat;
pub mod hooks;
mod readiness;
mod schedule;
mod settings;
mod system_settings;

use chrono::{DateTime, Utc};

use crate::store::{HistoryEntry, Store, StoreError, now_text, put_setting, record_history};

pub use fence::RoleLock;
pub use handover::{hand_over, take_back, take_over};
pub use readiness::{Readiness, span};
pub use schedule::{next_sync, schedule_anchor};
pub use settings::{LogHost, Mode, NODE_ID, NodeStatus, OnFailure, PromptParts, ReplicationMode, Settings, Unit};

/// Who or what caused a change, and why.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `user@source`, `heartbeat`, `scheduler`.
    pub actor: String,
    /// Short reason, e.g. `failover mode primary`.
    pub reason: String,
}

/// What a change did, for the handler to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Settings after the change.
    pub now: Settings,
    /// Names of the settings that actually changed.
    pub changed: Vec<&'static str>,
}

/// Settings whose changes go to the failover history, with the event name shown.
const TRACKED: &[(&str, &str)] = &[
    (settings::ENABLED, "service"),
    (settings::MODE, "mode"),
    (settings::NODE_STATUS, "node-status"),
    (settings::CLIENT_CONNECTIONS, "client-connections"),
    (settings::ATLAS, "atlas"),
    (settings::EPOCH, "epoch"),
    (settings::STALE, "stale"),
];

/// Settings that move the sync schedule: saving one re-anchors it at the next start time.
const SCHEDULE: &[&str] = &[settings::ENABLED, settings::START_TIME, settings::RUN_EVERY];

/// Loads the settings, lets `edit` change them, and saves what changed durably:
/// changed keys, one history row per tracked change, and a new schedule anchor when the
/// schedule moved. Returns the new settings and what changed.
pub fn update(store: &mut Store, cause: &Cause, edit: impl FnOnce(&mut Settings)) -> Result<Applied, StoreError> {
    update_at(store, cause, Utc::now(), edit)
}

/// [`update`] with the clock given (tests).
pub fn update_at(
    store: &mut Store,
    cause: &Cause,
    now: DateTime<Utc>,
    edit: impl FnOnce(&mut Settings),
) -> Result<Applied, StoreError> {
    store.durably(|tx| apply(tx, cause, now, edit))
}

/// [`update_at`] inside a transaction the caller commits (with what else belongs to
/// the same change).
fn apply(
    tx: &rusqlite::Transaction,
    cause: &Cause,
    now: DateTime<Utc>,
    edit: impl FnOnce(&mut Settings),
) -> Result<Applied, StoreError> {
    {
        let map = crate::store::settings_in(tx)?;
        let old = Settings::from_map(&map)?;
        let mut new = old.clone();
        edit(&mut new);
        let before = old.to_pairs();
        let after = new.to_pairs();
        let changed: Vec<&'static str> =
            before.iter().zip(&after).filter(|(b, a)| b.1 != a.1).map(|(_, a)| a.0).collect();
        if changed.iter().any(|k| SCHEDULE.contains(k)) {
            new.schedule_anchor = Some(schedule_anchor(now, new.start_time));
        }
        for ((key, value), (_, old_value)) in new.to_pairs().iter().zip(&before) {
            if value != old_value {
                put_setting(tx, key, value.as_deref())?;
            }
        }
        let at = now_text();
        for (key, event) in TRACKED {
            let value = |pairs: &[(&str, Option<String>)]| {
                pairs.iter().find(|p| p.0 == *key).and_then(|p| p.1.clone()).unwrap_or_default()
            };
            let (old_value, new_value) = (value(&before), value(&after));
            if old_value != new_value {
                let entry = HistoryEntry {
                    at: at.clone(),
                    event: (*event).to_string(),
                    old: old_value,
                    new: new_value,
                    reason: cause.reason.clone(),
                    actor: cause.actor.clone(),
                };
                record_history(tx, &entry)?;
            }
        }
        let node_id = map.get(settings::NODE_ID).map_or("", String::as_str);
        role_hooks(tx, &old, &new, node_id, cause)?;
        Ok(Applied { now: new, changed })
    }
}

/// Queues the hooks of the role changes a site acts on, in the change's transaction:
/// `becomes-primary` when this node became primary, `stale` when it learned it is stale.
fn role_hooks(
    tx: &rusqlite::Transaction,
    old: &Settings,
    new: &Settings,
    node_id: &str,
    cause: &Cause,
) -> Result<(), StoreError> {
    if old.mode != Mode::Primary && new.mode == Mode::Primary {
        hooks::queue_in(tx, new, node_id, hooks::HookEvent::BecomesPrimary, &cause.reason)?;
    }
    if let (None, Some(why)) = (&old.stale, &new.stale) {
        hooks::queue_in(tx, new, node_id, hooks::HookEvent::Stale, why)?;
    }
    Ok(())
}

/// Makes this node primary: the same transition whether an operator asked for it or a
/// failover did. Idempotent: on a primary nothing changes and the epoch stays. The new
/// epoch is one more than the highest this node has seen anywhere (its own, the last one
/// it synced from, any peer's), saved durably before the daemon takes a write; the role
/// lock is held meanwhile, so no sync swaps data in under a new primary.
pub fn promote(store: &mut Store, cause: &Cause) -> Result<Applied, StoreError> {
    promote_and(store, cause, |_| {})
}

/// [`promote`], with `also` changing the settings in the same transaction.
pub fn promote_and(store: &mut Store, cause: &Cause, also: impl FnOnce(&mut Settings)) -> Result<Applied, StoreError> {
    let dir = store.path().parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let _fence = RoleLock::take(&dir).map_err(|e| StoreError::Commit(format!("cannot take the role lock: {e}")))?;
    update(store, cause, |s| {
        also(s);
        if s.mode != Mode::Primary {
            s.mode = Mode::Primary;
            s.node_status = NodeStatus::Active;
            s.epoch = s.highest_epoch() + 1;
            s.stale = None;
            // A primary has no sync schedule; a later `failover mode secondary` does not
            // restart it (guide, table 5): saving the schedule does.
            s.schedule_anchor = None;
        }
    })
}

/// Records in the failover history something HA decided that changed no setting (a
/// failover refused), with its cause.
pub fn note(store: &mut Store, cause: &Cause, event: &str, old: &str, new: &str) -> Result<(), StoreError> {
    let entry = HistoryEntry {
        at: now_text(),
        event: event.to_string(),
        old: old.to_string(),
        new: new.to_string(),
        reason: cause.reason.clone(),
        actor: cause.actor.clone(),
    };
    store.durably(|tx| record_history(tx, &entry))
}

/// Remembers that another node (`from`) has `epoch`, when it is higher than any this node
/// has seen; a later promotion goes past it.
pub fn saw_epoch(store: &mut Store, epoch: u64, from: &str) -> Result<(), StoreError> {
    let cause = Cause { actor: "heartbeat".into(), reason: format!("epoch {epoch} seen on {from}") };
    update(store, &cause, |s| s.epoch_seen = s.epoch_seen.max(epoch)).map(|_| ())
}

/// Makes this node a standby secondary. The sync scheduler is not restarted: the
/// schedule anchor is left as it was.
pub fn demote(store: &mut Store, cause: &Cause) -> Result<Applied, StoreError> {
    update(store, cause, |s| {
        s.mode = Mode::Secondary;
        s.node_status = NodeStatus::Standby;
        s.stale = None;
    })
}

/// Restarts the sync scheduler: the schedule is anchored again at the next start time.
pub fn restart_schedule(store: &mut Store, cause: &Cause) -> Result<Applied, StoreError> {
    let now = Utc::now();
    update_at(store, cause, now, |s| s.schedule_anchor = Some(schedule_anchor(now, s.start_time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause() -> Cause {
        Cause { actor: "test@unit".into(), reason: "unit test".into() }
    }

    #[test]
    fn promotion_bumps_the_epoch_once_and_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        demote(&mut store, &cause()).unwrap();
        let first = promote(&mut store, &cause()).unwrap();
        assert_eq!(first.now.mode, Mode::Primary);
        assert_eq!(first.now.epoch, 1);
        let again = promote(&mut store, &cause()).unwrap();
        assert_eq!(again.now, first.now);
        assert!(again.changed.is_empty());
        let events: Vec<String> = store.history(None).unwrap().into_iter().map(|h| h.event).collect();
        assert_eq!(events, ["mode", "node-status", "mode", "node-status", "epoch"]);
    }

    #[test]
    fn a_promotion_goes_past_every_epoch_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        demote(&mut store, &cause()).unwrap();
        update(&mut store, &cause(), |s| s.last_sync_epoch = 2).unwrap();
        assert_eq!(promote(&mut store, &cause()).unwrap().now.epoch, 3, "past the epoch synced from");
        demote(&mut store, &cause()).unwrap();
        saw_epoch(&mut store, 7, "core-c").unwrap();
        saw_epoch(&mut store, 5, "core-d").unwrap();
        assert_eq!(promote(&mut store, &cause()).unwrap().now.epoch, 8, "past any peer's");
        demote(&mut store, &cause()).unwrap();
        assert_eq!(promote(&mut store, &cause()).unwrap().now.epoch, 9, "past its own");
    }

    #[test]
    fn schedule_saves_reanchor_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let t0 = "2026-11-26T14:00:00Z".parse().unwrap();
        let a = update_at(&mut store, &cause(), t0, |s| s.start_time = (13, 0)).unwrap();
        assert_eq!(a.now.schedule_anchor, Some("2026-11-27T13:00:00Z".parse().unwrap()));
        let t1 = "2026-11-28T14:00:00Z".parse().unwrap();
        let b = update_at(&mut store, &cause(), t1, |s| s.notify_email = Some("a@b.example".into())).unwrap();
        assert_eq!(b.now.schedule_anchor, a.now.schedule_anchor);
    }
}
