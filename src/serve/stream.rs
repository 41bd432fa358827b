//! The daemon's stream from its primary (`replication mode continuous`): while HA is
//! enabled on a standby secondary with a primary-host, it holds one connection to the
//! primary over the trusted channel, asks to follow its change log from this node's
//! head, applies each batch as it comes (`replication::follow`) and says what it
//! applied. It reconnects with a growing wait (up to [`BACKOFF_MAX`]) when the link
//! fails or the primary says nothing for [`SILENCE`]; where the primary's log cannot
//! bring this node on, or a batch does not apply, a sync does (a full copy when changes
//! were refused) and the stream starts again from where that left this node. Each
//! decision goes to the HA log once; how the stream stands is written for `show
//! failover` (`store::stream`), and while this node holds every change of the primary
//! its data counts as synced now (the promotion rule's staleness). Each entry's time
//! from the primary's commit to its apply here is measured (`replication::lag`) and
//! written a second at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use crate::ha::{Cause, Mode, NodeStatus, ReplicationMode, Settings};
use crate::host::HostPort;
use crate::node::Node;
use crate::node::view::NodeView;
use crate::peer::Hello;
use crate::peer::Peer;
use crate::peer::message::Applied;
use crate::replication::follow::{self, FollowError, Frame};
use crate::replication::lag::Seconds;
use crate::replication::pull::sync_from;
use crate::store::{StreamState, StreamStatus, SyncKind, now_text};

/// The first wait before connecting again; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A primary that says nothing for this long (it says where its log ends every second)
/// is taken for gone.
const SILENCE: Duration = Duration::from_secs(10);
/// How often progress is written when nothing else changed.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Starts the stream on a thread of its own; it ends when `stop` turns true.
pub fn spawn(
    view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    commits: Arc<watch::Sender<u64>>,
    stop: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("stream".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(subsystem = "stream", error = %e, "cannot start the stream");
                return;
            }
        };
        runtime.block_on(run(view, data_dir, commits, stop));
    })
}

/// The primary to follow, when this node should follow one.
fn wanted(s: &Settings) -> Option<HostPort> {
    let follows = s.enabled
        && s.mode == Mode::Secondary
        && s.node_status == NodeStatus::Standby
        && matches!(s.replication_mode, ReplicationMode::Continuous | ReplicationMode::Synchronous);
    s.primary_host.clone().filter(|_| follows)
}

/// How one stream session ended.
enum End {
    /// The daemon stops.
    Stopped,
    /// The settings no longer ask for this stream.
    Changed,
    /// Connect again at once (a sync moved this node on).
    Resume,
    /// Connect again after a wait, and why.
    Again(String),
}

async fn run(
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    commits: Arc<watch::Sender<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut said = String::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let settings = view.borrow_and_update().settings.clone();
        let Some(primary) = wanted(&settings) else {
            report_off(&data_dir);
            tokio::select! {
                _ = view.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        let ended = match Session::open(&data_dir, &primary, &commits) {
            Ok(mut session) => session.follow(&mut view, &stop).await,
            Err(why) => End::Again(why),
        };
        match ended {
            End::Stopped => return,
            End::Changed | End::Resume => backoff = BACKOFF_MIN,
            End::Again(why) => {
                if why != said {
                    note(&data_dir, "warning", &format!("stream from {primary}: {why}; retrying"));
                    said.clone_from(&why);
                }
                let retry = format!("{why}; trying again in {} ms", backoff.as_millis());
                write_status(&data_dir, |s| {
                    s.state = StreamState::Retrying;
                    s.detail = retry;
                    true
                });
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = view.changed() => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One connection's worth of following.
struct Session<'a> {
    node: Node,
    primary: HostPort,
    commits: &'a watch::Sender<u64>,
    status: StreamStatus,
    written: Instant,
    /// When the HA settings last took this node's data as synced now.
    synced_at: Option<Instant>,
    hello: Option<Hello>,
    /// The timeout this stream asked to be synchronous with.
    synchronous: Option<u32>,
    /// Commit-to-apply times of this second's entries.
    lag: Seconds,
}

impl<'a> Session<'a> {
    fn open(data_dir: &Path, primary: &HostPort, commits: &'a watch::Sender<u64>) -> Result<Session<'a>, String> {
        let mut node = Node::open(data_dir).map_err(|e| e.to_string())?;
        let head = node.core().and_then(|c| c.log_head()).map_err(|e| e.to_string())?;
        let now = now_text();
        let status = StreamStatus {
            peer: primary.to_string(),
            state: StreamState::Connecting,
            detail: String::new(),
            applied_seq: head.seq,
            peer_seq: head.seq,
            behind_since: None,
            caught_up_at: None,
            entries: 0,
            bytes: 0,
            connected_at: None,
            updated_at: now,
        };
        let mut session = Session {
            node,
            primary: primary.clone(),
            commits,
            status,
            written: Instant::now(),
            synced_at: None,
            hello: None,
            synchronous: None,
            lag: Seconds::default(),
        };
        session.write();
        Ok(session)
    }

    /// Follows until something ends it; the daemon stopping ends it at once.
    async fn follow(&mut self, view: &mut watch::Receiver<Arc<NodeView>>, stop: &watch::Receiver<bool>) -> End {
        let mut stopping = stop.clone();
        tokio::select! {
            end = self.follow_until(view) => end,
            _ = stopping.wait_for(|s| *s) => End::Stopped,
        }
    }

    async fn follow_until(&mut self, view: &mut watch::Receiver<Arc<NodeView>>) -> End {
        let key = match crate::node::keys::host_key(&self.node.data_dir) {
            Ok(k) => k,
            Err(e) => return End::Again(format!("this node's key: {e}")),
        };
        let settings = match self.node.settings() {
            Ok(s) => s,
            Err(e) => return End::Again(e.to_string()),
        };
        let ours = Hello::of(&settings, &self.node.id);
        let mut peer = match Peer::trusted_as(&self.node, &key, &self.primary, &ours).await {
            Ok(p) => p,
            Err(e) => return End::Again(e.to_string()),
        };
        let theirs = peer.hello().clone();
        if theirs.version != ours.version {
            peer.close().await;
            return End::Again(format!(
                "version mismatch: this node runs coresh {}, {} runs coresh {}",
                ours.version, self.primary, theirs.version
            ));
        }
        if theirs.epoch < settings.last_sync_epoch {
            peer.close().await;
            return End::Again(format!(
                "{} is at epoch {}, older than epoch {} this node last synced from: a stale primary",
                self.primary, theirs.epoch, settings.last_sync_epoch
            ));
        }
        let since = match self.node.core().and_then(|c| c.log_head()) {
            Ok(h) => h,
            Err(e) => return End::Again(e.to_string()),
        };
        self.hello = Some(theirs);
        let synchronous =
            (settings.replication_mode == ReplicationMode::Synchronous).then_some(settings.sync_timeout_ms);
        self.synchronous = synchronous;
        let framed = match peer.follow(since.clone(), synchronous).await {
            Ok(f) => f,
            Err(e) => return End::Again(e.to_string()),
        };
        note(
            &self.node.data_dir,
            "info",
            &format!("stream from {}: following from change {}", self.primary, since.seq),
        );
        self.status.state = StreamState::Streaming;
        self.status.detail = String::new();
        self.status.connected_at = Some(now_text());
        self.write();
        let ended = loop {
            let frame = match tokio::time::timeout(SILENCE, follow::next(framed)).await {
                Err(_) => break End::Again(format!("no word from {} for {} s", self.primary, SILENCE.as_secs())),
                Ok(Err(e)) => break End::Again(e.to_string()),
                Ok(Ok(frame)) => frame,
            };
            let outcome = match frame {
                Frame::Batch(entries) => match self.apply(&entries).await {
                    None => framed
                        .send(&Applied { seq: self.status.applied_seq })
                        .await
                        .err()
                        .map(|e| End::Again(e.to_string())),
                    end => end,
                },
                Frame::Idle { head, .. } => {
                    self.status.peer_seq = head.seq;
                    None
                }
                Frame::Gap(why) => Some(self.sync(SyncKind::Incremental, &why).await),
                Frame::Stop(why) => Some(End::Again(format!("{} stopped the stream: {why}", self.primary))),
                Frame::Ended => Some(End::Again(format!("{} ended the stream", self.primary))),
            };
            if let Some(end) = outcome {
                break end;
            }
            self.progress();
            if view.has_changed().unwrap_or(true) {
                let now = view.borrow_and_update().settings.clone();
                let synchronous = (now.replication_mode == ReplicationMode::Synchronous).then_some(now.sync_timeout_ms);
                if wanted(&now).as_ref() != Some(&self.primary) || synchronous != self.synchronous {
                    break End::Changed;
                }
            }
        };
        peer.close().await;
        ended
    }

    /// Applies a batch; `Some` ends the session.
    async fn apply(&mut self, entries: &[crate::coredb::changelog::Entry]) -> Option<End> {
        let last = entries.last()?.seq;
        self.status.peer_seq = self.status.peer_seq.max(last);
        match follow::apply(&mut self.node, entries) {
            Ok(applied) => {
                self.lag.record(entries, Utc::now().timestamp_millis());
                self.status.applied_seq = applied.head.seq;
                self.status.entries += i64::try_from(entries.len()).unwrap_or(i64::MAX);
                let bytes: usize = entries.iter().map(|e| e.changeset.len()).sum();
                self.status.bytes += i64::try_from(bytes).unwrap_or(i64::MAX);
                self.commits.send_modify(|n| *n = n.wrapping_add(1));
                None
            }
            Err(FollowError::Busy(why)) => Some(End::Again(format!("{why}; the stream resumes after it"))),
            Err(FollowError::RoleChanged { .. }) => Some(End::Changed),
            Err(FollowError::Moved(why)) => {
                tracing::info!(subsystem = "stream", peer = %self.primary, %why, "following again from this node's head");
                Some(End::Resume)
            }
            Err(FollowError::Refused(e)) => Some(self.sync(SyncKind::Full, &e.to_string()).await),
            Err(FollowError::Store(e)) => Some(End::Again(e.to_string())),
        }
    }

    /// A sync from the primary where the stream cannot bring this node on; then the
    /// stream starts again from where the sync left it.
    async fn sync(&mut self, kind: SyncKind, why: &str) -> End {
        let what = if kind == SyncKind::Full { "a full copy" } else { "a sync" };
        note(
            &self.node.data_dir,
            "warning",
            &format!("stream from {}: {why}; {what} brings this node on", self.primary),
        );
        self.status.state = StreamState::Syncing;
        self.status.detail = format!("{why}; {what} under way");
        self.write();
        let (dir, primary) = (self.node.data_dir.clone(), self.primary.clone());
        let synced = tokio::task::spawn_blocking(move || {
            let mut node = Node::open(&dir).map_err(|e| e.to_string())?;
            sync_from(&mut node, &primary, kind, &mut |_| {}).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        match synced {
            Ok(_) => {
                self.commits.send_modify(|n| *n = n.wrapping_add(1));
                End::Resume
            }
            Err(e) => End::Again(format!("the sync failed: {e}")),
        }
    }

    /// Keeps lag and level up to date; writes them at most once a second, and takes this
    /// node's data as synced now while it holds every change of the primary.
    fn progress(&mut self) {
        let now = now_text();
        let level = self.status.applied_seq >= self.status.peer_seq;
        if level {
            self.status.behind_since = None;
            self.status.caught_up_at = Some(now.clone());
        } else if self.status.behind_since.is_none() {
            self.status.behind_since = Some(now.clone());
        }
        if self.written.elapsed() >= REPORT_EVERY {
            self.write();
        }
        if level && self.synced_at.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            self.synced_at = Some(Instant::now());
            self.mark_synced();
        }
    }

    /// Records in the HA settings that this node's data is its primary's as of now.
    fn mark_synced(&mut self) {
        let Some(hello) = self.hello.clone() else { return };
        let cause = Cause { actor: "stream".into(), reason: format!("level with {}", self.primary) };
        let peer = self.primary.to_string();
        let marked = crate::ha::update(&mut self.node.store, &cause, |s| {
            s.last_sync_epoch = hello.epoch;
            s.epoch_seen = s.epoch_seen.max(hello.epoch);
            s.last_sync_node = Some(hello.node_id.clone());
            s.last_sync_peer = Some(peer);
            s.last_sync_at = Some(Utc::now());
        });
        if let Err(e) = marked {
            tracing::warn!(subsystem = "stream", error = %e, "cannot record the stream's progress");
        }
    }

    fn write(&mut self) {
        self.status.updated_at = now_text();
        self.written = Instant::now();
        if let Err(e) = self.node.store.put_stream_status(&self.status) {
            tracing::warn!(subsystem = "stream", error = %e, "cannot record the stream's state");
        }
        let finished = self.lag.finished(Utc::now().timestamp_millis());
        if let Err(e) = self.node.store.put_lag_seconds(&finished) {
            tracing::warn!(subsystem = "stream", error = %e, "cannot record the stream's lag");
        }
    }
}

/// Changes the recorded status with `edit` (which says whether it changed anything),
/// when there is one.
fn write_status(data_dir: &Path, edit: impl FnOnce(&mut StreamStatus) -> bool) {
    let Ok(mut store) = crate::store::Store::open(data_dir) else { return };
    if let Ok(Some(mut status)) = store.stream_status()
        && edit(&mut status)
    {
        status.updated_at = now_text();
        let _ = store.put_stream_status(&status);
    }
}

/// Records that no stream runs, unless that is what is recorded already.
fn report_off(data_dir: &Path) {
    write_status(data_dir, |s| {
        let was_on = s.state != StreamState::Off;
        s.state = StreamState::Off;
        s.detail = "this node follows no stream (replication mode scheduled, or not a standby)".into();
        was_on
    });
}

/// One line of the HA log.
fn note(data_dir: &Path, level: &str, message: &str) {
    tracing::info!(subsystem = "stream", "{message}");
    if let Ok(mut store) = crate::store::Store::open(data_dir) {
        let _ = store.ha_log(level, message);
    }
}
