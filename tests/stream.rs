//! Continuous replication between real daemons on loopback: each check-in the primary
//! acknowledges reaches its standby, and the DR node that follows the standby, as it
//! commits, without a sync; the stream survives restarts of both ends; where the log
//! cannot bring a node on (a DR node that never synced, a standby that wrote on its own)
//! a sync does, the stream says why, and it goes on afterwards.

mod common;

use common::{Daemon, TestNode, free_port, pair, until};
use coresh::coredb::generate::token_for;

/// Checks in generated devices `ids` through `d`'s device API; returns those it
/// acknowledged (200).
fn checkins(d: &Daemon, ids: std::ops::Range<u64>) -> Vec<u64> {
    ids.filter(|&i| {
        d.post("/api/v1/devices/checkin", Some(&token_for(42, i)), &format!(r#"{{"seq":{i}}}"#)).status == 200
    })
    .collect()
}

/// Makes `node` follow `primary` continuously (a standby with a fast heartbeat that
/// stays standby when the primary fails: these tests are about the data).
fn stream_from(node: &TestNode, primary: &Daemon) {
    node.follow(&primary.ssh.to_string(), "keep-standby");
    node.ha(&["replication mode continuous"]).expect_code(0);
}

fn syncs(node: &TestNode) -> Vec<serde_json::Value> {
    serde_json::from_str(&node.run(&["show sync history | json"]).stdout).unwrap()
}

#[test]
fn each_check_in_reaches_the_standby_and_the_dr_node_as_it_commits() {
    let common::Pair { a, b, da } = common::synced_pair("200", "200");
    let db = b.serve();
    stream_from(&b, &da);
    // The DR node never synced: the stream starts with a sync, then follows.
    let c = TestNode::new();
    pair(&b, &db, &c);
    let _dc = c.serve();
    stream_from(&c, &db);
    until("both follow", || {
        [&b, &c].iter().all(|n| n.failover_json()["replication_state"] == "streaming")
            && c.failover_json()["lag_changes"] == 0
    });
    let synced_before = syncs(&b).len();

    let acked = checkins(&da, 0..100);
    assert_eq!(acked.len(), 100, "every check-in is acknowledged");
    let want = a.checksum();
    until("the standby and the DR node hold every acknowledged check-in", || {
        b.checksum() == want && c.checksum() == want
    });
    b.assert_same_rows(&a);
    c.assert_same_rows(&a);
    assert_eq!(syncs(&b).len(), synced_before, "the stream moved the changes, not a sync");

    // What the standby reports is at most a second old.
    let head = serde_json::from_str::<serde_json::Value>(&a.run(&["show core summary | json"]).stdout).unwrap();
    until("the standby reports the primary's last change as applied", || {
        b.failover_json()["last_applied_seq"] == head["change"]
    });
    let shown = b.failover_json();
    assert_eq!(shown["replication_mode"], "continuous");
    assert_eq!(shown["lag_changes"], 0, "{shown}");
    let text = b.run(&["show failover"]).stdout;
    assert!(text.contains("Replication") && text.contains("continuous, streaming from"), "{text}");
    assert!(text.contains("level with the primary at change"), "{text}");
    // Both ends see the lag: the primary lists its follower, level with it.
    until("the primary sees its follower level", || {
        let followers = a.failover_json()["stream_followers"].clone();
        followers.as_array().is_some_and(|f| {
            f.len() == 1
                && f[0]["state"] == "streaming"
                && f[0]["lag_changes"] == 0
                && f[0]["applied_seq"] == head["change"]
        })
    });
    let text = a.run(&["show failover"]).stdout;
    assert!(
        text.contains("Follower") && text.contains("streaming, applied change") && text.contains("(level)"),
        "{text}"
    );
    let c_id =
        serde_json::from_str::<serde_json::Value>(&c.run(&["show version | json"]).stdout).unwrap()["node_id"].clone();
    assert_eq!(b.failover_json()["stream_followers"][0]["node_id"], c_id, "the standby lists the DR node");
    // The DR node's first position was not in the standby's log: it says so.
    let log = c.ha_log();
    assert!(log.contains("brings this node on"), "{log}");
    assert!(log.contains("following from change"), "{log}");
    // Being level counts as a sync for the promotion rule.
    assert_eq!(b.failover_json()["failover_ready"], true);
}

#[test]
fn the_stream_survives_a_restart_of_either_end() {
    let common::Pair { a, b, da } = common::synced_pair("100", "100");
    // The primary on fixed ports, so that it comes back where the standby looks.
    drop(da);
    let (http, ssh) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let da = a.daemon().http(&http).ssh(&ssh).start();
    b.trust(&ssh, &a.local_key()).expect_code(0);
    let db = b.serve();
    stream_from(&b, &da);
    until("b follows", || b.failover_json()["replication_state"] == "streaming");
    assert_eq!(checkins(&da, 0..20).len(), 20);
    until("the first writes arrive", || b.checksum() == a.checksum());

    // The primary killed and started again: the standby reconnects by itself.
    da.kill_9();
    let da = a.daemon().http(&http).ssh(&ssh).start();
    assert_eq!(checkins(&da, 20..40).len(), 20);
    until("writes after the primary's restart arrive", || b.checksum() == a.checksum());

    // The standby stopped and started again: it goes on from its own head.
    db.stop();
    assert_eq!(checkins(&da, 40..60).len(), 20);
    let _db = b.serve();
    until("writes made while the standby was down arrive", || b.checksum() == a.checksum());
    b.assert_same_rows(&a);
    assert!(b.ha_log().contains("retrying"), "{}", b.ha_log());
}

#[test]
fn a_standby_that_wrote_on_its_own_is_brought_back_by_a_sync_that_keeps_its_writes() {
    let common::Pair { a, b, da } = common::synced_pair("100", "100");
    // b writes on its own while it follows no one (as after a failover both ways).
    b.run(&["enable", "configure terminal", "device retire gen-device-00000050"]).expect_code(0);
    let own = coresh::node::Node::open(&b.data_dir()).unwrap().core().unwrap().log_head().unwrap();
    let theirs = coresh::node::Node::open(&a.data_dir()).unwrap().core().unwrap().log_head().unwrap();
    assert!(own != theirs, "b's own write moved its log");
    let _db = b.serve();
    stream_from(&b, &da);
    assert_eq!(checkins(&da, 0..10).len(), 10);
    until("the stream brought b level with a", || {
        b.checksum() == a.checksum() && b.failover_json()["replication_state"] == "streaming"
    });
    b.assert_same_rows(&a);
    let log = b.ha_log();
    assert!(log.contains("brings this node on"), "{log}");
    // The full copy kept what b had written.
    let kept = b.run(&["show failover divergence"]).stdout;
    assert!(kept.contains("127.0.0.1"), "{kept}");
    assert_eq!(checkins(&da, 10..20).len(), 10);
    until("and it follows on", || b.checksum() == a.checksum());
}

#[test]
fn show_replication_and_the_status_json_tell_the_lag_on_both_ends() {
    let common::Pair { a, b, da } = common::synced_pair("200", "200");
    let db = b.serve();
    stream_from(&b, &da);
    until("b streams", || b.failover_json()["replication_state"] == "streaming");
    let acked = checkins(&da, 0..200);
    assert_eq!(acked.len(), 200);
    let shown = |node: &TestNode| -> serde_json::Value {
        serde_json::from_str(&node.run(&["show replication | json"]).expect_code(0).stdout).unwrap()
    };
    until("the standby's last minute counts every change", || {
        shown(&b)["last_minute"]["entries"].as_i64().is_some_and(|n| n >= 200)
    });
    let on_b = shown(&b);
    let minute = &on_b["last_minute"];
    let (p50, p99, max) =
        (minute["p50_ms"].as_i64().unwrap(), minute["p99_ms"].as_i64().unwrap(), minute["max_ms"].as_i64().unwrap());
    assert!(p50 <= p99 && p99 <= max, "{minute}");
    assert_eq!(on_b["replication_state"], "streaming");
    let on_a = shown(&a);
    assert!(on_a["commits_last_minute"].as_i64().unwrap() >= 200, "{on_a}");
    assert_eq!(on_a["stream_followers"].as_array().unwrap().len(), 1, "{on_a}");
    let text = b.run(&["show replication"]).stdout;
    assert!(text.contains("Last minute") && text.contains("commit to apply: p50"), "{text}");
    // The standby's status JSON says the same, level at the primary's last change.
    let head: i64 = rusqlite::Connection::open(a.data_dir().join("core.db"))
        .unwrap()
        .query_row("SELECT max(seq) FROM repl_log", [], |r| r.get(0))
        .unwrap();
    until("the status JSON is level", || {
        let v: serde_json::Value = serde_json::from_str(&db.get("/status.json").body).unwrap();
        v["replication_state"] == "streaming"
            && v["lag_changes"] == 0
            && v["lag_ms"] == 0
            && v["last_applied_seq"].as_i64() == Some(head)
    });
    let v: serde_json::Value = serde_json::from_str(&da.get("/status.json").body).unwrap();
    assert_eq!((v["replication_state"].as_str(), v["lag_changes"].is_null()), (Some("off"), true), "{v}");
}

#[test]
fn failover_sync_runs_beside_the_stream_in_either_streaming_mode() {
    let common::Pair { a, b, da } = common::synced_pair("100", "100");
    let _db = b.serve();
    stream_from(&b, &da);
    for (i, mode) in ["continuous", "synchronous timeout 1000"].iter().enumerate() {
        b.ha(&[&format!("replication mode {mode}")]).expect_code(0);
        until("b streams", || b.failover_json()["replication_state"] == "streaming");
        let base = 20 * (i as u64 + 1);
        assert_eq!(checkins(&da, base..base + 10).len(), 10);
        // Run Sync Now, while the stream runs: the sync lock keeps them apart. Just after
        // the mode changed, the stream's own catch-up may hold the lock: the sync is then
        // refused, saying so, and asked again.
        let mut run = b.run(&["enable", &format!("failover sync {}", da.ssh)]);
        let mut tries = 0;
        while run.code != 0 && run.stderr.contains("a sync is already running") && tries < 100 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            run = b.run(&["enable", &format!("failover sync {}", da.ssh)]);
            tries += 1;
        }
        run.expect_code(0);
        assert!(run.stdout.contains("completed"), "{mode}: {}", run.stdout);
        assert_eq!(checkins(&da, base + 10..base + 20).len(), 10);
        until("every write on the standby", || b.checksum() == a.checksum());
        until("and the stream goes on", || b.failover_json()["replication_state"] == "streaming");
    }
    a.assert_same_rows(&b);
}

#[test]
fn a_node_that_feeds_no_stream_shows_its_state_without_opening_the_core_data() {
    let node = TestNode::new();
    let shown = node.failover_json();
    assert_eq!(shown["stream_followers"], serde_json::json!([]), "{shown}");
    assert!(!node.data_dir().join("core.db").exists(), "show failover created the Core data");
}

#[test]
fn a_stream_follower_is_shown_with_its_lag_behind_the_change_log() {
    let node = TestNode::new();
    let mut opened = coresh::node::Node::open(&node.data_dir()).unwrap();
    for at in ["2026-12-05T00:00:01Z", "2026-12-05T00:00:02Z", "2026-12-05T00:00:03Z"] {
        opened.core().unwrap().write(|w| w.event(None, "x", "{}", at)).unwrap();
    }
    let head = opened.core().unwrap().log_head().unwrap().seq;
    // As the daemon records a follower of its stream two changes behind, now (followers
    // not heard of for a day are forgotten).
    let now = coresh::store::now_millis();
    let follower = coresh::store::StreamFollower {
        node_id: "cccc".into(),
        hostname: "core-c".into(),
        address: "127.0.0.1:1".into(),
        state: coresh::store::FeedState::Streaming,
        applied_seq: head - 2,
        applied_at: None,
        connected_at: now.clone(),
        updated_at: now,
    };
    opened.store.put_stream_follower(&follower).unwrap();
    drop(opened);
    let shown = node.failover_json();
    assert_eq!(shown["stream_followers"][0]["lag_changes"], 2, "{shown}");
}
