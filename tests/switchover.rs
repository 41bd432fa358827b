//! `failover switchover` between real daemons on loopback: under check-in load it loses
//! no acknowledged write (counted check-in by check-in), no instant has two nodes
//! saying primary (both status pages polled throughout), the old primary follows the
//! new one, both record one handover signed by both; it runs from either node, a dry
//! run changes nothing, a second switchover swaps back; a standby that freezes or is
//! killed midway leaves the old primary serving with nothing changed; a real HAProxy
//! configured from the guide follows the swap.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::devices::{agent, check_in, check_in_seqs};
use common::{Daemon, TestNode, until};
use coresh::coredb::generate::token_for;

/// What `/hastatus.html` of `d` says now.
fn ha_status(agent: &ureq::Agent, d: SocketAddr) -> String {
    agent
        .get(&format!("http://{d}/hastatus.html"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default()
}

/// A synced pair streaming: `b` the continuous standby of `a`, each trusting the
/// other's daemon at its SSH address, HA enabled on both.
struct Streaming {
    a: TestNode,
    b: TestNode,
    da: Daemon,
    db: Daemon,
}

fn streaming_pair(settle_ms: u32) -> Streaming {
    let common::Pair { a, b, da } = common::synced_pair("200", "200");
    let db = b.serve();
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    a.ha(&["service enable", &format!("switchover settle {settle_ms}")]).expect_code(0);
    b.follow(&da.ssh.to_string(), "keep-standby");
    b.ha(&["replication mode continuous"]).expect_code(0);
    until("b streams from a", || a.failover_json()["stream_followers"].as_array().is_some_and(|f| !f.is_empty()));
    until("b streams", || b.failover_json()["replication_state"] == "streaming");
    Streaming { a, b, da, db }
}

fn switchover(node: &TestNode, dry_run: bool) -> (common::Run, serde_json::Value) {
    let line = if dry_run { "failover switchover dry-run | json" } else { "failover switchover | json" };
    let run = node.run(&["enable", line]);
    let report = serde_json::from_str(&run.stdout).unwrap_or_default();
    (run, report)
}

/// Starts `failover switchover | json` on `node` and returns once its daemon `d` holds
/// device writes (its status page says so); the thread gives the report.
fn switchover_once_writes_are_held(node: &TestNode, d: &Daemon) -> std::thread::JoinHandle<serde_json::Value> {
    let dir = node.data_dir().to_path_buf();
    let asked = std::thread::spawn(move || {
        let out = std::process::Command::new(common::binary())
            .args(["--data-dir", dir.to_str().unwrap(), "-c", "enable", "-c", "failover switchover | json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    });
    until("the primary holds writes", || d.get("/status/status.html").body.contains("Switchover"));
    asked
}

fn handovers(node: &TestNode) -> Vec<serde_json::Value> {
    serde_json::from_str(&node.run(&["show failover handovers | json"]).stdout).unwrap()
}

#[test]
fn a_switchover_under_load_loses_nothing_and_never_shows_two_primaries() {
    let Streaming { a, b, da, db } = streaming_pair(300);
    let (dry, report) = switchover(&a, true);
    dry.expect_code(0);
    assert_eq!(report["outcome"], "would-switch", "{}", dry.stdout);
    assert_eq!(a.failover_json()["mode"], "primary", "a dry run changes nothing");

    // Four clients check in through whichever node takes them (as a load balancer
    // would move them); each remembers what was acknowledged.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (pa, pb) = (da.addr, db.addr);
    let clients: Vec<_> = (0..4u64)
        .map(|t| {
            let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let seq = t * 1_000_000 + k;
                    let device = (t * 50 + k) % 200;
                    match [pa, pb].iter().map(|d| check_in(&agent, *d, device, seq)).find(|s| *s == 200) {
                        Some(_) => acked.lock().unwrap().push(seq),
                        None => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    k += 1;
                }
            })
        })
        .collect();
    // Both status pages, the new primary's first, polled throughout.
    let both = Arc::new(AtomicU64::new(0));
    let polls = Arc::new(AtomicU64::new(0));
    let poller = {
        let (both, polls, stop) = (both.clone(), polls.clone(), stop.clone());
        std::thread::spawn(move || {
            let agent = agent();
            while !stop.load(Ordering::Relaxed) {
                let on_b = ha_status(&agent, pb);
                let on_a = ha_status(&agent, pa);
                if on_b.contains("Mode: Primary") && on_a.contains("Mode: Primary") {
                    both.fetch_add(1, Ordering::Relaxed);
                }
                polls.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    until("check-ins flow", || acked.lock().unwrap().len() >= 300);
    let (run, report) = switchover(&a, false);
    run.expect_code(0);
    assert_eq!(report["outcome"], "switched", "{}", run.stdout);
    let at = acked.lock().unwrap().len();
    until("check-ins flow on the new primary", || acked.lock().unwrap().len() >= at + 300);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    poller.join().unwrap();

    assert_eq!(b.failover_json()["mode"], "primary");
    let on_a = a.failover_json();
    assert_eq!((on_a["mode"].as_str(), on_a["state"].as_str()), (Some("secondary"), Some("standby")), "{on_a}");
    assert_eq!(b.failover_json()["epoch"], report["to_epoch"], "{report}");
    assert!(report["to_epoch"].as_u64() > on_a["epoch"].as_u64(), "{report}");
    assert!(polls.load(Ordering::Relaxed) > 10, "the status pages were polled");
    assert_eq!(both.load(Ordering::Relaxed), 0, "both nodes said Mode: Primary at once");
    // Every acknowledged check-in is on the new primary, and the old one follows it.
    let on_b = check_in_seqs(&b);
    let acked = acked.lock().unwrap();
    let lost: Vec<&u64> = acked.iter().filter(|s| !on_b.contains(s)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged check-ins are missing: {lost:?}", lost.len(), acked.len());
    until("the old primary follows the new one", || a.checksum() == b.checksum());
    a.assert_same_rows(&b);
    let held = report["writes_held_ms"].as_u64().unwrap();
    assert!(held <= report["bound_ms"].as_u64().unwrap(), "{report}");
    eprintln!(
        "switchover: {} ms, writes held {held} ms, {} check-ins acknowledged, {} refused meanwhile",
        report["took_ms"],
        acked.len(),
        refused.load(Ordering::Relaxed)
    );

    // One handover on each node, signed by both, at the same change.
    for node in [&a, &b] {
        let h = handovers(node);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0]["seq"], report["seq"]);
        assert!(h[0]["from_signed_by"].is_string() && h[0]["to_signed_by"].is_string(), "{h:?}");
        let history = node.run(&["show failover history"]).stdout;
        assert!(history.contains("handover"), "{history}");
    }
}

#[test]
fn from_the_standby_and_back_again_at_a_new_epoch_each_time() {
    let Streaming { a, b, da, db } = streaming_pair(0);
    let epoch = a.failover_json()["epoch"].as_u64().unwrap();
    assert!(a.run(&["show failover handovers"]).stdout.contains("No switchover has handed"));
    // Naming the standby: on the primary, a trusted standby that streams, or refused.
    let named = a.run(&["enable", &format!("failover switchover to {} dry-run | json", db.ssh)]);
    named.expect_code(0);
    assert!(named.stdout.contains("would-switch"), "{}", named.stdout);
    let unknown = a.run(&["enable", "failover switchover to 192.0.2.1:22 dry-run | json"]);
    assert_eq!(unknown.code, 1, "{}", unknown.stdout);
    assert!(unknown.stdout.contains("would-refuse"), "{}", unknown.stdout);
    let on_standby = b.run(&["enable", "failover switchover to 192.0.2.1:22"]);
    assert_eq!(on_standby.code, 1);
    assert!(on_standby.stderr.contains("'to HOST' is for the primary"), "{}", on_standby.stderr);
    // From the standby: it asks its primary.
    let run = b.run(&["enable", "failover switchover"]);
    run.expect_code(0);
    eprintln!("{}", run.stdout);
    for shown in
        ["Switchover done:", "Old primary", "New primary", "At change", "Writes held", "Steps:", "took over at epoch"]
    {
        assert!(run.stdout.contains(shown), "{shown}: {}", run.stdout);
    }
    assert_eq!(b.failover_json()["epoch"].as_u64(), Some(epoch + 1));
    let agent = agent();
    assert_eq!(check_in(&agent, db.addr, 1, 1), 200, "the new primary takes writes");
    assert_eq!(check_in(&agent, da.addr, 2, 2), 503, "the old one does not");
    until("a streams from b", || a.failover_json()["replication_state"] == "streaming");
    b.ha(&["service enable"]).expect_code(0);
    // And back, run on the primary again.
    let (run, report) = switchover(&b, false);
    run.expect_code(0);
    assert_eq!(report["outcome"], "switched", "{}", run.stdout);
    assert_eq!(a.failover_json()["mode"], "primary");
    assert_eq!(a.failover_json()["epoch"].as_u64(), Some(epoch + 2));
    assert_eq!(check_in(&agent, da.addr, 3, 3), 200);
    until("b follows a again", || b.checksum() == a.checksum());
    assert_eq!(handovers(&a).len(), 2);
    assert_eq!(handovers(&b).len(), 2);
}

#[test]
fn a_standby_that_freezes_or_dies_midway_leaves_the_old_primary_serving() {
    let Streaming { a, b, da, db } = streaming_pair(2000);
    let agent = agent();
    let pid = db.child.id().to_string();
    // Frozen: it never answers; the switchover is refused before any write is held.
    std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    let (run, report) = switchover(&a, false);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(report["outcome"], "refused", "{}", run.stdout);
    assert!(report["writes_held_ms"].is_null(), "{report}");
    assert_eq!(a.failover_json()["mode"], "primary");
    assert_eq!(check_in(&agent, da.addr, 1, 1), 200, "the old primary serves");
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    // The state b recorded before the freeze may still say "streaming" while its stream
    // times out: ready once b has applied a write made after the freeze, which only a
    // live stream brings.
    assert_eq!(check_in(&agent, da.addr, 4, 4), 200);
    until("b applies a write made after the freeze", || {
        let fed =
            a.failover_json()["stream_followers"].as_array().is_some_and(|f| f.iter().any(|f| f["lag_changes"] == 0));
        fed && b.failover_json()["replication_state"] == "streaming"
    });

    // Killed once it is ready, while the primary holds writes for the load balancer to
    // notice: the old primary takes writes again and nothing changed.
    let asked = switchover_once_writes_are_held(&a, &da);
    assert_eq!(check_in(&agent, da.addr, 2, 2), 503, "writes are held");
    db.kill_9();
    let report = asked.join().unwrap();
    assert_eq!(report["outcome"], "aborted", "{report}");
    assert_eq!(a.failover_json()["mode"], "primary");
    assert_eq!(check_in(&agent, da.addr, 3, 3), 200, "the old primary serves again");
    assert!(handovers(&a).is_empty(), "no handover recorded");
    assert_eq!(b.failover_json()["mode"], "secondary", "the standby never took over");
    let history = a.run(&["show failover history"]).stdout;
    assert!(!history.contains("handover"), "{history}");
}

#[test]
fn a_switchover_is_refused_without_a_streaming_standby() {
    let common::Pair { a, b: _b, da: _da } = common::synced_pair("20", "20");
    a.ha(&["service enable"]).expect_code(0);
    let (run, report) = switchover(&a, true);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(report["outcome"], "would-refuse");
    assert!(run.stdout.contains("no standby streams"), "{}", run.stdout);
    // Without a daemon the shell says so and leaves nothing behind.
    let lone = TestNode::new();
    let run = lone.run(&["enable", "failover switchover"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("No coresh daemon runs on this node"), "{}", run.stderr);
}

#[test]
fn haproxy_set_up_from_the_guide_follows_the_switchover() {
    // The guide's load balancer (probes every 100 ms, 2 failures): the settle time is
    // well above what it needs to see the primary's page fail.
    let Streaming { a, b, da, db } = streaming_pair(1000);
    let node_id = |d: &Daemon| -> String {
        let v: serde_json::Value = serde_json::from_str(&d.get("/status.json").body).unwrap();
        v["node_id"].as_str().unwrap().to_string()
    };
    let (pid, sid) = (node_id(&da), node_id(&db));
    let front = SocketAddr::from(([127, 0, 0, 1], common::free_port()));
    let lb = Arc::new(common::haproxy::start(a.path(), front, da.addr, db.addr));
    common::until("traffic goes to the primary", || lb.served_by() == Ok(pid.clone()));
    // Devices keep coming through the VIP (the latch is set by a request).
    let stop = Arc::new(AtomicBool::new(false));
    let devices = {
        let (lb, stop) = (lb.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = lb.checkin(&token_for(42, 7));
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (run, report) = switchover(&a, false);
    run.expect_code(0);
    assert_eq!(report["outcome"], "switched", "{}", run.stdout);
    common::until("traffic goes to the new primary", || lb.served_by() == Ok(sid.clone()));
    assert_eq!(lb.checkin(&token_for(42, 8)), 200, "devices check in on the new primary");
    stop.store(true, Ordering::Relaxed);
    devices.join().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lb.served_by(), Ok(sid), "and stay there (the old primary is a healthy standby)");
    drop(b);
}

#[test]
fn a_standby_that_freezes_after_it_prepared_leaves_exactly_one_primary() {
    // The standby prepares, then freezes before the commit reaches it, and wakes after
    // its readiness ran out: the old primary, which had handed over, asks it what it
    // did, learns it did not take over, and takes its role back.
    let Streaming { a, b, da, db } = streaming_pair(2000);
    let agent = agent();
    let pid = db.child.id().to_string();
    let asked = switchover_once_writes_are_held(&a, &da);
    std::thread::sleep(Duration::from_millis(200));
    std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    // Past the commit's wait (settle 2 s + 5 s) and the standby's readiness (settle + 5 s).
    std::thread::sleep(Duration::from_secs(9));
    std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap();
    let report = asked.join().unwrap();
    let (on_a, on_b) = (a.failover_json(), b.failover_json());
    let steps = report["steps"].to_string();
    eprintln!("outcome {}: {}", report["outcome"], report["detail"]);
    assert!(steps.contains("did not answer the commit"), "the resolution ran: {report}");
    match report["outcome"].as_str() {
        Some("aborted") => {
            assert_eq!((on_a["mode"].as_str(), on_b["mode"].as_str()), (Some("primary"), Some("secondary")));
            assert_eq!(check_in(&agent, da.addr, 1, 1), 200, "the old primary serves again");
            assert!(handovers(&a).is_empty() && handovers(&b).is_empty());
        }
        Some("switched") => {
            assert_eq!((on_a["mode"].as_str(), on_b["mode"].as_str()), (Some("secondary"), Some("primary")));
            assert_eq!(check_in(&agent, db.addr, 1, 1), 200);
            assert_eq!((handovers(&a).len(), handovers(&b).len()), (1, 1));
        }
        other => panic!("{other:?}: {report}"),
    }
}
