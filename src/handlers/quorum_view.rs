//! The quorum part of `show failover`: the witness this node names, and the consensus
//! engine as the daemon last wrote it (its state, term and leader, each other voter and
//! whether it answers, the primary lease and which standby it lets take over). From
//! `quorum::store`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ha::{Mode, Settings};
use crate::quorum::QuorumStatus;
use crate::quorum::store::Storage;

/// Reports older than this say the daemon may not be running.
const REPORT_STALE_MS: i64 = 5000;

/// The witness and the engine.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct QuorumView {
    witness: Option<String>,
    quorum: Option<QuorumStatus>,
}

impl QuorumView {
    /// Of a node with settings `s` in `dir`.
    pub fn of(s: &Settings, dir: &std::path::Path) -> QuorumView {
        let runs = s.mode == Mode::Witness || s.witness.is_some();
        let quorum = runs.then(|| Storage::open(dir).ok().and_then(|st| st.status().ok().flatten())).flatten();
        QuorumView { witness: s.witness.as_ref().map(ToString::to_string), quorum }
    }

    /// The `Witness` and `Quorum` rows.
    pub fn rows(&self, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        let Some(q) = &self.quorum else {
            if let Some(w) = &self.witness {
                rows.push(("Witness", format!("{w}: no quorum engine has reported yet (is the daemon running?)")));
            }
            return rows;
        };
        let ago = |at: &str| at.parse::<DateTime<Utc>>().map(|t| (now - t).num_milliseconds().max(0)).ok();
        let leader = q.leader.map_or_else(|| "no leader".to_string(), |l| format!("leader {l:016x}"));
        let mut engine =
            format!("{} voters, term {}, {leader}; this node {:016x} is {}", q.voters.len(), q.term, q.id, q.state);
        if q.voters.is_empty() {
            engine = "not formed yet (the secondary forms it once its primary and witness answer)".into();
        }
        if ago(&q.updated_at).is_some_and(|a| a > REPORT_STALE_MS) {
            engine.push_str(&format!("; last reported {}: is the daemon running?", q.updated_at));
        }
        rows.push(("Quorum", engine));
        for (id, link) in &q.links {
            let at = link.address.clone().unwrap_or_else(|| "?".into());
            let name = link.hostname.as_ref().map(|h| format!("{h} ")).unwrap_or_default();
            let id = format!("{name}{id:016x}");
            // A follower only hears its leader; a leader calls the others.
            let heard = link.heard_at.as_deref().and_then(ago).is_some_and(|a| a < REPORT_STALE_MS);
            let text = match (&link.error, &link.ok_at, heard) {
                (_, _, true) => format!("voter {id}: reachable (heard {})", link.heard_at.as_deref().unwrap_or("")),
                (None, Some(ok), _) => format!("voter {id} at {at}: reachable (answered {ok})"),
                (Some(e), _, _) => format!("voter {id} at {at}: UNREACHABLE: {e}"),
                (None, None, _) => format!("voter {id}: not heard from yet"),
            };
            rows.push(("Voter", text));
        }
        let lease = &q.lease;
        let holder = lease.holder.clone().unwrap_or_else(|| "nobody".into());
        let synchronous = match lease.synchronous.as_ref().map(|s| s.standby.as_deref()) {
            None => String::new(),
            Some(Some(standby)) => format!("; synchronous: only {standby} may take over"),
            Some(None) => "; synchronous replication DEGRADED: no standby may take over without force".into(),
        };
        rows.push(("Lease", format!("held by {holder} at epoch {}{synchronous}", lease.epoch)));
        rows
    }
}
