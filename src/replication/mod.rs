//! Replication of the Core data, secondary-initiated, over the peer protocol (guide,
//! "Core Replication Details"). In nouns and verbs, after Litestream:
//! - [`pull`]: the secondary's sync, as its steps: connect, request, receive, verify,
//!   apply, record;
//! - [`receive`]: taking in what a pull brings, into staging, checked as it comes;
//! - [`send`]: the sending side: changes when it can, a full copy otherwise;
//! - [`checked`]: the sender's checked copy, sent with the changes after it in place of
//!   a new snapshot;
//! - [`feed`] and [`follow`]: a stream, both sides: each change-log entry sent as it is
//!   committed, and applied by the follower batch by batch (`replication mode
//!   continuous`);
//! - [`lag`]: how far behind a stream runs, change by change, second by second;
//! - [`gate`]: synchronous replication's gate: a write answered once the standby has it;
//! - [`snapshot`]: a consistent copy of a node's Core data;
//! - [`apply`]: verifying a staged snapshot and swapping it into the live database;
//! - [`increment`]: applying change-log entries in one verified transaction;
//! - [`divergence`]: keeping the writes a full copy would lose (an old primary's);
//! - [`lock`]: one sync at a time per node, and what an interrupted one left;
//! - [`files`]: application files, by a manifest of content hashes;
//! - [`digest`]: the digest that ties a store's bytes together from end to end;
//! - [`error`]: why a sync did not happen or did not finish.
//!
//! The change log and the content checksums it keeps belong to the Core data's write
//! path (`coredb`); the messages to the peer protocol (`peer`).

pub mod apply;
pub mod checked;
pub mod digest;
pub mod divergence;
pub mod error;
pub mod feed;
pub mod files;
pub mod follow;
pub mod gate;
pub mod increment;
pub mod lag;
pub mod lock;
pub mod pull;
pub mod receive;
pub mod send;
pub mod snapshot;
