//! Heartbeat and automatic failover between real daemons on loopback: a dead primary is
//! replaced by its secondary, a live status page prevents a failover when only SSH
//! fails, `keep-standby` only reports, and an old primary that comes back learns of the
//! newer one and stops claiming to be the healthy primary.

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, TestNode, generate, pair, sync};

/// Waits until `b`'s heartbeat has reached its primary.
fn wait_for_heartbeat(b: &TestNode, db: &Daemon) {
    db.eventually("the heartbeat reaches the primary", |_| b.reaches_a_peer());
}

/// Pairs `b` with `a` (served by `da`), serves `b` as its standby secondary with a fast
/// heartbeat and waits for the first answered heartbeat; returns `b`'s daemon.
fn standby_of(a: &TestNode, da: &Daemon, b: &TestNode, on_failure: &str) -> Daemon {
    pair(a, da, b);
    let db = b.serve();
    b.follow(&da.ssh.to_string(), on_failure);
    wait_for_heartbeat(b, &db);
    db
}

#[test]
fn a_dead_primary_is_replaced_by_its_secondary() {
    let common::Pair { a: _a, b, da } = common::synced_pair("100", "100");
    let db = b.serve();
    b.follow(&da.ssh.to_string(), "promote");
    wait_for_heartbeat(&b, &db);
    let seen = b.failover_json();
    let peer = &seen["peers"][0];
    assert_eq!(peer["mode"], "primary");
    assert_eq!(peer["role"], "primary");
    assert!(peer["offset_ms"].as_i64().unwrap().abs() < 1000, "{peer}");
    assert_eq!(db.get("/hastatus.html").body, "MOBILEIRON-STATUS: OK (Mode: Standby)");

    da.kill_9();
    let killed = Instant::now();
    db.eventually("the secondary takes over", |d| {
        d.get("/hastatus.html").body == "MOBILEIRON-STATUS: OK (Mode: Primary)"
    });
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(20), "failover took {took:?}");

    let now = b.failover_json();
    assert_eq!(now["mode"], "primary");
    assert_eq!(now["epoch"], 1);
    let reason = now["last_failover"]["reason"].as_str().unwrap();
    assert!(reason.contains("failed 3 consecutive heartbeats"), "{reason}");
    assert_eq!(now["last_failover"]["actor"], "heartbeat");
    let log = b.ha_log();
    assert!(log.contains("FAILOVER: primary"), "{log}");
    assert!(log.contains("failed (1 of 3)") && log.contains("failed (2 of 3)"), "{log}");
    // Devices go on, on the new primary, with the data it replicated.
    let token = coresh::coredb::generate::token_for(42, 5);
    assert_eq!(db.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":1}"#).status, 200);
}

#[test]
fn a_live_status_page_prevents_a_failover_when_only_ssh_fails() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    let db = standby_of(&a, &da, &b, "promote");
    // The primary stops trusting the secondary: SSH probes fail, the page still answers.
    a.ha(&["no trusted-host core-b"]).expect_code(0);
    db.eventually("the heartbeat sees SSH fail", |_| b.ha_log().contains("the primary is alive by its status page"));
    std::thread::sleep(Duration::from_secs(5));
    let now = b.failover_json();
    assert_eq!(now["mode"], "secondary", "{now}");
    assert!(b.ha_log().contains("does not trust this node's key"));
    assert!(!b.ha_log().contains("FAILOVER"));
}

#[test]
fn keep_standby_reports_and_stays_standby() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    let db = standby_of(&a, &da, &b, "keep-standby");
    da.kill_9();
    db.eventually("the failure is reported", |_| {
        b.ha_log().contains("on-failure keep-standby: this node stays standby")
    });
    assert_eq!(b.failover_json()["mode"], "secondary");
    assert_eq!(db.get("/hastatus.html").body, "MOBILEIRON-STATUS: OK (Mode: Standby)");
}

#[test]
fn an_old_primary_that_comes_back_is_stale_until_recovered() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "100", "100");
    a.ha(&["service enable"]).expect_code(0);
    let da = a.serve();
    pair(&a, &da, &b);
    let db = b.serve();
    // The primary watches the secondary at its daemon's address.
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    sync(&b, &da).expect_code(0);
    b.follow(&da.ssh.to_string(), "promote");
    wait_for_heartbeat(&b, &db);
    da.kill_9();
    db.eventually("the secondary takes over", |d| d.get("/hastatus.html").body.contains("Mode: Primary"));

    // The old primary returns, still believing it is primary; its notifications go to
    // a real SMTP server.
    let port = common::free_port();
    let smtp = common::smtp::SmtpServer::start(a.path(), port);
    common::smtp::configure(&a, port);
    let da = a.serve();
    da.eventually("the old primary learns of the newer one", |d| {
        d.get("/hastatus.html").body == "MOBILEIRON-STATUS: ERROR (Mode: Stale)"
    });
    let shown = a.run(&["show failover"]).stdout;
    assert!(
        shown.contains("STALE PRIMARY") && shown.contains("is primary with epoch 1, this node has epoch 0"),
        "{shown}"
    );
    assert!(a.ha_log().contains("STALE PRIMARY"));
    let mails = smtp.wait_for("the stale primary mail", |m| m.iter().any(|m| m.contains("STALE PRIMARY")));
    let stale = mails.iter().find(|m| m.contains("STALE PRIMARY")).unwrap();
    assert!(stale.contains("is primary with epoch 1, this node has epoch 0"), "{stale}");
    assert!(stale.contains("Recover it with 'failover mode secondary'"), "{stale}");
    let token = coresh::coredb::generate::token_for(42, 5);
    let refused = da.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":1}"#);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.body.contains("stale primary"), "{}", refused.body);

    // Manual recovery, as the guide says: secondary, then sync from the new primary.
    a.run(&["enable", "failover mode secondary"]).expect_code(0);
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    b.trust("core-a", &a.local_key()).expect_code(0);
    let run = a.run(&["enable", &format!("failover sync {}", db.ssh)]);
    run.expect_code(0);
    a.assert_same_rows(&b);
    assert!(a.failover_json()["stale"].is_null());
}

#[test]
fn a_secondary_refuses_a_primary_older_than_the_one_it_synced_from() {
    let (a, b, c) = (TestNode::new(), TestNode::new(), TestNode::new());
    generate(&a, "50", "50");
    // c is a primary at a later epoch (promoted twice); b syncs from it first.
    common::toggle_to_epoch_2(&c);
    let dc = c.serve();
    pair(&c, &dc, &b);
    sync(&b, &dc).expect_code(0);
    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    a.trust("core-b", &b.local_key()).expect_code(0);
    let run = sync(&b, &da);
    run.expect_code(1);
    assert!(run.stderr.contains("older than epoch 2 this node last synced from"), "{}", run.stderr);
}

#[test]
fn writes_an_old_primary_took_after_the_failover_point_are_kept_not_lost() {
    let common::Pair { a, b, da } = common::synced_pair("100", "100");
    let db = b.serve();
    // The primary takes writes the secondary never gets, then the secondary takes over.
    let checkin = |d: &Daemon, device: u64, seq: u64| {
        let token = coresh::coredb::generate::token_for(42, device);
        assert_eq!(d.post("/api/v1/devices/checkin", Some(&token), &format!(r#"{{"seq":{seq}}}"#)).status, 200);
    };
    for device in 1..=3 {
        checkin(&da, device, 7000 + device);
    }
    b.run(&["enable", "failover mode primary"]).expect_code(0);
    db.eventually("the new primary serves", |d| d.get("/hastatus.html").body.contains("Mode: Primary"));
    checkin(&db, 50, 1);
    checkin(&db, 51, 1);

    // Manual resume on the old primary.
    a.run(&["enable", "failover mode secondary"]).expect_code(0);
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    b.trust("core-a", &a.local_key()).expect_code(0);
    let run = a.run(&["enable", &format!("failover sync {}", db.ssh)]);
    run.expect_code(0);
    assert!(run.stdout.contains("% 3 changes (6 rows) this node made were not on"), "{}", run.stdout);
    a.assert_same_rows(&b);
    let history: serde_json::Value = serde_json::from_str(&a.run(&["show sync history | json"]).stdout).unwrap();
    assert!(history[0]["detail"].as_str().unwrap().contains("KEPT 3 changes (6 rows)"), "{history}");

    // Listed, and the file holds every row as it was written.
    let shown = a.run(&["show failover divergence"]).stdout;
    assert!(shown.contains("devices: +0 ~3 -0, events: +3 ~0 -0"), "{shown}");
    let kept: serde_json::Value = serde_json::from_str(&a.run(&["show failover divergence | json"]).stdout).unwrap();
    let file = a.data_dir().join(kept[0]["file"].as_str().unwrap());
    let text = std::fs::read_to_string(file).unwrap();
    for seq in 7001..=7003 {
        assert!(text.contains(&format!("seq\\\":{seq}")), "event {seq} missing from the kept file:\n{text}");
    }
}

#[test]
fn a_clock_offset_past_the_threshold_is_shown_and_logged() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.daemon().env("CORESH_TEST_CLOCK_SKEW_MS", "5000").start();
    let db = standby_of(&a, &da, &b, "promote");
    let offset = b.failover_json()["peers"][0]["offset_ms"].as_i64().unwrap();
    assert!((4000..6000).contains(&offset), "measured {offset} ms");
    let shown = b.run(&["show failover"]).stdout;
    assert!(shown.contains("WARNING") && shown.contains("set both nodes' clocks (NTP)"), "{shown}");
    db.eventually("the HA log warns once", |_| b.ha_log().contains("past 2000 ms: the guide requires the same time"));
    std::thread::sleep(Duration::from_millis(2500));
    let log = b.ha_log();
    assert!(log.matches("heartbeat to").count() >= 3, "{log}");
    assert_eq!(log.matches("past 2000 ms").count(), 1, "warned once, not at every heartbeat:\n{log}");
}

#[test]
fn show_failover_names_a_version_mismatch_and_the_node_to_upgrade() {
    let (a, b) = (TestNode::new(), TestNode::new());
    a.run(&["enable", "configure terminal", "hostname core-a"]).expect_code(0);
    let da = a.daemon().env("CORESH_TEST_REPORTED_VERSION", "0.0.1").start();
    pair(&a, &da, &b);
    let db = b.serve();
    b.follow(&da.ssh.to_string(), "keep-standby");
    db.eventually("the heartbeat sees the primary's version", |_| {
        b.failover_json()["version_mismatches"].as_array().is_some_and(|v| !v.is_empty())
    });
    let shown = b.run(&["show failover"]).stdout;
    let ours = env!("CARGO_PKG_VERSION");
    assert!(
        shown.contains(&format!("version mismatch: this node runs coresh {ours}, core-a runs coresh 0.0.1"))
            && shown.contains("(upgrade core-a); replication stops until then"),
        "{shown}"
    );
}
