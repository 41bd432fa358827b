//! Continuous and synchronous replication with each Core on a network host of its own
//! (network namespaces, `common::lab`), the replication link cut while both Cores stay
//! up for their devices: a continuous stream takes up again after the partition and the
//! standby ends with every write; a synchronous primary whose standby is cut off stops
//! waiting within the timeout, keeps serving, and waits again once healed. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::{Daemon, TestNode, generate};

struct Pair {
    da: Daemon,
    db: Daemon,
    a: TestNode,
    b: TestNode,
    lab: Lab,
}

/// `a` primary, `b` its standby streaming in `mode` (never promoting: these tests are
/// about the data), synced once.
fn streaming(mode: &str) -> Pair {
    let lab = Lab::new(&["a", "b"]);
    let (a, b) = (lab.node("a"), lab.node("b"));
    generate(&a, "100", "100");
    a.trust(&lab.peer("b"), &b.local_key()).expect_code(0);
    b.trust(&lab.peer("a"), &a.local_key()).expect_code(0);
    let da = lab.serve("a", &a);
    let db = lab.serve("b", &b);
    b.follow(&lab.peer("a"), "keep-standby");
    b.run(&["enable", &format!("failover sync {}", lab.peer("a"))]).expect_code(0);
    b.ha(&[&format!("replication mode {mode}")]).expect_code(0);
    common::until("b streams", || b.failover_json()["replication_state"] == "streaming");
    Pair { da, db, a, b, lab }
}

fn gate(node: &TestNode) -> String {
    node.failover_json()["synchronous"]["state"].as_str().unwrap_or("none").to_string()
}

#[test]
fn a_continuous_stream_takes_up_again_after_a_partition() {
    let Pair { da, db: _db, a, b, lab } = streaming("continuous");
    for i in 0..20 {
        assert_eq!(da.check_in(i, i), 200);
    }
    common::until("level", || b.checksum() == a.checksum());
    // Cut for longer than the stream's silence limit (10 s): the standby gives the
    // connection up and tries again; devices keep checking in on the primary.
    lab.replication_link("a", false);
    let cut = Instant::now();
    let mut k = 100;
    while cut.elapsed() < Duration::from_secs(12) {
        assert_eq!(da.check_in(k % 100, k), 200, "the primary serves through the partition");
        k += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // It gave the silent connection up: it is trying again (connecting, or waiting).
    common::until("the standby noticed", || {
        matches!(b.failover_json()["replication_state"].as_str(), Some("retrying" | "connecting"))
    });
    assert_ne!(b.checksum(), a.checksum(), "writes made during the partition are not on the standby yet");
    lab.replication_link("a", true);
    common::until("streaming again", || b.failover_json()["replication_state"] == "streaming");
    common::until("every write on the standby", || b.checksum() == a.checksum());
    a.assert_same_rows(&b);
    let log = b.ha_log();
    assert!(log.contains("retrying"), "{log}");
}

#[test]
fn a_partitioned_synchronous_standby_costs_at_most_the_timeout_and_synchronous_comes_back() {
    let Pair { da, db: _db, a, b, lab } = streaming("synchronous timeout 500");
    common::until("synchronous", || gate(&a) == "synchronous");
    assert_eq!(da.check_in(1, 1), 200);
    // The standby is cut off (no RST: the packets just stop): the next write waits for
    // the timeout and is answered; the primary degrades and says so.
    lab.replication_link("b", false);
    let started = Instant::now();
    assert_eq!(da.check_in(2, 2), 200, "the primary keeps serving");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "answered after {waited:?}: before the standby could confirm");
    common::until("degraded", || gate(&a) == "degraded");
    for i in 3..30 {
        assert_eq!(da.check_in(i, i), 200);
    }
    assert!(a.ha_log().contains("SYNCHRONOUS REPLICATION DEGRADED"), "{}", a.ha_log());
    // Healed: the standby catches up, and writes wait for it again.
    lab.replication_link("b", true);
    common::until("synchronous again", || gate(&a) == "synchronous");
    common::until("every write on the standby", || b.checksum() == a.checksum());
    assert_eq!(da.check_in(40, 40), 200);
    common::until("the last write too", || b.checksum() == a.checksum());
    a.assert_same_rows(&b);
}
