//! What the operator console leaves for the shell to show: the SSH sessions open now
//! (`show sessions`) and the addresses locked out after failed logins (`show login`,
//! `clear login lockout`). The daemon writes both; a daemon start forgets the sessions
//! of the run before.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, now_text};

/// One console session open now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ConsoleSession {
    pub id: i64,
    pub user: String,
    /// The client's address.
    pub source: String,
    /// `shell` or `exec`.
    pub kind: String,
    /// The terminal type the client asked for; `-` without a terminal.
    pub terminal: String,
    pub started_at: String,
}

/// An address locked out after failed logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Lockout {
    pub address: String,
    pub locked_at: String,
    /// Until when (Unix milliseconds).
    pub until_ms: i64,
    /// Failed logins that caused it.
    pub failures: u32,
}

impl Store {
    /// Records a session that starts now; returns its id.
    pub fn session_open(&self, user: &str, source: &str, kind: &str, terminal: &str) -> Result<i64, StoreError> {
        let id = self
            .conn()
            .prepare_cached(
                "INSERT INTO console_sessions (user, source, kind, terminal, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .insert(params![user, source, kind, terminal, now_text()])?;
        Ok(id)
    }

    /// Forgets a session that ended.
    pub fn session_close(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM console_sessions WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Forgets every session (a daemon starting: its predecessor's sessions are gone).
    pub fn sessions_clear(&self) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM console_sessions", [])?;
        Ok(())
    }

    /// The sessions open now, oldest first.
    pub fn sessions(&self) -> Result<Vec<ConsoleSession>, StoreError> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, user, source, kind, terminal, started_at FROM console_sessions ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(ConsoleSession {
                id: r.get(0)?,
                user: r.get(1)?,
                source: r.get(2)?,
                kind: r.get(3)?,
                terminal: r.get(4)?,
                started_at: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Locks `address` out until `until_ms`; lockouts that have ended are dropped here,
    /// on the daemon's write, so that reading them stays a read.
    pub fn lock_out(&self, address: &str, until_ms: i64, failures: u32) -> Result<(), StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.conn().execute("DELETE FROM login_lockouts WHERE until_ms <= ?1", [now_ms])?;
        self.conn().execute(
            "INSERT INTO login_lockouts (address, locked_at, until_ms, failures) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (address) DO UPDATE SET locked_at = excluded.locked_at,
                 until_ms = excluded.until_ms, failures = excluded.failures",
            params![address, now_text(), until_ms, failures],
        )?;
        Ok(())
    }

    /// Until when `address` is locked out, if it is at `now_ms`.
    pub fn locked_until(&self, address: &str, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let until = self
            .conn()
            .prepare_cached("SELECT until_ms FROM login_lockouts WHERE address = ?1 AND until_ms > ?2")?
            .query_row(params![address, now_ms], |r| r.get(0))
            .optional()?;
        Ok(until)
    }

    /// The lockouts still in force at `now_ms`.
    pub fn lockouts(&self, now_ms: i64) -> Result<Vec<Lockout>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT address, locked_at, until_ms, failures FROM login_lockouts WHERE until_ms > ?1 ORDER BY address",
        )?;
        let rows = stmt.query_map([now_ms], |r| {
            Ok(Lockout { address: r.get(0)?, locked_at: r.get(1)?, until_ms: r.get(2)?, failures: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Lifts the lockout of `address` (every lockout with `None`); returns how many.
    pub fn clear_lockouts(&self, address: Option<&str>) -> Result<usize, StoreError> {
        let n = match address {
            Some(a) => self.conn().execute("DELETE FROM login_lockouts WHERE address = ?1", [a])?,
            None => self.conn().execute("DELETE FROM login_lockouts", [])?,
        };
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_lockouts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.session_open("admin", "10.0.0.1", "shell", "xterm").unwrap();
        let b = store.session_open("ops", "10.0.0.2", "exec", "-").unwrap();
        assert_eq!(store.sessions().unwrap().len(), 2);
        store.session_close(a).unwrap();
        let left = store.sessions().unwrap();
        assert_eq!((left.len(), left[0].id, left[0].user.as_str()), (1, b, "ops"));
        store.sessions_clear().unwrap();
        assert!(store.sessions().unwrap().is_empty());

        store.lock_out("10.0.0.9", 2_000, 5).unwrap();
        assert_eq!(store.locked_until("10.0.0.9", 1_000).unwrap(), Some(2_000));
        assert_eq!(store.locked_until("10.0.0.9", 2_000).unwrap(), None, "expired at its end");
        assert_eq!(store.lockouts(1_500).unwrap().len(), 1);
        assert!(store.lockouts(2_500).unwrap().is_empty(), "expired lockouts are not listed");
        store.lock_out("10.0.0.9", 9_000, 3).unwrap();
        assert_eq!(store.clear_lockouts(Some("10.0.0.9")).unwrap(), 1);
        assert_eq!(store.locked_until("10.0.0.9", 1_000).unwrap(), None);
    }
}
