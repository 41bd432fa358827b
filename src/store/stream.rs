//! How this node's stream from its primary stands (`replication mode continuous`), as
//! the daemon that runs it last wrote it: its state and why, the change numbers applied
//! here and seen on the peer, since when this node is behind, when it last was level.
//! And the other way, the streams this node feeds: each follower, what it last said it
//! applied and when. The daemon writes them when a state changes and at most once a
//! second otherwise; `show failover` reads them. And each finished second of the stream
//! (`stream_seconds`: entries, bytes, a commit-to-apply histogram), for
//! `show replication`.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError};
use crate::words::word_enum;

word_enum!(
    /// Where a stream stands.
    StreamState { /// Not following anyone (scheduled mode, or not a standby).
    Off = "off", /// Reaching the primary.
    Connecting = "connecting", /// Following: applying what comes as it commits.
    Streaming = "streaming", /// A sync is bringing this node on where the stream could not.
    Syncing = "syncing", /// It failed; it tries again (the detail says why and when).
    Retrying = "retrying" }
);

/// The stream's last reported state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StreamStatus {
    /// The primary followed (`HOST[:PORT]`).
    pub peer: String,
    pub state: StreamState,
    /// Why it is in that state (a failure, a fallback), or what it is doing.
    pub detail: String,
    /// The last change applied here.
    pub applied_seq: i64,
    /// The last change the primary said it has.
    pub peer_seq: i64,
    /// Since when this node has lacked some of the primary's changes (`None`: level).
    pub behind_since: Option<String>,
    /// When this node last held every change of the primary.
    pub caught_up_at: Option<String>,
    /// Entries and changeset bytes applied since the stream connected.
    pub entries: i64,
    pub bytes: i64,
    pub connected_at: Option<String>,
    /// When the daemon wrote this.
    pub updated_at: String,
}

word_enum!(
    /// Where a stream this node feeds stands.
    FeedState { /// The follower is connected.
    Streaming = "streaming", /// Its connection ended.
    Ended = "ended" }
);

/// A follower of this node's change log, as its stream last stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct StreamFollower {
    pub node_id: String,
    pub hostname: String,
    /// Where it connects from.
    pub address: String,
    pub state: FeedState,
    /// The last change it said it applied, and when.
    pub applied_seq: i64,
    pub applied_at: Option<String>,
    pub connected_at: String,
    pub updated_at: String,
}

/// How this primary's synchronous gate last stood (written when it changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GateRecord {
    /// `off`, `synchronous` or `degraded`.
    pub state: String,
    pub standby: Option<String>,
    /// Why it degraded.
    pub reason: Option<String>,
    pub updated_at: String,
}

/// One second of this node's stream from its primary: what it applied and how long
/// each change took from the primary's commit (`replication::lag`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LagSecond {
    /// Unix time, seconds.
    pub second: i64,
    pub entries: i64,
    pub bytes: i64,
    /// The longest commit-to-apply time of the second, ms.
    pub max_ms: i64,
    /// Histogram bucket -> entries (`replication::lag::bucket`).
    pub histogram: std::collections::BTreeMap<u16, u32>,
}

/// Seconds of the stream kept, for `show replication` and the benchmarks.
const KEEP_SECONDS: i64 = 15 * 60;

/// Followers whose stream ended longer ago than this are forgotten.
const FORGET_FOLLOWERS_AFTER_HOURS: i64 = 24;

impl Store {
    /// Records how a follower's stream stands (and forgets those ended a day ago).
    pub fn put_stream_follower(&mut self, f: &StreamFollower) -> Result<(), StoreError> {
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT OR REPLACE INTO stream_followers
                 (node_id, hostname, address, state, applied_seq, applied_at, connected_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            f.node_id,
            f.hostname,
            f.address,
            f.state,
            f.applied_seq,
            f.applied_at,
            f.connected_at,
            f.updated_at
        ])?;
        let cutoff = (chrono::Utc::now() - chrono::Duration::hours(FORGET_FOLLOWERS_AFTER_HOURS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        conn.prepare_cached("DELETE FROM stream_followers WHERE updated_at < ?1")?.execute([cutoff])?;
        Ok(())
    }

    /// The followers of this node's stream, by host name.
    pub fn stream_followers(&self) -> Result<Vec<StreamFollower>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT node_id, hostname, address, state, applied_seq, applied_at, connected_at, updated_at
               FROM stream_followers ORDER BY hostname, node_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StreamFollower {
                node_id: r.get(0)?,
                hostname: r.get(1)?,
                address: r.get(2)?,
                state: r.get(3)?,
                applied_seq: r.get(4)?,
                applied_at: r.get(5)?,
                connected_at: r.get(6)?,
                updated_at: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records how the synchronous gate stands.
    pub fn put_gate(&mut self, g: &GateRecord) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO sync_gate (id, state, standby, reason, updated_at) VALUES (1, ?1, ?2, ?3, ?4)",
            )?
            .execute(params![g.state, g.standby, g.reason, g.updated_at])?;
        Ok(())
    }

    /// How the synchronous gate last stood, if it ever did.
    pub fn gate(&self) -> Result<Option<GateRecord>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached("SELECT state, standby, reason, updated_at FROM sync_gate WHERE id = 1")?
            .query_row([], |r| {
                Ok(GateRecord { state: r.get(0)?, standby: r.get(1)?, reason: r.get(2)?, updated_at: r.get(3)? })
            })
            .optional()?)
    }

    /// Records finished seconds of the stream (and forgets those older than 15 minutes).
    pub fn put_lag_seconds(&mut self, seconds: &[LagSecond]) -> Result<(), StoreError> {
        let Some(last) = seconds.last() else { return Ok(()) };
        self.durably(|tx| {
            for s in seconds {
                let histogram = serde_json::to_string(&s.histogram).unwrap_or_default();
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO stream_seconds (second, entries, bytes, max_ms, histogram)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![s.second, s.entries, s.bytes, s.max_ms, histogram])?;
            }
            tx.execute("DELETE FROM stream_seconds WHERE second < ?1", [last.second - KEEP_SECONDS])?;
            Ok(())
        })
    }

    /// The recorded seconds of the stream from `since` (Unix seconds) on, oldest first.
    pub fn lag_seconds(&self, since: i64) -> Result<Vec<LagSecond>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT second, entries, bytes, max_ms, histogram FROM stream_seconds WHERE second >= ?1 ORDER BY second",
        )?;
        let rows = stmt.query_map([since], |r| {
            let text: String = r.get(4)?;
            Ok(LagSecond {
                second: r.get(0)?,
                entries: r.get(1)?,
                bytes: r.get(2)?,
                max_ms: r.get(3)?,
                histogram: serde_json::from_str(&text).unwrap_or_default(),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records how the stream stands.
    pub fn put_stream_status(&mut self, s: &StreamStatus) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT OR REPLACE INTO stream_status
                     (id, peer, state, detail, applied_seq, peer_seq, behind_since, caught_up_at, entries, bytes,
                      connected_at, updated_at)
                 VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?
            .execute(params![
                s.peer,
                s.state,
                s.detail,
                s.applied_seq,
                s.peer_seq,
                s.behind_since,
                s.caught_up_at,
                s.entries,
                s.bytes,
                s.connected_at,
                s.updated_at
            ])?;
        Ok(())
    }

    /// How the stream last stood, if one ever ran here.
    pub fn stream_status(&self) -> Result<Option<StreamStatus>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT peer, state, detail, applied_seq, peer_seq, behind_since, caught_up_at, entries, bytes,
                        connected_at, updated_at FROM stream_status WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok(StreamStatus {
                    peer: r.get(0)?,
                    state: r.get(1)?,
                    detail: r.get(2)?,
                    applied_seq: r.get(3)?,
                    peer_seq: r.get(4)?,
                    behind_since: r.get(5)?,
                    caught_up_at: r.get(6)?,
                    entries: r.get(7)?,
                    bytes: r.get(8)?,
                    connected_at: r.get(9)?,
                    updated_at: r.get(10)?,
                })
            })
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_kept_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.stream_status().unwrap(), None);
        let mut s = StreamStatus {
            peer: "core-a:22".into(),
            state: StreamState::Streaming,
            detail: String::new(),
            applied_seq: 5,
            peer_seq: 7,
            behind_since: Some("2026-12-01T10:00:00.000Z".into()),
            caught_up_at: None,
            entries: 3,
            bytes: 100,
            connected_at: Some("2026-12-01T09:59:00.000Z".into()),
            updated_at: "2026-12-01T10:00:01.000Z".into(),
        };
        store.put_stream_status(&s).unwrap();
        assert_eq!(store.stream_status().unwrap().as_ref(), Some(&s));
        s.state = StreamState::Retrying;
        store.put_stream_status(&s).unwrap();
        assert_eq!(store.stream_status().unwrap().unwrap().state, StreamState::Retrying);
    }
}
