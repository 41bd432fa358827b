//! Key/value settings rows. Typed views of them live with their owners (`ha::Settings`).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{Store, StoreError};

impl Store {
    /// Every stored setting.
    pub fn settings(&self) -> Result<BTreeMap<String, String>, StoreError> {
        read_all(self.conn())
    }

    /// One stored setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value =
            self.conn().query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?;
        Ok(value)
    }

    /// Stores, in one durable transaction, the settings `edit` names (`None` removes one).
    pub fn update_settings(
        &mut self,
        edit: impl FnOnce(&mut BTreeMap<&'static str, Option<String>>),
    ) -> Result<(), StoreError> {
        self.durably(|tx| {
            let mut changes = BTreeMap::new();
            edit(&mut changes);
            for (key, value) in changes {
                put(tx, key, value.as_deref())?;
            }
            Ok(())
        })
    }
}

/// Every stored setting, read through `conn` (a transaction derefs to one).
pub fn read_all(conn: &Connection) -> Result<BTreeMap<String, String>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM settings")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Stores `value` under `key` inside a transaction; `None` removes the key.
pub fn put(tx: &Transaction, key: &str, value: Option<&str>) -> Result<(), StoreError> {
    match value {
        Some(v) => tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![key, v, super::now_text()],
        )?,
        None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
    };
    Ok(())
}
