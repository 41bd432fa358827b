//! The secondary's sync (the guide's Run Sync Now, `failover sync HOST`): refuse when
//! this node must not replicate, take the sync lock, connect to the trusted peer, refuse
//! a version mismatch, ask for the changes after this node's position (or a full
//! snapshot), stage what comes, verify and apply it, check the result against the
//! primary's content checksum, and record it all in the sync history. When changes
//! cannot be applied (a conflict, a mismatch) the sync starts over as a full one and
//! says why.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::apply::{ApplyError, Store, swap_in, verify};
use super::divergence::{self, Kept, Positions};
use super::increment::{self, IncrementError};
use super::lock::SyncLock;
use super::{CHANGES, SnapshotHeader, SnapshotRequest, SnapshotTrailer};
use crate::coredb::changelog::{Entry, Position};
use crate::ha::{Mode, NodeStatus, RoleLock};
use crate::host::HostPort;
use crate::node::Node;
use crate::notify::{Event, raise_or_log};
use crate::ssh::client::{PeerError, PeerLink, trusted_for};
use crate::ssh::hello::Hello;
use crate::ssh::keys::{host_key, parse_public};
use crate::store::{Finished, StoreError};

/// Longest header or trailer line.
const MAX_LINE: usize = 64 * 1024;

/// What a finished sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub peer: String,
    pub peer_hostname: String,
    /// The peer's node id.
    pub peer_node: String,
    /// The epoch the peer had.
    pub peer_epoch: u64,
    /// `incremental` or `full`.
    pub kind: &'static str,
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

/// Why a sync did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("this node is primary: a node in primary mode never replicates from another node")]
    Primary,
    #[error("node status is active: only a standby secondary syncs from its primary")]
    Active,
    #[error("{0}")]
    Busy(String),
    #[error("this node became {mode} ({status}) during the sync: nothing was replaced")]
    RoleChanged { mode: Mode, status: NodeStatus },
    #[error("{0} is not a trusted host: add its key with 'trusted-host {0} KEY' in high-availability configuration")]
    Untrusted(String),
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(
        "version mismatch: this node runs coresh {ours}, {peer} runs coresh {theirs}; replication needs the same release on both nodes"
    )]
    Version { ours: String, theirs: String, peer: String },
    #[error(
        "{peer} is primary at epoch {theirs}, older than epoch {ours} this node last synced from: it is a stale primary; sync from the current primary"
    )]
    OlderEpoch { peer: String, theirs: u64, ours: u64 },
    #[error("{peer} could not take a snapshot: {reason}")]
    Snapshot { peer: String, reason: String },
    #[error("the transfer is damaged: SHA-256 {found}, announced {expected}")]
    Transfer { found: String, expected: String },
    #[error("the snapshot's content checksum {found} differs from the primary's {expected}")]
    Mismatch { found: String, expected: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Increment(#[from] IncrementError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

/// How a sync is getting on, for an operator watching it.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// What a sync asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The changes since the last sync, when the primary's log holds them.
    Changes,
    /// A full copy, whatever the logs hold.
    Full,
}

/// Brings this node's Core data up to `target`'s (changes when it can, a full copy
/// otherwise), telling `progress` how it goes.
pub fn sync_from(node: &mut Node, target: &HostPort, want: Want, progress: Progress) -> Result<SyncReport, SyncError> {
    let settings = node.settings()?;
    if settings.mode == Mode::Primary {
        return Err(SyncError::Primary);
    }
    if settings.node_status == NodeStatus::Active {
        return Err(SyncError::Active);
    }
    let peer = target.to_string();
    let _lock = SyncLock::take(&node.data_dir, &peer).map_err(SyncError::Busy)?;
    let trusted = node.store.trusted_hosts()?;
    let entry = trusted_for(&trusted, target).ok_or_else(|| SyncError::Untrusted(peer.clone()))?;
    let their_key = parse_public(&entry.key).map_err(SyncError::Io)?;
    let key = host_key(&node.data_dir).map_err(|e| SyncError::Io(e.to_string()))?;
    let ours = Hello::of(&settings, &node.id);
    let position = match want {
        Want::Changes => Some(node.core()?.log_head()?),
        Want::Full => None,
    };
    let run = node.store.sync_started(&peer, if position.is_some() { "incremental" } else { "full" })?;
    let staged = Staged { core: node.data_dir.join("core.db.staging"), atlas: node.data_dir.join("atlas.db.staging") };
    let (started, started_at) = (Instant::now(), chrono::Utc::now());
    progress(&format!("Connecting to {peer}"));
    let source = Source { target, key: &key, their_key: &their_key, ours: &ours };
    let mut outcome = fetch_and_apply(node, &source, &staged, settings.atlas, position.clone(), progress);
    if let Err(SyncError::Increment(e)) = &outcome {
        let reason = e.to_string();
        tracing::warn!(subsystem = "replication", %peer, %reason, "changes not applied; full sync instead");
        progress(&format!("The changes could not be applied ({reason}); starting a full sync"));
        outcome = fetch_and_apply(node, &source, &staged, settings.atlas, None, progress).map(|mut report| {
            report.fallback = Some(format!("changes not applied: {reason}"));
            report
        });
    }
    let _ = std::fs::remove_file(&staged.core);
    let _ = std::fs::remove_file(&staged.atlas);
    match outcome {
        Ok(mut report) => {
            report.seconds = started.elapsed().as_secs_f64();
            let what = match (report.changes, &report.fallback) {
                (Some((from, to)), _) => format!("changes {}..{to} from {}", from + 1, report.peer_hostname),
                (None, Some(why)) => format!("full copy from {} ({why})", report.peer_hostname),
                (None, None) => format!("full copy from {}", report.peer_hostname),
            };
            let mut detail =
                format!("{what}; checksum {}; Atlas {}; files {}", report.content, report.atlas, report.files);
            if let Some(k) = &report.kept {
                detail.push_str(&format!(
                    "; KEPT {} changes ({} rows) made here and not on {}: {}",
                    k.entries, k.rows, report.peer, k.file
                ));
            }
            let (bytes, rows) =
                (i64::try_from(report.bytes).unwrap_or(i64::MAX), i64::try_from(report.rows).unwrap_or(i64::MAX));
            node.store.sync_finished(run, &Finished { ok: true, kind: report.kind, detail: &detail, bytes, rows })?;
            let event = Event::SyncCompleted { peer: peer.clone(), detail: detail.clone() };
            raise_or_log(&mut node.store, &node.id, &event);
            // The data here is now the peer's as of when this sync started: what a later
            // promotion would lose, and which epoch it must go past.
            let cause = crate::ha::Cause { actor: "sync".into(), reason: format!("synced from {peer}") };
            crate::ha::update(&mut node.store, &cause, |s| {
                s.last_sync_epoch = report.peer_epoch;
                s.epoch_seen = s.epoch_seen.max(report.peer_epoch);
                s.last_sync_node = Some(report.peer_node.clone());
                s.last_sync_peer = Some(peer.clone());
                s.last_sync_at = Some(started_at);
            })?;
            Ok(report)
        }
        Err(e) => {
            let kind = if position.is_some() { "incremental" } else { "full" };
            node.store.sync_finished(run, &Finished { ok: false, kind, detail: &e.to_string(), bytes: 0, rows: 0 })?;
            raise_or_log(&mut node.store, &node.id, &Event::SyncFailed { peer: peer.clone(), reason: e.to_string() });
            Err(e)
        }
    }
}

/// Where snapshots are staged before they are verified and swapped in.
struct Staged {
    core: PathBuf,
    atlas: PathBuf,
}

/// One store: received and staged (a snapshot or changes, as its header says), or
/// skipped by the sender (and why).
enum Received {
    Staged { header: Box<SnapshotHeader>, trailer: SnapshotTrailer, checked: Option<Checking> },
    Skipped(String),
}

/// A staged snapshot's verification, started as soon as its bytes were in (it yields
/// the content checksum computed from the rows).
type Checking = std::thread::JoinHandle<Result<String, ApplyError>>;

/// Who to pull from, and how both sides prove who they are.
struct Source<'a> {
    target: &'a HostPort,
    key: &'a russh::keys::PrivateKey,
    their_key: &'a russh::keys::PublicKey,
    ours: &'a Hello,
}

fn fetch_and_apply(
    node: &mut Node,
    source: &Source,
    staged: &Staged,
    want_atlas: bool,
    position: Option<Position>,
    progress: Progress,
) -> Result<SyncReport, SyncError> {
    let Source { target, key, their_key, ours } = *source;
    let last_epoch = node.settings()?.last_sync_epoch;
    let peer = target.to_string();
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| SyncError::Io(e.to_string()))?;
    let local_files =
        super::files::manifest(&node.data_dir).map_err(|e| SyncError::Io(format!("application files: {e}")))?;
    let data_dir = node.data_dir.clone();
    let (core, atlas, peer_hello, files) = runtime.block_on(async {
        let (mut link, theirs) = PeerLink::open(target, key, their_key, ours).await?;
        if theirs.version != ours.version {
            link.close().await;
            return Err(SyncError::Version { ours: ours.version.clone(), theirs: theirs.version, peer: peer.clone() });
        }
        if theirs.epoch < last_epoch {
            link.close().await;
            return Err(SyncError::OlderEpoch { peer: peer.clone(), theirs: theirs.epoch, ours: last_epoch });
        }
        let request = SnapshotRequest {
            op: "snapshot".into(),
            atlas: want_atlas,
            files: local_files,
            position,
            ..Default::default()
        };
        link.send_line(&serde_json::to_string(&request).unwrap_or_default()).await?;
        let core = receive(&mut link, &staged.core, &peer, Store::Core, progress).await?;
        let atlas = if want_atlas {
            Some(receive(&mut link, &staged.atlas, &peer, Store::Atlas, progress).await?)
        } else {
            None
        };
        let files = receive_files(&mut link, &data_dir, &peer, progress).await?;
        link.close().await;
        Ok((core, atlas, theirs, files))
    })?;
    let Received::Staged { header, trailer, checked } = core else {
        return Err(SyncError::Snapshot { peer, reason: "no Core data was sent".into() });
    };
    let bytes = header.size;
    // Everything is received and verified before the role lock: what it guards is local.
    let core = if header.kind == CHANGES {
        progress("Verifying the changes");
        let (from, to) = header.from.clone().zip(header.to.clone()).ok_or_else(|| SyncError::Snapshot {
            peer: peer.clone(),
            reason: "changes came without their positions".into(),
        })?;
        Incoming::Changes { entries: increment::read(&staged.core)?, from, to }
    } else {
        let fork = find_fork(node, &runtime, source)?;
        progress("Verifying the Core data");
        Incoming::Full { fork, content: verified(&staged.core, Store::Core, &trailer, checked)? }
    };
    let atlas = match atlas {
        None => Err("skipped: Atlas is not enabled on this node".to_string()),
        Some(Received::Skipped(why)) => Err(format!("skipped: {why}")),
        Some(Received::Staged { header, trailer, checked }) => {
            progress("Verifying the Atlas data");
            verified(&staged.atlas, Store::Atlas, &trailer, checked)?;
            Ok(header.size)
        }
    };
    pause_for_tests();
    let _fence =
        RoleLock::take(&node.data_dir).map_err(|e| SyncError::Io(format!("cannot take the role lock: {e}")))?;
    let now = node.settings()?;
    if now.mode != Mode::Secondary || now.node_status != NodeStatus::Standby {
        return Err(SyncError::RoleChanged { mode: now.mode, status: now.state() });
    }
    let mut kept = None;
    let (kind, changes, content) = match core {
        Incoming::Changes { entries, from, to } => {
            progress("Applying the changes");
            let rows = increment::apply(node.core()?.connection(), &from, &entries)?;
            ("incremental", Some((from.seq, to.seq, rows)), to.checksum)
        }
        Incoming::Full { fork, content } => {
            if let Some(fork) = fork {
                let (origin, dir) = (node.id.clone(), node.data_dir.clone());
                kept = divergence::keep(node.core()?.connection(), &dir, &origin, fork.as_ref(), &peer)?;
            }
            progress("Applying the Core data");
            swap_in(&node.data_dir, &staged.core, Store::Core)?;
            ("full", None, content)
        }
    };
    let atlas = match atlas {
        Err(why) => why,
        Ok(size) => {
            progress("Applying the Atlas data");
            swap_in(&node.data_dir, &staged.atlas, Store::Atlas)?;
            format!("copied ({size} bytes)")
        }
    };
    progress("Installing the application files");
    let files = install_files(&node.data_dir, files)?;
    let rows = match changes {
        Some((_, _, rows)) => rows,
        None => {
            let s = node.core()?.summary()?;
            s.users + s.devices + s.apps + s.policies + s.events + s.certificates + s.local_users + s.atlas.unwrap_or(0)
        }
    };
    Ok(SyncReport {
        peer,
        peer_hostname: peer_hello.hostname,
        peer_node: peer_hello.node_id,
        peer_epoch: peer_hello.epoch,
        kind,
        fallback: header.fallback,
        changes: changes.map(|(from, to, _)| (from, to)),
        kept,
        bytes,
        rows,
        seconds: 0.0,
        content,
        atlas,
        files,
    })
}

/// Before a full copy replaces this node's data: where its own writes part from the
/// peer's log (asking the peer for its checksums over that part). `None` when this node
/// made no writes of its own; `Some(None)` when no change both have was found.
fn find_fork(
    node: &mut Node,
    runtime: &tokio::runtime::Runtime,
    source: &Source,
) -> Result<Option<Option<Position>>, SyncError> {
    let origin = node.id.clone();
    let conn = node.core()?.connection();
    let Some((first, last)) = divergence::own_range(conn, &origin)? else { return Ok(None) };
    let peer = source.target.to_string();
    let theirs: Positions = runtime.block_on(async {
        let (mut link, _) = PeerLink::open(source.target, source.key, source.their_key, source.ours).await?;
        let request = SnapshotRequest { op: "positions".into(), range: Some((first - 1, last)), ..Default::default() };
        link.send_line(&serde_json::to_string(&request).unwrap_or_default()).await?;
        let line = link.read_line(MAX_POSITIONS_LINE).await?;
        link.close().await;
        parse::<Positions>(&line, &peer)
    })?;
    if let Some(reason) = theirs.error {
        return Err(SyncError::Snapshot { peer, reason: format!("cannot compare change logs: {reason}") });
    }
    let ours = divergence::our_positions(conn, first - 1)?;
    Ok(Some(divergence::fork(&ours, &theirs)))
}

/// What a sync brings for the Core data, received and verified, not applied yet.
enum Incoming {
    /// Change-log entries after `from`, up to `to`.
    Changes { entries: Vec<Entry>, from: Position, to: Position },
    /// A full copy with its verified content checksum, and (when this node made writes of
    /// its own) where they part from the peer's.
    Full { fork: Option<Option<Position>>, content: String },
}

/// `CORESH_TEST_PAUSE_BEFORE_APPLY_MS` holds a sync back after everything is received and
/// verified, before it takes the role lock, so that tests can promote the node meanwhile.
fn pause_for_tests() {
    if let Some(ms) = std::env::var("CORESH_TEST_PAUSE_BEFORE_APPLY_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Longest answer to a `positions` request.
const MAX_POSITIONS_LINE: usize = 256 * 1024 * 1024;

/// Verifies a staged store and checks its content against the sender's; returns the
/// content checksum.
fn verified(
    staged: &std::path::Path,
    store: Store,
    trailer: &SnapshotTrailer,
    checked: Option<Checking>,
) -> Result<String, SyncError> {
    let content = match checked {
        Some(checking) => checking.join().map_err(|_| SyncError::Io("the snapshot's verification failed".into()))??,
        None => verify(staged, store)?,
    };
    if content != trailer.content {
        return Err(SyncError::Mismatch { found: content, expected: trailer.content.clone() });
    }
    Ok(content)
}

/// Application files received and verified, not yet in place.
struct IncomingFiles {
    staged: Vec<(PathBuf, String)>,
    removed: Vec<String>,
}

/// Longest files header (it lists every changed file).
const MAX_FILES_HEADER: usize = 16 * 1024 * 1024;

/// Receives the files header and each changed file into staging, checking each one's
/// SHA-256.
async fn receive_files(
    link: &mut PeerLink,
    data_dir: &std::path::Path,
    peer: &str,
    progress: Progress<'_>,
) -> Result<IncomingFiles, SyncError> {
    let plan: super::files::FilesHeader = parse(&link.read_line(MAX_FILES_HEADER).await?, peer)?;
    let total = plan.changed.iter().fold(0u64, |sum, (_, e)| sum.saturating_add(e.size));
    crate::node::room_for(data_dir, total, 1, "the application files").map_err(SyncError::Io)?;
    let mut staged = Vec::new();
    for (seq, (path, entry)) in plan.changed.into_iter().enumerate() {
        if super::files::safe_path(&path).is_none() {
            return Err(SyncError::Snapshot { peer: peer.to_string(), reason: format!("unsafe file path {path:?}") });
        }
        progress(&format!("Receiving application file {path}"));
        let target = super::files::staging_path(data_dir, seq)
            .map_err(|e| SyncError::Io(format!("cannot stage {path}: {e}")))?;
        let mut file =
            std::fs::File::create(&target).map_err(|e| SyncError::Io(format!("cannot stage {path}: {e}")))?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        link.read_bytes(entry.size, |chunk| {
            digest.update(chunk);
            file.write_all(chunk)
        })
        .await?;
        file.sync_all().map_err(|e| SyncError::Io(format!("cannot stage {path}: {e}")))?;
        let found = hex::encode(digest.finish().as_ref());
        if found != entry.sha256 {
            return Err(SyncError::Transfer { found, expected: entry.sha256 });
        }
        staged.push((target, path));
    }
    Ok(IncomingFiles { staged, removed: plan.removed })
}

/// Renames verified files into place and removes those the primary no longer has.
fn install_files(data_dir: &std::path::Path, incoming: IncomingFiles) -> Result<String, SyncError> {
    let (changed, removed) = (incoming.staged.len(), incoming.removed.len());
    for (staged, path) in incoming.staged {
        super::files::install(data_dir, &staged, &path)
            .map_err(|e| SyncError::Io(format!("cannot install {path}: {e}")))?;
    }
    for path in incoming.removed {
        super::files::remove(data_dir, &path).map_err(|e| SyncError::Io(format!("cannot remove {path}: {e}")))?;
    }
    Ok(format!("{changed} changed, {removed} removed"))
}

/// Receives one store: header, then (unless skipped) bytes into `staged` and trailer.
async fn receive(
    link: &mut PeerLink,
    staged: &std::path::Path,
    peer: &str,
    store: Store,
    progress: Progress<'_>,
) -> Result<Received, SyncError> {
    progress(&format!("Waiting for the {} data from {peer}", store.name()));
    let header: SnapshotHeader = parse(&link.read_line(MAX_LINE).await?, peer)?;
    let what = if header.kind == CHANGES { "changes" } else { "snapshot" };
    if let Some(reason) = header.error.clone() {
        return Err(SyncError::Snapshot { peer: peer.to_string(), reason });
    }
    if let Some(why) = header.skipped {
        return Ok(Received::Skipped(why));
    }
    // A size the sender announces sizes nothing before it is checked: the staged copy,
    // then the write that applies it, must fit.
    let dir = staged.parent().unwrap_or(std::path::Path::new("."));
    crate::node::room_for(dir, header.size, 2, &format!("the {} {what}", store.name())).map_err(SyncError::Io)?;
    let mut file =
        std::fs::File::create(staged).map_err(|e| SyncError::Io(format!("cannot stage the snapshot: {e}")))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let (total, mut received, mut shown) = (header.size, 0u64, 0u64);
    link.read_bytes(header.size, |chunk| {
        digest.update(chunk);
        received += chunk.len() as u64;
        let percent = received * 100 / total.max(1);
        if percent > shown || received == total {
            shown = percent;
            progress(&format!(
                "Receiving the {} {what}: {percent}% ({} of {} MB)",
                store.name(),
                received >> 20,
                total >> 20
            ));
        }
        file.write_all(chunk)
    })
    .await?;
    file.sync_all().map_err(|e| SyncError::Io(format!("cannot stage the snapshot: {e}")))?;
    // Verify the snapshot while the sender finishes its integrity check.
    let checked = (header.kind != CHANGES).then(|| {
        let path = staged.to_path_buf();
        std::thread::spawn(move || verify(&path, store))
    });
    let trailer: SnapshotTrailer = parse(&link.read_line(MAX_LINE).await?, peer)?;
    let found = hex::encode(digest.finish().as_ref());
    if found != trailer.sha256 {
        return Err(SyncError::Transfer { found, expected: trailer.sha256 });
    }
    if trailer.integrity != "ok" {
        return Err(SyncError::Snapshot {
            peer: peer.to_string(),
            reason: format!("integrity check: {}", trailer.integrity),
        });
    }
    Ok(Received::Staged { header: Box::new(header), trailer, checked })
}

fn parse<T: serde::de::DeserializeOwned>(line: &[u8], peer: &str) -> Result<T, SyncError> {
    serde_json::from_slice(line).map_err(|e| {
        SyncError::Peer(PeerError::Protocol { target: peer.to_string(), reason: format!("bad message: {e}") })
    })
}
