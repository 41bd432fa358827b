//! Connecting to a peer over SSH as `coresh-peer`: the peer must present the host key
//! we trust for it, must accept our node key, and answers our [`Hello`] with its own.
//! Every way this can fail has its own [`PeerError`], so an operator is told exactly why.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};

use super::hello::{Hello, MAX_HELLO, PEER_USER, SUBSYSTEM};
use super::keys::fingerprint;
use crate::host::HostPort;
use crate::store::TrustedHost;

/// The SSH port when a HOST names none (the guide's port 22).
pub const DEFAULT_PORT: u16 = 22;
/// How long a whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why talking to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{target} presented host key {presented}, not the trusted key {expected}")]
    WrongHostKey { target: String, presented: String, expected: String },
    #[error("{target} does not trust this node's key {ours}: add it there with 'trusted-host'")]
    OurKeyRefused { target: String, ours: String },
    #[error("{target} refused the replication channel")]
    ChannelRefused { target: String },
    #[error("{target} did not answer in time")]
    Timeout { target: String },
    #[error("{target} broke the protocol: {reason}")]
    Protocol { target: String, reason: String },
    #[error("{target} answered with a hello this node cannot read ({reason}): does it run another release?")]
    BadHello { target: String, reason: String },
}

impl PeerError {
    /// Whether this says the peer did not answer (it may be down), rather than that a
    /// configuration keeps the two nodes from talking (trust, keys, releases).
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            PeerError::Unreachable { .. }
                | PeerError::Timeout { .. }
                | PeerError::ChannelRefused { .. }
                | PeerError::Protocol { .. }
        )
    }
}

/// Checks the server's key against the trusted one, remembering what it presented.
struct Verifier {
    expected: PublicKey,
    presented: Arc<Mutex<Option<PublicKey>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else { return Ok(false) };
        if let Ok(mut slot) = self.presented.lock() {
            *slot = Some(key.clone());
        }
        Ok(key.key_data() == self.expected.key_data())
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

/// How long a read may wait for the peer once connected.
const IDLE: Duration = Duration::from_secs(60);

/// An open replication channel to a peer, after both hellos.
pub struct PeerLink {
    session: client::Handle<Verifier>,
    channel: russh::Channel<client::Msg>,
    /// Bytes received and not read yet.
    buffer: Vec<u8>,
    /// Whether the peer has closed its side.
    ended: bool,
    /// `HOST[:PORT]`, for messages.
    target: String,
    /// The peer's clock minus ours, in milliseconds, measured by the hello exchange (its
    /// hello's time against the middle of our send and its answer).
    pub clock_offset_ms: i64,
}

/// Connects to `target`, proves both keys, sends `ours` and returns the peer's hello
/// and its clock offset in milliseconds.
pub async fn exchange_hello(
    target: &HostPort,
    key: &PrivateKey,
    trusted: &PublicKey,
    ours: &Hello,
) -> Result<(Hello, i64), PeerError> {
    let (link, hello) = PeerLink::open(target, key, trusted, ours).await?;
    let offset = link.clock_offset_ms;
    link.close().await;
    Ok((hello, offset))
}

impl PeerLink {
    /// Connects, authenticates both ways, opens the replication channel and trades hellos.
    pub async fn open(
        target: &HostPort,
        key: &PrivateKey,
        trusted: &PublicKey,
        ours: &Hello,
    ) -> Result<(PeerLink, Hello), PeerError> {
        let shown = target.to_string();
        match tokio::time::timeout(TIMEOUT, Self::connect(target, key, trusted, ours)).await {
            Ok(result) => result,
            Err(_) => Err(PeerError::Timeout { target: shown }),
        }
    }

    async fn connect(
        target: &HostPort,
        key: &PrivateKey,
        trusted: &PublicKey,
        ours: &Hello,
    ) -> Result<(PeerLink, Hello), PeerError> {
        let shown = target.to_string();
        let presented = Arc::new(Mutex::new(None));
        let verifier = Verifier { expected: trusted.clone(), presented: presented.clone() };
        // Without TCP_NODELAY every request-answer turn waits out delayed ACKs (40 ms).
        let config = Arc::new(client::Config { inactivity_timeout: Some(IDLE), nodelay: true, ..Default::default() });
        let addr = (target.host.as_str(), target.port.unwrap_or(DEFAULT_PORT));
        let mut session = match client::connect(config, addr, verifier).await {
            Ok(s) => s,
            Err(e) => {
                let seen = presented.lock().ok().and_then(|p| p.clone());
                return Err(match seen {
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
        let protocol = |e: russh::Error| PeerError::Protocol { target: target.to_string(), reason: e.to_string() };
        let auth = session
            .authenticate_publickey(PEER_USER, PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None))
            .await
            .map_err(protocol)?;
        if !auth.success() {
            return Err(PeerError::OurKeyRefused { target: shown, ours: fingerprint(key.public_key()) });
        }
        let channel = session.channel_open_session().await.map_err(protocol)?;
        channel.request_subsystem(true, SUBSYSTEM).await.map_err(protocol)?;
        let mut link =
            PeerLink { session, channel, buffer: Vec::new(), ended: false, target: shown.clone(), clock_offset_ms: 0 };
        let now = || chrono::Utc::now().timestamp_millis();
        let ours = Hello { time_ms: now(), ..ours.clone() };
        link.send_line(&ours.to_line()).await?;
        let line = link.read_line(MAX_HELLO).await?;
        let received = now();
        let hello: Hello =
            serde_json::from_slice(&line).map_err(|e| PeerError::BadHello { target: shown, reason: e.to_string() })?;
        link.clock_offset_ms = hello.time_ms - (ours.time_ms + received) / 2;
        Ok((link, hello))
    }

    /// Sends one line (a newline is added when missing).
    pub async fn send_line(&mut self, line: &str) -> Result<(), PeerError> {
        let mut bytes = line.as_bytes().to_vec();
        if !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        self.channel
            .data_bytes(bytes)
            .await
            .map_err(|e| PeerError::Protocol { target: self.target.clone(), reason: e.to_string() })
    }

    /// Waits for more bytes; false once the peer has closed.
    async fn fill(&mut self) -> Result<bool, PeerError> {
        if self.ended {
            return Ok(false);
        }
        loop {
            let msg = tokio::time::timeout(IDLE, self.channel.wait())
                .await
                .map_err(|_| PeerError::Timeout { target: self.target.clone() })?;
            match msg {
                Some(russh::ChannelMsg::Data { data }) => {
                    self.buffer.extend_from_slice(&data);
                    return Ok(true);
                }
                Some(russh::ChannelMsg::Failure) => {
                    return Err(PeerError::ChannelRefused { target: self.target.clone() });
                }
                Some(russh::ChannelMsg::Eof | russh::ChannelMsg::Close) | None => {
                    self.ended = true;
                    return Ok(false);
                }
                Some(_) => {}
            }
        }
    }

    /// Reads one line (without its newline), at most `max` bytes.
    pub async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, PeerError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                return Ok(line);
            }
            if self.buffer.len() > max {
                return Err(PeerError::Protocol { target: self.target.clone(), reason: "line too long".into() });
            }
            if !self.fill().await? {
                return Err(PeerError::ChannelRefused { target: self.target.clone() });
            }
        }
    }

    /// Reads exactly `n` bytes, handing them to `sink` as they come.
    pub async fn read_bytes(
        &mut self,
        mut n: u64,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), PeerError> {
        while n > 0 {
            if self.buffer.is_empty() && !self.fill().await? {
                return Err(PeerError::Protocol {
                    target: self.target.clone(),
                    reason: format!("connection ended with {n} bytes missing"),
                });
            }
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buffer.len());
            sink(&self.buffer[..take]).map_err(|e| PeerError::Protocol {
                target: self.target.clone(),
                reason: format!("cannot store: {e}"),
            })?;
            self.buffer.drain(..take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Ends the connection.
    pub async fn close(self) {
        let _ = self.session.disconnect(russh::Disconnect::ByApplication, "done", "en").await;
    }
}
