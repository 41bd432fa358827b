//! SSH between nodes (russh, ring): the node key, the daemon's server that only
//! trusted peers may use and only for the replication channel, and the client side
//! (`failover test-connection`, and replication to come).

pub mod client;
pub mod hello;
pub mod keys;
pub mod server;
