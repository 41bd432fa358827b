//! Schema migrations of the system database, applied in order; `PRAGMA user_version`
//! records how far a file has come.

use rusqlite::Connection;

use super::StoreError;

/// The schema version this coresh writes.
pub const SCHEMA_VERSION: i64 = 11;

/// Each step takes the schema from version `index` to `index + 1`.
const STEPS: &[&str] = &[
    // 1: settings, failover history, audit log, sync history.
    "CREATE TABLE settings (
         key        TEXT PRIMARY KEY,
         value      TEXT NOT NULL,
         updated_at TEXT NOT NULL
     );
     CREATE TABLE failover_history (
         id     INTEGER PRIMARY KEY,
         at     TEXT NOT NULL,
         event  TEXT NOT NULL,
         old    TEXT NOT NULL,
         new    TEXT NOT NULL,
         reason TEXT NOT NULL,
         actor  TEXT NOT NULL
     );
     CREATE TABLE audit (
         id      INTEGER PRIMARY KEY,
         at      TEXT NOT NULL,
         user    TEXT NOT NULL,
         source  TEXT NOT NULL,
         mode    TEXT NOT NULL,
         command TEXT NOT NULL,
         outcome TEXT NOT NULL
     );
     CREATE TABLE sync_history (
         id          INTEGER PRIMARY KEY,
         started_at  TEXT NOT NULL,
         finished_at TEXT,
         peer        TEXT NOT NULL,
         kind        TEXT NOT NULL,
         result      TEXT NOT NULL,
         detail      TEXT NOT NULL DEFAULT ''
     );",
    // 2: trusted hosts (the guide's Manage Trusted Hosts).
    "CREATE TABLE trusted_hosts (
         host     TEXT PRIMARY KEY,
         key      TEXT NOT NULL,
         added_at TEXT NOT NULL
     );",
    // 3: what each sync moved.
    "ALTER TABLE sync_history ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE sync_history ADD COLUMN rows INTEGER NOT NULL DEFAULT 0;",
    // 4: the HA module log and what the heartbeat last saw of each peer.
    "CREATE TABLE ha_log (
         id      INTEGER PRIMARY KEY,
         at      TEXT NOT NULL,
         level   TEXT NOT NULL,
         message TEXT NOT NULL
     );
     CREATE TABLE peer_status (
         host       TEXT PRIMARY KEY,
         role       TEXT NOT NULL,
         checked_at TEXT NOT NULL,
         reachable  INTEGER NOT NULL,
         failures   INTEGER NOT NULL,
         error      TEXT NOT NULL DEFAULT '',
         last_seen  TEXT,
         hostname   TEXT,
         mode       TEXT,
         node_status TEXT,
         epoch      INTEGER,
         version    TEXT,
         offset_ms  INTEGER,
         status_url TEXT
     );",
    // 5: the notification outbox: every mail is stored before it is sent.
    "CREATE TABLE outbox (
         id           INTEGER PRIMARY KEY,
         created_at   TEXT NOT NULL,
         event        TEXT NOT NULL,
         recipient    TEXT NOT NULL,
         subject      TEXT NOT NULL,
         body         TEXT NOT NULL,
         status       TEXT NOT NULL DEFAULT 'pending',
         attempts     INTEGER NOT NULL DEFAULT 0,
         next_attempt TEXT NOT NULL,
         last_error   TEXT NOT NULL DEFAULT '',
         sent_at      TEXT
     );
     CREATE INDEX outbox_due ON outbox (status, next_attempt);",
    // 6: the operator console: sessions open now, and addresses locked out after
    // failed logins.
    "CREATE TABLE console_sessions (
         id         INTEGER PRIMARY KEY,
         user       TEXT NOT NULL,
         source     TEXT NOT NULL,
         kind       TEXT NOT NULL,
         terminal   TEXT NOT NULL,
         started_at TEXT NOT NULL
     );
     CREATE TABLE login_lockouts (
         address   TEXT PRIMARY KEY,
         locked_at TEXT NOT NULL,
         until_ms  INTEGER NOT NULL,
         failures  INTEGER NOT NULL
     );",
    // 7: what the heartbeat knows of a peer beyond reachability (its node id, a
    // configuration alarm, its status page certificate, the chain above it), and the
    // nodes that follow this one.
    "ALTER TABLE peer_status ADD COLUMN node_id TEXT;
     ALTER TABLE peer_status ADD COLUMN alarm TEXT;
     ALTER TABLE peer_status ADD COLUMN status_cert TEXT;
     ALTER TABLE peer_status ADD COLUMN upstream TEXT NOT NULL DEFAULT '[]';
     CREATE TABLE followers (
         node_id     TEXT PRIMARY KEY,
         hostname    TEXT NOT NULL,
         address     TEXT NOT NULL,
         node_status TEXT NOT NULL,
         epoch       INTEGER NOT NULL,
         followers   TEXT NOT NULL DEFAULT '[]',
         seen_at     TEXT NOT NULL
     );",
    // 8: how this node's stream from its primary stands (replication mode continuous),
    // the streams this node feeds to its followers, and its synchronous gate.
    "CREATE TABLE stream_status (
         id           INTEGER PRIMARY KEY CHECK (id = 1),
         peer         TEXT NOT NULL,
         state        TEXT NOT NULL,
         detail       TEXT NOT NULL,
         applied_seq  INTEGER NOT NULL,
         peer_seq     INTEGER NOT NULL,
         behind_since TEXT,
         caught_up_at TEXT,
         entries      INTEGER NOT NULL,
         bytes        INTEGER NOT NULL,
         connected_at TEXT,
         updated_at   TEXT NOT NULL
     );
     CREATE TABLE stream_followers (
         node_id      TEXT PRIMARY KEY,
         hostname     TEXT NOT NULL,
         address      TEXT NOT NULL,
         state        TEXT NOT NULL,
         applied_seq  INTEGER NOT NULL,
         applied_at   TEXT,
         connected_at TEXT NOT NULL,
         updated_at   TEXT NOT NULL
     );
     CREATE TABLE sync_gate (
         id         INTEGER PRIMARY KEY CHECK (id = 1),
         state      TEXT NOT NULL,
         standby    TEXT,
         reason     TEXT,
         updated_at TEXT NOT NULL
     );",
    // 9: switchovers: the handovers this node took part in (signed by both nodes) and
    // the switchovers a shell asked this node's daemon to run; and the stream's seconds
    // (throughput and lag, for show replication).
    "CREATE TABLE handovers (
         id             TEXT PRIMARY KEY,
         at             TEXT NOT NULL,
         seq            INTEGER NOT NULL,
         checksum       TEXT NOT NULL,
         from_node      TEXT NOT NULL,
         from_host      TEXT NOT NULL,
         from_epoch     INTEGER NOT NULL,
         to_node        TEXT NOT NULL,
         to_host        TEXT NOT NULL,
         to_epoch       INTEGER NOT NULL,
         from_signature TEXT NOT NULL,
         to_signature   TEXT NOT NULL
     );
     CREATE TABLE stream_seconds (
         second    INTEGER PRIMARY KEY,
         entries   INTEGER NOT NULL,
         bytes     INTEGER NOT NULL,
         max_ms    INTEGER NOT NULL,
         histogram TEXT NOT NULL
     );
     CREATE TABLE raft_log (
         idx   INTEGER PRIMARY KEY,
         entry TEXT NOT NULL
     );
     CREATE TABLE raft_meta (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );
     CREATE TABLE switchover_requests (
         id          TEXT PRIMARY KEY,
         asked_at    TEXT NOT NULL,
         asked_by    TEXT NOT NULL,
         dry_run     INTEGER NOT NULL,
         to_host     TEXT,
         taken_at    TEXT,
         report      TEXT,
         finished_at TEXT
     );",
    // 10: how far each syslog server has been sent the HA log and the audit log.
    "CREATE TABLE syslog_cursors (
         target     TEXT PRIMARY KEY,
         ha_log_id  INTEGER NOT NULL,
         audit_id   INTEGER NOT NULL,
         sent       INTEGER NOT NULL DEFAULT 0,
         dropped    INTEGER NOT NULL DEFAULT 0,
         error      TEXT,
         updated_at TEXT NOT NULL
     );",
    // 11: event hooks go through the outbox too: how each entry is delivered (`mail`,
    // `webhook` to the URL in `recipient`, `command` run from the path there).
    "ALTER TABLE outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'mail';",
];

/// Brings a database at `from` up to [`SCHEMA_VERSION`], one transaction per step.
pub fn migrate(conn: &mut Connection, from: i64) -> Result<(), StoreError> {
    migrate_steps(conn, from, STEPS)
}

/// Applies `steps[from..]`, one transaction per step; step `i` takes a database from
/// `user_version` i to i + 1.
pub fn migrate_steps(conn: &mut Connection, from: i64, steps: &[&str]) -> Result<(), StoreError> {
    for (index, sql) in steps.iter().enumerate().skip(usize::try_from(from).unwrap_or(0)) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now > index as i64 {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_match_the_version() {
        assert_eq!(super::STEPS.len() as i64, super::SCHEMA_VERSION);
    }
}
