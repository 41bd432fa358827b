//! The replication chain as this node knows it (primary, secondary, DR node): the nodes
//! above it, as its primary's hello relays them (kept with the peer status of its
//! primary), and the nodes that follow it, recorded from their hellos with what they
//! report of their own followers. `show failover` draws the chain from these, and a DR
//! node asks the primary at the top before it promotes itself.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{PeerStatus, Store, StoreError, now_millis};

/// Links a hello may carry each way; the rest are dropped.
pub const MAX_LINKS: usize = 8;
/// How long a follower that no longer says hello is remembered.
const FORGET_AFTER_HOURS: i64 = 24;

/// One node of the chain, as a neighbour reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChainLink {
    pub hostname: String,
    pub node_id: String,
    /// `primary` or `secondary`.
    pub mode: String,
    /// `standby` or `active`.
    pub node_status: String,
    pub epoch: u64,
    /// Its status page, where a node further down may ask whether it is alive.
    #[serde(default)]
    pub status_url: Option<String>,
    /// SHA-256 of that page's TLS certificate, as the node itself advertised it.
    #[serde(default)]
    pub status_cert: Option<String>,
    /// Whether the reporting node reached it at its last look, and when that was.
    #[serde(default)]
    pub reachable: bool,
    #[serde(default)]
    pub checked_at: String,
}

/// A node that follows this one (its heartbeat or syncs come here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Follower {
    pub node_id: String,
    pub hostname: String,
    /// Where its last hello came from.
    pub address: String,
    pub node_status: String,
    pub epoch: u64,
    /// The nodes that follow it, as it reported them.
    pub followers: Vec<ChainLink>,
    /// When its last hello came.
    pub seen_at: String,
}

impl Store {
    /// Records a follower's hello (and forgets followers silent for a day).
    pub fn record_follower(&mut self, f: &Follower) -> Result<(), StoreError> {
        let theirs = serde_json::to_string(&f.followers.iter().take(MAX_LINKS).collect::<Vec<_>>())
            .unwrap_or_else(|_| "[]".into());
        let conn = self.conn();
        conn.prepare_cached(
            "INSERT OR REPLACE INTO followers (node_id, hostname, address, node_status, epoch, followers, seen_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            f.node_id,
            f.hostname,
            f.address,
            f.node_status,
            i64::try_from(f.epoch).unwrap_or(i64::MAX),
            theirs,
            now_millis()
        ])?;
        let cutoff = (chrono::Utc::now() - chrono::Duration::hours(FORGET_AFTER_HOURS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        conn.prepare_cached("DELETE FROM followers WHERE seen_at < ?1")?.execute([cutoff])?;
        Ok(())
    }

    /// The chain as this node tells it in its hello: above it (its primary as the
    /// heartbeat last saw it, then what that one reported above itself) and below it
    /// (its followers, then theirs), nearest first, at most [`MAX_LINKS`] each way.
    pub fn chain_links(&self) -> Result<(Vec<ChainLink>, Vec<ChainLink>), StoreError> {
        self.chain_links_of(&self.peer_statuses()?)
    }

    /// [`Store::chain_links`] from the peer statuses the caller already read.
    pub fn chain_links_of(&self, peers: &[PeerStatus]) -> Result<(Vec<ChainLink>, Vec<ChainLink>), StoreError> {
        let mut up = Vec::new();
        if let Some(p) = peers.iter().find(|p| p.role == "primary")
            && let Some(node_id) = p.node_id.clone()
        {
            up.push(ChainLink {
                hostname: p.hostname.clone().unwrap_or_else(|| p.host.clone()),
                node_id,
                mode: p.mode.clone().unwrap_or_default(),
                node_status: p.node_status.clone().unwrap_or_default(),
                epoch: p.epoch.unwrap_or(0),
                status_url: p.status_url.clone(),
                status_cert: p.status_cert.clone(),
                reachable: p.reachable,
                checked_at: p.checked_at.clone(),
            });
            up.extend(p.upstream.iter().cloned());
        }
        let mut down = Vec::new();
        for f in self.followers()? {
            down.push(ChainLink {
                hostname: f.hostname,
                node_id: f.node_id,
                mode: "secondary".into(),
                node_status: f.node_status,
                epoch: f.epoch,
                reachable: true,
                checked_at: f.seen_at,
                ..ChainLink::default()
            });
            down.extend(f.followers);
        }
        up.truncate(MAX_LINKS);
        down.truncate(MAX_LINKS);
        Ok((up, down))
    }

    /// The nodes that follow this one, most recently seen first.
    pub fn followers(&self) -> Result<Vec<Follower>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT node_id, hostname, address, node_status, epoch, followers, seen_at
               FROM followers ORDER BY seen_at DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([MAX_LINKS as i64], |r| {
            let theirs: String = r.get(5)?;
            Ok(Follower {
                node_id: r.get(0)?,
                hostname: r.get(1)?,
                address: r.get(2)?,
                node_status: r.get(3)?,
                epoch: r.get::<_, i64>(4).map(|e| u64::try_from(e).unwrap_or(0))?,
                followers: serde_json::from_str(&theirs).unwrap_or_default(),
                seen_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_round_trip_and_are_replaced_by_their_next_hello() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let c = ChainLink { hostname: "core-c".into(), node_id: "cccc".into(), ..ChainLink::default() };
        let mut b = Follower {
            node_id: "bbbb".into(),
            hostname: "core-b".into(),
            address: "10.0.1.2:40000".into(),
            node_status: "standby".into(),
            epoch: 1,
            followers: vec![c],
            seen_at: String::new(),
        };
        store.record_follower(&b).unwrap();
        b.epoch = 2;
        store.record_follower(&b).unwrap();
        let all = store.followers().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].epoch, 2);
        assert_eq!(all[0].followers[0].hostname, "core-c");
    }
}
