//! Tests of `swap`: prepared swaps committed, dropped, given up, and what readers and
//! writers of the live database see meanwhile.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A database at `path` in WAL mode with `rows` rows of 1 KB tagged `tag`.
fn database(path: &Path, rows: i64, tag: &str) {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, tag TEXT, pad BLOB)").unwrap();
    conn.execute("INSERT INTO t (tag, pad) SELECT ?1, zeroblob(1000) FROM generate_series(1, ?2)", (tag, rows))
        .unwrap_or_else(|_| {
            // SQLite built without generate_series: a recursive CTE does the same.
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2)
                 INSERT INTO t (tag, pad) SELECT ?1, zeroblob(1000) FROM n",
                (tag, rows),
            )
            .unwrap()
        });
}

/// The tags of the rows of the database at `path`, counted, as a new reader sees them.
fn tags(path: &Path) -> Vec<(String, i64)> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT tag, count(*) FROM t GROUP BY tag ORDER BY tag").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// A live database (`old`, 100 rows) and a staged one (`new`, 10,000 rows: 10 MB, more
/// than two steps of the copy).
fn live_and_staged() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (live, staged) = (dir.path().join("live.db"), dir.path().join("staged.db"));
    database(&live, 100, "old");
    database(&staged, 10_000, "new");
    Connection::open(&staged).unwrap().pragma_update(None, "journal_mode", "DELETE").unwrap();
    (dir, live, staged)
}

/// Prepares the swap of `staged` into `live`, held while `keep` is set (and for a
/// minute at most: long enough that no test here sees it let go on a loaded machine).
fn prepared(live: &Path, staged: &Path, keep: &Arc<AtomicBool>) -> Swap {
    held_at_most(live, staged, keep, Duration::from_secs(60))
}

/// [`prepared`], held at most `hold`.
fn held_at_most(live: &Path, staged: &Path, keep: &Arc<AtomicBool>, hold: Duration) -> Swap {
    let keep = keep.clone();
    let open: Open = |path| {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(conn)
    };
    let keep_on = move || match keep.load(Ordering::SeqCst) {
        true => Ok(()),
        false => Err("this node became primary (active)".to_string()),
    };
    Swap::holding(open, live.to_path_buf(), staged.to_path_buf(), Box::new(keep_on), hold)
}

/// Waits until the prepared copy has written `bytes` of the staged pages into the WAL
/// (it holds the write lock from its first step).
fn until_copied(live: &Path, bytes: u64) {
    let wal = live.with_extension("db-wal");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < bytes {
        assert!(Instant::now() < deadline, "the copy never reached the WAL");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_prepared_swap_changes_nothing_until_it_is_committed() {
    let (_dir, live, staged) = live_and_staged();
    let keep = Arc::new(AtomicBool::new(true));
    let swap = prepared(&live, &staged, &keep);
    until_copied(&live, 4 << 20);
    std::thread::sleep(POLL * 2);
    // Most of the new data is in the WAL, uncommitted: every reader sees the old data.
    assert_eq!(tags(&live), vec![("old".to_string(), 100)]);
    swap.commit().unwrap();
    assert_eq!(tags(&live), vec![("new".to_string(), 10_000)]);
    // The WAL was copied back and emptied.
    assert_eq!(std::fs::metadata(live.with_extension("db-wal")).map_or(0, |m| m.len()), 0);
}

#[test]
fn a_dropped_swap_is_rolled_back_and_the_live_data_takes_writes() {
    let (_dir, live, staged) = live_and_staged();
    let keep = Arc::new(AtomicBool::new(true));
    let swap = prepared(&live, &staged, &keep);
    until_copied(&live, 4 << 20);
    drop(swap);
    assert_eq!(tags(&live), vec![("old".to_string(), 100)]);
    let conn = Connection::open(&live).unwrap();
    conn.execute("INSERT INTO t (tag) VALUES ('after')", []).unwrap();
    drop(conn);
    assert_eq!(tags(&live), vec![("after".to_string(), 1), ("old".to_string(), 100)]);
    // Dropped at once, before any page was copied: the same.
    drop(prepared(&live, &staged, &keep));
    assert_eq!(tags(&live), vec![("after".to_string(), 1), ("old".to_string(), 100)]);
}

#[test]
fn a_swap_gives_up_the_live_data_when_told_and_a_waiting_writer_gets_in() {
    let (_dir, live, staged) = live_and_staged();
    let keep = Arc::new(AtomicBool::new(true));
    let swap = prepared(&live, &staged, &keep);
    until_copied(&live, 4 << 20);
    // A writer (a new primary's check-in) waits for the write lock the swap holds...
    let writer = {
        let live = live.clone();
        std::thread::spawn(move || {
            let conn = Connection::open(&live).unwrap();
            conn.busy_timeout(Duration::from_secs(30)).unwrap();
            conn.execute("INSERT INTO t (tag) VALUES ('primary')", [])
        })
    };
    std::thread::sleep(POLL * 4);
    assert!(!writer.is_finished(), "the writer waits while the swap is held");
    // ...until the swap hears that it must let go: it rolls back and the write is taken.
    keep.store(false, Ordering::SeqCst);
    assert_eq!(writer.join().unwrap().unwrap(), 1);
    let refused = swap.commit().unwrap_err().to_string();
    assert!(refused.contains("the swap was given up: this node became primary (active)"), "{refused}");
    assert_eq!(tags(&live), vec![("old".to_string(), 100), ("primary".to_string(), 1)]);
}

#[test]
fn a_swap_kept_out_by_another_writer_says_so_and_changes_nothing() {
    let (_dir, live, staged) = live_and_staged();
    // A writer holds the live database past the swap's busy timeout (100 ms here).
    let writer = Connection::open(&live).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO t (tag) VALUES ('writer')").unwrap();
    let open: Open = |path| {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_millis(100))?;
        Ok(conn)
    };
    let swap = Swap::prepare(open, live.clone(), staged, Box::new(|| Ok(())));
    let refused = swap.commit().unwrap_err().to_string();
    assert!(refused.contains("the live database stayed locked by another writer"), "{refused}");
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(tags(&live), vec![("old".to_string(), 100), ("writer".to_string(), 1)]);
}

#[test]
fn a_swap_told_no_before_it_starts_copies_nothing() {
    let (_dir, live, staged) = live_and_staged();
    let keep = Arc::new(AtomicBool::new(false));
    let refused = prepared(&live, &staged, &keep).commit().unwrap_err().to_string();
    assert!(refused.contains("given up"), "{refused}");
    assert_eq!(tags(&live), vec![("old".to_string(), 100)]);
}

#[test]
fn a_swap_that_cannot_open_its_source_says_so() {
    let (dir, live, _staged) = live_and_staged();
    let keep = Arc::new(AtomicBool::new(true));
    let refused = prepared(&live, &dir.path().join("absent.db"), &keep).commit().unwrap_err();
    assert!(!refused.to_string().is_empty());
    assert_eq!(tags(&live), vec![("old".to_string(), 100)]);
}

#[test]
fn the_core_data_opens_while_a_swap_into_it_is_prepared() {
    use crate::coredb::generate::{Counts, generate};
    let (live, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    drop(crate::coredb::CoreDb::open(live.path()).unwrap());
    let mut source = crate::coredb::CoreDb::open(other.path()).unwrap();
    generate(&mut source, &Counts { users: 50, devices: 5_000, events: 50_000, apps: 2, policies: 2, seed: 1 })
        .unwrap();
    let staged = other.path().join("staged.db");
    source.connection().execute("VACUUM INTO ?1", [staged.to_string_lossy()]).unwrap();
    let swap = crate::coredb::CoreDb::prepare_swap(live.path(), &staged, Box::new(|| Ok(())));
    until_copied(&live.path().join(crate::coredb::CORE_DB), 1 << 20);
    // A node opening its Core data meanwhile (the pull itself, a shell) reads it as it
    // was, without waiting for the write lock the swap holds.
    // (One that needed the lock would fail after its busy timeout: the swap holds it.)
    let db = crate::coredb::CoreDb::open(live.path()).unwrap();
    assert_eq!(db.summary().unwrap().devices, 0);
    swap.commit().unwrap();
    assert_eq!(db.summary().unwrap().devices, 5_000);
}

#[test]
fn a_swap_held_too_long_lets_go_and_copies_again_when_committed() {
    let (_dir, live, staged) = live_and_staged();
    let keep = Arc::new(AtomicBool::new(true));
    let swap = held_at_most(&live, &staged, &keep, Duration::from_millis(300));
    until_copied(&live, 4 << 20);
    // No decision within its hold: the copy is rolled back and the write lock let go; a
    // writer gets in.
    let conn = Connection::open(&live).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn.execute("INSERT INTO t (tag) VALUES ('operator')", []).unwrap();
    assert_eq!(tags(&live), vec![("old".to_string(), 100), ("operator".to_string(), 1)]);
    // Committed later: everything is copied again, in one transaction.
    swap.commit().unwrap();
    assert_eq!(tags(&live), vec![("new".to_string(), 10_000)]);
}
