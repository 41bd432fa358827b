//! `failover exec mate`: a line run on the peer over the trusted channel, its output and
//! status brought back; only show commands from user mode, privileged ones with the
//! mate's enable secret; no secrets carried, no reaching further.

mod common;

use common::{TestNode, pair};

#[test]
fn exec_mate_runs_show_commands_and_guards_the_rest() {
    let (a, b) = (TestNode::new(), TestNode::new());
    a.run(&["enable", "configure terminal", "hostname core-a"]).expect_code(0);
    b.run(&["enable", "configure terminal", "hostname core-b"]).expect_code(0);
    let da = a.serve();
    pair(&a, &da, &b);

    // From user mode: show commands run on the mate.
    let shown = b.run(&["failover exec mate show failover"]);
    shown.expect_code(0);
    assert!(shown.stdout.contains("Mode               : primary"), "{}", shown.stdout);
    let json = b.run(&["failover exec mate show version | json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["stdout"].as_str().map(|s| s.contains("core-a")), Some(true), "{v}");

    // Anything else needs enable mode here.
    let refused = b.run(&["failover exec mate failover client-connection disable"]);
    refused.expect_code(3);
    assert!(refused.stderr.contains("From user mode, failover exec runs only show commands"), "{}", refused.stderr);
    // ... and an enable secret on the mate, which the mate checks.
    let no_secret = b.run_with(
        &["enable", "failover exec mate failover client-connection disable"],
        &[],
        &[("CORESH_ENABLE_SECRET", "anything")],
    );
    no_secret.expect_code(3);
    assert!(
        no_secret.stderr.contains("On the mate") && no_secret.stderr.contains("No password set"),
        "{}",
        no_secret.stderr
    );
    a.run(&["enable", "configure terminal", "enable secret mate-secret"]).expect_code(0);
    let wrong = b.run_with(
        &["enable", "failover exec mate failover client-connection disable"],
        &[],
        &[("CORESH_ENABLE_SECRET", "wrong-secret")],
    );
    wrong.expect_code(3);
    assert!(wrong.stderr.contains("Bad secrets"), "{}", wrong.stderr);
    b.run_with(
        &["enable", "failover exec mate failover client-connection disable"],
        &[],
        &[("CORESH_ENABLE_SECRET", "mate-secret")],
    )
    .expect_code(0);
    assert_eq!(a.failover_json()["client_connections"], "disabled");

    // No secrets carried, no reaching further, no peers that are not trusted.
    // (Configuration commands, where secrets are set, are not enable commands.)
    let secret = b.run(&["enable", "failover exec mate username x password s3cret-pass"]);
    secret.expect_code(2);
    assert!(!secret.stderr.contains("s3cret-pass"), "{}", secret.stderr);
    let nested = b.run(&["failover exec mate failover exec mate show version"]);
    assert_ne!(nested.code, 0);
    let stranger = b.run(&["failover exec 127.0.0.1:1 show version"]);
    stranger.expect_code(1);
    assert!(stranger.stderr.contains("is not a trusted host"), "{}", stranger.stderr);

    // Nor does a privileged line reach on from the mate to a third node.
    for line in [
        format!("failover sync {}", da.ssh),
        format!("failover test-connection {}", da.ssh),
        format!("failover validate {}", da.ssh),
    ] {
        let further = b.run_with(
            &["enable", &format!("failover exec mate {line}")],
            &[],
            &[("CORESH_ENABLE_SECRET", "mate-secret")],
        );
        further.expect_code(3);
        assert!(further.stderr.contains("cannot reach another node"), "{line}: {}", further.stderr);
    }

    // The mate's audit log names the operator as the peer's claim, the calling node,
    // its address and its key.
    let audit = a.run_with(&["enable", "show audit"], &[], &[("CORESH_ENABLE_SECRET", "mate-secret")]).stdout;
    let line = audit.lines().find(|l| l.contains("failover client-connection disable")).unwrap_or_default();
    assert!(line.contains("@core-b (claimed)") && line.contains("mate 127.0.0.1 key SHA256:"), "{line:?}\n{audit}");
    assert!(audit.contains("peer exec request (key SHA256:"), "{audit}");
    assert!(!audit.contains("mate-secret") && !audit.contains("s3cret-pass"), "{audit}");

    // Guesses at the mate's enable secret are limited per peer key.
    let guess = |secret: &str| {
        b.run_with(
            &["enable", "failover exec mate failover client-connection enable"],
            &[],
            &[("CORESH_ENABLE_SECRET", secret)],
        )
    };
    for n in 1..=4 {
        assert!(guess(&format!("guess-{n}")).stderr.contains("Bad secrets"));
    }
    let limited = guess("mate-secret");
    limited.expect_code(3);
    assert!(limited.stderr.contains("Too many wrong enable secrets from this peer"), "{}", limited.stderr);
    assert_eq!(a.failover_json()["client_connections"], "disabled", "the refused line did not run");
}

#[test]
fn the_mate_must_be_clear() {
    let node = TestNode::new();
    let none = node.run(&["failover exec mate show version"]);
    none.expect_code(1);
    assert!(none.stderr.contains("No mate: there is no trusted host"), "{}", none.stderr);
    let (x, y) = (TestNode::new(), TestNode::new());
    node.trust("10.0.0.1", &x.local_key()).expect_code(0);
    node.trust("10.0.0.2", &y.local_key()).expect_code(0);
    let two = node.run(&["failover exec mate show version"]);
    two.expect_code(1);
    assert!(
        two.stderr.contains("Which mate? Trusted hosts: 10.0.0.1, 10.0.0.2; use 'failover exec HOST COMMAND'"),
        "{}",
        two.stderr
    );
}

/// The mate's own barrier: a request that carries no enable secret runs only what the
/// grammar declares `readonly`, whatever the asking node decided; and a read-only
/// command of enable mode (`show running-config`) is privileged, so it needs the secret.
#[test]
fn without_the_secret_a_mate_runs_only_read_only_commands() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    pair(&a, &da, &b);
    a.run(&["enable", "configure terminal", "enable secret mate-secret"]).expect_code(0);
    let exec = |line: &str| {
        serde_json::json!({"op": "exec", "line": line, "operator": "tester@core-b", "secret": null}).to_string()
    };
    let key = common::ssh::node_key(&b);
    let asked = [common::ssh::hello("core-b"), exec("show version"), exec("terminal length 5"), exec("enable")];
    let answers = common::ssh::peer_exchange(da.ssh.port(), &key, &asked);
    assert_eq!(answers.len(), 4, "{answers:?}");
    assert_eq!(answers[1]["code"], 0, "{}", answers[1]);
    assert!(answers[1]["stdout"].as_str().unwrap().contains("Software"), "{}", answers[1]);
    for refused in &answers[2..] {
        assert_eq!(refused["code"], 3, "{refused}");
        assert!(refused["stderr"].as_str().unwrap().contains("a mate runs only read-only commands"), "{refused}");
    }
    // The refusals are in the mate's audit log, under the peer's claim.
    let audit = a.run_with(&["enable", "show audit last 20"], &[], &[("CORESH_ENABLE_SECRET", "mate-secret")]);
    assert!(audit.stdout.contains("terminal length 5"), "{}", audit.stdout);

    let no_terminal = b.run(&["enable", "failover exec mate show running-config"]);
    no_terminal.expect_code(3);
    assert!(no_terminal.stderr.contains("needs the mate's enable secret"), "{}", no_terminal.stderr);
    let privileged = b.run_with(
        &["enable", "failover exec mate show running-config"],
        &[],
        &[("CORESH_ENABLE_SECRET", "mate-secret")],
    );
    privileged.expect_code(0);
    assert!(privileged.stdout.contains("enable secret hashed"), "{}", privileged.stdout);
}
