//! Incremental syncs: the change-log entries after a puller's position, written by the
//! sender into one file (each entry a JSON line and its changeset's bytes), and applied
//! by the puller in one transaction that also stores them in its own log (so a DR node
//! can pull them from it). The puller checks its own data: it hashes every touched row
//! before and after, and its content checksum, so brought up to date, must equal the
//! sender's. Any conflict or mismatch rolls the whole transaction back.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::session::{Changegroup, ConflictAction, ConflictType};
use rusqlite::types::Value;
use rusqlite::{Connection, TransactionBehavior};
use serde::{Deserialize, Serialize};

use crate::coredb::changelog::{self, Entry, Gap, Position};
use crate::coredb::checksum::{RowReader, Sum, is_replicated};
use crate::store::StoreError;

/// Longest entry header line in a changes file.
const MAX_HEADER: u64 = 4096;

/// An entry's header line in a changes file.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Framed {
    #[serde(flatten)]
    entry: Entry,
    /// Bytes of changeset after the line.
    len: u64,
}

/// What a changes file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub from: Position,
    pub to: Position,
    pub entries: u64,
    pub rows: u64,
}

/// Writes the entries of the Core data at `db` after `from` into `out`, read in one
/// read transaction; or says why the log cannot serve them.
pub fn write_since(db: &Path, from: &Position, out: &mut impl Write) -> Result<Result<Written, Gap>, StoreError> {
    let mut conn = crate::store::open_read_only(db)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
    let (mut entries, mut rows) = (0u64, 0u64);
    let written = changelog::since(&tx, from, |entry| {
        let line = serde_json::to_vec(&Framed { len: entry.changeset.len() as u64, entry: entry.clone() })
            .map_err(|e| StoreError::Commit(e.to_string()))?;
        out.write_all(&line)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.write_all(&entry.changeset))
            .map_err(|e| StoreError::Commit(format!("cannot write the changes: {e}")))?;
        entries += 1;
        rows += u64::try_from(entry.rows).unwrap_or(0);
        Ok(())
    })?;
    Ok(written.map(|to| Written { from: from.clone(), to, entries, rows }))
}

/// Reads a changes file back.
pub fn read(path: &Path) -> Result<Vec<Entry>, IncrementError> {
    let damaged = |what: String| IncrementError::Damaged(what);
    let file = std::fs::File::open(path).map_err(|e| damaged(e.to_string()))?;
    let size = file.metadata().map_err(|e| damaged(e.to_string()))?.len();
    decode(BufReader::new(file), size)
}

/// Decodes the `size` bytes of a changes file from `input`. Every length an entry
/// claims is checked against what is left before it sizes anything, so a damaged or
/// hostile file can make it allocate no more than it holds.
pub fn decode(mut input: impl BufRead, size: u64) -> Result<Vec<Entry>, IncrementError> {
    let damaged = |what: String| IncrementError::Damaged(what);
    let mut left = size;
    let mut entries = Vec::new();
    loop {
        let mut line = Vec::new();
        (&mut input).take(MAX_HEADER.min(left)).read_until(b'\n', &mut line).map_err(|e| damaged(e.to_string()))?;
        if line.is_empty() {
            return Ok(entries);
        }
        left -= line.len() as u64;
        let framed: Framed = serde_json::from_slice(&line).map_err(|e| damaged(format!("entry header: {e}")))?;
        let mut entry = framed.entry;
        if framed.len > left {
            return Err(damaged(format!("change {} claims {} bytes, {left} are left", entry.seq, framed.len)));
        }
        let len = usize::try_from(framed.len).map_err(|e| damaged(e.to_string()))?;
        entry.changeset = vec![0; len];
        input.read_exact(&mut entry.changeset).map_err(|e| damaged(format!("change {}: {e}", entry.seq)))?;
        left -= framed.len;
        entries.push(entry);
    }
}

/// Why changes were not applied (each one calls for a full sync instead).
#[derive(Debug, thiserror::Error)]
pub enum IncrementError {
    #[error("the changes are damaged: {0}")]
    Damaged(String),
    #[error("this node moved from change {expected} to {found} meanwhile")]
    Moved { expected: i64, found: i64 },
    #[error("change {seq} does not follow change {after}")]
    Gap { seq: i64, after: i64 },
    #[error("changes {from}..{to} conflict with this node's data: {reason}")]
    Conflict { from: i64, to: i64, reason: String },
    #[error("after the changes this node's content checksum is {found}, the sender's {expected}")]
    Mismatch { found: String, expected: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for IncrementError {
    fn from(e: rusqlite::Error) -> Self {
        IncrementError::Store(StoreError::from(e))
    }
}

/// Applies `entries`, which must follow `from` (this node's head), to the Core data on
/// `conn` in one transaction; returns the rows changed.
pub fn apply(conn: &mut Connection, from: &Position, entries: &[Entry]) -> Result<u64, IncrementError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let head = changelog::head(&tx)?;
    if head != *from {
        return Err(IncrementError::Moved { expected: from.seq, found: head.seq });
    }
    let Some(last) = entries.last() else { return Ok(0) };
    let mut after = head.seq;
    let mut touched: Vec<(String, Vec<Value>)> = Vec::new();
    let mut seen = HashSet::new();
    for entry in entries {
        if entry.seq != after + 1 {
            return Err(IncrementError::Gap { seq: entry.seq, after });
        }
        after = entry.seq;
        let changes = changelog::changes(&entry.changeset)
            .map_err(|e| IncrementError::Damaged(format!("change {}: {e}", entry.seq)))?;
        for change in changes.into_iter().filter(|c| is_replicated(&c.table)) {
            let key = change.key();
            if seen.insert((change.table.clone(), format!("{key:?}"))) {
                touched.push((change.table, key));
            }
        }
    }
    let mut sum = Sum::parse(&head.checksum).ok_or_else(|| IncrementError::Damaged("this node's checksum".into()))?;
    let mut reader = RowReader::default();
    for (table, key) in &touched {
        if let Some(h) = reader.hash(&tx, table, key)? {
            sum.sub(h);
        }
    }
    // One changeset for all the entries: applying each on its own would prepare the
    // same statements again for every entry.
    let mut group = Changegroup::new()?;
    for entry in entries {
        group.add_stream(&mut &entry.changeset[..])?;
        changelog::append(&tx, entry)?;
    }
    let mut combined = Vec::new();
    group.output_strm(&mut combined)?;
    let first = entries.first().map_or(after, |e| e.seq);
    apply_changeset(&tx, &combined).map_err(|reason| IncrementError::Conflict { from: first, to: last.seq, reason })?;
    changelog::trim(&tx)?;
    for (table, key) in &touched {
        if let Some(h) = reader.hash(&tx, table, key)? {
            sum.add(h);
        }
    }
    if sum.to_hex() != last.checksum {
        return Err(IncrementError::Mismatch { found: sum.to_hex(), expected: last.checksum.clone() });
    }
    tx.commit()?;
    Ok(entries.iter().map(|e| u64::try_from(e.rows).unwrap_or(0)).sum())
}

/// Applies a changeset; the first conflict aborts it and is described.
fn apply_changeset(conn: &Connection, changeset: &[u8]) -> Result<(), String> {
    let conflict = Arc::new(Mutex::new(None::<String>));
    let seen = Arc::clone(&conflict);
    let applied = conn.apply_strm(
        &mut &changeset[..],
        Some(|table: &str| is_replicated(table)),
        move |kind: ConflictType, item: &rusqlite::session::ChangesetItem| {
            let table = item.op().map(|op| op.table_name().to_string()).unwrap_or_default();
            if let Ok(mut slot) = seen.lock() {
                slot.get_or_insert_with(|| format!("{kind:?} on a row of {table}"));
            }
            ConflictAction::SQLITE_CHANGESET_ABORT
        },
    );
    let reason = conflict.lock().ok().and_then(|mut c| c.take());
    match (applied, reason) {
        (Ok(()), None) => Ok(()),
        (_, Some(reason)) => Err(reason),
        (Err(e), None) => Err(e.to_string()),
    }
}
