//! Snapshots of the Core data: a consistent copy made with SQLite's online backup (the
//! node keeps serving while it is copied). Their content checksums are `checksum`'s.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::store::StoreError;

/// Copies the live database `db` (the Core data or the Atlas store) into a new file in
/// `dir`; returns its path.
pub fn take(db: &Path, dir: &Path) -> Result<PathBuf, StoreError> {
    let source = crate::store::open_read_only(db)?;
    let path = dir.join(format!("snapshot-{}.db", unique_name()?));
    let mut target = Connection::open(&path)?;
    // A file of the moment, read back from the page cache and removed once sent: no
    // sync to disk (it cost about 70 ms of a 90 MB copy before the first byte went).
    target.pragma_update(None, "synchronous", "OFF")?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
        // One step copies everything within one read transaction: a consistent copy.
        backup.step(-1)?;
    }
    // A self-contained file: no WAL beside it.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(path)
}

pub use crate::coredb::checksum::content_checksum;

/// A random name for a file of the moment.
pub fn unique_name() -> Result<String, StoreError> {
    let mut seq = [0u8; 8];
    getrandom::fill(&mut seq).map_err(|e| StoreError::Commit(e.to_string()))?;
    Ok(hex::encode(seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coredb::generate::{Counts, generate};
    use crate::coredb::{CORE_DB, CoreDb};

    #[test]
    fn a_snapshot_has_the_same_content_and_a_change_shows() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = CoreDb::open(dir.path()).unwrap();
        generate(&mut db, &Counts { users: 5, devices: 20, events: 50, apps: 2, policies: 2, seed: 1 }).unwrap();
        let snap = take(&dir.path().join(CORE_DB), dir.path()).unwrap();
        let live = Connection::open(dir.path().join(CORE_DB)).unwrap();
        let copy = Connection::open(&snap).unwrap();
        let before = content_checksum(&live).unwrap();
        assert_eq!(before, content_checksum(&copy).unwrap());
        db.write(|w| w.event(None, "x", "{}", "2026-11-26T00:00:00Z")).unwrap();
        assert_ne!(before, content_checksum(&live).unwrap());
    }
}
