//! The quorum's engine between real daemons on loopback: a primary, its secondary and a
//! witness (`mode witness`) that trust each other form one engine with three voters
//! over the trusted channel, every node shows the witness, the voters and whether each
//! answers, the engine goes on without its witness, and a witness serves no device.

mod common;

use common::{Daemon, TestNode, until};

/// `node` trusts each of `others` at its daemon's SSH address.
fn trusts(node: &TestNode, others: &[(&TestNode, &Daemon)]) {
    for (other, d) in others {
        node.trust(&d.ssh.to_string(), &other.local_key()).expect_code(0);
    }
}

fn quorum(node: &TestNode) -> serde_json::Value {
    node.failover_json()["quorum"].clone()
}

/// A synced pair and a witness, each trusting the two others; `b` follows `a` with
/// `on_failure`; both name the witness. The daemons drop before the nodes.
struct Three {
    da: Daemon,
    db: Daemon,
    dw: Daemon,
    a: TestNode,
    b: TestNode,
    w: TestNode,
}

fn three(on_failure: &str) -> Three {
    let common::Pair { a, b, da } = common::synced_pair("20", "20");
    let db = b.serve();
    let w = TestNode::new();
    w.ha(&["mode witness"]).expect_code(0);
    let dw = w.serve();
    trusts(&a, &[(&b, &db), (&w, &dw)]);
    trusts(&b, &[(&w, &dw)]);
    trusts(&w, &[(&a, &da), (&b, &db)]);
    b.follow(&da.ssh.to_string(), on_failure);
    let witness = format!("witness {}", dw.ssh);
    a.ha(&[&witness, "service enable"]).expect_code(0);
    b.ha(&[&witness]).expect_code(0);
    Three { da, db, dw, a, b, w }
}

#[test]
fn a_pair_and_its_witness_form_one_engine_and_go_on_without_the_witness() {
    let Three { da, db, dw, a, b, w } = three("keep-standby");
    let witness = format!("witness {}", dw.ssh);

    // One engine, three voters, one leader, on every node.
    until("the three form the quorum", || {
        [&a, &b, &w].iter().all(|n| {
            let q = quorum(n);
            q["voters"].as_array().is_some_and(|v| v.len() == 3) && q["leader"].is_u64()
        })
    });
    let leaders: Vec<u64> = [&a, &b, &w].iter().map(|n| quorum(n)["leader"].as_u64().unwrap()).collect();
    assert!(leaders.windows(2).all(|p| p[0] == p[1]), "one leader: {leaders:?}");
    until("each voter answers each other", || {
        [&a, &b, &w].iter().all(|n| {
            let links = quorum(n)["links"].clone();
            links.as_object().is_some_and(|l| l.values().any(|v| v["ok_at"].is_string() || v["heard_at"].is_string()))
        })
    });
    let shown = b.run(&["show failover"]).stdout;
    assert!(shown.contains("Quorum") && shown.contains("3 voters") && shown.contains("reachable"), "{shown}");
    assert!(a.run(&["enable", "show running-config"]).stdout.contains(&witness));

    // A witness serves no device and no load balancer sends one there.
    assert_eq!(dw.get("/hastatus.html").body, "MOBILEIRON-STATUS: ERROR (Mode: Witness)");
    assert_eq!(dw.get("/status/status.html").status, 503);
    let itself = w.ha(&["witness 192.0.2.1:22"]);
    assert_eq!(itself.code, 1);
    assert!(itself.stderr.contains("itself a witness"), "{}", itself.stderr);
    let run = w.run(&["enable", "failover mode primary"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("quorum witness"), "{}", run.stderr);

    // The witness goes: the pair, two of three, still has a leader.
    let w_id = quorum(&w)["id"].as_u64().unwrap();
    drop(dw);
    until("a leader among the two", || {
        let (qa, qb) = (quorum(&a), quorum(&b));
        qa["leader"].as_u64().is_some_and(|l| l != w_id) && qa["leader"] == qb["leader"]
    });
    until("the witness is shown unreachable", || b.run(&["show failover"]).stdout.contains("UNREACHABLE"));
    assert_eq!(da.check_in(1, 1), 200, "the primary keeps its lease with the secondary's vote");
    drop(db);
}

#[test]
fn the_primary_holds_the_lease_and_fences_itself_when_it_loses_the_quorum() {
    let Three { da, db, dw, a, b: _b, w } = three("keep-standby");
    let a_id = a.node_id();
    until("the primary holds the lease", || quorum(&a)["lease"]["holder"].as_str() == Some(a_id.as_str()));
    assert_eq!(da.check_in(1, 1), 200);
    // Alone, it cannot renew: within the bound it stops taking writes and says why.
    let w_ssh = dw.ssh.to_string();
    drop(dw);
    drop(db);
    let cut = std::time::Instant::now();
    until("the primary fences itself", || da.get("/hastatus.html").body == "MOBILEIRON-STATUS: ERROR (Mode: Fenced)");
    eprintln!("fenced {:?} after losing both voters", cut.elapsed());
    assert_eq!(da.get("/status/status.html").status, 503);
    assert_eq!(da.check_in(2, 2), 503, "no write while fenced");
    until("show failover says so", || quorum(&a)["fenced"].is_string());
    a.run(&["enable", "configure terminal", "prompt hostname mode state"]).expect_code(0);
    let echoed = a.run_with(&["show clock"], &["--echo"], &[]).stdout;
    assert!(echoed.starts_with("core/pri/fenced>"), "the prompt says so too: {echoed}");
    assert!(a.ha_log().contains("FENCED"), "{}", a.ha_log());
    // One voter back: two of three, it renews and takes writes again.
    let _dw = w.daemon().ssh(&w_ssh).start();
    until("the primary takes writes again", || da.check_in(3, 3) == 200);
    assert!(a.ha_log().contains("holds the quorum's lease"), "{}", a.ha_log());
}

#[test]
fn a_dead_primary_is_replaced_through_the_quorum_at_the_next_epoch() {
    let Three { da, db, dw, a, b, w: _w } = three("promote");
    let a_id = a.node_id();
    until("the primary holds the lease", || quorum(&a)["lease"]["holder"].as_str() == Some(a_id.as_str()));
    let epoch = a.failover_json()["epoch"].as_u64().unwrap();
    let killed = std::time::Instant::now();
    da.kill_9();
    until("the secondary promotes through the quorum", || b.failover_json()["mode"] == "primary");
    // The heartbeat's bound (`follow`: a failure noticed within the 1 s interval, then 3
    // failures 1 s apart, each with its 0.8 s timeout) plus the lease's (4 s, and the
    // 0.5 s clock margin, from a renewal at most 0.5 s before the kill).
    let took = killed.elapsed();
    let bound = std::time::Duration::from_millis(1000 + 3 * 1800 + 4000 + 500 + 500);
    eprintln!("promoted {took:?} after the kill (bound {bound:?})");
    assert!(took <= bound, "promoted {took:?} after the kill, past the bound {bound:?}");
    let b_id = b.node_id();
    assert_eq!(b.failover_json()["epoch"].as_u64(), Some(epoch + 1));
    until("it holds the lease at its epoch", || {
        let l = quorum(&b)["lease"].clone();
        l["holder"].as_str() == Some(b_id.as_str()) && l["epoch"].as_u64() == Some(epoch + 1)
    });
    assert_eq!(db.check_in(1, 1), 200);
    let log = b.ha_log();
    assert!(log.contains("FAILOVER"), "{log}");
    drop(dw);
}

#[test]
fn a_switchover_moves_the_lease_with_the_role() {
    let Three { da, db, dw: _dw, a, b, w: _w } = three("keep-standby");
    b.ha(&["replication mode continuous"]).expect_code(0);
    a.ha(&["switchover settle 0"]).expect_code(0);
    let a_id = a.node_id();
    until("the primary holds the lease", || quorum(&a)["lease"]["holder"].as_str() == Some(a_id.as_str()));
    until("b streams", || b.failover_json()["replication_state"] == "streaming");
    until("a sees its follower", || a.failover_json()["stream_followers"].as_array().is_some_and(|f| !f.is_empty()));
    let run = a.run(&["enable", "failover switchover | json"]);
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let epoch = report["to_epoch"].as_u64().unwrap();
    let b_id = b.node_id();
    let lease = quorum(&b)["lease"].clone();
    until("the lease is b's at the new epoch", || {
        let l = quorum(&b)["lease"].clone();
        l["holder"].as_str() == Some(b_id.as_str()) && l["epoch"].as_u64() == Some(epoch)
    });
    assert_eq!(db.check_in(1, 1), 200, "the new primary takes writes at once: {lease}");
    assert_eq!(da.check_in(2, 2), 503);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(db.check_in(3, 3), 200, "and keeps them: it renews its lease");
    assert!(!b.ha_log().contains("FENCED") && !a.ha_log().contains("FENCED"), "{}{}", a.ha_log(), b.ha_log());
}

#[test]
fn a_promotion_by_hand_needs_the_quorums_grant() {
    let Three { da, db: _db, dw: _dw, a, b, w: _w } = three("keep-standby");
    let a_id = a.node_id();
    until("the primary holds the lease", || quorum(&a)["lease"]["holder"].as_str() == Some(a_id.as_str()));
    let epoch = a.failover_json()["epoch"].as_u64().unwrap();
    // The primary renews its lease: the secondary is refused, with the reason.
    let run = b.run(&["enable", "failover mode primary"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("% The quorum refused") && run.stderr.contains("renewed it in time"), "{}", run.stderr);
    assert_eq!(b.failover_json()["mode"], "secondary");
    assert_eq!(da.check_in(1, 1), 200);
    // The primary dies: once its lease ran out, the quorum grants the next epoch.
    da.kill_9();
    let b_id = b.node_id();
    until("the quorum grants the promotion", || b.run(&["enable", "failover mode primary"]).code == 0);
    let f = b.failover_json();
    assert_eq!((f["mode"].as_str(), f["epoch"].as_u64()), (Some("primary"), Some(epoch + 1)));
    until("it holds the lease", || quorum(&b)["lease"]["holder"].as_str() == Some(b_id.as_str()));
}

#[test]
fn with_the_witness_gone_a_dead_primary_is_replaced_only_by_force() {
    let Three { da, db, dw, a, b, w } = three("promote");
    let a_id = a.node_id();
    until("the primary holds the lease", || quorum(&a)["lease"]["holder"].as_str() == Some(a_id.as_str()));
    // The witness goes: the pair sees each other and nothing changes.
    let w_id = quorum(&w)["id"].as_u64().unwrap();
    drop(dw);
    until("a leader among the two", || quorum(&b)["leader"].as_u64().is_some_and(|l| l != w_id));
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(da.check_in(1, 1), 200, "the primary keeps its lease");
    assert_eq!(b.failover_json()["mode"], "secondary");
    // Then the primary dies too: one voter of three decides nothing, so the secondary
    // does not promote itself (docs/architecture.md, "Quorum").
    da.kill_9();
    until("the heartbeat's failover is refused", || b.ha_log().contains("FAILOVER REFUSED"));
    std::thread::sleep(std::time::Duration::from_secs(6));
    assert_eq!(b.failover_json()["mode"], "secondary", "{}", b.ha_log());
    let run = b.run(&["enable", "failover mode primary"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("% The quorum could not decide") && run.stderr.contains("force"), "{}", run.stderr);
    // The operator forces it: primary, out of the quorum, taking writes and not fenced.
    assert!(b.failover_json()["witness"].is_string(), "{}", b.failover_json());
    let run = b.run(&["enable", "failover mode primary force"]);
    run.expect_code(0);
    assert!(run.stderr.contains("without the quorum") || run.stdout.contains("without the quorum"), "{run:?}");
    let f = b.failover_json();
    assert_eq!(f["mode"], "primary");
    assert!(f["witness"].is_null(), "{f}");
    assert!(!b.run(&["enable", "show running-config"]).stdout.contains("witness "));
    until("the forced primary takes writes", || db.check_in(2, 2) == 200);
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(db.check_in(3, 3), 200, "it is not fenced: {}", b.ha_log());
}
