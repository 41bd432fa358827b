//! Tests of `soundness`: damage of each kind is found (indexes that do not hold their
//! rows, out of order, a unique key twice), and work cut any way gives the same sums.

use super::*;
use std::path::Path;

/// The database at `path` checked as a snapshot's views are, with connections of its own.
fn check(path: &Path) -> Result<Verdict, StoreError> {
    check_in_runs(path, RUN, threads())
}

/// [`check`] with `threads` connections and runs of `run` rowids.
fn check_in_runs(path: &Path, run: i64, threads: usize) -> Result<Verdict, StoreError> {
    let connections = (0..threads).map(|_| crate::store::open_read_only(path).unwrap()).collect();
    check_on(connections, run)
}

/// A database at `path` holding `setup`, its schema then rewritten with `rewrite`
/// (an index's b-tree built one way and declared another: what damage looks like).
fn damaged(path: &Path, setup: &str, index: &str, declared: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(setup).unwrap();
    conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
    conn.execute("UPDATE sqlite_schema SET sql = ?1 WHERE name = ?2", [declared, index]).unwrap();
    conn.execute_batch("PRAGMA writable_schema = OFF").unwrap();
}

/// A new database `name` in `dir` made of `sql`, and a connection to it.
fn made(dir: &Path, name: &str, sql: &str) -> (std::path::PathBuf, Connection) {
    let path = dir.join(name);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    (path, conn)
}

fn sqlite_says(path: &Path) -> String {
    Connection::open(path).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

const ROWS: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT);
    INSERT INTO t (a, b) VALUES ('x', 'B'), ('y', 'a'), ('z', 'c'), (NULL, 'a'), ('w', NULL);";

#[test]
fn a_sound_database_passes_and_yields_its_content_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = super::super::CoreDb::open(dir.path()).unwrap();
    let counts = super::super::generate::Counts { users: 30, devices: 200, events: 500, apps: 3, policies: 2, seed: 4 };
    super::super::generate::generate(&mut db, &counts).unwrap();
    let path = dir.path().join(super::super::CORE_DB);
    let want = db.content_checksum().unwrap();
    drop(db);
    assert_eq!(check(&path).unwrap(), Ok(want.clone()));
    assert_eq!(check_in_runs(&path, 10, 3).unwrap(), Ok(want), "read in runs of 10 rowids, the same sums");
    assert_eq!(sqlite_says(&path), "ok");
    // Every index of the Core data is read by this check, none left to SQLite.
    let conn = Connection::open(&path).unwrap();
    let plans = plans(&conn).unwrap();
    assert!(plans.by_sqlite.is_empty());
    assert!(plans.indexes.iter().any(|p| p.name == "events_device"), "{:?}", plans.indexes.len());
    assert!(plans.indexes.iter().any(|p| p.unique && p.table == "devices"));
}

#[test]
fn an_index_that_does_not_hold_its_rows_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let setup = format!("{ROWS} CREATE INDEX i ON t (a);");
    damaged(&path, &setup, "i", "CREATE INDEX i ON t (b)");
    assert_ne!(sqlite_says(&path), "ok");
    assert_eq!(check(&path).unwrap(), Err("index i does not hold the rows of table t".into()));
    // The same rows in order, one entry changed: the sums differ.
    let path = dir.path().join("y.db");
    let setup = "CREATE TABLE t (id INTEGER PRIMARY KEY, a INT, b INT);
        INSERT INTO t (a, b) VALUES (1, 1), (2, 2), (3, 4); CREATE INDEX i ON t (a);";
    damaged(&path, setup, "i", "CREATE INDEX i ON t (b)");
    assert_ne!(sqlite_says(&path), "ok");
    assert_eq!(check(&path).unwrap(), Err("index i does not hold the rows of table t".into()));
    assert_eq!(check_in_runs(&path, 1, 2).unwrap(), Err("index i does not hold the rows of table t".into()));
}

#[test]
fn entries_out_of_order_and_a_unique_key_twice_are_found() {
    let dir = tempfile::tempdir().unwrap();
    // Built in NOCASE order ('a' before 'B'), declared BINARY ('B' before 'a').
    let path = dir.path().join("order.db");
    damaged(&path, &format!("{ROWS} CREATE INDEX i ON t (b COLLATE NOCASE);"), "i", "CREATE INDEX i ON t (b)");
    assert_ne!(sqlite_says(&path), "ok");
    assert_eq!(check(&path).unwrap(), Err("index i is out of order".into()));
    // 'a' twice in an index declared UNIQUE afterwards.
    let path = dir.path().join("unique.db");
    damaged(&path, &format!("{ROWS} CREATE INDEX i ON t (b);"), "i", "CREATE UNIQUE INDEX i ON t (b)");
    assert_ne!(sqlite_says(&path), "ok");
    assert_eq!(check(&path).unwrap(), Err("index i holds a key twice".into()));
    // NULLs are distinct in a UNIQUE index.
    let sql = "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT UNIQUE); INSERT INTO t (a) VALUES (NULL), (NULL), ('x');";
    let (path, conn) = made(dir.path(), "nulls.db", sql);
    drop(conn);
    assert!(check(&path).unwrap().is_ok());
}

#[test]
fn indexes_this_does_not_read_are_left_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let sql = format!("{ROWS} CREATE INDEX p ON t (a) WHERE a > 'x'; CREATE INDEX e ON t (lower(b));");
    let (path, conn) = made(dir.path(), "x.db", &sql);
    let plans = plans(&conn).unwrap();
    assert_eq!(plans.by_sqlite, vec!["t".to_string()]);
    drop(conn);
    assert!(check(&path).unwrap().is_ok());
}

#[test]
fn jobs_cover_every_rowid_once_and_put_the_largest_tables_indexes_first() {
    let dir = tempfile::tempdir().unwrap();
    let (path, conn) = made(
        dir.path(),
        "x.db",
        "CREATE TABLE small (id INTEGER PRIMARY KEY, a TEXT); CREATE INDEX s ON small (a);
         INSERT INTO small (id, a) VALUES (1, 'x'), (2, 'y');
         CREATE TABLE big (id INTEGER PRIMARY KEY, a TEXT); CREATE INDEX b ON big (a);
         INSERT INTO big (id, a) VALUES (-9223372036854775808, 'x'), (5, 'y'), (9223372036854775807, 'z');
         CREATE TABLE empty (id INTEGER PRIMARY KEY);",
    );
    let plans = plans(&conn).unwrap();
    let found = jobs(&conn, &plans, 1 << 62).unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|j| match j {
            Job::Index(i) => format!("index {}", plans.indexes[*i].name),
            Job::Rows(p) => format!("{} {:?}", p.table, p.rowids),
        })
        .collect();
    let (low, high) = (i64::MIN, i64::MAX);
    let runs = [(low, low + (1 << 62) - 1), (low + (1 << 62), -1), (0, (1 << 62) - 1), (1 << 62, high)];
    let mut want = vec!["index b".to_string(), "index s".to_string()];
    want.extend(runs.iter().map(|r| format!("big {:?}", Some(*r))));
    want.push("small Some((1, 2))".into());
    assert_eq!(names, want);
    drop(conn);
    assert!(check_in_runs(&path, 1 << 62, 2).unwrap().is_ok());
    // However short the runs asked for, a table has at most MAX_RUNS of them.
    let runs = jobs(&Connection::open(&path).unwrap(), &plans, 1)
        .unwrap()
        .iter()
        .filter(|j| matches!(j, Job::Rows(p) if p.table == "big"))
        .count();
    assert_eq!(runs, MAX_RUNS as usize);
    assert_eq!(check_in_runs(&path, 1, 3).unwrap(), check_in_runs(&path, 1 << 62, 1).unwrap());
}
