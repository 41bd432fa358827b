//! Taking in what a pull brings, as it comes: each store's header, its bytes into a
//! staging file (the disk's room checked first against what the sender announced, the
//! digest taken as the bytes come), its trailer (with the sender's verdict on a
//! snapshot; after a checked copy, the changes after it as a part of their own); then
//! the application files, each into staging and checked against its
//! SHA-256. As soon as a snapshot's bytes are in, its own verification starts, and so
//! does its swap's copy into the live data (`apply::prepare`), left uncommitted: nothing
//! here changes the live data, and a refusal rolls the copy back.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::apply::{ApplyError, prepare, verify};
use super::error::SyncError;
use super::files;
use crate::coredb::changelog::Position;
use crate::coredb::swap::Swap;
use crate::peer::message::{FilesHeader, Store, StoreHeader, Trailer};
use crate::peer::{Framed, Link};

/// How a sync is getting on, for an operator watching it.
pub type Progress<'a> = &'a mut dyn FnMut(&str);

/// A staged snapshot's own verification, started as soon as its bytes were in.
/// It yields, for the Core data, the checksum the staged change log ends at.
pub type Checking = std::thread::JoinHandle<Result<Option<String>, ApplyError>>;

/// One store, received into staging, or skipped by the sender (and why).
pub enum Received {
    /// A full copy, staged, its verification under way, and (unless `changes_follow`)
    /// its swap prepared. With `changes_follow`, the sender's checked copy: the entries
    /// after it come next, as their own part, and are applied to the staged copy first.
    Snapshot {
        size: u64,
        fallback: Option<String>,
        trailer: Trailer,
        checking: Checking,
        changes_follow: bool,
        swap: Option<Swap>,
    },
    /// The Core data's change-log entries after `from` up to `to`, staged.
    Changes { size: u64, from: Position, to: Position },
    /// Not sent, and why.
    Skipped(String),
}

/// Receives one store into `staged`, for the live one of `data_dir`: its header, then
/// (unless skipped) its bytes and its trailer. Changes come only for the Core data, and
/// only when they were asked for.
pub async fn store<L: Link>(
    stream: &mut Framed<L>,
    (data_dir, staged): (&Path, &Path),
    expect: Store,
    changes_asked: bool,
    progress: Progress<'_>,
) -> Result<Received, SyncError> {
    let peer = stream.target().to_string();
    progress(&format!("Waiting for the {} data from {peer}", expect.name()));
    let (size, what, kind) = match stream.recv::<StoreHeader>().await? {
        StoreHeader::Failed { why, .. } => return Err(SyncError::Snapshot { peer, reason: why }),
        StoreHeader::Skipped { why, .. } => return Ok(Received::Skipped(why)),
        StoreHeader::Snapshot { store, size, fallback, changes_follow, .. }
            if store == expect && (store == Store::Core || !changes_follow) =>
        {
            (size, "snapshot", Ok((fallback, changes_follow)))
        }
        StoreHeader::Changes { size, from, to, .. } if expect == Store::Core && changes_asked => {
            (size, "changes", Err((from, to)))
        }
        other => {
            let reason = format!("the {} data was expected, not {other:?}", expect.name());
            return Err(SyncError::Peer(crate::peer::PeerError::Protocol { target: peer, reason }));
        }
    };
    // A size the sender announces sizes nothing before it is checked: the staged copy,
    // then the write that applies it, must fit.
    let dir = staged.parent().unwrap_or(Path::new("."));
    crate::node::room_for(dir, size, 2, &format!("the {} {what}", expect.name())).map_err(SyncError::Io)?;
    let mut file = std::fs::File::create(staged).map_err(|e| SyncError::Io(format!("cannot stage the {what}: {e}")))?;
    let mut digest = super::digest::Digest::new();
    let (mut received, mut shown) = (0u64, 0u64);
    stream
        .recv_bytes(size, |chunk| {
            digest.update(chunk);
            received += chunk.len() as u64;
            let percent = received * 100 / size.max(1);
            if percent > shown || received == size {
                shown = percent;
                let (mb, of) = (received >> 20, size >> 20);
                progress(&format!("Receiving the {} {what}: {percent}% ({mb} of {of} MB)", expect.name()));
            }
            file.write_all(chunk)
        })
        .await?;
    // Not synced: a staged file is read back from the page cache and dropped after the
    // pull; what must survive a crash is the live data's own commit.
    // A snapshot is verified here while the sender finishes its checks, and its swap
    // prepared meanwhile (a checked copy's only once the changes after it are applied).
    let checking = kind.is_ok().then(|| {
        let path = staged.to_path_buf();
        std::thread::spawn(move || verify(&path, expect))
    });
    let swap = matches!(kind, Ok((_, false))).then(|| prepare(data_dir, staged, expect));
    let trailer: Trailer = stream.recv().await?;
    let found = digest.finish();
    if found != trailer.digest {
        return Err(SyncError::Transfer { found, expected: trailer.digest });
    }
    match (kind, checking) {
        (Ok((fallback, changes_follow)), Some(checking)) => {
            match trailer.integrity.as_deref() {
                Some("ok") => {}
                other => {
                    let reason = other.unwrap_or("none reported").to_string();
                    return Err(SyncError::Unsound { peer, reason });
                }
            }
            Ok(Received::Snapshot { size, fallback, trailer, checking, changes_follow, swap })
        }
        (Err((from, to)), _) => Ok(Received::Changes { size, from, to }),
        (Ok(_), None) => Err(SyncError::Io("the snapshot's verification did not start".into())),
    }
}

/// Application files received and verified, not yet in place.
pub struct IncomingFiles {
    staged: Vec<(PathBuf, String)>,
    removed: Vec<String>,
}

/// Receives the files header and each changed file into staging, checking each one's
/// SHA-256.
pub async fn files<L: Link>(
    stream: &mut Framed<L>,
    data_dir: &Path,
    progress: Progress<'_>,
) -> Result<IncomingFiles, SyncError> {
    let peer = stream.target().to_string();
    let plan: FilesHeader = stream.recv().await?;
    let total = plan.changed.iter().fold(0u64, |sum, (_, e)| sum.saturating_add(e.size));
    crate::node::room_for(data_dir, total, 1, "the application files").map_err(SyncError::Io)?;
    let mut staged = Vec::new();
    for (seq, (path, entry)) in plan.changed.into_iter().enumerate() {
        if files::safe_path(&path).is_none() {
            return Err(SyncError::Snapshot { peer, reason: format!("unsafe file path {path:?}") });
        }
        progress(&format!("Receiving application file {path}"));
        let cannot = |e: std::io::Error| SyncError::Io(format!("cannot stage {path}: {e}"));
        let target = files::staging_path(data_dir, seq).map_err(cannot)?;
        let mut file = std::fs::File::create(&target).map_err(cannot)?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        stream
            .recv_bytes(entry.size, |chunk| {
                digest.update(chunk);
                file.write_all(chunk)
            })
            .await?;
        file.sync_all().map_err(cannot)?;
        let found = hex::encode(digest.finish());
        if found != entry.sha256 {
            return Err(SyncError::Transfer { found, expected: entry.sha256 });
        }
        staged.push((target, path));
    }
    Ok(IncomingFiles { staged, removed: plan.removed })
}

/// Renames verified files into place and removes those the sender no longer has.
pub fn install_files(data_dir: &Path, incoming: IncomingFiles) -> Result<String, SyncError> {
    let (changed, removed) = (incoming.staged.len(), incoming.removed.len());
    for (staged, path) in incoming.staged {
        files::install(data_dir, &staged, &path).map_err(|e| SyncError::Io(format!("cannot install {path}: {e}")))?;
    }
    for path in incoming.removed {
        files::remove(data_dir, &path).map_err(|e| SyncError::Io(format!("cannot remove {path}: {e}")))?;
    }
    Ok(format!("{changed} changed, {removed} removed"))
}
