//! Replication of the Core data, secondary-initiated, over the peers' SSH channel
//! (guide, "Core Replication Details"). In nouns and verbs, after Litestream:
//! - [`snapshot`]: a consistent copy of a node's Core data, and its content checksum;
//! - [`pull`]: the secondary's sync: connect, check, fetch, verify, apply, record;
//! - [`apply`]: verifying a staged snapshot and swapping it into the live database;
//! - [`lock`]: one sync at a time per node;
//! - [`files`]: application files, by a manifest of content hashes.
//!
//! This part does full syncs; incremental syncs and the scheduler come next.

pub mod apply;
pub mod files;
pub mod lock;
pub mod pull;
pub mod snapshot;

/// What a puller asks for after the hellos.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotRequest {
    /// Always `snapshot` for now.
    pub op: String,
    /// Whether the Atlas store is wanted too (Atlas is enabled on the puller).
    #[serde(default)]
    pub atlas: bool,
    /// The puller's application files; the sender sends those that differ.
    #[serde(default)]
    pub files: files::Manifest,
}

/// What a node says before it streams one store's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
}

/// What a node says after the snapshot's bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotTrailer {
    /// SHA-256 of the bytes sent, hex.
    pub sha256: String,
    /// Content checksum of the Core data in the snapshot (see [`snapshot::content_checksum`]),
    /// computed while the bytes were on their way.
    pub content: String,
    /// What `PRAGMA integrity_check` said of the snapshot (`ok`), run on the sender
    /// while the bytes were on their way; the receiver holds a byte-identical copy
    /// (same SHA-256).
    pub integrity: String,
}
