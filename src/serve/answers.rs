//! The daemon's answers to its trusted peers: each [`Request`] that reaches the SSH
//! server's replication channel (checked and audited there) is answered here, by the
//! part of the node that owns it: pulls and positions by replication's sending side,
//! streams by its feed (one per peer key: a newer one takes over, as after a follower
//! reconnects before this node saw the old connection die), `exec` and `test-back` by
//! the mate services.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::mate::{self, Guesses};
use crate::node::view::NodeView;
use crate::peer::hello::StatusPage;
use crate::peer::message::Request;
use crate::peer::{Framed, Hello, PeerError};
use crate::replication::feed::{self, Wake};
use crate::replication::send::{self, Asked};
use crate::ssh::peer_channel::{Answering, Caller, Respond, ServerLink};

/// What answers the peers of one daemon.
pub struct Answers {
    pub data_dir: PathBuf,
    pub view: watch::Receiver<Arc<NodeView>>,
    /// The status pages this daemon serves (its hello, when it connects back).
    pub status_page: Option<StatusPage>,
    /// Wrong mate enable secrets per peer key.
    pub guesses: Guesses,
    /// Bumped after each commit of the Core data this daemon makes.
    pub commits: watch::Receiver<u64>,
    /// Turns true when the daemon shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The stream of each peer key, to be told when a newer one takes over.
    pub streams: Streams,
}

/// One stream per peer key.
#[derive(Default)]
pub struct Streams(Mutex<HashMap<String, watch::Sender<Option<String>>>>);

impl Streams {
    /// Registers a stream for `key`; an older one of the same key is told to stop.
    fn start(&self, key: &str) -> watch::Receiver<Option<String>> {
        let (tell, told) = watch::channel(None);
        if let Ok(mut streams) = self.0.lock()
            && let Some(old) = streams.insert(key.to_string(), tell)
        {
            let _ = old.send(Some("a newer stream of the same peer took over".into()));
        }
        told
    }
}

impl Answers {
    /// The Atlas store, when a puller asks for it: sent, or why not.
    fn atlas(&self, asked: bool) -> Option<Result<(), String>> {
        let view = self.view.borrow();
        asked.then(|| match view.settings.atlas {
            true => Ok(()),
            false => Err(format!("Atlas is not enabled on {}", view.settings.hostname)),
        })
    }

    /// This node's hello, as it says it when it connects back to a peer.
    fn hello(&self) -> Hello {
        let view = self.view.borrow().clone();
        Hello { status_page: self.status_page.clone(), ..Hello::of(&view.settings, &view.node_id) }
    }
}

impl Respond for Answers {
    fn answer<'a>(&'a self, request: Request, caller: &'a Caller, out: &'a mut Framed<ServerLink>) -> Answering<'a> {
        Box::pin(async move {
            match request {
                Request::Changes { since, atlas, files } => {
                    let asked = Asked { since: Some(since), atlas: self.atlas(atlas), files };
                    send::pull(out, &self.data_dir, asked).await
                }
                Request::Snapshot { atlas, files } => {
                    let asked = Asked { since: None, atlas: self.atlas(atlas), files };
                    send::pull(out, &self.data_dir, asked).await
                }
                Request::Positions { first, last } => {
                    out.send(&send::positions(&self.data_dir, first, last, &caller.peer).await).await
                }
                Request::Follow { since } => {
                    let wake = Wake {
                        commits: self.commits.clone(),
                        stop: self.streams.start(&caller.fingerprint),
                        shutdown: self.shutdown.clone(),
                    };
                    let peer = caller.peer.clone();
                    let mut applied =
                        |seq: i64| tracing::debug!(subsystem = "replication", %peer, seq, "follower applied");
                    feed::feed(out, &self.data_dir, since, wake, &mut applied).await
                }
                Request::Exec(exec) => out.send(&mate::exec(&self.data_dir, exec, caller, &self.guesses).await).await,
                Request::TestBack => out.send(&mate::test_back(&self.data_dir, caller, &self.hello()).await).await,
                Request::Hello(_) => {
                    Err(PeerError::Protocol { target: caller.peer.clone(), reason: "a second hello".into() })
                }
            }
        })
    }
}
