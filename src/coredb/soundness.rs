//! What the sender of a full copy proves of it before the copy replaces anything: its
//! indexes against its tables, and its content checksum computed from the rows. Its
//! structure (`PRAGMA quick_check`) is the puller's to prove, on the very same bytes
//! (`replication::apply::verify`, whatever the sender says): running it here as well
//! would prove the same thing twice. Together they replace `PRAGMA integrity_check`,
//! which proves the same of the indexes with one b-tree search per row and index (1.8 s
//! on a 100,000-device Core); here each table and each index is read once, in order, on
//! threads of their own (large tables in two halves by rowid), with no allocation a row,
//! so the checks run beside a transfer in about the time of a scan.
//!
//! The index check: for every index, the sum of a hash of each entry (its columns and
//! rowid) read from the index must equal the same sum computed from the table's rows
//! (SipHash under a key drawn for this check: damage passes it with a chance of about
//! 2^-64 an index, and the sums are never stored or sent);
//! entries must come in ascending order; and a UNIQUE index must not hold two entries
//! with the same non-NULL key. That is what `integrity_check` adds to `quick_check`
//! (entries missing, extra or wrong, order, uniqueness). Indexes this cannot read so
//! (expressions, partial, another collation, WITHOUT ROWID tables) are left to
//! `PRAGMA integrity_check(table)` for their table.

use std::cmp::Ordering;
use std::hash::{BuildHasher, RandomState};
use std::path::Path;

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::checksum::{Sum, digest, encode, quote, tables};
use super::value_order::{Held, compare};
use crate::store::StoreError;

/// What the checks found: the content checksum from the rows, or the first problem.
pub type Verdict = Result<String, String>;

/// Checks the database at `path` (read only) on three threads: one read of every
/// index, and one read of every table (the content checksum and each index's expected
/// sum) on two, each with half of every large table. `Ok` carries the content checksum.
pub fn check(path: &Path) -> Result<Verdict, StoreError> {
    check_split(path, SPLIT_FROM)
}

/// [`check`], splitting tables of `split_from` rowids or more over two threads.
fn check_split(path: &Path, split_from: i64) -> Result<Verdict, StoreError> {
    let open = || crate::store::open_read_only(path);
    let (rows, more_rows, entries) = (open()?, open()?, open()?);
    let plans = plans(&rows)?;
    let (first, second) = halves(&rows, &plans, split_from)?;
    let keys = EntryHash::new();
    let (from_rows, from_indexes) = std::thread::scope(|scope| {
        let plans = &plans;
        let (for_indexes, for_second) = (keys.clone(), keys.clone());
        let from_indexes = scope.spawn(move || read_indexes(&entries, plans, for_indexes));
        let from_second = scope.spawn(move || read_tables(&more_rows, plans, for_second, &second));
        let from_first = read_tables(&rows, plans, keys, &first);
        (both(from_first, from_second.join()), from_indexes.join())
    });
    let failed = || StoreError::Commit("a check of the snapshot stopped".into());
    let (content, expected) = match from_rows.ok_or_else(failed)?? {
        Ok(found) => found,
        Err(problem) => return Ok(Err(problem)),
    };
    let found = match from_indexes.map_err(|_| failed())?? {
        Ok(found) => found,
        Err(problem) => return Ok(Err(problem)),
    };
    for ((plan, want), got) in plans.indexes.iter().zip(&expected).zip(&found) {
        if want != got {
            return Ok(Err(format!("index {} does not hold the rows of table {}", plan.name, plan.table)));
        }
    }
    Ok(Ok(content.to_hex()))
}

/// How each index is checked.
struct Plans {
    /// Indexes read in order and summed.
    indexes: Vec<IndexPlan>,
    /// Tables left to `PRAGMA integrity_check(table)`.
    by_sqlite: Vec<String>,
}

/// One index: its table, the table columns it holds (`None` for the rowid), whether it
/// is UNIQUE and how many of its columns are the key.
struct IndexPlan {
    name: String,
    table: String,
    columns: Vec<Option<usize>>,
    keys: usize,
    unique: bool,
}

/// The plans of every index of the replicated tables.
fn plans(conn: &Connection) -> Result<Plans, StoreError> {
    let mut out = Plans { indexes: Vec::new(), by_sqlite: Vec::new() };
    for table in tables(conn)? {
        match table_plans(conn, &table)? {
            Some(mut found) => out.indexes.append(&mut found),
            None => out.by_sqlite.push(table),
        }
    }
    Ok(out)
}

/// `None` when some index of `table` is not a plain one this check reads.
fn table_plans(conn: &Connection, table: &str) -> Result<Option<Vec<IndexPlan>>, StoreError> {
    let without_rowid: i64 =
        conn.query_row("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1", [table], |r| r.get(0))?;
    if without_rowid != 0 {
        return Ok(None);
    }
    let mut list = conn.prepare("SELECT name, \"unique\", partial FROM pragma_index_list(?1)")?;
    let indexes: Vec<(String, bool, bool)> =
        list.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    let mut plans = Vec::new();
    for (name, unique, partial) in indexes {
        if partial {
            return Ok(None);
        }
        let mut info = conn.prepare("SELECT cid, \"desc\", coll, key FROM pragma_index_xinfo(?1) ORDER BY seqno")?;
        let columns: Vec<(i64, bool, String, bool)> =
            info.query_map([&name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
        let plain = columns.iter().all(|(cid, desc, coll, _)| *cid >= -1 && !desc && coll == "BINARY");
        if !plain {
            return Ok(None);
        }
        let keys = columns.iter().filter(|c| c.3).count();
        let columns = columns.iter().map(|c| usize::try_from(c.0).ok()).collect();
        plans.push(IndexPlan { name, table: table.to_string(), columns, keys, unique });
    }
    Ok(Some(plans))
}

/// The content checksum and, index by index, the sum its entries must have: one read of
/// each table. Tables whose indexes this does not read get `integrity_check(table)`.
/// Each row is encoded once (as its hash takes it, each value's place kept); an index
/// entry is put together from the encoded values it holds.
fn read_tables(
    conn: &Connection,
    plans: &Plans,
    keys: EntryHash,
    part: &[Part],
) -> Result<Result<(Sum, Vec<Sum>), String>, StoreError> {
    let mut content = Sum::default();
    let mut expected = vec![Sum::default(); plans.indexes.len()];
    let (mut row, mut starts, mut entry) = (Vec::new(), Vec::new(), Vec::new());
    for Part { table, rowids } in part {
        if plans.by_sqlite.contains(table) {
            let verdict: String =
                conn.query_row(&format!("PRAGMA integrity_check({})", quote(table)), [], |r| r.get(0))?;
            if verdict != "ok" {
                return Ok(Err(format!("integrity_check({table}): {verdict}")));
            }
        }
        let mine: Vec<(usize, &IndexPlan)> =
            plans.indexes.iter().enumerate().filter(|(_, p)| &p.table == table).collect();
        let rowid_read = if mine.is_empty() { "" } else { ", rowid" };
        let (low, high) = rowids.unwrap_or((i64::MIN, i64::MAX));
        let range = if rowids.is_some() { " WHERE rowid BETWEEN ?1 AND ?2" } else { "" };
        let mut stmt = conn.prepare(&format!("SELECT *{rowid_read} FROM {}{range}", quote(table)))?;
        let columns = stmt.column_count() - usize::from(!mine.is_empty());
        let mut rows = if rowids.is_some() { stmt.query([low, high])? } else { stmt.query([])? };
        while let Some(read) = rows.next()? {
            // `table`, NUL, each value: what the row's hash takes; value `i` is
            // row[starts[i]..starts[i + 1]].
            row.clear();
            starts.clear();
            row.extend_from_slice(table.as_bytes());
            row.push(0);
            for i in 0..columns {
                starts.push(row.len());
                encode(&mut row, read.get_ref(i)?);
            }
            starts.push(row.len());
            content.add(digest(&row));
            if mine.is_empty() {
                continue;
            }
            // The rowid after them, outside what the row's hash took.
            let rowid = row.len();
            encode(&mut row, read.get_ref(columns)?);
            for (i, plan) in &mine {
                entry.clear();
                entry.extend_from_slice(plan.name.as_bytes());
                entry.push(0);
                for column in &plan.columns {
                    let span = match column.and_then(|c| Some((*starts.get(c)?, *starts.get(c + 1)?))) {
                        Some((from, to)) => &row[from..to],
                        None => &row[rowid..],
                    };
                    entry.extend_from_slice(span);
                }
                expected[*i].add(keys.hash(&entry));
            }
        }
    }
    Ok(Ok((content, expected)))
}

/// A table, or the rows of it whose rowids are in a range, read by one thread.
struct Part {
    table: String,
    rowids: Option<(i64, i64)>,
}

/// Tables with at least this many rowids between their first and last are read by two
/// threads, half each.
const SPLIT_FROM: i64 = 50_000;

/// The tables in two parts of about the same size: every table whole in the first part
/// but the large ones, whose rowids are cut in two (the table read is the longest of the
/// checks; on two threads it keeps both cores busy once the other checks are done).
fn halves(conn: &Connection, plans: &Plans, split_from: i64) -> Result<(Vec<Part>, Vec<Part>), StoreError> {
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for table in tables(conn)? {
        let whole = Part { table: table.clone(), rowids: None };
        if plans.by_sqlite.contains(&table) {
            first.push(whole);
            continue;
        }
        let ends: (Option<i64>, Option<i64>) =
            conn.query_row(&format!("SELECT min(rowid), max(rowid) FROM {}", quote(&table)), [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        match ends {
            (Some(low), Some(high)) if high.saturating_sub(low) >= split_from => {
                // Without overflow: a file's rowids can span the whole i64 range.
                let middle = low.midpoint(high);
                first.push(Part { table: table.clone(), rowids: Some((low, middle)) });
                second.push(Part { table, rowids: Some((middle + 1, high)) });
            }
            _ => first.push(whole),
        }
    }
    Ok((first, second))
}

/// The two parts' sums together (sums do not depend on order); `None` when a thread
/// stopped.
type TableSums = Result<Result<(Sum, Vec<Sum>), String>, StoreError>;
fn both(first: TableSums, second: std::thread::Result<TableSums>) -> Option<TableSums> {
    let second = second.ok()?;
    Some(match (first, second) {
        (Ok(Ok((mut content, mut expected))), Ok(Ok((more, others)))) => {
            content.add(more.0);
            expected.iter_mut().zip(others).for_each(|(e, o)| e.add(o.0));
            Ok(Ok((content, expected)))
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(Err(p)), _) | (_, Ok(Err(p))) => Ok(Err(p)),
    })
}

/// Each index's sum, read from the index itself in its order, checking that order and
/// uniqueness as it goes (each entry against the one before, kept value by value).
fn read_indexes(conn: &Connection, plans: &Plans, keys: EntryHash) -> Result<Result<Vec<Sum>, String>, StoreError> {
    let mut sums = Vec::with_capacity(plans.indexes.len());
    let mut entry = Vec::new();
    for plan in &plans.indexes {
        let mut info = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
        let names: Vec<String> = info.query_map([&plan.table], |r| r.get(0))?.collect::<Result<_, _>>()?;
        let selected: Vec<String> = plan
            .columns
            .iter()
            .map(|c| c.and_then(|c| names.get(c)).map_or("rowid".to_string(), |n| quote(n)))
            .collect();
        let sql =
            format!("SELECT {} FROM {} INDEXED BY {}", selected.join(", "), quote(&plan.table), quote(&plan.name));
        let shown: String = conn.query_row(&format!("EXPLAIN QUERY PLAN {sql}"), [], |r| r.get(3))?;
        if !shown.contains("COVERING INDEX") {
            return Ok(Err(format!("index {} cannot be read by itself ({shown})", plan.name)));
        }
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut sum = Sum::default();
        // The entry before, value by value (`None` before the first).
        let mut last: Option<Vec<Held>> = None;
        while let Some(row) = rows.next()? {
            entry.clear();
            entry.extend_from_slice(plan.name.as_bytes());
            entry.push(0);
            // How this entry compares with the one before: over all its values, and over
            // its key alone; and whether its key holds a NULL.
            let (mut whole, mut key, mut key_null) = (Ordering::Equal, Ordering::Equal, false);
            let first = last.is_none();
            let kept = last.get_or_insert_with(|| plan.columns.iter().map(|_| Held::Null).collect());
            for (i, held) in kept.iter_mut().enumerate() {
                let value = row.get_ref(i)?;
                let versus = if first { Ordering::Less } else { compare(&held.view(), &value).reverse() };
                if whole == Ordering::Equal {
                    whole = versus;
                }
                if i < plan.keys {
                    key_null |= matches!(value, ValueRef::Null);
                    if key == Ordering::Equal {
                        key = versus;
                    }
                }
                encode(&mut entry, value);
                held.set(value);
            }
            if !first {
                // `whole` is how this entry stands to the one before: it must come after.
                if whole != Ordering::Greater {
                    return Ok(Err(format!("index {} is out of order", plan.name)));
                }
                if plan.unique && !key_null && key == Ordering::Equal {
                    return Ok(Err(format!("index {} holds a key twice", plan.name)));
                }
            }
            sum.add(keys.hash(&entry));
        }
        sums.push(sum);
    }
    Ok(Ok(sums))
}

/// The hash of an index entry (the index's name, a NUL, then each value as a row's hash
/// takes it) under a SipHash key of this check's own.
#[derive(Clone)]
struct EntryHash {
    key: RandomState,
}

impl EntryHash {
    fn new() -> EntryHash {
        EntryHash { key: RandomState::new() }
    }

    fn hash(&self, entry: &[u8]) -> u128 {
        u128::from(self.key.hash_one(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database at `path` holding `setup`, its schema then rewritten with `rewrite`
    /// (an index's b-tree built one way and declared another: what damage looks like).
    fn damaged(path: &Path, setup: &str, index: &str, declared: &str) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(setup).unwrap();
        conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
        conn.execute("UPDATE sqlite_schema SET sql = ?1 WHERE name = ?2", [declared, index]).unwrap();
        conn.execute_batch("PRAGMA writable_schema = OFF").unwrap();
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
        let counts =
            super::super::generate::Counts { users: 30, devices: 200, events: 500, apps: 3, policies: 2, seed: 4 };
        super::super::generate::generate(&mut db, &counts).unwrap();
        let path = dir.path().join(super::super::CORE_DB);
        let want = db.content_checksum().unwrap();
        drop(db);
        assert_eq!(check(&path).unwrap(), Ok(want.clone()));
        assert_eq!(check_split(&path, 10).unwrap(), Ok(want), "read in two halves, the same sums");
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
        assert_eq!(check_split(&path, 1).unwrap(), Err("index i does not hold the rows of table t".into()));
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
        let path = dir.path().join("nulls.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT UNIQUE); INSERT INTO t (a) VALUES (NULL), (NULL), ('x');",
        )
        .unwrap();
        drop(conn);
        assert!(check(&path).unwrap().is_ok());
    }

    #[test]
    fn indexes_this_does_not_read_are_left_to_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!("{ROWS} CREATE INDEX p ON t (a) WHERE a > 'x'; CREATE INDEX e ON t (lower(b));"))
            .unwrap();
        let plans = plans(&conn).unwrap();
        assert_eq!(plans.by_sqlite, vec!["t".to_string()]);
        drop(conn);
        assert!(check(&path).unwrap().is_ok());
    }
}
