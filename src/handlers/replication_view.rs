//! The replication part of `show failover`: how this node replicates (the guide's
//! schedule, continuous or synchronous), how its stream from its primary stands (state,
//! lag in changes and time, the last change applied), the streams it feeds (each
//! follower and its lag), and, on a primary, its synchronous gate. All of it from what
//! the daemon last recorded (`store::stream`).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ha::{Mode, ReplicationMode, Settings, span};
use crate::report::CmdError;
use crate::store::{FeedState, GateRecord, Store, StreamFollower, StreamState, StreamStatus};

/// Reports older than this say the daemon may not be running.
const REPORT_STALE_MS: i64 = 5000;

/// How this node replicates, and its streams both ways.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct Replication {
    replication_mode: String,
    /// The stream from the primary: `off`, `connecting`, `streaming`, `syncing`,
    /// `retrying`; and from where, and why.
    replication_state: String,
    replication_detail: Option<String>,
    /// Changes of the primary not applied here yet, and for how long this node has
    /// lacked some (0 when level); the last change applied here. While it streams only.
    lag_changes: Option<i64>,
    lag_ms: Option<i64>,
    last_applied_seq: Option<i64>,
    /// The streams this node feeds: each follower, the last change it applied and how
    /// many of this node's it lacks.
    stream_followers: Vec<FollowerLag>,
    /// This primary's synchronous gate: `off`, `synchronous` or `degraded`, for which
    /// standby, and why it degraded.
    synchronous: Option<GateRecord>,
}

/// A follower of this node's stream.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct FollowerLag {
    #[serde(flatten)]
    follower: StreamFollower,
    lag_changes: i64,
}

impl Replication {
    /// Of a node with settings `s`, at `now`. The lag of the streams it feeds waits for
    /// where its change log ends ([`Replication::with_head`]).
    pub fn of(s: &Settings, store: &Store, now: DateTime<Utc>) -> Result<Replication, CmdError> {
        let mut r = Replication {
            replication_mode: s.replication_mode.to_string(),
            replication_state: StreamState::Off.to_string(),
            stream_followers: store
                .stream_followers()?
                .into_iter()
                .map(|f| FollowerLag { lag_changes: 0, follower: f })
                .collect(),
            synchronous: store.gate()?,
            ..Replication::default()
        };
        if s.mode == Mode::Secondary && s.replication_mode != ReplicationMode::Scheduled {
            r.stream(store.stream_status()?, now);
        }
        Ok(r)
    }

    /// Whether this node feeds streams: only their lag needs where its change log ends.
    pub fn feeds(&self) -> bool {
        !self.stream_followers.is_empty()
    }

    /// Each stream follower's lag behind a change log that ends at change `head`.
    pub fn with_head(mut self, head: i64) -> Replication {
        for f in &mut self.stream_followers {
            f.lag_changes = (head - f.follower.applied_seq).max(0);
        }
        self
    }

    /// The stream's fields, from how it last stood (`None`: none ever ran).
    fn stream(&mut self, status: Option<StreamStatus>, now: DateTime<Utc>) {
        let Some(st) = status.filter(|st| st.state != StreamState::Off) else { return };
        let ms_since = |at: &str| at.parse::<DateTime<Utc>>().map(|t| (now - t).num_milliseconds().max(0)).ok();
        self.replication_state = st.state.to_string();
        let mut detail = format!("from {}", st.peer);
        if !st.detail.is_empty() {
            detail.push_str(&format!(": {}", st.detail));
        }
        if let Some(age) = ms_since(&st.updated_at).filter(|a| *a > REPORT_STALE_MS) {
            detail.push_str(&format!("; last reported {} ago: is the daemon running?", span(age / 1000)));
        }
        self.replication_detail = Some(detail);
        self.lag_changes = Some((st.peer_seq - st.applied_seq).max(0));
        self.lag_ms = Some(st.behind_since.as_deref().and_then(ms_since).unwrap_or(0));
        self.last_applied_seq = Some(st.applied_seq);
    }

    /// The `Replication` row.
    pub fn summary(&self) -> String {
        if self.replication_mode == ReplicationMode::Scheduled.as_str() {
            return "scheduled: a sync at the start time and every run-every".into();
        }
        if self.replication_state == StreamState::Off.as_str() {
            return format!(
                "{}: no stream runs (only a standby secondary with high availability enabled follows its primary)",
                self.replication_mode
            );
        }
        let mut text = format!("{}, {}", self.replication_mode, self.replication_state);
        if let Some(detail) = &self.replication_detail {
            text.push_str(&format!(" {detail}"));
        }
        match (self.lag_changes, self.lag_ms, self.last_applied_seq) {
            (Some(0), _, Some(seq)) => text.push_str(&format!("; level with the primary at change {seq}")),
            (Some(n), Some(ms), Some(seq)) => {
                text.push_str(&format!("; {n} changes behind for {ms} ms (applied up to change {seq})"))
            }
            _ => {}
        }
        text
    }

    /// The rows of the streams this node feeds and of its synchronous gate.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows: Vec<(&'static str, String)> =
            self.stream_followers.iter().map(|f| ("Follower", f.text())).collect();
        if let Some(g) = self.synchronous.as_ref().filter(|g| g.state != "off") {
            let standby = g.standby.as_deref().unwrap_or("?");
            let text = match &g.reason {
                Some(why) if g.state == "degraded" => format!("DEGRADED since {}: {why}", g.updated_at),
                _ => format!("writes are answered once {standby} has them (since {})", g.updated_at),
            };
            rows.push(("Synchronous", text));
        }
        rows
    }
}

impl FollowerLag {
    fn text(&self) -> String {
        let f = &self.follower;
        let name = if f.hostname.is_empty() { f.node_id.as_str() } else { f.hostname.as_str() };
        let lag = match self.lag_changes {
            0 => "level".to_string(),
            n => format!("{n} changes behind"),
        };
        let when = f.applied_at.as_deref().unwrap_or(&f.connected_at);
        match f.state {
            FeedState::Streaming => {
                format!("{name} at {}: streaming, applied change {} ({lag}) at {when}", f.address, f.applied_seq)
            }
            FeedState::Ended => format!(
                "{name} at {}: stream ended {}, last applied change {} ({lag})",
                f.address, f.updated_at, f.applied_seq
            ),
        }
    }
}
