//! Content checksums of replicated data: the sum, modulo 2^128, of a hash of every row
//! (its table's name and its typed values). A sum does not depend on row order or file
//! layout, so two nodes can compare theirs; and it can be kept up to date change by
//! change (subtract the row's old hash, add its new one) at a cost that follows the
//! changes, which is what incremental syncs verify with. It detects damage and
//! divergence, not a forger: someone able to write rows at will could make sums meet.

use std::collections::HashMap;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};

use crate::store::StoreError;

/// Tables of replication's own bookkeeping: in the file, outside the content.
pub const BOOKKEEPING_PREFIX: &str = "repl_";

/// A content checksum: wraps on overflow in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sum(pub u128);

impl Sum {
    pub fn add(&mut self, h: u128) {
        self.0 = self.0.wrapping_add(h);
    }

    pub fn sub(&mut self, h: u128) {
        self.0 = self.0.wrapping_sub(h);
    }

    /// 32 lower-case hex digits.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// Reads [`Sum::to_hex`]'s form.
    pub fn parse(text: &str) -> Option<Sum> {
        (text.len() == 32).then(|| u128::from_str_radix(text, 16).ok().map(Sum)).flatten()
    }
}

/// The hash of one row of `table`.
pub fn row_hash<'a>(table: &str, values: impl IntoIterator<Item = ValueRef<'a>>) -> u128 {
    RowHasher::default().hash(table, values)
}

/// Hashes rows as [`row_hash`] does, into one buffer kept from row to row (one SHA-256
/// call a row, no allocation once the buffer has grown).
#[derive(Default, Clone)]
pub struct RowHasher {
    buffer: Vec<u8>,
}

impl RowHasher {
    /// The hash of one row of `table`.
    pub fn hash<'a>(&mut self, table: &str, values: impl IntoIterator<Item = ValueRef<'a>>) -> u128 {
        digest(self.bytes(table, values))
    }

    /// What is hashed of one row: the table's name, a NUL, then each value with its type
    /// ([`encode`]).
    pub fn bytes<'a>(&mut self, table: &str, values: impl IntoIterator<Item = ValueRef<'a>>) -> &[u8] {
        let b = &mut self.buffer;
        b.clear();
        b.extend_from_slice(table.as_bytes());
        b.push(0);
        for value in values {
            encode(b, value);
        }
        b
    }
}

/// Appends one value with its type, as a row's hash takes it: a type letter, then the
/// value (numbers as 8 little-endian bytes, texts and blobs with their length first).
pub fn encode(b: &mut Vec<u8>, value: ValueRef) {
    match value {
        ValueRef::Null => b.push(b'n'),
        ValueRef::Integer(v) => {
            b.push(b'i');
            b.extend_from_slice(&v.to_le_bytes());
        }
        ValueRef::Real(v) => {
            b.push(b'r');
            b.extend_from_slice(&v.to_le_bytes());
        }
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            b.push(if matches!(value, ValueRef::Text(_)) { b't' } else { b'b' });
            b.extend_from_slice(&(t.len() as u64).to_le_bytes());
            b.extend_from_slice(t);
        }
    }
}

/// A row's hash from what [`RowHasher::bytes`] makes of it: the first 16 bytes of its
/// SHA-256, little-endian.
pub fn digest(bytes: &[u8]) -> u128 {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest.as_ref()[..16]);
    u128::from_le_bytes(first)
}

/// The replicated tables of `conn`'s main database, by name.
pub fn tables(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
            AND name NOT LIKE 'repl\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

/// Whether a table's changes are replicated (and counted in the content checksum).
pub fn is_replicated(table: &str) -> bool {
    !table.starts_with(BOOKKEEPING_PREFIX) && !table.starts_with("sqlite_")
}

/// The content checksum of everything `conn` replicates, computed row by row.
pub fn content_checksum(conn: &Connection) -> Result<String, StoreError> {
    let (mut sum, mut hasher) = (Sum::default(), RowHasher::default());
    for table in tables(conn)? {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {}", quote(&table)))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let values = (0..columns).map(|i| row.get_ref(i)).collect::<Result<Vec<_>, _>>()?;
            sum.add(hasher.hash(&table, values));
        }
    }
    Ok(sum.to_hex())
}

/// A name quoted for SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Each column of `table`, in order, with its place in the primary key (1-based; 0 for a
/// column outside it). Refuses a table without a primary key: its rows could not be
/// told apart by a change.
pub fn key_places(conn: &Connection, table: &str) -> Result<Vec<(String, u8)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
    let columns: Vec<(String, u8)> = stmt
        .query_map([table], |r| Ok((r.get(0)?, u8::try_from(r.get::<_, i64>(1)?).unwrap_or(u8::MAX))))?
        .collect::<Result<_, _>>()?;
    if columns.iter().all(|c| c.1 == 0) {
        return Err(StoreError::Commit(format!("table {table} has no primary key: it cannot be replicated")));
    }
    Ok(columns)
}

/// Reads rows by primary key, for hashing what a change touched; keeps each table's
/// layout once looked up.
#[derive(Default)]
pub struct RowReader {
    layouts: HashMap<String, Layout>,
}

/// How a table's rows are read by primary key.
struct Layout {
    /// `SELECT * FROM t WHERE pk1 IS ?1 AND …`.
    select: String,
}

impl RowReader {
    /// The hash of the row of `table` whose primary key is `key`, if there is one.
    pub fn hash(&mut self, conn: &Connection, table: &str, key: &[Value]) -> Result<Option<u128>, StoreError> {
        let key: Vec<ValueRef> = key.iter().map(ValueRef::from).collect();
        let mut hasher = RowHasher::default();
        self.with_row(conn, table, &key, |row| {
            let values = (0..row.as_ref().column_count()).map(|i| row.get_ref(i)).collect::<Result<Vec<_>, _>>()?;
            Ok(hasher.hash(table, values))
        })
    }

    /// What `f` makes of the current row of `table` whose primary key is `key`, if there
    /// is one.
    pub fn with_row<T>(
        &mut self,
        conn: &Connection,
        table: &str,
        key: &[ValueRef],
        f: impl FnOnce(&rusqlite::Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let layout = self.layout(conn, table)?;
        let mut stmt = conn.prepare_cached(&layout.select)?;
        let key = key.iter().map(|v| rusqlite::types::ToSqlOutput::Borrowed(*v));
        Ok(stmt.query_row(rusqlite::params_from_iter(key), f).optional()?)
    }

    fn layout(&mut self, conn: &Connection, table: &str) -> Result<&Layout, StoreError> {
        if !self.layouts.contains_key(table) {
            let columns = key_places(conn, table)?;
            let mut keyed: Vec<(u8, &str)> =
                columns.iter().filter(|c| c.1 > 0).map(|(name, place)| (*place, name.as_str())).collect();
            keyed.sort_unstable();
            let condition: Vec<String> =
                keyed.iter().enumerate().map(|(i, (_, name))| format!("{} IS ?{}", quote(name), i + 1)).collect();
            let select = format!("SELECT * FROM {} WHERE {}", quote(table), condition.join(" AND "));
            self.layouts.insert(table.to_string(), Layout { select });
        }
        self.layouts.get(table).ok_or_else(|| StoreError::Commit(format!("table {table} has no layout")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_do_not_depend_on_order_and_undo_exactly() {
        let (a, b) = (row_hash("t", [ValueRef::Integer(1)]), row_hash("t", [ValueRef::Text(b"x")]));
        let (mut one, mut two) = (Sum::default(), Sum::default());
        one.add(a);
        one.add(b);
        two.add(b);
        two.add(a);
        assert_eq!(one, two);
        two.sub(b);
        let mut only_a = Sum::default();
        only_a.add(a);
        assert_eq!(two, only_a);
        assert_eq!(Sum::parse(&one.to_hex()), Some(one));
        assert_eq!(Sum::parse("xyz"), None);
    }

    #[test]
    fn the_hash_is_sha256_of_the_typed_values() {
        // Stored checksums depend on this exact form: table, NUL, then each value typed.
        let mut bytes = b"t\0i".to_vec();
        bytes.extend(7i64.to_le_bytes());
        bytes.push(b't');
        bytes.extend(2u64.to_le_bytes());
        bytes.extend(b"ab");
        bytes.push(b'n');
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let want = u128::from_le_bytes(digest.as_ref()[..16].try_into().unwrap());
        let values = [ValueRef::Integer(7), ValueRef::Text(b"ab"), ValueRef::Null];
        assert_eq!(row_hash("t", values), want);
        let mut hasher = RowHasher::default();
        assert_eq!(hasher.hash("long", [ValueRef::Blob(&[1; 300])]), row_hash("long", [ValueRef::Blob(&[1; 300])]));
        assert_eq!(hasher.hash("t", values), want, "the buffer starts again for each row");
    }

    #[test]
    fn types_and_tables_are_part_of_the_hash() {
        assert_ne!(row_hash("t", [ValueRef::Integer(1)]), row_hash("t", [ValueRef::Text(b"1")]));
        assert_ne!(row_hash("t", [ValueRef::Integer(1)]), row_hash("u", [ValueRef::Integer(1)]));
        assert_ne!(
            row_hash("t", [ValueRef::Text(b"ab"), ValueRef::Text(b"c")]),
            row_hash("t", [ValueRef::Text(b"a"), ValueRef::Text(b"bc")])
        );
    }
}
