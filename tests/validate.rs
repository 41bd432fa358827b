//! `failover validate HOST`: the guide's test and validation plan (table 4) from the
//! secondary, passing on a healthy pair and failing each task for its own reason.

mod common;

use common::free_port;
use common::smtp::{SmtpServer, configure};
use common::{Daemon, TestNode, generate};

/// A healthy pair: `a` primary with data, `b` its standby secondary with a fast
/// heartbeat and SMTP on a real server, both with the same shared settings; trust both
/// ways at the daemons' real addresses.
struct Pair {
    a: TestNode,
    b: TestNode,
    da: Daemon,
    db: Daemon,
    smtp: SmtpServer,
    _mail: tempfile::TempDir,
}

fn pair() -> Pair {
    let (a, b) = (TestNode::new(), TestNode::new());
    a.run(&["enable", "configure terminal", "hostname core-a"]).expect_code(0);
    generate(&a, "50", "200");
    let mail = tempfile::tempdir().unwrap();
    let port = free_port();
    let smtp = SmtpServer::start(mail.path(), port);
    configure(&b, port);
    let smtp_server = format!("smtp server 127.0.0.1 port {port} tls none");
    a.run(&["enable", "configure terminal", &smtp_server, "smtp from coresh@example.com"]).expect_code(0);
    a.ha(&[
        "notify email ops@example.com",
        "heartbeat interval 1",
        "heartbeat failures 3",
        "heartbeat recheck-interval 1",
        "on-failure keep-standby",
    ])
    .expect_code(0);
    let da = a.serve();
    let db = b.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    b.follow(&da.ssh.to_string(), "keep-standby");
    db.eventually("a heartbeat reached the primary", |_| {
        b.run(&["show logging high-availability"]).stdout.contains(&format!("heartbeat to {}: ok", da.ssh))
    });
    Pair { a, b, da, db, smtp, _mail: mail }
}

fn validate(p: &Pair) -> (common::Run, serde_json::Value) {
    let line = format!("failover validate {}", p.da.ssh);
    let text = p.b.run(&["enable", &line]);
    let json = p.b.run(&["enable", &format!("{line} | json")]);
    let v = serde_json::from_str(&json.stdout).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    (text, v)
}

/// Each task's pass/fail, in order.
fn verdicts(v: &serde_json::Value) -> Vec<bool> {
    v["tasks"].as_array().unwrap().iter().map(|t| t["passed"] == true).collect()
}

fn evidence(v: &serde_json::Value, i: usize) -> String {
    v["tasks"][i]["evidence"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_healthy_pair_passes_every_task_with_evidence() {
    let p = pair();
    let (text, v) = validate(&p);
    text.expect_code(0);
    assert_eq!(verdicts(&v), [true; 7], "{}", text.stdout);
    assert!(text.stdout.contains("All 7 tasks passed against"), "{}", text.stdout);
    assert!(evidence(&v, 0).contains("Test was successful"), "{v}");
    assert!(evidence(&v, 1).contains("core-a reached core-b"), "{v}");
    assert!(evidence(&v, 3).contains("devices 50 here, 50 on"), "{v}");
    assert!(evidence(&v, 4).contains("Test notification sent to ops@example.com"), "{v}");
    assert!(evidence(&v, 5).contains(": ok"), "{v}");
    assert!(evidence(&v, 6).contains(&format!("all {} shared settings agree", coresh::shared::SHARED.len())), "{v}");
    p.smtp.wait_for("the test mails", |m| m.len() >= 2);
    p.b.assert_same_rows(&p.a);
}

#[test]
fn each_task_fails_for_its_own_reason() {
    let p = pair();
    // The primary's entry for the secondary names a port nobody listens on: only the
    // way back fails.
    p.a.ha(&[&format!("no trusted-host {}", p.db.ssh)]);
    p.a.trust("127.0.0.1:1", &p.b.local_key()).expect_code(0);
    // No SMTP server answers: the test mail fails.
    drop(p.smtp);
    // High availability off on the secondary: no heartbeat runs.
    p.b.ha(&["service disable"]).expect_code(0);
    let (text, v) = validate(&Pair { smtp: SmtpServer::start(p._mail.path(), free_port()), ..p });
    text.expect_code(1);
    assert_eq!(verdicts(&v), [true, false, true, true, false, false, true], "{}", text.stdout);
    assert!(evidence(&v, 1).contains("127.0.0.1:1"), "{v}");
    assert!(evidence(&v, 4).contains("Test notification not sent"), "{v}");
    assert!(evidence(&v, 5).contains("high availability is disabled here"), "{v}");
    assert!(text.stderr.contains("% Validation failed: 3 task(s)"), "{}", text.stderr);
}

#[test]
fn validate_runs_on_the_secondary_and_names_an_unreachable_primary() {
    let p = pair();
    let on_primary = p.a.run(&["enable", &format!("failover validate {}", p.db.ssh)]);
    on_primary.expect_code(1);
    assert!(on_primary.stderr.contains("Run failover validate on the secondary"), "{}", on_primary.stderr);
    let Pair { b, da, .. } = p;
    let target = da.ssh.to_string();
    da.kill_9();
    let (text, v) = {
        let line = format!("failover validate {target}");
        let json = b.run(&["enable", &format!("{line} | json")]);
        (b.run(&["enable", &line]), serde_json::from_str::<serde_json::Value>(&json.stdout).unwrap())
    };
    text.expect_code(1);
    let verdicts = verdicts(&v);
    assert_eq!(verdicts[..4], [false, false, false, false], "{}", text.stdout);
}

#[test]
fn a_secondary_that_cannot_sync_fails_the_sync_and_the_comparison() {
    let p = pair();
    // An active secondary does not sync, so it never got the primary's 50 devices.
    p.b.ha(&["node-status active"]).expect_code(0);
    let (text, v) = validate(&p);
    text.expect_code(1);
    let got = verdicts(&v);
    assert_eq!((got[0], got[2], got[3]), (true, false, false), "{}", text.stdout);
    assert!(evidence(&v, 2).contains("node status is active"), "{v}");
    assert!(evidence(&v, 3).contains("devices 0 here, 50 on"), "{v}");
}
