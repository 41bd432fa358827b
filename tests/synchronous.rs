//! Synchronous replication between real daemons on loopback: while it holds, a check-in
//! the primary acknowledges is on the standby first, so a kill -9 of the primary under
//! load, then the standby's automatic promotion, loses none (counted check-in by
//! check-in); a standby that stops answering makes the primary stop waiting within the
//! timeout, keep serving and say so (HA log, show failover, a mail), and return to
//! synchronous once the standby has caught up.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::devices::{agent, check_in, check_in_seqs};
use common::{Daemon, TestNode, until};

/// Makes `node` the synchronous standby of `primary` (promote on failure).
fn synchronous_standby_of(node: &TestNode, primary: &Daemon, timeout_ms: u32) {
    node.follow(&primary.ssh.to_string(), "promote");
    node.ha(&[&format!("replication mode synchronous timeout {timeout_ms}")]).expect_code(0);
}

fn gate_state(node: &TestNode) -> String {
    node.failover_json()["synchronous"]["state"].as_str().unwrap_or("none").to_string()
}

#[test]
fn no_acknowledged_check_in_is_lost_when_the_primary_dies_under_load() {
    let common::Pair { a, b, da } = common::synced_pair("200", "200");
    let db = b.serve();
    synchronous_standby_of(&b, &da, 5000);
    until("the primary waits for its synchronous standby", || gate_state(&a) == "synchronous");

    // Four clients check in as fast as the primary answers; each remembers what was
    // acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = da.addr;
    let clients: Vec<_> = (0..4u64)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let seq = t * 1_000_000 + k;
                    if check_in(&agent, addr, (t * 50 + k) % 200, seq) == 200 {
                        acked.lock().unwrap().push(seq);
                    }
                    k += 1;
                }
            })
        })
        .collect();
    until("check-ins flow", || acked.lock().unwrap().len() >= 200);
    // The primary dies while they go on.
    da.kill_9();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    until("the standby promotes itself", || b.failover_json()["mode"] == "primary");
    let on_b = check_in_seqs(&b);
    let acked = acked.lock().unwrap();
    let lost: Vec<&u64> = acked.iter().filter(|s| !on_b.contains(s)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged check-ins are missing on the new primary: {lost:?}",
        lost.len(),
        acked.len()
    );
    assert!(b.ha_log().contains("FAILOVER"), "{}", b.ha_log());
    drop(db);
}

#[test]
fn a_standby_that_stops_answering_costs_at_most_the_timeout_and_synchronous_comes_back() {
    let common::Pair { a, b, da } = common::synced_pair("100", "100");
    // Mail is queued in the outbox (no SMTP server here): enough to see it was raised.
    a.ha(&["notify email ops@example.com"]).expect_code(0);
    let db = b.serve();
    synchronous_standby_of(&b, &da, 500);
    until("synchronous", || gate_state(&a) == "synchronous");
    let agent = agent();
    assert_eq!(check_in(&agent, da.addr, 1, 1), 200);

    // The standby freezes (as a hung host would): the next write waits the timeout, no
    // longer, and is answered; the primary says it stopped waiting.
    let pid = db.child.id().to_string();
    std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let started = Instant::now();
    assert_eq!(check_in(&agent, da.addr, 2, 2), 200, "the primary keeps serving");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "answered after {waited:?}, before the standby could confirm");
    until("degraded", || gate_state(&a) == "degraded");
    for i in 3..20 {
        assert_eq!(check_in(&agent, da.addr, i, i), 200);
    }
    let shown = a.run(&["show failover"]).stdout;
    assert!(shown.contains("Synchronous") && shown.contains("DEGRADED"), "{shown}");
    assert!(a.ha_log().contains("SYNCHRONOUS REPLICATION DEGRADED"), "{}", a.ha_log());
    let mails: serde_json::Value = serde_json::from_str(&a.run(&["show notifications | json"]).stdout).unwrap();
    assert!(mails.as_array().unwrap().iter().any(|m| m["event"] == "degraded"), "{mails}");

    // It wakes up, catches up, and writes wait for it again.
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    until("synchronous again", || gate_state(&a) == "synchronous");
    until("the standby has every write", || b.checksum() == a.checksum());
    assert_eq!(check_in(&agent, da.addr, 30, 30), 200);
    assert!(a.ha_log().contains("synchronous replication: writes are answered once"), "{}", a.ha_log());
}
