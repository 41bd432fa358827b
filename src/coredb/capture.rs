//! Change capture of coresh's own, from SQLite's pre-update hook: each row a write
//! transaction inserts, updates or deletes in a replicated table is seen once, with its
//! old and new values, and kept in SQLite's changeset format ([`super::changeset`]). At the end of the
//! transaction the changes are merged row by row (an insert then an update is one
//! insert, an update back to the old values is nothing, as the session extension merges
//! them), written out as a changeset any SQLite session reader applies, and the content
//! checksum is moved by the old and new rows' hashes, without reading a row again.
//!
//! What a hook cannot see is a change undone: a statement that fails half-way, or a
//! `ROLLBACK TO`. So a write undoes its own steps only through [`Capture::mark`] and
//! [`Capture::undo`] (`Writes::op` does both with its savepoint), and every capture
//! checks SQLite's count of rows changed by completed statements against the rows it
//! saw: a write whose changes it cannot account for is refused, never logged short.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization, PreUpdateCase, TransactionOperation};
use rusqlite::types::ValueRef;
use rustc_hash::FxHashMap;

use super::changeset::{DELETE, INSERT, Values, differs, primary_key, put_row, put_table, put_value, update};
use super::checksum::{RowHasher, Sum, is_replicated, key_places};
use crate::store::StoreError;

/// The name of the savepoint a write's steps run in ([`crate::coredb::Writes::op`]); the
/// only one a write may roll back to. The statements below are spelled from it.
macro_rules! op_savepoint {
    () => {
        "op"
    };
}
pub const SAVEPOINT: &str = op_savepoint!();
pub const BEGIN_OP: &str = concat!("SAVEPOINT ", op_savepoint!());
pub const UNDO_OP: &str = concat!("ROLLBACK TO ", op_savepoint!());
pub const END_OP: &str = concat!("RELEASE ", op_savepoint!());

/// A replicated table as the changeset names it.
#[derive(Debug, PartialEq, Eq)]
struct Table {
    name: String,
    /// For each column, its place in the primary key (1-based), or 0.
    pk: Vec<u8>,
}

/// One row change as the hook saw it: the old and new rows, encoded, in `arena`.
struct Raw {
    table: usize,
    old: Option<(usize, usize)>,
    new: Option<(usize, usize)>,
}

/// What the hook gathers during one write.
#[derive(Default)]
struct Changes {
    /// Replicated tables, read when the schema changed (a dozen: found by a scan, which
    /// costs less a row than hashing the name).
    tables: Vec<Table>,
    schema_version: Option<i64>,
    arena: Vec<u8>,
    raws: Vec<Raw>,
    /// Rows the hook saw, in every table and database, since the last mark.
    seen: u64,
    /// SQLite's count of changed rows at the last mark.
    counted: u64,
    error: Option<String>,
}

/// Where a write stood, to undo what followed.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    raws: usize,
    arena: usize,
}

/// The capture of one connection (the hook holds the other handle).
#[derive(Default)]
pub struct Capture {
    changes: Arc<Mutex<Changes>>,
    /// Whether a write is being recorded (read by the hooks without the lock).
    active: Arc<AtomicBool>,
}

/// A transaction's changes, merged: the changeset, how many rows it changes, and the
/// content checksum after it.
pub struct Captured {
    pub changeset: Vec<u8>,
    pub rows: i64,
    pub sum: Sum,
}

impl Capture {
    /// Installs the hook on `conn`, for as long as it is open. It records only between
    /// [`Capture::begin`] and [`Capture::finish`]; being there from the start, every
    /// statement is compiled with it (SQLite's shortcut for a `DELETE` of a whole table,
    /// which bypasses the hook, is then never taken).
    ///
    /// It also refuses, while it records, to compile a `ROLLBACK TO` of any savepoint but
    /// [`SAVEPOINT`]'s: the undo it could not see.
    pub fn install(conn: &mut Connection) -> rusqlite::Result<Capture> {
        let capture = Capture::default();
        let (changes, active) = (Arc::clone(&capture.changes), Arc::clone(&capture.active));
        conn.preupdate_hook(Some(move |_, db: &str, table: &str, case: &PreUpdateCase| {
            if active.load(Ordering::Acquire) {
                lock(&changes).saw(db, table, case);
            }
        }))?;
        let active = Arc::clone(&capture.active);
        conn.authorizer(Some(move |context: AuthContext<'_>| match context.action {
            AuthAction::Savepoint { operation: TransactionOperation::Rollback, savepoint_name }
                if savepoint_name != SAVEPOINT && active.load(Ordering::Acquire) =>
            {
                Authorization::Deny
            }
            _ => Authorization::Allow,
        }))?;
        Ok(capture)
    }

    /// Stops recording (the write ended, committed or not).
    fn stop(&self) {
        self.active.store(false, Ordering::Release);
    }

    fn recording(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Starts capturing the changes made on `conn` (in the write transaction just begun),
    /// until [`Capture::finish`] or the returned guard's drop (a write that failed or
    /// panicked).
    pub fn begin(&self, conn: &Connection) -> Result<Recording<'_>, StoreError> {
        let version: i64 = conn.prepare_cached("PRAGMA schema_version")?.query_row([], |r| r.get(0))?;
        let mut c = lock(&self.changes);
        if c.schema_version != Some(version) {
            let tables = read_tables(conn)?;
            c.tables = tables;
            c.schema_version = Some(version);
        }
        c.arena.clear();
        c.raws.clear();
        c.error = None;
        c.seen = 0;
        c.counted = conn.total_changes();
        drop(c);
        self.active.store(true, Ordering::Release);
        Ok(Recording(self))
    }

    /// Where the write stands now; checks that every change so far was seen.
    pub fn mark(&self, conn: &Connection) -> Result<Mark, StoreError> {
        let mut c = lock(&self.changes);
        if self.recording() {
            c.account(conn)?;
        }
        Ok(Mark { raws: c.raws.len(), arena: c.arena.len() })
    }

    /// Forgets what followed `mark`: the caller rolled it back.
    pub fn undo(&self, conn: &Connection, mark: Mark) {
        let mut c = lock(&self.changes);
        c.raws.truncate(mark.raws);
        c.arena.truncate(mark.arena);
        c.seen = 0;
        c.counted = conn.total_changes();
        c.error = None;
    }

    /// Stops capturing; the merged changes (`None` when nothing changed), with the
    /// checksum moved from `before`.
    pub fn finish(
        &self,
        conn: &Connection,
        before: impl FnOnce() -> Result<Sum, StoreError>,
    ) -> Result<Option<Captured>, StoreError> {
        let recording = self.recording();
        self.stop();
        let mut c = lock(&self.changes);
        if !recording {
            return Ok(None);
        }
        c.account(conn)?;
        let merged = c.merge();
        if merged.is_empty() {
            return Ok(None);
        }
        let mut sum = before()?;
        let mut changeset = Vec::with_capacity(c.arena.len() + 64);
        let mut hasher = RowHasher::default();
        let mut table = usize::MAX;
        for &(t, old, new) in &merged {
            let info = &c.tables[t];
            if t != table {
                table = t;
                put_table(&mut changeset, &info.name, &info.pk);
            }
            let old = old.map(|(a, b)| &c.arena[a..b]);
            let new = new.map(|(a, b)| &c.arena[a..b]);
            if let Some(old) = old {
                sum.sub(hasher.hash(&info.name, Values(old)));
            }
            if let Some(new) = new {
                sum.add(hasher.hash(&info.name, Values(new)));
            }
            match (old, new) {
                (None, Some(new)) => put_row(&mut changeset, INSERT, new),
                (Some(old), None) => put_row(&mut changeset, DELETE, old),
                (Some(old), Some(new)) => update(&mut changeset, &info.pk, old, new),
                (None, None) => {}
            }
        }
        Ok(Some(Captured { changeset, rows: merged.len() as i64, sum }))
    }
}

/// A write being recorded; recording stops when it goes.
pub struct Recording<'a>(&'a Capture);

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn lock(changes: &Mutex<Changes>) -> MutexGuard<'_, Changes> {
    changes.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Changes {
    fn saw(&mut self, db: &str, table: &str, case: &PreUpdateCase) {
        self.seen += 1;
        if db != "main" || !is_replicated(table) || self.error.is_some() {
            return;
        }
        let Some(t) = self.tables.iter().position(|t| t.name == table) else {
            self.error = Some(format!("table {table} is not one change capture knows"));
            return;
        };
        let columns = self.tables[t].pk.len();
        let (old, new) = match case {
            PreUpdateCase::Insert(n) => {
                (None, self.encode(columns, n.get_column_count(), |i| n.get_new_column_value(i)))
            }
            PreUpdateCase::Delete(o) => {
                (self.encode(columns, o.get_column_count(), |i| o.get_old_column_value(i)), None)
            }
            PreUpdateCase::Update { old_value_accessor: o, new_value_accessor: n } => (
                self.encode(columns, o.get_column_count(), |i| o.get_old_column_value(i)),
                self.encode(columns, n.get_column_count(), |i| n.get_new_column_value(i)),
            ),
            PreUpdateCase::Unknown => {
                self.error = Some(format!("a change of {table} of a kind change capture does not know"));
                return;
            }
        };
        if self.error.is_none() {
            self.raws.push(Raw { table: t, old, new });
        }
    }

    /// Appends one row's values to the arena; `None` (and the error noted) when the row
    /// does not have the table's columns.
    fn encode<'a>(
        &mut self,
        columns: usize,
        count: i32,
        value: impl Fn(i32) -> rusqlite::Result<ValueRef<'a>>,
    ) -> Option<(usize, usize)> {
        if usize::try_from(count).ok() != Some(columns) {
            self.error = Some(format!("a row of {count} columns where the table has {columns}"));
            return None;
        }
        let start = self.arena.len();
        for i in 0..count {
            match value(i) {
                Ok(v) => put_value(&mut self.arena, v),
                Err(e) => {
                    self.error = Some(format!("cannot read a changed value: {e}"));
                    return None;
                }
            }
        }
        Some((start, self.arena.len()))
    }

    /// Refuses a write with changes the hook did not see (or could not read).
    fn account(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if let Some(e) = &self.error {
            return Err(StoreError::Commit(format!("change capture failed: {e}; nothing was written")));
        }
        let counted = conn.total_changes().wrapping_sub(self.counted);
        if counted != self.seen {
            return Err(StoreError::Commit(format!(
                "change capture saw {} row changes where SQLite counted {counted} (a failed statement or a \
                 rollback the write did not undo through its savepoint); nothing was written",
                self.seen
            )));
        }
        self.seen = 0;
        self.counted = conn.total_changes();
        Ok(())
    }

    /// The transaction's net change of each row, in the order rows were first changed,
    /// grouped by table: (table, row before, row after), rows as arena ranges.
    #[allow(clippy::type_complexity)]
    fn merge(&self) -> Vec<(usize, Option<(usize, usize)>, Option<(usize, usize)>)> {
        let mut net: Vec<(usize, Option<(usize, usize)>, Option<(usize, usize)>)> = Vec::with_capacity(self.raws.len());
        let mut index: FxHashMap<(usize, Cow<[u8]>), usize> =
            FxHashMap::with_capacity_and_hasher(self.raws.len(), Default::default());
        let key = |t: usize, row: (usize, usize)| (t, primary_key(&self.arena[row.0..row.1], &self.tables[t].pk));
        let mut change = |t: usize, old: Option<(usize, usize)>, new: Option<(usize, usize)>| {
            let Some(row) = old.or(new) else { return };
            match index.entry(key(t, row)) {
                Entry::Occupied(at) => net[*at.get()].2 = new,
                Entry::Vacant(slot) => {
                    slot.insert(net.len());
                    net.push((t, old, new));
                }
            }
        };
        for raw in &self.raws {
            match (raw.old, raw.new) {
                (Some(old), Some(new)) if key(raw.table, old) != key(raw.table, new) => {
                    // A new primary key: the old row goes, a new one comes.
                    change(raw.table, Some(old), None);
                    change(raw.table, None, Some(new));
                }
                (Some(old), new) => change(raw.table, Some(old), new),
                (None, new) => change(raw.table, None, new),
            }
        }
        net.retain(|&(t, old, new)| match (old, new) {
            (None, None) => false,
            (Some(o), Some(n)) => differs(&self.arena[o.0..o.1], &self.arena[n.0..n.1], &self.tables[t].pk),
            _ => true,
        });
        net.sort_by_key(|&(t, _, _)| t);
        net
    }
}

/// The replicated tables of `conn`, with their primary keys as the session extension
/// records them (a column's place in the key, from `PRAGMA table_info`).
fn read_tables(conn: &Connection) -> Result<Vec<Table>, StoreError> {
    super::checksum::tables(conn)?
        .into_iter()
        .map(|name| {
            let pk = key_places(conn, &name)?.into_iter().map(|(_, place)| place).collect();
            Ok(Table { name, pk })
        })
        .collect()
}

#[cfg(test)]
#[path = "capture_tests.rs"]
mod tests;
