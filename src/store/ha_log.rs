//! The HA module log (the guide's "HighAvailability" module log): every heartbeat
//! outcome and HA decision, timestamped, kept to the newest [`KEPT`] lines; and what the
//! heartbeat last saw of each peer (reachability, what its hello said, a configuration
//! alarm, the chain above it), for `show failover` and the heartbeat's next probe.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::chain::{ChainLink, MAX_LINKS};
use super::{Store, StoreError, now_millis};

/// Lines the HA module log keeps.
const KEPT: i64 = 20_000;

/// One line of the HA module log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HaLogEntry {
    /// When (RFC 3339, UTC, milliseconds).
    pub at: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    pub message: String,
}

/// What the heartbeat last saw of a peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PeerStatus {
    /// The peer as configured (`HOST[:PORT]`).
    pub host: String,
    /// `primary` (this secondary's primary-host) or `peer` (a trusted host a primary watches).
    pub role: String,
    /// When it was last probed.
    pub checked_at: String,
    /// Whether the last probe reached it.
    pub reachable: bool,
    /// Consecutive failed probes.
    pub failures: u32,
    /// Why the last probe failed.
    pub error: String,
    /// When a probe last reached it, and what it said then.
    pub last_seen: Option<String>,
    pub hostname: Option<String>,
    pub mode: Option<String>,
    pub node_status: Option<String>,
    pub epoch: Option<u64>,
    pub version: Option<String>,
    /// Its clock minus ours, in milliseconds.
    pub offset_ms: Option<i64>,
    /// Its status page (the heartbeat's second signal), as last advertised.
    pub status_url: Option<String>,
    /// Its node id, as its last hello said.
    pub node_id: Option<String>,
    /// A configuration error that keeps the heartbeat from telling whether it is alive.
    pub alarm: Option<String>,
    /// SHA-256 of its status page's TLS certificate, as it advertised it.
    pub status_cert: Option<String>,
    /// The nodes above it in the chain, as its last hello said.
    pub upstream: Vec<ChainLink>,
}

impl Store {
    /// Appends a line to the HA module log (not synced: a log, not a decision).
    pub fn ha_log(&mut self, level: &str, message: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let id = conn
            .prepare_cached("INSERT INTO ha_log (at, level, message) VALUES (?1, ?2, ?3)")?
            .insert(params![now_millis(), level, message])?;
        if id % 1000 == 0 {
            conn.execute("DELETE FROM ha_log WHERE id <= ?1", [id - KEPT])?;
        }
        Ok(())
    }

    /// The HA module log, oldest first; `last` keeps only the newest lines.
    pub fn ha_log_entries(&self, last: Option<u64>) -> Result<Vec<HaLogEntry>, StoreError> {
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt = self.conn().prepare_cached(
            "SELECT at, level, message FROM (SELECT * FROM ha_log ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?;
        let rows =
            stmt.query_map([limit], |r| Ok(HaLogEntry { at: r.get(0)?, level: r.get(1)?, message: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records what a probe of a peer found.
    pub fn put_peer_status(&mut self, p: &PeerStatus) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO peer_status
                     (host, role, checked_at, reachable, failures, error, last_seen, hostname, mode,
                      node_status, epoch, version, offset_ms, status_url, node_id, alarm, status_cert, upstream)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
            )?
            .execute(params![
                p.host,
                p.role,
                p.checked_at,
                p.reachable,
                p.failures,
                p.error,
                p.last_seen,
                p.hostname,
                p.mode,
                p.node_status,
                p.epoch.and_then(|e| i64::try_from(e).ok()),
                p.version,
                p.offset_ms,
                p.status_url,
                p.node_id,
                p.alarm,
                p.status_cert,
                serde_json::to_string(&p.upstream.iter().take(MAX_LINKS).collect::<Vec<_>>())
                    .unwrap_or_else(|_| "[]".into())
            ])?;
        Ok(())
    }

    /// What the heartbeat last saw of `host`.
    pub fn peer_status(&self, host: &str) -> Result<Option<PeerStatus>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {PEER_COLUMNS} FROM peer_status WHERE host = ?1"))?
            .query_row([host], peer)
            .optional()?)
    }

    /// What the heartbeat last saw of every peer it probes.
    pub fn peer_statuses(&self) -> Result<Vec<PeerStatus>, StoreError> {
        let mut stmt =
            self.conn().prepare_cached(&format!("SELECT {PEER_COLUMNS} FROM peer_status ORDER BY role, host"))?;
        let rows = stmt.query_map([], peer)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets peers no longer probed (another primary-host, an untrusted peer).
    pub fn forget_peers_except(&mut self, keep: &[String]) -> Result<(), StoreError> {
        let all: Vec<String> = self.peer_statuses()?.into_iter().map(|p| p.host).collect();
        for host in all.iter().filter(|h| !keep.contains(h)) {
            self.conn().execute("DELETE FROM peer_status WHERE host = ?1", [host])?;
        }
        Ok(())
    }
}

const PEER_COLUMNS: &str = "host, role, checked_at, reachable, failures, error, last_seen, hostname, mode, \
     node_status, epoch, version, offset_ms, status_url, node_id, alarm, status_cert, upstream";

fn peer(r: &rusqlite::Row) -> rusqlite::Result<PeerStatus> {
    Ok(PeerStatus {
        host: r.get(0)?,
        role: r.get(1)?,
        checked_at: r.get(2)?,
        reachable: r.get(3)?,
        failures: r.get(4)?,
        error: r.get(5)?,
        last_seen: r.get(6)?,
        hostname: r.get(7)?,
        mode: r.get(8)?,
        node_status: r.get(9)?,
        epoch: r.get::<_, Option<i64>>(10)?.and_then(|e| u64::try_from(e).ok()),
        version: r.get(11)?,
        offset_ms: r.get(12)?,
        status_url: r.get(13)?,
        node_id: r.get(14)?,
        alarm: r.get(15)?,
        status_cert: r.get(16)?,
        upstream: serde_json::from_str(&r.get::<_, String>(17)?).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_order_and_peers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        store.ha_log("info", "one").unwrap();
        store.ha_log("warning", "two").unwrap();
        let lines: Vec<String> = store.ha_log_entries(None).unwrap().into_iter().map(|e| e.message).collect();
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(store.ha_log_entries(Some(1)).unwrap()[0].message, "two");
        let p = PeerStatus {
            host: "core-a:2222".into(),
            role: "primary".into(),
            checked_at: now_millis(),
            reachable: true,
            epoch: Some(3),
            offset_ms: Some(-12),
            alarm: Some("not trusted".into()),
            upstream: vec![ChainLink { hostname: "core-z".into(), ..ChainLink::default() }],
            ..PeerStatus::default()
        };
        store.put_peer_status(&p).unwrap();
        assert_eq!(store.peer_status("core-a:2222").unwrap(), Some(p));
        store.forget_peers_except(&[]).unwrap();
        assert!(store.peer_statuses().unwrap().is_empty());
    }
}
