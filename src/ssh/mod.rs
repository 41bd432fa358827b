//! SSH (russh, ring): the node key; the daemon's server, where trusted peers open only
//! the replication channel and operators (local users) only consoles; the login gate; the server's side of the hello (what this node says, who follows it);
//! what a trusted peer may do and what is recorded of it;
//! and the client side between nodes (`failover test-connection`, sync, the heartbeat).

pub mod client;
pub mod console;
pub mod greeting;
pub mod hello;
pub mod keys;
pub mod listen;
pub mod login;
pub mod mate;
pub mod peers;
pub mod server;
