//! The daemon's consensus engine (`quorum`): it runs on a witness, and on a primary or
//! secondary with `witness HOST`. Its calls to the other voters go over the trusted
//! channel (`Request::Raft`), each to the trusted host whose hello names the voter's
//! node id; the others' calls reach it through `serve::answers`. The secondary forms
//! the quorum: once its primary and its witness are reachable it makes the three of
//! them the engine's voters. What the engine and each voter's link look like is written
//! for `show failover` about once a second (`quorum::QuorumStatus`).
//!
//! Not yet here: renewing the lease, fencing and promotion through it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use russh::keys::PrivateKey;
use tokio::sync::watch;

use crate::ha::{Mode, Settings};
use crate::host::HostPort;
use crate::node::view::NodeView;
use crate::peer::message::{RaftCall, RaftReply};
use crate::peer::{Hello, Peer};
use crate::quorum::store::Storage;
use crate::quorum::{QuorumStatus, Raft, TypeConfig, VoterLink, engine_id};
use crate::ssh::client::SshLink;

/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
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
}

impl Quorum {
    fn raft(&self) -> Option<Raft> {
        self.raft.lock().ok().and_then(|r| r.clone())
    }

    /// Answers another voter's call.
    pub async fn answer(&self, call: RaftCall) -> RaftReply {
        let Some(raft) = self.raft() else {
            return RaftReply::Failed { why: "no quorum engine runs on this node".into() };
        };
        let failed = |e: &dyn std::fmt::Display| RaftReply::Failed { why: e.to_string() };
        let caller = match &call {
            RaftCall::AppendEntries(rpc) => rpc.vote.leader_id().voted_for(),
            RaftCall::Vote(rpc) => rpc.vote.leader_id().voted_for(),
            RaftCall::InstallSnapshot(rpc) => rpc.vote.leader_id().voted_for(),
        };
        if let (Some(caller), Ok(mut links)) = (caller, self.links.lock()) {
            links.entry(caller).or_default().heard_at = Some(crate::store::now_text());
        }
        match call {
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

/// How each voter's link last went, by engine id.
type Links = Arc<Mutex<BTreeMap<u64, VoterLink>>>;

/// The engine's transport: the trusted channel.
#[derive(Clone)]
struct Network {
    data_dir: PathBuf,
    key: Arc<PrivateKey>,
    ours: Hello,
    links: Links,
}

/// One voter, as this node reaches it.
struct Link {
    net: Network,
    target: u64,
    peer: Option<Peer<SshLink>>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Link;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Link {
        Link { net: self.clone(), target, peer: None }
    }
}

/// The trusted hosts of the node in `dir`, with their keys.
fn trusted(dir: &std::path::Path) -> Vec<(HostPort, russh::keys::PublicKey)> {
    let Ok(store) = crate::store::Store::open(dir) else { return Vec::new() };
    store
        .trusted_hosts()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t.host.parse().ok()?, crate::node::keys::parse_public(&t.key).ok()?)))
        .collect()
}

impl Link {
    fn note(&self, address: Option<String>, error: Option<String>) {
        if let Ok(mut links) = self.net.links.lock() {
            let link = links.entry(self.target).or_default();
            link.checked_at = crate::store::now_text();
            match error {
                None => {
                    link.address = address.or(link.address.take());
                    link.ok_at = Some(link.checked_at.clone());
                    link.error = None;
                }
                Some(e) => link.error = Some(e),
            }
        }
    }

    /// The voter's trusted host, found by the node id its hello says.
    async fn reach(&mut self) -> Result<&mut Peer<SshLink>, String> {
        if self.peer.is_none() {
            let want = format!("{:016x}", self.target);
            let mut failures = Vec::new();
            for (host, key) in trusted(&self.net.data_dir) {
                match Peer::connect(&host, &self.net.key, &key, &self.net.ours).await {
                    Ok(peer) if peer.hello().node_id == want => {
                        self.note(Some(host.to_string()), None);
                        if let Ok(mut links) = self.net.links.lock() {
                            links.entry(self.target).or_default().hostname = Some(peer.hello().hostname.clone());
                        }
                        self.peer = Some(peer);
                        break;
                    }
                    Ok(peer) => peer.close().await,
                    Err(e) => failures.push(format!("{host}: {e}")),
                }
            }
            if self.peer.is_none() {
                let why = format!("no trusted host answers as node {want} ({})", failures.join("; "));
                self.note(None, Some(why.clone()));
                return Err(why);
            }
        }
        self.peer.as_mut().ok_or_else(|| "not connected".to_string())
    }

    async fn call(&mut self, call: RaftCall) -> Result<RaftReply, String> {
        let peer = self.reach().await?;
        let reply = tokio::time::timeout(CALL_TIMEOUT, peer.raft(call)).await;
        match reply {
            Ok(Ok(reply)) => {
                self.note(None, None);
                Ok(reply)
            }
            Ok(Err(e)) => self.broken(e.to_string()),
            Err(_) => self.broken(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
        }
    }

    fn broken<T>(&mut self, why: String) -> Result<T, String> {
        self.peer = None;
        self.note(None, Some(why.clone()));
        Err(why)
    }
}

fn unreachable<E: std::error::Error>(why: String) -> RPCError<u64, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why)))
}

fn refused<E: std::error::Error>(why: String) -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(why)))
}

impl RaftNetwork<TypeConfig> for Link {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(RaftCall::AppendEntries(rpc)).await.map_err(unreachable)? {
            RaftReply::AppendEntries(r) => Ok(r),
            other => Err(refused(format!("{other:?}"))),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        match self.call(RaftCall::InstallSnapshot(rpc)).await.map_err(unreachable)? {
            RaftReply::InstallSnapshot(r) => Ok(r),
            other => Err(refused(format!("{other:?}"))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        match self.call(RaftCall::Vote(rpc)).await.map_err(unreachable)? {
            RaftReply::Vote(r) => Ok(r),
            other => Err(refused(format!("{other:?}"))),
        }
    }
}

/// Starts the engine when the settings want it, and keeps its status written.
pub async fn run(
    quorum: Quorum,
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let settings = view.borrow_and_update().settings.clone();
        if wanted(&settings) && quorum.raft().is_none() {
            match start(&quorum, &view, &data_dir).await {
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
    let net = Network {
        data_dir: data_dir.to_path_buf(),
        key: Arc::new(key),
        ours: Hello::of(&settings, &node_id),
        links: links.clone(),
    };
    let storage = Storage::open(data_dir).map_err(|e| e.to_string())?;
    let raft = Raft::new(id, crate::quorum::config(), net.clone(), storage.clone(), storage.clone())
        .await
        .map_err(|e| e.to_string())?;
    if let Ok(mut r) = quorum.raft.lock() {
        *r = Some(raft.clone());
    }
    tokio::spawn(report(raft.clone(), storage, links, view.clone()));
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
            let key = trusted(&net.data_dir).into_iter().find(|(h, _)| h == host).map(|(_, k)| k);
            let Some(key) = key else { break };
            if let Ok(peer) = Peer::connect(host, &net.key, &key, &net.ours).await {
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
async fn report(raft: Raft, storage: Storage, links: Links, view: watch::Receiver<Arc<NodeView>>) {
    let mut written = Instant::now() - REPORT_EVERY;
    loop {
        if view.has_changed().is_err() {
            return;
        }
        tokio::time::sleep(REPORT_EVERY.saturating_sub(written.elapsed())).await;
        written = Instant::now();
        let m = raft.metrics().borrow().clone();
        let lease = storage.machine().map(|m| m.lease).unwrap_or_default();
        let status = QuorumStatus {
            id: m.id,
            state: format!("{:?}", m.state).to_lowercase(),
            term: m.current_term,
            leader: m.current_leader,
            voters: m.membership_config.membership().voter_ids().collect(),
            links: links.lock().map(|l| l.clone()).unwrap_or_default(),
            lease,
            updated_at: crate::store::now_text(),
        };
        if let Err(e) = storage.put_status(&status) {
            tracing::warn!(subsystem = "quorum", error = %e, "cannot record the quorum's state");
        }
    }
}
