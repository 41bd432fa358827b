//! Full syncs between real daemons over SSH on loopback: the copy is exact (content
//! checksums and counts), a daemon on the secondary sees the new data, the guide's
//! refusals hold, a kill -9 at any point leaves old or new data and the next sync works,
//! and a DR node can replicate from the secondary.

mod common;

use std::process::Stdio;

use common::{TestNode, generate, kill_9_during_syncs, pair, sync};

#[test]
fn a_full_sync_copies_the_core_data_exactly() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "500", "3000");
    a.run(&["enable", "configure terminal", "enrollment-secret enroll-me-please"]).expect_code(0);
    let da = a.serve();
    pair(&a, &da, &b);
    let db = b.serve();
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("completed: full copy"), "{}", run.stdout);
    assert!(run.stdout.contains("Content checksum verified"), "{}", run.stdout);
    assert_eq!(a.checksum(), b.checksum());
    let summary = |n: &TestNode| n.run(&["show core summary | json"]).stdout;
    assert_eq!(summary(&a), summary(&b));
    let json: serde_json::Value = serde_json::from_str(&b.run(&["show sync history | json"]).stdout).unwrap();
    assert_eq!(json[0]["result"], "success");
    assert_eq!(json[0]["kind"], "full");
    assert!(json[0]["bytes"].as_i64().unwrap() > 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&b.run(&["show failover | json"]).stdout).unwrap()["last_sync"]["result"],
        "success"
    );

    // Device traffic on the primary, then another sync: the secondary follows.
    let token = coresh::coredb::generate::token_for(42, 7);
    assert_eq!(da.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":1}"#).status, 200);
    assert_ne!(a.checksum(), b.checksum());
    sync(&b, &da).expect_code(0);
    assert_eq!(a.checksum(), b.checksum());

    // The secondary's running daemon sees the copied data: promoted, it accepts a
    // generated device's token it never had before the sync.
    b.run(&["enable", "failover mode primary"]).expect_code(0);
    db.eventually("the promoted secondary serves devices", |d| {
        d.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":2}"#).status == 200
    });
}

#[test]
fn the_guides_refusals() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "50", "100");
    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    a.trust("core-b", &b.local_key()).expect_code(0);
    let before = b.checksum();

    let run = sync(&b, &da);
    run.expect_code(1);
    assert!(run.stderr.contains("this node is primary: a node in primary mode never replicates"), "{}", run.stderr);

    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    b.ha(&["node-status active"]).expect_code(0);
    let run = sync(&b, &da);
    run.expect_code(1);
    assert!(run.stderr.contains("node status is active"), "{}", run.stderr);
    b.ha(&["node-status standby"]).expect_code(0);

    let stranger = TestNode::new().serve();
    let run = sync(&b, &stranger);
    run.expect_code(1);
    assert!(run.stderr.contains("is not a trusted host"), "{}", run.stderr);

    // Another sync holds the lock.
    let lock = coresh::replication::lock::SyncLock::take(&b.data_dir(), "core-x:22").unwrap();
    let run = sync(&b, &da);
    run.expect_code(1);
    assert!(run.stderr.contains("a sync is already running (from core-x:22"), "{}", run.stderr);
    drop(lock);
    assert_eq!(b.checksum(), before, "no refused sync changed anything");
}

#[test]
fn a_version_mismatch_is_refused_with_both_versions_and_nothing_changes() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "50", "100");
    let da = a.daemon().env("CORESH_TEST_REPORTED_VERSION", "0.0.1").start();
    pair(&a, &da, &b);
    let before = b.checksum();
    let run = sync(&b, &da);
    run.expect_code(1);
    let expected = format!(
        "this node runs coresh {}, {} runs coresh 0.0.1; replication needs the same release",
        env!("CARGO_PKG_VERSION"),
        da.ssh
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert_eq!(b.checksum(), before);
    let json: serde_json::Value = serde_json::from_str(&b.run(&["show sync history | json"]).stdout).unwrap();
    assert_eq!(json[0]["result"], "failed");
    assert!(json[0]["detail"].as_str().unwrap().contains("version mismatch"));
}

/// A sync of `b` from `da` after a killed one. The primary may still be sending the
/// killed puller its snapshot until its next write fails, and sends one snapshot to a
/// peer at a time: it says so, and a later try gets through.
fn sync_once_the_sender_is_free(b: &TestNode, da: &common::Daemon) -> common::Run {
    let mut run = sync(b, da);
    let started = std::time::Instant::now();
    while run.stderr.contains("a sync of this peer is already being sent") && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        run = sync(b, da);
    }
    run
}

#[test]
fn kill_9_during_a_sync_leaves_old_or_new_data_and_the_next_sync_works() {
    let common::Pair { a, b, da } = common::paired("20000", "200000");
    generate(&b, "10", "10");
    let old = b.checksum();
    let new = a.checksum();
    let saw_old = kill_9_during_syncs(&b, &da, &[0, 30, 60, 100, 150, 220, 300, 400, 550, 700], &old, &new);
    sync_once_the_sender_is_free(&b, &da).expect_code(0);
    assert_eq!(b.checksum(), new);
    let history = b.run(&["show sync history"]).stdout;
    if saw_old {
        assert!(history.contains("interrupted"), "a killed sync shows as interrupted:\n{history}");
    }
}

#[test]
fn kill_9_while_a_prepared_swap_waits_leaves_the_old_data() {
    // The full copy is already in the live data's WAL, uncommitted, while the sync waits
    // (held here before it applies, as it is while the checks end): a kill then leaves
    // the old data, whole, and the next sync works.
    let common::Pair { a, b, da } = common::paired("5000", "50000");
    generate(&b, "10", "10");
    let (old, new) = (b.checksum(), a.checksum());
    let wal = b.data_dir().join("core.db-wal");
    let mut child = b
        .command()
        .args(["-c", "enable", "-c", &format!("failover sync {} full", da.ssh)])
        .env("CORESH_TEST_PAUSE_BEFORE_APPLY_MS", "60000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Megabytes of it (B's own data is a few kilobytes; the copy is several megabytes).
    common::until("the copy is in the WAL, uncommitted", || std::fs::metadata(&wal).is_ok_and(|m| m.len() > 2 << 20));
    assert_eq!(b.checksum(), old, "nothing is committed before the sync applies");
    child.kill().unwrap();
    child.wait().unwrap();
    let conn = rusqlite::Connection::open(b.data_dir().join("core.db")).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    drop(conn);
    assert_eq!(b.checksum(), old, "the old data after the kill");
    sync_once_the_sender_is_free(&b, &da).expect_code(0);
    assert_eq!(b.checksum(), new);
}

#[test]
fn a_dr_node_replicates_from_the_secondary() {
    let common::Pair { a, b, da: _da } = common::synced_pair("300", "1000");
    let c = TestNode::new();
    let db = b.serve();
    pair(&b, &db, &c);
    let run = sync(&c, &db);
    run.expect_code(0);
    assert_eq!(c.checksum(), a.checksum());
}

fn atlas_checksum(node: &TestNode) -> String {
    let conn = rusqlite::Connection::open(node.data_dir().join("atlas.db")).unwrap();
    coresh::replication::snapshot::content_checksum(&conn).unwrap()
}

#[test]
fn atlas_data_is_replicated_only_when_enabled_on_both_nodes() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "20", "20");
    a.run(&["enable", "configure terminal", "hostname core-a", "atlas enable"]).expect_code(0);
    let da = a.serve();
    let token = coresh::coredb::generate::token_for(42, 3);
    da.eventually("Atlas records a check-in", |d| {
        assert_eq!(d.post("/api/v1/devices/checkin", Some(&token), r#"{"battery":55}"#).status, 200);
        std::fs::metadata(a.data_dir().join("atlas.db")).is_ok()
            && serde_json::from_str::<serde_json::Value>(&a.run(&["show core summary | json"]).stdout).unwrap()["atlas"]
                .as_u64()
                > Some(0)
    });
    pair(&a, &da, &b);

    // Atlas off on the secondary: skipped, and the history says why.
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("Atlas: skipped: Atlas is not enabled on this node"), "{}", run.stdout);
    assert!(!b.data_dir().join("atlas.db").exists());
    let history: serde_json::Value = serde_json::from_str(&b.run(&["show sync history | json"]).stdout).unwrap();
    assert!(history[0]["detail"].as_str().unwrap().contains("Atlas skipped: Atlas is not enabled on this node"));

    // On both: copied exactly.
    b.run(&["enable", "configure terminal", "atlas enable"]).expect_code(0);
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("Atlas: copied"), "{}", run.stdout);
    assert_eq!(atlas_checksum(&a), atlas_checksum(&b));

    // Off on the primary: skipped, named.
    a.run(&["enable", "configure terminal", "atlas disable"]).expect_code(0);
    da.eventually("the primary's daemon sees Atlas off", |_| {
        let run = sync(&b, &da);
        run.code == 0 && run.stdout.contains("Atlas: skipped: Atlas is not enabled on core-a")
    });
}

#[test]
fn an_interactive_sync_shows_its_progress() {
    let common::Pair { a: _a, b, da } = common::paired("2000", "20000");
    let mut cmd = b.command();
    cmd.env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(cmd, Some(60_000)).unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("enable").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line(&format!("failover sync {}", da.ssh)).unwrap();
    p.exp_string("Receiving the core snapshot: 100%").unwrap();
    p.exp_string("completed: full copy").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
    // Batch runs print no progress.
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(!run.stderr.contains("Receiving"), "{}", run.stderr);
}

#[test]
fn the_primary_dying_mid_sync_leaves_the_secondary_whole() {
    let common::Pair { a, b, da } = common::paired("20000", "200000");
    generate(&b, "10", "10");
    let (old, new) = (b.checksum(), a.checksum());
    let child = b
        .command()
        .args(["-c", "enable", "-c", &format!("failover sync {}", da.ssh)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    da.kill_9();
    let out = child.wait_with_output().unwrap();
    let now = b.checksum();
    assert!(now == old || now == new, "mixed data after the primary died");
    if now == old {
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("% Sync failed: "), "{out:?}");
        let history: serde_json::Value = serde_json::from_str(&b.run(&["show sync history | json"]).stdout).unwrap();
        assert_eq!(history[0]["result"], "failed");
    }
    // The primary comes back (on new ports): the next sync completes.
    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    sync(&b, &da).expect_code(0);
    assert_eq!(b.checksum(), new);
}

fn put_file(node: &TestNode, path: &str, content: &[u8]) {
    let full = node.data_dir().join("files").join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

#[test]
fn application_files_follow_by_content_hash() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "10", "10");
    put_file(&a, "certs/server.pem", b"-----BEGIN CERTIFICATE----- one");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    put_file(&a, "apps/app1.ipa", &big);
    let da = a.serve();
    pair(&a, &da, &b);
    put_file(&b, "certs/server.pem", b"an older certificate");
    put_file(&b, "apps/stale.apk", b"gone from the primary");

    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("Application files: 2 changed, 1 removed"), "{}", run.stdout);
    let manifest = |n: &TestNode| coresh::replication::files::manifest(&n.data_dir()).unwrap();
    assert_eq!(manifest(&a), manifest(&b));
    assert!(!b.data_dir().join("files/apps/stale.apk").exists());

    let run = sync(&b, &da);
    assert!(run.stdout.contains("Application files: 0 changed, 0 removed"), "{}", run.stdout);
    put_file(&a, "certs/server.pem", b"-----BEGIN CERTIFICATE----- two");
    let run = sync(&b, &da);
    assert!(run.stdout.contains("Application files: 1 changed, 0 removed"), "{}", run.stdout);
    assert_eq!(manifest(&a), manifest(&b));
}

/// The record of `node`'s checked copy, once it has one.
fn checked_record(node: &TestNode) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(node.data_dir().join("checked/core.json")).ok()?).ok()
}

#[test]
fn a_later_full_sync_sends_the_checked_copy_and_the_changes_after_it() {
    let common::Pair { a, b, da } = common::paired("300", "2000");
    let full = |node: &TestNode| node.run(&["enable", &format!("failover sync {} full", da.ssh)]);
    let first = full(&b);
    first.expect_code(0);
    assert!(!first.stdout.contains("checked copy"), "{}", first.stdout);
    common::until("the checked copy is kept", || checked_record(&a).is_some());
    let kept_at = checked_record(&a).unwrap()["head"]["seq"].as_i64().unwrap();
    let shown: serde_json::Value = serde_json::from_str(&a.run(&["show replication | json"]).stdout).unwrap();
    assert_eq!(shown["checked_copy"]["at_change"], kept_at, "{shown}");
    let text = a.run(&["show replication"]).stdout;
    assert!(text.contains("Checked copy") && text.contains(&format!("at change {kept_at}, taken")), "{text}");
    assert!(b.run(&["show replication | json"]).stdout.contains("\"checked_copy\": null"));
    for i in 0..5 {
        let token = coresh::coredb::generate::token_for(42, i);
        assert_eq!(da.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":3}"#).status, 200);
    }
    let head: i64 = rusqlite::Connection::open(a.data_dir().join("core.db"))
        .unwrap()
        .query_row("SELECT max(seq) FROM repl_log", [], |r| r.get(0))
        .unwrap();
    assert!(head > kept_at);
    let second = full(&b);
    second.expect_code(0);
    let said = format!("sent as its checked copy at change {kept_at} and changes {}..{head}", kept_at + 1);
    assert!(second.stdout.contains(&said), "{}", second.stdout);
    b.assert_same_rows(&a);
    assert_eq!(a.checksum(), b.checksum());
    // The live data is checked after such a sync and becomes the checked copy.
    common::until("the live data is checked and kept", || {
        checked_record(&a).is_some_and(|r| r["head"]["seq"].as_i64() == Some(head))
    });
    assert!(!a.ha_log().contains("DAMAGED"), "{}", a.ha_log());
    // The copy's bytes damaged on the sender's disk: refused, nothing replaced.
    let copy = a.data_dir().join("checked").join(checked_record(&a).unwrap()["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&copy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&copy, bytes).unwrap();
    let before = b.checksum();
    let third = full(&b);
    third.expect_refused("no longer has the bytes that were checked");
    assert_eq!(b.checksum(), before);
    assert!(checked_record(&a).is_none(), "the damaged copy is dropped");
    let fourth = full(&b);
    fourth.expect_code(0);
    assert!(!fourth.stdout.contains("checked copy"), "{}", fourth.stdout);
    b.assert_same_rows(&a);
}

#[test]
fn kill_9_during_a_full_sync_from_the_checked_copy_leaves_old_or_new_data() {
    let common::Pair { a, b, da } = common::paired("20000", "200000");
    let full = format!("failover sync {} full", da.ssh);
    b.run(&["enable", &full]).expect_code(0);
    common::until("the checked copy is kept", || checked_record(&a).is_some());
    for i in 0..50 {
        let token = coresh::coredb::generate::token_for(42, i);
        assert_eq!(da.post("/api/v1/devices/checkin", Some(&token), r#"{"seq":5}"#).status, 200);
    }
    let (old, new) = (b.checksum(), a.checksum());
    assert_ne!(old, new);
    common::kill_9_during(&b, &full, &[0, 30, 60, 100, 150, 220, 300, 400, 550, 700], &old, &new);
    let mut run = b.run(&["enable", &full]);
    let started = std::time::Instant::now();
    while run.stderr.contains("a sync of this peer is already being sent") && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        run = b.run(&["enable", &full]);
    }
    run.expect_code(0);
    assert!(run.stdout.contains("sent as its checked copy"), "{}", run.stdout);
    assert_eq!(b.checksum(), new);
    b.assert_same_rows(&a);
}
