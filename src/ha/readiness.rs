//! Whether a standby may promote itself: only with Core data of its primary that is
//! recent enough. A node that never completed a sync from this primary, or whose last
//! one started longer ago than `heartbeat max-staleness`, stays standby when the
//! primary fails (Patroni's `maximum_lag_on_failover` in spirit): promoting it would
//! answer devices from data that lacks their enrolments and check-ins. A person can
//! still promote it by hand, told what it would lose.

use chrono::{DateTime, Utc};

use super::Settings;

/// How this node's Core data stands against its primary's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Its last sync from the primary started `age_s` seconds ago, within the bound.
    Ready { at: DateTime<Utc>, age_s: i64 },
    /// It never completed a sync from this primary (perhaps from another node).
    NeverSynced { other: Option<String> },
    /// Its last sync from the primary started longer ago than the bound.
    TooStale { at: DateTime<Utc>, age_s: i64 },
}

impl Readiness {
    /// Of a secondary with settings `s` following `primary`, whose node id the
    /// heartbeat saw as `primary_node` (when it ever did), at `now`.
    pub fn of(s: &Settings, primary: &str, primary_node: Option<&str>, now: DateTime<Utc>) -> Readiness {
        let same = match (primary_node, &s.last_sync_node) {
            (Some(theirs), Some(synced)) => theirs == synced,
            _ => s.last_sync_peer.as_deref() == Some(primary),
        };
        match s.last_sync_at {
            Some(at) if same => {
                let age = (now - at).num_milliseconds().max(0);
                let age_s = age / 1000;
                if age > s.max_staleness_seconds().saturating_mul(1000) {
                    Readiness::TooStale { at, age_s }
                } else {
                    Readiness::Ready { at, age_s }
                }
            }
            _ => Readiness::NeverSynced { other: s.last_sync_peer.clone() },
        }
    }

    /// Whether an automatic promotion may go ahead.
    pub fn ready(&self) -> bool {
        matches!(self, Readiness::Ready { .. })
    }

    /// What this node's data lacks, in a sentence about `primary`.
    pub fn describe(&self, s: &Settings, primary: &str) -> String {
        let bound = format!("{} {}", s.max_staleness.0, s.max_staleness.1);
        // A stream records the last moment this node held every change of the primary.
        let synced = match s.replication_mode {
            super::ReplicationMode::Scheduled => format!("its last sync from {primary} started"),
            _ => format!("it last held every change of {primary} (streaming, or its last sync)"),
        };
        match self {
            Readiness::Ready { at, age_s } => format!(
                "{synced} {} ({} ago): writes made on {primary} after that are not here",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                span(*age_s)
            ),
            Readiness::NeverSynced { other: Some(other) } if other != primary => format!(
                "it has never completed a sync from {primary} (its last sync was from {other}): it has none of \
                 {primary}'s Core data"
            ),
            Readiness::NeverSynced { .. } => {
                format!("it has never completed a sync from {primary}: it has none of its Core data")
            }
            Readiness::TooStale { at, age_s } => format!(
                "{synced} {} ({} ago), longer ago than heartbeat max-staleness {bound}: \
                 writes made on {primary} since then are not here",
                at.format("%Y-%m-%d %H:%M:%S UTC"),
                span(*age_s)
            ),
        }
    }
}

/// A duration in the largest unit that fits (`3 h 12 min`, `45 s`).
pub fn span(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn synced(peer: &str, node: &str, when: &str) -> Settings {
        Settings {
            last_sync_peer: Some(peer.into()),
            last_sync_node: Some(node.into()),
            last_sync_at: Some(at(when)),
            ..Settings::default()
        }
    }

    #[test]
    fn a_recent_sync_from_this_primary_is_ready_and_an_old_one_is_not() {
        let s = synced("core-a:22", "aaaa", "2026-12-01T10:00:00Z");
        let now = at("2026-12-01T12:59:00Z");
        assert!(Readiness::of(&s, "core-a:22", Some("aaaa"), now).ready());
        let later = at("2026-12-01T13:00:01Z");
        let r = Readiness::of(&s, "core-a:22", Some("aaaa"), later);
        assert_eq!(r, Readiness::TooStale { at: at("2026-12-01T10:00:00Z"), age_s: 3 * 3600 + 1 });
        assert!(r.describe(&s, "core-a:22").contains("longer ago than heartbeat max-staleness 3 hours"));
    }

    #[test]
    fn a_sync_from_another_node_or_none_is_never_ready() {
        let s = synced("core-c:22", "cccc", "2026-12-01T10:00:00Z");
        let now = at("2026-12-01T10:01:00Z");
        let r = Readiness::of(&s, "core-a:22", Some("aaaa"), now);
        assert_eq!(r, Readiness::NeverSynced { other: Some("core-c:22".into()) });
        assert!(r.describe(&s, "core-a:22").contains("its last sync was from core-c:22"), "{}", r.describe(&s, "x"));
        assert!(!Readiness::of(&Settings::default(), "core-a:22", None, now).ready());
        // Without the primary's node id, the host it was synced from decides.
        assert!(Readiness::of(&synced("core-a:22", "aaaa", "2026-12-01T10:00:00Z"), "core-a:22", None, now).ready());
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(45), "45 s");
        assert_eq!(span(125), "2 min 5 s");
        assert_eq!(span(3 * 3600 + 720), "3 h 12 min");
        assert_eq!(span(2 * 86_400 + 3600), "2 d 1 h");
    }
}
