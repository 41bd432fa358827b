//! Atlas data: device analytics kept in a store of its own (`atlas.db`), which exists
//! only once Atlas is enabled on this node (guide, "Atlas configuration"). HA
//! replicates it only when Atlas is enabled on both nodes.

use std::path::Path;

use rusqlite::Connection;

use crate::store::{StoreError, migrate_steps, open_database};

/// File name of the Atlas store inside a data directory.
pub const ATLAS_DB: &str = "atlas.db";
/// Schema version of the Atlas store.
pub const SCHEMA_VERSION: i64 = 1;

const STEPS: &[&str] = &["CREATE TABLE device_metrics (
         id        INTEGER PRIMARY KEY,
         at        TEXT NOT NULL,
         device_id INTEGER NOT NULL,
         metric    TEXT NOT NULL,
         value     REAL NOT NULL
     );"];

/// Brings `conn` from schema version `from` to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection, from: i64) -> Result<(), StoreError> {
    migrate_steps(conn, from, STEPS)
}

/// Creates (or brings up to date) the Atlas store of `data_dir`.
pub fn create(data_dir: &Path) -> Result<(), StoreError> {
    open_database(&data_dir.join(ATLAS_DB), SCHEMA_VERSION, migrate).map(drop)
}

/// Prepares the swap of the staged Atlas store at `staged` into the one of `data_dir`
/// (created when absent). Replication only: see [`super::swap`].
pub fn prepare_swap(data_dir: &Path, staged: &Path, keep_on: super::swap::KeepOn) -> super::swap::Swap {
    let open: super::swap::Open = |path| open_database(path, SCHEMA_VERSION, migrate);
    super::swap::Swap::prepare(open, data_dir.join(ATLAS_DB), staged.to_path_buf(), keep_on)
}

/// Rows in the Atlas store, or `None` when it does not exist.
pub fn count(data_dir: &Path) -> Result<Option<u64>, StoreError> {
    let path = data_dir.join(ATLAS_DB);
    if !path.exists() {
        return Ok(None);
    }
    let conn = open_database(&path, SCHEMA_VERSION, migrate)?;
    let n: i64 = conn.query_row("SELECT count(*) FROM device_metrics", [], |r| r.get(0))?;
    Ok(Some(u64::try_from(n).unwrap_or(0)))
}

impl super::Writes<'_> {
    /// Records one device metric in the attached Atlas store.
    pub fn atlas_metric(&self, device_id: i64, metric: &str, value: f64, now: &str) -> Result<(), StoreError> {
        self.tx()
            .prepare_cached("INSERT INTO atlas.device_metrics (at, device_id, metric, value) VALUES (?1, ?2, ?3, ?4)")?
            .execute(rusqlite::params![now, device_id, metric, value])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_match_the_version() {
        assert_eq!(super::STEPS.len() as i64, super::SCHEMA_VERSION);
    }
}
