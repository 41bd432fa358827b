//! Snapshots of the Core data: a consistent copy made with SQLite's online backup
//! (the node keeps serving while it is copied), and a checksum of the content, table by
//! table and row by row, that two nodes can compare whatever their file layouts.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::store::StoreError;

/// Copies the live database `db` (the Core data or the Atlas store) into a new file in
/// `dir`; returns its path.
pub fn take(db: &Path, dir: &Path) -> Result<PathBuf, StoreError> {
    let source = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut seq = [0u8; 8];
    getrandom::fill(&mut seq).map_err(|e| StoreError::Commit(e.to_string()))?;
    let name: String = seq.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("snapshot-{name}.db"));
    let mut target = Connection::open(&path)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut target)?;
        // One step copies everything within one read transaction: a consistent copy.
        backup.step(-1)?;
    }
    // A self-contained file: no WAL beside it.
    target.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(path)
}

/// SHA-256 over every table's name and rows (in rowid order, values typed), hex.
pub fn content_checksum(conn: &Connection) -> Result<String, StoreError> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for table in tables {
        ctx.update(b"table\0");
        ctx.update(table.as_bytes());
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{}\" ORDER BY rowid", table.replace('"', "\"\"")))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            ctx.update(b"row\0");
            for i in 0..columns {
                match row.get_ref(i)? {
                    ValueRef::Null => ctx.update(b"n"),
                    ValueRef::Integer(v) => {
                        ctx.update(b"i");
                        ctx.update(&v.to_le_bytes());
                    }
                    ValueRef::Real(v) => {
                        ctx.update(b"r");
                        ctx.update(&v.to_le_bytes());
                    }
                    ValueRef::Text(t) => {
                        ctx.update(b"t");
                        ctx.update(&(t.len() as u64).to_le_bytes());
                        ctx.update(t);
                    }
                    ValueRef::Blob(b) => {
                        ctx.update(b"b");
                        ctx.update(&(b.len() as u64).to_le_bytes());
                        ctx.update(b);
                    }
                }
            }
        }
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
