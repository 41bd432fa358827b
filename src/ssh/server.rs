//! The daemon's SSH server (the guide's port 22). Peers log in as `coresh-peer` with a
//! key from the trusted hosts and may open only the replication subsystem: a shell, a
//! command or a pseudo-terminal is refused. On the subsystem each side first sends its
//! [`Hello`]; then the peer asks, one line at a time, and this node answers (a full
//! snapshot is streamed from a consistent copy, so device traffic goes on meanwhile).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use tokio::sync::watch;

use super::hello::{Hello, MAX_HELLO, PEER_USER, SUBSYSTEM, StatusPage};
use super::keys::fingerprint;
use crate::replication::SnapshotRequest;
use crate::replication::serve::{Wanted, positions, stream};
use crate::serve::view::NodeView;

/// Longest request line (it carries the puller's file manifest).
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// Accepts peer connections.
pub struct SshServer {
    /// The node's live view (trusted keys, settings).
    pub view: watch::Receiver<Arc<NodeView>>,
    /// The node's data directory (snapshots are taken from it).
    pub data_dir: PathBuf,
    /// The status pages this daemon serves, advertised in its hello.
    pub status_page: Option<StatusPage>,
}

/// Where a replication channel stands.
#[derive(Default)]
struct Stage {
    /// Bytes received and not handled yet.
    buffer: Vec<u8>,
    /// Whether the hellos have been traded.
    greeted: bool,
    /// Whether a snapshot is being streamed on it (it closes the channel when done).
    streaming: bool,
}

impl russh::server::Server for SshServer {
    type Handler = PeerSession;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> PeerSession {
        PeerSession {
            view: self.view.clone(),
            data_dir: self.data_dir.clone(),
            status_page: self.status_page,
            peer,
            subsystems: HashMap::new(),
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(subsystem = "ssh", error = %error, "session ended with an error");
    }
}

/// One peer connection.
pub struct PeerSession {
    view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    status_page: Option<StatusPage>,
    peer: Option<SocketAddr>,
    /// Replication channels and where each stands.
    subsystems: HashMap<ChannelId, Stage>,
}

impl PeerSession {
    /// The trusted keys as the store has them now.
    fn trusted_now(&self) -> Vec<russh::keys::PublicKey> {
        let hosts = crate::store::Store::open(&self.data_dir).and_then(|s| s.trusted_hosts());
        match hosts {
            Ok(hosts) => hosts.iter().filter_map(|h| super::keys::parse_public(&h.key).ok()).collect(),
            Err(e) => {
                tracing::warn!(subsystem = "ssh", error = %e, "cannot read the trusted hosts");
                Vec::new()
            }
        }
    }

    fn peer(&self) -> String {
        self.peer.map_or_else(|| "unknown".into(), |p| p.to_string())
    }

    fn refuse(&self, channel: ChannelId, what: &str, session: &mut Session) -> Result<(), russh::Error> {
        tracing::warn!(subsystem = "ssh", peer = %self.peer(), "refused {what}: peers may open only the replication channel");
        session.channel_failure(channel)?;
        session.close(channel)
    }
}

impl russh::server::Handler for PeerSession {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let same = |k: &russh::keys::PublicKey| k.key_data() == key.public_key.key_data();
        let mut trusted = self.view.borrow().trusted_keys.iter().any(same);
        if !trusted && user == PEER_USER {
            // A trusted host added a moment ago may not be in the view yet: ask the store.
            trusted = self.trusted_now().iter().any(same);
        }
        if user == PEER_USER && trusted {
            tracing::debug!(subsystem = "ssh", peer = %self.peer(), key = %fingerprint(key.public_key), "peer authenticated");
            return Ok(Auth::Accept);
        }
        tracing::warn!(
            subsystem = "ssh",
            peer = %self.peer(),
            user,
            key = %fingerprint(key.public_key),
            "login refused: not a trusted peer key"
        );
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != SUBSYSTEM {
            return self.refuse(channel, &format!("subsystem {name}"), session);
        }
        self.subsystems.insert(channel, Stage::default());
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.refuse(channel, "a shell", session)
    }

    async fn exec_request(&mut self, channel: ChannelId, _: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        self.refuse(channel, "a command", session)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, "a terminal", session)
    }

    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        // The peer has nothing more to ask: close, unless a snapshot is still on its way.
        if self.subsystems.get(&channel).is_none_or(|s| !s.streaming) {
            self.subsystems.remove(&channel);
            session.close(channel)?;
        }
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        let peer = self.peer();
        let Some(stage) = self.subsystems.get_mut(&channel) else {
            return session.close(channel);
        };
        stage.buffer.extend_from_slice(data);
        let limit = if stage.greeted { MAX_REQUEST } else { MAX_HELLO };
        if stage.buffer.len() > limit {
            tracing::warn!(subsystem = "ssh", %peer, "line too long; closing");
            return session.close(channel);
        }
        while let Some(end) = stage.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = stage.buffer.drain(..=end).collect();
            if !stage.greeted {
                let Ok(theirs) = serde_json::from_slice::<Hello>(&line) else {
                    tracing::warn!(subsystem = "ssh", %peer, "malformed hello; closing");
                    return session.close(channel);
                };
                let view = self.view.borrow().clone();
                let ours = Hello { status_page: self.status_page, ..Hello::of(&view.settings, &view.node_id) };
                tracing::debug!(subsystem = "ssh", %peer, node = %theirs.node_id, version = %theirs.version, "peer hello");
                session.data(channel, ours.to_line().into_bytes())?;
                stage.greeted = true;
                continue;
            }
            match serde_json::from_slice::<SnapshotRequest>(&line) {
                Ok(request) if request.op == "snapshot" => {
                    tracing::info!(subsystem = "replication", %peer, atlas = request.atlas, "snapshot requested");
                    stage.streaming = true;
                    let view = self.view.borrow().clone();
                    let atlas = request.atlas.then(|| {
                        if view.settings.atlas {
                            Ok(())
                        } else {
                            Err(format!("Atlas is not enabled on {}", view.settings.hostname))
                        }
                    });
                    let wanted = Wanted { atlas, files: request.files, position: request.position };
                    tokio::spawn(stream(session.handle(), channel, self.data_dir.clone(), wanted, peer.clone()));
                }
                Ok(request) if request.op == "positions" => {
                    let Some(range) = request.range else { return session.close(channel) };
                    stage.streaming = true;
                    tokio::spawn(positions(session.handle(), channel, self.data_dir.clone(), range, peer.clone()));
                }
                _ => {
                    tracing::warn!(subsystem = "replication", %peer, "unknown request; closing");
                    session.close(channel)?;
                }
            }
        }
        Ok(())
    }
}
