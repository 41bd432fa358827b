//! SQLite's order of values (NULL, then numbers, then text, then blobs; an integer and
//! a real by their values) and a value kept past its row: what the snapshot check
//! ([`super::soundness`]) compares each index entry with the one before by.

use std::cmp::Ordering;

use rusqlite::types::ValueRef;

/// A value kept past its row, byte for byte.
pub(super) enum Held {
    Null,
    Integer(i64),
    Real(f64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Held {
    fn of(v: ValueRef) -> Held {
        match v {
            ValueRef::Null => Held::Null,
            ValueRef::Integer(i) => Held::Integer(i),
            ValueRef::Real(r) => Held::Real(r),
            ValueRef::Text(t) => Held::Text(t.to_vec()),
            ValueRef::Blob(b) => Held::Blob(b.to_vec()),
        }
    }

    /// Becomes `v`, keeping the bytes' room when it can.
    pub(super) fn set(&mut self, v: ValueRef) {
        match (self, v) {
            (Held::Text(t), ValueRef::Text(n)) | (Held::Blob(t), ValueRef::Blob(n)) => {
                t.clear();
                t.extend_from_slice(n);
            }
            (held, v) => *held = Held::of(v),
        }
    }

    pub(super) fn view(&self) -> ValueRef<'_> {
        match self {
            Held::Null => ValueRef::Null,
            Held::Integer(i) => ValueRef::Integer(*i),
            Held::Real(r) => ValueRef::Real(*r),
            Held::Text(t) => ValueRef::Text(t),
            Held::Blob(b) => ValueRef::Blob(b),
        }
    }
}

/// SQLite's order of two values: NULL, then numbers, then text (bytes), then blobs.
pub(super) fn compare(a: &ValueRef, b: &ValueRef) -> Ordering {
    let class = |v: &ValueRef| match v {
        ValueRef::Null => 0,
        ValueRef::Integer(_) | ValueRef::Real(_) => 1,
        ValueRef::Text(_) => 2,
        ValueRef::Blob(_) => 3,
    };
    match (a, b) {
        (ValueRef::Integer(x), ValueRef::Integer(y)) => x.cmp(y),
        (ValueRef::Real(x), ValueRef::Real(y)) => x.total_cmp(y),
        (ValueRef::Integer(x), ValueRef::Real(y)) => compare_mixed(*x, *y),
        (ValueRef::Real(x), ValueRef::Integer(y)) => compare_mixed(*y, *x).reverse(),
        (ValueRef::Text(x), ValueRef::Text(y)) | (ValueRef::Blob(x), ValueRef::Blob(y)) => x.cmp(y),
        _ => class(a).cmp(&class(b)),
    }
}

/// An integer against a real, without losing the integer's precision.
fn compare_mixed(i: i64, r: f64) -> Ordering {
    if r.is_nan() {
        return Ordering::Greater;
    }
    // i64 range as f64: [-2^63, 2^63).
    if r >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if r < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let whole = r.floor();
    // In range: `whole` is an integer value an i64 holds exactly.
    match i.cmp(&(whole as i64)) {
        Ordering::Equal if r > whole => Ordering::Less,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn values_compare_as_sqlite_orders_them() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE v (x); INSERT INTO v VALUES (NULL), (1), (1.5), (-2), (2.0), ('a'), ('B'), ('ab'), (x'00'),
             (x'0001'), (9223372036854775807), (9.3e18), (-9.3e18), (-9223372036854775808), (0.5), (0);",
        )
        .unwrap();
        let mut stmt = conn.prepare("SELECT x FROM v ORDER BY x").unwrap();
        let sorted: Vec<rusqlite::types::Value> =
            stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
        for pair in sorted.windows(2) {
            let (a, b) = (ValueRef::from(&pair[0]), ValueRef::from(&pair[1]));
            assert_ne!(compare(&a, &b), Ordering::Greater, "{:?} then {:?}", pair[0], pair[1]);
            assert_ne!(compare(&b, &a), Ordering::Less, "{:?} then {:?}", pair[0], pair[1]);
        }
        assert_eq!(compare(&ValueRef::Integer(2), &ValueRef::Real(2.0)), Ordering::Equal);
        assert_eq!(compare(&ValueRef::Integer(2), &ValueRef::Real(2.5)), Ordering::Less);
        assert_eq!(compare(&ValueRef::Integer(-3), &ValueRef::Real(-2.5)), Ordering::Less);
    }
}
