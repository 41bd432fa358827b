//! The quorum with each node on a network host of its own (network namespaces,
//! `common::lab`): a primary, its secondary and a witness. A cut between the primary and
//! the secondary while both reach the witness promotes nobody; the primary's site cut
//! off from both others fences it within the bound and the secondary takes over, and a
//! client checking in on both nodes throughout never has a check-in accepted by both at
//! overlapping times. With synchronous replication, the lease names the standby that
//! has every acknowledged write: a primary cut off while synchronous refuses what its
//! standby did not confirm, so the standby takes over with every write the primary
//! acknowledged; a primary that degraded first (it answered writes its standby lacks)
//! keeps the standby from being granted the lease at all. A flapping link changes no
//! term; three real failures of one site change it once. With the witness's site gone,
//! the pair goes on until the link between its sites breaks too; then nobody takes
//! writes until it is back. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::{Daemon, TestNode, generate, until};

struct Sites {
    da: Daemon,
    db: Daemon,
    dw: Daemon,
    a: TestNode,
    b: TestNode,
    w: TestNode,
    lab: Lab,
}

fn sites() -> Sites {
    let lab = Lab::new(&["a", "b", "w"]);
    let (a, b, w) = (lab.node("a"), lab.node("b"), lab.node("w"));
    generate(&a, "50", "50");
    w.ha(&["mode witness"]).expect_code(0);
    for (x, nx) in [("a", &a), ("b", &b), ("w", &w)] {
        for (y, ny) in [("a", &a), ("b", &b), ("w", &w)] {
            if x != y {
                nx.trust(&lab.peer(y), &ny.local_key()).expect_code(0);
            }
        }
    }
    let da = lab.serve("a", &a);
    let db = lab.serve("b", &b);
    let dw = lab.serve("w", &w);
    b.follow(&lab.peer("a"), "promote");
    b.run(&["enable", &format!("failover sync {}", lab.peer("a"))]).expect_code(0);
    let witness = format!("witness {}", lab.peer("w"));
    a.ha(&[&witness, "service enable"]).expect_code(0);
    b.ha(&[&witness]).expect_code(0);
    let a_id = a.node_id();
    until("the primary holds the lease", || {
        a.failover_json()["quorum"]["lease"]["holder"].as_str() == Some(a_id.as_str())
    });
    Sites { da, db, dw, a, b, w, lab }
}

#[test]
fn a_cut_between_the_sites_promotes_nobody_while_both_reach_the_witness() {
    let Sites { da, db: _db, dw: _dw, a, b, w: _w, lab } = sites();
    let leader = a.failover_json()["quorum"]["leader"].as_u64().map(|l| format!("{l:016x}"));
    let who = if leader.as_deref() == Some(a.node_id().as_str()) { "the primary" } else { "another voter" };
    eprintln!("the quorum's leader at the cut: {who}");
    lab.cut("a", "b", true);
    // Long past the heartbeat's three failures (1 s apart) and the lease time.
    std::thread::sleep(Duration::from_secs(8));
    let log = b.ha_log();
    assert!(log.contains("FAILOVER REFUSED") && log.contains("the quorum"), "{log}");
    assert_eq!(b.failover_json()["mode"], "secondary", "{}\n{}", a.ha_log(), log);
    // The primary may fence for a moment while the engine's requests find their way to
    // its leader through the witness (seen in about one run in five; a known issue):
    // it is never replaced and takes writes again.
    let fences = a.ha_log().matches("FENCED").count();
    eprintln!("the primary fenced itself {fences} times during the cut");
    until("the primary takes writes", || da.check_in(2, 2) == 200);
    lab.cut("a", "b", false);
}

#[test]
fn the_primary_cut_off_fences_itself_before_the_secondary_takes_over() {
    let Sites { da, db, dw: _dw, a: _a, b, w: _w, lab } = sites();
    // A client on the client network checks in on both nodes throughout; each accepted
    // check-in is kept with the node and the moment it was answered.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (stop, pa, pb) = (stop.clone(), da.addr, db.addr);
        std::thread::spawn(move || {
            let agent = common::devices::agent();
            let started = Instant::now();
            let mut accepted: Vec<(char, Duration, Duration)> = Vec::new();
            let mut k = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (name, d) in [('a', pa), ('b', pb)] {
                    let sent = started.elapsed();
                    if common::devices::check_in(&agent, d, k % 50, k) == 200 {
                        accepted.push((name, sent, started.elapsed()));
                    }
                    k += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            accepted
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // The primary's replication link goes: it reaches neither the secondary nor the
    // witness, while its devices still reach it.
    lab.replication_link("a", false);
    until("the primary fences itself", || da.get("/hastatus.html").body == "MOBILEIRON-STATUS: ERROR (Mode: Fenced)");
    until("the secondary takes over", || b.failover_json()["mode"] == "primary");
    until("the new primary takes writes", || db.check_in(49, 1_000_000) == 200);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let accepted = client.join().unwrap();
    let last_a = accepted.iter().filter(|c| c.0 == 'a').map(|c| c.2).max().expect("a took writes first");
    let first_b = accepted.iter().filter(|c| c.0 == 'b').map(|c| c.1).min().expect("b took writes after");
    eprintln!(
        "the old primary's last accepted check-in answered at {last_a:?}; the new one's first sent at {first_b:?}"
    );
    assert!(last_a < first_b, "both accepted check-ins at overlapping times: a until {last_a:?}, b from {first_b:?}");
    lab.replication_link("a", true);
}

fn lease(node: &TestNode) -> serde_json::Value {
    node.failover_json()["quorum"]["lease"].clone()
}

/// `sites()` with `b` a synchronous standby (500 ms) that the lease names.
fn synchronous_sites() -> Sites {
    let sites = sites();
    sites.b.ha(&["replication mode synchronous timeout 500"]).expect_code(0);
    let b_id = sites.b.node_id();
    until("the lease names the synchronous standby", || {
        lease(&sites.a)["synchronous"]["standby"].as_str() == Some(b_id.as_str())
    });
    sites
}

#[test]
fn a_primary_cut_off_while_synchronous_loses_no_acknowledged_write_to_the_takeover() {
    let Sites { da, db, dw: _dw, a: _a, b, w: _w, lab } = synchronous_sites();
    // A client checks in on the primary throughout; every answer is kept by status.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let (stop, pa) = (stop.clone(), da.addr);
        std::thread::spawn(move || {
            let agent = common::devices::agent();
            let mut answers: Vec<(u64, u16)> = Vec::new();
            let mut seq = 10_000;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                answers.push((seq, common::devices::check_in(&agent, pa, seq % 50, seq)));
                seq += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            answers
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    lab.replication_link("a", false);
    until("the secondary takes over", || b.failover_json()["mode"] == "primary");
    until("the new primary takes writes", || db.check_in(49, 1_000_000) == 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answers = client.join().unwrap();
    let acked: Vec<u64> = answers.iter().filter(|a| a.1 == 200).map(|a| a.0).collect();
    let refused = answers.iter().filter(|a| a.1 == 503).count();
    let on_b = common::devices::check_in_seqs(&b);
    let lost: Vec<&u64> = acked.iter().filter(|s| !on_b.contains(s)).collect();
    eprintln!("the old primary acknowledged {} check-ins and refused {refused}; lost: {}", acked.len(), lost.len());
    assert!(!acked.is_empty());
    assert!(lost.is_empty(), "acknowledged by the old primary, missing on the new one: {lost:?}");
    lab.replication_link("a", true);
}

#[test]
fn a_primary_that_degraded_keeps_its_standby_from_taking_over() {
    let Sites { da, db: _db, dw: _dw, a, b, w: _w, lab } = synchronous_sites();
    // The standby is cut off, the witness still reached: the lease says degraded before
    // the primary answers a write without the standby.
    lab.cut("a", "b", true);
    let started = Instant::now();
    assert_eq!(da.check_in(1, 20_000), 200, "answered once the degradation is recorded");
    eprintln!("the first write after the cut was answered in {:?}", started.elapsed());
    until("the lease says degraded", || {
        let l = lease(&a);
        l["synchronous"].is_object() && l["synchronous"]["standby"].is_null()
    });
    let acked: Vec<u64> = (20_001..20_020).filter(|&seq| da.check_in(seq % 50, seq) == 200).collect();
    assert_eq!(acked.len(), 19, "a degraded primary answers at once");
    // Then the primary's site is cut off from the witness too: it fences, and the
    // standby, which lacks those writes, is not granted the lease.
    lab.replication_link("a", false);
    until("the primary fences itself", || da.get("/hastatus.html").body == "MOBILEIRON-STATUS: ERROR (Mode: Fenced)");
    until("the secondary's failover is refused", || b.ha_log().contains("no standby confirmed"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.failover_json()["mode"], "secondary", "{}", b.ha_log());
    let shown = b.run(&["show failover"]).stdout;
    assert!(shown.contains("DEGRADED"), "{shown}");
    // Healed: the primary takes writes again and the standby gets every one.
    lab.replication_link("a", true);
    lab.cut("a", "b", false);
    common::until_else(
        "the primary takes writes again",
        || da.check_in(2, 20_100) == 200,
        || format!("a: {}\n{}\nb: {}", a.failover_json()["quorum"], a.ha_log(), b.ha_log()),
    );
    until("the standby has every write", || b.checksum() == a.checksum());
    let on_b = common::devices::check_in_seqs(&b);
    assert!(acked.iter().chain([20_000, 20_100].iter()).all(|s| on_b.contains(s)));
}

/// The lease's epoch as the witness has it.
fn lease_epoch(w: &TestNode) -> u64 {
    lease(w)["epoch"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn a_flapping_link_between_the_sites_changes_no_term() {
    let Sites { da, db: _db, dw: _dw, a, b, w, lab } = sites();
    let epoch = lease_epoch(&w);
    // The link between the sites flaps, both keep reaching the witness; then the
    // primary's whole site flaps, each time for less than the lease.
    for _ in 0..8 {
        lab.cut("a", "b", true);
        std::thread::sleep(Duration::from_millis(1000));
        lab.cut("a", "b", false);
        std::thread::sleep(Duration::from_millis(1000));
    }
    for _ in 0..5 {
        lab.replication_link("a", false);
        std::thread::sleep(Duration::from_millis(1500));
        lab.replication_link("a", true);
        std::thread::sleep(Duration::from_millis(1500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let promotions = b.ha_log().matches("FAILOVER:").count();
    let fences = a.ha_log().matches("FENCED").count();
    eprintln!(
        "flapping: {promotions} promotions, {fences} fences of the primary, lease epoch {epoch} -> {}",
        lease_epoch(&w)
    );
    assert_eq!(promotions, 0, "{}", b.ha_log());
    assert_eq!(lease_epoch(&w), epoch, "no term changed");
    assert_eq!(b.failover_json()["mode"], "secondary");
    until("the primary takes writes", || da.check_in(1, 1) == 200);
}

#[test]
fn repeated_failures_of_one_site_change_the_term_once() {
    let Sites { da, db, dw: _dw, a, b, w, lab } = sites();
    let epoch = lease_epoch(&w);
    // The primary's site is cut off three times, each long enough to be a real failure:
    // the first replaces the primary; the others cut off a node that no longer is one.
    for round in 0..3 {
        lab.replication_link("a", false);
        if round == 0 {
            until("the secondary takes over", || b.failover_json()["mode"] == "primary");
        }
        std::thread::sleep(Duration::from_secs(6));
        lab.replication_link("a", true);
        std::thread::sleep(Duration::from_secs(4));
    }
    let promotions = b.ha_log().matches("FAILOVER:").count();
    eprintln!("three cuts: {promotions} promotion(s), lease epoch {epoch} -> {}", lease_epoch(&w));
    assert_eq!(promotions, 1, "{}", b.ha_log());
    assert_eq!(lease_epoch(&w), epoch + 1, "one term change");
    assert_eq!(b.failover_json()["mode"], "primary");
    // A holder starved of CPU may fence for a moment and renew; the new primary takes
    // writes, the old one none.
    common::until_else("the new primary takes writes", || db.check_in(1, 1) == 200, || b.ha_log());
    assert_ne!(da.check_in(2, 2), 200, "the old primary takes no writes: {}", a.ha_log());
}

#[test]
fn with_the_witness_cut_off_a_cut_between_the_sites_leaves_nobody_writable() {
    let Sites { da, db, dw: _dw, a, b, w: _w, lab } = sites();
    // The witness's site goes: the pair, two of three, goes on.
    lab.isolate("w");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(da.check_in(1, 1), 200, "the primary keeps its lease: {}", a.ha_log());
    assert_eq!(b.failover_json()["mode"], "secondary");
    // Then the link between the sites breaks: each side is one voter of three. As the
    // operator guide says, the primary fences itself and the secondary is granted
    // nothing: no node takes writes until a voter comes back.
    lab.cut("a", "b", true);
    until("the primary fences itself", || da.get("/hastatus.html").body == "MOBILEIRON-STATUS: ERROR (Mode: Fenced)");
    until("the secondary's failover is refused", || b.ha_log().contains("FAILOVER REFUSED"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.failover_json()["mode"], "secondary", "{}", b.ha_log());
    assert_eq!(da.check_in(2, 2), 503);
    assert_ne!(db.check_in(3, 3), 200);
    // The link back: two of three again. The old lease ran out long ago, so whichever
    // asks first holds it (the primary renewing, or the secondary's failover): one node
    // takes writes, never both.
    lab.cut("a", "b", false);
    let mut seq = 10;
    let healed = Instant::now();
    while !(da.check_in(4, seq) == 200 || db.check_in(5, seq + 1) == 200) {
        seq += 2;
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "no node takes writes 30 s after the heal\na: {}\n{}\nb: {}\n{}",
            a.failover_json()["quorum"],
            a.ha_log(),
            b.failover_json()["quorum"],
            b.ha_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (on_a, on_b) = (da.check_in(6, 1000), db.check_in(7, 1001));
    let late = b.ha_log().contains("seemed to fail");
    eprintln!(
        "healed: a answers {on_a}, b answers {on_b}; b is {}; a late grant taken: {late}",
        b.failover_json()["mode"]
    );
    assert!((on_a == 200) != (on_b == 200), "exactly one node takes writes: a {on_a}, b {on_b}");
}
