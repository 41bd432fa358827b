//! The node's local system database (`system.db`), never replicated: its settings (HA,
//! SMTP, console) as key/value rows (`settings`), the failover history (`history`),
//! every sync run (`sync_log`), the audit log and its retention (`audit`), the HA
//! module log and the peer status the heartbeat saw (`ha_log`), the notification
//! outbox (`outbox`), console sessions and lockouts (`sessions`), trusted hosts
//! ([`trusted`]), the replication chain this node is part of (`chain`) and how its
//! stream from its primary stands (`stream`), the handovers of switchovers and the
//! switchovers a shell asked its daemon for (`handover`). Opened in
//! WAL mode with versioned `migrations`; a file that is not a coresh database, or comes
//! from a newer coresh, is refused and left exactly as it is. [`StoreError`] is the
//! error of both of the node's databases (the Core data's too, see `coredb`).

mod audit;
mod chain;
mod counts;
mod ha_log;
mod handover;
mod history;
mod migrations;
mod outbox;
mod sessions;
mod settings;
mod stream;
mod sync_log;
mod syslog;
pub mod trusted;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use audit::{AuditEntry, Outcome, RETENTION, Retention};
pub use chain::{ChainLink, Follower, MAX_LINKS};
pub use counts::Counts;
pub use ha_log::{HaLogEntry, PeerStatus};
pub use handover::{
    Handover, REQUEST_FRESH_SECONDS, SIGNATURE_NAMESPACE, SwitchoverRequest, record as record_handover,
    statement as handover_statement,
};
pub use history::{HistoryEntry, SyncSummary, record as record_history};
pub use migrations::{SCHEMA_VERSION, migrate_steps};
pub use outbox::{Channel, Delivery, HookTally, NewDelivery, PER_HOUR, queue_capped_in};
pub use sessions::{ConsoleSession, Lockout};
pub use settings::{put as put_setting, read_all as settings_in};
pub use stream::{FeedState, GateRecord, LagSecond, StreamFollower, StreamState, StreamStatus};
pub use sync_log::{Finished, SyncKind, SyncRecord, SyncResult};
pub use syslog::{BACKLOG as SYSLOG_BACKLOG, LogLine, SyslogCursor};
pub use trusted::TrustedHost;

/// File name of the system database inside a data directory.
pub const SYSTEM_DB: &str = "system.db";

/// Errors of the node's databases: the system database and the Core data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but SQLite cannot read it as a database.
    #[error("{path} is not a usable database ({source}); it was left untouched")]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database was written by a newer coresh.
    #[error("{path} has schema version {found}, newer than this coresh ({supported}); it was left untouched")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest version this coresh knows.
        supported: i64,
    },
    /// A stored setting does not parse.
    #[error("stored setting {key} = {value:?} is invalid")]
    BadSetting {
        /// Setting key.
        key: String,
        /// Stored text.
        value: String,
    },
    /// Generated data goes only into an empty Core data.
    #[error("the Core data is not empty: generate into a new data directory")]
    NotEmpty,
    /// The writer has stopped (the daemon is shutting down).
    #[error("the Core data writer has stopped")]
    Stopped,
    /// A batch could not be committed.
    #[error("commit failed: {0}")]
    Commit(String),
    /// Any other SQLite failure, of either database.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The open system database of one node.
pub struct Store {
    /// The connection (the daemon and each shell have their own).
    conn: Connection,
    /// Where it lives, for messages.
    path: PathBuf,
}

impl Store {
    /// Opens (creating when absent) the system database of `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(SYSTEM_DB);
        let conn = open_database(&path, SCHEMA_VERSION, migrations::migrate)?;
        // WAL with NORMAL survives a crash of the process; settings writes ask for FULL.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Store { conn, path })
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one write transaction that is synced to disk on commit.
    pub fn durably<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let result = (|| {
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        result
    }

    /// The underlying connection, for reads.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A number that changes whenever another connection commits to this database.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// SQLite library version, for `show version`.
    pub fn sqlite_version() -> &'static str {
        rusqlite::version()
    }
}

/// Opens a coresh database file, creating it when absent: refuses a file that is not a
/// database or has a newer schema (leaving it untouched), turns on WAL and foreign
/// keys, and migrates it to `version`.
pub fn open_database(
    path: &Path,
    version: i64,
    migrate: fn(&mut Connection, i64) -> Result<(), StoreError>,
) -> Result<Connection, StoreError> {
    let unreadable = |source| StoreError::Unreadable { path: path.to_path_buf(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(unreadable)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(unreadable)?;
    // The first read of the header tells a database from anything else.
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(unreadable)?;
    if found > version {
        return Err(StoreError::TooNew { path: path.to_path_buf(), found, supported: version });
    }
    conn.pragma_update(None, "journal_mode", "WAL").map_err(unreadable)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // A shell appends to the audit log on every command; leave checkpoints to SQLite's
    // automatic ones instead of one (with fsyncs) each time a process exits.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    migrate(&mut conn, found)?;
    Ok(conn)
}

/// Opens a database file to read only, for one thread (no mutex around every call: with
/// one, a scan of a million rows spent a quarter of its time locking).
pub fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
}

/// The current time as stored: RFC 3339 in UTC, to the second.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current time to the millisecond, for what is timed finer than a second (sync
/// runs, heartbeats).
pub fn now_millis() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_file_that_is_not_a_database_and_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SYSTEM_DB);
        let junk = b"this is not sqlite, but somebody's precious file\n".repeat(100);
        std::fs::write(&path, &junk).unwrap();
        let err = Store::open(dir.path()).err().expect("junk accepted");
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), junk);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(SYSTEM_DB)).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        }
        let err = Store::open(dir.path()).err().expect("newer schema accepted");
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
    }

    #[test]
    fn the_bundled_sqlite_is_built_without_extension_loading_or_unused_modules() {
        // .cargo/config.toml (LIBSQLITE3_FLAGS) builds it so; a build without that
        // configuration would quietly bring them back.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let options: Vec<String> = store
            .conn()
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.iter().any(|o| o == "OMIT_LOAD_EXTENSION"), "{options:?}");
        for unused in ["ENABLE_FTS3", "ENABLE_FTS5", "ENABLE_RTREE", "ENABLE_DBSTAT_VTAB", "ENABLE_STAT4"] {
            assert!(!options.iter().any(|o| o == unused), "{unused} in {options:?}");
        }
        let refused = store.conn().query_row("SELECT load_extension('/tmp/x')", [], |r| r.get::<_, String>(0));
        assert!(refused.is_err(), "load_extension is callable");
        // What coresh does use is there: change capture and JSON.
        assert!(options.iter().any(|o| o == "ENABLE_SESSION"), "{options:?}");
        let json: String = store.conn().query_row("SELECT json_object('a', 1)", [], |r| r.get(0)).unwrap();
        assert_eq!(json, r#"{"a":1}"#);
    }

    #[test]
    fn reopening_keeps_the_schema() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let store = Store::open(dir.path()).unwrap();
        let v: i64 = store.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
