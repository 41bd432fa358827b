//! Snapshots of the Core data (or the Atlas store): a consistent copy of the live
//! database written to a file, page by page from one read transaction (the node keeps
//! serving while it is copied), and connections that see the live database exactly as
//! that file holds it, so that the checks of the copy can start with it rather than
//! after it. Their content checksums are `checksum`'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::digest::Digest;
use crate::store::StoreError;

/// A snapshot taken: its file and the digest of the bytes written into it.
pub struct Taken {
    pub path: PathBuf,
    pub digest: String,
}

/// Copies the live database `db` into a new file in `dir`, and hands `check` (which
/// returns at once: a check started on threads of its own) `views` read-only
/// connections, each in a read transaction, that see exactly what the file holds.
///
/// Every page comes from one read transaction of the live database (SQLite's
/// `sqlite_dbpage`, read through its pager and WAL), unchanged but for the header's WAL
/// flags: the file is a self-contained database, with no WAL beside it. Its digest is
/// taken of the bytes as they are written, for the sender to compare with the bytes it
/// reads back. The views are read transactions of the live database begun together with
/// that one, with no commit in between ([`together`]): `check` gets them before the file
/// is written, so the checks run beside the copy. When writes never leave such a moment,
/// the views open the file once it is written.
pub fn take<T>(
    db: &Path,
    dir: &Path,
    views: usize,
    check: impl FnOnce(Vec<Connection>) -> T,
) -> Result<(Taken, T), StoreError> {
    take_trying(db, dir, (views, check), TRIES)
}

/// [`take`], trying `tries` times for views of the live database.
fn take_trying<T>(
    db: &Path,
    dir: &Path,
    (views, check): (usize, impl FnOnce(Vec<Connection>) -> T),
    tries: usize,
) -> Result<(Taken, T), StoreError> {
    // `started`: the check, started on views of the live data; or, with none to be had,
    // the check still to start, on views of the file once it is written.
    let (source, started) = match together(db, views, tries)? {
        Some(mut all) => {
            let source = all.remove(0);
            (source, Ok(check(all)))
        }
        None => (open_view(db)?, Err(check)),
    };
    let pages: i64 = source.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let path = dir.join(format!("snapshot-{}.db", unique_name()?));
    let digest = match write_pages(&source, pages, &path) {
        Ok(digest) => digest,
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    drop(source);
    let started = match started {
        Ok(started) => started,
        Err(check) => match (0..views).map(|_| open_view(&path)).collect::<Result<_, _>>() {
            Ok(opened) => check(opened),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        },
    };
    Ok((Taken { path, digest }, started))
}

/// How many times [`take`] tries for views of the live database before it gives up.
const TRIES: usize = 50;

/// `1 + count` read-only connections to `db`, each in a read transaction, all of one
/// and the same state of it; `None` when a commit came in between at every try. A
/// connection of its own reads `PRAGMA data_version` before the transactions begin and
/// after: it changes when any other connection commits, so two equal readings mean no
/// commit came between them, and every transaction begun in between saw the same
/// database. (The transactions begin within microseconds: each connection is opened
/// and its schema read beforehand.)
fn together(db: &Path, count: usize, tries: usize) -> Result<Option<Vec<Connection>>, StoreError> {
    let watch = crate::store::open_read_only(db)?;
    let all = (0..=count).map(|_| crate::store::open_read_only(db)).collect::<Result<Vec<_>, _>>()?;
    let version = |c: &Connection| c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0));
    let begin = |c: &Connection| {
        c.execute_batch("BEGIN")?;
        c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))
    };
    for c in &all {
        begin(c)?;
        c.execute_batch("ROLLBACK")?;
    }
    for _ in 0..tries {
        let before = version(&watch)?;
        for c in &all {
            begin(c)?;
        }
        if version(&watch)? == before {
            return Ok(Some(all));
        }
        for c in &all {
            c.execute_batch("ROLLBACK")?;
        }
        std::thread::yield_now();
    }
    Ok(None)
}

/// Writes pages `1..=pages` of `source`'s main database, as its read transaction sees
/// them, into a new file at `path` (not synced: a file of the moment, read back from
/// the page cache; a copy kept is synced by its keeper). Returns the bytes' digest.
fn write_pages(source: &Connection, pages: i64, path: &Path) -> Result<String, StoreError> {
    let failed = |e: std::io::Error| StoreError::Commit(format!("{}: {e}", path.display()));
    let file = std::fs::File::create_new(path).map_err(failed)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut stmt = source.prepare("SELECT pgno, data FROM sqlite_dbpage('main') ORDER BY pgno")?;
    let mut rows = stmt.query([])?;
    let (mut next, mut digest) = (1i64, Digest::new());
    while let Some(row) = rows.next()? {
        let pgno: i64 = row.get(0)?;
        let data = row.get_ref(1)?.as_blob().map_err(|e| StoreError::Commit(format!("page {pgno}: {e}")))?;
        if pgno != next || pgno > pages {
            return Err(StoreError::Commit(format!("page {pgno} came where page {next} of {pages} was due")));
        }
        let page = if pgno == 1 { std::borrow::Cow::Owned(rollback_header(data)) } else { data.into() };
        digest.update(&page);
        out.write_all(&page).map_err(failed)?;
        next += 1;
    }
    if next != pages + 1 {
        return Err(StoreError::Commit(format!("{} pages of {pages} were read", next - 1)));
    }
    out.into_inner().map_err(|e| failed(e.into_error()))?.flush().map_err(failed)?;
    Ok(digest.finish())
}

/// Page 1 with the header's file format versions (bytes 18 and 19) set to 1, legacy:
/// a file that does not ask for a WAL when it is opened, as a backup into a file in
/// DELETE mode leaves it.
fn rollback_header(page: &[u8]) -> Vec<u8> {
    let mut page = page.to_vec();
    if let Some(versions) = page.get_mut(18..20) {
        versions.copy_from_slice(&[1, 1]);
    }
    page
}

/// A read-only connection to `path`, in a read transaction.
fn open_view(path: &Path) -> Result<Connection, StoreError> {
    let conn = crate::store::open_read_only(path)?;
    conn.execute_batch("BEGIN")?;
    conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0))?;
    Ok(conn)
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

    fn generated(dir: &Path) -> CoreDb {
        let mut db = CoreDb::open(dir).unwrap();
        generate(&mut db, &Counts { users: 5, devices: 20, events: 50, apps: 2, policies: 2, seed: 1 }).unwrap();
        db
    }

    /// What a snapshot's file and views hold: the file sound, self-contained (no WAL
    /// asked for) and of the digest taken as it was written; each view's content the
    /// file's. Returns the file's content checksum.
    fn holds_together((taken, views): &(Taken, Vec<Connection>)) -> String {
        let header = std::fs::read(&taken.path).unwrap();
        assert_eq!(header[18..20], [1, 1], "a file in rollback mode");
        assert_eq!(super::super::digest::of_file(&taken.path).unwrap(), taken.digest);
        let copy = Connection::open(&taken.path).unwrap();
        let ok: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
        let mode: String = copy.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "delete");
        let content = content_checksum(&copy).unwrap();
        for view in views {
            assert_eq!(content_checksum(view).unwrap(), content, "a view sees what the file holds");
        }
        content
    }

    #[test]
    fn a_snapshot_has_the_same_content_and_a_change_shows() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = generated(dir.path());
        let taken = take(&dir.path().join(CORE_DB), dir.path(), 2, |views| views).unwrap();
        assert_eq!(taken.1.len(), 2);
        // With no write going on, the views are of the live data (the checks need not
        // wait for the file).
        for view in &taken.1 {
            assert_eq!(view.path().map(Path::new), Some(dir.path().join(CORE_DB).canonicalize().unwrap().as_path()));
        }
        let live = Connection::open(dir.path().join(CORE_DB)).unwrap();
        let before = content_checksum(&live).unwrap();
        assert_eq!(before, holds_together(&taken));
        db.write(|w| w.event(None, "x", "{}", "2026-11-26T00:00:00Z")).unwrap();
        assert_ne!(before, content_checksum(&live).unwrap());
        assert_eq!(before, holds_together(&taken), "the views hold their state; the file is its own");
    }

    #[test]
    fn views_see_what_the_file_holds_while_writes_go_on() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let mut db = generated(dir.path());
        let stop = AtomicBool::new(false);
        let db_path = dir.path().join(CORE_DB);
        /// Stops the writer however the test ends, so that a failure is not a hang.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let last_event = |conn: &Connection| -> i64 {
            conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0)).unwrap()
        };
        std::thread::scope(|scope| {
            let _stop = Stop(&stop);
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    db.write(|w| w.event(None, "x", "{}", "2026-11-26T00:00:00Z")).unwrap();
                }
            });
            // Each snapshot is taken once the live data has a commit the last one did not
            // have: the writer's pace is the machine's (a commit's fsync can stall for a
            // while on a busy one), so the test waits for it rather than counting on it.
            let live_data = Connection::open(&db_path).unwrap();
            let after = |had: i64| {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
                while last_event(&live_data) <= had {
                    assert!(std::time::Instant::now() < deadline, "the writer committed nothing for 120 s");
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            };
            let (mut contents, mut live, mut had) = (std::collections::HashSet::new(), 0, 0);
            // Views of the live data when a moment without a commit was found, of the
            // file otherwise (no tries at all: always the file).
            let rounds = [TRIES, TRIES, TRIES, 0, TRIES, 0];
            for tries in rounds {
                after(had);
                let taken = take_trying(&db_path, dir.path(), (3, |views| views), tries).unwrap();
                contents.insert(holds_together(&taken));
                had = last_event(&Connection::open(&taken.0.path).unwrap());
                let of_live = taken.1.iter().all(|view| view.path().is_some_and(|p| p.ends_with(CORE_DB)));
                live += usize::from(of_live);
                assert!(tries > 0 || !of_live, "no tries: views of the file");
                std::fs::remove_file(&taken.0.path).unwrap();
            }
            assert_eq!(contents.len(), rounds.len(), "each snapshot holds the commits before it");
            // 50 tries each: a moment without a commit was found for some (most) of them.
            assert!(live > 0, "views of the live data while it was written");
        });
    }
}
