//! Email notifications against a real SMTP server on loopback (Debian's python3-aiosmtpd,
//! its Mailbox handler writing a Maildir): the test mail and the server's answer, a
//! failover's mail, mails queued while the SMTP server is down (and across a daemon
//! restart) arriving once it is up, exactly once, the hourly cap, and the password
//! never printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, TestNode, pair};

/// aiosmtpd on a port, delivering into a Maildir.
struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpServer {
    fn start(dir: &Path, port: u16) -> SmtpServer {
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { child, maildir }
    }

    /// Every mail delivered so far (quoted-printable soft line breaks undone).
    fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        let mut mails: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|m| m.replace("=\n", "").replace("=3D", "="))
            .collect();
        mails.sort();
        mails
    }

    fn wait_for(&self, what: &str, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mails = self.mails();
            if f(&mails) {
                return mails;
            }
            assert!(Instant::now() < deadline, "never: {what}; mails so far:\n{}", mails.join("\n----\n"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Points `node`'s notifications at 127.0.0.1:`port`.
fn configure(node: &TestNode, port: u16) {
    node.run(&[
        "enable",
        "configure terminal",
        "hostname core-b",
        &format!("smtp server 127.0.0.1 port {port} tls none"),
        "smtp from coresh@example.com",
        "high-availability",
        "notify email ops@example.com",
    ])
    .expect_code(0);
}

#[test]
fn notify_test_sends_a_mail_and_shows_the_servers_answer() {
    let node = TestNode::new();
    let port = free_port();
    configure(&node, port);
    let down = node.run(&["enable", "notify test"]);
    down.expect_code(1);
    assert!(down.stderr.starts_with("% Test notification not sent: "), "{}", down.stderr);

    let smtp = SmtpServer::start(node.path(), port);
    let run = node.run(&["enable", "notify test"]);
    run.expect_code(0);
    assert!(run.stdout.contains("Test notification sent to ops@example.com through 127.0.0.1:"), "{}", run.stdout);
    assert!(run.stdout.contains("Server answered: 250"), "{}", run.stdout);
    let mails = smtp.wait_for("the test mail", |m| m.len() == 1);
    assert!(mails[0].contains("Subject: [coresh core-b] test notification"), "{}", mails[0]);
    assert!(mails[0].contains("What to do next:"), "{}", mails[0]);
    let shown = node.run(&["show notifications"]).stdout;
    assert!(shown.contains("test") && shown.contains("sent"), "{shown}");
}

#[test]
fn a_failover_mail_waits_for_a_down_smtp_server_and_arrives_once() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    pair(&a, &da, &b);
    let port = free_port();
    configure(&b, port);
    let lines = common::follow_lines(&da.ssh.to_string(), "promote");
    b.run(&lines.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
    let db = b.serve();
    db.eventually("the heartbeat reaches the primary", |_| {
        b.failover_json()["peers"].as_array().is_some_and(|p| p.iter().any(|p| p["reachable"] == true))
    });
    da.kill_9();
    db.eventually("the secondary takes over", |d| d.get("/hastatus.html").body.contains("Mode: Primary"));

    // No SMTP server yet: the mail waits in the outbox, with the error, across a restart.
    db.eventually("a delivery attempt failed", |_| {
        let out: serde_json::Value = serde_json::from_str(&b.run(&["show notifications | json"]).stdout).unwrap();
        out[0]["event"] == "became-primary" && out[0]["attempts"].as_u64() >= Some(1) && out[0]["status"] == "pending"
    });
    let shown = b.run(&["show notifications"]).stdout;
    assert!(shown.contains("pending") && shown.contains("Connection refused"), "{shown}");
    let status = db.stop();
    assert!(status.success());
    let db = b.serve();

    let smtp = SmtpServer::start(b.path(), port);
    let mails = smtp.wait_for("the failover mail", |m| !m.is_empty());
    assert!(mails[0].contains("Subject: [coresh core-b] FAILOVER: this node is now primary"), "{}", mails[0]);
    assert!(mails[0].contains("failed 3 consecutive heartbeats"), "{}", mails[0]);
    assert!(mails[0].contains("epoch 1"), "{}", mails[0]);
    // Exactly once: nothing more comes, and the outbox says sent.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.mails().iter().filter(|m| m.contains("FAILOVER")).count(), 1);
    let out: serde_json::Value = serde_json::from_str(&b.run(&["show notifications | json"]).stdout).unwrap();
    assert_eq!(out[0]["status"], "sent", "{out}");
    drop(db);
}

#[test]
fn repeated_failures_are_capped_per_hour() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let port = free_port();
    configure(&b, port);
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    // A peer that is not there: every sync fails, and each failure raises a mail.
    b.trust("127.0.0.1:9", &a.local_key()).expect_code(0);
    for _ in 0..8 {
        b.run(&["enable", "failover sync 127.0.0.1:9"]).expect_code(1);
    }
    let out: serde_json::Value = serde_json::from_str(&b.run(&["show notifications | json"]).stdout).unwrap();
    let failed = out.as_array().unwrap().iter().filter(|m| m["event"] == "sync-failed").count();
    assert_eq!(failed, 5, "{out}");
    let log = b.run(&["show logging high-availability"]).stdout;
    assert_eq!(log.matches("notification sync-failed not sent: more than 5 this hour").count(), 3, "{log}");
    // Queued while no daemon runs; the daemon delivers them.
    let smtp = SmtpServer::start(b.path(), port);
    let _db: Daemon = b.serve();
    let mails = smtp.wait_for("five sync failure mails", |m| m.len() == 5);
    assert!(mails.iter().all(|m| m.contains("sync from 127.0.0.1:9 FAILED")), "{}", mails.join("\n----\n"));
    assert!(mails[0].contains("failover test-connection 127.0.0.1:9"), "{}", mails[0]);
}

#[test]
fn the_smtp_password_is_never_printed() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", "smtp user alerts password hunter2-secret"]).expect_code(0);
    let config = node.run(&["enable", "show running-config"]).stdout;
    assert!(!config.contains("hunter2-secret"), "{config}");
    let line =
        config.lines().find(|l| l.starts_with("smtp user alerts password sealed ")).expect("a sealed password line");
    let audit = node.run(&["enable", "show audit"]).stdout;
    assert!(!audit.contains("hunter2-secret"), "{audit}");
    assert!(!std::fs::read(node.data_dir().join("system.db")).unwrap().windows(14).any(|w| w == b"hunter2-secret"));
    // The sealed form pasted back works on this node, and only here.
    node.run(&["enable", "configure terminal", line]).expect_code(0);
    let other = TestNode::new();
    let run = other.run(&["enable", "configure terminal", line]);
    run.expect_code(1);
    assert!(run.stderr.contains("sealed on another node"), "{}", run.stderr);
}
