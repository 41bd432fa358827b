//! The change log: every write transaction of replicated data records, in the same
//! transaction, its changeset (SQLite's format, from [`super::capture`]) under the next sequence
//! number, with the content checksum the data has after it. A position in the log is a
//! sequence number and that checksum; an incremental sync asks for what follows the
//! puller's position. The log keeps what a full copy would not beat: when its changesets
//! outgrow half the database, the oldest go and the base (where the log starts) moves.
//! A secondary stores what it applied under the same numbers, so a third node can
//! replicate from it exactly as from the primary.

use std::io::Read;

use rusqlite::fallible_streaming_iterator::FallibleStreamingIterator;
use rusqlite::hooks::Action;
use rusqlite::session::ChangesetIter;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::capture::Capture;
use super::checksum::{Sum, content_checksum};
use crate::store::StoreError;

/// The schema step that creates the log (the base's checksum is filled in by
/// [`ensure_base`], as SQL cannot compute it).
pub const SCHEMA: &str = "CREATE TABLE repl_log (
         seq       INTEGER PRIMARY KEY,
         at        TEXT NOT NULL,
         rows      INTEGER NOT NULL,
         checksum  TEXT NOT NULL,
         changeset BLOB NOT NULL,
         -- Node id of the node whose write this was.
         origin    TEXT NOT NULL DEFAULT ''
     );
     CREATE TABLE repl_base (
         id       INTEGER PRIMARY KEY CHECK (id = 1),
         seq      INTEGER NOT NULL,
         checksum TEXT NOT NULL,
         -- Bytes of changesets in the log, kept with every append and trim.
         bytes    INTEGER NOT NULL DEFAULT 0
     );
     INSERT INTO repl_base (id, seq, checksum) VALUES (1, 0, '');";

/// The log never shrinks below this many bytes of changesets.
const MIN_KEPT: i64 = 16 << 20;

/// A point in the log: after entry `seq`, with the content checksum `checksum`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Position {
    pub seq: i64,
    pub checksum: String,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    /// Rows the transaction changed.
    pub rows: i64,
    /// Content checksum after this entry.
    pub checksum: String,
    /// Node id of the node that made the write (not the one that passed it on).
    #[serde(default)]
    pub origin: String,
    /// The changeset, in SQLite's format (not in the JSON form of an entry header).
    #[serde(skip)]
    pub changeset: Vec<u8>,
}

/// Fills in the base's checksum when the log was just created on existing data.
pub fn ensure_base(conn: &Connection) -> Result<(), StoreError> {
    let pending: Option<i64> =
        conn.query_row("SELECT seq FROM repl_base WHERE checksum = ''", [], |r| r.get(0)).optional()?;
    if pending.is_some() {
        let sum = content_checksum(conn)?;
        conn.execute("UPDATE repl_base SET checksum = ?1 WHERE id = 1", [sum])?;
    }
    Ok(())
}

/// Where the log ends: the last entry, or the base when the log is empty.
pub fn head(conn: &Connection) -> Result<Position, StoreError> {
    let last = conn
        .prepare_cached("SELECT seq, checksum FROM repl_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok(Position { seq: r.get(0)?, checksum: r.get(1)? }))
        .optional()?;
    match last {
        Some(p) => Ok(p),
        None => base(conn),
    }
}

/// Where the log starts.
pub fn base(conn: &Connection) -> Result<Position, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq, checksum FROM repl_base WHERE id = 1")?
        .query_row([], |r| Ok(Position { seq: r.get(0)?, checksum: r.get(1)? }))?)
}

/// Ends a capture inside the writing transaction: appends its changeset to the log with
/// the checksum the data now has. Returns the new entry's number, or `None` when
/// nothing changed.
pub(super) fn record(conn: &Connection, capture: &Capture, at: &str, origin: &str) -> Result<Option<i64>, StoreError> {
    let mut last = None;
    let before = || {
        let head = head(conn)?;
        let sum = Sum::parse(&head.checksum).ok_or_else(|| bad_checksum(&head))?;
        last = Some(head.seq);
        Ok(sum)
    };
    let Some(captured) = capture.finish(conn, before)? else { return Ok(None) };
    let seq = last.ok_or(StoreError::Stopped)? + 1;
    let entry = Entry {
        seq,
        at: at.to_string(),
        rows: captured.rows,
        checksum: captured.sum.to_hex(),
        origin: origin.to_string(),
        changeset: captured.changeset,
    };
    append(conn, &entry)?;
    trim(conn)?;
    Ok(Some(entry.seq))
}

/// Stores an entry (the primary's own, or one a secondary applied); the caller then
/// calls [`trim`].
pub fn append(conn: &Connection, entry: &Entry) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO repl_log (seq, at, rows, checksum, changeset, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![entry.seq, entry.at, entry.rows, entry.checksum, entry.changeset, entry.origin])?;
    conn.prepare_cached("UPDATE repl_base SET bytes = bytes + ?1 WHERE id = 1")?
        .execute([i64::try_from(entry.changeset.len()).unwrap_or(i64::MAX)])?;
    Ok(())
}

/// Keeps the log's changesets within half the database (and at least [`MIN_KEPT`]):
/// beyond that a full copy costs less than the changes. Past the limit the oldest
/// entries go until a tenth of it is free again, so trimming is rare and its cost
/// follows what it drops.
///
/// It runs after every write: one statement reads the log's size and the database's.
pub fn trim(conn: &Connection) -> Result<(), StoreError> {
    let (total, size): (i64, i64) = conn
        .prepare_cached(
            "SELECT b.bytes, c.page_count * s.page_size
               FROM repl_base b, pragma_page_count() c, pragma_page_size() s WHERE b.id = 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    trim_to(conn, total, (size / 2).max(MIN_KEPT))
}

/// Drops the oldest entries when the log's `total` bytes exceed `budget`.
fn trim_to(conn: &Connection, total: i64, budget: i64) -> Result<(), StoreError> {
    if total <= budget {
        return Ok(());
    }
    let target = budget - budget / 10;
    let mut stmt = conn.prepare("SELECT seq, checksum, length(changeset) FROM repl_log ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let (mut left, mut cut) = (total, None);
    while let Some(row) = rows.next()? {
        left -= row.get::<_, i64>(2)?;
        cut = Some(Position { seq: row.get(0)?, checksum: row.get(1)? });
        if left <= target {
            break;
        }
    }
    drop(rows);
    if let Some(cut) = cut {
        conn.execute("DELETE FROM repl_log WHERE seq <= ?1", [cut.seq])?;
        conn.execute(
            "UPDATE repl_base SET seq = ?1, checksum = ?2, bytes = ?3 WHERE id = 1",
            params![cut.seq, cut.checksum, left],
        )?;
    }
    Ok(())
}

/// Starts the log afresh after writes it did not see (a bulk load): its entries are
/// dropped and the base moves past them with a newly computed checksum, so that every
/// puller falls back to a full copy.
pub fn restart(conn: &Connection) -> Result<(), StoreError> {
    let head = head(conn)?;
    let sum = content_checksum(conn)?;
    conn.execute("DELETE FROM repl_log", [])?;
    conn.execute("UPDATE repl_base SET seq = ?1, checksum = ?2, bytes = 0 WHERE id = 1", params![head.seq + 1, sum])?;
    Ok(())
}

/// Why the log cannot bring a puller up to date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    // Worded for the puller, who shows them: "this node" is the puller.
    #[error("the sender's change log starts after change {base}, this node is at change {at}")]
    Trimmed { at: i64, base: i64 },
    #[error("this node is at change {at}, beyond the sender's last change {head}")]
    Ahead { at: i64, head: i64 },
    #[error("the data diverged: at change {at} this node's checksum is {theirs}, the sender's {ours}")]
    Diverged { at: i64, theirs: String, ours: String },
}

/// The entries after `from`, oldest first, when the log holds them all and agrees with
/// `from`. Run it inside a read transaction so that they end at a consistent head.
pub fn since(
    conn: &Connection,
    from: &Position,
    mut each: impl FnMut(Entry) -> Result<(), StoreError>,
) -> Result<Result<Position, Gap>, StoreError> {
    if let Err(gap) = follows(conn, from)? {
        return Ok(Err(gap));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, rows, checksum, changeset, origin FROM repl_log WHERE seq > ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([from.seq])?;
    while let Some(r) = rows.next()? {
        each(entry_of(r)?)?;
    }
    head(conn).map(Ok)
}

/// The next entries after `from` (a stream's batch): at most `entries` of them and,
/// past the first, no more than `bytes` bytes of changesets; none when the log ends at
/// `from`. Like [`since`], it first checks that `from` is in the log and agrees.
pub fn next_after(
    conn: &Connection,
    from: &Position,
    entries: usize,
    bytes: usize,
) -> Result<Result<Vec<Entry>, Gap>, StoreError> {
    if let Err(gap) = follows(conn, from)? {
        return Ok(Err(gap));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, rows, checksum, changeset, origin FROM repl_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![from.seq, i64::try_from(entries).unwrap_or(i64::MAX)])?;
    let (mut out, mut size) = (Vec::new(), 0usize);
    while let Some(r) = rows.next()? {
        let entry = entry_of(r)?;
        size += entry.changeset.len();
        if !out.is_empty() && size > bytes {
            break;
        }
        out.push(entry);
    }
    Ok(Ok(out))
}

/// Whether the log can go on from `from`: it holds it (or starts there) with the same
/// checksum.
fn follows(conn: &Connection, from: &Position) -> Result<Result<(), Gap>, StoreError> {
    let (base, head) = (base(conn)?, head(conn)?);
    if from.seq < base.seq {
        return Ok(Err(Gap::Trimmed { at: from.seq, base: base.seq }));
    }
    if from.seq > head.seq {
        return Ok(Err(Gap::Ahead { at: from.seq, head: head.seq }));
    }
    let ours = if from.seq == base.seq {
        base.checksum
    } else {
        conn.query_row("SELECT checksum FROM repl_log WHERE seq = ?1", [from.seq], |r| r.get(0))?
    };
    if ours != from.checksum {
        return Ok(Err(Gap::Diverged { at: from.seq, theirs: from.checksum.clone(), ours }));
    }
    Ok(Ok(()))
}

fn entry_of(r: &rusqlite::Row) -> rusqlite::Result<Entry> {
    Ok(Entry {
        seq: r.get(0)?,
        at: r.get(1)?,
        rows: r.get(2)?,
        checksum: r.get(3)?,
        changeset: r.get(4)?,
        origin: r.get(5)?,
    })
}

/// One row's change, as a changeset holds it.
#[derive(Debug, Clone)]
pub struct Change {
    pub table: String,
    pub action: Action,
    /// Old values (deletes and updates); `None` where an update left the column alone.
    pub old: Vec<Option<Value>>,
    /// New values (inserts and updates); `None` where an update left the column alone.
    pub new: Vec<Option<Value>>,
    /// Which columns make up the primary key.
    pub pk: Vec<bool>,
}

impl Change {
    /// The primary key of the changed row.
    pub fn key(&self) -> Vec<Value> {
        let side = if self.action == Action::SQLITE_INSERT { &self.new } else { &self.old };
        side.iter().zip(&self.pk).filter(|(_, pk)| **pk).map(|(v, _)| v.clone().unwrap_or(Value::Null)).collect()
    }
}

/// The row changes of a changeset.
pub fn changes(changeset: &[u8]) -> Result<Vec<Change>, StoreError> {
    let mut bytes = changeset;
    let input: &mut dyn Read = &mut bytes;
    let mut iter = ChangesetIter::start_strm(&input)?;
    let mut out = Vec::new();
    while let Some(item) = iter.next()? {
        let op = item.op()?;
        let (table, action) = (op.table_name().to_string(), op.code());
        let columns = usize::try_from(op.number_of_columns()).unwrap_or(0);
        let pk = item.pk()?.iter().map(|&b| b != 0).collect();
        // An undefined value (a column an update left alone) reads as an error.
        let old = if action == Action::SQLITE_INSERT {
            Vec::new()
        } else {
            (0..columns).map(|i| item.old_value(i).ok().and_then(|v| Value::try_from(v).ok())).collect()
        };
        let new = if action == Action::SQLITE_DELETE {
            Vec::new()
        } else {
            (0..columns).map(|i| item.new_value(i).ok().and_then(|v| Value::try_from(v).ok())).collect()
        };
        out.push(Change { table, action, old, new, pk });
    }
    Ok(out)
}

fn bad_checksum(at: &Position) -> StoreError {
    StoreError::Commit(format!("the change log's checksum at change {} is unreadable: {:?}", at.seq, at.checksum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coredb::generate::{Counts, generate, token_for};
    use crate::coredb::{CheckIn, CoreDb, token_hash};

    const NOW: &str = "2026-11-26T00:00:00Z";

    fn fresh() -> (tempfile::TempDir, CoreDb) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = CoreDb::open(dir.path()).unwrap();
        generate(&mut db, &Counts { users: 5, devices: 20, events: 50, apps: 2, policies: 2, seed: 7 }).unwrap();
        (dir, db)
    }

    #[test]
    fn the_kept_checksum_equals_the_computed_one_after_every_kind_of_write() {
        let (_dir, mut db) = fresh();
        let start = db.log_head().unwrap();
        assert_eq!(start.checksum, db.content_checksum().unwrap(), "a bulk load restarts the log");
        let hash = token_hash(&token_for(7, 3));
        let report = CheckIn { os_version: Some("18.1".into()), seq: Some(1), battery: Some(50) };
        db.write(|w| w.check_in(&hash, &report, NOW)).unwrap().unwrap();
        db.write(|w| w.set_setting("a", Some("1"))).unwrap();
        db.write(|w| w.set_setting("a", Some("2"))).unwrap();
        db.write(|w| w.set_setting("a", None)).unwrap();
        // A change undone within the transaction leaves no entry.
        let before = db.log_head().unwrap();
        db.write(|w| {
            let undone = w.op(|w| {
                w.set_setting("b", Some("x"))?;
                Err::<(), _>(StoreError::Stopped)
            });
            assert!(undone.is_err());
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(db.log_head().unwrap(), before);
        db.write(|w| w.tx().execute("DELETE FROM events WHERE id < 5", []).map_err(StoreError::from)).unwrap();
        let head = db.log_head().unwrap();
        assert_eq!(head.seq, start.seq + 5);
        assert_eq!(head.checksum, db.content_checksum().unwrap());
    }

    #[test]
    fn since_hands_out_what_follows_and_names_each_gap() {
        let (_dir, mut db) = fresh();
        let start = db.log_head().unwrap();
        for i in 0..3 {
            db.write(|w| w.set_setting("k", Some(&i.to_string()))).unwrap();
        }
        let conn = db.connection();
        let mut got = Vec::new();
        let head = since(conn, &start, |e| {
            got.push(e.seq);
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(got, vec![start.seq + 1, start.seq + 2, start.seq + 3]);
        assert_eq!(head.seq, start.seq + 3);
        let none = |from: &Position| since(conn, from, |_| Ok(())).unwrap();
        assert!(matches!(none(&Position { seq: start.seq - 1, ..start.clone() }), Err(Gap::Trimmed { .. })));
        assert!(matches!(none(&Position { seq: head.seq + 1, ..head.clone() }), Err(Gap::Ahead { .. })));
        let wrong = Position { seq: start.seq + 1, checksum: Sum(1).to_hex() };
        assert!(matches!(none(&wrong), Err(Gap::Diverged { .. })));
        assert_eq!(none(&head), Ok(head.clone()), "up to date: nothing follows");
    }

    #[test]
    fn trimming_moves_the_base_and_keeps_the_newest() {
        let (_dir, mut db) = fresh();
        let start = db.log_head().unwrap();
        for i in 0..10 {
            db.write(|w| w.set_setting("k", Some(&"x".repeat(100 + i)))).unwrap();
        }
        let head = db.log_head().unwrap();
        let conn = db.connection();
        let total: i64 = conn.query_row("SELECT bytes FROM repl_base", [], |r| r.get(0)).unwrap();
        let sum: i64 = conn.query_row("SELECT sum(length(changeset)) FROM repl_log", [], |r| r.get(0)).unwrap();
        assert_eq!(total, sum, "the kept total follows every append");
        trim_to(conn, total, total / 2).unwrap();
        let kept: i64 = conn.query_row("SELECT sum(length(changeset)) FROM repl_log", [], |r| r.get(0)).unwrap();
        assert!(kept <= total / 2 - total / 20, "{kept} of {total} kept");
        let base = base(conn).unwrap();
        assert!(base.seq > start.seq && base.seq < head.seq, "{base:?}");
        assert_eq!(conn.query_row("SELECT bytes FROM repl_base", [], |r| r.get::<_, i64>(0)).unwrap(), kept);
        assert_eq!(super::head(conn).unwrap(), head);
        let none = |from: &Position| since(conn, from, |_| Ok(())).unwrap();
        assert!(matches!(none(&start), Err(Gap::Trimmed { .. })));
        assert_eq!(none(&base), Ok(head));
    }

    #[test]
    fn a_changeset_names_its_rows() {
        let (_dir, mut db) = fresh();
        db.write(|w| w.set_setting("k", Some("v"))).unwrap();
        let changeset: Vec<u8> = db
            .connection()
            .query_row("SELECT changeset FROM repl_log ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
            .unwrap();
        let found = changes(&changeset).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].table, "settings");
        assert_eq!(found[0].action, Action::SQLITE_INSERT);
        assert_eq!(found[0].key(), vec![Value::Text("k".into())]);
        assert!(changes(b"not a changeset").is_err());
    }
}
