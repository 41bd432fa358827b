//! The quorum: which node may be primary, decided by a consensus engine (openraft, not
//! one written here) among the primary, its secondary and a witness. The engine keeps
//! one replicated record, the primary lease ([`Lease`]): who holds it, at which epoch,
//! when its holder last renewed it and for how long. A node may act as primary only
//! while it holds the lease: it takes it over (a promotion, at the next epoch) only when
//! the engine commits that, which needs a majority of the three, and only once the
//! holder's last renewal has expired by the holder's own account plus a margin for the
//! two clocks ([`CLOCK_MARGIN_MS`]). The rules are [`Lease::apply`]: a pure function of
//! the record and the request, so every node's copy agrees. `store` keeps the engine's
//! log, vote and record in the system database.
//!
//! The record also says what the holder's synchronous replication guarantees
//! ([`Synchronous`]): while a synchronous standby confirms every write, only that
//! standby may take the lease over; once the holder answers writes without it
//! (degraded), nobody may, until it is synchronous again. The holder records a
//! degradation before it answers the first write its standby has not confirmed, so a
//! write it acknowledged is never lost by a takeover the engine grants.
//!
//! The daemon runs the engine (`serve::quorum`): its transport, the lease kept by the
//! primary, fencing, promotion through the lease; `failover mode primary` asks for it
//! too (docs/architecture.md, "Quorum").

pub mod store;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The engine's types: requests change the lease; node ids are the nodes' ids as
    /// numbers (the 16 hex digits of `node_id`).
    pub TypeConfig:
        D = LeaseRequest,
        R = LeaseAnswer,
);

/// The engine, as this node runs it.
pub type Raft = openraft::Raft<TypeConfig>;

/// How much the clocks of two nodes may disagree (the guide requires NTP; the heartbeat
/// reports the offset): a lease counts as expired for a taker only this much after its
/// holder's own expiry.
pub const CLOCK_MARGIN_MS: i64 = 500;
/// How long a renewal of the lease lasts.
pub const LEASE_TTL_MS: u32 = 4000;
/// How often the primary renews it.
pub const RENEW_EVERY_MS: u64 = 500;
/// The primary fences itself when its last granted renewal was sent this long ago: the
/// lease time less a safety margin, so it has stopped before any taker may start.
pub const FENCE_AFTER_MS: u64 = LEASE_TTL_MS as u64 - 1000;

/// The engine's timing: a leader's heartbeat every 200 ms, an election after 0.8 to
/// 1.6 s without one.
pub fn config() -> std::sync::Arc<openraft::Config> {
    let c = openraft::Config {
        cluster_name: "coresh-quorum".into(),
        heartbeat_interval: 200,
        election_timeout_min: 800,
        election_timeout_max: 1600,
        ..Default::default()
    };
    // The values above are valid (min < max, heartbeat below both).
    std::sync::Arc::new(c.validate().unwrap_or_default())
}

/// How one voter was last reached from this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VoterLink {
    /// The trusted host that answered as that voter, and its host name.
    pub address: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    pub checked_at: String,
    /// When a call last got an answer.
    pub ok_at: Option<String>,
    /// Why the last call failed, when it did.
    pub error: Option<String>,
    /// When a call of that voter last reached this node (a follower hears its leader).
    #[serde(default)]
    pub heard_at: Option<String>,
}

/// The engine as this node's daemon last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuorumStatus {
    /// This node's engine id.
    pub id: u64,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub state: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub voters: Vec<u64>,
    /// Each other voter, by engine id.
    pub links: std::collections::BTreeMap<u64, VoterLink>,
    pub lease: Lease,
    /// Why this node, a primary, has fenced itself (no lease), while it has.
    #[serde(default)]
    pub fenced: Option<String>,
    pub updated_at: String,
}

/// The engine's number for node `id` (its 16 hex digits).
pub fn engine_id(node_id: &str) -> Option<u64> {
    u64::from_str_radix(node_id, 16).ok()
}

/// The primary lease, as the engine last committed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lease {
    /// The node id of the node that may be primary (none: nobody, e.g. before the first
    /// primary took it).
    pub holder: Option<String>,
    /// The epoch of that primary.
    pub epoch: u64,
    /// The holder's clock at its last renewal, ms since the Unix epoch.
    pub renewed_at_ms: i64,
    /// How long a renewal lasts.
    pub ttl_ms: u32,
    /// The holder's synchronous replication (none: not synchronous, and any standby
    /// may take over once the lease expired, losing what it lacks).
    #[serde(default)]
    pub synchronous: Option<Synchronous>,
}

/// What the holder's synchronous replication guarantees of its standbys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Synchronous {
    /// The node id of the standby that has every write the holder acknowledged; none:
    /// the holder acknowledges writes no standby confirmed (degraded).
    pub standby: Option<String>,
}

/// A change to the lease, with the asker's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum LeaseRequest {
    /// The holder keeps it.
    Renew { node: String, epoch: u64, at_ms: i64 },
    /// `node` becomes primary at `epoch`: when the lease is free or already `node`'s, at
    /// its epoch or later; when another's, at a later epoch once it expired.
    Acquire { node: String, epoch: u64, at_ms: i64, ttl_ms: u32 },
    /// The holder hands it to `to` at `epoch`, past the lease's (a switchover).
    Transfer { from: String, to: String, epoch: u64, at_ms: i64 },
    /// The holder says what its synchronous replication guarantees now.
    Synchronous { node: String, epoch: u64, synchronous: Option<Synchronous> },
}

/// What the engine answered a request, once committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum LeaseAnswer {
    /// Done: the lease as it is now.
    Granted { lease: Lease },
    /// Refused, why, and the lease as it stands.
    Refused { lease: Lease, why: String },
    /// A membership change or a blank entry (no request).
    None,
}

impl Lease {
    /// Whether the lease had expired at `at_ms` by a taker's clock.
    pub fn expired_at(&self, at_ms: i64) -> bool {
        at_ms > self.renewed_at_ms.saturating_add(i64::from(self.ttl_ms)).saturating_add(CLOCK_MARGIN_MS)
    }

    /// Applies `request`: the lease afterwards, and the answer.
    pub fn apply(&mut self, request: &LeaseRequest) -> LeaseAnswer {
        let refused = |lease: &Lease, why: String| LeaseAnswer::Refused { lease: lease.clone(), why };
        match request {
            LeaseRequest::Renew { node, epoch, at_ms } => {
                if self.holder.as_deref() != Some(node) || self.epoch != *epoch {
                    return refused(self, format!("{node} does not hold the lease at epoch {epoch}"));
                }
                self.renewed_at_ms = self.renewed_at_ms.max(*at_ms);
            }
            LeaseRequest::Acquire { node, epoch, at_ms, ttl_ms } => {
                // Free or already the asker's: at its epoch or a later one. Another's: at a
                // later epoch, once expired.
                let own = self.holder.is_none() || self.holder.as_deref() == Some(node);
                if *epoch < self.epoch || (!own && *epoch == self.epoch) {
                    return refused(self, format!("epoch {epoch} is not past epoch {} of the lease", self.epoch));
                }
                let holder = self.holder.clone().unwrap_or_default();
                if !own && !self.expired_at(*at_ms) {
                    return refused(
                        self,
                        format!("{holder} holds the lease at epoch {} and renewed it in time", self.epoch),
                    );
                }
                match self.synchronous.as_ref().map(|s| s.standby.as_deref()) {
                    Some(Some(standby)) if !own && standby != node => {
                        return refused(
                            self,
                            format!("{holder} acknowledged writes that only its synchronous standby {standby} has"),
                        );
                    }
                    Some(None) if !own => {
                        return refused(
                            self,
                            format!(
                                "{holder} acknowledged writes that no standby confirmed (its synchronous \
                                 replication was degraded)"
                            ),
                        );
                    }
                    _ => {}
                }
                *self = Lease {
                    holder: Some(node.clone()),
                    epoch: *epoch,
                    renewed_at_ms: *at_ms,
                    ttl_ms: *ttl_ms,
                    synchronous: None,
                };
            }
            LeaseRequest::Transfer { from, to, epoch, at_ms } => {
                if self.holder.as_deref() != Some(from) || *epoch <= self.epoch {
                    return refused(self, format!("{from} does not hold the lease before epoch {epoch}"));
                }
                self.holder = Some(to.clone());
                self.epoch = *epoch;
                self.renewed_at_ms = *at_ms;
                self.synchronous = None;
            }
            LeaseRequest::Synchronous { node, epoch, synchronous } => {
                if self.holder.as_deref() != Some(node) || self.epoch != *epoch {
                    return refused(self, format!("{node} does not hold the lease at epoch {epoch}"));
                }
                self.synchronous = synchronous.clone();
            }
        }
        LeaseAnswer::Granted { lease: self.clone() }
    }
}

#[cfg(test)]
mod tests;
