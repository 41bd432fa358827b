//! The daemon's scheduler runs a sync at StartTime (UTC), with the real clock: the
//! start time is set to the next minute, so this test waits up to about a minute.

mod common;

use common::TestNode;

#[test]
fn the_daemon_syncs_at_the_start_time() {
    let (a, b) = (TestNode::new(), TestNode::new());
    a.run_with(&[], &["data", "generate", "--devices", "100", "--events", "500"], &[]).expect_code(0);
    let da = a.serve();
    a.ha(&[&format!("trusted-host core-b {}", b.local_key())]).expect_code(0);
    // The next minute, or the one after when this one is nearly over (the save must come
    // before the start time, or the schedule starts tomorrow).
    let now = chrono::Utc::now();
    let ahead = if chrono::Timelike::second(&now) >= 45 { 2 } else { 1 };
    let next_minute = (now + chrono::Duration::minutes(ahead)).format("%H:%M").to_string();
    let run = b.ha(&[
        &format!("trusted-host {} {}", da.ssh, a.local_key()),
        "mode secondary",
        &format!("primary-host {}", da.ssh),
        "sync run-every 1 hours",
        &format!("sync start-time {next_minute}"),
        "service enable",
    ]);
    run.expect_code(0);
    assert!(run.stdout.contains("Next sync: ") && run.stdout.contains(&format!("{next_minute} UTC")), "{}", run.stdout);
    let db = b.serve();
    let mut history = serde_json::Value::Null;
    for _ in 0..200 {
        history = serde_json::from_str(&b.run(&["show sync history | json"]).stdout).unwrap();
        if history.as_array().is_some_and(|h| !h.is_empty() && h[0]["result"] != "running") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    assert_eq!(history[0]["result"], "success", "{history}");
    assert!(history[0]["started_at"].as_str().unwrap().contains(&format!("T{next_minute}:")), "{history}");
    assert_eq!(a.checksum(), b.checksum());
    let failover: serde_json::Value = serde_json::from_str(&b.run(&["show failover | json"]).stdout).unwrap();
    assert_eq!(failover["last_sync"]["result"], "success");
    assert!(failover["next_sync"].as_str().is_some(), "the next run is an hour later: {failover}");
    assert!(db.stop().success());
}
