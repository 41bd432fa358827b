//! SSH (russh, ring), the transport between nodes and of the operator console: the
//! daemon's server, where trusted peers open only the replication channel
//! ([`peer_channel`]: their requests, checked, audited and handed to the daemon's
//! answers; [`peers`]: what a trusted peer may do; [`greeting`]: this node's hello and
//! the followers it records) and operators (local users) only consoles, behind the
//! login gate; the accept loop; and the client side ([`client`]: the link a
//! [`crate::peer::Peer`] talks over).

pub mod client;
pub mod console;
pub mod greeting;
pub mod listen;
pub mod login;
pub mod peer_channel;
pub mod peers;
pub mod server;
