//! The sync history (the guide's Sync History and Last Sync Status): a row is written
//! when a sync starts and completed when it ends, so a sync cut short by a crash stays
//! visible (as `interrupted`, once the next sync starts).

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError, now_millis};
use crate::words::word_enum;

word_enum!(
    /// What a sync copied (or, when it starts, asks for).
    SyncKind { /// The changes since the last sync.
    Incremental = "incremental", /// Everything.
    Full = "full" }
);
word_enum!(
    /// Where a sync run stands.
    SyncResult { /// It ended and the data here is the peer's.
    Success = "success", /// It ended without changing anything here.
    Failed = "failed", /// It is under way.
    Running = "running", /// The process running it ended before it did.
    Interrupted = "interrupted" }
);

/// One sync run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SyncRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Seconds it took, once finished.
    pub seconds: Option<f64>,
    pub peer: String,
    pub kind: SyncKind,
    pub result: SyncResult,
    /// Why it failed, or what it did.
    pub detail: String,
    pub bytes: i64,
    pub rows: i64,
}

/// How a sync ended.
pub struct Finished<'a> {
    pub ok: bool,
    /// What it copied (a sync that asked for changes may have copied everything).
    pub kind: SyncKind,
    /// What it did, or why it failed.
    pub detail: &'a str,
    pub bytes: i64,
    pub rows: i64,
}

impl Store {
    /// Records the start of a sync; earlier runs still marked running were cut short.
    pub fn sync_started(&mut self, peer: &str, kind: SyncKind) -> Result<i64, StoreError> {
        self.durably(|tx| {
            tx.execute(
                "UPDATE sync_history SET result = ?1, detail = 'the sync process ended before it finished'
                  WHERE result = ?2",
                params![SyncResult::Interrupted, SyncResult::Running],
            )?;
            tx.execute(
                "INSERT INTO sync_history (started_at, peer, kind, result) VALUES (?1, ?2, ?3, ?4)",
                params![now_millis(), peer, kind, SyncResult::Running],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Records how a sync ended.
    pub fn sync_finished(&mut self, id: i64, end: &Finished) -> Result<(), StoreError> {
        self.durably(|tx| {
            tx.execute(
                "UPDATE sync_history SET finished_at = ?2, result = ?3, detail = ?4, bytes = ?5, rows = ?6, kind = ?7
                  WHERE id = ?1",
                params![
                    id,
                    now_millis(),
                    if end.ok { SyncResult::Success } else { SyncResult::Failed },
                    end.detail,
                    end.bytes,
                    end.rows,
                    end.kind
                ],
            )?;
            Ok(())
        })
    }

    /// The sync history, newest first; `last` keeps only the newest entries.
    pub fn sync_history(&self, last: Option<u64>) -> Result<Vec<SyncRecord>, StoreError> {
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, started_at, finished_at,
                    (julianday(finished_at) - julianday(started_at)) * 86400.0,
                    peer, kind, result, detail, bytes, rows
               FROM sync_history ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(SyncRecord {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                seconds: r.get(3)?,
                peer: r.get(4)?,
                kind: r.get(5)?,
                result: r.get(6)?,
                detail: r.get(7)?,
                bytes: r.get(8)?,
                rows: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
