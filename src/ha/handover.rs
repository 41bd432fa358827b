//! The role changes of a switchover, each one durable transaction together with its
//! failover-history row and the handover record both nodes signed: the old primary
//! hands over (it becomes the new primary's standby and follows it), the new primary
//! takes over at the epoch they agreed, and an old primary whose handover did not
//! happen takes its role back as it was.

use chrono::Utc;

use super::{Applied, Cause, Mode, NodeStatus, ReplicationMode, Settings, apply};
use crate::host::HostPort;
use crate::store::{Handover, HistoryEntry, Store, StoreError, now_text, record_handover, record_history};

fn history(tx: &rusqlite::Transaction, cause: &Cause, old: String, new: String) -> Result<(), StoreError> {
    let entry = HistoryEntry {
        at: now_text(),
        event: "handover".into(),
        old,
        new,
        reason: cause.reason.clone(),
        actor: cause.actor.clone(),
    };
    record_history(tx, &entry)
}

/// The old primary's side: from now on a standby of `to` (its address as this node's
/// trusted-host entry names it), following it as a stream (continuous unless this node
/// was set synchronous), its data that of `to` at the handover's change.
pub fn hand_over(store: &mut Store, cause: &Cause, h: &Handover, to: &HostPort) -> Result<Applied, StoreError> {
    let now = Utc::now();
    store.durably(|tx| {
        let applied = apply(tx, cause, now, |s| {
            s.mode = Mode::Secondary;
            s.node_status = NodeStatus::Standby;
            s.primary_host = Some(to.clone());
            if s.replication_mode == ReplicationMode::Scheduled {
                s.replication_mode = ReplicationMode::Continuous;
            }
            s.epoch_seen = s.epoch_seen.max(h.to_epoch);
            s.last_sync_epoch = h.to_epoch;
            s.last_sync_node = Some(h.to_node.clone());
            s.last_sync_peer = Some(to.to_string());
            s.last_sync_at = Some(now);
            s.stale = None;
        })?;
        record_handover(tx, h)?;
        let old = format!("primary (epoch {})", h.from_epoch);
        let new = format!("standby of {} (epoch {}) at change {}", h.to_host, h.to_epoch, h.seq);
        history(tx, cause, old, new)?;
        Ok(applied)
    })
}

/// The new primary's side: primary at exactly the handover's epoch, which must be past
/// every epoch this node has seen. Holds the role lock as a promotion does.
pub fn take_over(store: &mut Store, cause: &Cause, h: &Handover) -> Result<Applied, StoreError> {
    let dir = store.path().parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let _fence =
        super::RoleLock::take(&dir).map_err(|e| StoreError::Commit(format!("cannot take the role lock: {e}")))?;
    store.durably(|tx| {
        let before = Settings::from_map(&crate::store::settings_in(tx)?)?;
        if h.to_epoch <= before.highest_epoch() {
            return Err(StoreError::Commit(format!(
                "epoch {} is not past epoch {}, the highest this node has seen",
                h.to_epoch,
                before.highest_epoch()
            )));
        }
        let applied = apply(tx, cause, Utc::now(), |s| {
            s.mode = Mode::Primary;
            s.node_status = NodeStatus::Active;
            s.epoch = h.to_epoch;
            s.stale = None;
            s.schedule_anchor = None;
        })?;
        record_handover(tx, h)?;
        let old = format!("standby of {} (epoch {})", h.from_host, h.from_epoch);
        let new = format!("primary (epoch {}) after change {}", h.to_epoch, h.seq);
        history(tx, cause, old, new)?;
        Ok(applied)
    })
}

/// The old primary again, as `before` it handed over (its epoch never changed), when
/// the new primary did not take over (it said so, or it forgot the handover).
pub fn take_back(store: &mut Store, cause: &Cause, before: &Settings, h: &Handover) -> Result<Applied, StoreError> {
    store.durably(|tx| {
        let applied = apply(tx, cause, Utc::now(), |s| {
            s.mode = Mode::Primary;
            s.node_status = NodeStatus::Active;
            s.primary_host.clone_from(&before.primary_host);
            s.replication_mode = before.replication_mode;
            s.last_sync_epoch = before.last_sync_epoch;
            s.last_sync_node.clone_from(&before.last_sync_node);
            s.last_sync_peer.clone_from(&before.last_sync_peer);
            s.last_sync_at = before.last_sync_at;
            s.stale = None;
        })?;
        tx.execute("DELETE FROM handovers WHERE id = ?1", [&h.id])?;
        let old = format!("standby of {} (epoch {}) at change {}", h.to_host, h.to_epoch, h.seq);
        history(tx, cause, old, format!("primary (epoch {}): the handover did not happen", h.from_epoch))?;
        Ok(applied)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cause() -> Cause {
        Cause { actor: "test@unit".into(), reason: "switchover".into() }
    }

    fn handover(to_epoch: u64) -> Handover {
        Handover {
            id: "h1".into(),
            at: now_text(),
            seq: 9,
            checksum: "ab".into(),
            from_node: "n1".into(),
            from_host: "core-a".into(),
            from_epoch: 2,
            to_node: "n2".into(),
            to_host: "core-b".into(),
            to_epoch,
            from_signature: String::new(),
            to_signature: String::new(),
        }
    }

    #[test]
    fn handing_over_and_back_restores_the_primary() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let before = super::super::update(&mut store, &cause(), |s| {
            s.epoch = 2;
            s.enabled = true;
        })
        .unwrap()
        .now;
        let to: HostPort = "core-b:2222".parse().unwrap();
        let after = hand_over(&mut store, &cause(), &handover(3), &to).unwrap().now;
        assert_eq!((after.mode, after.node_status), (Mode::Secondary, NodeStatus::Standby));
        assert_eq!((after.replication_mode, after.epoch_seen, after.epoch), (ReplicationMode::Continuous, 3, 2));
        assert!(store.handover("h1").unwrap().is_some());
        let back = take_back(&mut store, &cause(), &before, &handover(3)).unwrap().now;
        assert_eq!(
            (back.mode, back.epoch, back.primary_host, back.replication_mode),
            (Mode::Primary, 2, None, before.replication_mode)
        );
        assert!(store.handover("h1").unwrap().is_none());
    }

    #[test]
    fn taking_over_needs_an_epoch_past_every_one_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        super::super::demote(&mut store, &cause()).unwrap();
        super::super::update(&mut store, &cause(), |s| s.epoch_seen = 5).unwrap();
        assert!(take_over(&mut store, &cause(), &handover(5)).is_err());
        let now = take_over(&mut store, &cause(), &handover(6)).unwrap().now;
        assert_eq!((now.mode, now.epoch), (Mode::Primary, 6));
        let events: Vec<String> = store.history(None).unwrap().into_iter().map(|h| h.event).collect();
        assert!(events.contains(&"handover".to_string()), "{events:?}");
    }
}
