//! The first message each side of a peer connection sends: who it is, what it runs,
//! its mode, epoch and clock, where its status page is, and the replication chain it
//! knows. Software versions must be equal for replication (guide, "HA Core software
//! upgrade procedures").

use serde::{Deserialize, Serialize};

use crate::ha::{Mode, NodeStatus, Settings};
use crate::store::ChainLink;

/// A node introducing itself to a peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hello {
    /// Always `coresh`.
    pub software: String,
    /// Software version (must match the peer's).
    pub version: String,
    /// System database schema version.
    pub schema: i64,
    /// Core data schema version.
    pub core_schema: i64,
    /// Node id.
    pub node_id: String,
    /// Host name.
    pub hostname: String,
    pub mode: Mode,
    /// Promotion epoch.
    pub epoch: u64,
    pub node_status: NodeStatus,
    /// The sender's clock when it sent this, in milliseconds since the Unix epoch (the
    /// heartbeat measures the clock offset with it).
    #[serde(default)]
    pub time_ms: i64,
    /// Where a daemon serves its status pages: the port, on the address the peer
    /// reached it at (the heartbeat's second signal). `None` from a shell.
    #[serde(default)]
    pub status_page: Option<StatusPage>,
    /// The nodes above the sender in the replication chain, nearest first: its primary
    /// as its heartbeat last saw it, and what that one reported above itself. A node
    /// that finds itself first here knows the sender follows it.
    #[serde(default)]
    pub upstream: Vec<ChainLink>,
    /// The nodes that follow the sender (and theirs), as it recorded them.
    #[serde(default)]
    pub downstream: Vec<ChainLink>,
}

/// A daemon's status pages, as it advertises them to peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusPage {
    pub port: u16,
    /// Served over TLS.
    pub tls: bool,
    /// SHA-256 (hex) of the TLS certificate, which a peer pins when it asks the page.
    #[serde(default)]
    pub cert_sha256: Option<String>,
}

/// The software version this node reports to peers. `CORESH_TEST_REPORTED_VERSION`
/// overrides it, so that tests can stage a version mismatch with one build.
pub fn reported_version() -> String {
    std::env::var("CORESH_TEST_REPORTED_VERSION").unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string())
}

/// Which of two versions is older (numeric dot-separated comparison).
fn older<'a>(a: &'a str, b: &'a str) -> &'a str {
    let parts = |v: &str| v.split(['.', '-']).map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    if parts(a) <= parts(b) { a } else { b }
}

/// When `peer` runs another release than this node (`ours`), what to say: both versions
/// and which node to upgrade (the older one); `None` when they match.
pub fn version_mismatch(ours: &str, peer: &str, theirs: &str) -> Option<String> {
    if ours == theirs {
        return None;
    }
    let upgrade = if older(ours, theirs) == ours { "this node".to_string() } else { peer.to_string() };
    Some(format!(
        "version mismatch: this node runs coresh {ours}, {peer} runs coresh {theirs}; both must run the same \
         release (upgrade {upgrade})"
    ))
}

/// `CORESH_TEST_CLOCK_SKEW_MS` shifts the clock this node reports to its peers, so that
/// tests can stage unequal clocks on one machine.
fn test_clock_skew_ms() -> i64 {
    std::env::var("CORESH_TEST_CLOCK_SKEW_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

impl Hello {
    /// This node's hello.
    pub fn of(settings: &Settings, node_id: &str) -> Hello {
        Hello {
            software: "coresh".into(),
            version: reported_version(),
            schema: crate::store::SCHEMA_VERSION,
            core_schema: crate::coredb::SCHEMA_VERSION,
            node_id: node_id.to_string(),
            hostname: settings.hostname.clone(),
            mode: settings.mode,
            epoch: settings.epoch,
            node_status: settings.node_status,
            time_ms: chrono::Utc::now().timestamp_millis() + test_clock_skew_ms(),
            status_page: None,
            upstream: Vec::new(),
            downstream: Vec::new(),
        }
    }

    /// Whether the sender says it follows the node `node_id` (that node is first in its
    /// upstream chain).
    pub fn follows(&self, node_id: &str) -> bool {
        self.upstream.first().is_some_and(|l| l.node_id == node_id)
    }
}
