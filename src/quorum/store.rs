//! The engine's durable state in the system database: its log (`raft_log`, one JSON
//! entry a row), and in `raft_meta` its vote, the last committed and purged log ids,
//! and the state machine (the lease, the last applied log id and the membership), each
//! written in the transaction that changes it, with a full fsync (`Store::durably`): a
//! vote or an entry the engine was told is stored survives a crash, as Raft requires.
//! The snapshot is the state machine itself (a few hundred bytes).

// The error type is openraft's, fixed by its storage traits.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use rusqlite::OptionalExtension;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Lease, LeaseAnswer, TypeConfig};
use crate::store::Store;

type Error = StorageError<u64>;

/// The state machine as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
    pub lease: Lease,
}

/// The engine's storage, on one connection to the system database.
#[derive(Clone)]
pub struct Storage {
    store: Arc<Mutex<Store>>,
}

fn io(what: &str, e: impl std::fmt::Display) -> Error {
    StorageIOError::write(AnyError::error(format!("{what}: {e}"))).into()
}

impl Storage {
    /// The storage in the data directory `dir`.
    pub fn open(dir: &std::path::Path) -> Result<Storage, crate::store::StoreError> {
        Ok(Storage { store: Arc::new(Mutex::new(Store::open(dir)?)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Store) -> Result<T, crate::store::StoreError>) -> Result<T, Error> {
        let mut store = self.store.lock().map_err(|_| io("raft storage", "lock poisoned"))?;
        f(&mut store).map_err(|e| io("raft storage", e))
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let text: Option<String> = self.with(|s| {
            Ok(s.conn().query_row("SELECT value FROM raft_meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| io(key, e))).transpose()
    }

    fn put_meta<T: Serialize>(&self, key: &str, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string(value).map_err(|e| io(key, e))?;
        self.with(|s| {
            s.durably(|tx| {
                tx.execute("INSERT OR REPLACE INTO raft_meta (key, value) VALUES (?1, ?2)", [key, &text])?;
                Ok(())
            })
        })
    }

    /// The state machine as last applied.
    pub fn machine(&self) -> Result<Machine, Error> {
        Ok(self.meta("machine")?.unwrap_or_default())
    }

    /// Records how the engine stands (not for the engine: for `show failover`).
    pub fn put_status(&self, status: &super::QuorumStatus) -> Result<(), Error> {
        let text = serde_json::to_string(status).map_err(|e| io("status", e))?;
        self.with(|s| {
            s.conn().execute("INSERT OR REPLACE INTO raft_meta (key, value) VALUES ('status', ?1)", [&text])?;
            Ok(())
        })
    }

    /// How the engine last stood, if it ever ran here.
    pub fn status(&self) -> Result<Option<super::QuorumStatus>, Error> {
        self.meta("status")
    }
}

impl RaftLogReader<TypeConfig> for Storage {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Error> {
        use std::ops::Bound;
        let from = match range.start_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(n) => *n,
            Bound::Excluded(n) => n.saturating_sub(1),
            Bound::Unbounded => u64::MAX,
        };
        if matches!(range.end_bound(), Bound::Excluded(0)) {
            return Ok(Vec::new());
        }
        let (from, to) = (i64::try_from(from).unwrap_or(i64::MAX), i64::try_from(to).unwrap_or(i64::MAX));
        let rows: Vec<String> = self.with(|s| {
            let mut stmt =
                s.conn().prepare_cached("SELECT entry FROM raft_log WHERE idx BETWEEN ?1 AND ?2 ORDER BY idx")?;
            let rows = stmt.query_map([from, to], |r| r.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        rows.iter().map(|t| serde_json::from_str(t).map_err(|e| io("a log entry", e))).collect()
    }
}

impl RaftLogStorage<TypeConfig> for Storage {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Error> {
        let last_purged: Option<LogId<u64>> = self.meta("purged")?;
        let last: Option<String> = self.with(|s| {
            Ok(s.conn()
                .query_row("SELECT entry FROM raft_log ORDER BY idx DESC LIMIT 1", [], |r| r.get(0))
                .optional()?)
        })?;
        let last = last
            .map(|t| serde_json::from_str::<Entry<TypeConfig>>(&t).map_err(|e| io("a log entry", e)))
            .transpose()?
            .map(|e| e.log_id);
        Ok(LogState { last_log_id: last.or(last_purged), last_purged_log_id: last_purged })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Error> {
        self.put_meta("vote", vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Error> {
        self.meta("vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), Error> {
        self.put_meta("committed", &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, Error> {
        Ok(self.meta::<Option<LogId<u64>>>("committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let rows: Vec<(i64, String)> = entries
            .into_iter()
            .map(|e| {
                Ok((
                    i64::try_from(e.log_id.index).unwrap_or(i64::MAX),
                    serde_json::to_string(&e).map_err(|e| io("an entry", e))?,
                ))
            })
            .collect::<Result<_, Error>>()?;
        let written = self.with(|s| {
            s.durably(|tx| {
                for (idx, entry) in &rows {
                    tx.execute(
                        "INSERT OR REPLACE INTO raft_log (idx, entry) VALUES (?1, ?2)",
                        rusqlite::params![idx, entry],
                    )?;
                }
                Ok(())
            })
        });
        callback.log_io_completed(written.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        written
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        let from = i64::try_from(log_id.index).unwrap_or(i64::MAX);
        self.with(|s| s.durably(|tx| Ok(tx.execute("DELETE FROM raft_log WHERE idx >= ?1", [from]).map(|_| ())?)))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        let upto = i64::try_from(log_id.index).unwrap_or(i64::MAX);
        let text = serde_json::to_string(&log_id).map_err(|e| io("purged", e))?;
        self.with(|s| {
            s.durably(|tx| {
                tx.execute("INSERT OR REPLACE INTO raft_meta (key, value) VALUES ('purged', ?1)", [&text])?;
                tx.execute("DELETE FROM raft_log WHERE idx <= ?1", [upto])?;
                Ok(())
            })
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Storage {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Error> {
        let machine = self.machine()?;
        let data = serde_json::to_vec(&machine).map_err(|e| io("a snapshot", e))?;
        let id = machine.last_applied.map_or_else(|| "empty".to_string(), |l| format!("{}-{}", l.leader_id, l.index));
        let meta =
            SnapshotMeta { last_log_id: machine.last_applied, last_membership: machine.membership, snapshot_id: id };
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for Storage {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), Error> {
        let m = self.machine()?;
        Ok((m.last_applied, m.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<LeaseAnswer>, Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut machine = self.machine()?;
        let mut answers = Vec::new();
        for entry in entries {
            machine.last_applied = Some(entry.log_id);
            answers.push(match entry.payload {
                EntryPayload::Blank => LeaseAnswer::None,
                EntryPayload::Normal(request) => machine.lease.apply(&request),
                EntryPayload::Membership(m) => {
                    machine.membership = StoredMembership::new(Some(entry.log_id), m);
                    LeaseAnswer::None
                }
            });
        }
        self.put_meta("machine", &machine)?;
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Error> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Error> {
        let mut machine: Machine = serde_json::from_slice(snapshot.get_ref()).map_err(|e| io("a snapshot", e))?;
        machine.last_applied = meta.last_log_id;
        machine.membership = meta.last_membership.clone();
        self.put_meta("machine", &machine)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Error> {
        Ok(Some(self.build_snapshot().await?))
    }
}
