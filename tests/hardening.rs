//! The daemon's listeners against clients that stall or flood, over raw sockets, curl and
//! the real OpenSSH client: an idle TCP connection does not stop the HTTPS listener; an
//! HTTP client that stalls its headers, its body or an idle keep-alive connection is
//! hung up on after the timeout; one client holds a bounded number of HTTP connections;
//! an SSH client that never logs in is dropped after the login grace time, and clients
//! not logged in are capped per address; parallel wrong enrollment secrets from one
//! address run only as many Argon2 verifications as the lockout allows.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::TestNode;
use coresh::peer::Peer;
use coresh::peer::message::Request;
use coresh::ssh::client::SshLink;

fn write_cert(node: &TestNode) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (node.path().join("server.pem"), node.path().join("server.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    cert.to_str().unwrap().to_string()
}

/// curl's HTTP status for `url` (0 when it got no answer), within `seconds`.
fn curl(args: &[&str], url: &str, seconds: u32) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", &seconds.to_string()])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Reads until the peer closes (true) or `within` passes (false); what came is returned.
fn closed_within(stream: &mut TcpStream, within: Duration) -> (bool, Vec<u8>) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return (true, got),
        }
    }
    (false, got)
}

#[test]
fn an_idle_tcp_connection_does_not_stop_the_https_listener() {
    let node = TestNode::new();
    let cert = write_cert(&node);
    let key = node.path().join("server.key");
    let d = node.daemon().args(&["--tls-cert", &cert, "--tls-key", key.to_str().unwrap()]).start();
    // Connections that never start a TLS handshake.
    let idle: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(d.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let url = format!("https://localhost:{}/status/status.html", d.addr.port());
    assert_eq!(curl(&["--cacert", &cert], &url, 3), 200, "the listener answers others meanwhile");
    drop(idle);
}

#[test]
fn stalled_http_clients_are_hung_up_on_after_the_timeout() {
    let node = TestNode::new();
    let d = node.daemon().args(&["--http-timeout", "1"]).start();
    // Headers that never end (slowloris).
    let mut slow = TcpStream::connect(d.addr).unwrap();
    slow.write_all(b"GET /status/status.html HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(6)).0, "headers that never end");
    // A body that never arrives: 408.
    let mut stalled = TcpStream::connect(d.addr).unwrap();
    stalled
        .write_all(b"POST /api/v1/devices/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let (closed, answer) = closed_within(&mut stalled, Duration::from_secs(6));
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 408"), "{}", String::from_utf8_lossy(&answer));
    assert!(closed || !answer.is_empty());
    // An idle keep-alive connection after its answer.
    let mut idle = TcpStream::connect(d.addr).unwrap();
    idle.write_all(b"GET /status/status.html HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (closed, answer) = closed_within(&mut idle, Duration::from_secs(6));
    assert!(closed, "an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&answer).contains("MOBILEIRON-STATUS: OK"));
}

#[test]
fn one_client_holds_a_bounded_number_of_http_connections() {
    let node = TestNode::new();
    let d = node.serve();
    let url = |d: SocketAddr| format!("http://{d}/status/status.html");
    let held: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(d.addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut one_more = TcpStream::connect(d.addr).unwrap();
    let (closed, got) = closed_within(&mut one_more, Duration::from_secs(3));
    assert!(closed && got.is_empty(), "the 65th connection of one client is closed at once");
    assert_eq!(curl(&["--interface", "127.0.0.2"], &url(d.addr), 5), 200, "another client is served");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&[], &url(d.addr), 5), 200, "and the first once it lets go");
}

/// The first bytes an SSH server sends (its identification), if any, before it closes.
fn ssh_banner(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn an_ssh_client_that_never_logs_in_is_dropped_after_the_grace_time() {
    let node = TestNode::new();
    let d = node.daemon().args(&["--login-grace", "1"]).start();
    // Sends nothing at all.
    let mut silent = TcpStream::connect(d.ssh).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(6)).0, "a silent client is dropped");
    // Sends its identification, then nothing.
    let mut stalled = TcpStream::connect(d.ssh).unwrap();
    assert!(ssh_banner(&mut stalled).starts_with(b"SSH-2.0-"));
    stalled.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
    assert!(closed_within(&mut stalled, Duration::from_secs(6)).0, "a client that stops after its banner");
}

#[test]
fn ssh_clients_not_logged_in_are_capped_per_address() {
    let node = TestNode::new();
    let d = node.serve();
    let mut held: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(d.ssh).unwrap()).collect();
    for s in &mut held {
        assert!(ssh_banner(s).starts_with(b"SSH-2.0-"), "the first ten are served");
    }
    let mut eleventh = TcpStream::connect(d.ssh).unwrap();
    assert!(ssh_banner(&mut eleventh).is_empty(), "the eleventh is closed before any banner");
    let ssh = |bind: &str| {
        common::ssh::client(d.ssh.port())
            .args(["-b", bind, "-o", "BatchMode=yes", "nobody@127.0.0.1", "show clock"])
            .output()
            .expect("ssh")
    };
    // Another address still reaches the login (and is refused there: no such key).
    let other = ssh("127.0.0.3");
    assert!(String::from_utf8_lossy(&other.stderr).contains("Permission denied"), "{:?}", other);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let again = ssh("127.0.0.1");
    assert!(String::from_utf8_lossy(&again.stderr).contains("Permission denied"), "{:?}", again);
}

#[test]
fn parallel_wrong_enrollment_secrets_run_few_verifications() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", "enrollment-secret S3cret-for-devices"]).expect_code(0);
    let d = node.serve();
    let body = r#"{"enrollment_secret":"wrong-secret","uuid":"u-1","user":"alice","platform":"ios"}"#;
    let answers: Vec<u16> = std::thread::scope(|scope| {
        let tries: Vec<_> =
            (0..40).map(|_| scope.spawn(|| d.post("/api/v1/devices/register", None, body).status)).collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let verified = answers.iter().filter(|s| **s == 403).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(verified + refused, 40, "{answers:?}");
    assert!(verified <= 5, "only as many verifications as the lockout allows: {answers:?}");
    let right = r#"{"enrollment_secret":"S3cret-for-devices","uuid":"u-2","user":"bob","platform":"ios"}"#;
    assert_eq!(d.post("/api/v1/devices/register", None, right).status, 429, "the address waits out the window");
}

#[test]
fn a_secret_in_a_line_that_does_not_lex_or_match_is_never_printed_or_audited() {
    let node = TestNode::new();
    let long = format!("enable secret Xk7long{}", "y".repeat(5000));
    let lines = [
        "enable secret Sup3r\"Zq9Secret".to_string(),
        "username bob password \"my Zq9secret".to_string(),
        "username bob password Zq9abc |x".to_string(),
        "enable secret Zq9ctl\u{1}rest".to_string(),
        "enable secret Zq9one two \"three".to_string(),
        long,
    ];
    for line in &lines {
        let run = node.run_with(&["enable", "configure terminal", line], &["--keep-going", "--echo"], &[]);
        let seen = format!("{}{}", run.stdout, run.stderr);
        assert!(!seen.contains("Zq9") && !seen.contains("Xk7") && !seen.contains("Sup3r"), "{line:?} leaked:\n{seen}");
        assert!(seen.contains("<removed>"), "{line:?}: the shown line says a secret was removed:\n{seen}");
    }
    // Also typed in the wrong mode.
    let run = node.run_with(&["enable secret Sup3r\"Zq9Secret"], &["--keep-going"], &[]);
    assert!(!run.stderr.contains("Zq9"), "{}", run.stderr);
    let audit = node.run(&["enable", "show audit"]).stdout;
    assert!(!audit.contains("Zq9") && !audit.contains("Xk7") && !audit.contains("Sup3r"), "{audit}");
    assert!(audit.contains("enable secret <removed>") && audit.contains("username bob password <removed>"), "{audit}");
    let support = node.run(&["enable", "show tech-support"]).stdout;
    assert!(!support.contains("Zq9") && !support.contains("Sup3r"), "tech-support carries the audit tail");
}

/// A full sync from `a`, whose live data was damaged after it kept its checked copy:
/// `b` gets the copy (its data stays `before`), and the check of `a`'s live data that
/// follows finds the damage (`found` in its HA log), raises data-damaged (one mail) and
/// drops the copy.
fn copied_then_found_damaged(a: &TestNode, b: &TestNode, da: &common::Daemon, before: &str, found: &str) {
    // Notifications to an SMTP port nothing listens on: the alarm stays in the outbox.
    common::smtp::configure(a, common::free_port());
    let run = b.run(&["enable", &format!("failover sync {} full", da.ssh)]);
    run.expect_code(0);
    assert!(run.stdout.contains("sent as its checked copy"), "{}", run.stdout);
    assert_eq!(b.checksum(), before, "the checked copy and the logged changes, not the damage");
    common::until("the primary finds its damaged data", || a.ha_log().contains("CORE DATA DAMAGED"));
    assert!(a.ha_log().contains(found), "{}", a.ha_log());
    let outbox: serde_json::Value = serde_json::from_str(&a.run(&["show notifications | json"]).stdout).unwrap();
    let alarms: Vec<_> = outbox.as_array().unwrap().iter().filter(|m| m["event"] == "data-damaged").collect();
    assert_eq!(alarms.len(), 1, "{outbox}");
    assert!(alarms[0]["subject"].as_str().unwrap_or_default().contains("CORE DATA DAMAGED"), "{outbox}");
    assert!(!a.data_dir().join("checked/core.json").exists(), "the copy is dropped");
}

#[test]
fn a_full_sync_refuses_schema_objects_the_primary_added() {
    let common::Pair { a, b, da } = common::synced_pair("20", "20");
    let before = b.checksum();
    common::until("the primary keeps its checked copy", || a.data_dir().join("checked/core.json").exists());
    // A buggy or hostile primary: a trigger that would act here after a failover, and a view.
    let conn = rusqlite::Connection::open(a.data_dir().join("core.db")).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER evil AFTER INSERT ON events BEGIN DELETE FROM devices; END;
         CREATE VIEW spy AS SELECT token_hash FROM devices;",
    )
    .unwrap();
    drop(conn);
    // The next full copy is the checked copy (without them); the check of the live data
    // that follows it finds them.
    copied_then_found_damaged(&a, &b, &da, &before, "schema is not this release's");
    let run = b.run(&["enable", &format!("failover sync {} full", da.ssh)]);
    run.expect_refused("schema is not this release's: not expected: trigger evil, view spy");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    let conn = rusqlite::Connection::open(b.data_dir().join("core.db")).unwrap();
    let objects: i64 =
        conn.query_row("SELECT count(*) FROM sqlite_master WHERE name IN ('evil', 'spy')", [], |r| r.get(0)).unwrap();
    assert_eq!(objects, 0);
}

#[test]
fn a_full_sync_refuses_a_primary_whose_index_is_damaged_or_whose_rows_left_its_log() {
    let common::Pair { a, b, da } = common::synced_pair("20", "20");
    let before = b.checksum();
    let core = a.data_dir().join("core.db");
    common::until("the primary keeps its checked copy", || a.data_dir().join("checked/core.json").exists());
    // Rows changed behind the change log's back (a disk or a tool, not coresh).
    let conn = rusqlite::Connection::open(&core).unwrap();
    conn.execute("UPDATE devices SET model = 'tampered' WHERE id = 1", []).unwrap();
    drop(conn);
    // A full copy now comes from the checked copy and the logged changes: the secondary
    // gets the data as logged, never the damage; the check of the live data that
    // follows finds the damage, raises data-damaged and drops the copy.
    copied_then_found_damaged(&a, &b, &da, &before, "its change log says");
    let model: String = rusqlite::Connection::open(b.data_dir().join("core.db"))
        .unwrap()
        .query_row("SELECT model FROM devices WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_ne!(model, "tampered");
    // The next full copy is a new snapshot, and its checks refuse it.
    let run = b.run(&["enable", &format!("failover sync {} full", da.ssh)]);
    run.expect_refused("failed the checks it ran on the file: its rows have the checksum");
    assert!(
        run.stderr.contains("its change log says") && run.stderr.contains("nothing was replaced"),
        "{}",
        run.stderr
    );
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // An index that no longer holds its table's rows: an event inserted while the
    // index was declared on another column, then the declaration put back. The schema
    // is this release's again, so only a check of the index itself finds it.
    let conn = rusqlite::Connection::open(&core).unwrap();
    let declared: String =
        conn.query_row("SELECT sql FROM sqlite_schema WHERE name = 'events_device'", [], |r| r.get(0)).unwrap();
    let set_sql = |conn: &rusqlite::Connection, sql: &str| {
        conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
        conn.execute("UPDATE sqlite_schema SET sql = ?1 WHERE name = 'events_device'", [sql]).unwrap();
        conn.execute_batch("PRAGMA writable_schema = OFF").unwrap();
    };
    set_sql(&conn, "CREATE INDEX events_device ON events (kind, id)");
    drop(conn);
    let conn = rusqlite::Connection::open(&core).unwrap();
    conn.execute("INSERT INTO events (at, device_id, kind, detail) VALUES ('2026-12-01T00:00:00Z', 1, 'x', '{}')", [])
        .unwrap();
    set_sql(&conn, &declared);
    drop(conn);
    let sqlite: String =
        rusqlite::Connection::open(&core).unwrap().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_ne!(sqlite, "ok", "SQLite's own check finds the damage too");
    let run = b.run(&["enable", &format!("failover sync {} full", da.ssh)]);
    run.expect_refused("failed the checks it ran on the file: index events_device");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    let history: serde_json::Value = serde_json::from_str(&b.run(&["show sync history last 2 | json"]).stdout).unwrap();
    assert!(history.as_array().unwrap().iter().all(|r| r["result"] == "failed"), "{history}");
    assert!(history[0]["detail"].as_str().unwrap().contains("index events_device"), "{history}");
}

/// A peer program on the replication channel, as the node `node` (its key): what a
/// buggy or hostile trusted peer can send, with coresh's own client.
struct PeerProgram {
    runtime: tokio::runtime::Runtime,
    key: russh::keys::PrivateKey,
    theirs: russh::keys::PublicKey,
    target: coresh::host::HostPort,
}

impl PeerProgram {
    fn new(node: &TestNode, of: &TestNode, d: &common::Daemon) -> PeerProgram {
        PeerProgram {
            runtime: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            key: coresh::node::keys::host_key(&node.data_dir()).unwrap(),
            theirs: coresh::node::keys::parse_public(&of.local_key()).unwrap(),
            target: d.ssh.to_string().parse().unwrap(),
        }
    }

    fn open(&self) -> Result<Peer<SshLink>, coresh::peer::PeerError> {
        let hello = coresh::peer::Hello::of(&coresh::ha::Settings::default(), "hostile-peer");
        self.runtime.block_on(Peer::connect(&self.target, &self.key, &self.theirs, &hello))
    }

    /// Sends `requests` on `peer` at once and reads the first answer line (any message).
    fn ask(&self, peer: &mut Peer<SshLink>, requests: &[Request]) -> Result<String, String> {
        self.runtime.block_on(async {
            let stream = peer.pull(&requests[0]).await.map_err(|e| e.to_string())?;
            for r in &requests[1..] {
                stream.send(r).await.map_err(|e| e.to_string())?;
            }
            stream.recv::<Any>().await.map(|a| a.0.to_string()).map_err(|e| e.to_string())
        })
    }

    /// Reads the next answer line on `peer`.
    fn next(&self, peer: &mut Peer<SshLink>) -> Result<String, String> {
        self.runtime.block_on(async {
            let stream = peer.pull_stream();
            stream.recv::<Any>().await.map(|a| a.0.to_string()).map_err(|e| e.to_string())
        })
    }
}

/// Any message, as JSON.
#[derive(serde::Serialize, serde::Deserialize)]
struct Any(serde_json::Value);

impl coresh::peer::message::Message for Any {
    const MAX: usize = 1 << 20;
}

const POSITIONS: Request = Request::Positions { first: 0, last: 0 };

fn snapshot() -> Request {
    Request::Snapshot { atlas: false, files: Default::default() }
}

#[test]
fn removing_a_trusted_host_ends_its_open_connections_and_peer_requests_are_audited() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    a.trust("core-b", &b.local_key()).expect_code(0);
    let peer = PeerProgram::new(&b, &a, &da);
    let mut first = peer.open().expect("trusted");
    let mut held = peer.open().expect("trusted");
    assert!(peer.ask(&mut first, &[POSITIONS]).unwrap().contains("positions"));
    a.ha(&["no trusted-host core-b"]).expect_code(0);
    std::thread::sleep(Duration::from_millis(500));
    assert!(peer.ask(&mut held, &[POSITIONS]).is_err(), "an open connection ends with its trust");
    assert!(peer.open().is_err(), "and no new one is accepted");
    let audit = a.run(&["enable", "show audit"]).stdout;
    assert!(audit.contains("peer login (key SHA256:"), "{audit}");
    assert!(audit.contains("peer positions request (key SHA256:"), "{audit}");
}

#[test]
fn a_peer_gets_one_request_at_a_time_per_channel_and_one_snapshot_stream_at_a_time() {
    let (a, b) = (TestNode::new(), TestNode::new());
    common::generate(&a, "20000", "200000");
    let da = a.serve();
    a.trust("core-b", &b.local_key()).expect_code(0);
    let peer = PeerProgram::new(&b, &a, &da);
    // Two requests sent at once are answered one after the other, never side by side.
    let mut two = peer.open().unwrap();
    assert!(peer.ask(&mut two, &[POSITIONS, POSITIONS]).unwrap().contains("positions"));
    assert!(peer.next(&mut two).unwrap().contains("positions"));
    // A full snapshot it does not read holds the stream open; a second one is refused.
    let mut slow = peer.open().unwrap();
    let header = peer.ask(&mut slow, &[snapshot()]).unwrap();
    assert!(header.contains("\"size\""), "{header}");
    let mut again = peer.open().unwrap();
    let refused = peer.ask(&mut again, &[snapshot()]).unwrap();
    assert!(refused.contains("already being sent"), "{refused}");
    drop(slow);
}

#[test]
fn what_interrupted_syncs_left_is_removed_when_the_daemon_starts() {
    let node = TestNode::new();
    node.run(&["show version"]).expect_code(0);
    let dir = node.data_dir();
    std::fs::create_dir_all(dir.join("snapshots")).unwrap();
    std::fs::create_dir_all(dir.join("files/.staging")).unwrap();
    for leftover in ["snapshots/core-20261201.db", "core.db.staging", "files/.staging/incoming-0"] {
        std::fs::write(dir.join(leftover), vec![0u8; 4096]).unwrap();
    }
    let d = node.serve();
    for leftover in ["snapshots/core-20261201.db", "core.db.staging", "files/.staging"] {
        assert!(!dir.join(leftover).exists(), "{leftover} is still there");
    }
    drop(d);
}

/// A small file system of its own (tmpfs), unmounted when dropped. Needs root.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn new(under: &std::path::Path, megabytes: u32) -> SmallDisk {
        let dir = under.join("small-disk");
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("mount");
        assert!(out.status.success(), "mount tmpfs (tests need root): {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_snapshot_larger_than_the_disk_allows_is_refused_before_it_is_staged() {
    let (a, b) = (TestNode::new(), TestNode::new());
    common::generate(&a, "5000", "60000");
    let da = a.serve();
    let disk = SmallDisk::new(b.path(), 72);
    let b_dir = disk.0.join("node");
    let cmd = |lines: &[&str]| {
        let mut c = b.command();
        c.env("CORESH_DATA_DIR", &b_dir);
        for l in lines {
            c.arg("-c").arg(l);
        }
        c.output().unwrap()
    };
    let key = String::from_utf8(cmd(&["show ssh local-key | json"]).stdout).unwrap();
    let key = serde_json::from_str::<serde_json::Value>(&key).unwrap()["public_key"].as_str().unwrap().to_string();
    a.trust("core-b", &key).expect_code(0);
    let trust = format!("trusted-host {} {}", da.ssh, a.local_key());
    cmd(&["enable", "configure terminal", "high-availability", &trust]);
    cmd(&["enable", "failover mode secondary"]);
    let out = cmd(&["enable", &format!("failover sync {}", da.ssh)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough disk space for the core snapshot"), "{err}");
    assert!(!b_dir.join("core.db.staging").exists());
}

#[test]
fn an_enrolled_device_registers_again_only_when_an_operator_lets_it() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", "enrollment-secret S3cret-for-devices"]).expect_code(0);
    let d = node.serve();
    let register = || {
        let body = r#"{"enrollment_secret":"S3cret-for-devices","uuid":"u-1","user":"alice","platform":"ios"}"#;
        let answer = d.post("/api/v1/devices/register", None, body);
        let token = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|v| v["token"].as_str().map(String::from));
        (answer.status, answer.body, token)
    };
    let checkin = |token: &str| d.post("/api/v1/devices/checkin", Some(token), r#"{"seq":1}"#).status;
    let (status, _, first) = register();
    assert_eq!(status, 201);
    let first = first.unwrap();
    // Someone else with the shared secret: refused, and the device keeps its token.
    let (status, body, _) = register();
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already enrolled") && body.contains("device re-enroll u-1"), "{body}");
    assert_eq!(checkin(&first), 200);

    // Let to enrol again once: a new token replaces the old one.
    let config = |line: &str| node.run(&["enable", "configure terminal", line]);
    config("device re-enroll u-1").expect_code(0);
    let (status, _, second) = register();
    assert_eq!(status, 201);
    let second = second.unwrap();
    assert_eq!(checkin(&first), 401);
    assert_eq!(checkin(&second), 200);
    assert_eq!(register().0, 409, "once");

    // Retired: its token stops at once, and it may enrol again.
    config("device retire u-1").expect_code(0);
    assert_eq!(checkin(&second), 401);
    assert!(node.run(&["show devices"]).stdout.contains("retired"));
    assert_eq!(register().0, 201);
    let missing = config("device retire nope");
    missing.expect_refused("no device has the UUID nope");
}

#[test]
fn the_audit_log_keeps_bounded_fields_for_its_retention() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", "audit retention 50 rows"]).expect_code(0);
    let config = node.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains("\naudit retention 50 rows\n"), "{config}");
    // A flood of lines, under a user name a client chose.
    let flood: Vec<&str> = std::iter::repeat_n("show clock", 250).collect();
    node.run_with(&flood, &[], &[("USER", &"u".repeat(20_000))]).expect_code(0);
    let d = node.serve();
    let long_user = "v".repeat(2000);
    let (key, _) = common::ssh::new_key(node.path(), "stranger", "stranger@test");
    let refused = common::ssh::with_key(d.ssh.port(), &key)
        .args(["-l", &long_user, "127.0.0.1", "show clock"])
        .output()
        .expect("ssh");
    assert!(!refused.status.success());
    d.eventually("the failed login is audited", |_| {
        node.run(&["enable", "show audit last 5 | json"]).stdout.contains("key(s) refused")
    });
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&node.run(&["enable", "show audit last 100000 | json"]).stdout).unwrap();
    assert!(rows.len() <= 50 + 100, "{} entries kept", rows.len());
    assert!(rows.iter().all(|r| r["user"].as_str().is_some_and(|u| u.chars().count() <= 64)), "bounded users");
    assert!(rows.iter().any(|r| r["user"].as_str().is_some_and(|u| u.starts_with("vvvv") && u.ends_with('…'))));
    node.run(&["enable", "configure terminal", "no audit retention"]).expect_code(0);
    assert!(node.run(&["enable", "show running-config"]).stdout.contains("audit retention 365 days"));
}

/// What a hostile primary's sync answer claims: a header, then `body`.
fn scripted(header: serde_json::Value, body: &[u8]) -> Vec<u8> {
    let mut bytes = header.to_string().into_bytes();
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes
}

/// A secondary with data of its own and its checksum, and a Core database of this
/// release on another node (checkpointed, open) for a hostile primary to send.
fn secondary_and_a_source() -> (TestNode, String, TestNode, std::path::PathBuf, rusqlite::Connection) {
    let b = TestNode::new();
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    common::generate(&b, "30", "40");
    let before = b.checksum();
    let source = TestNode::new();
    common::generate(&source, "200", "3000");
    let path = source.data_dir().join("core.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    (b, before, source, path, conn)
}

/// What a sender puts in a trailer for `bytes`.
fn digest(bytes: &[u8]) -> String {
    let mut digest = coresh::replication::digest::Digest::new();
    digest.update(bytes);
    digest.finish()
}

#[test]
fn a_snapshot_its_sender_calls_sound_is_still_checked_here() {
    let (b, before, source, path, conn) = secondary_and_a_source();
    let root: i64 =
        conn.query_row("SELECT rootpage FROM sqlite_schema WHERE name = 'events'", [], |r| r.get(0)).unwrap();
    drop(conn);
    let sound = std::fs::read(&path).unwrap();
    // The sender claims every check passed, with the right digest and `content`.
    let pull = |bytes: &[u8], content: &str| {
        let header = serde_json::json!({"kind": "snapshot", "store": "core", "size": bytes.len(), "taken_at": "now", "fallback": null});
        let trailer = serde_json::json!({
            "digest": digest(bytes),
            "content": content, "integrity": "ok",
        });
        let mut answer = scripted(header, bytes);
        answer.extend(format!("{trailer}\n").into_bytes());
        answer.extend(b"{\"changed\":[],\"removed\":[]}\n");
        let dir = tempfile::tempdir().unwrap();
        let hostile = common::hostile::HostilePrimary::start(dir.path(), answer);
        b.trust(&hostile.addr.to_string(), &hostile.public_key).expect_code(0);
        b.run(&["enable", &format!("failover sync {} full", hostile.addr)])
    };
    // A sound file, but a content checksum that is not where its change log ends.
    let run = pull(&sound, "0123456789abcdef0123456789abcdef");
    run.expect_refused("its sender reported 0123456789abcdef0123456789abcdef");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // One b-tree page of its events overwritten; the schema on page 1 is intact.
    let mut damaged = sound.clone();
    let page = usize::try_from(root - 1).unwrap() * 4096;
    damaged[page + 8..page + 4096].fill(0xA5);
    let run = pull(&damaged, &source.checksum());
    run.expect_refused("the snapshot is damaged");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // The same sound file with its true checksum is taken.
    pull(&sound, &source.checksum()).expect_code(0);
    assert_eq!(b.checksum(), source.checksum());
}

#[test]
fn a_checked_copy_whose_changes_do_not_fit_it_is_refused() {
    let (b, before, source, path, conn) = secondary_and_a_source();
    let head = coresh::coredb::changelog::head(&conn).unwrap();
    drop(conn);
    let copy = std::fs::read(&path).unwrap();
    // A sound copy, sent as a checked copy (its checksum where its log ends), then `next`.
    let pull = |next: Vec<u8>| {
        let header = serde_json::json!({"kind": "snapshot", "store": "core", "size": copy.len(),
            "taken_at": "now", "fallback": null, "changes_follow": true});
        let trailer = serde_json::json!({"digest": digest(&copy), "content": head.checksum, "integrity": "ok"});
        let mut answer = scripted(header, &copy);
        answer.extend(format!("{trailer}\n").into_bytes());
        answer.extend(next);
        answer.extend(b"{\"changed\":[],\"removed\":[]}\n");
        let dir = tempfile::tempdir().unwrap();
        let hostile = common::hostile::HostilePrimary::start(dir.path(), answer);
        b.trust(&hostile.addr.to_string(), &hostile.public_key).expect_code(0);
        b.run(&["enable", &format!("failover sync {} full", hostile.addr)])
    };
    let changes = |from: serde_json::Value, to: serde_json::Value, body: &[u8]| {
        let header = serde_json::json!({"kind": "changes", "size": body.len(), "from": from, "to": to,
            "entries": 0, "rows": 0});
        let trailer = serde_json::json!({"digest": digest(body), "content": to["checksum"], "integrity": null});
        let mut part = scripted(header, body);
        part.extend(format!("{trailer}\n").into_bytes());
        part
    };
    let at_copy = serde_json::json!({"seq": head.seq, "checksum": head.checksum});
    // No changes part after the copy: a second snapshot instead.
    let again =
        serde_json::json!({"kind": "snapshot", "store": "core", "size": 0, "taken_at": "now", "fallback": null});
    let mut second = scripted(again, b"");
    let empty = serde_json::json!({"digest": digest(b""), "content": "", "integrity": "ok"});
    second.extend(format!("{empty}\n").into_bytes());
    pull(second).expect_refused("a checked copy without its changes");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // Changes that start from another copy than the one sent.
    let elsewhere = serde_json::json!({"seq": head.seq, "checksum": "00"});
    pull(changes(elsewhere.clone(), elsewhere, b"")).expect_refused("they start at checksum 00, the copy has");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // Changes announced to end further on than they do.
    let further = serde_json::json!({"seq": head.seq + 5, "checksum": "00"});
    pull(changes(at_copy.clone(), further, b"")).expect_refused(&format!("do not end at change {}", head.seq + 5));
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // An entry that claims a terabyte inside a short part: bounded by what is left.
    let mut frame = br#"{"seq":1,"at":"x","rows":1,"checksum":"00","origin":"x","len":1099511627776}"#.to_vec();
    frame.push(b'\n');
    frame.extend([0u8; 64]);
    let to = serde_json::json!({"seq": head.seq + 1, "checksum": "00"});
    pull(changes(at_copy.clone(), to, &frame)).expect_refused("claims 1099511627776 bytes");
    assert_eq!(b.checksum(), before, "nothing was replaced");
    // The copy with no changes after it, as announced, is taken.
    let run = pull(changes(at_copy.clone(), at_copy, b""));
    run.expect_code(0);
    assert!(run.stdout.contains(&format!("sent as its checked copy at change {}", head.seq)), "{}", run.stdout);
    assert_eq!(b.checksum(), source.checksum());
}

#[test]
fn a_hostile_primary_s_lengths_size_nothing() {
    let b = TestNode::new();
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    let pull = |answer: Vec<u8>, full: bool| {
        let dir = tempfile::tempdir().unwrap();
        let hostile = common::hostile::HostilePrimary::start(dir.path(), answer);
        b.trust(&hostile.addr.to_string(), &hostile.public_key).expect_code(0);
        let line = format!("failover sync {}{}", hostile.addr, if full { " full" } else { "" });
        b.run(&["enable", &line])
    };
    // A snapshot header announcing a petabyte: refused before a byte is staged.
    let petabyte = serde_json::json!({"kind": "snapshot", "store": "core", "size": 1u64 << 50, "taken_at": "now", "fallback": null});
    let run = pull(scripted(petabyte, b""), true);
    run.expect_refused("not enough disk space for the core snapshot");
    // Changes whose one entry claims a terabyte inside a 200-byte stream.
    let mut frame = br#"{"seq":1,"at":"x","rows":1,"checksum":"00","origin":"x","len":1099511627776}"#.to_vec();
    frame.push(b'\n');
    frame.extend([0u8; 64]);
    let position = serde_json::json!({"seq": 0, "checksum": b.checksum()});
    let header = serde_json::json!({
        "kind": "changes", "size": frame.len(),
        "from": position, "to": {"seq": 1, "checksum": "00"}, "entries": 1, "rows": 1,
    });
    let trailer = serde_json::json!({
        "digest": digest(&frame),
        "content": "00", "integrity": null,
    });
    let mut answer = scripted(header, &frame);
    answer.extend(format!("{trailer}\n").into_bytes());
    answer.extend(b"{\"changed\":[],\"removed\":[]}\n");
    let run = pull(answer, false);
    assert!(run.stderr.contains("claims 1099511627776 bytes"), "{}", run.stderr);
    // The node is whole, and its data untouched.
    assert_eq!(b.run(&["show core summary | json"]).code, 0);
}
