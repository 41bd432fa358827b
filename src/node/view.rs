//! The daemon's live view of its node: HA settings, last sync, the stream from its
//! primary, the enrollment secret,
//! the trusted keys, the console's login policy and the replication chain, re-read
//! whenever another process (a shell) commits to the databases (`PRAGMA data_version`),
//! and published to the HTTP and SSH handlers through a watch channel. This is how
//! `failover client-connection disable` takes effect without a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use crate::coredb::{CoreDb, ENROLLMENT_SECRET};
use crate::ha::Settings;
use crate::store::{Store, StoreError, SyncSummary};

/// How often the databases are checked for changes.
const POLL: Duration = Duration::from_millis(50);

/// What request handlers need to know about the node.
#[derive(Debug, Clone)]
pub struct NodeView {
    /// HA settings (mode, state, epoch, client connections, ...).
    pub settings: Settings,
    /// The last sync run.
    pub last_sync: Option<SyncSummary>,
    /// Argon2 hash of the enrollment secret; `None` closes registration.
    pub enrollment_hash: Option<String>,
    /// Node id.
    pub node_id: String,
    /// Public keys of the trusted hosts (peers may log in with these only).
    pub trusted_keys: Vec<russh::keys::PublicKey>,
    /// The console's login policy.
    pub policy: super::policy::Policy,
    /// The replication chain above and below this node, as its hello tells it.
    pub upstream: Vec<crate::store::ChainLink>,
    pub downstream: Vec<crate::store::ChainLink>,
    /// How this node's stream from its primary last stood, if one ever ran.
    pub stream: Option<crate::store::StreamStatus>,
    /// `None` while the databases read fine; otherwise why not.
    pub fault: Option<String>,
}

/// Reads the view once.
fn read(store: &Store, core: &CoreDb, node_id: &str) -> Result<NodeView, StoreError> {
    let map = store.settings()?;
    let (upstream, downstream) = store.chain_links()?;
    Ok(NodeView {
        upstream,
        downstream,
        settings: Settings::from_map(&map)?,
        policy: super::policy::Policy::from_map(&map),
        last_sync: store.last_sync()?,
        stream: store.stream_status()?,
        enrollment_hash: core.setting(ENROLLMENT_SECRET)?,
        node_id: node_id.to_string(),
        trusted_keys: store
            .trusted_hosts()?
            .iter()
            .filter_map(|t| match crate::node::keys::parse_public(&t.key) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::warn!(subsystem = "view", host = %t.host, error = %e, "trusted key unreadable; ignored");
                    None
                }
            })
            .collect(),
        fault: None,
    })
}

/// The watcher thread and the channel it publishes on.
pub struct Watcher {
    /// Receives every new view.
    pub view: watch::Receiver<Arc<NodeView>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Opens its own connections to the node's databases and starts watching.
    pub fn start(data_dir: PathBuf, node_id: String) -> Result<Watcher, StoreError> {
        let store = Store::open(&data_dir)?;
        let core = CoreDb::open(&data_dir)?;
        let first = read(&store, &core, &node_id)?;
        let (tx, view) = watch::channel(Arc::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("node-view".into())
            .spawn(move || watch_loop(store, core, node_id, tx, flag))
            .map_err(|e| StoreError::Commit(format!("cannot start the view thread: {e}")))?;
        Ok(Watcher { view, stop, thread: Some(thread) })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch_loop(store: Store, core: CoreDb, node_id: String, tx: watch::Sender<Arc<NodeView>>, stop: Arc<AtomicBool>) {
    let mut seen = (store.data_version().ok(), core.data_version().ok());
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(POLL);
        let now = (store.data_version().ok(), core.data_version().ok());
        let faulty = tx.borrow().fault.is_some();
        if now == seen && !faulty {
            continue;
        }
        seen = now;
        let next = match read(&store, &core, &node_id) {
            Ok(view) => view,
            Err(e) => {
                tracing::error!(subsystem = "view", error = %e, "cannot read the node's settings");
                NodeView { fault: Some(e.to_string()), ..(**tx.borrow()).clone() }
            }
        };
        if tx.send(Arc::new(next)).is_err() {
            return;
        }
    }
}
