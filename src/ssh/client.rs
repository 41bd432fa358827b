//! Reaching a peer over SSH as `coresh-peer`: the peer must present the host key this
//! node trusts for it and accept this node's key; then the replication channel is the
//! [`Link`] a [`Peer`] talks over. [`Peer::trusted`] (and [`Blocking::trusted`] for
//! callers that are not async) finds the trusted-host entry and the keys itself. Every
//! way this can fail has its own [`PeerError`], so an operator is told exactly why. The
//! link keeps the cipher the key exchange settled on ([`SshLink::cipher`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use crate::host::HostPort;
use crate::node::Node;
use crate::node::keys::{fingerprint, host_key, parse_public};
use crate::peer::{Blocking, Hello, Link, PEER_USER, Peer, PeerError, SUBSYSTEM};
use crate::store::TrustedHost;

/// What a peer link offers: russh's safe defaults, with AES-256-GCM before
/// ChaCha20-Poly1305. Both are AEADs of the same strength; where the CPU has AES
/// instructions (every x86 server this runs on), AES-GCM moves a full copy's bytes for
/// less CPU (docs/benchmarks.md, full sync). The client's order decides, so this is
/// the whole choice for peer links; operators' SSH clients keep theirs.
const PEER_ALGORITHMS: russh::Preferred = russh::Preferred {
    cipher: std::borrow::Cow::Borrowed(&[
        russh::cipher::AES_256_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
    ]),
    ..russh::Preferred::DEFAULT
};

/// The SSH port when a HOST names none (the guide's port 22).
pub const DEFAULT_PORT: u16 = 22;
/// How long connecting, logging in and trading hellos may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// How long a read may wait for the peer once connected.
const IDLE: Duration = Duration::from_secs(60);

/// Checks the server's key against the trusted one, remembering what it saw.
struct Verifier {
    expected: PublicKey,
    seen: Arc<Mutex<Seen>>,
}

/// What the server showed during the connection: its key, and the cipher the key
/// exchange settled on.
#[derive(Default)]
struct Seen {
    key: Option<PublicKey>,
    cipher: Option<russh::cipher::Name>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else { return Ok(false) };
        if let Ok(mut seen) = self.seen.lock() {
            seen.key = Some(key.clone());
        }
        Ok(key.key_data() == self.expected.key_data())
    }

    async fn kex_done(
        &mut self,
        _: Option<&[u8]>,
        names: &russh::Names,
        _: &mut client::Session,
    ) -> Result<(), Self::Error> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.cipher = Some(names.cipher);
        }
        Ok(())
    }
}

/// The trusted entry for `target`: the exact `HOST:PORT`, or the bare host when the
/// port is the default one.
pub fn trusted_for<'a>(list: &'a [TrustedHost], target: &HostPort) -> Option<&'a TrustedHost> {
    let exact = target.to_string();
    let bare = HostPort { host: target.host.clone(), port: None }.to_string();
    let default_port = target.port.is_none_or(|p| p == DEFAULT_PORT);
    list.iter().find(|t| t.host == exact).or_else(|| list.iter().find(|t| default_port && t.host == bare))
}

/// The replication channel to a peer, client side.
pub struct SshLink {
    session: client::Handle<Verifier>,
    channel: russh::Channel<client::Msg>,
    target: String,
    /// The cipher both directions use (`failover test-connection` shows it).
    cipher: Option<russh::cipher::Name>,
}

impl SshLink {
    /// The cipher the key exchange settled on, as SSH names it.
    pub fn cipher(&self) -> &str {
        self.cipher.as_ref().map_or("unknown", AsRef::as_ref)
    }
}

impl Link for SshLink {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), PeerError> {
        self.channel
            .data_bytes(bytes)
            .await
            .map_err(|e| PeerError::Protocol { target: self.target.clone(), reason: e.to_string() })
    }

    async fn recv(&mut self) -> Result<Option<Vec<u8>>, PeerError> {
        loop {
            let msg = tokio::time::timeout(IDLE, self.channel.wait())
                .await
                .map_err(|_| PeerError::Timeout { target: self.target.clone() })?;
            match msg {
                Some(russh::ChannelMsg::Data { data }) => return Ok(Some(data.to_vec())),
                Some(russh::ChannelMsg::Failure) => {
                    return Err(PeerError::ChannelRefused { target: self.target.clone() });
                }
                Some(russh::ChannelMsg::Eof | russh::ChannelMsg::Close) | None => return Ok(None),
                Some(_) => {}
            }
        }
    }

    async fn close(self) {
        let _ = self.session.disconnect(russh::Disconnect::ByApplication, "done", "en").await;
    }
}

/// Connects to `target`, proves both keys (`trusted` is the key it must present, `key`
/// this node's) and opens the replication channel.
pub async fn connect(target: &HostPort, key: &PrivateKey, trusted: &PublicKey) -> Result<SshLink, PeerError> {
    let shown = target.to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let verifier = Verifier { expected: trusted.clone(), seen: seen.clone() };
    // Without TCP_NODELAY every request-answer turn waits out delayed ACKs (40 ms).
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(IDLE),
        nodelay: true,
        preferred: PEER_ALGORITHMS,
        ..Default::default()
    });
    let addr = (target.host.as_str(), target.port.unwrap_or(DEFAULT_PORT));
    let mut session = match client::connect(config, addr, verifier).await {
        Ok(s) => s,
        Err(e) => {
            let presented = seen.lock().ok().and_then(|s| s.key.clone());
            return Err(match presented {
                Some(p) if p.key_data() != trusted.key_data() => PeerError::WrongHostKey {
                    target: shown,
                    presented: fingerprint(&p),
                    expected: fingerprint(trusted),
                },
                Some(_) => PeerError::Protocol { target: shown, reason: e.to_string() },
                None => PeerError::Unreachable { target: shown, reason: e.to_string() },
            });
        }
    };
    let protocol = |e: russh::Error| PeerError::Protocol { target: shown.clone(), reason: e.to_string() };
    let auth = session
        .authenticate_publickey(PEER_USER, PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None))
        .await
        .map_err(protocol)?;
    if !auth.success() {
        return Err(PeerError::OurKeyRefused { target: shown, ours: fingerprint(key.public_key()) });
    }
    let channel = session.channel_open_session().await.map_err(protocol)?;
    channel.request_subsystem(true, SUBSYSTEM).await.map_err(protocol)?;
    let cipher = seen.lock().ok().and_then(|s| s.cipher);
    Ok(SshLink { session, channel, target: shown, cipher })
}

impl Peer<SshLink> {
    /// Reaches `target` with the keys given and trades hellos, within the time a whole
    /// exchange may take.
    pub async fn connect(
        target: &HostPort,
        key: &PrivateKey,
        trusted: &PublicKey,
        ours: &Hello,
    ) -> Result<Peer<SshLink>, PeerError> {
        let shown = target.to_string();
        let reach = async { Peer::greet(connect(target, key, trusted).await?, &shown, ours).await };
        tokio::time::timeout(TIMEOUT, reach).await.map_err(|_| PeerError::Timeout { target: shown.clone() })?
    }

    /// Reaches the trusted host `target` of `node`, as its trusted-host entry and the
    /// node's key allow, and trades hellos (`ours` is this node's).
    pub async fn trusted(node: &Node, target: &HostPort, ours: &Hello) -> Result<Peer<SshLink>, PeerError> {
        let key = host_key(&node.data_dir).map_err(|e| PeerError::Local(e.to_string()))?;
        Peer::trusted_as(node, &key, target, ours).await
    }

    /// [`Peer::trusted`] with this node's key already read (the heartbeat reads it once).
    pub async fn trusted_as(
        node: &Node,
        key: &PrivateKey,
        target: &HostPort,
        ours: &Hello,
    ) -> Result<Peer<SshLink>, PeerError> {
        Peer::connect(target, key, &trusted_key(node, target)?, ours).await
    }
}

/// The key `target` must present, from `node`'s trusted hosts as they are now.
pub fn trusted_key(node: &Node, target: &HostPort) -> Result<PublicKey, PeerError> {
    let local = |e: String| PeerError::Local(e);
    let trusted = node.store.trusted_hosts().map_err(|e| local(format!("cannot read the trusted hosts: {e}")))?;
    let entry = trusted_for(&trusted, target).ok_or_else(|| PeerError::Untrusted { target: target.to_string() })?;
    parse_public(&entry.key).map_err(|e| local(format!("the trusted key of {target} is unreadable: {e}")))
}

impl Blocking<SshLink> {
    /// [`Peer::trusted`] for a caller that is not async, with this node's own hello.
    pub fn trusted(node: &Node, target: &HostPort) -> Result<Blocking<SshLink>, PeerError> {
        let settings = node.settings().map_err(|e| PeerError::Local(e.to_string()))?;
        Blocking::trusted_with(node, target, &Hello::of(&settings, &node.id))
    }

    /// [`Peer::trusted`] for a caller that is not async.
    pub fn trusted_with(node: &Node, target: &HostPort, ours: &Hello) -> Result<Blocking<SshLink>, PeerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PeerError::Local(format!("cannot start a runtime: {e}")))?;
        let peer = runtime.block_on(Peer::trusted(node, target, ours))?;
        Ok(Blocking::new(runtime, peer))
    }
}
