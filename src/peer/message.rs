//! Every message two nodes exchange, typed: the [`Request`]s a node sends its peer (the
//! hello first, then one request at a time) and what the peer answers to each. A new
//! kind of exchange is a new variant here and an answer in the daemon, never a string
//! compared somewhere. Each message has the longest form a node accepts ([`Message`]).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::hello::Hello;
use crate::coredb::changelog::{Entry, Position};
use crate::words::word_enum;

/// A message of the protocol, with the longest encoding a node accepts of it.
pub trait Message: Serialize + DeserializeOwned {
    /// Bytes of its JSON line at most; a longer one is a protocol error.
    const MAX: usize;
}

/// What a node asks its peer. The first request of a connection is its hello; each
/// request is answered before the next is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Who the asker is (answered with the peer's own hello).
    Hello(Hello),
    /// The Core data after `since` (the change-log entries when the peer's log holds
    /// them, a full snapshot otherwise), then the Atlas store when `atlas`, then the
    /// application files that differ from `files`.
    Changes { since: Position, atlas: bool, files: Manifest },
    /// A full snapshot of the Core data, then the Atlas store when `atlas`, then the
    /// application files that differ from `files`.
    Snapshot { atlas: bool, files: Manifest },
    /// The peer's checksums over its change numbers `first..=last` (answered with
    /// [`Positions`]).
    Positions { first: i64, last: i64 },
    /// A shell line for the peer to run (answered with [`ExecAnswer`]).
    Exec(ExecRequest),
    /// The peer connects back to the asker as its trusted-host entry names it
    /// (answered with [`TestBack`]).
    TestBack,
    /// The peer's settings that a pair must agree on (answered with
    /// [`SharedSettings`]).
    SharedSettings,
    /// Every change-log entry after `since`, sent as the peer commits it, for as long as
    /// the connection lasts (answered with [`Feed`] messages; the asker says what it
    /// applied after each batch with [`Applied`]). The last request of a connection.
    /// `synchronous` (milliseconds): the asker is the peer's synchronous standby, whose
    /// confirmation its device writes wait for, at most that long.
    Follow {
        since: Position,
        #[serde(default)]
        synchronous: Option<u32>,
    },
    /// The peer, a primary, hands its role to its standby (the one `to` names, when it
    /// has several), or with `dry_run` says how it would; answered with a
    /// [`SwitchoverReport`] once it is over.
    Switchover {
        dry_run: bool,
        #[serde(default)]
        to: Option<SwitchoverTo>,
    },
    /// One step of a handover the asker, a primary, runs with this node, its standby
    /// (answered with a [`HandoverAnswer`]).
    Handover(HandoverStep),
    /// A call of the quorum's consensus engine to this node's (answered with a
    /// [`RaftReply`]). Carried as JSON text inside the request: openraft's messages
    /// hold maps keyed by node number, which serde cannot read back through an
    /// internally tagged enum.
    Raft {
        #[serde(with = "json_text")]
        call: Box<RaftCall>,
    },
}

/// A value as a JSON string inside a message (see [`Request::Raft`]).
mod json_text {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        serde_json::to_string(value).map_err(serde::ser::Error::custom)?.serialize(s)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text).map_err(D::Error::custom)
    }
}

/// A call between the consensus engines of a pair and its witness (openraft's RPCs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaftCall {
    AppendEntries(openraft::raft::AppendEntriesRequest<crate::quorum::TypeConfig>),
    Vote(openraft::raft::VoteRequest<u64>),
    InstallSnapshot(openraft::raft::InstallSnapshotRequest<crate::quorum::TypeConfig>),
    /// A change of the lease for the engine's leader to commit; a voter that is not the
    /// leader hands it on to its leader, unless it was handed on already (`relayed`).
    ClientWrite {
        request: crate::quorum::LeaseRequest,
        relayed: bool,
    },
}

impl PartialEq for RaftCall {
    /// Calls compare by their JSON (openraft's requests have no equality of their own).
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_string(self).ok() == serde_json::to_string(other).ok()
    }
}

impl Eq for RaftCall {}

/// What this node's engine answered a [`RaftCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RaftReply {
    AppendEntries(openraft::raft::AppendEntriesResponse<u64>),
    Vote(openraft::raft::VoteResponse<u64>),
    InstallSnapshot(openraft::raft::InstallSnapshotResponse<u64>),
    ClientWrite(crate::quorum::LeaseAnswer),
    /// The engine could not answer (none runs here, or it failed), and why.
    Failed {
        why: String,
    },
}

impl Message for RaftReply {
    const MAX: usize = 1024 * 1024;
}

impl Message for Request {
    /// A pull carries the asker's file manifest.
    const MAX: usize = 16 * 1024 * 1024;
}

impl Message for Hello {
    const MAX: usize = 64 * 1024;
}

/// What a followed peer sends (see [`Request::Follow`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Feed {
    /// `entries` change-log entries follow, `bytes` bytes of changesets in all: each a
    /// [`Change`] line, then its changeset's bytes.
    Batch { entries: u32, bytes: u64 },
    /// Nothing new since the last batch: where the peer's log ends, and its clock (sent
    /// at least every second while there is nothing to send).
    Idle { head: Position, at_ms: i64 },
    /// The peer's log cannot bring the asker on from where it is (trimmed, diverged,
    /// restarted): a sync has to.
    Gap { why: String },
    /// The peer stops feeding, and why (it is shutting down; another stream of the same
    /// key took over).
    Stop { why: String },
}

impl Message for Feed {
    const MAX: usize = 64 * 1024;
}

/// The most entries, and changeset bytes, a [`Feed::Batch`] may announce.
pub const MAX_BATCH_ENTRIES: u32 = 4096;
/// See [`MAX_BATCH_ENTRIES`].
pub const MAX_BATCH_BYTES: u64 = 32 * 1024 * 1024;

/// One entry of a [`Feed::Batch`]; its changeset's `len` bytes follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    #[serde(flatten)]
    pub entry: Entry,
    pub len: u64,
}

impl Message for Change {
    const MAX: usize = 4096;
}

/// What a follower has applied: everything up to change `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub seq: i64,
}

impl Message for Applied {
    const MAX: usize = 256;
}

/// Which standby a switchover hands the role to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchoverTo {
    /// The standby with this node id (a standby asking for itself).
    Node(String),
    /// The standby this primary trusts under this `HOST[:PORT]`.
    Host(String),
}

/// The steps of a handover, as the old primary asks them of its standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum HandoverStep {
    /// Apply every change up to `seq` (the asker takes no more writes), check that the
    /// content checksum there is `checksum`, and sign the handover to `to_epoch`; stay
    /// ready to take over for `ttl_ms`, no longer.
    Prepare { id: String, seq: i64, checksum: String, from_epoch: u64, to_epoch: u64, ttl_ms: u32 },
    /// Take over now: the asker has handed over and signed (`signature`, PEM).
    Commit { id: String, signature: String },
    /// Forget handover `id` unless it was committed; say which.
    Abort { id: String },
}

/// What a standby answers a [`HandoverStep`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum HandoverAnswer {
    /// Ready, with this node's signature of the handover (PEM).
    Prepared { signature: String },
    /// This node is the primary the handover made it.
    Committed,
    /// This node did not take over, and no longer will for this handover.
    Aborted,
    /// Not done, and why; nothing changed here.
    Refused { why: String },
}

impl Message for HandoverAnswer {
    const MAX: usize = 64 * 1024;
}

word_enum!(
    /// How a switchover ended.
    SwitchoverOutcome { /// A dry run: it would go ahead.
    WouldSwitch = "would-switch", /// It would not (the detail says why).
    WouldRefuse = "would-refuse", /// The standby is the primary now, the old primary its standby.
    Switched = "switched", /// Refused before anything changed.
    Refused = "refused", /// A step failed; the old primary took writes again and nothing changed.
    Aborted = "aborted", /// The old primary handed over but could not learn whether the standby took over: it stays a standby.
    InDoubt = "in-doubt" }
);

/// What a switchover did, step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwitchoverReport {
    pub dry_run: bool,
    pub outcome: SwitchoverOutcome,
    /// What happened, or why not.
    pub detail: String,
    /// The old primary and the standby, as `HOSTNAME (ADDRESS)`.
    pub from: String,
    pub to: Option<String>,
    pub from_epoch: u64,
    pub to_epoch: Option<u64>,
    /// The change the handover happened at, and the checksum both nodes proved there.
    pub seq: Option<i64>,
    pub checksum: Option<String>,
    /// How far the standby was behind when it began.
    pub lag_changes: Option<i64>,
    pub lag_ms: Option<i64>,
    /// How long device writes were refused on the old primary.
    pub writes_held_ms: Option<u64>,
    /// The longest they may be (writes resume when it passes).
    pub bound_ms: u64,
    /// From the request to the end.
    pub took_ms: u64,
    pub steps: Vec<SwitchoverStep>,
}

/// One step of a switchover: milliseconds since it began, and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SwitchoverStep {
    pub at_ms: u64,
    pub what: String,
}

impl Message for SwitchoverReport {
    const MAX: usize = 1024 * 1024;
}

/// The stores a pull copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    /// The Core data (`core.db`).
    Core,
    /// The Atlas store (`atlas.db`).
    Atlas,
}

impl Store {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Store::Core => "core",
            Store::Atlas => "atlas",
        }
    }
}

/// What the peer says before each store of a pull: what follows, or why nothing does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StoreHeader {
    /// A full copy of `store` follows: `size` bytes, then a [`Trailer`]. `fallback` says
    /// why, when changes were asked for. With `changes_follow` (the sender's checked copy
    /// of the Core data), a [`StoreHeader::Changes`] part follows it: the entries after
    /// the copy, to be applied to it before it replaces anything.
    Snapshot {
        store: Store,
        size: u64,
        taken_at: String,
        fallback: Option<String>,
        #[serde(default)]
        changes_follow: bool,
    },
    /// The Core data's change-log entries after `from` up to `to` follow: `size` bytes,
    /// then a [`Trailer`].
    Changes { size: u64, from: Position, to: Position, entries: u64, rows: u64 },
    /// Nothing follows for `store`, and why (Atlas is not enabled on the peer).
    Skipped { store: Store, why: String },
    /// Nothing follows: the peer could not send `store`.
    Failed { store: Store, why: String },
}

impl Message for StoreHeader {
    const MAX: usize = 64 * 1024;
}

/// What the peer says after a store's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    /// The bytes sent, digested (`replication::digest`: XXH3-128, hex).
    pub digest: String,
    /// Content checksum of what was sent: for changes the one the change log holds at
    /// their end; for a snapshot computed from its rows while the bytes were on their way
    /// (for the Core data, equal to the one its change log holds).
    pub content: String,
    /// A snapshot only: what the sender's checks of what the file holds found (`ok`, or
    /// the first problem): indexes against tables, rows against the change log
    /// (`coredb::soundness`), and the bytes sent against those written or checked.
    /// Changes carry none: the puller checks every row they touch.
    pub integrity: Option<String>,
}

impl Message for Trailer {
    const MAX: usize = 64 * 1024;
}

/// One application file: its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub size: u64,
    pub sha256: String,
}

/// Path (relative, `/`-separated) -> entry, for every regular file under `files/`.
pub type Manifest = BTreeMap<String, FileEntry>;

/// What the peer sends of the application files: those that differ (their bytes follow
/// in this order), and those the asker has and the peer does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesHeader {
    pub changed: Vec<(String, FileEntry)>,
    pub removed: Vec<String>,
}

impl Message for FilesHeader {
    /// It lists every changed file.
    const MAX: usize = 16 * 1024 * 1024;
}

/// The peer's checksums over a range of its change log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positions {
    /// Where its log starts.
    pub base: Option<Position>,
    /// Its entries in the range asked for, oldest first.
    pub positions: Vec<Position>,
    /// Why it could not answer.
    pub error: Option<String>,
}

impl Message for Positions {
    const MAX: usize = 256 * 1024 * 1024;
}

/// A line to run on the peer (`failover exec mate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The line to run.
    pub line: String,
    /// Who asks, as `user@hostname` of the calling node (the peer marks it as a claim).
    pub operator: String,
    /// The peer's enable secret: run the line in privileged mode.
    pub secret: Option<String>,
}

/// What the peer's shell did with an [`ExecRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExecAnswer {
    /// The shell's exit status (0 ok, 1 failed, 2 syntax, 3 denied).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Message for ExecAnswer {
    /// Both streams, JSON-escaped.
    const MAX: usize = 20 * 1024 * 1024;
}

/// The source a shell run for a mate records (`mate ADDRESS key FINGERPRINT`); such a
/// shell may not reach on to another node.
pub const MATE_SOURCE_PREFIX: &str = "mate ";

/// One configuration line of a setting the pair must agree on, and the mode it is typed
/// in (`config` or `config-ha`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedLine {
    pub mode: String,
    pub line: String,
}

/// The settings of a node that its pair must agree on, as configuration lines.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedSettings {
    pub lines: Vec<SharedLine>,
    /// Why the peer could not read its settings (then `lines` is empty).
    #[serde(default)]
    pub error: Option<String>,
}

impl Message for SharedSettings {
    /// A few hundred lines of at most a few kilobytes each.
    const MAX: usize = 1024 * 1024;
}

/// How the peer's connection back to the asker went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TestBack {
    pub ok: bool,
    /// What was reached, or why not.
    pub detail: String,
}

impl Message for TestBack {
    const MAX: usize = 64 * 1024;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_their_operation_on_the_wire() {
        let request = Request::Positions { first: 3, last: 9 };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(line, r#"{"op":"positions","first":3,"last":9}"#);
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
        assert_eq!(serde_json::to_string(&Request::TestBack).unwrap(), r#"{"op":"test-back"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"op":"format-disk"}"#).is_err());
    }

    #[test]
    fn a_change_line_carries_the_entry_and_the_length_of_what_follows() {
        let entry = Entry {
            seq: 7,
            at: "2026-12-01T10:00:00.000Z".into(),
            rows: 2,
            checksum: "ab".into(),
            origin: "n1".into(),
            changeset: vec![1, 2, 3],
        };
        let line = serde_json::to_string(&Change { entry: entry.clone(), len: 3 }).unwrap();
        assert!(!line.contains("changeset"), "{line}");
        let back: Change = serde_json::from_str(&line).unwrap();
        assert_eq!((back.entry.seq, back.len, back.entry.changeset.len()), (7, 3, 0));
        let idle = Feed::Idle { head: Position { seq: 7, checksum: "ab".into() }, at_ms: 5 };
        assert!(serde_json::to_string(&idle).unwrap().starts_with(r#"{"kind":"idle""#));
    }
}
