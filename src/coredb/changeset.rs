//! SQLite's changeset format, written and read as the session extension does: a
//! table's header (`T`, the column count, each column's place in the primary key, the
//! name), then each change: its code, an indirect flag, and its records. A record is
//! one value a column: a type byte, then 8 big-endian bytes for an integer or a float,
//! a varint length and the bytes for text or a blob, nothing for NULL; an update's
//! columns it left alone are undefined (type 0).

use std::borrow::Cow;

use rusqlite::types::ValueRef;

/// Change codes and value types of SQLite's changeset format.
pub const INSERT: u8 = 18;
pub const DELETE: u8 = 9;
pub const UPDATE: u8 = 23;
const INTEGER: u8 = 1;
const FLOAT: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;
const NULL: u8 = 5;
const UNDEFINED: u8 = 0;

pub fn put_value(out: &mut Vec<u8>, value: ValueRef) {
    match value {
        ValueRef::Null => out.push(NULL),
        ValueRef::Integer(v) => {
            out.push(INTEGER);
            out.extend_from_slice(&v.to_be_bytes());
        }
        ValueRef::Real(v) => {
            out.push(FLOAT);
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            out.push(if matches!(value, ValueRef::Text(_)) { TEXT } else { BLOB });
            put_varint(out, t.len() as u64);
            out.extend_from_slice(t);
        }
    }
}

/// SQLite's variable-length integer: 7 bits a byte, high bit set on all but the last,
/// and a ninth byte of 8 bits.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    if v > 0x00ff_ffff_ffff_ffff {
        let mut buf = [0u8; 9];
        buf[8] = v as u8;
        v >>= 8;
        for b in buf[..8].iter_mut().rev() {
            *b = (v as u8 & 0x7f) | 0x80;
            v >>= 7;
        }
        out.extend_from_slice(&buf);
        return;
    }
    let mut buf = [0u8; 9];
    let mut n = 0;
    loop {
        buf[n] = (v as u8 & 0x7f) | 0x80;
        n += 1;
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    buf[0] &= 0x7f;
    out.extend(buf[..n].iter().rev());
}

fn get_varint(bytes: &[u8]) -> (u64, usize) {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(9) {
        if i == 8 {
            return ((v << 8) | u64::from(*b), 9);
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return (v, i + 1);
        }
    }
    (v, bytes.len())
}

/// The next encoded value of `bytes` and its length in bytes.
fn next_value(bytes: &[u8]) -> (ValueRef<'_>, usize) {
    let word = |b: &[u8]| b.get(1..9).and_then(|w| <[u8; 8]>::try_from(w).ok()).unwrap_or_default();
    match bytes.first().copied() {
        Some(INTEGER) => (ValueRef::Integer(i64::from_be_bytes(word(bytes))), 9),
        Some(FLOAT) => (ValueRef::Real(f64::from_bits(u64::from_be_bytes(word(bytes)))), 9),
        Some(kind @ (TEXT | BLOB)) => {
            let (n, head) = get_varint(&bytes[1..]);
            let start = (1 + head).min(bytes.len());
            let end = start.saturating_add(usize::try_from(n).unwrap_or(usize::MAX)).min(bytes.len());
            let data = &bytes[start..end];
            (if kind == TEXT { ValueRef::Text(data) } else { ValueRef::Blob(data) }, end)
        }
        _ => (ValueRef::Null, 1),
    }
}

/// The values of an encoded row (encoded by this module, so well formed).
pub struct Values<'a>(pub &'a [u8]);

impl<'a> Iterator for Values<'a> {
    type Item = ValueRef<'a>;

    fn next(&mut self) -> Option<ValueRef<'a>> {
        if self.0.is_empty() {
            return None;
        }
        let (value, n) = next_value(self.0);
        self.0 = &self.0[n.min(self.0.len())..];
        Some(value)
    }
}

/// Each encoded value of a row with its bytes.
fn fields(row: &[u8]) -> impl Iterator<Item = (ValueRef<'_>, &[u8])> {
    let mut rest = row;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (value, n) = next_value(rest);
        let (field, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some((value, field))
    })
}

/// The bytes of the primary-key columns of an encoded row, one after the other.
pub fn primary_key<'a>(row: &'a [u8], pk: &[u8]) -> Cow<'a, [u8]> {
    let mut keyed = fields(row).zip(pk).filter(|(_, p)| **p != 0).map(|((_, bytes), _)| bytes);
    let Some(first) = keyed.next() else { return Cow::Borrowed(&[]) };
    // A single-column key (every table here has one) is a slice of the row itself.
    match keyed.next() {
        None => Cow::Borrowed(first),
        Some(second) => {
            let mut key = [first, second].concat();
            keyed.for_each(|bytes| key.extend_from_slice(bytes));
            Cow::Owned(key)
        }
    }
}

/// Whether two values differ as the session extension tells them apart: by type and
/// value (a float by its numeric value), text and blobs byte by byte.
fn value_differs(a: (ValueRef, &[u8]), b: (ValueRef, &[u8])) -> bool {
    match (a.0, b.0) {
        (ValueRef::Real(x), ValueRef::Real(y)) => x != y,
        _ => a.1 != b.1,
    }
}

/// Whether an update changed any column outside the primary key.
pub fn differs(old: &[u8], new: &[u8], pk: &[u8]) -> bool {
    fields(old).zip(fields(new)).zip(pk).any(|((o, n), p)| *p == 0 && value_differs(o, n))
}

/// An update as the session extension writes it: the old record holds the key and the
/// old values of the changed columns, the new record the new values of those; every
/// other field is undefined.
pub fn update(out: &mut Vec<u8>, pk: &[u8], old: &[u8], new: &[u8]) {
    out.extend_from_slice(&[UPDATE, 0]);
    let changed: Vec<bool> = fields(old).zip(fields(new)).map(|(o, n)| value_differs(o, n)).collect();
    for ((_, bytes), (p, c)) in fields(old).zip(pk.iter().zip(&changed)) {
        if *c || *p != 0 {
            out.extend_from_slice(bytes);
        } else {
            out.push(UNDEFINED);
        }
    }
    for ((_, bytes), c) in fields(new).zip(&changed) {
        if *c {
            out.extend_from_slice(bytes);
        } else {
            out.push(UNDEFINED);
        }
    }
}

/// A table's header.
pub fn put_table(out: &mut Vec<u8>, name: &str, pk: &[u8]) {
    out.push(b'T');
    put_varint(out, pk.len() as u64);
    out.extend_from_slice(pk);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
}

/// An insert (its new row) or a delete (its old row).
pub fn put_row(out: &mut Vec<u8>, code: u8, row: &[u8]) {
    out.extend_from_slice(&[code, 0]);
    out.extend_from_slice(row);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_values_read_back_as_written() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, 1 << 35, 0x00ff_ffff_ffff_ffff, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(get_varint(&out), (v, out.len()), "{v}");
        }
        // SQLite's own encoding of 300 (two bytes: 0x82 0x2c).
        let mut out = Vec::new();
        put_varint(&mut out, 300);
        assert_eq!(out, [0x82, 0x2c]);
        let long = "x".repeat(300);
        let values = [
            ValueRef::Null,
            ValueRef::Integer(-2),
            ValueRef::Real(1.5),
            ValueRef::Text(long.as_bytes()),
            ValueRef::Blob(&[0, 1]),
        ];
        let mut row = Vec::new();
        values.iter().for_each(|v| put_value(&mut row, *v));
        assert_eq!(Values(&row).collect::<Vec<_>>(), values);
    }
}
