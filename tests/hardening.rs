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
    let d = node.serve_with(&["--tls-cert", &cert, "--tls-key", key.to_str().unwrap()]);
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
    let d = node.serve_with(&["--http-timeout", "1"]);
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
    let d = node.serve_with(&["--login-grace", "1"]);
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
        Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &d.ssh.port().to_string(), "-b", bind])
            .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "nobody@127.0.0.1", "show clock"])
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
