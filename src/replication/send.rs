//! The sending side of a pull (a primary, or a secondary a DR node pulls from): the Core
//! data as the changes after the puller's position when the change log holds them,
//! otherwise as a full snapshot streamed from a consistent copy (device traffic goes on
//! meanwhile); then the Atlas store or why it is skipped; then the application files
//! that differ. Each store goes as a [`StoreHeader`], its bytes and a [`Trailer`]; all of
//! it over any [`Link`]. Also the positions a puller compares its log with.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{divergence, files, increment, snapshot};
use crate::coredb::changelog::{self, Gap, Position};
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

/// The Core data: the changes after `since` when the log holds them, a full snapshot
/// otherwise (saying why).
async fn send_core<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    since: Option<Position>,
    peer: &str,
) -> Result<(), PeerError> {
    let Some(from) = since else { return send_snapshot(out, data_dir, Store::Core, None, peer).await };
    let (dir, db) = (data_dir.join("snapshots"), data_dir.join(crate::coredb::CORE_DB));
    let prepared = tokio::task::spawn_blocking(move || -> Result<Result<(PathBuf, Written), Gap>, String> {
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
    .unwrap_or_else(|e| Err(e.to_string()));
    let fallback = match prepared {
        Ok(Ok((path, written))) => return send_changes(out, &path, written, peer).await,
        Ok(Err(gap)) => gap.to_string(),
        Err(e) => format!("the change log could not be read: {e}"),
    };
    tracing::info!(subsystem = "replication", %peer, reason = %fallback, "full snapshot instead of changes");
    send_snapshot(out, data_dir, Store::Core, Some(fallback), peer).await
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
    let sent = send_file(out, path, &header, async { Ok((checksum, None)) }).await;
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
/// checks ([`soundness::check`], and for the Core data its rows against its change log)
/// run on other threads while the bytes go; the trailer says what they found.
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
    let taken = tokio::task::spawn_blocking(move || -> Result<(PathBuf, u64), String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let live = std::fs::metadata(&db).map_err(|e| e.to_string())?.len();
        crate::node::room_for(&dir, live, 1, "a snapshot on the sender")?;
        let path = snapshot::take(&db, &dir).map_err(|e| e.to_string())?;
        let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        Ok((path, size))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let (path, size) = match taken {
        Ok(t) => t,
        Err(why) => {
            tracing::error!(subsystem = "replication", %peer, store = store.name(), error = %why, "snapshot failed");
            // The puller stops at this header; nothing else of the pull follows.
            out.send(&StoreHeader::Failed { store, why: why.clone() }).await?;
            return Err(PeerError::Local(format!("snapshot failed: {why}")));
        }
    };
    let for_checks = path.clone();
    let checks = async move {
        let checked = tokio::task::spawn_blocking(move || checked(&for_checks, store));
        checked.await.map_err(|e| e.to_string())?
    };
    let header = StoreHeader::Snapshot { store, size, taken_at, fallback };
    let sent = send_file(out, &path, &header, checks).await;
    let _ = std::fs::remove_file(&path);
    match &sent {
        Ok(()) => tracing::info!(subsystem = "replication", %peer, store = store.name(), bytes = size, "snapshot sent"),
        Err(e) => {
            tracing::warn!(subsystem = "replication", %peer, store = store.name(), error = %e, "snapshot not sent")
        }
    }
    sent
}

/// The snapshot's content checksum (from its rows) and what its checks found: `ok`, or
/// the first problem. The Core data's rows must also have the checksum its own change
/// log holds, which later incremental syncs build on.
fn checked(path: &Path, store: Store) -> Result<(String, Option<String>), String> {
    let verdict = soundness::check(path).map_err(|e| e.to_string())?;
    let content = match verdict {
        Ok(content) => content,
        Err(problem) => return Ok((String::new(), Some(problem))),
    };
    if store == Store::Core {
        let conn = crate::store::open_read_only(path).map_err(|e| e.to_string())?;
        let logged = changelog::head(&conn).map_err(|e| e.to_string())?.checksum;
        if logged != content {
            let problem = format!("its rows have the checksum {content}, its change log says {logged}");
            return Ok((content, Some(problem)));
        }
    }
    Ok((content, Some("ok".into())))
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
async fn send_file<L: Link>(
    out: &mut Framed<L>,
    path: &Path,
    header: &StoreHeader,
    checks: impl std::future::Future<Output = Result<(String, Option<String>), String>>,
) -> Result<(), PeerError> {
    use tokio::io::AsyncReadExt;
    let local = |e: String| PeerError::Local(format!("{}: {e}", path.display()));
    out.send(header).await?;
    let mut file = tokio::fs::File::open(path).await.map_err(|e| local(e.to_string()))?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk).await.map_err(|e| local(e.to_string()))?;
        if n == 0 {
            break;
        }
        digest.update(&chunk[..n]);
        out.send_bytes(chunk[..n].to_vec()).await?;
    }
    let (content, integrity) = checks.await.map_err(local)?;
    out.send(&Trailer { sha256: hex::encode(digest.finish()), content, integrity }).await
}
