//! Trusted hosts (the guide's "Manage Trusted Hosts"): each peer's SSH public key, by
//! the host name (and port) it was added under. Node-local, never replicated.

use rusqlite::{Transaction, params};
use serde::Serialize;

use super::{Store, StoreError, now_text};

/// One trusted peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TrustedHost {
    /// `HOST` or `HOST:PORT`, as added.
    pub host: String,
    /// Its public key, one OpenSSH line.
    pub key: String,
    /// When it was added.
    pub added_at: String,
}

/// Adds or replaces the key of `host`.
pub fn put(tx: &Transaction, host: &str, key: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO trusted_hosts (host, key, added_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (host) DO UPDATE SET key = excluded.key, added_at = excluded.added_at",
        params![host, key, now_text()],
    )?;
    Ok(())
}

/// Removes `host`; whether it was there.
pub fn remove(tx: &Transaction, host: &str) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM trusted_hosts WHERE host = ?1", [host])? > 0)
}

impl Store {
    /// Every trusted host, by name.
    pub fn trusted_hosts(&self) -> Result<Vec<TrustedHost>, StoreError> {
        let mut stmt = self.conn().prepare_cached("SELECT host, key, added_at FROM trusted_hosts ORDER BY host")?;
        let rows = stmt.query_map([], |r| Ok(TrustedHost { host: r.get(0)?, key: r.get(1)?, added_at: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
