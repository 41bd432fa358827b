//! The secondary's side of a full sync: a snapshot staged on disk is checked and only
//! then copied into the live Core data with SQLite's backup API; the live data's content
//! checksum must then equal the primary's. The checks: the transfer's SHA-256 (the
//! caller), the sender's `PRAGMA integrity_check` of that very file (run while it was
//! sent), and here `PRAGMA quick_check` and the schema version. That copy is one write transaction: a crash or a kill leaves the
//! old data or the new, never a mix; and the daemon's open connections see the new data
//! because the file they hold is the one that changed.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::coredb::{CoreDb, SCHEMA_VERSION};
use crate::store::StoreError;

/// Why a staged snapshot was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the snapshot is damaged: {0}")]
    Damaged(String),
    #[error("the {store} snapshot has schema {found}, this node {ours}")]
    Schema { store: &'static str, found: i64, ours: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Store(StoreError::from(e))
    }
}

/// The stores a sync copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// The Core data (`core.db`).
    Core,
    /// The Atlas store (`atlas.db`).
    Atlas,
}

impl Store {
    /// Name on the wire and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Store::Core => "core",
            Store::Atlas => "atlas",
        }
    }

    fn schema(self) -> i64 {
        match self {
            Store::Core => SCHEMA_VERSION,
            Store::Atlas => crate::coredb::atlas::SCHEMA_VERSION,
        }
    }
}

/// Checks a staged snapshot: a sound database of this node's schema for `store`.
pub fn verify(staged: &Path, store: Store) -> Result<(), ApplyError> {
    let conn = Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| ApplyError::Damaged(e.to_string()))?;
    let check: String =
        conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| ApplyError::Damaged(e.to_string()))?;
    if check != "ok" {
        return Err(ApplyError::Damaged(check));
    }
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found != store.schema() {
        return Err(ApplyError::Schema { store: store.name(), found, ours: store.schema() });
    }
    Ok(())
}

/// Replaces the live `store` of `data_dir` with the staged snapshot; returns the
/// content checksum of the live data afterwards.
pub fn swap_in(data_dir: &Path, staged: &Path, store: Store) -> Result<String, ApplyError> {
    let source = Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    match store {
        Store::Core => {
            let mut live = CoreDb::open(data_dir)?;
            live.replace_with(&source)?;
            Ok(live.content_checksum()?)
        }
        Store::Atlas => Ok(crate::coredb::atlas::replace_with(data_dir, &source)?),
    }
}
