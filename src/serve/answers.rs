//! The daemon's answers to its trusted peers: each [`Request`] that reaches the SSH
//! server's replication channel (checked and audited there) is answered here, by the
//! part of the node that owns it: pulls and positions by replication's sending side,
//! `exec` and `test-back` by the mate services.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::mate::{self, Guesses};
use crate::node::view::NodeView;
use crate::peer::hello::StatusPage;
use crate::peer::message::Request;
use crate::peer::{Framed, Hello, PeerError};
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
                Request::Exec(exec) => out.send(&mate::exec(&self.data_dir, exec, caller, &self.guesses).await).await,
                Request::TestBack => out.send(&mate::test_back(&self.data_dir, caller, &self.hello()).await).await,
                Request::Hello(_) => {
                    Err(PeerError::Protocol { target: caller.peer.clone(), reason: "a second hello".into() })
                }
            }
        })
    }
}
