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

/// Connects to `target`, proves both keys, sends `ours` and returns the peer's hello.
pub async fn exchange_hello(
    target: &HostPort,
    key: &PrivateKey,
    trusted: &PublicKey,
    ours: &Hello,
) -> Result<Hello, PeerError> {
    let shown = target.to_string();
    match tokio::time::timeout(TIMEOUT, exchange(target, key, trusted, ours)).await {
        Ok(result) => result,
        Err(_) => Err(PeerError::Timeout { target: shown }),
    }
}

async fn exchange(target: &HostPort, key: &PrivateKey, trusted: &PublicKey, ours: &Hello) -> Result<Hello, PeerError> {
    let shown = target.to_string();
    let presented = Arc::new(Mutex::new(None));
    let verifier = Verifier { expected: trusted.clone(), presented: presented.clone() };
    let config = Arc::new(client::Config { inactivity_timeout: Some(TIMEOUT), ..Default::default() });
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
    let mut channel = session.channel_open_session().await.map_err(protocol)?;
    channel.request_subsystem(true, SUBSYSTEM).await.map_err(protocol)?;
    channel.data_bytes(ours.to_line().into_bytes()).await.map_err(protocol)?;
    let mut received = Vec::new();
    while let Some(msg) = channel.wait().await {
        match msg {
            russh::ChannelMsg::Data { data } => {
                received.extend_from_slice(&data);
                if received.len() > MAX_HELLO {
                    return Err(PeerError::Protocol { target: shown, reason: "hello too long".into() });
                }
                if received.contains(&b'\n') {
                    break;
                }
            }
            russh::ChannelMsg::Failure => return Err(PeerError::ChannelRefused { target: shown }),
            russh::ChannelMsg::Eof | russh::ChannelMsg::Close => break,
            _ => {}
        }
    }
    let _ = session.disconnect(russh::Disconnect::ByApplication, "done", "en").await;
    let line = received.split(|&b| b == b'\n').next().unwrap_or_default();
    if line.is_empty() {
        return Err(PeerError::ChannelRefused { target: shown });
    }
    serde_json::from_slice(line).map_err(|e| PeerError::Protocol { target: shown, reason: format!("bad hello: {e}") })
}
