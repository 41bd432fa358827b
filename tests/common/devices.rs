//! Device traffic as a test counts it: a check-in carrying a number of the test's own,
//! sent to one node's device API, and the numbers each node's Core data holds, so that
//! an acknowledged check-in missing afterwards fails the test.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use coresh::coredb::generate::token_for;

use super::TestNode;

/// An HTTP client that reports statuses instead of failing on them, 5 s a request.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into()
}

/// A check-in of generated device `device` carrying `seq`, at `d`: its status (0 when
/// no answer came).
pub fn check_in(agent: &ureq::Agent, d: SocketAddr, device: u64, seq: u64) -> u16 {
    agent
        .post(&format!("http://{d}/api/v1/devices/checkin"))
        .header("authorization", &format!("Bearer {}", token_for(42, device)))
        .header("content-type", "application/json")
        .send(&format!(r#"{{"seq":{seq}}}"#))
        .map_or(0, |r| r.status().as_u16())
}

/// The `seq` of every check-in event in `node`'s Core data.
pub fn check_in_seqs(node: &TestNode) -> BTreeSet<u64> {
    let conn = rusqlite::Connection::open(node.data_dir().join("core.db")).unwrap();
    let mut stmt = conn.prepare("SELECT detail FROM events WHERE kind = 'checkin'").unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.filter_map(|d| serde_json::from_str::<serde_json::Value>(&d.unwrap()).ok()?["seq"].as_u64()).collect()
}
