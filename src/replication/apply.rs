//! The secondary's side of a full sync: a snapshot staged on disk is checked and only
//! then copied into the live Core data with SQLite's backup API. The checks: the
//! transfer's SHA-256 (the caller), the sender's `PRAGMA integrity_check` of that very
//! file (run while it was sent), and here `PRAGMA quick_check`, the schema version and
//! the content checksum, computed from the rows and compared by the caller with the one
//! the primary's change log holds. They run as soon as the bytes are in, while the
//! sender's integrity check finishes; the backup then copies exactly those pages. The
//! snapshot's schema objects must be exactly those this release creates: a trigger or
//! view a buggy or hostile sender added is refused, never swapped in. That copy is one
//! write transaction: a crash or a kill leaves the old data or the new, never a mix; and
//! the daemon's open connections see the new data because the file they hold is the one
//! that changed.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::coredb::checksum::content_checksum;
use crate::coredb::{CoreDb, SCHEMA_VERSION};
use crate::peer::message::Store;
use crate::store::StoreError;

/// Why a staged snapshot was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the snapshot is damaged: {0}")]
    Damaged(String),
    #[error("the {store} snapshot has schema {found}, this node {ours}")]
    Schema { store: &'static str, found: i64, ours: i64 },
    #[error(
        "the {store} snapshot's schema is not this release's: {difference}; nothing was replaced (a buggy or hostile sender)"
    )]
    Objects { store: &'static str, difference: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ApplyError {
    fn from(e: rusqlite::Error) -> Self {
        ApplyError::Store(StoreError::from(e))
    }
}

/// The schema version this release writes for `store`.
fn schema(store: Store) -> i64 {
    match store {
        Store::Core => SCHEMA_VERSION,
        Store::Atlas => crate::coredb::atlas::SCHEMA_VERSION,
    }
}

/// The schema objects this release creates for `store`: its migrations run on an empty
/// database in memory.
fn expected_objects(store: Store) -> Result<Vec<SchemaObject>, ApplyError> {
    let mut conn = Connection::open_in_memory()?;
    match store {
        Store::Core => crate::coredb::migrate(&mut conn, 0)?,
        Store::Atlas => crate::coredb::atlas::migrate(&mut conn, 0)?,
    }
    schema_objects(&conn)
}

/// One entry of `sqlite_master`: type, name, table and the SQL that made it.
type SchemaObject = (String, String, String, Option<String>);

/// Every schema object of `conn` but SQLite's own statistics and sequences.
fn schema_objects(conn: &Connection) -> Result<Vec<SchemaObject>, ApplyError> {
    let mut stmt = conn.prepare(
        "SELECT type, name, tbl_name, sql FROM sqlite_master
          WHERE name NOT LIKE 'sqlite_stat%' AND name != 'sqlite_sequence' ORDER BY type, name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Refuses a snapshot whose schema objects are not exactly this release's: a trigger or
/// view a sender added would otherwise persist here and act after a failover.
fn check_objects(conn: &Connection, store: Store) -> Result<(), ApplyError> {
    let (found, expected) = (schema_objects(conn)?, expected_objects(store)?);
    if found == expected {
        return Ok(());
    }
    let name = |o: &SchemaObject| format!("{} {}", o.0, o.1);
    let extra: Vec<String> = found.iter().filter(|o| !expected.contains(o)).map(name).collect();
    let missing: Vec<String> = expected.iter().filter(|o| !found.contains(o)).map(name).collect();
    let mut difference = Vec::new();
    if !extra.is_empty() {
        difference.push(format!("not expected: {}", extra.join(", ")));
    }
    if !missing.is_empty() {
        difference.push(format!("missing or different: {}", missing.join(", ")));
    }
    Err(ApplyError::Objects { store: store.name(), difference: difference.join("; ") })
}

/// Checks a staged snapshot: a sound database (`PRAGMA quick_check`) of this node's
/// schema for `store`; returns its content checksum, computed row by row on a second
/// connection while `quick_check` runs.
pub fn verify(staged: &Path, store: Store) -> Result<String, ApplyError> {
    let open = || {
        Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| ApplyError::Damaged(e.to_string()))
    };
    let conn = open()?;
    let found: i64 =
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| ApplyError::Damaged(e.to_string()))?;
    if found != schema(store) {
        return Err(ApplyError::Schema { store: store.name(), found, ours: schema(store) });
    }
    check_objects(&conn, store)?;
    let summing = open()?;
    let (check, content) = std::thread::scope(|scope| {
        let content = scope.spawn(move || content_checksum(&summing));
        let check = conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0));
        (check, content.join())
    });
    let check = check.map_err(|e| ApplyError::Damaged(e.to_string()))?;
    if check != "ok" {
        return Err(ApplyError::Damaged(check));
    }
    let content = content.map_err(|_| ApplyError::Damaged("the content checksum failed".into()))?;
    content.map_err(|e| ApplyError::Damaged(e.to_string()))
}

/// Replaces the live `store` of `data_dir` with the staged snapshot (verified first).
pub fn swap_in(data_dir: &Path, staged: &Path, store: Store) -> Result<(), ApplyError> {
    let source = Connection::open_with_flags(staged, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    match store {
        Store::Core => CoreDb::open(data_dir)?.replace_with(&source)?,
        Store::Atlas => crate::coredb::atlas::replace_with(data_dir, &source)?,
    }
    Ok(())
}
