//! The daemon's consensus engine (`quorum`): it runs on a witness, and on a primary or
//! secondary with `witness HOST`. Its calls to the other voters go over the trusted
//! channel (`transport`); the others' calls reach it through `serve::answers`
//! ([`Quorum::answer`]). The secondary forms the quorum: once its primary and its
//! witness are reachable it makes the three of them the engine's voters. What the
//! engine and each voter's link look like is written for `show failover` about once a
//! second (`quorum::QuorumStatus`). A lease request ([`Quorum::write`]) is committed
//! here when this node leads, else handed to the leader, directly or through another
//! voter.
//!
//! On the primary it keeps the lease and fences the node without it (`lease`); the
//! heartbeat asks it for the lease before a promotion, a switchover moves it.

mod lease;
mod transport;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::BasicNode;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::watch;

use crate::ha::{Mode, Settings};
use crate::http::hold::WriteHold;
use crate::node::view::NodeView;
use crate::peer::message::{RaftCall, RaftReply};
use crate::peer::{Hello, Peer};
use crate::quorum::store::Storage;
use crate::quorum::{Lease, LeaseAnswer, LeaseRequest, QuorumStatus, Raft, engine_id};
use crate::replication::gate::Gate;
pub use lease::degrade_permit;
use transport::{CALL_TIMEOUT, Dialer, Links, Network, trusted};

/// How often the status is written.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Whether this node runs the engine with these settings.
pub fn wanted(s: &Settings) -> bool {
    s.mode == Mode::Witness || (s.enabled && s.witness.is_some())
}

/// The engine of this daemon, once it runs.
#[derive(Clone, Default)]
pub struct Quorum {
    raft: Arc<Mutex<Option<Raft>>>,
    /// Each other voter's link, both ways.
    links: Links,
    /// The transport, to forward a lease request to the leader.
    net: Arc<Mutex<Option<Network>>>,
    /// Held while this node writes what its synchronous replication guarantees into the
    /// lease, so that such writes land in the order the gate changed.
    sync_record: Arc<tokio::sync::Mutex<()>>,
    /// The lease as the last answer to this node's request gave it, and when: newer than
    /// this node's own copy when it is cut off from the engine's leader.
    answered: Arc<Mutex<Option<(Instant, Lease)>>>,
    /// The engine's storage, once it runs.
    storage: Arc<Mutex<Option<Storage>>>,
}

impl Quorum {
    fn raft(&self) -> Option<Raft> {
        self.raft.lock().ok().and_then(|r| r.clone())
    }

    /// Whether the quorum decides: the engine runs with its three voters.
    pub fn formed(&self) -> bool {
        self.raft().is_some_and(|r| r.metrics().borrow().membership_config.membership().voter_ids().count() >= 3)
    }

    /// Has the engine commit `request` and says what it answered; an error when no
    /// leader answers in time. A node that is not the engine's leader sends it to the
    /// leader, and when it cannot reach the leader, through another voter that can (a
    /// primary cut off from its secondary still reaches a leader there through the
    /// witness).
    pub async fn write(&self, request: LeaseRequest) -> Result<LeaseAnswer, String> {
        let answer = self.write_anyhow(request).await;
        if let (Ok(LeaseAnswer::Granted { lease } | LeaseAnswer::Refused { lease, .. }), Ok(mut seen)) =
            (&answer, self.answered.lock())
        {
            *seen = Some((Instant::now(), lease.clone()));
        }
        answer
    }

    /// The lease as this node's engine has it, or as a recent answer gave it when this
    /// node does not lead the engine (its copy may lag then).
    fn lease(&self, raft: &Raft, storage: &Storage) -> Lease {
        let own = storage.machine().map(|m| m.lease).unwrap_or_default();
        let metrics = raft.metrics().borrow().clone();
        if metrics.current_leader == Some(metrics.id) {
            return own;
        }
        match self.answered.lock().ok().and_then(|a| a.clone()) {
            Some((at, lease)) if at.elapsed() < REPORT_EVERY * 2 => lease,
            _ => own,
        }
    }

    /// The lease as this node knows it now (see [`Quorum::lease`]), while the engine runs.
    pub fn lease_now(&self) -> Option<Lease> {
        let raft = self.raft()?;
        let storage = self.storage.lock().ok().and_then(|s| s.clone())?;
        Some(self.lease(&raft, &storage))
    }

    async fn write_anyhow(&self, request: LeaseRequest) -> Result<LeaseAnswer, String> {
        // Renewals and what the holder's synchronous replication guarantees are the same
        // when committed twice, and their time counts: sent every way at once.
        if matches!(request, LeaseRequest::Renew { .. } | LeaseRequest::Synchronous { .. }) {
            return self.hedged(request).await;
        }
        let leader = match self.write_here(&request).await? {
            Ok(answer) => return Ok(answer),
            Err(leader) => leader,
        };
        let raft = self.raft().ok_or("no quorum engine runs on this node")?;
        let own = raft.metrics().borrow().id;
        let others: Vec<u64> = raft.metrics().borrow().membership_config.membership().voter_ids().collect();
        // The leader first when this node knows one (a node cut off from it may not).
        let order = leader.into_iter().chain(others.into_iter().filter(|v| Some(*v) != leader && *v != own));
        let mut failures = Vec::new();
        for target in order {
            // The leader itself must not hand it on; another voter may, to its leader.
            match self.call_voter(target, request.clone(), Some(target) == leader).await {
                Ok(answer) => return Ok(answer),
                Err(e) => failures.push(format!("{target:016x}: {e}")),
            }
        }
        Err(format!("no voter brought the request to the quorum's leader ({})", failures.join("; ")))
    }

    /// A request that is the same applied twice, and whose time counts: asked of this
    /// node's engine and, at once, through every other voter; the first answer wins. The
    /// calls still under way then run to their end (each is bounded).
    async fn hedged(&self, request: LeaseRequest) -> Result<LeaseAnswer, String> {
        let raft = self.raft().ok_or("no quorum engine runs on this node")?;
        let own = raft.metrics().borrow().id;
        let others: Vec<u64> =
            raft.metrics().borrow().membership_config.membership().voter_ids().filter(|v| *v != own).collect();
        let mut set = tokio::task::JoinSet::new();
        let (q, r) = (self.clone(), request.clone());
        set.spawn(async move {
            match q.write_here(&r).await? {
                Ok(answer) => Ok(answer),
                Err(Some(leader)) => q.call_voter(leader, r, true).await,
                Err(None) => Err("this node knows no leader".to_string()),
            }
        });
        for target in others {
            let (q, r) = (self.clone(), request.clone());
            set.spawn(async move { q.call_voter(target, r, false).await });
        }
        let mut failures = Vec::new();
        while let Some(done) = set.join_next().await {
            match done {
                Ok(Ok(answer)) => {
                    // The others finish on their own, keeping their connections usable.
                    set.detach_all();
                    return Ok(answer);
                }
                Ok(Err(e)) => failures.push(e),
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(format!("no voter brought the request to the quorum's leader ({})", failures.join("; ")))
    }

    /// The engine here commits `request` (`Ok(Ok)`), or says it is not the leader and
    /// which node is, if it knows (`Ok(Err)`).
    async fn write_here(&self, request: &LeaseRequest) -> Result<Result<LeaseAnswer, Option<u64>>, String> {
        let raft = self.raft().ok_or("no quorum engine runs on this node")?;
        let asked = tokio::time::timeout(CALL_TIMEOUT, raft.client_write(request.clone())).await;
        match asked {
            Ok(Ok(done)) => Ok(Ok(done.data)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => Ok(Err(f.leader_id)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the quorum did not commit within {} s", CALL_TIMEOUT.as_secs())),
        }
    }

    /// Asks voter `target` to commit `request` (it hands it to its leader if it is not).
    async fn call_voter(&self, target: u64, request: LeaseRequest, relayed: bool) -> Result<LeaseAnswer, String> {
        let net = self.net.lock().ok().and_then(|n| n.clone()).ok_or("no transport")?;
        net.client_write(target, request, relayed).await
    }

    /// Answers another voter's call.
    pub async fn answer(&self, call: RaftCall) -> RaftReply {
        let Some(raft) = self.raft() else {
            return RaftReply::Failed { why: "no quorum engine runs on this node".into() };
        };
        let failed = |e: &dyn std::fmt::Display| RaftReply::Failed { why: e.to_string() };
        let caller = match &call {
            RaftCall::ClientWrite { .. } => None,
            RaftCall::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
            RaftCall::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            RaftCall::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
        };
        if let (Some(caller), Ok(mut links)) = (caller, self.links.lock()) {
            links.entry(caller).or_default().heard_at = Some(crate::store::now_text());
        }
        match call {
            // Committed here, or handed to the leader (one hop: never on to another).
            RaftCall::ClientWrite { request, relayed } => match self.write_here(&request).await {
                Ok(Ok(answer)) => RaftReply::ClientWrite(answer),
                Ok(Err(Some(leader))) if !relayed => match self.call_voter(leader, request, true).await {
                    Ok(answer) => RaftReply::ClientWrite(answer),
                    Err(e) => failed(&e),
                },
                Ok(Err(_)) => failed(&"this voter is not the leader and does not hand the request on"),
                Err(e) => failed(&e),
            },
            RaftCall::AppendEntries(rpc) => {
                raft.append_entries(rpc).await.map_or_else(|e| failed(&e), RaftReply::AppendEntries)
            }
            RaftCall::Vote(rpc) => raft.vote(rpc).await.map_or_else(|e| failed(&e), RaftReply::Vote),
            RaftCall::InstallSnapshot(rpc) => {
                raft.install_snapshot(rpc).await.map_or_else(|e| failed(&e), RaftReply::InstallSnapshot)
            }
        }
    }
}

/// Starts the engine when the settings want it, and keeps its status written.
pub async fn run(
    quorum: Quorum,
    hold: Arc<WriteHold>,
    gate: Gate,
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let settings = view.borrow_and_update().settings.clone();
        if wanted(&settings) && quorum.raft().is_none() {
            match start(&quorum, &hold, &gate, &view, &data_dir).await {
                Ok(()) => tracing::info!(subsystem = "quorum", "consensus engine started"),
                Err(e) => tracing::error!(subsystem = "quorum", error = %e, "cannot start the consensus engine"),
            }
        }
        tokio::select! {
            _ = view.changed() => {}
            _ = stop.changed() => {
                if let Some(raft) = quorum.raft() {
                    let _ = raft.shutdown().await;
                }
                return;
            }
        }
    }
}

async fn start(
    quorum: &Quorum,
    hold: &Arc<WriteHold>,
    gate: &Gate,
    view: &watch::Receiver<Arc<NodeView>>,
    data_dir: &std::path::Path,
) -> Result<(), String> {
    let (settings, node_id) = {
        let v = view.borrow();
        (v.settings.clone(), v.node_id.clone())
    };
    let id = engine_id(&node_id).ok_or_else(|| format!("node id {node_id} is not 16 hex digits"))?;
    let key = crate::node::keys::host_key(data_dir).map_err(|e| e.to_string())?;
    let links = quorum.links.clone();
    let net = Network::new(Dialer {
        data_dir: data_dir.to_path_buf(),
        key: Arc::new(key),
        ours: Hello::of(&settings, &node_id),
        links: links.clone(),
    });
    let storage = Storage::open(data_dir).map_err(|e| e.to_string())?;
    let raft = Raft::new(id, crate::quorum::config(), net.clone(), storage.clone(), storage.clone())
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(mut r) = quorum.raft.lock() {
        *r = Some(raft.clone());
    }
    if let Ok(mut n) = quorum.net.lock() {
        *n = Some(net.clone());
    }
    if let Ok(mut st) = quorum.storage.lock() {
        *st = Some(storage.clone());
    }
    tokio::spawn(report(quorum.clone(), raft.clone(), storage.clone(), links, view.clone(), hold.clone()));
    tokio::spawn(lease::keep_lease(
        quorum.clone(),
        hold.clone(),
        gate.clone(),
        view.clone(),
        data_dir.to_path_buf(),
        node_id.clone(),
        storage,
    ));
    if settings.mode == Mode::Secondary {
        tokio::spawn(form(raft, net, settings, id));
    }
    Ok(())
}

/// On the secondary: once its primary and its witness answer, the three become the
/// engine's voters (once: an engine that has voters keeps them).
async fn form(raft: Raft, net: Network, settings: Settings, own: u64) {
    let (Some(primary), Some(witness)) = (settings.primary_host.clone(), settings.witness.clone()) else { return };
    loop {
        if raft.is_initialized().await.unwrap_or(true) {
            return;
        }
        let mut members = BTreeMap::from([(own, BasicNode::new(""))]);
        for host in [&primary, &witness] {
            let key = trusted(&net.dial.data_dir).into_iter().find(|(h, _)| h == host).map(|(_, k)| k);
            let Some(key) = key else { break };
            if let Ok(peer) = Peer::connect(host, &net.dial.key, &key, &net.dial.ours).await {
                if let Some(id) = engine_id(&peer.hello().node_id) {
                    members.insert(id, BasicNode::new(host.to_string()));
                }
                peer.close().await;
            }
        }
        if members.len() == 3 {
            match raft.initialize(members).await {
                Ok(()) => {
                    tracing::info!(subsystem = "quorum", "the primary, this node and the witness form the quorum")
                }
                Err(e) => tracing::info!(subsystem = "quorum", error = %e, "the quorum is formed already"),
            }
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Writes what the engine and the links look like, about once a second.
async fn report(
    quorum: Quorum,
    raft: Raft,
    storage: Storage,
    links: Links,
    view: watch::Receiver<Arc<NodeView>>,
    hold: Arc<WriteHold>,
) {
    let mut written = Instant::now() - REPORT_EVERY;
    loop {
        if view.has_changed().is_err() {
            return;
        }
        tokio::time::sleep(REPORT_EVERY.saturating_sub(written.elapsed())).await;
        written = Instant::now();
        let m = raft.metrics().borrow().clone();
        let lease = quorum.lease(&raft, &storage);
        let status = QuorumStatus {
            id: m.id,
            state: format!("{:?}", m.state).to_lowercase(),
            term: m.current_term,
            leader: m.current_leader,
            voters: m.membership_config.membership().voter_ids().collect(),
            links: links.lock().map(|l| l.clone()).unwrap_or_default(),
            lease,
            fenced: hold.fenced(),
            updated_at: crate::store::now_text(),
        };
        if let Err(e) = storage.put_status(&status) {
            tracing::warn!(subsystem = "quorum", error = %e, "cannot record the quorum's state");
        }
    }
}
