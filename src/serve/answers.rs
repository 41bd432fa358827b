//! The daemon's answers to its trusted peers: each [`Request`] that reaches the SSH
//! server's replication channel (checked and audited there) is answered here, by the
//! part of the node that owns it: pulls and positions by replication's sending side,
//! streams by its feed (registered live in `followers`), `exec` and `test-back` by the
//! mate services, a switchover by this node's switchover runner, the steps of a
//! handover by its standby side (`handover`), and the settings the pair must agree on
//! by `shared`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::followers::Followers;
use super::handover::{Handovers, Here};
use super::mate::{self, Guesses};
use super::switchover::Switchovers;
use crate::http::hold::WriteHold;
use crate::node::view::NodeView;
use crate::peer::hello::StatusPage;
use crate::peer::message::Request;
use crate::peer::{Framed, Hello, PeerError};
use crate::replication::feed::{self, Wake};
use crate::replication::gate::Gate;
use crate::replication::send::{self, Asked};
use crate::ssh::peer_channel::{Answering, Caller, Respond, ServerLink};
use crate::store::{FeedState, StreamFollower, now_text};

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
    /// Where device writes wait for a synchronous standby.
    pub gate: Gate,
    /// Turns true when the daemon shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// The streams this node feeds now.
    pub followers: Arc<Followers>,
    /// The handover this node, as a standby, is ready for.
    pub handovers: Handovers,
    /// What the HTTP side knows of a switchover (here: that this node is ready).
    pub hold: Arc<WriteHold>,
    /// This node's consensus engine, when it runs one.
    pub quorum: super::quorum::Quorum,
    /// Where a peer's switchover request goes (this node's switchover runner).
    pub switchovers: Switchovers,
}

/// What a follower's stream says of it, written at most once a second while it lasts
/// and once when it ends (`show failover` on this node lists it).
struct Recording {
    latest: Arc<Mutex<StreamFollower>>,
    done: tokio::sync::oneshot::Sender<()>,
    writer: tokio::task::JoinHandle<()>,
    data_dir: PathBuf,
}

impl Recording {
    fn start(data_dir: &std::path::Path, caller: &Caller, from: i64) -> Recording {
        let hello = caller.hello.as_ref();
        let now = now_text();
        let follower = StreamFollower {
            node_id: hello.map(|h| h.node_id.clone()).unwrap_or_else(|| caller.fingerprint.clone()),
            hostname: hello.map(|h| h.hostname.clone()).unwrap_or_default(),
            address: caller.peer.clone(),
            state: FeedState::Streaming,
            applied_seq: from,
            applied_at: None,
            connected_at: now.clone(),
            updated_at: now,
        };
        let latest = Arc::new(Mutex::new(follower));
        let (done, mut finished) = tokio::sync::oneshot::channel();
        let (shared, dir) = (latest.clone(), data_dir.to_path_buf());
        let writer = tokio::spawn(async move {
            let mut written = None;
            loop {
                let now = shared.lock().map(|f| f.clone()).ok();
                if let Some(f) = now.filter(|f| written.as_ref() != Some(&(f.applied_seq, f.applied_at.clone()))) {
                    written = Some((f.applied_seq, f.applied_at.clone()));
                    write_follower(&dir, f).await;
                }
                tokio::select! {
                    _ = &mut finished => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
            }
        });
        Recording { latest, done, writer, data_dir: data_dir.to_path_buf() }
    }

    /// The follower as messages name it: host name and node id (its key's fingerprint
    /// when it sent no hello).
    fn name(&self) -> String {
        self.latest
            .lock()
            .map(|f| match f.hostname.is_empty() {
                true => f.node_id.clone(),
                false => format!("{} (node {})", f.hostname, f.node_id),
            })
            .unwrap_or_default()
    }

    /// Writes the stream's end.
    async fn end(self) {
        let _ = self.done.send(());
        let _ = self.writer.await;
        let last = self.latest.lock().map(|f| f.clone()).ok();
        if let Some(f) = last {
            write_follower(&self.data_dir, StreamFollower { state: FeedState::Ended, ..f }).await;
        }
    }
}

async fn write_follower(data_dir: &std::path::Path, mut f: StreamFollower) {
    f.updated_at = now_text();
    let dir = data_dir.to_path_buf();
    let written = tokio::task::spawn_blocking(move || {
        crate::store::Store::open(&dir).and_then(|mut s| s.put_stream_follower(&f))
    })
    .await;
    if let Ok(Err(e)) = written {
        tracing::warn!(subsystem = "replication", error = %e, "cannot record a follower's stream");
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
                Request::Follow { since, synchronous } => {
                    let record = Recording::start(&self.data_dir, caller, since.seq);
                    let registered = self.followers.start(caller, record.latest.clone());
                    let wake = Wake {
                        commits: self.commits.clone(),
                        stop: registered.stop.clone(),
                        shutdown: self.shutdown.clone(),
                    };
                    let standby = record.name();
                    let timeout = synchronous.map(|ms| std::time::Duration::from_millis(u64::from(ms)));
                    let node = caller.hello.as_ref().map(|h| h.node_id.clone());
                    self.gate.attach(&standby, node.as_deref(), timeout, since.seq);
                    let (seen, gate) = (record.latest.clone(), self.gate.clone());
                    let mut applied = move |seq: i64| {
                        gate.applied(&standby, seq);
                        if let Ok(mut f) = seen.lock() {
                            f.applied_seq = seq;
                            f.applied_at = Some(now_text());
                        }
                    };
                    let fed = feed::feed(out, &self.data_dir, since, wake, &mut applied).await;
                    drop(registered);
                    record.end().await;
                    fed
                }
                Request::Switchover { dry_run, to } => {
                    let report = self.switchovers.ask(dry_run, format!("peer {}", caller.peer), to).await;
                    out.send(&report).await
                }
                Request::Handover(step) => {
                    let here = Here { hold: &self.hold, view: &self.view, quorum: &self.quorum };
                    out.send(&self.handovers.answer(&self.data_dir, caller, step, &here).await).await
                }
                Request::Raft { call } => out.send(&self.quorum.answer(*call).await).await,
                Request::Exec(exec) => out.send(&mate::exec(&self.data_dir, exec, caller, &self.guesses).await).await,
                Request::TestBack => out.send(&mate::test_back(&self.data_dir, caller, &self.hello()).await).await,
                Request::SharedSettings => out.send(&shared_settings(&self.data_dir).await).await,
                Request::Hello(_) => {
                    Err(PeerError::Protocol { target: caller.peer.clone(), reason: "a second hello".into() })
                }
            }
        })
    }
}

/// This node's settings that the pair must agree on, read off the async threads.
async fn shared_settings(data_dir: &std::path::Path) -> crate::peer::message::SharedSettings {
    let dir = data_dir.to_path_buf();
    let read =
        tokio::task::spawn_blocking(move || crate::shared::of_this_node(&crate::store::Store::open(&dir)?)).await;
    match read {
        Ok(Ok(settings)) => settings,
        Ok(Err(e)) => crate::peer::message::SharedSettings { lines: Vec::new(), error: Some(e.to_string()) },
        Err(e) => crate::peer::message::SharedSettings { lines: Vec::new(), error: Some(e.to_string()) },
    }
}
