//! The sending side of a stream (`Request::Follow`): a standby (or a DR node) follows
//! this node's change log and gets each entry as it is committed. Entries go in batches
//! ([`Feed::Batch`], then each [`Change`] line and its changeset); when nothing is new
//! the feed says where the log ends once a second ([`Feed::Idle`]), so the follower
//! knows its lag and that the link lives. A commit of the daemon's writer wakes the feed
//! at once; writes of other processes are seen within [`POLL`]. Where the log cannot go
//! on from the follower's position (trimmed, diverged, restarted) the feed says so
//! ([`Feed::Gap`]) and ends: a sync has to bring the follower on. What the follower
//! acknowledges ([`Applied`]) is handed to the caller.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::watch;

use crate::coredb::changelog::{self, Entry, Gap, Position};
use crate::peer::message::{Applied, Change, Feed};
use crate::peer::{Framed, Link, PeerError};
use crate::store::StoreError;

/// How often the log is looked at when no commit of this process woke the feed.
pub const POLL: Duration = Duration::from_millis(200);
/// How often an idle feed says where the log ends.
pub const IDLE_EVERY: Duration = Duration::from_secs(1);
/// Most entries, and changeset bytes, sent in one batch (well within what a follower
/// accepts: `MAX_BATCH_ENTRIES`, `MAX_BATCH_BYTES`).
const BATCH_ENTRIES: usize = 1024;
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What wakes or ends a feed besides the follower.
pub struct Wake {
    /// Bumped after each commit of this daemon's Core data writer (or of a stream it
    /// applies).
    pub commits: watch::Receiver<u64>,
    /// Says why when the feed must end (a newer stream of the same key took over).
    pub stop: watch::Receiver<Option<String>>,
    /// Turns true when the daemon shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Feeds the follower at `out` from `since` until it hangs up, the log cannot serve it,
/// or `wake.stop` says so; `applied` hears each acknowledgement.
pub async fn feed<L: Link>(
    out: &mut Framed<L>,
    data_dir: &Path,
    since: Position,
    mut wake: Wake,
    applied: &mut (dyn FnMut(i64) + Send),
) -> Result<(), PeerError> {
    let peer = out.target().to_string();
    let local = |e: String| PeerError::Local(format!("the change log: {e}"));
    let db = data_dir.join(crate::coredb::CORE_DB);
    let mut reader = Some(
        Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(|e| local(e.to_string()))?,
    );
    let mut at = since;
    let mut last_sent = Instant::now();
    tracing::info!(subsystem = "replication", %peer, from = at.seq, "stream started");
    loop {
        // Acknowledgements never wait: the channel's buffer must not fill up.
        while let Ok(said) = tokio::time::timeout(Duration::ZERO, out.recv_or_end::<Applied>()).await {
            match said? {
                Some(a) => applied(a.seq),
                None => return ended(&peer, &at),
            }
        }
        let shutting_down = *wake.shutdown.borrow_and_update();
        let stop = wake.stop.borrow_and_update().clone().or(shutting_down.then(|| "it is shutting down".to_string()));
        if let Some(why) = stop {
            out.send(&Feed::Stop { why: why.clone() }).await?;
            tracing::info!(subsystem = "replication", %peer, %why, "stream stopped");
            return Ok(());
        }
        let conn = reader.take().ok_or_else(|| local("no reader".into()))?;
        let from = at.clone();
        let (conn, read) = tokio::task::spawn_blocking(move || {
            let read = next(&conn, &from);
            (conn, read)
        })
        .await
        .map_err(|e| local(e.to_string()))?;
        reader = Some(conn);
        match read.map_err(|e| local(e.to_string()))? {
            Err(gap) => {
                tracing::info!(subsystem = "replication", %peer, reason = %gap, "stream cannot go on");
                return out.send(&Feed::Gap { why: gap.to_string() }).await;
            }
            Ok(entries) if !entries.is_empty() => {
                at = send_batch(out, &entries).await?;
                last_sent = Instant::now();
                continue;
            }
            Ok(_) => {}
        }
        if last_sent.elapsed() >= IDLE_EVERY {
            out.send(&Feed::Idle { head: at.clone(), at_ms: chrono::Utc::now().timestamp_millis() }).await?;
            last_sent = Instant::now();
        }
        let idle_left = IDLE_EVERY.saturating_sub(last_sent.elapsed());
        tokio::select! {
            said = out.recv_or_end::<Applied>() => match said? {
                Some(a) => applied(a.seq),
                None => return ended(&peer, &at),
            },
            _ = wake.commits.changed() => {}
            _ = wake.stop.changed() => {}
            _ = wake.shutdown.changed() => {}
            () = tokio::time::sleep(POLL.min(idle_left)) => {}
        }
    }
}

fn ended(peer: &str, at: &Position) -> Result<(), PeerError> {
    tracing::info!(subsystem = "replication", %peer, at = at.seq, "stream ended by the follower");
    Ok(())
}

/// The next batch after `from`, read in one read transaction.
fn next(conn: &Connection, from: &Position) -> Result<Result<Vec<Entry>, Gap>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let read = changelog::next_after(&tx, from, BATCH_ENTRIES, BATCH_BYTES)?;
    tx.finish()?;
    Ok(read)
}

/// Sends one batch; returns where the follower will be once it applied it.
async fn send_batch<L: Link>(out: &mut Framed<L>, entries: &[Entry]) -> Result<Position, PeerError> {
    let bytes: u64 = entries.iter().map(|e| e.changeset.len() as u64).sum();
    let count = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    out.send(&Feed::Batch { entries: count, bytes }).await?;
    for entry in entries {
        let len = entry.changeset.len() as u64;
        let header = Entry {
            seq: entry.seq,
            at: entry.at.clone(),
            rows: entry.rows,
            checksum: entry.checksum.clone(),
            origin: entry.origin.clone(),
            changeset: Vec::new(),
        };
        out.send(&Change { entry: header, len }).await?;
        out.send_bytes(entry.changeset.clone()).await?;
    }
    let last = entries.last().map(|e| Position { seq: e.seq, checksum: e.checksum.clone() });
    last.ok_or_else(|| PeerError::Local("an empty batch".into()))
}
