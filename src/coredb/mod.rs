//! The Core data (`core.db`): users and devices, apps, policies and configs, settings,
//! logs and events, certificates and System Manager local users; the part HA
//! replicates (guide, "Core Replication Details"). It is a database of its own, apart
//! from the node-local system database. Every write goes through [`Writes`], which
//! records the transaction's changes in the [`changelog`] with the content [`checksum`]
//! the data has after it: the write path and what replication reads are one.

pub mod atlas;
mod capture;
pub mod changelog;
mod changeset;
pub mod checksum;
mod devices;
pub mod generate;
mod schema;
pub mod soundness;
pub mod swap;
pub mod users;
mod value_order;
pub mod writeback;
pub mod writer;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Transaction};
use serde::Serialize;

use crate::store::{StoreError, open_database};

pub use devices::{CheckIn, CheckedIn, DeviceError, Registered, Registration, token_hash};
pub use schema::{SCHEMA_VERSION, migrate};

/// File name of the Core data inside a data directory.
pub const CORE_DB: &str = "core.db";

/// The size the WAL file is cut back to when it starts over (SQLite's
/// `journal_size_limit`): a burst that grew it gives the disk space back afterwards.
const WAL_KEPT_BYTES: i64 = 64 << 20;

/// Key of the enrollment secret's hash in the Core data settings.
pub const ENROLLMENT_SECRET: &str = "enrollment.secret";

/// An open Core data database.
pub struct CoreDb {
    /// The connection.
    conn: Connection,
    /// Where it lives.
    path: PathBuf,
    /// Node id recorded with each change-log entry written here.
    origin: String,
    /// What the write transactions change, for the change log.
    capture: capture::Capture,
}

/// Counts for `show core summary` (the guide's test plan compares device counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    pub users: u64,
    pub devices: u64,
    pub apps: u64,
    pub policies: u64,
    pub events: u64,
    pub certificates: u64,
    pub local_users: u64,
    /// Rows in the Atlas store; `None` where Atlas was never enabled.
    pub atlas: Option<u64>,
    /// The content checksum, as the change log keeps it (equal on two nodes holding the
    /// same rows), and the number of the last change.
    pub content_checksum: String,
    pub change: i64,
}

/// One device as `show devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Device {
    pub id: i64,
    pub uuid: String,
    pub user: Option<String>,
    pub platform: String,
    pub model: String,
    pub os_version: String,
    pub registered_at: String,
    pub last_checkin_at: Option<String>,
    pub checkins: i64,
    /// `enrolled`, `retired` or `re-enroll` (may enrol again once).
    pub enrollment: String,
}

/// The write operations on the Core data, inside one transaction.
pub struct Writes<'a> {
    tx: &'a Transaction<'a>,
    capture: &'a capture::Capture,
}

impl CoreDb {
    /// Opens (creating when absent) the Core data of `data_dir`. Commits are synced
    /// to disk: an acknowledged check-in survives a crash or a power loss.
    pub fn open(data_dir: &Path) -> Result<CoreDb, StoreError> {
        let path = data_dir.join(CORE_DB);
        let mut conn = open_connection(&path)?;
        let capture = capture::Capture::install(&mut conn)?;
        Ok(CoreDb { conn, path, origin: String::new(), capture })
    }

    /// Prepares the swap of the staged Core data at `staged` into the live Core data of
    /// `data_dir` (replication's full sync), on a connection of its own: see [`swap`].
    pub fn prepare_swap(data_dir: &Path, staged: &Path, keep_on: swap::KeepOn) -> swap::Swap {
        swap::Swap::prepare(open_connection, data_dir.join(CORE_DB), staged.to_path_buf(), keep_on)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the write operations in one transaction, committed when it
    /// returns `Ok`. What it changed goes into the change log in that transaction
    /// (see [`changelog`]).
    pub fn write<T, E: From<StoreError>>(&mut self, f: impl FnOnce(&Writes) -> Result<T, E>) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| E::from(StoreError::from(e)))?;
        let capture = &self.capture;
        let recording = capture.begin(&tx).map_err(E::from)?;
        let value = f(&Writes { tx: &tx, capture }).and_then(|value| {
            changelog::record(&tx, capture, &commit_time(), &self.origin).map_err(E::from)?;
            Ok(value)
        });
        drop(recording);
        let value = value?;
        tx.commit().map_err(|e| E::from(StoreError::from(e)))?;
        Ok(value)
    }

    /// Like [`CoreDb::write`], but leaves the change log behind: for bulk loads, which
    /// end with [`CoreDb::restart_log`].
    pub(crate) fn write_unlogged<T>(
        &mut self,
        f: impl FnOnce(&Writes) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&Writes { tx: &tx, capture: &self.capture })?;
        tx.commit()?;
        Ok(value)
    }

    /// Starts the change log afresh after unlogged writes: peers then copy everything.
    pub(crate) fn restart_log(&mut self) -> Result<(), StoreError> {
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        changelog::restart(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Names the node whose writes go through this handle (its change-log entries say
    /// so, which tells a node's own writes from those it replicated).
    pub fn set_origin(&mut self, node_id: &str) {
        self.origin = node_id.to_string();
    }

    /// Where this node's change log ends.
    pub fn log_head(&self) -> Result<changelog::Position, StoreError> {
        changelog::head(&self.conn)
    }

    /// The change-log entries committed at or after `at` (RFC 3339) and their changeset
    /// bytes: this node's write rate (`show replication`).
    pub fn log_since(&self, at: &str) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT count(*), coalesce(sum(length(changeset)), 0) FROM repl_log WHERE at >= ?1",
            [at],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// The connection, for replication's readers and appliers.
    pub(crate) fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Attaches the Atlas store as schema `atlas` (or detaches it), so that device
    /// analytics are written in the same transaction as the check-in they come from.
    pub fn attach_atlas(&self, on: bool) -> Result<(), StoreError> {
        if on {
            let path = self.path.with_file_name(atlas::ATLAS_DB);
            self.conn.execute("ATTACH DATABASE ?1 AS atlas", [path.to_string_lossy()])?;
        } else {
            self.conn.execute_batch("DETACH DATABASE atlas")?;
        }
        Ok(())
    }

    /// The content checksum of this Core data, computed from the rows (see [`checksum`]).
    pub fn content_checksum(&self) -> Result<String, StoreError> {
        checksum::content_checksum(&self.conn)
    }

    /// Turns off automatic checkpoints on this connection (another one runs them).
    pub fn leave_checkpoints_to_others(&self) -> Result<(), StoreError> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    /// Copies what it can of the WAL into the database file without blocking writers;
    /// returns how many frames the WAL holds and how many of them are copied. Once every
    /// frame is copied, the next write starts the WAL over from its beginning.
    pub fn checkpoint(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?)))?)
    }

    /// Has the kernel write out what checkpoints copied into the database file, so that
    /// the sync SQLite makes when a checkpoint completes finds little left to write. It
    /// syncs the file system holding the database, not the file: opening and closing a
    /// descriptor of `core.db` here would drop SQLite's locks on it (POSIX ties them to
    /// the process, and the first close releases them all).
    pub fn flush_file_system(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(self.path.parent().unwrap_or(Path::new(".")))?;
        // SAFETY: `syncfs` only reads the descriptor, which `dir` keeps open for the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// A number that changes whenever another connection commits to this database.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Counts of every kind of Core data.
    pub fn summary(&self) -> Result<Summary, StoreError> {
        let count = |table: &str| -> Result<u64, StoreError> {
            let n: i64 = self.conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        let head = changelog::head(&self.conn)?;
        Ok(Summary {
            content_checksum: head.checksum,
            change: head.seq,
            users: count("users")?,
            devices: count("devices")?,
            apps: count("apps")?,
            policies: count("policies")?,
            events: count("events")?,
            certificates: count("certificates")?,
            local_users: count("local_users")?,
            atlas: match self.path.parent() {
                Some(dir) => atlas::count(dir)?,
                None => None,
            },
        })
    }

    /// Devices, most recently registered last; `last` keeps only the newest.
    pub fn devices(&self, last: Option<u64>) -> Result<Vec<Device>, StoreError> {
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn.prepare_cached(
            "SELECT d.id, d.uuid, u.name, d.platform, d.model, d.os_version, d.registered_at,
                    d.last_checkin_at, d.checkins, coalesce(e.state, 'enrolled')
               FROM (SELECT * FROM devices ORDER BY id DESC LIMIT ?1) d
               LEFT JOIN users u ON u.id = d.user_id
               LEFT JOIN device_enrollment e ON e.device_id = d.id
              ORDER BY d.id",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(Device {
                id: r.get(0)?,
                uuid: r.get(1)?,
                user: r.get(2)?,
                platform: r.get(3)?,
                model: r.get(4)?,
                os_version: r.get(5)?,
                registered_at: r.get(6)?,
                last_checkin_at: r.get(7)?,
                checkins: r.get(8)?,
                enrollment: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One Core data setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }
}

impl Writes<'_> {
    /// Sets (or with `None` removes) a Core data setting.
    pub fn set_setting(&self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        match value {
            Some(v) => self.tx.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, v],
            )?,
            None => self.tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
        };
        Ok(())
    }

    /// The transaction, for the write operations defined next to their data.
    pub(crate) fn tx(&self) -> &Transaction<'_> {
        self.tx
    }

    /// Runs one step of a write in its own savepoint: when `f` fails, what it changed is
    /// undone (in the data and in the change capture) and the write goes on. The only
    /// way to undo part of a write: the capture refuses any other `ROLLBACK TO`.
    pub fn op<T, E: From<StoreError>>(&self, f: impl FnOnce(&Writes) -> Result<T, E>) -> Result<T, E> {
        let sql =
            |s: &str| self.tx.prepare_cached(s).and_then(|mut st| st.execute([])).map(drop).map_err(StoreError::from);
        sql(capture::BEGIN_OP).map_err(E::from)?;
        let result = self.capture.mark(self.tx).map_err(E::from).and_then(|mark| {
            let result = f(self);
            if result.is_err() {
                sql(capture::UNDO_OP).map_err(E::from)?;
                self.capture.undo(self.tx, mark);
            }
            result
        });
        sql(capture::END_OP).map_err(E::from)?;
        result
    }
}

/// A connection to the Core data at `path` (created and migrated when needed) whose
/// commits are synced to disk: an acknowledged check-in survives a crash or a power loss.
fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = open_database(path, SCHEMA_VERSION, schema::migrate)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
    Ok(conn)
}

/// When a change is committed, as its change-log entry records it: to the millisecond,
/// so that a follower can measure its commit-to-apply lag (`replication::lag`).
fn commit_time() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
