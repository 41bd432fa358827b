//! Kill -9 of the daemon under check-in load: after a restart, every check-in that was
//! acknowledged (HTTP 200) is in the Core data. Acknowledgement follows the commit. Also
//! just after the WAL started over from its beginning, which the writer makes it do
//! under steady traffic.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, TestNode};

const SECRET: &str = "enroll-me-please";
const CLIENTS: u64 = 8;

/// Clients checking in as fast as they are answered, one token each; each check-in
/// carries a number of its own (from `first`), kept once acknowledged.
struct Clients {
    acked: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Clients {
    fn start(d: &Daemon, tokens: Vec<String>, first: u64) -> Clients {
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let url = d.url("/api/v1/devices/checkin");
        let threads = tokens
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                let (acked, stop, url) = (acked.clone(), stop.clone(), url.clone());
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(5)))
                        .build()
                        .into();
                    for n in 0u64.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let seq = first + i as u64 * 1_000_000 + n;
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
        Clients { acked, stop, threads }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops the clients (the daemon was killed); what was acknowledged.
    fn finish(self) -> BTreeSet<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.acked.lock().unwrap().clone()
    }
}

/// Restarts the daemon and checks that every check-in in `acked` is stored and the
/// database is sound.
fn assert_all_kept(node: &TestNode, acked: &BTreeSet<u64>) {
    let d = node.serve();
    assert_eq!(d.get("/status/status.html").body, "MOBILEIRON-STATUS: OK");
    let conn = rusqlite::Connection::open(node.data_dir().join("core.db")).unwrap();
    let mut stmt = conn.prepare("SELECT detail FROM events WHERE kind = 'checkin'").unwrap();
    let stored: BTreeSet<u64> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(&d.unwrap()).unwrap()["seq"].as_u64())
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
    let clients = Clients::start(&d, tokens, 0);
    // Let some load through, then pull the plug mid-stream.
    for _ in 0..400 {
        if clients.acked() >= 500 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    d.kill_9();
    let acked = clients.finish();
    assert!(acked.len() >= 100, "too little load went through before the kill: {}", acked.len());
    assert_all_kept(&node, &acked);
}

/// The WAL starts over while devices keep checking in (the writer has it do so past 32
/// MiB); the daemon is killed the moment the second new start is seen, when the writer
/// is writing over the oldest frames.
#[test]
fn acknowledged_check_ins_survive_kill_9_as_the_wal_starts_over() {
    let node = TestNode::new();
    common::generate(&node, "20000", "10");
    let d = node.serve();
    let tokens = (0..16).map(|i| coresh::coredb::generate::token_for(42, i * 1000)).collect();
    // Numbers apart from the generated events' own.
    let clients = Clients::start(&d, tokens, 1 << 40);
    let started = Instant::now();
    let mut salts = BTreeSet::new();
    while salts.len() < 3 && started.elapsed() < Duration::from_secs(240) {
        salts.extend(common::wal_state(&node).map(|(salt, _)| salt));
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill_9();
    let acked = clients.finish();
    assert_eq!(salts.len(), 3, "the WAL did not start over twice in {:?}", started.elapsed());
    assert!(acked.len() >= 1000, "{}", acked.len());
    assert_all_kept(&node, &acked);
}
