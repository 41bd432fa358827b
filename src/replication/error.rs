//! Why a sync did not happen or did not finish: every way, one variant, each said as the
//! operator reads it after `% Sync failed: `.

use super::apply::ApplyError;
use super::increment::IncrementError;
use crate::ha::{Mode, NodeStatus};
use crate::peer::PeerError;
use crate::store::StoreError;

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
    #[error("the transfer is damaged: digest {found}, announced {expected}")]
    Transfer { found: String, expected: String },
    #[error("the snapshot from {peer} failed the checks it ran on the file: {reason}; nothing was replaced")]
    Unsound { peer: String, reason: String },
    #[error(
        "the snapshot's change log ends at checksum {logged}, its sender reported {reported}; nothing was replaced"
    )]
    Mismatch { logged: String, reported: String },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Increment(#[from] IncrementError),
    #[error("the changes could not be applied ({changes}), and the full copy asked for then failed: {full}")]
    FullAfterChanges { changes: String, full: Box<SyncError> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}
