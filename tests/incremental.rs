//! Incremental syncs between real daemons over SSH on loopback: after the first full
//! copy only the changes move, the copy stays exact row by row, a DR node follows the
//! secondary's log, and whatever the changes cannot cover (a tampered or diverged
//! secondary, a kill -9 mid-apply) ends in old or new data and a sync that completes.

mod common;

use coresh::coredb::generate::token_for;
use coresh::coredb::{CheckIn, token_hash};

use common::{TestNode, kill_9_during_syncs, pair, sync};

/// Checks in generated devices `ids` on `node`'s Core data, `per_tx` to a transaction,
/// through the same write path the daemon uses (so they enter the change log, as this
/// node's writes).
fn traffic(node: &TestNode, ids: std::ops::Range<u64>, per_tx: usize) {
    let mut opened = coresh::node::Node::open(&node.data_dir()).unwrap();
    let db = opened.core().unwrap();
    let ids: Vec<u64> = ids.collect();
    for chunk in ids.chunks(per_tx) {
        db.write(|w| {
            for &i in chunk {
                let report = CheckIn { os_version: Some("18.2".into()), seq: Some(i), battery: None };
                w.check_in(&token_hash(&token_for(42, i)), &report, "2026-11-26T12:00:00Z")?;
            }
            Ok::<_, coresh::coredb::DeviceError>(())
        })
        .unwrap();
    }
}

fn history(node: &TestNode) -> serde_json::Value {
    serde_json::from_str(&node.run(&["show sync history | json"]).stdout).unwrap()
}

#[test]
fn after_the_first_full_copy_only_the_changes_move() {
    let common::Pair { a, b, da } = common::paired("2000", "20000");
    let first = sync(&b, &da);
    first.expect_code(0);
    assert!(first.stdout.contains("completed: full copy, because"), "{}", first.stdout);
    let full_bytes = history(&b)[0]["bytes"].as_i64().unwrap();

    // Device traffic through the daemon and straight into the Core data.
    for i in 0..5 {
        assert_eq!(da.post("/api/v1/devices/checkin", Some(&token_for(42, i)), r#"{"seq":9}"#).status, 200);
    }
    traffic(&a, 100..300, 50);
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("completed: changes "), "{}", run.stdout);
    b.assert_same_rows(&a);
    assert_eq!(a.checksum(), b.checksum());
    let h = history(&b);
    assert_eq!(h[0]["kind"], "incremental");
    assert_eq!(h[0]["result"], "success");
    // 205 check-ins: a device row and an event each.
    assert_eq!(h[0]["rows"], 410);
    let bytes = h[0]["bytes"].as_i64().unwrap();
    assert!(bytes * 10 < full_bytes, "changes moved {bytes} bytes, the full copy {full_bytes}");

    let again = sync(&b, &da);
    assert!(again.stdout.contains("completed: already up to date"), "{}", again.stdout);
    assert_eq!(b.run(&["show failover divergence"]).stdout, "No writes of this node were replaced by a sync.\n");

    let forced = b.run(&["enable", &format!("failover sync {} full", da.ssh)]);
    forced.expect_code(0);
    // From the primary's checked copy (kept after the first full copy) and the changes
    // after it.
    assert!(
        forced.stdout.contains("completed: full copy (sent as its checked copy at change ")
            && !forced.stdout.contains("because"),
        "{}",
        forced.stdout
    );
    assert_eq!(history(&b)[0]["kind"], "full");

    // After a full copy, changes follow again.
    traffic(&a, 300..310, 5);
    assert!(sync(&b, &da).stdout.contains("completed: changes "));
    b.assert_same_rows(&a);
}

#[test]
fn a_dr_node_follows_the_secondarys_log() {
    let common::Pair { a, b, da } = common::synced_pair("500", "2000");
    let c = TestNode::new();
    let db = b.serve();
    pair(&b, &db, &c);
    sync(&c, &db).expect_code(0);
    traffic(&a, 0..100, 10);
    assert!(sync(&b, &da).stdout.contains("completed: changes "));
    let run = sync(&c, &db);
    run.expect_code(0);
    assert!(run.stdout.contains("completed: changes "), "{}", run.stdout);
    c.assert_same_rows(&a);
    assert_eq!(c.checksum(), a.checksum());
}

/// Changes one device row of `node` behind coresh's back (no change log entry).
fn tamper(node: &TestNode, sql: &str) {
    let conn = rusqlite::Connection::open(node.data_dir().join("core.db")).unwrap();
    assert_eq!(conn.execute(sql, []).unwrap(), 1);
}

#[test]
fn a_conflict_or_a_checksum_mismatch_falls_back_to_a_full_copy() {
    let common::Pair { a, b, da } = common::synced_pair("300", "1000");

    // A column the check-in changes: the changeset's old value does not match.
    tamper(&b, "UPDATE devices SET checkins = 999 WHERE id = 8");
    traffic(&a, 7..8, 1);
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("full copy, because changes not applied: changes "), "{}", run.stdout);
    assert!(run.stdout.contains("conflict with this node's data: SQLITE_CHANGESET_DATA"), "{}", run.stdout);
    assert!(history(&b)[0]["detail"].as_str().unwrap().contains("conflict with this node's data"));
    b.assert_same_rows(&a);

    // A column the check-in leaves alone: applies cleanly, but the sums differ.
    tamper(&b, "UPDATE devices SET model = 'tampered' WHERE id = 8");
    traffic(&a, 7..8, 1);
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("full copy, because changes not applied: after the changes"), "{}", run.stdout);
    b.assert_same_rows(&a);
}

#[test]
fn a_secondary_that_wrote_on_its_own_gets_a_full_copy_that_says_why() {
    let common::Pair { a, b, da } = common::synced_pair("300", "1000");
    // Both nodes take traffic (as after a failover both ways): the logs diverge.
    traffic(&a, 0..3, 1);
    traffic(&b, 10..15, 1);
    let run = sync(&b, &da);
    run.expect_code(0);
    assert!(run.stdout.contains("full copy, because this node is at change"), "{}", run.stdout);
    assert!(run.stdout.contains("% 5 changes (10 rows) this node made were not on"), "{}", run.stdout);
    b.assert_same_rows(&a);
    traffic(&b, 10..12, 1);
    traffic(&a, 20..25, 1);
    let run = sync(&b, &da);
    assert!(run.stdout.contains("full copy, because the data diverged: at change"), "{}", run.stdout);
    assert!(run.stdout.contains("% 2 changes (4 rows) this node made were not on"), "{}", run.stdout);
    b.assert_same_rows(&a);
    let kept: serde_json::Value = serde_json::from_str(&b.run(&["show failover divergence | json"]).stdout).unwrap();
    assert_eq!(kept.as_array().unwrap().len(), 2, "{kept}");
}

#[test]
fn kill_9_while_changes_are_applied_leaves_old_or_new_data() {
    let common::Pair { a, b, da } = common::synced_pair("20000", "20000");
    traffic(&a, 0..20000, 500);
    let (old, new) = (b.checksum(), a.checksum());
    let saw_old = kill_9_during_syncs(&b, &da, &[0, 40, 80, 130, 200, 280, 380, 500, 650, 850], &old, &new);
    assert!(saw_old, "no kill landed before the changes were committed");
    let run = sync(&b, &da);
    run.expect_code(0);
    b.assert_same_rows(&a);
    assert_eq!(b.checksum(), new);
    // The killed runs asked for changes and are shown as cut short.
    assert!(b.run(&["show sync history"]).stdout.contains("interrupted"));
}

#[test]
fn the_primary_keeps_serving_devices_while_it_is_copied() {
    let common::Pair { a, b, da } = common::paired("20000", "200000");
    let mut child = b
        .command()
        .args(["-c", "enable", "-c", &format!("failover sync {}", da.ssh)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Check-ins go on, answered, until the sync has finished.
    let mut served = 0;
    let mut during = 0;
    loop {
        let running = child.try_wait().unwrap().is_none();
        let status = da.post("/api/v1/devices/checkin", Some(&token_for(42, served % 20000)), r#"{"seq":1}"#).status;
        assert_eq!(status, 200, "check-in {served} while the primary was copied");
        served += 1;
        during += u64::from(running);
        if !running {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(during > 0, "no check-in happened during the sync");
    // What came in meanwhile follows with the next sync.
    let run = sync(&b, &da);
    assert!(run.stdout.contains("completed: changes "), "{}", run.stdout);
    b.assert_same_rows(&a);
}
