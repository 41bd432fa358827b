//! The secondary's sync (the guide's Run Sync Now, `failover sync HOST`), as its steps:
//! refuse when this node must not replicate and take the sync lock; **connect** to the
//! trusted peer (refusing another release or an older primary); **request** the changes
//! after this node's position (or a full snapshot); **receive** what comes into staging;
//! **verify** it (and, before a full copy, find where this node's own writes part from
//! the peer's); **apply** it under the role lock, unless this node was promoted
//! meanwhile; **record** it in the sync history. Changes that cannot be applied bring a
//! full copy over the same connection, and say why.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::apply::swap_in;
use super::divergence::{self, Kept};
pub use super::error::SyncError;
use super::increment;
use super::lock::SyncLock;
pub use super::receive::Progress;
use super::receive::{self, Checking, IncomingFiles, Received};
use crate::coredb::changelog::{Entry, Position};
use crate::ha::{Mode, NodeStatus, RoleLock};
use crate::host::HostPort;
use crate::node::Node;
use crate::notify::{Event, raise_or_log};
use crate::peer::message::{Request, Store, Trailer};
use crate::peer::{Blocking, Hello};
use crate::ssh::client::SshLink;
use crate::store::{Finished, SyncKind};

/// What a finished sync did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SyncReport {
    pub peer: String,
    pub peer_hostname: String,
    /// The peer's node id.
    pub peer_node: String,
    /// The epoch the peer had.
    pub peer_epoch: u64,
    /// What it copied.
    pub kind: SyncKind,
    /// Why a full copy was made although changes were asked for.
    pub fallback: Option<String>,
    /// Incremental only: the change-log positions before and after.
    pub changes: Option<(i64, i64)>,
    /// Writes this node had made that the peer did not have, kept before the full copy
    /// replaced them.
    pub kept: Option<Kept>,
    pub bytes: u64,
    pub rows: u64,
    pub seconds: f64,
    /// Content checksum, equal on both nodes.
    pub content: String,
    /// What happened to the Atlas data: copied, or skipped and why.
    pub atlas: String,
    /// Application files changed and removed.
    pub files: String,
}

/// Brings this node's Core data up to `target`'s (changes when it can, a full copy
/// otherwise), telling `progress` how it goes.
/// `want` is what to ask for: [`SyncKind::Incremental`] still copies everything when the
/// changes cannot be had or applied.
pub fn sync_from(
    node: &mut Node,
    target: &HostPort,
    want: SyncKind,
    progress: Progress,
) -> Result<SyncReport, SyncError> {
    let settings = node.settings()?;
    if settings.mode == Mode::Primary {
        return Err(SyncError::Primary);
    }
    if settings.node_status == NodeStatus::Active {
        return Err(SyncError::Active);
    }
    let peer = target.to_string();
    let _lock = SyncLock::take(&node.data_dir, &peer).map_err(SyncError::Busy)?;
    let run = node.store.sync_started(&peer, want)?;
    let (started, started_at) = (Instant::now(), chrono::Utc::now());
    progress(&format!("Connecting to {peer}"));
    let staged = Staging { core: node.data_dir.join("core.db.staging"), atlas: node.data_dir.join("atlas.db.staging") };
    let outcome = Pull::connect(node, target, &staged, progress).and_then(|mut pull| {
        let report = pull.run(want);
        pull.peer.close();
        report
    });
    let _ = std::fs::remove_file(&staged.core);
    let _ = std::fs::remove_file(&staged.atlas);
    match outcome {
        Ok(mut report) => {
            report.seconds = started.elapsed().as_secs_f64();
            record(node, run, &report, started_at)?;
            Ok(report)
        }
        Err(e) => {
            node.store
                .sync_finished(run, &Finished { ok: false, kind: want, detail: &e.to_string(), bytes: 0, rows: 0 })?;
            raise_or_log(&mut node.store, &node.id, &Event::SyncFailed { peer, reason: e.to_string() });
            Err(e)
        }
    }
}

/// Where what comes is staged before it is verified and swapped in.
struct Staging {
    core: PathBuf,
    atlas: PathBuf,
}

/// One sync from one peer, over one connection.
struct Pull<'a> {
    node: &'a mut Node,
    peer: Blocking<SshLink>,
    target: String,
    staged: &'a Staging,
    progress: Progress<'a>,
}

/// What was received and verified for the Core data, not applied yet.
enum Core {
    /// Change-log entries after `from`, up to `to`.
    Changes { entries: Vec<Entry>, from: Position, to: Position },
    /// A full copy with its verified content checksum, and (when this node made writes of
    /// its own) where they part from the peer's.
    Full { fork: Option<Option<Position>>, content: String, fallback: Option<String> },
}

/// Everything a pull brought, received and verified.
struct Verified {
    core: Core,
    bytes: u64,
    /// The Atlas store's size, or why it was not copied.
    atlas: Result<u64, String>,
    files: IncomingFiles,
}

impl<'a> Pull<'a> {
    /// Reaches the trusted peer, trades hellos, and refuses another release or a primary
    /// older than the one this node last synced from.
    fn connect(
        node: &'a mut Node,
        target: &HostPort,
        staged: &'a Staging,
        progress: Progress<'a>,
    ) -> Result<Pull<'a>, SyncError> {
        let settings = node.settings()?;
        let ours = Hello::of(&settings, &node.id);
        let peer = Blocking::trusted_with(node, target, &ours)?;
        let (theirs, shown) = (peer.hello().clone(), target.to_string());
        if theirs.version != ours.version {
            peer.close();
            return Err(SyncError::Version { ours: ours.version, theirs: theirs.version, peer: shown });
        }
        if theirs.epoch < settings.last_sync_epoch {
            peer.close();
            return Err(SyncError::OlderEpoch { peer: shown, theirs: theirs.epoch, ours: settings.last_sync_epoch });
        }
        Ok(Pull { node, peer, target: shown, staged, progress })
    }

    /// The whole pull: changes when asked and they apply, a full copy otherwise.
    fn run(&mut self, want: SyncKind) -> Result<SyncReport, SyncError> {
        let since = match want {
            SyncKind::Incremental => Some(self.node.core()?.log_head()?),
            SyncKind::Full => None,
        };
        let asked_changes = since.is_some();
        match self.once(since) {
            Err(SyncError::Increment(e)) if asked_changes => {
                let reason = e.to_string();
                tracing::warn!(subsystem = "replication", peer = %self.target, %reason, "changes not applied; full sync instead");
                (self.progress)(&format!("The changes could not be applied ({reason}); starting a full sync"));
                match self.once(None) {
                    Ok(mut report) => {
                        report.fallback = Some(format!("changes not applied: {reason}"));
                        Ok(report)
                    }
                    Err(full) => Err(SyncError::FullAfterChanges { changes: reason, full: Box::new(full) }),
                }
            }
            other => other,
        }
    }

    /// One request and all that follows it.
    fn once(&mut self, since: Option<Position>) -> Result<SyncReport, SyncError> {
        let received = self.request(since)?;
        let verified = self.verify(received)?;
        self.apply(verified)
    }

    /// Asks for the changes after `since` (a full copy without it) and receives what
    /// comes: the Core data, the Atlas store when enabled here, the files.
    fn request(&mut self, since: Option<Position>) -> Result<(Received, Option<Received>, IncomingFiles), SyncError> {
        let atlas = self.node.settings()?.atlas;
        let files = super::files::manifest(&self.node.data_dir)
            .map_err(|e| SyncError::Io(format!("application files: {e}")))?;
        let changes = since.is_some();
        let request = match since {
            Some(since) => Request::Changes { since, atlas, files },
            None => Request::Snapshot { atlas, files },
        };
        let (staged, data_dir, progress) = (self.staged, self.node.data_dir.clone(), &mut *self.progress);
        self.peer.run(async |peer| {
            let stream = peer.pull(&request).await?;
            let core = receive::store(stream, &staged.core, Store::Core, changes, progress).await?;
            let atlas = match atlas {
                true => Some(receive::store(stream, &staged.atlas, Store::Atlas, false, progress).await?),
                false => None,
            };
            let files = receive::files(stream, &data_dir, progress).await?;
            Ok((core, atlas, files))
        })
    }

    /// Checks what came (before the role lock: all it guards is local).
    fn verify(
        &mut self,
        (core, atlas, files): (Received, Option<Received>, IncomingFiles),
    ) -> Result<Verified, SyncError> {
        let (core, bytes) = match core {
            Received::Changes { size, from, to } => {
                (self.progress)("Verifying the changes");
                (Core::Changes { entries: increment::read(&self.staged.core)?, from, to }, size)
            }
            Received::Snapshot { size, fallback, trailer, checking } => {
                let fork = self.find_fork()?;
                (self.progress)("Verifying the Core data");
                let content = verified(Store::Core, &trailer, checking)?;
                (Core::Full { fork, content, fallback }, size)
            }
            Received::Skipped(why) => {
                return Err(SyncError::Snapshot { peer: self.target.clone(), reason: format!("no Core data: {why}") });
            }
        };
        let atlas = match atlas {
            None => Err("skipped: Atlas is not enabled on this node".to_string()),
            Some(Received::Skipped(why)) => Err(format!("skipped: {why}")),
            Some(Received::Snapshot { size, trailer, checking, .. }) => {
                (self.progress)("Verifying the Atlas data");
                verified(Store::Atlas, &trailer, checking)?;
                Ok(size)
            }
            Some(Received::Changes { .. }) => return Err(SyncError::Io("the Atlas store came as changes".into())),
        };
        Ok(Verified { core, bytes, atlas, files })
    }

    /// Before a full copy replaces this node's data: where its own writes part from the
    /// peer's log (asked over the same connection). `None` when this node made no writes
    /// of its own; `Some(None)` when no change both have was found.
    fn find_fork(&mut self) -> Result<Option<Option<Position>>, SyncError> {
        let origin = self.node.id.clone();
        let conn = self.node.core()?.connection();
        let Some((first, last)) = divergence::own_range(conn, &origin)? else { return Ok(None) };
        let theirs = self.peer.positions(first - 1, last)?;
        if let Some(reason) = theirs.error {
            let reason = format!("cannot compare change logs: {reason}");
            return Err(SyncError::Snapshot { peer: self.target.clone(), reason });
        }
        let ours = divergence::our_positions(self.node.core()?.connection(), first - 1)?;
        Ok(Some(divergence::fork(&ours, &theirs)))
    }

    /// Puts what was verified in place, under the role lock, unless this node is no
    /// longer a standby secondary.
    fn apply(&mut self, v: Verified) -> Result<SyncReport, SyncError> {
        pause_for_tests();
        let node = &mut *self.node;
        let _fence =
            RoleLock::take(&node.data_dir).map_err(|e| SyncError::Io(format!("cannot take the role lock: {e}")))?;
        let now = node.settings()?;
        if now.mode != Mode::Secondary || now.node_status != NodeStatus::Standby {
            return Err(SyncError::RoleChanged { mode: now.mode, status: now.state() });
        }
        let (mut kept, mut fallback) = (None, None);
        let (kind, changes, content) = match v.core {
            Core::Changes { entries, from, to } => {
                (self.progress)("Applying the changes");
                let rows = increment::apply(node.core()?.connection(), &from, &entries)?;
                (SyncKind::Incremental, Some((from.seq, to.seq, rows)), to.checksum)
            }
            Core::Full { fork, content, fallback: why } => {
                if let Some(fork) = fork {
                    let (origin, dir) = (node.id.clone(), node.data_dir.clone());
                    kept = divergence::keep(node.core()?.connection(), &dir, &origin, fork.as_ref(), &self.target)?;
                }
                (self.progress)("Applying the Core data");
                swap_in(&node.data_dir, &self.staged.core, Store::Core)?;
                fallback = why;
                (SyncKind::Full, None, content)
            }
        };
        let atlas = match v.atlas {
            Err(why) => why,
            Ok(size) => {
                (self.progress)("Applying the Atlas data");
                swap_in(&node.data_dir, &self.staged.atlas, Store::Atlas)?;
                format!("copied ({size} bytes)")
            }
        };
        (self.progress)("Installing the application files");
        let files = receive::install_files(&node.data_dir, v.files)?;
        let rows = match changes {
            Some((_, _, rows)) => rows,
            None => {
                let s = node.core()?.summary()?;
                s.users
                    + s.devices
                    + s.apps
                    + s.policies
                    + s.events
                    + s.certificates
                    + s.local_users
                    + s.atlas.unwrap_or(0)
            }
        };
        let theirs = self.peer.hello();
        Ok(SyncReport {
            peer: self.target.clone(),
            peer_hostname: theirs.hostname.clone(),
            peer_node: theirs.node_id.clone(),
            peer_epoch: theirs.epoch,
            kind,
            fallback,
            changes: changes.map(|(from, to, _)| (from, to)),
            kept,
            bytes: v.bytes,
            rows,
            seconds: 0.0,
            content,
            atlas,
            files,
        })
    }
}

/// The content checksum of a staged store, once this node's own verification of it has
/// passed: the one the sender computed from the very bytes received and checked against
/// its change log, which for the Core data must also be where the staged log ends.
fn verified(store: Store, trailer: &Trailer, checking: Checking) -> Result<String, SyncError> {
    let logged = checking.join().map_err(|_| SyncError::Io(format!("the {} verification failed", store.name())))??;
    match logged {
        Some(logged) if logged != trailer.content => {
            Err(SyncError::Mismatch { logged, reported: trailer.content.clone() })
        }
        _ => Ok(trailer.content.clone()),
    }
}

/// Records a sync that succeeded: its history, its mail, and what the data here now is
/// (the peer's as of when the sync started: what a later promotion would lose, and the
/// epoch it must go past).
fn record(
    node: &mut Node,
    run: i64,
    report: &SyncReport,
    started_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), SyncError> {
    let what = match (report.changes, &report.fallback) {
        (Some((from, to)), _) => format!("changes {}..{to} from {}", from + 1, report.peer_hostname),
        (None, Some(why)) => format!("full copy from {} ({why})", report.peer_hostname),
        (None, None) => format!("full copy from {}", report.peer_hostname),
    };
    let mut detail = format!("{what}; checksum {}; Atlas {}; files {}", report.content, report.atlas, report.files);
    if let Some(k) = &report.kept {
        detail.push_str(&format!(
            "; KEPT {} changes ({} rows) made here and not on {}: {}",
            k.entries, k.rows, report.peer, k.file
        ));
    }
    let (bytes, rows) =
        (i64::try_from(report.bytes).unwrap_or(i64::MAX), i64::try_from(report.rows).unwrap_or(i64::MAX));
    node.store.sync_finished(run, &Finished { ok: true, kind: report.kind, detail: &detail, bytes, rows })?;
    let event = Event::SyncCompleted { peer: report.peer.clone(), detail };
    raise_or_log(&mut node.store, &node.id, &event);
    let cause = crate::ha::Cause { actor: "sync".into(), reason: format!("synced from {}", report.peer) };
    crate::ha::update(&mut node.store, &cause, |s| {
        s.last_sync_epoch = report.peer_epoch;
        s.epoch_seen = s.epoch_seen.max(report.peer_epoch);
        s.last_sync_node = Some(report.peer_node.clone());
        s.last_sync_peer = Some(report.peer.clone());
        s.last_sync_at = Some(started_at);
    })?;
    Ok(())
}

/// `CORESH_TEST_PAUSE_BEFORE_APPLY_MS` holds a sync back after everything is received and
/// verified, before it takes the role lock, so that tests can promote the node meanwhile.
fn pause_for_tests() {
    if let Some(ms) = std::env::var("CORESH_TEST_PAUSE_BEFORE_APPLY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
