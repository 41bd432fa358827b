//! A trusted peer's replication channel, server side: the bytes the SSH session hands
//! over become a [`Link`] ([`ServerLink`]), the peer's hello is answered with this
//! node's, and then its requests are taken one at a time, each only while its key is
//! still trusted, each audited with the key's fingerprint (a pull also holds the one
//! stream its key may have), and each answered by the daemon's [`Respond`] (the SSH
//! layer answers nothing itself).

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use russh::ChannelId;
use russh::keys::PublicKey;
use tokio::sync::{mpsc, watch};

use super::greeting::{Recorded, note_follower, our_hello};
use super::login::Gate;
use super::peers::{Peers, trusted_in_store, trusted_now};
use crate::node::view::NodeView;
use crate::peer::hello::StatusPage;
use crate::peer::message::{HandoverStep, Request};
use crate::peer::{Framed, Link, PEER_USER, PeerError};
use crate::store::Outcome;

/// A future an answer runs as.
pub type Answering<'a> = Pin<Box<dyn Future<Output = Result<(), PeerError>> + Send + 'a>>;

/// What answers a peer's requests: the daemon's replication sender and mate services.
pub trait Respond: Send + Sync {
    /// Answers `request` of `caller` on `out`; an error ends the channel.
    fn answer<'a>(&'a self, request: Request, caller: &'a Caller, out: &'a mut Framed<ServerLink>) -> Answering<'a>;
}

/// Who is asking.
pub struct Caller {
    pub address: IpAddr,
    /// `ADDRESS:PORT`, for messages.
    pub peer: String,
    pub key: PublicKey,
    /// The key's `SHA256:` fingerprint.
    pub fingerprint: String,
    /// What the peer said of itself in its hello (set once it did).
    pub hello: Option<crate::peer::Hello>,
}

/// The replication channel, server side: bytes in from the session, out through its
/// handle.
pub struct ServerLink {
    incoming: mpsc::Receiver<Vec<u8>>,
    handle: russh::server::Handle,
    channel: ChannelId,
}

impl Link for ServerLink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), PeerError> {
        self.handle
            .data(self.channel, bytes::Bytes::from(bytes))
            .await
            .map_err(|_| PeerError::ChannelRefused { target: "the peer".into() })
    }

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, PeerError> {
        Ok(self.incoming.recv().await)
    }

    async fn close(self) {
        let _ = self.handle.eof(self.channel).await;
        let _ = self.handle.close(self.channel).await;
    }
}

/// What a channel's task needs of its connection.
pub struct PeerChannel {
    pub view: watch::Receiver<Arc<NodeView>>,
    pub data_dir: PathBuf,
    pub status_page: Option<StatusPage>,
    pub followers: Arc<Recorded>,
    pub peers: Arc<Peers>,
    pub gate: Arc<Gate>,
    pub respond: Arc<dyn Respond>,
    pub caller: Caller,
}

/// Opens the channel's task; what `data` receives goes to the returned sender.
pub fn open(handle: russh::server::Handle, channel: ChannelId, serve: PeerChannel) -> mpsc::Sender<Vec<u8>> {
    let (tx, incoming) = mpsc::channel(64);
    let framed = Framed::new(ServerLink { incoming, handle, channel }, &serve.caller.peer);
    tokio::spawn(run(framed, serve));
    tx
}

async fn run(mut framed: Framed<ServerLink>, mut serve: PeerChannel) {
    let peer = serve.caller.peer.clone();
    match framed.recv::<Request>().await {
        Ok(Request::Hello(theirs)) => {
            let ours = our_hello(&serve.view, &serve.status_page);
            tracing::debug!(subsystem = "ssh", %peer, node = %theirs.node_id, version = %theirs.version, "peer hello");
            if framed.send(&ours).await.is_err() {
                return;
            }
            note_follower(&ours.node_id, &serve.followers, &serve.data_dir, peer.clone(), &theirs);
            serve.caller.hello = Some(theirs);
        }
        _ => {
            tracing::warn!(subsystem = "ssh", %peer, "no hello first; closing");
            return framed.close().await;
        }
    }
    loop {
        let request = match framed.recv_or_end::<Request>().await {
            Ok(Some(Request::Hello(_))) => {
                tracing::warn!(subsystem = "ssh", %peer, "a second hello; closing");
                break;
            }
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(subsystem = "ssh", %peer, error = %e, "unreadable request; closing");
                break;
            }
        };
        // The key must be trusted at each request, not only at login.
        let key = &serve.caller.key;
        if !trusted_now(&serve.view, key) && !trusted_in_store(&serve.data_dir, key).await {
            tracing::warn!(subsystem = "ssh", %peer, "request from a key no longer trusted; closing");
            break;
        }
        let print = &serve.caller.fingerprint;
        let what = match &request {
            Request::Changes { since, .. } => format!("peer pull: changes after {} (key {print})", since.seq),
            Request::Snapshot { .. } => format!("peer pull: full snapshot (key {print})"),
            Request::Exec(_) => format!("peer exec request (key {print})"),
            Request::Positions { .. } => format!("peer positions request (key {print})"),
            Request::Follow { since, synchronous } => {
                let how = if synchronous.is_some() { "synchronous standby" } else { "stream" };
                format!("peer {how}: changes after {} as they commit (key {print})", since.seq)
            }
            Request::TestBack | Request::Hello(_) => format!("peer test-back request (key {print})"),
            Request::SharedSettings => format!("peer shared-settings request (key {print})"),
            Request::Switchover { dry_run: true, .. } => format!("peer switchover request, dry run (key {print})"),
            Request::Switchover { dry_run: false, .. } => format!("peer switchover request (key {print})"),
            Request::Raft { .. } => format!("peer quorum call (key {print})"),
            Request::Handover(step) => {
                let (what, id) = match step {
                    HandoverStep::Prepare { id, .. } => ("prepare", id),
                    HandoverStep::Commit { id, .. } => ("commit", id),
                    HandoverStep::Abort { id } => ("abort", id),
                };
                format!("peer handover {id}: {what} (key {print})")
            }
        };
        serve.gate.audit(PEER_USER, serve.caller.address, what, Outcome::Ok).await;
        let pull = matches!(request, Request::Changes { .. } | Request::Snapshot { .. });
        let streaming = match pull {
            true => match serve.peers.start_stream(print) {
                Some(s) => Some(s),
                None => {
                    let busy = crate::peer::message::StoreHeader::Failed {
                        store: crate::peer::message::Store::Core,
                        why: "a sync of this peer is already being sent; try again when it is done".into(),
                    };
                    let _ = framed.send(&busy).await;
                    break;
                }
            },
            false => None,
        };
        let answered = serve.respond.answer(request, &serve.caller, &mut framed).await;
        drop(streaming);
        if let Err(e) = answered {
            tracing::warn!(subsystem = "replication", %peer, error = %e, "request not answered");
            break;
        }
    }
    framed.close().await;
}
