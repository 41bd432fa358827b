//! Kill -9 of the daemon under check-in load: after a restart, every check-in that was
//! acknowledged (HTTP 200) is in the Core data. Acknowledgement follows the commit.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::TestNode;

const SECRET: &str = "enroll-me-please";
const CLIENTS: u64 = 8;

#[test]
fn acknowledged_check_ins_survive_kill_9() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", &format!("enrollment-secret {SECRET}")]).expect_code(0);
    let d = node.serve();
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|i| {
            let body =
                format!(r#"{{"enrollment_secret":"{SECRET}","uuid":"crash-{i}","user":"u{i}","platform":"ios"}}"#);
            let r = d.post("/api/v1/devices/register", None, &body);
            assert_eq!(r.status, 201, "{}", r.body);
            serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["token"].as_str().unwrap().to_string()
        })
        .collect();
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = d.url("/api/v1/devices/checkin");
    let clients: Vec<_> = tokens
        .into_iter()
        .enumerate()
        .map(|(i, token)| {
            let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(std::time::Duration::from_secs(5)))
                    .build()
                    .into();
                for n in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let seq = i as u64 * 1_000_000 + n;
                    let sent = agent
                        .post(&url)
                        .header("authorization", &format!("Bearer {token}"))
                        .send(format!(r#"{{"seq":{seq}}}"#));
                    match sent {
                        Ok(resp) if resp.status() == 200 => {
                            acked.lock().unwrap().insert(seq);
                        }
                        _ => break, // the daemon is gone
                    }
                }
            })
        })
        .collect();
    // Let some load through, then pull the plug mid-stream.
    for _ in 0..400 {
        if acked.lock().unwrap().len() >= 500 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    d.kill_9();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 100, "too little load went through before the kill: {}", acked.len());

    // Restart: the node serves again, and every acknowledged check-in is there.
    let d = node.serve();
    assert_eq!(d.get("/status/status.html").body, "MOBILEIRON-STATUS: OK");
    let conn = rusqlite::Connection::open(node.data_dir().join("core.db")).unwrap();
    let mut stmt = conn.prepare("SELECT detail FROM events WHERE kind = 'checkin'").unwrap();
    let stored: BTreeSet<u64> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| serde_json::from_str::<serde_json::Value>(&d.unwrap()).unwrap()["seq"].as_u64().unwrap())
        .collect();
    let missing: Vec<&u64> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged check-ins lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    assert!(d.stop().success());
}
