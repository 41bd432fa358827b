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

#[test]
fn a_pair_and_its_witness_form_one_engine_and_go_on_without_the_witness() {
    let common::Pair { a, b, da } = common::synced_pair("20", "20");
    let db = b.serve();
    let w = TestNode::new();
    w.ha(&["mode witness"]).expect_code(0);
    let dw = w.serve();
    trusts(&a, &[(&b, &db), (&w, &dw)]);
    trusts(&b, &[(&w, &dw)]);
    trusts(&w, &[(&a, &da), (&b, &db)]);
    b.follow(&da.ssh.to_string(), "keep-standby");
    let witness = format!("witness {}", dw.ssh);
    a.ha(&[&witness, "service enable"]).expect_code(0);
    b.ha(&[&witness]).expect_code(0);

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
}
