//! The server's side of the hello on the replication channel: what this node says of
//! itself (its status page and the replication chain it knows), and, when the peer's
//! hello says it follows this node, a record of that follower for the chain that
//! `show failover` draws (written at most every [`FOLLOWER_EVERY`] per follower, off the
//! async workers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::node::view::NodeView;
use crate::peer::hello::{Hello, StatusPage};

/// How often a follower's hello is recorded at most.
const FOLLOWER_EVERY: Duration = Duration::from_secs(5);
/// Followers remembered in memory before the map is cleared.
const MAX_REMEMBERED: usize = 64;

/// When each follower's hello was last recorded, by node id.
pub type Recorded = Mutex<HashMap<String, Instant>>;

/// This node's hello: who it is, its status page and the chain it knows.
pub fn our_hello(view: &watch::Receiver<Arc<NodeView>>, status_page: &Option<StatusPage>) -> Hello {
    let view = view.borrow().clone();
    Hello {
        status_page: status_page.clone(),
        upstream: view.upstream.clone(),
        downstream: view.downstream.clone(),
        ..Hello::of(&view.settings, &view.node_id)
    }
}

/// Records a peer whose hello says it follows this node (at most every
/// [`FOLLOWER_EVERY`] per node), for the chain `show failover` draws.
pub fn note_follower(node_id: &str, recorded: &Recorded, data_dir: &std::path::Path, address: String, theirs: &Hello) {
    if !theirs.follows(node_id) {
        return;
    }
    let now = Instant::now();
    if let Ok(mut seen) = recorded.lock() {
        if seen.get(&theirs.node_id).is_some_and(|at| now.duration_since(*at) < FOLLOWER_EVERY) {
            return;
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
        seen.insert(theirs.node_id.clone(), now);
    }
    let follower = crate::store::Follower {
        node_id: theirs.node_id.clone(),
        hostname: theirs.hostname.clone(),
        address,
        node_status: theirs.node_status.to_string(),
        epoch: theirs.epoch,
        followers: theirs.downstream.iter().take(crate::store::MAX_LINKS).cloned().collect(),
        seen_at: String::new(),
    };
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = crate::store::Store::open(&data_dir).and_then(|mut s| s.record_follower(&follower)) {
            tracing::warn!(subsystem = "ssh", error = %e, "cannot record a follower");
        }
    });
}
