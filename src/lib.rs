//! coresh: the appliance shell and HA engine of a Core server pair.
//!
//! - [`grammar`]: the command tree declared in `grammar/`, parsed with nom.
//! - [`cli`]: lexing lines, the command graph, matching, help and completion.
//! - [`shell`]: sessions, the interactive and batch front ends, rendering, audit.
//! - [`handlers`]: one function per command, typed results in [`report`].
//! - [`session`]: an operator's session and the console a command asks them through.
//! - [`ha`]: HA settings, modes, states, epochs and the sync schedule.
//! - [`store`]: the node's system database (settings, failover history, audit).
//! - [`node`]: a node's data directory, the daemon's live view of it, the login policy.
//! - [`host`]: peer addresses (`HOST[:PORT]`) and status page URLs, validated.
//! - [`clients`]: client addresses as the daemon counts them (IPv6 by /64), connection caps.
//! - [`secret`]: argon2 hashing of secrets.
//! - [`coredb`]: the Core data (what HA replicates), its single writer, its change log
//!   and content checksums.
//! - [`http`]: status pages for load balancers and the device API.
//! - [`serve`]: the node daemon wiring (`coresh serve`).
//! - [`peer`]: the peer protocol (every message between nodes, typed; framing) and the
//!   `Peer` noun with a verb per exchange, over a transport it does not know.
//! - [`ssh`]: the node key, the SSH server (peers' replication channel, operators'
//!   consoles), the client: the transport under `peer`.
//! - [`replication`]: the secondary's pull, the sender's side, snapshots, verification,
//!   divergence, the sync lock.
//! - [`notify`]: email notifications through a durable outbox.
//! - [`lab`]: a pair (or pair and DR node) on this machine (`coresh lab up|down`).

pub mod cli;
pub mod clients;
pub mod coredb;
pub mod grammar;
pub mod ha;
pub mod handlers;
pub mod host;
pub mod http;
pub mod lab;
pub mod load;
pub mod node;
pub mod notify;
pub mod peer;
pub mod replication;
pub mod report;
pub mod secret;
pub mod serve;
pub mod session;
pub mod shell;
pub mod ssh;
pub mod store;
