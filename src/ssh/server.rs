//! The daemon's SSH server (the guide's port 22). Peers log in as `coresh-peer` with a
//! key from the trusted hosts and may open only the replication subsystem: a shell, a
//! command or a pseudo-terminal is refused. On the subsystem each side first sends its
//! [`Hello`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use tokio::sync::watch;

use super::hello::{Hello, MAX_HELLO, PEER_USER, SUBSYSTEM};
use super::keys::fingerprint;
use crate::serve::view::NodeView;

/// Accepts peer connections.
pub struct SshServer {
    /// The node's live view (trusted keys, settings).
    pub view: watch::Receiver<Arc<NodeView>>,
}

impl russh::server::Server for SshServer {
    type Handler = PeerSession;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> PeerSession {
        PeerSession { view: self.view.clone(), peer, subsystems: HashMap::new() }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(subsystem = "ssh", error = %error, "session ended with an error");
    }
}

/// One peer connection.
pub struct PeerSession {
    view: watch::Receiver<Arc<NodeView>>,
    peer: Option<SocketAddr>,
    /// Replication channels and what they have received so far.
    subsystems: HashMap<ChannelId, Vec<u8>>,
}

impl PeerSession {
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
        let trusted = self.view.borrow().trusted_keys.iter().any(|k| k.key_data() == key.public_key.key_data());
        if user == PEER_USER && trusted {
            tracing::info!(subsystem = "ssh", peer = %self.peer(), key = %fingerprint(key.public_key), "peer authenticated");
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
        self.subsystems.insert(channel, Vec::new());
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

    async fn data(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        let Some(buffer) = self.subsystems.get_mut(&channel) else {
            return session.close(channel);
        };
        buffer.extend_from_slice(data);
        if buffer.len() > MAX_HELLO {
            tracing::warn!(subsystem = "ssh", peer = %self.peer(), "hello too long; closing");
            return session.close(channel);
        }
        let Some(end) = buffer.iter().position(|&b| b == b'\n') else { return Ok(()) };
        let line: Vec<u8> = buffer.drain(..=end).collect();
        match serde_json::from_slice::<Hello>(&line) {
            Ok(theirs) => {
                let view = self.view.borrow().clone();
                let ours = Hello::of(&view.settings, &view.node_id);
                tracing::info!(
                    subsystem = "ssh",
                    peer = %self.peer(),
                    node = %theirs.node_id,
                    version = %theirs.version,
                    "peer hello"
                );
                session.data(channel, ours.to_line().into_bytes())?;
                session.eof(channel)?;
                session.close(channel)
            }
            Err(e) => {
                tracing::warn!(subsystem = "ssh", peer = %self.peer(), error = %e, "malformed hello; closing");
                session.close(channel)
            }
        }
    }
}
