//! The failover history (every mode and state change, with why and who) and reads of
//! the sync history that `show failover` summarises.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{Store, StoreError, SyncKind, SyncResult};

/// One change of HA mode or state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HistoryEntry {
    /// When it happened (RFC 3339, UTC).
    pub at: String,
    /// What changed: `mode`, `node-status`, `service`, `client-connections`, `epoch`.
    pub event: String,
    /// Value before.
    pub old: String,
    /// Value after.
    pub new: String,
    /// Why it changed.
    pub reason: String,
    /// Who or what caused it (`admin@console`, `heartbeat`, ...).
    pub actor: String,
}

/// The end of the last sync run, as recorded by replication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SyncSummary {
    /// When it started.
    pub started_at: String,
    /// When it finished, if it did.
    pub finished_at: Option<String>,
    /// The peer it pulled from.
    pub peer: String,
    pub kind: SyncKind,
    pub result: SyncResult,
}

fn entry(r: &rusqlite::Row) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        at: r.get(0)?,
        event: r.get(1)?,
        old: r.get(2)?,
        new: r.get(3)?,
        reason: r.get(4)?,
        actor: r.get(5)?,
    })
}

/// Appends a change to the failover history inside `tx`.
pub fn record(tx: &Transaction, e: &HistoryEntry) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO failover_history (at, event, old, new, reason, actor) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![e.at, e.event, e.old, e.new, e.reason, e.actor],
    )?;
    Ok(())
}

impl Store {
    /// The failover history, oldest first; `last` keeps only the newest entries.
    pub fn history(&self, last: Option<u64>) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT at, event, old, new, reason, actor FROM
               (SELECT * FROM failover_history ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?;
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let rows = stmt.query_map([limit], entry)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The most recent change of mode to primary (the last failover or promotion).
    pub fn last_promotion(&self) -> Result<Option<HistoryEntry>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT at, event, old, new, reason, actor FROM failover_history
                  WHERE event = 'mode' AND new = 'primary' AND old != new ORDER BY id DESC LIMIT 1",
            )?
            .query_row([], entry)
            .optional()?)
    }

    /// The most recent sync run, if any.
    pub fn last_sync(&self) -> Result<Option<SyncSummary>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT started_at, finished_at, peer, kind, result FROM sync_history ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok(SyncSummary {
                        started_at: r.get(0)?,
                        finished_at: r.get(1)?,
                        peer: r.get(2)?,
                        kind: r.get(3)?,
                        result: r.get(4)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }
}
