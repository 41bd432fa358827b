//! The follower's side of a stream (`Request::Follow`): what the followed node sends,
//! read with every length bounded before it sizes anything ([`next`]), and each batch
//! applied here in one verified transaction ([`apply`]): under the sync lock (a sync
//! and a batch never overlap) and the role lock (a batch never lands on a node that was
//! promoted meanwhile), checked row by row and by content checksum exactly as an
//! incremental sync is, and kept in this node's own log, so that a DR node can follow it
//! in turn.

use crate::coredb::changelog::{Entry, Position};
use crate::ha::{Mode, NodeStatus, RoleLock};
use crate::node::Node;
use crate::peer::message::{Change, Feed, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};
use crate::peer::{Framed, Link, PeerError};
use crate::store::StoreError;

use super::increment::{self, IncrementError};
use super::lock::SyncLock;

/// What the followed node said.
#[derive(Debug)]
pub enum Frame {
    /// Entries to apply, oldest first.
    Batch(Vec<Entry>),
    /// Nothing new: where its log ends, and its clock.
    Idle { head: Position, at_ms: i64 },
    /// Its log cannot bring this node on: a sync has to.
    Gap(String),
    /// It stopped feeding.
    Stop(String),
    /// It hung up.
    Ended,
}

/// Reads what the followed node sends next. A batch that announces more than a
/// follower accepts, or entries longer than it announced, is a protocol error.
pub async fn next<L: Link>(framed: &mut Framed<L>) -> Result<Frame, PeerError> {
    let protocol = |target: &str, reason: String| PeerError::Protocol { target: target.to_string(), reason };
    let Some(feed) = framed.recv_or_end::<Feed>().await? else { return Ok(Frame::Ended) };
    let (entries, bytes) = match feed {
        Feed::Batch { entries, bytes } => (entries, bytes),
        Feed::Idle { head, at_ms } => return Ok(Frame::Idle { head, at_ms }),
        Feed::Gap { why } => return Ok(Frame::Gap(why)),
        Feed::Stop { why } => return Ok(Frame::Stop(why)),
    };
    if entries == 0 || entries > MAX_BATCH_ENTRIES || bytes > MAX_BATCH_BYTES {
        let reason = format!(
            "a batch of {entries} entries and {bytes} bytes (at most {MAX_BATCH_ENTRIES} and {MAX_BATCH_BYTES})"
        );
        return Err(protocol(framed.target(), reason));
    }
    let mut left = bytes;
    let mut out = Vec::with_capacity(entries as usize);
    for _ in 0..entries {
        let change: Change = framed.recv().await?;
        if change.len > left {
            let reason =
                format!("change {} claims {} bytes, {left} of the batch are left", change.entry.seq, change.len);
            return Err(protocol(framed.target(), reason));
        }
        left -= change.len;
        // The changeset grows with what arrives, never by what was announced.
        let mut entry = change.entry;
        framed
            .recv_bytes(change.len, |b| {
                entry.changeset.extend_from_slice(b);
                Ok(())
            })
            .await?;
        out.push(entry);
    }
    if left != 0 {
        return Err(protocol(framed.target(), format!("the batch announced {left} bytes more than it sent")));
    }
    Ok(Frame::Batch(out))
}

/// What one applied batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Where this node's log ends now.
    pub head: Position,
    /// Rows changed.
    pub rows: u64,
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// A sync runs; the stream picks up after it from wherever it left this node.
    #[error("{0}")]
    Busy(String),
    #[error("this node is {mode} ({status}) now: it follows no one")]
    RoleChanged { mode: Mode, status: NodeStatus },
    /// The batch does not follow this node's log (a sync moved it meanwhile).
    #[error("the stream is behind or ahead of this node: {0}")]
    Moved(String),
    /// The entries do not apply, or lead to other data than the sender's: a full copy
    /// has to replace this node's data.
    #[error(transparent)]
    Refused(IncrementError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies `entries` to this node's Core data in one transaction.
pub fn apply(node: &mut Node, entries: &[Entry]) -> Result<Applied, FollowError> {
    let _sync = SyncLock::take(&node.data_dir, "the stream").map_err(FollowError::Busy)?;
    let _fence = RoleLock::take(&node.data_dir)
        .map_err(|e| FollowError::Store(StoreError::Commit(format!("cannot take the role lock: {e}"))))?;
    let now = node.settings()?;
    if now.mode != Mode::Secondary || now.node_status != NodeStatus::Standby {
        return Err(FollowError::RoleChanged { mode: now.mode, status: now.state() });
    }
    let core = node.core()?;
    let head = core.log_head()?;
    let rows = match increment::apply(core.connection(), &head, entries) {
        Ok(rows) => rows,
        Err(e @ (IncrementError::Gap { .. } | IncrementError::Moved { .. })) => {
            return Err(FollowError::Moved(e.to_string()));
        }
        Err(IncrementError::Store(e)) => return Err(FollowError::Store(e)),
        Err(e) => return Err(FollowError::Refused(e)),
    };
    Ok(Applied { head: core.log_head()?, rows })
}
