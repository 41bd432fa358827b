//! Writes a full sync would lose (guide table 1, manual resume): an old primary that took
//! writes after the failover point (or never passed them on) holds change-log entries
//! the new primary does not have. Before a full copy replaces its data, the puller asks
//! the sender for its checksums over the puller's log, finds the last change both share
//! (the fork), and writes every later change of its own, decoded row by row, to a file
//! in `divergence/`. `show failover divergence` lists those files. Nothing is discarded
//! silently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::hooks::Action;
use rusqlite::types::Value;
use serde::{Deserialize, Serialize};

use crate::coredb::changelog::{self, Position};
use crate::peer::message::Positions;
use crate::store::StoreError;

/// Directory (in the data directory) of the kept changes.
pub const DIR: &str = "divergence";
/// Most positions one exchange carries.
pub const MAX_POSITIONS: i64 = 2_000_000;

/// The sender's side: its checksums for the entries `from..=to` of the Core data at `db`.
pub fn positions(db: &Path, from: i64, to: i64) -> Result<Positions, StoreError> {
    if to.saturating_sub(from) > MAX_POSITIONS {
        return Ok(Positions {
            error: Some(format!("at most {MAX_POSITIONS} positions at a time")),
            ..Positions::default()
        });
    }
    let conn = crate::store::open_read_only(db)?;
    let base = changelog::base(&conn)?;
    let mut stmt = conn.prepare("SELECT seq, checksum FROM repl_log WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq")?;
    let positions = stmt
        .query_map([from, to], |r| Ok(Position { seq: r.get(0)?, checksum: r.get(1)? }))?
        .collect::<Result<_, _>>()?;
    Ok(Positions { base: Some(base), positions, error: None })
}

/// This node's log from change `from` on, base first when it is in range.
pub fn our_positions(conn: &Connection, from: i64) -> Result<Vec<Position>, StoreError> {
    let base = changelog::base(conn)?;
    let mut all = if base.seq >= from { vec![base] } else { Vec::new() };
    let mut stmt = conn.prepare("SELECT seq, checksum FROM repl_log WHERE seq >= ?1 ORDER BY seq")?;
    let rows = stmt.query_map([from], |r| Ok(Position { seq: r.get(0)?, checksum: r.get(1)? }))?;
    for row in rows {
        all.push(row?);
    }
    Ok(all)
}

/// The last of `ours` that the sender also has (same number, same checksum).
pub fn fork(ours: &[Position], theirs: &Positions) -> Option<Position> {
    let mut known: HashMap<i64, &str> = theirs.positions.iter().map(|p| (p.seq, p.checksum.as_str())).collect();
    if let Some(base) = &theirs.base {
        known.insert(base.seq, &base.checksum);
    }
    ours.iter().rev().find(|p| known.get(&p.seq) == Some(&p.checksum.as_str())).cloned()
}

/// What was kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Kept {
    /// The file, under the data directory.
    pub file: String,
    pub detected_at: String,
    /// The peer whose copy replaced these changes.
    pub peer: String,
    /// The last change both nodes had; `None` when none could be found.
    pub fork: Option<i64>,
    /// Change-log entries kept, and the rows they changed, per table and kind.
    pub entries: u64,
    pub rows: u64,
    pub tables: Vec<TableCount>,
}

/// Rows one table gained, changed and lost in kept changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableCount {
    pub table: String,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

/// One kept change-log entry, decoded.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct KeptEntry {
    seq: i64,
    at: String,
    changes: Vec<KeptChange>,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct KeptChange {
    table: String,
    op: String,
    /// Values before (updates: only the columns that changed, and the key).
    old: serde_json::Map<String, serde_json::Value>,
    /// Values after (updates: only the columns that changed).
    new: serde_json::Map<String, serde_json::Value>,
}

/// The file's form.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct KeptFile {
    #[serde(flatten)]
    summary: Kept,
    note: String,
    changes: Vec<KeptEntry>,
}

/// The range of this node's log holding writes made here (`origin`), if any.
pub fn own_range(conn: &Connection, origin: &str) -> Result<Option<(i64, i64)>, StoreError> {
    let range: (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(seq), max(seq) FROM repl_log WHERE origin = ?1", [origin], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(range.0.zip(range.1))
}

/// Writes the entries this node (`origin`) wrote after `fork` (all of them when it is
/// `None`) to a new file in `data_dir/divergence`; `None` when there are none.
pub fn keep(
    conn: &Connection,
    data_dir: &Path,
    origin: &str,
    fork: Option<&Position>,
    peer: &str,
) -> Result<Option<Kept>, StoreError> {
    let after = fork.map_or(i64::MIN, |f| f.seq);
    let mut stmt =
        conn.prepare("SELECT seq, at, changeset FROM repl_log WHERE seq > ?1 AND origin = ?2 ORDER BY seq")?;
    let rows: Vec<(i64, String, Vec<u8>)> = stmt
        .query_map(rusqlite::params![after, origin], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut columns: HashMap<String, Vec<String>> = HashMap::new();
    let mut counts: Vec<TableCount> = Vec::new();
    let mut entries = Vec::new();
    let mut total = 0u64;
    for (seq, at, changeset) in rows {
        let mut changes = Vec::new();
        for change in changelog::changes(&changeset)? {
            if !columns.contains_key(&change.table) {
                columns.insert(change.table.clone(), column_names(conn, &change.table)?);
            }
            let names = columns.get(&change.table).map(Vec::as_slice).unwrap_or_default();
            let count = match counts.iter_mut().find(|c| c.table == change.table) {
                Some(c) => c,
                None => {
                    counts.push(TableCount { table: change.table.clone(), ..TableCount::default() });
                    counts.last_mut().ok_or_else(|| StoreError::Commit("count".into()))?
                }
            };
            let op = match change.action {
                Action::SQLITE_INSERT => {
                    count.inserted += 1;
                    "insert"
                }
                Action::SQLITE_DELETE => {
                    count.deleted += 1;
                    "delete"
                }
                _ => {
                    count.updated += 1;
                    "update"
                }
            };
            total += 1;
            changes.push(KeptChange {
                table: change.table.clone(),
                op: op.into(),
                old: named(names, &change.old),
                new: named(names, &change.new),
            });
        }
        entries.push(KeptEntry { seq, at, changes });
    }
    let detected_at = crate::store::now_millis();
    let dir = data_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::Commit(format!("cannot create {}: {e}", dir.display())))?;
    let name =
        format!("{}-after-{}.json", detected_at.replace(':', ""), fork.map_or("unknown".into(), |f| f.seq.to_string()));
    let summary = Kept {
        file: format!("{DIR}/{name}"),
        detected_at,
        peer: peer.to_string(),
        fork: fork.map(|f| f.seq),
        entries: entries.len() as u64,
        rows: total,
        tables: counts,
    };
    let file = KeptFile {
        summary: summary.clone(),
        note: "Changes this node had and the peer did not, replaced by a full sync from the peer. \
               Re-enter what is still wanted on the current primary."
            .into(),
        changes: entries,
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Commit(e.to_string()))?;
    write_durably(&dir.join(&name), &text)?;
    Ok(Some(summary))
}

/// The kept changes of `data_dir`, oldest first.
pub fn list(data_dir: &Path) -> Result<Vec<Kept>, StoreError> {
    let dir = data_dir.join(DIR);
    let Ok(read) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> =
        read.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
    files.sort();
    let mut kept = Vec::new();
    for path in files {
        let text = std::fs::read(&path).map_err(|e| StoreError::Commit(format!("{}: {e}", path.display())))?;
        match serde_json::from_slice::<KeptFile>(&text) {
            Ok(f) => kept.push(f.summary),
            Err(e) => return Err(StoreError::Commit(format!("{} is not a divergence file: {e}", path.display()))),
        }
    }
    Ok(kept)
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let fail = |e: std::io::Error| StoreError::Commit(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::File::create(path).map_err(fail)?;
    file.write_all(bytes).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(fail)?;
    }
    Ok(())
}

fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let names = stmt.query_map([table], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

fn named(names: &[String], values: &[Option<Value>]) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    for (i, value) in values.iter().enumerate() {
        let Some(value) = value else { continue };
        let name = names.get(i).cloned().unwrap_or_else(|| format!("column{i}"));
        let json = match value {
            Value::Null => serde_json::Value::Null,
            Value::Integer(n) => serde_json::Value::from(*n),
            Value::Real(f) => serde_json::Value::from(*f),
            Value::Text(t) => serde_json::Value::from(t.clone()),
            Value::Blob(b) => serde_json::Value::from(format!("x'{}'", hex::encode(b))),
        };
        map.insert(name, json);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seq: i64, c: &str) -> Position {
        Position { seq, checksum: c.into() }
    }

    #[test]
    fn the_fork_is_the_last_shared_change() {
        let ours = [p(0, "b"), p(1, "x"), p(2, "y"), p(3, "mine"), p(4, "mine too")];
        let theirs =
            Positions { base: Some(p(0, "b")), positions: vec![p(1, "x"), p(2, "y"), p(3, "theirs")], error: None };
        assert_eq!(fork(&ours, &theirs), Some(p(2, "y")));
        let strangers = Positions { base: Some(p(0, "other")), positions: vec![], error: None };
        assert_eq!(fork(&ours, &strangers), None);
        let same = Positions { base: Some(p(0, "b")), positions: ours[1..].to_vec(), error: None };
        assert_eq!(fork(&ours, &same), Some(p(4, "mine too")), "nothing diverged");
    }
}
