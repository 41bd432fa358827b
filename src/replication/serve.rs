//! The sending side of a sync (a primary, or a secondary a DR node pulls from): the
//! Core data as the changes after the puller's position when the change log holds them,
//! otherwise as a full snapshot streamed from a consistent copy (device traffic goes on
//! meanwhile); then the Atlas store or why it is skipped; then the application files
//! that differ. Each store goes as a header line, its bytes and a trailer line.

use std::path::PathBuf;

use russh::ChannelId;

use std::io::Write;

use super::divergence;
use super::increment::{self, Written};
use super::{CHANGES, SnapshotHeader, SnapshotTrailer, files, snapshot};
use crate::coredb::changelog::{self, Gap, Position};

/// What a puller asked for besides the Core data.
pub struct Wanted {
    /// The Atlas store (`Some`): sent, or why not.
    pub atlas: Option<Result<(), String>>,
    /// The puller's application files.
    pub files: files::Manifest,
    /// Where the puller's change log ends, when it can take changes.
    pub position: Option<Position>,
}

/// Streams the Core data, then (when asked) the Atlas store or why it is skipped, then
/// the application files that differ; then closes the channel.
pub async fn stream(
    handle: russh::server::Handle,
    channel: ChannelId,
    data_dir: PathBuf,
    wanted: Wanted,
    peer: String,
) {
    let Wanted { atlas, files: theirs, position } = wanted;
    let mut ok = stream_core(&handle, channel, &data_dir, position, &peer).await;
    match atlas {
        Some(Ok(())) if ok => {
            ok = stream_snapshot(&handle, channel, &data_dir, crate::coredb::atlas::ATLAS_DB, "atlas", None, &peer)
                .await;
        }
        Some(Err(why)) if ok => {
            let header = SnapshotHeader {
                store: "atlas".into(),
                skipped: Some(why),
                taken_at: crate::store::now_text(),
                ..SnapshotHeader::default()
            };
            ok = handle.data(channel, json_line(&header)).await.is_ok();
        }
        _ => {}
    }
    if ok {
        ok = stream_files(&handle, channel, &data_dir, &theirs, &peer).await;
    }
    if !ok {
        tracing::warn!(subsystem = "replication", %peer, "snapshot stream ended early");
    }
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// Answers a `positions` request: this node's checksums over the change numbers
/// `range`, as one line; then closes the channel.
pub async fn positions(
    handle: russh::server::Handle,
    channel: ChannelId,
    data_dir: PathBuf,
    range: (i64, i64),
    peer: String,
) {
    let db = data_dir.join(crate::coredb::CORE_DB);
    let answer = tokio::task::spawn_blocking(move || divergence::positions(&db, range.0, range.1))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .unwrap_or_else(|e| divergence::Positions { error: Some(e), ..Default::default() });
    tracing::info!(subsystem = "replication", %peer, from = range.0, to = range.1, found = answer.positions.len(), "change-log positions sent");
    answer_and_close(&handle, channel, &answer).await;
}

/// Sends `answer` as one JSON line and closes the channel (a one-question request).
pub async fn answer_and_close(handle: &russh::server::Handle, channel: ChannelId, answer: &impl serde::Serialize) {
    let _ = handle.data(channel, json_line(answer)).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}

/// Streams the Core data: the changes after `position` when the log holds them, a full
/// snapshot otherwise (saying why).
async fn stream_core(
    handle: &russh::server::Handle,
    channel: ChannelId,
    data_dir: &std::path::Path,
    position: Option<Position>,
    peer: &str,
) -> bool {
    let Some(from) = position else {
        return stream_snapshot(handle, channel, data_dir, crate::coredb::CORE_DB, "core", None, peer).await;
    };
    let (dir, db) = (data_dir.join("snapshots"), data_dir.join(crate::coredb::CORE_DB));
    let prepared = tokio::task::spawn_blocking(move || -> Result<Result<(PathBuf, Written), Gap>, String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join(format!("changes-{}.bin", snapshot::unique_name().map_err(|e| e.to_string())?));
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(|e| e.to_string())?);
        let written = increment::write_since(&db, &from, &mut out).map_err(|e| e.to_string());
        let flushed = out.flush().map_err(|e| e.to_string());
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
        Ok(Ok((path, written))) => return stream_changes(handle, channel, &path, written, peer).await,
        Ok(Err(gap)) => gap.to_string(),
        Err(e) => format!("the change log could not be read: {e}"),
    };
    tracing::info!(subsystem = "replication", %peer, reason = %fallback, "full snapshot instead of changes");
    stream_snapshot(handle, channel, data_dir, crate::coredb::CORE_DB, "core", Some(fallback), peer).await
}

/// Streams a changes file (then removes it).
async fn stream_changes(
    handle: &russh::server::Handle,
    channel: ChannelId,
    path: &std::path::Path,
    written: Written,
    peer: &str,
) -> bool {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let checksum = written.to.checksum.clone();
    let header = SnapshotHeader {
        store: "core".into(),
        size,
        taken_at: crate::store::now_text(),
        kind: CHANGES.into(),
        from: Some(written.from.clone()),
        to: Some(written.to.clone()),
        entries: written.entries,
        rows: written.rows,
        ..SnapshotHeader::default()
    };
    let content = tokio::spawn(async move { Ok(checksum) });
    let integrity = tokio::spawn(async { Ok("ok".to_string()) });
    let sent = send_file(handle, channel, path, &json_line(&header), content, integrity).await;
    let _ = std::fs::remove_file(path);
    match sent {
        Ok(()) => {
            tracing::info!(subsystem = "replication", %peer, from = written.from.seq, to = written.to.seq, bytes = size, "changes sent");
            true
        }
        Err(e) => {
            tracing::warn!(subsystem = "replication", %peer, error = %e, "changes not sent");
            false
        }
    }
}

/// Takes a snapshot of `file` and streams it: header line, the bytes, trailer line. The
/// content checksum and `PRAGMA integrity_check` run on other threads while the bytes
/// are sent. Returns whether the peer got it all.
async fn stream_snapshot(
    handle: &russh::server::Handle,
    channel: ChannelId,
    data_dir: &std::path::Path,
    file: &str,
    store: &str,
    fallback: Option<String>,
    peer: &str,
) -> bool {
    let now = crate::store::now_text();
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
    let header = |size, error| SnapshotHeader {
        store: store.to_string(),
        size,
        taken_at: now.clone(),
        error,
        fallback: fallback.clone(),
        ..SnapshotHeader::default()
    };
    let (path, size) = match taken {
        Ok(t) => t,
        Err(reason) => {
            tracing::error!(subsystem = "replication", %peer, store, error = %reason, "snapshot failed");
            let _ = handle.data(channel, json_line(&header(0, Some(reason)))).await;
            return false;
        }
    };
    let read_only = |p: &std::path::Path| {
        rusqlite::Connection::open_with_flags(p, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| e.to_string())
    };
    let for_checksum = path.clone();
    let logged = store == "core";
    let content = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let conn = read_only(&for_checksum)?;
        // The Core data's checksum is kept by its change log; the puller computes it
        // from the rows and compares.
        let sum = if logged { changelog::head(&conn).map(|h| h.checksum) } else { snapshot::content_checksum(&conn) };
        sum.map_err(|e| e.to_string())
    });
    let for_integrity = path.clone();
    let integrity = tokio::task::spawn_blocking(move || -> Result<String, String> {
        read_only(&for_integrity)?.query_row("PRAGMA integrity_check", [], |r| r.get(0)).map_err(|e| e.to_string())
    });
    let sent = send_file(handle, channel, &path, &json_line(&header(size, None)), content, integrity).await;
    let _ = std::fs::remove_file(&path);
    match sent {
        Ok(()) => {
            tracing::info!(subsystem = "replication", %peer, store, bytes = size, "snapshot sent");
            true
        }
        Err(e) => {
            tracing::warn!(subsystem = "replication", %peer, store, error = %e, "snapshot not sent");
            false
        }
    }
}

/// Sends the files header, then each changed file's bytes.
async fn stream_files(
    handle: &russh::server::Handle,
    channel: ChannelId,
    data_dir: &std::path::Path,
    theirs: &files::Manifest,
    peer: &str,
) -> bool {
    use tokio::io::AsyncReadExt;
    let dir = data_dir.to_path_buf();
    let ours = match tokio::task::spawn_blocking(move || files::manifest(&dir)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::error!(subsystem = "replication", %peer, error = %e, "cannot list the application files");
            return false;
        }
        Err(_) => return false,
    };
    let plan = files::plan(&ours, theirs);
    if handle.data(channel, json_line(&plan)).await.is_err() {
        return false;
    }
    let mut chunk = vec![0u8; 256 * 1024];
    for (path, _) in &plan.changed {
        let Some(rel) = files::safe_path(path) else { return false };
        let Ok(mut file) = tokio::fs::File::open(data_dir.join(files::FILES_DIR).join(rel)).await else { return false };
        loop {
            let Ok(n) = file.read(&mut chunk).await else { return false };
            if n == 0 {
                break;
            }
            if handle.data(channel, bytes::Bytes::copy_from_slice(&chunk[..n])).await.is_err() {
                return false;
            }
        }
    }
    tracing::info!(subsystem = "replication", %peer, changed = plan.changed.len(), removed = plan.removed.len(), "files sent");
    true
}

async fn send_file(
    handle: &russh::server::Handle,
    channel: ChannelId,
    path: &std::path::Path,
    header: &[u8],
    content: tokio::task::JoinHandle<Result<String, String>>,
    integrity: tokio::task::JoinHandle<Result<String, String>>,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let closed = |_| "the peer went away".to_string();
    handle.data(channel, header.to_vec()).await.map_err(closed)?;
    let mut file = tokio::fs::File::open(path).await.map_err(|e| e.to_string())?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        digest.update(&chunk[..n]);
        handle.data(channel, bytes::Bytes::copy_from_slice(&chunk[..n])).await.map_err(closed)?;
    }
    let content = content.await.map_err(|e| e.to_string())??;
    let integrity = integrity.await.map_err(|e| e.to_string())??;
    let trailer = SnapshotTrailer { sha256: hex::encode(digest.finish()), content, integrity };
    handle.data(channel, json_line(&trailer)).await.map_err(closed)
}

/// One JSON line of a protocol message.
pub fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}
