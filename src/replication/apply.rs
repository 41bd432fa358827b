//! The secondary's side of a full sync: a snapshot staged on disk is checked (the
//! transfer's SHA-256, `PRAGMA integrity_check`, the schema version, the content
//! checksum the primary announced) and only then copied into the live Core data with
//! SQLite's backup API. That copy is one write transaction: a crash or a kill leaves the
//! old data or the new, never a mix; and the daemon's open connections see the new data
//! because the file they hold is the one that changed.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::snapshot::content_checksum;
use crate::coredb::{CoreDb, SCHEMA_VERSION};
use crate::store::StoreError;

/// Why a staged snapshot was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the snapshot is damaged: {0}")]
    Damaged(String),
    #[error("the snapshot has Core data schema {found}, this node {ours}")]
    Schema { found: i64, ours: i64 },
    #[error("the snapshot's content checksum {found} is not the one announced ({expected})")]
    Content { found: String, expected: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Store(StoreError::from(e))
    }
}

/// Checks a staged snapshot against what the primary announced.
pub fn verify(staged: &Path, expected_content: &str) -> Result<(), ApplyError> {
    let conn = Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| ApplyError::Damaged(e.to_string()))?;
    let check: String =
        conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| ApplyError::Damaged(e.to_string()))?;
    if check != "ok" {
        return Err(ApplyError::Damaged(check));
    }
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found != SCHEMA_VERSION {
        return Err(ApplyError::Schema { found, ours: SCHEMA_VERSION });
    }
    let content = content_checksum(&conn)?;
    if content != expected_content {
        return Err(ApplyError::Content { found: content, expected: expected_content.to_string() });
    }
    Ok(())
}

/// Replaces the live Core data of `data_dir` with the staged snapshot; returns the
/// content checksum of the live data afterwards.
pub fn swap_in(data_dir: &Path, staged: &Path) -> Result<String, ApplyError> {
    let source = Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut live = CoreDb::open(data_dir)?;
    live.replace_with(&source)?;
    Ok(live.content_checksum()?)
}
