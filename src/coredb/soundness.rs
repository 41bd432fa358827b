//! What the sender of a full copy proves of it before the copy replaces anything: its
//! indexes against its tables, and its content checksum computed from the rows. Its
//! structure (`PRAGMA quick_check`) is the puller's to prove, on the very same bytes
//! (`replication::apply::verify`, whatever the sender says): running it here as well
//! would prove the same thing twice. Together they replace `PRAGMA integrity_check`,
//! which proves the same of the indexes with one b-tree search per row and index (1.8 s
//! on a 100,000-device Core); here each table and each index is read once, in order, with
//! no allocation a row, so the checks run beside a transfer in about the time of a scan.
//! The reads are jobs (each index whole, each table in runs of rowids) that a thread per
//! connection takes in turn, longest first, so that the threads end together. The
//! connections are given ([`check_views`]): for a full sync, a snapshot's views, read
//! transactions of the sender's live data that see exactly what the snapshot copies
//! (`replication::snapshot`), so the check runs beside the copy.
//!
//! The index check: for every index, the sum of a hash of each entry (its columns and
//! rowid) read from the index must equal the same sum computed from the table's rows
//! (XXH3-128 under a seed drawn for this check: it stands against damage, not against
//! someone choosing entries, and the sums are never stored or sent);
//! entries must come in ascending order; and a UNIQUE index must not hold two entries
//! with the same non-NULL key. That is what `integrity_check` adds to `quick_check`
//! (entries missing, extra or wrong, order, uniqueness). Indexes this cannot read so
//! (expressions, partial, another collation, WITHOUT ROWID tables) are left to
//! `PRAGMA integrity_check(table)` for their table.

use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::checksum::{Sum, digest, encode, quote, tables};
use super::value_order::{Held, compare};
use crate::store::StoreError;

/// What the checks found: the content checksum from the rows, or the first problem.
pub type Verdict = Result<String, String>;

/// Checks the database `connections` see (read only; each in a read transaction of the
/// same state of it when it changes meanwhile, as a snapshot's views are). The work is
/// cut into jobs, each index whole and every table in runs of rowids, which a thread a
/// connection takes in turn, longest first, so that they end together. `Ok` carries the
/// content checksum.
pub fn check_views(connections: Vec<Connection>) -> Result<Verdict, StoreError> {
    check_on(connections, RUN)
}

/// How many connections (and threads) a check is best given: one a core, two to four.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, MAX_THREADS))
}

/// At most this many threads check one database.
const MAX_THREADS: usize = 4;
/// Tables are read in runs of this many rowids,
const RUN: i64 = 65_536;
/// and in at most this many runs.
const MAX_RUNS: i64 = 64;

/// [`check_views`], with tables read in runs of `run` rowids.
fn check_on(connections: Vec<Connection>, run: i64) -> Result<Verdict, StoreError> {
    let (plans, jobs) = match connections.first() {
        Some(first) => {
            let plans = plans(first)?;
            let jobs = jobs(first, &plans, run)?;
            (plans, jobs)
        }
        None => return Err(StoreError::Commit("no connection to check with".into())),
    };
    let keys = EntryHash::new()?;
    let (next, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
    let done: Vec<std::thread::Result<Result<Done, StoreError>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = connections
            .into_iter()
            .map(|conn| {
                let (plans, jobs, keys, next, stop) = (&plans, &jobs, keys.clone(), &next, &stop);
                scope.spawn(move || work(&conn, plans, jobs, &keys, (next, stop)))
            })
            .collect();
        workers.into_iter().map(|w| w.join()).collect()
    });
    let mut found = Found::new(plans.indexes.len());
    let mut problem: Option<(usize, String)> = None;
    for outcome in done {
        let outcome = outcome.map_err(|_| StoreError::Commit("a check of the snapshot stopped".into()))??;
        found.merge(outcome.found);
        if let Some((job, why)) = outcome.problem
            && problem.as_ref().is_none_or(|(first, _)| job < *first)
        {
            problem = Some((job, why));
        }
    }
    if let Some((_, why)) = problem {
        return Ok(Err(why));
    }
    for ((plan, want), got) in plans.indexes.iter().zip(&found.expected).zip(&found.indexes) {
        if Some(*want) != *got {
            return Ok(Err(format!("index {} does not hold the rows of table {}", plan.name, plan.table)));
        }
    }
    Ok(Ok(found.content.to_hex()))
}

/// One piece of the check.
enum Job {
    /// Read index `n` of the plans whole (its order is checked entry by entry).
    Index(usize),
    /// Read these rows of a table.
    Rows(Part),
}

/// What one thread summed, and the first problem it met (with its job's place).
struct Done {
    found: Found,
    problem: Option<(usize, String)>,
}

/// Sums: of the rows' hashes, of the index entries the rows call for, and of the
/// entries each index holds (`None` until it is read).
struct Found {
    content: Sum,
    expected: Vec<Sum>,
    indexes: Vec<Option<Sum>>,
}

impl Found {
    fn new(indexes: usize) -> Found {
        Found { content: Sum::default(), expected: vec![Sum::default(); indexes], indexes: vec![None; indexes] }
    }

    /// Adds another thread's sums (sums do not depend on order).
    fn merge(&mut self, other: Found) {
        self.content.add(other.content.0);
        self.expected.iter_mut().zip(other.expected).for_each(|(e, o)| e.add(o.0));
        for (mine, theirs) in self.indexes.iter_mut().zip(other.indexes) {
            *mine = mine.or(theirs);
        }
    }
}

/// Takes jobs in turn until none is left or another thread met a problem.
fn work(
    conn: &Connection,
    plans: &Plans,
    jobs: &[Job],
    keys: &EntryHash,
    (next, stop): (&AtomicUsize, &AtomicBool),
) -> Result<Done, StoreError> {
    let mut found = Found::new(plans.indexes.len());
    while !stop.load(AtomicOrdering::Relaxed) {
        let n = next.fetch_add(1, AtomicOrdering::Relaxed);
        let Some(job) = jobs.get(n) else { break };
        let outcome = match job {
            Job::Index(i) => {
                read_index(conn, &plans.indexes[*i], keys).map(|r| r.map(|sum| found.indexes[*i] = Some(sum)))
            }
            Job::Rows(part) => read_rows(conn, plans, keys, part, &mut found),
        };
        let outcome = outcome.inspect_err(|_| stop.store(true, AtomicOrdering::Relaxed))?;
        if let Err(problem) = outcome {
            stop.store(true, AtomicOrdering::Relaxed);
            return Ok(Done { found, problem: Some((n, problem)) });
        }
    }
    Ok(Done { found, problem: None })
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

/// Adds the rows of `part` to the content checksum and, index by index, to the sum its
/// entries must have. A table whose indexes this does not read gets
/// `integrity_check(table)`. Each row is encoded once (as its hash takes it, each
/// value's place kept); an index entry is put together from the encoded values it holds.
fn read_rows(
    conn: &Connection,
    plans: &Plans,
    keys: &EntryHash,
    part: &Part,
    found: &mut Found,
) -> Result<Result<(), String>, StoreError> {
    let Found { content, expected, .. } = found;
    let (mut row, mut starts, mut entry) = (Vec::new(), Vec::new(), Vec::new());
    let Part { table, rowids } = part;
    if plans.by_sqlite.contains(table) {
        let verdict: String = conn.query_row(&format!("PRAGMA integrity_check({})", quote(table)), [], |r| r.get(0))?;
        if verdict != "ok" {
            return Ok(Err(format!("integrity_check({table}): {verdict}")));
        }
    }
    let mine: Vec<(usize, &IndexPlan)> = plans.indexes.iter().enumerate().filter(|(_, p)| &p.table == table).collect();
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
    Ok(Ok(()))
}

/// A table, or the rows of it whose rowids are in a range.
struct Part {
    table: String,
    rowids: Option<(i64, i64)>,
}

/// The jobs of a check, longest first: the tables left to SQLite, then every index
/// (those of the tables with the most rowids first), then every other table in runs of
/// `run` rowids.
fn jobs(conn: &Connection, plans: &Plans, run: i64) -> Result<Vec<Job>, StoreError> {
    let run = run.max(1);
    let (mut whole, mut runs, mut spans) = (Vec::new(), Vec::new(), Vec::new());
    for table in tables(conn)? {
        if plans.by_sqlite.contains(&table) {
            whole.push(Job::Rows(Part { table, rowids: None }));
            continue;
        }
        // Two searches: `min(rowid), max(rowid)` in one statement would scan the table.
        let quoted = quote(&table);
        let ends: (Option<i64>, Option<i64>) = conn.query_row(
            &format!("SELECT (SELECT min(rowid) FROM {quoted}), (SELECT max(rowid) FROM {quoted})"),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (Some(low), Some(high)) = ends else { continue };
        // In i128: a file's rowids can span the whole i64 range. Sparse rowids make long
        // spans of few rows: at most MAX_RUNS runs a table.
        let span = i128::from(high) - i128::from(low);
        spans.push((table.clone(), span));
        let step = i128::from(run).max(span / i128::from(MAX_RUNS) + 1);
        let mut from = i128::from(low);
        while from <= i128::from(high) {
            let to = (from + step - 1).min(i128::from(high));
            // Both within [low, high], so within i64.
            let (Ok(first), Ok(last)) = (i64::try_from(from), i64::try_from(to)) else { break };
            runs.push(Job::Rows(Part { table: table.clone(), rowids: Some((first, last)) }));
            from = to + 1;
        }
    }
    let span = |i: &usize| spans.iter().find(|(t, _)| *t == plans.indexes[*i].table).map_or(0, |s| s.1);
    let mut indexes: Vec<usize> = (0..plans.indexes.len()).collect();
    indexes.sort_by_key(|i| std::cmp::Reverse(span(i)));
    whole.extend(indexes.into_iter().map(Job::Index));
    whole.extend(runs);
    Ok(whole)
}

/// Each index's sum, read from the index itself in its order, checking that order and
/// uniqueness as it goes (each entry against the one before, kept value by value).
fn read_index(conn: &Connection, plan: &IndexPlan, keys: &EntryHash) -> Result<Result<Sum, String>, StoreError> {
    let mut entry = Vec::new();
    let mut info = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let names: Vec<String> = info.query_map([&plan.table], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let selected: Vec<String> =
        plan.columns.iter().map(|c| c.and_then(|c| names.get(c)).map_or("rowid".to_string(), |n| quote(n))).collect();
    let sql = format!("SELECT {} FROM {} INDEXED BY {}", selected.join(", "), quote(&plan.table), quote(&plan.name));
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
    Ok(Ok(sum))
}

/// The hash of an index entry (the index's name, a NUL, then each value as a row's hash
/// takes it): XXH3-128 under a seed of this check's own.
#[derive(Clone)]
struct EntryHash {
    seed: u64,
}

impl EntryHash {
    fn new() -> Result<EntryHash, StoreError> {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).map_err(|e| StoreError::Commit(format!("no seed for the check: {e}")))?;
        Ok(EntryHash { seed: u64::from_le_bytes(seed) })
    }

    fn hash(&self, entry: &[u8]) -> u128 {
        xxhash_rust::xxh3::xxh3_128_with_seed(entry, self.seed)
    }
}

#[cfg(test)]
#[path = "soundness_tests.rs"]
mod tests;
