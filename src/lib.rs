//! coresh: the appliance shell and HA engine of a Core server pair.
//!
//! - [`grammar`]: the command tree declared in `grammar/`, parsed with nom.
//! - [`cli`]: lexing lines, the command graph, matching, help and completion.
//! - [`shell`]: the one line pipeline (match, redact, run, render, audit), the
//!   interactive and batch front ends, the shell's own commands (modes, `do`, `exit`).
//! - [`handlers`]: one function per command, typed results in [`report`].
//! - [`session`]: an operator's session and the console a command asks them through.
//! - [`ha`]: HA settings, modes, states, epochs, the heartbeat's verdicts, whether a
//!   standby may promote itself, the role lock and the sync schedule.
//! - [`store`]: the node's system database (settings, histories, audit, HA log, outbox,
//!   sessions, trusted hosts, the replication chain).
//! - [`node`]: a node's data directory, the daemon's live view of it, the login policy.
//! - [`host`]: peer addresses (`HOST[:PORT]`) and status page URLs, validated.
//! - [`clients`]: client addresses as the daemon counts them (IPv6 by /64), connection caps.
//! - [`secret`]: argon2 hashing of secrets.
//! - [`words`]: domain values that are words (`word_enum!`): modes, states, sync kinds.
//! - [`coredb`]: the Core data (what HA replicates), its single writer, its change log
//!   and content checksums.
//! - [`http`]: status pages for load balancers, the device API, and the client that
//!   asks another node's status page.
//! - [`serve`]: the node daemon wiring (`coresh serve`).
//! - [`peer`]: the peer protocol (every message between nodes, typed; framing) and the
//!   `Peer` noun with a verb per exchange, over a transport it does not know.
//! - [`ssh`]: the node key, the SSH server (peers' replication channel, operators'
//!   consoles), the client: the transport under `peer`.
//! - [`replication`]: the secondary's pull, the sender's side, snapshots, verification,
//!   divergence, the sync lock.
//! - [`notify`]: email notifications through a durable outbox.
//! - [`quorum`]: the primary lease, decided by a consensus engine (openraft) and kept in
//!   the system database.
//! - [`lab`]: a pair (or pair and DR node) on this machine (`coresh lab up|down`).
//! - [`load`]: the device check-in load driver (`coresh load`).
//!
//! The modules stand in layers (docs/architecture.md); `tests/layers.rs` fails when an
//! import runs up a layer or sideways.

pub mod cli;
pub mod clients;
pub mod coredb;
pub mod grammar;
pub mod ha;
pub mod handlers;
pub mod host;
pub mod http;
pub mod invocation;
pub mod lab;
pub mod load;
pub mod node;
pub mod notify;
pub mod peer;
pub mod quorum;
pub mod replication;
pub mod report;
pub mod secret;
pub mod serve;
pub mod session;
pub mod shared;
pub mod shell;
pub mod ssh;
pub mod store;
pub mod words;
