//! Email notifications against a real SMTP server on loopback (Debian's python3-aiosmtpd,
//! its Mailbox handler writing a Maildir): the test mail and the server's answer, a
//! failover's mail, mails queued while the SMTP server is down (and across a daemon
//! restart) arriving once it is up, exactly once, the hourly cap, and the password
//! never printed.

mod common;

use std::time::Duration;

use common::free_port;
use common::smtp::{SmtpServer, configure};
use common::{Daemon, TestNode, pair};

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
    // The same from high-availability configuration, as the guide's Test button.
    node.ha(&["notify test"]).expect_code(0);
    smtp.wait_for("the second test mail", |m| m.len() == 2);
    let shown = node.run(&["show notifications"]).stdout;
    assert!(shown.contains("test") && shown.contains("sent"), "{shown}");
}

#[test]
fn a_failover_mail_waits_for_a_down_smtp_server_and_arrives_once() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    pair(&a, &da, &b);
    // A standby promotes itself only with its primary's data.
    common::sync(&b, &da).expect_code(0);
    let port = free_port();
    configure(&b, port);
    let db = common::take_over_from(&b, da);

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
fn repeated_failures_are_capped_per_hour_and_rolled_into_a_digest() {
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
    let count = |status: &str| out.as_array().unwrap().iter().filter(|m| m["status"] == status).count();
    assert_eq!((count("pending"), count("held")), (5, 3), "{out}");
    let log = b.run(&["show logging high-availability"]).stdout;
    assert_eq!(log.matches("notification sync-failed held for a digest: more than 5 this hour").count(), 3, "{log}");
    // Queued while no daemon runs; the daemon delivers them, and the three held back
    // as one digest.
    let smtp = SmtpServer::start(b.path(), port);
    let _db: Daemon = b.daemon().env("CORESH_TEST_DIGEST_SECONDS", "1").start();
    let mails = smtp.wait_for("five sync failure mails and a digest", |m| m.len() == 6);
    let (digests, single): (Vec<&String>, Vec<&String>) = mails.iter().partition(|m| m.contains("digest:"));
    assert_eq!(single.len(), 5);
    assert!(single.iter().all(|m| m.contains("sync from 127.0.0.1:9 FAILED")), "{}", mails.join("\n----\n"));
    assert!(single[0].contains("failover test-connection 127.0.0.1:9"), "{}", single[0]);
    assert_eq!(digests.len(), 1);
    assert!(digests[0].contains("Subject: [coresh core-b] digest: 3 more sync-failed notifications"), "{}", digests[0]);
    assert_eq!(
        digests[0].matches("sync from 127.0.0.1:9 FAILED").count(),
        4,
        "three listed, the latest in full:\n{}",
        digests[0]
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(smtp.mails().len(), 6, "nothing more");
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

#[test]
fn each_ha_event_mails_what_happened_where_when_and_what_to_do() {
    let (a, b) = (TestNode::new(), TestNode::new());
    // The primary's clock is five seconds ahead.
    let da = a.daemon().env("CORESH_TEST_CLOCK_SKEW_MS", "5000").start();
    common::generate(&a, "10", "10");
    pair(&a, &da, &b);
    let port = free_port();
    let smtp = SmtpServer::start(b.path(), port);
    configure(&b, port);
    b.ha(&["notify on sync-completion"]).expect_code(0);
    b.follow(&da.ssh.to_string(), "keep-standby");
    let db = b.serve();
    common::sync(&b, &da).expect_code(0);
    smtp.wait_for("the sync and clock mails", |m| m.len() == 2);
    let primary = da.ssh;
    da.kill_9();
    let mails = smtp.wait_for("the failover mail", |m| m.len() == 3);
    let find = |subject: &str| {
        mails
            .iter()
            .find(|m| m.contains(subject))
            .unwrap_or_else(|| panic!("no mail {subject:?} in:\n{}", mails.join("\n----\n")))
    };
    let sync = find(&format!("Subject: [coresh core-b] sync from {primary} completed"));
    assert!(sync.contains("full copy from core"), "{sync}");
    let clock = find(&format!("Subject: [coresh core-b] clock offset to {primary} is +"));
    assert!(clock.contains("Set both nodes' clocks from NTP"), "{clock}");
    let failover =
        find(&format!("Subject: [coresh core-b] FAILOVER DETECTED: primary {primary} failed; this node stays standby"));
    assert!(failover.contains("failed 3 consecutive heartbeats"), "{failover}");
    assert!(failover.contains("promote this node with 'failover mode primary'"), "{failover}");
    for mail in &mails {
        assert!(mail.contains("Node: core-b (node id "), "{mail}");
        assert!(mail.contains("When: 20"), "{mail}");
        assert!(mail.contains("What to do next: "), "{mail}");
    }
    drop(db);
}

#[test]
fn a_split_brain_is_reported_once_by_mail() {
    let (a, b) = (TestNode::new(), TestNode::new());
    // Two primaries at epoch 0 that know each other.
    let db = b.serve();
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    b.trust("core-a", &a.local_key()).expect_code(0);
    let port = free_port();
    let smtp = SmtpServer::start(a.path(), port);
    configure(&a, port); // (names this node core-b, as in the other tests)
    a.ha(&["heartbeat interval 1", "service enable"]).expect_code(0);
    let _da = a.serve();
    let mails = smtp.wait_for("the split brain mail", |m| !m.is_empty());
    assert!(mails[0].contains("Subject: [coresh core-b] SPLIT BRAIN: two primaries at the same epoch"), "{}", mails[0]);
    assert!(mails[0].contains("is also primary, at the same epoch 0"), "{}", mails[0]);
    assert!(mails[0].contains("run 'failover mode secondary' on the other node"), "{}", mails[0]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(smtp.mails().len(), 1, "reported once, not at every heartbeat");
    let log = a.run(&["show logging high-availability"]).stdout;
    assert_eq!(log.matches("SPLIT BRAIN").count(), 1, "{log}");
}

#[test]
fn smtp_settings_and_their_errors() {
    let node = TestNode::new();
    assert_eq!(node.run(&["show notifications"]).stdout, "No notifications.\n");
    let lines = |node: &TestNode| -> Vec<String> {
        let config = node.run(&["enable", "show running-config"]).stdout;
        config.lines().filter(|l| l.starts_with("smtp ") || l.starts_with("no smtp")).map(str::to_string).collect()
    };
    assert_eq!(lines(&node), ["no smtp server"]);
    let run = node.run(&["enable", "notify test"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% No notification address: 'notify email ADDRESS' in high-availability configuration\n");

    node.ha(&["notify email ops@example.com"]).expect_code(0);
    let run = node.run(&["enable", "notify test"]);
    assert_eq!(
        run.stderr,
        "% Test notification not sent: no SMTP server is configured: 'smtp server HOST' in configuration mode\n"
    );
    node.run(&["enable", "configure terminal", "smtp server mail.example.com", "smtp user alerts"]).expect_code(0);
    let run = node.run(&["enable", "notify test"]);
    assert_eq!(
        run.stderr,
        "% Test notification not sent: no sender address is configured: 'smtp from ADDRESS' in configuration mode\n"
    );
    node.run(&["enable", "configure terminal", "smtp from coresh@example.com"]).expect_code(0);
    assert_eq!(
        lines(&node),
        ["smtp server mail.example.com tls starttls", "smtp from coresh@example.com", "smtp user alerts"]
    );
    node.run(&["enable", "configure terminal", "no smtp user", "no smtp from", "no smtp server"]).expect_code(0);
    assert_eq!(lines(&node), ["no smtp server"]);
    let run = node.run(&["enable", "configure terminal", "smtp from not-an-address"]);
    assert_ne!(run.code, 0, "a bad sender address is refused");
    assert_eq!(node.run(&["enable", "show audit"]).stdout.matches("notify test").count(), 3);
}

#[test]
fn an_empty_ha_log_says_where_it_comes_from() {
    let node = TestNode::new();
    assert_eq!(
        node.run(&["show logging high-availability"]).stdout,
        "The HA module log is empty: the heartbeat runs in the daemon ('coresh serve') while high availability is enabled.\n"
    );
}
