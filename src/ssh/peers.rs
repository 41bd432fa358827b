//! A trusted peer's connections, server side: what it may do and what is recorded of
//! it. A peer is trusted only while a trusted-host entry holds its key: [`watch_trust`]
//! ends its connection as soon as the entry goes (`no trusted-host`), and every request
//! is checked against the trusted keys of the moment. One snapshot stream per peer key
//! at a time, one request per channel. Logins (one audit line per key every
//! [`LOGIN_AUDIT_EVERY`]), pulls, positions, exec and test-back requests go to the audit
//! log with the key's fingerprint.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::keys::PublicKey;
use tokio::sync::{oneshot, watch};

use crate::node::view::NodeView;

/// How often one peer key's logins are audited at most (a heartbeat logs in every
/// interval).
pub const LOGIN_AUDIT_EVERY: Duration = Duration::from_secs(600);
/// Peer keys remembered in each table at most.
const MAX_KEYS: usize = 1024;

/// What the daemon remembers of its peers across their connections.
#[derive(Default)]
pub struct Peers {
    /// Keys (fingerprints) with a snapshot stream under way.
    streaming: Mutex<HashSet<String>>,
    /// When each key's login was last audited.
    logins: Mutex<HashMap<String, Instant>>,
}

/// A snapshot stream under way for one key; ends when dropped.
pub struct Streaming {
    peers: Arc<Peers>,
    key: String,
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if let Ok(mut s) = self.peers.streaming.lock() {
            s.remove(&self.key);
        }
    }
}

impl Peers {
    /// A stream for `key`, unless one is under way already.
    pub fn start_stream(self: &Arc<Self>, key: &str) -> Option<Streaming> {
        let mut streaming = self.streaming.lock().ok()?;
        streaming.insert(key.to_string()).then(|| Streaming { peers: self.clone(), key: key.to_string() })
    }

    /// Whether a login of `key` is to be audited now (the first in a while).
    pub fn login_to_audit(&self, key: &str) -> bool {
        let now = Instant::now();
        let Ok(mut logins) = self.logins.lock() else { return true };
        if logins.get(key).is_some_and(|at| now.duration_since(*at) < LOGIN_AUDIT_EVERY) {
            return false;
        }
        if logins.len() >= MAX_KEYS {
            logins.retain(|_, at| now.duration_since(*at) < LOGIN_AUDIT_EVERY);
        }
        logins.insert(key.to_string(), now);
        true
    }
}

/// Whether `key` is among the trusted keys of `view` now.
pub fn trusted_now(view: &watch::Receiver<Arc<NodeView>>, key: &PublicKey) -> bool {
    view.borrow().trusted_keys.iter().any(|k| k.key_data() == key.key_data())
}

/// Whether the store's trusted hosts hold `key` (read off the async workers).
pub async fn trusted_in_store(data_dir: &std::path::Path, key: &PublicKey) -> bool {
    let dir = data_dir.to_path_buf();
    let hosts = tokio::task::spawn_blocking(move || crate::store::Store::open(&dir).and_then(|s| s.trusted_hosts()));
    match hosts.await {
        Ok(Ok(hosts)) => hosts
            .iter()
            .filter_map(|h| crate::node::keys::parse_public(&h.key).ok())
            .any(|k| k.key_data() == key.key_data()),
        // Unreadable: keep the connection; the next change of the view looks again.
        _ => true,
    }
}

/// Ends the connection of `handle` once `key` is no longer trusted; gives up when
/// `ended` fires (the connection closed by itself).
pub fn watch_trust(
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: std::path::PathBuf,
    key: PublicKey,
    handle: russh::server::Handle,
    mut ended: oneshot::Receiver<()>,
    peer: String,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut ended => return,
                changed = view.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            if !trusted_now(&view, &key) && !trusted_in_store(&data_dir, &key).await {
                tracing::warn!(subsystem = "ssh", %peer, "trusted host removed: ending its connection");
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "no longer a trusted host".into(), String::new())
                    .await;
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stream_per_key_and_logins_audited_once_in_a_while() {
        let peers = Arc::new(Peers::default());
        let first = peers.start_stream("SHA256:a").unwrap();
        assert!(peers.start_stream("SHA256:a").is_none());
        assert!(peers.start_stream("SHA256:b").is_some());
        drop(first);
        assert!(peers.start_stream("SHA256:a").is_some());
        assert!(peers.login_to_audit("SHA256:a"));
        assert!(!peers.login_to_audit("SHA256:a"), "audited once in a while");
    }
}
