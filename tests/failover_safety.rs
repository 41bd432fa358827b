//! Failover that never fires wrongly, between real daemons on loopback: a heartbeat that
//! a configuration error keeps from telling (not trusted, a wrong host key, our key
//! refused, another release) raises one alarm and never promotes; a standby without
//! recent data of its primary stays standby; epochs agree across two failovers in a row
//! and past maintenance toggles, so exactly one primary takes writes; a sync never
//! replaces the data of a node promoted while it ran; the status pages in every state;
//! and the status page over TLS keeps a primary alive when only its SSH path is cut.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::proxy::Proxy;
use common::{Daemon, TestNode, generate, pair, sync, until};

/// Mails of `event` in `node`'s outbox (queued, held or sent).
fn mails_of(node: &TestNode, event: &str) -> usize {
    let out: serde_json::Value = serde_json::from_str(&node.run(&["show notifications | json"]).stdout).unwrap();
    out.as_array().unwrap().iter().filter(|m| m["event"] == event).count()
}

/// Notifications to an SMTP port nothing listens on: mails stay in the outbox, countable.
fn notify_nowhere(node: &TestNode) {
    common::smtp::configure(node, common::free_port());
}

fn alarm(node: &TestNode) -> String {
    node.failover_json()["heartbeat_alarm"].as_str().unwrap_or_default().to_string()
}

fn reaches_its_primary(node: &TestNode) -> bool {
    node.reaches_a_peer()
}

fn checkin(d: &Daemon, device: u64) -> u16 {
    let token = coresh::coredb::generate::token_for(42, device);
    d.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":1}"#).status
}

#[test]
fn a_misconfigured_heartbeat_raises_one_alarm_and_never_promotes() {
    let a = TestNode::new();
    generate(&a, "20", "20");
    let da = a.serve();
    let primary = da.ssh.to_string();
    let nodes: Vec<TestNode> = (0..5).map(|_| TestNode::new()).collect();
    let [untrusted, wrong_key, refused, changed, control] = &nodes[..] else { unreachable!() };
    // Not trusted at all; trusted with another node's key; trusted, but the primary does
    // not trust it back; trusted and working until its key entry is changed; and a
    // control that is set up right.
    wrong_key.trust(&primary, &control.local_key()).expect_code(0);
    refused.trust(&primary, &a.local_key()).expect_code(0);
    for (name, node) in [("changed", changed), ("control", control)] {
        node.trust(&primary, &a.local_key()).expect_code(0);
        a.trust(name, &node.local_key()).expect_code(0);
    }
    control.run(&["enable", "failover mode secondary"]).expect_code(0);
    sync(control, &da).expect_code(0);
    let daemons: Vec<Daemon> = nodes
        .iter()
        .map(|n| {
            notify_nowhere(n);
            n.follow(&primary, "promote");
            n.serve()
        })
        .collect();
    until("the changed node's heartbeat works", || reaches_its_primary(changed));
    changed.trust(&primary, &refused.local_key()).expect_code(0);

    for (node, why) in [
        (untrusted, "is not a trusted host"),
        (wrong_key, "not the trusted key"),
        (refused, "does not trust this node's key"),
        (changed, "not the trusted key"),
    ] {
        until(why, || alarm(node).contains(why));
        let shown = node.run(&["show failover"]).stdout;
        assert!(shown.contains("Heartbeat          : MISCONFIGURED: ssh: "), "{shown}");
    }
    assert!(alarm(control).is_empty(), "{}", alarm(control));
    let report = changed.run(&["enable", &format!("failover validate {primary}")]);
    report.expect_code(1);
    assert!(report.stdout.contains("Heartbeat: MISCONFIGURED: ssh: "), "{}", report.stdout);

    // Several more probes: still one alarm in the HA log and one mail.
    std::thread::sleep(Duration::from_secs(3));
    let log = untrusted.ha_log();
    assert_eq!(log.matches("HEARTBEAT MISCONFIGURED").count(), 1, "{log}");
    assert!(log.contains("not counted as a failure"), "{log}");
    assert_eq!(mails_of(untrusted, "heartbeat-misconfigured"), 1);

    // The primary dies: the control takes over, the misconfigured ones do not.
    da.kill_9();
    until("the control takes over", || control.failover_json()["mode"] == "primary");
    std::thread::sleep(Duration::from_secs(4));
    for node in [untrusted, wrong_key, refused, changed] {
        assert_eq!(node.failover_json()["mode"], "secondary");
        assert!(!node.ha_log().contains("FAILOVER:"), "{}", node.ha_log());
    }
    drop(daemons);
}

#[test]
fn a_version_mismatch_is_an_alarm_not_a_failure() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.daemon().env("CORESH_TEST_REPORTED_VERSION", "0.0.1").start();
    pair(&a, &da, &b);
    b.follow(&da.ssh.to_string(), "promote");
    let _db = b.serve();
    until("the mismatch is raised", || alarm(&b).contains("version mismatch"));
    assert!(b.ha_log().contains("HEARTBEAT MISCONFIGURED"));
    assert_eq!(b.failover_json()["mode"], "secondary");
}

#[test]
fn a_standby_without_recent_data_of_its_primary_stays_standby() {
    let (a, never, old) = (TestNode::new(), TestNode::new(), TestNode::new());
    generate(&a, "20", "20");
    let da = a.serve();
    let primary = da.ssh.to_string();
    for (name, node) in [("never", &never), ("old", &old)] {
        node.trust(&primary, &a.local_key()).expect_code(0);
        a.trust(name, &node.local_key()).expect_code(0);
    }
    old.run(&["enable", "failover mode secondary"]).expect_code(0);
    sync(&old, &da).expect_code(0);
    let mut daemons = Vec::new();
    for node in [&never, &old] {
        notify_nowhere(node);
        node.follow(&primary, "promote");
        daemons.push(node.serve());
    }
    old.ha(&["heartbeat max-staleness 2 seconds"]).expect_code(0);
    until("both heartbeats work", || reaches_its_primary(&never) && reaches_its_primary(&old));
    std::thread::sleep(Duration::from_millis(3000));
    let shown = old.run(&["show failover"]).stdout;
    assert!(shown.contains("Failover readiness : NOT READY: its last sync from"), "{shown}");

    da.kill_9();
    for (node, why) in
        [(&never, "it has never completed a sync from"), (&old, "longer ago than heartbeat max-staleness 2 seconds")]
    {
        until(why, || node.ha_log().contains("FAILOVER REFUSED"));
        let log = node.ha_log();
        assert!(log.contains(why), "{log}");
        assert!(log.contains("this node stays standby"), "{log}");
    }
    std::thread::sleep(Duration::from_secs(3));
    let history: serde_json::Value =
        serde_json::from_str(&never.run(&["show failover history | json"]).stdout).unwrap();
    let refused: Vec<_> = history.as_array().unwrap().iter().filter(|h| h["event"] == "failover-refused").collect();
    assert_eq!(refused.len(), 1, "said once, not at every probe: {history}");
    assert!(refused[0]["reason"].as_str().unwrap().contains("never completed a sync"), "{history}");
    assert_eq!(mails_of(&never, "failover-refused"), 1);
    for node in [&never, &old] {
        assert_eq!(node.failover_json()["mode"], "secondary");
        assert!(!node.ha_log().contains("FAILOVER:"));
    }

    // A person can still promote them, told what they lack.
    let run = never.run(&["enable", "failover mode primary"]);
    run.expect_code(0);
    assert!(run.stdout.contains("This node is now primary (epoch 1)"), "{}", run.stdout);
    assert!(run.stderr.contains("% Warning: Promoted by hand: it has never completed a sync from"), "{}", run.stderr);
    let run = old.run(&["enable", "failover mode primary"]);
    run.expect_code(0);
    assert!(run.stderr.contains("longer ago than heartbeat max-staleness 2 seconds"), "{}", run.stderr);
}

/// A primary (HA on, watching its peers) on `node`, and `standby` following it, synced,
/// with the primary watching the standby's daemon; returns both daemons.
fn watched_pair(node: &TestNode, standby: &TestNode) -> (Daemon, Daemon) {
    node.ha(&["heartbeat interval 1", "service enable"]).expect_code(0);
    let dn = node.serve();
    pair(node, &dn, standby);
    let ds = standby.serve();
    node.trust(&ds.ssh.to_string(), &standby.local_key()).expect_code(0);
    sync(standby, &dn).expect_code(0);
    standby.follow(&dn.ssh.to_string(), "promote");
    until("the heartbeat reaches the primary", || reaches_its_primary(standby));
    (dn, ds)
}

fn epoch(node: &TestNode) -> u64 {
    node.failover_json()["epoch"].as_u64().unwrap()
}

/// Exactly one of the two daemons takes device writes, and it is `serving`.
fn one_writable_primary(serving: &Daemon, stale: &Daemon) {
    stale.eventually("the other node reports itself stale", |d| d.get("/hastatus.html").body.contains("Mode: Stale"));
    assert_eq!(checkin(stale, 7), 503, "the stale node takes no writes");
    assert_eq!(checkin(serving, 7), 200, "the current primary takes them");
    assert!(serving.get("/hastatus.html").body.ends_with("(Mode: Primary)"));
}

#[test]
fn two_failovers_in_a_row_leave_one_writable_primary() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "20", "20");
    let (da, db) = watched_pair(&a, &b);
    da.kill_9();
    until("b takes over", || b.failover_json()["mode"] == "primary");
    assert_eq!(epoch(&b), 1);

    // a comes back as b's standby (recovered the guide's way) ...
    a.run(&["enable", "failover mode secondary"]).expect_code(0);
    b.trust("core-a", &a.local_key()).expect_code(0);
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    sync(&a, &db).expect_code(0);
    a.follow(&db.ssh.to_string(), "promote");
    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    until("a's heartbeat reaches b", || reaches_its_primary(&a));
    // ... and b fails in turn: a takes over at an epoch past every one it has seen.
    db.kill_9();
    until("a takes over", || a.failover_json()["mode"] == "primary");
    assert_eq!(epoch(&a), 2, "{}", a.failover_json());

    // b returns: it is stale, and a alone takes writes.
    let db = b.serve();
    one_writable_primary(&da, &db);
    assert!(a.failover_json()["stale"].is_null());
}

#[test]
fn a_returning_primary_with_a_higher_epoch_from_maintenance_is_stale() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "20", "20");
    // Maintenance toggles took a to epoch 2.
    common::toggle_to_epoch_2(&a);
    assert_eq!(epoch(&a), 2);
    let (da, db) = watched_pair(&a, &b);
    da.kill_9();
    until("b takes over", || b.failover_json()["mode"] == "primary");
    assert_eq!(epoch(&b), 3, "past the epoch it synced from");

    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    one_writable_primary(&db, &da);
    std::thread::sleep(Duration::from_secs(2));
    assert!(b.failover_json()["stale"].is_null(), "the new primary never marks itself stale");
}

#[test]
fn a_sync_never_replaces_the_data_of_a_node_promoted_while_it_ran() {
    let common::Pair { a, b, da } = common::paired("50", "50");
    let key = a.local_key();
    let child = b
        .command()
        .args(["-c", "enable", "-c", &format!("failover sync {} full", da.ssh)])
        .env("CORESH_TEST_PAUSE_BEFORE_APPLY_MS", "3000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until("the sync has received everything", || b.run(&["show sync history | json"]).stdout.contains("\"running\""));
    std::thread::sleep(Duration::from_millis(1500));
    // Promoted meanwhile (by hand here; the heartbeat's promotion is the same step), and
    // a write taken as primary.
    b.run(&["enable", "failover mode primary"]).expect_code(0);
    b.run(&["enable", "configure terminal", &format!("username keeper key {key}")]).expect_code(0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this node became primary (active) during the sync: nothing was replaced"), "{err}");
    let users = b.run(&["show users"]).stdout;
    assert!(users.contains("keeper"), "the new primary's write survived: {users}");
    assert_eq!(b.failover_json()["mode"], "primary");
    let devices: serde_json::Value = serde_json::from_str(&b.run(&["show core summary | json"]).stdout).unwrap();
    assert_eq!(devices["devices"], 0, "nothing of the primary's data came in: {devices}");
}

#[test]
fn the_status_pages_in_every_state() {
    let node = TestNode::new();
    let d = node.serve();
    let pages = |d: &Daemon| {
        let (s, h) = (d.get("/status/status.html"), d.get("/hastatus.html"));
        (s.status, s.body, h.status, h.body)
    };
    let ok =
        |mode: &str| (200, "MOBILEIRON-STATUS: OK".to_string(), 200, format!("MOBILEIRON-STATUS: OK (Mode: {mode})"));
    assert_eq!(pages(&d), ok("Primary"));
    // A maintenance drain: healthy, still the primary (traffic must not move).
    node.run(&["enable", "failover client-connection disable"]).expect_code(0);
    d.eventually("the drain is in force", |d| checkin(d, 1) == 503);
    assert_eq!(pages(&d), ok("Primary"));
    node.run(&["enable", "failover client-connection enable"]).expect_code(0);
    // A standby: healthy, the guide's failover target.
    node.run(&["enable", "failover mode secondary"]).expect_code(0);
    d.eventually("the node is a standby", |d| d.get("/hastatus.html").body.contains("Standby"));
    assert_eq!(pages(&d), ok("Standby"));
    // An active secondary serves as primary.
    node.ha(&["node-status active"]).expect_code(0);
    d.eventually("the node is active", |d| d.get("/hastatus.html").body.contains("Primary"));
    assert_eq!(pages(&d), ok("Primary"));
}

fn write_cert(node: &TestNode) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["core-a.example.com".to_string()]).unwrap();
    let (cert, key) = (node.path().join("server.pem"), node.path().join("server.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

#[test]
fn the_status_page_over_tls_keeps_a_primary_alive_when_only_ssh_is_cut() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "20", "20");
    let (cert, key) = write_cert(&a);
    let da = a.daemon().args(&["--tls-cert", &cert, "--tls-key", &key]).start();
    // The SSH path goes through a link the test can cut; the status page is reached
    // directly, over HTTPS with a self-signed certificate the primary advertised.
    let link = Proxy::start(da.ssh);
    let primary = link.addr.to_string();
    b.trust(&primary, &a.local_key()).expect_code(0);
    a.trust("core-b", &b.local_key()).expect_code(0);
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    b.run(&["enable", &format!("failover sync {primary}")]).expect_code(0);
    b.follow(&primary, "promote");
    let _db = b.serve();
    until("the heartbeat reaches the primary", || reaches_its_primary(&b));
    let peer = b.failover_json()["peers"][0].clone();
    assert!(peer["status_url"].as_str().unwrap().starts_with("https://127.0.0.1:"), "{peer}");
    assert!(peer["status_cert"].as_str().is_some_and(|c| c.len() == 64), "{peer}");

    link.cut();
    until("the cut is seen", || b.ha_log().contains("the primary is alive by its status page"));
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.failover_json()["mode"], "secondary", "{}", b.ha_log());
    assert!(!b.ha_log().contains("FAILOVER"), "{}", b.ha_log());
    assert!(alarm(&b).is_empty(), "a cut link is no configuration error: {}", alarm(&b));

    // When the primary itself dies, both signals fail and the secondary takes over.
    da.kill_9();
    until("the secondary takes over", || b.failover_json()["mode"] == "primary");
}
