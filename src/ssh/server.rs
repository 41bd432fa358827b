//! The daemon's SSH server (the guide's port 22). Peers log in as `coresh-peer` with a
//! key from the trusted hosts and may open only the replication subsystem: a shell, a
//! command or a pseudo-terminal is refused. On the subsystem each side first sends its
//! [`Hello`]; then the peer asks, one line at a time, and this node answers (a full
//! snapshot is streamed from a consistent copy, so device traffic goes on meanwhile).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use tokio::sync::watch;

use super::hello::{Hello, MAX_HELLO, PEER_USER, SUBSYSTEM};
use super::keys::fingerprint;
use crate::replication::{SnapshotHeader, SnapshotRequest, SnapshotTrailer, files, snapshot};
use crate::serve::view::NodeView;

/// Longest request line (it carries the puller's file manifest).
pub const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// Accepts peer connections.
pub struct SshServer {
    /// The node's live view (trusted keys, settings).
    pub view: watch::Receiver<Arc<NodeView>>,
    /// The node's data directory (snapshots are taken from it).
    pub data_dir: PathBuf,
}

/// Where a replication channel stands.
#[derive(Default)]
struct Stage {
    /// Bytes received and not handled yet.
    buffer: Vec<u8>,
    /// Whether the hellos have been traded.
    greeted: bool,
    /// Whether a snapshot is being streamed on it (it closes the channel when done).
    streaming: bool,
}

impl russh::server::Server for SshServer {
    type Handler = PeerSession;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> PeerSession {
        PeerSession { view: self.view.clone(), data_dir: self.data_dir.clone(), peer, subsystems: HashMap::new() }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(subsystem = "ssh", error = %error, "session ended with an error");
    }
}

/// One peer connection.
pub struct PeerSession {
    view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    peer: Option<SocketAddr>,
    /// Replication channels and where each stands.
    subsystems: HashMap<ChannelId, Stage>,
}

impl PeerSession {
    fn peer(&self) -> String {
        self.peer.map_or_else(|| "unknown".into(), |p| p.to_string())
    }

    fn refuse(&self, channel: ChannelId, what: &str, session: &mut Session) -> Result<(), russh::Error> {
        tracing::warn!(subsystem = "ssh", peer = %self.peer(), "refused {what}: peers may open only the replication channel");
        session.channel_failure(channel)?;
        session.close(channel)
    }
}

impl russh::server::Handler for PeerSession {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        let trusted = self.view.borrow().trusted_keys.iter().any(|k| k.key_data() == key.public_key.key_data());
        if user == PEER_USER && trusted {
            tracing::info!(subsystem = "ssh", peer = %self.peer(), key = %fingerprint(key.public_key), "peer authenticated");
            return Ok(Auth::Accept);
        }
        tracing::warn!(
            subsystem = "ssh",
            peer = %self.peer(),
            user,
            key = %fingerprint(key.public_key),
            "login refused: not a trusted peer key"
        );
        Ok(Auth::reject())
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name != SUBSYSTEM {
            return self.refuse(channel, &format!("subsystem {name}"), session);
        }
        self.subsystems.insert(channel, Stage::default());
        session.channel_success(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        self.refuse(channel, "a shell", session)
    }

    async fn exec_request(&mut self, channel: ChannelId, _: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        self.refuse(channel, "a command", session)
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        _: u32,
        _: u32,
        _: u32,
        _: u32,
        _: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse(channel, "a terminal", session)
    }

    async fn channel_eof(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        // The peer has nothing more to ask: close, unless a snapshot is still on its way.
        if self.subsystems.get(&channel).is_none_or(|s| !s.streaming) {
            self.subsystems.remove(&channel);
            session.close(channel)?;
        }
        Ok(())
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        let peer = self.peer();
        let Some(stage) = self.subsystems.get_mut(&channel) else {
            return session.close(channel);
        };
        stage.buffer.extend_from_slice(data);
        let limit = if stage.greeted { MAX_REQUEST } else { MAX_HELLO };
        if stage.buffer.len() > limit {
            tracing::warn!(subsystem = "ssh", %peer, "line too long; closing");
            return session.close(channel);
        }
        while let Some(end) = stage.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = stage.buffer.drain(..=end).collect();
            if !stage.greeted {
                let Ok(theirs) = serde_json::from_slice::<Hello>(&line) else {
                    tracing::warn!(subsystem = "ssh", %peer, "malformed hello; closing");
                    return session.close(channel);
                };
                let view = self.view.borrow().clone();
                let ours = Hello::of(&view.settings, &view.node_id);
                tracing::info!(subsystem = "ssh", %peer, node = %theirs.node_id, version = %theirs.version, "peer hello");
                session.data(channel, ours.to_line().into_bytes())?;
                stage.greeted = true;
                continue;
            }
            match serde_json::from_slice::<SnapshotRequest>(&line) {
                Ok(request) if request.op == "snapshot" => {
                    tracing::info!(subsystem = "replication", %peer, atlas = request.atlas, "snapshot requested");
                    stage.streaming = true;
                    let view = self.view.borrow().clone();
                    let atlas = request.atlas.then(|| {
                        if view.settings.atlas {
                            Ok(())
                        } else {
                            Err(format!("Atlas is not enabled on {}", view.settings.hostname))
                        }
                    });
                    let wanted = Wanted { atlas, files: request.files };
                    tokio::spawn(stream_snapshots(
                        session.handle(),
                        channel,
                        self.data_dir.clone(),
                        wanted,
                        peer.clone(),
                    ));
                }
                _ => {
                    tracing::warn!(subsystem = "replication", %peer, "unknown request; closing");
                    session.close(channel)?;
                }
            }
        }
        Ok(())
    }
}

/// What a puller asked for besides the Core data.
struct Wanted {
    /// The Atlas store (`Some`): sent, or why not.
    atlas: Option<Result<(), String>>,
    /// The puller's application files.
    files: files::Manifest,
}

/// Streams the Core data, then (when asked) the Atlas store or why it is skipped, then
/// the application files that differ; then closes the channel.
async fn stream_snapshots(
    handle: russh::server::Handle,
    channel: ChannelId,
    data_dir: PathBuf,
    wanted: Wanted,
    peer: String,
) {
    let Wanted { atlas, files: theirs } = wanted;
    let mut ok = stream_snapshot(&handle, channel, &data_dir, crate::coredb::CORE_DB, "core", &peer).await;
    match atlas {
        Some(Ok(())) if ok => {
            ok = stream_snapshot(&handle, channel, &data_dir, crate::coredb::atlas::ATLAS_DB, "atlas", &peer).await;
        }
        Some(Err(why)) if ok => {
            let header = SnapshotHeader {
                store: "atlas".into(),
                skipped: Some(why),
                size: 0,
                taken_at: crate::store::now_text(),
                error: None,
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

/// Takes a snapshot of `file` and streams it: header line, the bytes, trailer line. The
/// content checksum and `PRAGMA integrity_check` run on other threads while the bytes
/// are sent. Returns whether the peer got it all.
async fn stream_snapshot(
    handle: &russh::server::Handle,
    channel: ChannelId,
    data_dir: &std::path::Path,
    file: &str,
    store: &str,
    peer: &str,
) -> bool {
    let now = crate::store::now_text();
    let (dir, db) = (data_dir.join("snapshots"), data_dir.join(file));
    let taken = tokio::task::spawn_blocking(move || -> Result<(PathBuf, u64), String> {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = snapshot::take(&db, &dir).map_err(|e| e.to_string())?;
        let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        Ok((path, size))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    let header =
        |size, error| SnapshotHeader { store: store.to_string(), skipped: None, size, taken_at: now.clone(), error };
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
    let content = tokio::task::spawn_blocking(move || -> Result<String, String> {
        snapshot::content_checksum(&read_only(&for_checksum)?).map_err(|e| e.to_string())
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
    let trailer = SnapshotTrailer { sha256: snapshot::hex(digest.finish().as_ref()), content, integrity };
    handle.data(channel, json_line(&trailer)).await.map_err(closed)
}

/// One JSON line of a protocol message.
fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.push(b'\n');
    v
}
