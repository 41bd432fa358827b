//! The secondary's sync (the guide's Run Sync Now, `failover sync HOST`), as its steps:
//! refuse when this node must not replicate and take the sync lock; **connect** to the
//! trusted peer (refusing another release or an older primary); **request** the changes
//! after this node's position (or a full snapshot); **receive** what comes into staging;
//! **verify** it (and, before a full copy, find where this node's own writes part from
//! the peer's; a full copy sent as the peer's checked copy first gets the changes after
//! it, on the staged file); **apply** it under the role lock, unless this node was promoted
//! meanwhile; **record** it in the sync history. Changes that cannot be applied bring a
//! full copy over the same connection, and say why.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::apply::{ApplyError, prepare};
use super::divergence::{self, Kept};
pub use super::error::SyncError;
use super::increment;
use super::lock::{CHANGES_STAGING, SyncLock};
pub use super::receive::Progress;
use super::receive::{self, Checking, IncomingFiles, Received};
use crate::coredb::changelog::{Entry, Position};
use crate::coredb::swap::Swap;
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
    /// A full copy sent as the peer's checked copy (checked when it was kept) at the
    /// first change number, then the changes after it up to the second, applied to it
    /// here before it replaced anything.
    pub checked_copy: Option<(i64, i64)>,
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
    let staged = Staging {
        core: node.data_dir.join("core.db.staging"),
        changes: node.data_dir.join(CHANGES_STAGING),
        atlas: node.data_dir.join("atlas.db.staging"),
    };
    let outcome = Pull::connect(node, target, &staged, progress).and_then(|mut pull| {
        let report = pull.run(want);
        pull.peer.close();
        report
    });
    for path in [&staged.core, &staged.changes, &staged.atlas] {
        let _ = std::fs::remove_file(path);
    }
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
    /// The entries after a checked copy.
    changes: PathBuf,
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
    /// A full copy with its verified content checksum, its swap when it is prepared, and
    /// (when this node made writes of its own) where they part from the peer's.
    Full {
        fork: Option<Option<Position>>,
        content: String,
        fallback: Option<String>,
        checked_copy: Option<(i64, i64)>,
        swap: Option<Swap>,
    },
}

/// Everything a pull brought, received into staging.
struct Arrived {
    core: Received,
    /// After a checked copy: the changes after it.
    after: Option<After>,
    atlas: Option<Received>,
    files: IncomingFiles,
}

/// The changes after a checked copy, staged: from where to where, in how many bytes.
struct After {
    from: Position,
    to: Position,
    size: u64,
}

/// Everything a pull brought, received and verified.
struct Verified {
    core: Core,
    bytes: u64,
    /// The Atlas store's size and its swap when prepared, or why it was not copied.
    atlas: Result<(u64, Option<Swap>), String>,
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
    fn request(&mut self, since: Option<Position>) -> Result<Arrived, SyncError> {
        let atlas = self.node.settings()?.atlas;
        let files = super::files::manifest(&self.node.data_dir)
            .map_err(|e| SyncError::Io(format!("application files: {e}")))?;
        let changes = since.is_some();
        // The Core data opened (created, migrated) here before anything comes: a swap
        // prepared while it arrives holds its write lock, which a migration would wait for.
        self.node.core()?;
        let request = match since {
            Some(since) => Request::Changes { since, atlas, files },
            None => Request::Snapshot { atlas, files },
        };
        let (staged, data_dir, progress) = (self.staged, self.node.data_dir.clone(), &mut *self.progress);
        self.peer.run(async |peer| {
            let stream = peer.pull(&request).await?;
            let core = receive::store(stream, (&data_dir, &staged.core), Store::Core, changes, progress).await?;
            let after = match core {
                Received::Snapshot { changes_follow: true, .. } => {
                    match receive::store(stream, (&data_dir, &staged.changes), Store::Core, true, progress).await? {
                        Received::Changes { from, to, size } => Some(After { from, to, size }),
                        _ => {
                            let (target, reason) =
                                (stream.target().to_string(), "a checked copy without its changes".into());
                            return Err(SyncError::Peer(crate::peer::PeerError::Protocol { target, reason }));
                        }
                    }
                }
                _ => None,
            };
            let atlas = match atlas {
                true => Some(receive::store(stream, (&data_dir, &staged.atlas), Store::Atlas, false, progress).await?),
                false => None,
            };
            let files = receive::files(stream, &data_dir, progress).await?;
            Ok(Arrived { core, after, atlas, files })
        })
    }

    /// Checks what came (before the role lock: all it guards is local).
    fn verify(&mut self, Arrived { core, after, atlas, files }: Arrived) -> Result<Verified, SyncError> {
        let (core, bytes) = match core {
            Received::Changes { size, from, to } => {
                (self.progress)("Verifying the changes");
                (Core::Changes { entries: increment::read(&self.staged.core)?, from, to }, size)
            }
            Received::Snapshot { size, fallback, trailer, checking, swap, .. } => {
                let fork = self.find_fork()?;
                (self.progress)("Verifying the Core data");
                let mut content = verified(Store::Core, &trailer, checking)?;
                let (mut checked_copy, mut size) = (None, size);
                if let Some(after) = after {
                    size = size.saturating_add(after.size);
                    (self.progress)("Applying the changes after the peer's checked copy");
                    content = self.bring_up_to_date(&content, &after)?;
                    checked_copy = Some((after.from.seq, after.to.seq));
                }
                (Core::Full { fork, content, fallback, checked_copy, swap }, size)
            }
            Received::Skipped(why) => {
                return Err(SyncError::Snapshot { peer: self.target.clone(), reason: format!("no Core data: {why}") });
            }
        };
        let atlas = match atlas {
            None => Err("skipped: Atlas is not enabled on this node".to_string()),
            Some(Received::Skipped(why)) => Err(format!("skipped: {why}")),
            Some(Received::Snapshot { size, trailer, checking, swap, .. }) => {
                (self.progress)("Verifying the Atlas data");
                verified(Store::Atlas, &trailer, checking)?;
                Ok((size, swap))
            }
            Some(Received::Changes { .. }) => return Err(SyncError::Io("the Atlas store came as changes".into())),
        };
        Ok(Verified { core, bytes, atlas, files })
    }

    /// Applies the changes after a peer's checked copy to the staged copy (whose verified
    /// content checksum is `content`), as an incremental sync applies them to the live
    /// data: every row they touch hashed before and after, the whole ending at the
    /// peer's checksum, or nothing. Returns that checksum.
    fn bring_up_to_date(&mut self, content: &str, after: &After) -> Result<String, SyncError> {
        let refused = |reason: String| SyncError::Snapshot {
            peer: self.target.clone(),
            reason: format!("the changes after its checked copy do not apply: {reason}"),
        };
        if after.from.checksum != content {
            return Err(refused(format!("they start at checksum {}, the copy has {content}", after.from.checksum)));
        }
        let entries = increment::read(&self.staged.changes).map_err(|e| refused(e.to_string()))?;
        let ends = entries.last().map_or(after.from.clone(), |e| Position { seq: e.seq, checksum: e.checksum.clone() });
        if ends != after.to {
            return Err(refused(format!("they do not end at change {} as announced", after.to.seq)));
        }
        let mut staged = rusqlite::Connection::open(&self.staged.core).map_err(|e| refused(e.to_string()))?;
        // A file of the moment, like the rest of the staging: what must survive a crash
        // is the live data's own commit.
        staged.pragma_update(None, "synchronous", "OFF").map_err(|e| refused(e.to_string()))?;
        increment::apply(&mut staged, &after.from, &entries).map_err(|e| refused(e.to_string()))?;
        Ok(after.to.checksum.clone())
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
        let (mut kept, mut fallback, mut checked_copy) = (None, None, None);
        let (kind, changes, content) = match v.core {
            Core::Changes { entries, from, to } => {
                (self.progress)("Applying the changes");
                let rows = increment::apply(node.core()?.connection(), &from, &entries)?;
                (SyncKind::Incremental, Some((from.seq, to.seq, rows)), to.checksum)
            }
            Core::Full { fork, content, fallback: why, checked_copy: copy, swap } => {
                if let Some(fork) = fork {
                    let (origin, dir) = (node.id.clone(), node.data_dir.clone());
                    kept = divergence::keep(node.core()?.connection(), &dir, &origin, fork.as_ref(), &self.target)?;
                }
                (self.progress)("Applying the Core data");
                let swap = swap.unwrap_or_else(|| prepare(&node.data_dir, &self.staged.core, Store::Core));
                swap.commit().map_err(ApplyError::from)?;
                fallback = why;
                checked_copy = copy;
                (SyncKind::Full, None, content)
            }
        };
        let atlas = match v.atlas {
            Err(why) => why,
            Ok((size, swap)) => {
                (self.progress)("Applying the Atlas data");
                let swap = swap.unwrap_or_else(|| prepare(&node.data_dir, &self.staged.atlas, Store::Atlas));
                swap.commit().map_err(ApplyError::from)?;
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
            checked_copy,
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
    let mut what = match (report.changes, &report.fallback) {
        (Some((from, to)), _) => format!("changes {}..{to} from {}", from + 1, report.peer_hostname),
        (None, Some(why)) => format!("full copy from {} ({why})", report.peer_hostname),
        (None, None) => format!("full copy from {}", report.peer_hostname),
    };
    if let Some(copy) = report.checked_copy.map(checked_copy_text) {
        what.push_str(&format!(", {copy}"));
    }
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

/// How a full copy sent as the peer's checked copy is told (`at` its change, `to` the
/// last change applied to it).
pub fn checked_copy_text((at, to): (i64, i64)) -> String {
    match to > at {
        true => format!("sent as its checked copy at change {at} and changes {}..{to}", at + 1),
        false => format!("sent as its checked copy at change {at}"),
    }
}

/// `CORESH_TEST_PAUSE_BEFORE_APPLY_MS` holds a sync back after everything is received and
/// verified, before it takes the role lock, so that tests can promote the node meanwhile.
fn pause_for_tests() {
    if let Some(ms) = std::env::var("CORESH_TEST_PAUSE_BEFORE_APPLY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
