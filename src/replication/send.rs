//! The sending side of a pull (a primary, or a secondary a DR node pulls from): the Core
//! data as the changes after the puller's position when the change log holds them,
//! otherwise in full: the checked copy ([`checked`]) and the changes after it when the
//! log reaches back to it, else a full snapshot streamed from a consistent copy (device
//! traffic goes on meanwhile), checked as it goes and kept as the next checked copy;
//! then the Atlas store or why it is skipped; then the application files that differ.
//! Each store goes as a [`StoreHeader`], its bytes and a [`Trailer`]; all of it over any
//! [`Link`]. Also the positions a puller compares its log with.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{checked, divergence, files, increment, snapshot};
use crate::coredb::changelog::{Gap, Position};
use crate::coredb::soundness;
use crate::peer::message::{Manifest, Positions, Store, StoreHeader, Trailer};
use crate::peer::{Framed, Link, PeerError};
use increment::Written;

/// What a puller asked for.
pub struct Asked {
    /// Where its change log ends, when it can take changes.
    pub since: Option<Position>,
    /// The Atlas store (`Some`): sent, or why not.
    pub atlas: Option<Result<(), String>>,
    /// Its application files.
    pub files: Manifest,
}

/// Sends the Core data, then (when asked) the Atlas store or why it is skipped, then
/// the application files that differ.
pub async fn pull<L: Link>(out: &mut Framed<L>, data_dir: &Path, asked: Asked) -> Result<(), PeerError> {
    let peer = out.target().to_string();
    let Asked { since, atlas, files: theirs } = asked;
    send_core(out, data_dir, since, &peer).await?;
    match atlas {
        Some(Ok(())) => send_snapshot(out, data_dir, Store::Atlas, None, &peer).await?,
        Some(Err(why)) => out.send(&StoreHeader::Skipped { store: Store::Atlas, why }).await?,
        None => {}
    }
    send_files(out, data_dir, &theirs, &peer).await
}

/// This node's checksums over the change numbers `first..=last`.
pub async fn positions(data_dir: &Path, first: i64, last: i64, peer: &str) -> Positions {
    let db = data_dir.join(crate::coredb::CORE_DB);
    let answer = tokio::task::spawn_blocking(move || divergence::positions(&db, first, last))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|e| Positions { error: Some(e), ..Default::default() });
    tracing::info!(subsystem = "replication", %peer, from = first, to = last, found = answer.positions.len(), "change-log positions sent");
    answer
}

/// The Core data: the changes after `since` when the log holds them, a full copy
/// otherwise (saying why).
async fn send_core<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    since: Option<Position>,
    peer: &str,
) -> Result<(), PeerError> {
    let Some(from) = since else { return send_full(out, data_dir, None, peer).await };
    let fallback = match changes_file(data_dir, from).await {
        Ok(Ok((path, written))) => return send_changes(out, &path, written, peer).await,
        Ok(Err(gap)) => gap.to_string(),
        Err(e) => format!("the change log could not be read: {e}"),
    };
    tracing::info!(subsystem = "replication", %peer, reason = %fallback, "full snapshot instead of changes");
    send_full(out, data_dir, Some(fallback), peer).await
}

/// The Core data in full: the checked copy and the changes after it when there is a
/// copy the change log reaches back to, a new snapshot (checked as it goes) otherwise.
async fn send_full<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    fallback: Option<String>,
    peer: &str,
) -> Result<(), PeerError> {
    if let Some((copy, file)) = checked::find(data_dir) {
        match changes_file(data_dir, copy.head.clone()).await {
            Ok(Ok((changes, written))) => {
                return send_checked(out, data_dir, (copy, file), (changes, written), fallback).await;
            }
            Ok(Err(gap)) => {
                checked::drop_copy(data_dir, &format!("the change log no longer reaches back to it ({gap})"))
            }
            Err(e) => tracing::warn!(subsystem = "replication", %peer, error = %e, "the checked copy was not used"),
        }
    }
    send_snapshot(out, data_dir, Store::Core, fallback, peer).await
}

/// Writes the change-log entries after `from` into a file of the moment, or says why
/// the log cannot serve them.
async fn changes_file(data_dir: &Path, from: Position) -> Result<Result<(PathBuf, Written), Gap>, String> {
    let (dir, db) = (data_dir.join("snapshots"), data_dir.join(crate::coredb::CORE_DB));
    tokio::task::spawn_blocking(move || -> Result<Result<(PathBuf, Written), Gap>, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!("changes-{}.bin", snapshot::unique_name().map_err(|e| e.to_string())?));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
        let written = increment::write_since(&db, &from, &mut file).map_err(|e| e.to_string());
        let flushed = file.flush().map_err(|e| e.to_string());
        match (written, flushed) {
            (Ok(Ok(w)), Ok(())) => Ok(Ok((path, w))),
            (Ok(Err(gap)), _) => {
                let _ = std::fs::remove_file(&path);
                Ok(Err(gap))
            }
            (Err(e), _) | (_, Err(e)) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()))
}

/// Sends the checked copy (its checks done when it was kept; its bytes compared with
/// the recorded digest as they go), then the changes after it. A copy whose bytes no
/// longer match is dropped and the puller told so in the trailer: it refuses the copy.
async fn send_checked<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    (copy, file): (checked::Checked, std::fs::File),
    (changes, written): (PathBuf, Written),
    fallback: Option<String>,
) -> Result<(), PeerError> {
    let peer = out.target().to_string();
    let header = StoreHeader::Snapshot {
        store: Store::Core,
        size: copy.size,
        taken_at: copy.taken_at.clone(),
        fallback,
        changes_follow: true,
    };
    let verdict = Ok((copy.head.checksum.clone(), Some("ok".to_string())));
    let sent = send_file(out, &copy.path(data_dir), &header, Some((&copy.digest, file)), async { verdict }).await;
    match sent {
        Ok(trailer) if trailer.integrity.as_deref() == Some("ok") => {
            tracing::info!(subsystem = "replication", %peer, at = copy.head.seq, bytes = copy.size, "checked copy sent");
            let sent = send_changes(out, &changes, written, &peer).await;
            // What the peer got no longer vouches for the live data: check it now.
            checked::recheck(data_dir);
            sent
        }
        Ok(trailer) => {
            let _ = std::fs::remove_file(&changes);
            let why = trailer.integrity.unwrap_or_default();
            checked::drop_copy(data_dir, &why);
            Err(PeerError::Local(why))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&changes);
            tracing::warn!(subsystem = "replication", %peer, error = %e, "checked copy not sent");
            Err(e)
        }
    }
}

/// Sends a changes file (then removes it). The puller checks every row it touches, so
/// its trailer claims no integrity check.
async fn send_changes<L: Link>(
    out: &mut Framed<L>,
    path: &Path,
    written: Written,
    peer: &str,
) -> Result<(), PeerError> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let (from, to) = (written.from.clone(), written.to.clone());
    let header = StoreHeader::Changes { size, from, to, entries: written.entries, rows: written.rows };
    let checksum = written.to.checksum.clone();
    let sent = send_file(out, path, &header, None, async { Ok((checksum, None)) }).await.map(|_| ());
    let _ = std::fs::remove_file(path);
    match &sent {
        Ok(()) => {
            tracing::info!(subsystem = "replication", %peer, from = written.from.seq, to = written.to.seq, bytes = size, "changes sent")
        }
        Err(e) => tracing::warn!(subsystem = "replication", %peer, error = %e, "changes not sent"),
    }
    sent
}

/// Takes a snapshot of `store` and sends it: header, the bytes, trailer. The snapshot's
/// checks ([`soundness::check_views`], and for the Core data its rows against its change
/// log) start with the copy, on its views, and run on other threads while the bytes go;
/// the trailer says what they found, and whether the bytes read back were those written.
async fn send_snapshot<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    store: Store,
    fallback: Option<String>,
    peer: &str,
) -> Result<(), PeerError> {
    let file = match store {
        Store::Core => crate::coredb::CORE_DB,
        Store::Atlas => crate::coredb::atlas::ATLAS_DB,
    };
    let taken_at = crate::store::now_text();
    let (dir, db) = (data_dir.join("snapshots"), data_dir.join(file));
    // The checks start with the snapshot (its views see what it copies) and run while
    // the bytes go.
    let checking = move |views| tokio::task::spawn_blocking(move || checked::verdict(views, store));
    let taken = tokio::task::spawn_blocking(move || -> Result<_, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let live = std::fs::metadata(&db).map_err(|e| e.to_string())?.len();
        crate::node::room_for(&dir, live, 1, "a snapshot on the sender")?;
        let (taken, checking) = snapshot::take(&db, &dir, soundness::threads(), checking).map_err(|e| e.to_string())?;
        // Opened once: its size for the header, its bytes to send.
        let opened = std::fs::File::open(&taken.path).and_then(|f| Ok((f.metadata()?.len(), f)));
        match opened {
            Ok((size, file)) => Ok((taken, checking, size, file)),
            Err(e) => {
                let _ = std::fs::remove_file(&taken.path);
                Err(format!("{}: {e}", taken.path.display()))
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let (snapshot::Taken { path, digest }, checking, size, file) = match taken {
        Ok(t) => t,
        Err(why) => {
            tracing::error!(subsystem = "replication", %peer, store = store.name(), error = %why, "snapshot failed");
            // The puller stops at this header; nothing else of the pull follows.
            out.send(&StoreHeader::Failed { store, why: why.clone() }).await?;
            return Err(PeerError::Local(format!("snapshot failed: {why}")));
        }
    };
    // The bytes read back must be those written.
    let checks = async move { checking.await.map_err(|e| e.to_string())? };
    let header = StoreHeader::Snapshot { store, size, taken_at: taken_at.clone(), fallback, changes_follow: false };
    let sent = send_file(out, &path, &header, Some((&digest, file)), checks).await;
    match &sent {
        Ok(_) => tracing::info!(subsystem = "replication", %peer, store = store.name(), bytes = size, "snapshot sent"),
        Err(e) => {
            tracing::warn!(subsystem = "replication", %peer, store = store.name(), error = %e, "snapshot not sent")
        }
    }
    match sent {
        // Every check passed: kept for the next full copy (synced to disk meanwhile,
        // not holding the rest of this pull back).
        Ok(trailer) if store == Store::Core && trailer.integrity.as_deref() == Some("ok") => {
            let data_dir = data_dir.to_path_buf();
            tokio::task::spawn_blocking(move || match checked::keep(&data_dir, &path, &trailer.digest, &taken_at) {
                Ok(kept) => {
                    tracing::info!(subsystem = "replication", at = kept.head.seq, "checked copy of the Core data kept")
                }
                Err(why) => {
                    let _ = std::fs::remove_file(&path);
                    tracing::warn!(subsystem = "replication", reason = %why, "checked copy of the Core data not kept")
                }
            });
            Ok(())
        }
        other => {
            let _ = std::fs::remove_file(&path);
            other.map(|_| ())
        }
    }
}

/// Sends the files header, then each changed file's bytes.
async fn send_files<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    theirs: &Manifest,
    peer: &str,
) -> Result<(), PeerError> {
    use tokio::io::AsyncReadExt;
    let dir = data_dir.to_path_buf();
    let local = |e: String| PeerError::Local(format!("application files: {e}"));
    let ours = tokio::task::spawn_blocking(move || files::manifest(&dir))
        .await
        .map_err(|e| local(e.to_string()))?
        .map_err(|e| local(e.to_string()))?;
    let plan = files::plan(&ours, theirs);
    out.send(&plan).await?;
    let mut chunk = vec![0u8; 256 * 1024];
    for (path, _) in &plan.changed {
        let rel = files::safe_path(path).ok_or_else(|| local(format!("unsafe path {path:?}")))?;
        let mut file = tokio::fs::File::open(data_dir.join(files::FILES_DIR).join(rel))
            .await
            .map_err(|e| local(format!("{path}: {e}")))?;
        loop {
            let n = file.read(&mut chunk).await.map_err(|e| local(format!("{path}: {e}")))?;
            if n == 0 {
                break;
            }
            out.send_bytes(chunk[..n].to_vec()).await?;
        }
    }
    tracing::info!(subsystem = "replication", %peer, changed = plan.changed.len(), removed = plan.removed.len(), "files sent");
    Ok(())
}

/// Sends `header`, the file at `path`, and its trailer once `checks` (run meanwhile)
/// have their results: the content checksum and, for a snapshot, the checks' verdict.
/// With `recorded`, the file already open and the digest its bytes had when they were
/// checked: bytes that no longer have it get a trailer saying so, whatever `checks`
/// found. Returns the trailer.
async fn send_file<L: Link>(
    out: &mut Framed<L>,
    path: &Path,
    header: &StoreHeader,
    recorded: Option<(&str, std::fs::File)>,
    checks: impl std::future::Future<Output = Result<(String, Option<String>), String>>,
) -> Result<Trailer, PeerError> {
    use tokio::io::AsyncReadExt;
    let local = |e: String| PeerError::Local(format!("{}: {e}", path.display()));
    let (recorded, opened) = recorded.unzip();
    let mut file = match opened {
        Some(file) => tokio::fs::File::from_std(file),
        None => tokio::fs::File::open(path).await.map_err(|e| local(e.to_string()))?,
    };
    out.send(header).await?;
    let mut digest = super::digest::Digest::new();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk).await.map_err(|e| local(e.to_string()))?;
        if n == 0 {
            break;
        }
        digest.update(&chunk[..n]);
        out.send_bytes(chunk[..n].to_vec()).await?;
    }
    let (content, mut integrity) = checks.await.map_err(local)?;
    let digest = digest.finish();
    if let Some(recorded) = recorded.filter(|r| *r != digest) {
        integrity = Some(format!(
            "the sender's copy no longer has the bytes that were checked (digest {digest}, checked {recorded}); it is dropped: sync again"
        ));
    }
    let trailer = Trailer { digest, content, integrity };
    out.send(&trailer).await?;
    Ok(trailer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link that keeps what is sent.
    struct Sink(Vec<u8>);

    impl Link for Sink {
        async fn send(&mut self, bytes: Vec<u8>) -> Result<(), PeerError> {
            self.0.extend(bytes);
            Ok(())
        }
        async fn recv(&mut self) -> Result<Option<Vec<u8>>, PeerError> {
            Ok(None)
        }
        async fn close(self) {}
    }

    /// The trailer `send_file` sends for `bytes` on disk, recorded (written or checked)
    /// with `recorded`, its checks all passed.
    fn trailer_for(bytes: &[u8], recorded: impl Fn(&str) -> String) -> Trailer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.db");
        std::fs::write(&path, bytes).unwrap();
        let recorded = recorded(&super::super::digest::of_file(&path).unwrap());
        let header = StoreHeader::Snapshot {
            store: Store::Core,
            size: bytes.len() as u64,
            taken_at: "t".into(),
            fallback: None,
            changes_follow: false,
        };
        let mut out = Framed::new(Sink(Vec::new()), "core-b");
        let file = std::fs::File::open(&path).unwrap();
        let checks = async { Ok(("c".to_string(), Some("ok".to_string()))) };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(send_file(&mut out, &path, &header, Some((&recorded, file)), checks)).unwrap()
    }

    #[test]
    fn bytes_read_back_that_are_not_those_written_are_refused_in_the_trailer() {
        let bytes = vec![7u8; 300_000];
        let same = trailer_for(&bytes, |read| read.to_string());
        assert_eq!(same.integrity.as_deref(), Some("ok"));
        // A file changed on the sender's disk after it was written (or checked): its
        // checks passed, but not on these bytes.
        let changed = trailer_for(&bytes, |_| super::super::digest::Digest::new().finish());
        let why = changed.integrity.unwrap();
        assert!(why.contains("no longer has the bytes that were checked"), "{why}");
        assert_eq!(changed.content, "c");
    }
}
