//! The daemon's SSH server (the guide's port 22), for two kinds of client. Peers log in
//! as `coresh-peer` with a key from the trusted hosts and may open only the replication
//! subsystem, whose channel a task of its own serves ([`super::peer_channel`]); a watch
//! ends a peer's connection once its key is no longer trusted. Operators log in as local
//! users ([`super::login`]) and get consoles ([`super::console`]): a shell, or one
//! command, never replication.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use tokio::sync::{mpsc, watch};

use super::console::{End, Input, Launch, Terminal};
use super::greeting::Recorded;
use super::login::Gate;
use super::peer_channel::{Caller, PeerChannel, Respond};
use super::peers::{Peers, watch_trust};
use crate::node::keys::fingerprint;
use crate::node::view::NodeView;
use crate::peer::hello::StatusPage;
use crate::peer::{PEER_USER, SUBSYSTEM};
use crate::store::Outcome;

/// The daemon's SSH server: one [`russh::server::Handler`] per connection, a trusted
/// peer's (replication channel only) or an operator's (consoles only).
pub struct SshServer {
    /// The node's live view (trusted keys, settings).
    pub view: watch::Receiver<Arc<NodeView>>,
    /// The node's data directory (snapshots are taken from it).
    pub data_dir: PathBuf,
    /// The status pages this daemon serves, advertised in its hello.
    pub status_page: Option<StatusPage>,
    /// Decides operator logins.
    pub gate: Arc<Gate>,
    /// Consoles open now, on every connection (`session-limit`).
    pub consoles: Arc<AtomicU32>,
    /// When each follower's hello was last recorded (see [`super::greeting`]).
    pub followers: Arc<Recorded>,
    /// What is remembered of trusted peers across connections (see [`super::peers`]).
    pub peers: Arc<Peers>,
    /// What answers a peer's requests (the daemon's replication sender and mate services).
    pub respond: Arc<dyn Respond>,
}

impl russh::server::Server for SshServer {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            view: self.view.clone(),
            data_dir: self.data_dir.clone(),
            status_page: self.status_page.clone(),
            followers: self.followers.clone(),
            peers: self.peers.clone(),
            respond: self.respond.clone(),
            trust_watch: None,
            peer,
            subsystems: HashMap::new(),
            gate: self.gate.clone(),
            open_consoles: self.consoles.clone(),
            login: Login::None,
            pending: Arc::default(),
            refused_keys: 0,
            tried_user: String::new(),
            peer_key: None,
            consoles: HashMap::new(),
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(subsystem = "ssh", error = %error, "session ended with an error");
    }
}

/// Who a connection logged in as.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Login {
    None,
    /// A trusted peer (replication only).
    Peer,
    /// A local user (consoles only).
    Operator(String),
}

/// A console channel: asked for (with or without a terminal), then running.
enum ConsoleChannel {
    Asked(Option<Terminal>),
    Running(mpsc::Sender<Input>),
}

/// One client connection (a peer or an operator).
pub struct Connection {
    view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    status_page: Option<StatusPage>,
    followers: Arc<Recorded>,
    peers: Arc<Peers>,
    respond: Arc<dyn Respond>,
    /// Stops the watch that ends this connection when its key is no longer trusted.
    trust_watch: Option<tokio::sync::oneshot::Sender<()>>,
    peer: Option<SocketAddr>,
    /// Replication channels, and where the bytes each receives go (its task).
    subsystems: HashMap<ChannelId, mpsc::Sender<Vec<u8>>>,
    gate: Arc<Gate>,
    open_consoles: Arc<AtomicU32>,
    login: Login,
    /// Its place among the connections not logged in yet (given back at login).
    pending: Arc<crate::clients::Place>,
    /// Operator keys refused on this connection (a failure if nothing else succeeds).
    refused_keys: u32,
    /// The user name the last refused key was offered for.
    tried_user: String,
    /// The key a peer logged in with.
    peer_key: Option<PublicKey>,
    consoles: HashMap<ChannelId, ConsoleChannel>,
}

impl Connection {
    /// This connection counts among those not logged in until it logs in.
    pub fn awaiting_login(mut self, pending: Arc<crate::clients::Place>) -> Connection {
        self.pending = pending;
        self
    }

    /// Records a login: the connection is no longer one waiting to log in.
    fn logged_in(&mut self, who: Login) {
        self.login = who;
        self.pending.release();
    }

    /// The trusted keys as the store has them now (read off the async workers).
    async fn trusted_now(&self) -> Vec<russh::keys::PublicKey> {
        let dir = self.data_dir.clone();
        let hosts =
            tokio::task::spawn_blocking(move || crate::store::Store::open(&dir).and_then(|s| s.trusted_hosts()))
                .await
                .map_err(|e| crate::store::StoreError::Commit(e.to_string()))
                .and_then(|r| r);
        match hosts {
            Ok(hosts) => hosts.iter().filter_map(|h| crate::node::keys::parse_public(&h.key).ok()).collect(),
            Err(e) => {
                tracing::warn!(subsystem = "ssh", error = %e, "cannot read the trusted hosts");
                Vec::new()
            }
        }
    }

    fn peer(&self) -> String {
        self.peer.map_or_else(|| "unknown".into(), |p| p.to_string())
    }

    fn address(&self) -> IpAddr {
        self.peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip())
    }

    fn refuse(&self, channel: ChannelId, what: &str, session: &mut Session) -> Result<(), russh::Error> {
        let why = match self.login {
            Login::Peer => "peers may open only the replication channel",
            _ => "operators may open only a console",
        };
        tracing::warn!(subsystem = "ssh", peer = %self.peer(), "refused {what}: {why}");
        session.channel_failure(channel)?;
        session.close(channel)
    }

    /// Whether `key` is a trusted peer's.
    async fn trusted(&self, key: &PublicKey) -> bool {
        let same = |k: &PublicKey| k.key_data() == key.key_data();
        // A trusted host added a moment ago may not be in the view yet: ask the store.
        let in_view = self.view.borrow().trusted_keys.iter().any(same);
        in_view || self.trusted_now().await.iter().any(same)
    }

    /// Starts a shell (`command` `None`) or one command on `channel` for the operator.
    fn start_console(
        &mut self,
        channel: ChannelId,
        command: Option<String>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Login::Operator(user) = self.login.clone() else {
            return self.refuse(channel, "a console", session);
        };
        let terminal = match self.consoles.get(&channel) {
            Some(ConsoleChannel::Asked(terminal)) => terminal.clone(),
            _ => return self.refuse(channel, "a second console on one channel", session),
        };
        session.channel_success(channel)?;
        let policy = self.view.borrow().policy;
        let (tx, rx) = mpsc::channel(64);
        self.consoles.insert(channel, ConsoleChannel::Running(tx));
        let (gate, handle, open, address) =
            (self.gate.clone(), session.handle(), self.open_consoles.clone(), self.address());
        let kind = if command.is_some() { "exec" } else { "shell" };
        let term = terminal.as_ref().map_or_else(|| "-".to_string(), |t| t.term.clone());
        let data_dir = self.data_dir.clone();
        tokio::spawn(async move {
            if open.fetch_add(1, Ordering::SeqCst) >= policy.session_limit {
                open.fetch_sub(1, Ordering::SeqCst);
                let limit = policy.session_limit;
                let note =
                    format!("% Session limit reached: {limit} console sessions are open (session-limit {limit}).\r\n");
                let _ = handle.extended_data(channel, 1, bytes::Bytes::from(note)).await;
                gate.audit(&user, address, format!("{kind} refused: session limit {limit} reached"), Outcome::Denied)
                    .await;
                super::console::finish(&handle, channel, &End::Exited(1)).await;
                return;
            }
            let id = gate.session_opened(&user, address, kind, &term).await;
            // The line itself is audited by the shell that runs it, with its secrets
            // removed; here only that a command session started.
            let started = match &command {
                Some(_) => "exec".to_string(),
                None => format!("shell (terminal {term})"),
            };
            gate.audit(&user, address, started, Outcome::Ok).await;
            let launch = Launch {
                data_dir,
                user: user.clone(),
                address,
                session_id: id.unwrap_or(0),
                terminal,
                command,
                idle: policy.idle(),
            };
            let end = super::console::run(handle.clone(), channel, launch, rx).await;
            open.fetch_sub(1, Ordering::SeqCst);
            gate.session_closed(id).await;
            let outcome = if matches!(end, End::Exited(0) | End::Closed) { Outcome::Ok } else { Outcome::Failed };
            gate.audit(&user, address, format!("{kind} ended: {end}"), outcome).await;
            super::console::finish(&handle, channel, &end).await;
        });
        Ok(())
    }

    /// Hands `input` to the console on `channel`; `false` when there is none.
    async fn feed_console(&self, channel: ChannelId, input: Input) -> bool {
        match self.consoles.get(&channel) {
            Some(ConsoleChannel::Running(tx)) => {
                // The console may have ended; what it did not take is dropped.
                let _ = tx.send(input).await;
                true
            }
            Some(ConsoleChannel::Asked(_)) => true,
            None => false,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let (gate, address) = (self.gate.clone(), self.address());
        let ended = match &self.login {
            Login::Operator(user) => Some((user.clone(), true)),
            Login::None if self.refused_keys > 0 => Some((self.tried_user.clone(), false)),
            _ => None,
        };
        let Some((user, logged_in)) = ended else { return };
        let keys = self.refused_keys;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if logged_in {
                    gate.audit(&user, address, "logout".into(), Outcome::Ok).await;
                } else {
                    gate.failed(&user, address, format!("login failed (publickey): {keys} key(s) refused")).await;
                }
            });
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if user == PEER_USER || self.login != Login::None {
            return Ok(Auth::reject());
        }
        if self.gate.password(user, password, self.address()).await {
            self.logged_in(Login::Operator(user.to_string()));
            return Ok(Auth::Accept);
        }
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        let key = offer.public_key;
        let known = if user == PEER_USER { self.trusted(key).await } else { self.gate.user_key(user, key).await };
        if known {
            return Ok(Auth::Accept);
        }
        if user != PEER_USER {
            self.refused_keys += 1;
            self.tried_user = user.to_string();
        }
        tracing::debug!(subsystem = "ssh", peer = %self.peer(), user, key = %fingerprint(key), "key offer refused");
        Ok(Auth::reject())
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let print = fingerprint(key.public_key);
        if user == PEER_USER && self.trusted(key.public_key).await {
            tracing::debug!(subsystem = "ssh", peer = %self.peer(), key = %print, "peer authenticated");
            if self.peers.login_to_audit(&print) {
                self.gate.audit(PEER_USER, self.address(), format!("peer login (key {print})"), Outcome::Ok).await;
            }
            self.logged_in(Login::Peer);
            self.peer_key = Some(key.public_key.clone());
            return Ok(Auth::Accept);
        }
        if user != PEER_USER && self.gate.user_key(user, key.public_key).await {
            let address = self.address();
            if self.gate.locked_out(user, address).await {
                return Ok(Auth::reject());
            }
            self.gate.audit(user, address, format!("login (publickey {print})"), Outcome::Ok).await;
            self.logged_in(Login::Operator(user.to_string()));
            return Ok(Auth::Accept);
        }
        tracing::warn!(subsystem = "ssh", peer = %self.peer(), user, key = %print, "login refused: key not accepted");
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
        if name != SUBSYSTEM || self.login != Login::Peer {
            return self.refuse(channel, &format!("subsystem {name}"), session);
        }
        let Some(key) = self.peer_key.clone() else { return self.refuse(channel, "a channel without a key", session) };
        if self.trust_watch.is_none() {
            let (stop, ended) = tokio::sync::oneshot::channel();
            watch_trust(self.view.clone(), self.data_dir.clone(), key.clone(), session.handle(), ended, self.peer());
            self.trust_watch = Some(stop);
        }
        let caller =
            Caller { address: self.address(), peer: self.peer(), fingerprint: fingerprint(&key), key, hello: None };
        let serve = PeerChannel {
            view: self.view.clone(),
            data_dir: self.data_dir.clone(),
            status_page: self.status_page.clone(),
            followers: self.followers.clone(),
            peers: self.peers.clone(),
            gate: self.gate.clone(),
            respond: self.respond.clone(),
            caller,
        };
        self.subsystems.insert(channel, super::peer_channel::open(session.handle(), channel, serve));
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.consoles.entry(channel).or_insert(ConsoleChannel::Asked(None));
        self.start_console(channel, None, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        line: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.refuse(channel, "a command that is not UTF-8", session);
        };
        self.consoles.entry(channel).or_insert(ConsoleChannel::Asked(None));
        self.start_console(channel, Some(line.to_string()), session)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _: u32,
        _: u32,
        _: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if !matches!(self.login, Login::Operator(_)) || self.consoles.contains_key(&channel) {
            return self.refuse(channel, "a terminal", session);
        }
        let term = if term.is_empty() || term.len() > 64 { "dumb" } else { term };
        self.consoles.insert(channel, ConsoleChannel::Asked(Some(Terminal { term: term.to_string(), cols, rows })));
        session.channel_success(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _: u32,
        _: u32,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(ConsoleChannel::Asked(Some(t))) = self.consoles.get_mut(&channel) {
            (t.cols, t.rows) = (cols, rows);
        }
        self.feed_console(channel, Input::Resize { cols, rows }).await;
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _: &mut Session) -> Result<(), Self::Error> {
        self.feed_console(channel, Input::Close).await;
        self.consoles.remove(&channel);
        self.subsystems.remove(&channel);
        Ok(())
    }

    async fn channel_eof(&mut self, channel: ChannelId, _: &mut Session) -> Result<(), Self::Error> {
        // A peer with nothing more to ask: its channel's task ends once it has answered.
        if !self.feed_console(channel, Input::Eof).await {
            self.subsystems.remove(&channel);
        }
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        if self.feed_console(channel, Input::Data(data.to_vec())).await {
            return Ok(());
        }
        match self.subsystems.get(&channel) {
            // The channel's task reads it; if that task has ended, what came is dropped.
            Some(tx) => {
                let _ = tx.send(data.to_vec()).await;
                Ok(())
            }
            None => session.close(channel),
        }
    }
}
