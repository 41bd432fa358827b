//! Replication of the Core data, secondary-initiated, over the peers' SSH channel
//! (guide, "Core Replication Details"). In nouns and verbs, after Litestream:
//! - [`snapshot`]: a consistent copy of a node's Core data;
//! - [`serve`]: the sending side: changes when it can, a snapshot otherwise;
//! - [`pull`]: the secondary's sync: connect, check, fetch, verify, apply, record;
//! - [`apply`]: verifying a staged snapshot and swapping it into the live database;
//! - [`increment`]: applying change-log entries in one verified transaction;
//! - [`divergence`]: keeping the writes a full copy would lose (an old primary's);
//! - [`lock`]: one sync at a time per node;
//! - [`files`]: application files, by a manifest of content hashes.

pub mod apply;
pub mod divergence;
pub mod files;
pub mod increment;
pub mod lock;
pub mod pull;
pub mod serve;
pub mod snapshot;

/// What a puller asks for after the hellos.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRequest {
    /// Always `snapshot` for now.
    pub op: String,
    /// Whether the Atlas store is wanted too (Atlas is enabled on the puller).
    #[serde(default)]
    pub atlas: bool,
    /// The puller's application files; the sender sends those that differ.
    #[serde(default)]
    pub files: files::Manifest,
    /// Where the puller's change log ends: the sender sends the changes after it when it
    /// can, a full snapshot otherwise. `None` asks for a full snapshot.
    #[serde(default)]
    pub position: Option<crate::coredb::changelog::Position>,
    /// With op `positions`: the sender's checksums for these change numbers (first, last)
    /// are wanted instead of data (see [`divergence`]).
    #[serde(default)]
    pub range: Option<(i64, i64)>,
    /// With op `exec`: a shell line for this node to run (`failover exec mate`).
    #[serde(default)]
    pub exec: Option<crate::ssh::mate::ExecRequest>,
}

/// What a node says before it streams one store: a full snapshot, or (`kind` is
/// `changes`) the change log's entries after the puller's position.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotHeader {
    /// `core` or `atlas`.
    #[serde(default)]
    pub store: String,
    /// Why this store is not sent (no bytes follow), e.g. Atlas not enabled here.
    #[serde(default)]
    pub skipped: Option<String>,
    /// Bytes of the database file that follow.
    pub size: u64,
    /// When the snapshot was taken.
    pub taken_at: String,
    /// Why no snapshot follows, if none does.
    pub error: Option<String>,
    /// `changes` when change-log entries follow; a full snapshot otherwise.
    #[serde(default)]
    pub kind: String,
    /// Why a full snapshot follows although the puller asked for changes.
    #[serde(default)]
    pub fallback: Option<String>,
    /// Changes only: the first position (the puller's) and the last.
    #[serde(default)]
    pub from: Option<crate::coredb::changelog::Position>,
    #[serde(default)]
    pub to: Option<crate::coredb::changelog::Position>,
    /// Changes only: how many entries follow, and the rows they change.
    #[serde(default)]
    pub entries: u64,
    #[serde(default)]
    pub rows: u64,
}

/// The `kind` of a header that announces change-log entries.
pub const CHANGES: &str = "changes";

/// What a node says after the snapshot's bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotTrailer {
    /// SHA-256 of the bytes sent, hex.
    pub sha256: String,
    /// Content checksum of what was sent (see [`checksum`]): for the Core data the one its
    /// change log holds at that point (the puller computes it from the rows and
    /// compares); for the Atlas store computed from the rows while the bytes were on
    /// their way.
    pub content: String,
    /// What `PRAGMA integrity_check` said of the snapshot (`ok`), run on the sender
    /// while the bytes were on their way; the receiver holds a byte-identical copy
    /// (same SHA-256).
    pub integrity: String,
}
