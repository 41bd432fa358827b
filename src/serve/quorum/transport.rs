//! The engine's transport: its calls to the other voters over the trusted channel
//! (`Request::Raft`). Each voter is reached at the trusted host whose hello names the
//! voter's node id; all trusted hosts are tried at once, each within [`CALL_TIMEOUT`],
//! so one host that does not answer (a cut link) never delays reaching another. A
//! connection stays open for the next call. Lease requests handed to another voter
//! (`Network::client_write`) keep one connection per voter too. A call that was
//! abandoned half-way (its task cancelled) leaves its connection unusable, so the next
//! call on that link opens a fresh one; a request that finds its voter's connection
//! busy goes on a fresh one of its own. Each link's last outcome is kept for
//! `show failover` (`Links`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, RaftNetwork, RaftNetworkFactory};
use russh::keys::PrivateKey;

use crate::host::HostPort;
use crate::peer::message::{RaftCall, RaftReply};
use crate::peer::{Hello, Peer};
use crate::quorum::{LeaseAnswer, LeaseRequest, TypeConfig, VoterLink};
use crate::ssh::client::SshLink;

/// How long one call may take, and one attempt to reach a voter.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// How each voter's link last went, by engine id.
pub(super) type Links = Arc<Mutex<BTreeMap<u64, VoterLink>>>;

/// What reaching a voter takes: this node's trusted hosts, key and hello.
#[derive(Clone)]
pub(super) struct Dialer {
    pub data_dir: PathBuf,
    pub key: Arc<PrivateKey>,
    pub ours: Hello,
    pub links: Links,
}

/// The engine's transport: the trusted channel.
#[derive(Clone)]
pub(super) struct Network {
    pub dial: Dialer,
    /// The links that carry lease requests to another voter, one per voter.
    forward: Arc<Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<Link>>>>>,
}

/// One voter, as this node reaches it.
pub(super) struct Link {
    dial: Dialer,
    target: u64,
    peer: Option<Peer<SshLink>>,
    /// A call was sent and its answer not yet read: set while a call runs, so a call
    /// cancelled half-way leaves it set and the connection is not trusted again.
    in_flight: bool,
}

impl Network {
    pub fn new(dial: Dialer) -> Network {
        Network { dial, forward: Arc::default() }
    }

    /// Asks voter `target` to commit `request` (it hands it to its leader unless
    /// `relayed`), over the connection kept for that voter.
    pub async fn client_write(&self, target: u64, request: LeaseRequest, relayed: bool) -> Result<LeaseAnswer, String> {
        let link = {
            let mut forward = self.forward.lock().map_err(|_| "the transport's state is poisoned".to_string())?;
            forward
                .entry(target)
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Link::new(&self.dial, target))))
                .clone()
        };
        // Another request to that voter may be under way, and hang on a connection that a
        // healed cut left dead: this one goes on a fresh connection of its own then.
        let mut spare;
        let mut kept;
        let link: &mut Link = match link.try_lock() {
            Ok(guard) => {
                kept = guard;
                &mut kept
            }
            Err(_) => {
                spare = Link::new(&self.dial, target);
                &mut spare
            }
        };
        match link.call(RaftCall::ClientWrite { request, relayed }).await? {
            RaftReply::ClientWrite(answer) => Ok(answer),
            RaftReply::Failed { why } => Err(why),
            other => Err(format!("answered {other:?}")),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Link;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Link {
        Link::new(&self.dial, target)
    }
}

/// The trusted hosts of the node in `dir`, with their keys.
pub(super) fn trusted(dir: &std::path::Path) -> Vec<(HostPort, russh::keys::PublicKey)> {
    let Ok(store) = crate::store::Store::open(dir) else { return Vec::new() };
    store
        .trusted_hosts()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| Some((t.host.parse().ok()?, crate::node::keys::parse_public(&t.key).ok()?)))
        .collect()
}

impl Link {
    fn new(dial: &Dialer, target: u64) -> Link {
        Link { dial: dial.clone(), target, peer: None, in_flight: false }
    }

    fn note(&self, address: Option<String>, error: Option<String>) {
        if let Ok(mut links) = self.dial.links.lock() {
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

    /// The voter's trusted host, found by the node id its hello says: every trusted
    /// host is tried at once, each within [`CALL_TIMEOUT`]; the first that answers as
    /// the voter is kept.
    async fn reach(&mut self) -> Result<(), String> {
        if self.in_flight {
            // The last call was abandoned before its answer came: the connection may still
            // carry that answer.
            self.peer = None;
            self.in_flight = false;
        }
        if self.peer.is_none() {
            let want = format!("{:016x}", self.target);
            let mut tries = tokio::task::JoinSet::new();
            for (host, key) in trusted(&self.dial.data_dir) {
                let (ours, ours_key) = (self.dial.ours.clone(), self.dial.key.clone());
                tries.spawn(async move {
                    let tried = tokio::time::timeout(CALL_TIMEOUT, Peer::connect(&host, &ours_key, &key, &ours)).await;
                    (host, tried)
                });
            }
            let mut failures = Vec::new();
            while let Some(done) = tries.join_next().await {
                let Ok((host, tried)) = done else { continue };
                match tried {
                    Ok(Ok(peer)) if peer.hello().node_id == want => {
                        self.note(Some(host.to_string()), None);
                        if let Ok(mut links) = self.dial.links.lock() {
                            links.entry(self.target).or_default().hostname = Some(peer.hello().hostname.clone());
                        }
                        self.peer = Some(peer);
                        break;
                    }
                    Ok(Ok(peer)) => peer.close().await,
                    Ok(Err(e)) => failures.push(format!("{host}: {e}")),
                    Err(_) => failures.push(format!("{host}: no answer within {} s", CALL_TIMEOUT.as_secs())),
                }
            }
            if self.peer.is_none() {
                let why = format!("no trusted host answers as node {want} ({})", failures.join("; "));
                self.note(None, Some(why.clone()));
                return Err(why);
            }
        }
        Ok(())
    }

    async fn call(&mut self, call: RaftCall) -> Result<RaftReply, String> {
        self.reach().await?;
        self.in_flight = true;
        let Some(peer) = self.peer.as_mut() else { return Err("not connected".into()) };
        let reply = tokio::time::timeout(CALL_TIMEOUT, peer.raft(call)).await;
        self.in_flight = false;
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
