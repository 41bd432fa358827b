//! The secondary's side of a full sync: a snapshot staged on disk is checked and only
//! then copied into the live Core data with SQLite's backup API. The checks: the
//! transfer's digest (the caller: these are the very bytes the sender checked), the
//! sender's checks of that file (`coredb::soundness`: indexes against tables, rows
//! against its change log; run while the bytes were on their way, or when the sender
//! kept the file as its checked copy), and
//! here, independent of what the sender says, `PRAGMA quick_check`, the schema version
//! and the schema objects, which must be exactly those this release creates: a trigger
//! or view a buggy or hostile sender added is refused, never swapped in. The backup then
//! copies exactly those pages, in one write transaction: a crash or a kill leaves the
//! old data or the new, never a mix; and the daemon's open connections see the new data
//! because the file they hold is the one that changed. The copy is prepared as soon as
//! the staged file is whole, while the checks still run, and committed only once they
//! have all passed ([`prepare`], `coredb::swap`); until then it is rolled back by any
//! refusal, and given up the moment this node is no longer a standby secondary.

use std::path::Path;

use rusqlite::Connection;

use crate::coredb::swap::{KeepOn, Swap};
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

/// Checks a staged snapshot on this node's own account: a sound database (`PRAGMA
/// quick_check`) of this node's schema version and schema objects for `store`. For the
/// Core data, returns the checksum its change log ends at (which the sender checked the
/// rows against), for the caller to compare with the one the sender reported.
pub fn verify(staged: &Path, store: Store) -> Result<Option<String>, ApplyError> {
    let conn = crate::store::open_read_only(staged).map_err(|e| ApplyError::Damaged(e.to_string()))?;
    let found: i64 =
        conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| ApplyError::Damaged(e.to_string()))?;
    if found != schema(store) {
        return Err(ApplyError::Schema { store: store.name(), found, ours: schema(store) });
    }
    check_objects(&conn, store)?;
    let check: String =
        conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| ApplyError::Damaged(e.to_string()))?;
    if check != "ok" {
        return Err(ApplyError::Damaged(check));
    }
    match store {
        Store::Core => Ok(Some(crate::coredb::changelog::head(&conn)?.checksum)),
        Store::Atlas => Ok(None),
    }
}

/// Prepares the swap of the staged snapshot of `store` into the live one of `data_dir`
/// (`coredb::swap`): copied as far as it can be without a commit, held while this node
/// stays a standby secondary, committed by the caller once every check has passed.
pub fn prepare(data_dir: &Path, staged: &Path, store: Store) -> Swap {
    let keep_on = while_standby(data_dir);
    match store {
        Store::Core => CoreDb::prepare_swap(data_dir, staged, keep_on),
        Store::Atlas => crate::coredb::atlas::prepare_swap(data_dir, staged, keep_on),
    }
}

/// Whether this node is still a standby secondary, from its settings as they are on
/// disk (a promotion by the heartbeat or by hand writes them there first). A prepared
/// swap holds the live data's write lock: a new primary's writes must not wait for it.
fn while_standby(data_dir: &Path) -> KeepOn {
    let dir = data_dir.to_path_buf();
    let mut store: Option<crate::store::Store> = None;
    Box::new(move || {
        let unread = |e: StoreError| format!("this node's settings could not be read ({e})");
        let opened = match &mut store {
            Some(opened) => opened,
            None => store.insert(crate::store::Store::open(&dir).map_err(unread)?),
        };
        let now = opened.settings().and_then(|map| crate::ha::Settings::from_map(&map)).map_err(unread)?;
        match (now.mode, now.node_status) {
            (crate::ha::Mode::Secondary, crate::ha::NodeStatus::Standby) => Ok(()),
            _ => Err(format!("this node became {} ({})", now.mode, now.state())),
        }
    })
}
