//! Local users (System Manager local users, the console's operators): created with a
//! password or keys, listed without secrets, printed by running-config in a form that
//! pastes back, refused when malformed, and replicated with the Core data.

mod common;

use common::{TestNode, generate, pair, sync};

#[test]
fn users_are_made_listed_and_removed_without_showing_secrets() {
    let node = TestNode::new();
    let key = TestNode::new().local_key();
    node.run(&[
        "enable",
        "configure terminal",
        "username alice password correct-horse",
        &format!("username alice key {key}"),
        &format!("username bob key {key}"),
    ])
    .expect_code(0);
    let again = node.run(&["enable", "configure terminal", &format!("username alice key {key}")]);
    assert!(again.stdout.contains("alice already has key SHA256:"), "{}", again.stdout);

    let shown = node.run(&["show users"]).stdout;
    assert!(shown.contains("alice") && shown.contains("set") && shown.contains("SHA256:"), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&node.run(&["show users | json"]).stdout).unwrap();
    assert_eq!(json[0]["name"], "alice");
    assert_eq!(json[0]["password"], true);
    assert_eq!(json[1]["password"], false);
    assert!(!node.run(&["show users | json"]).stdout.contains("argon2"), "no hashes in show users");

    let config = node.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains("username alice password hashed $argon2"), "{config}");
    assert!(config.contains(&format!("username bob key {key}")), "{config}");
    for text in [&config, &node.run(&["enable", "show audit"]).stdout] {
        assert!(!text.contains("correct-horse"), "{text}");
    }

    node.run(&["enable", "configure terminal", "no username bob"]).expect_code(0);
    let gone = node.run(&["enable", "configure terminal", "no username bob"]);
    gone.expect_code(1);
    assert_eq!(gone.stderr, "% No user bob\n");
    assert!(!node.run(&["show users"]).stdout.contains("bob"));
}

#[test]
fn malformed_users_keys_and_passwords_are_refused() {
    let node = TestNode::new();
    let cases: &[(&str, &str)] = &[
        ("username -bad password long-enough", "% Invalid user name \"-bad\""),
        ("username alice password short", "% The secret needs at least 8 characters"),
        ("username alice password hashed nothash", "% Not an argon2 hash"),
    ];
    for (line, error) in cases {
        let run = node.run(&["enable", "configure terminal", line]);
        assert_ne!(run.code, 0, "{line} was accepted");
        assert!(run.stderr.starts_with(error), "{line}: {}", run.stderr);
    }
    let run = node.run(&["enable", "configure terminal", "username alice key ssh-ed25519 AAAAnot-a-key"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("% Invalid input detected at '^' marker."), "{}", run.stderr);
    assert!(run.stderr.contains("not an OpenSSH public key"), "{}", run.stderr);
    assert_eq!(
        node.run(&["show users"]).stdout,
        "No local users: 'username NAME password' in configuration mode adds one.\n"
    );
}

#[test]
fn running_config_pastes_users_back_and_sync_replicates_them() {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, "10", "10");
    let key = b.local_key();
    a.run(&["enable", "configure terminal", "username ops password s3cret-pass", &format!("username ops key {key}")])
        .expect_code(0);
    // Pasted into another node, the configuration makes the same users.
    let config = a.run(&["enable", "show running-config"]).stdout;
    let users: Vec<&str> = config.lines().filter(|l| l.starts_with("username ")).collect();
    let c = TestNode::new();
    let mut lines = vec!["enable", "configure terminal"];
    lines.extend(users.iter().copied());
    c.run(&lines).expect_code(0);
    assert_eq!(
        c.run(&["show users | json"]).stdout.replace(|ch: char| ch.is_ascii_digit(), ""),
        a.run(&["show users | json"]).stdout.replace(|ch: char| ch.is_ascii_digit(), "")
    );

    // Users are Core data: a sync brings them, and a later change, to the secondary.
    let da = a.serve();
    pair(&a, &da, &b);
    sync(&b, &da).expect_code(0);
    assert!(b.run(&["show users"]).stdout.contains("ops"));
    a.run(&["enable", "configure terminal", "username second password another-pass"]).expect_code(0);
    let run = sync(&b, &da);
    assert!(run.stdout.contains("completed: changes"), "{}", run.stdout);
    assert!(b.run(&["show users"]).stdout.contains("second"));
}

#[test]
fn a_secret_typed_in_the_wrong_mode_is_kept_nowhere() {
    let node = TestNode::new();
    for line in ["username eve password hunter2-secret", "enable secret hunter2-secret"] {
        let run = node.run_with(&[line], &["--echo"], &[]);
        run.expect_code(3);
        assert!(run.stdout.contains("This command belongs to Global configuration mode"), "{}", run.stdout);
        assert!(run.stdout.contains("<removed>") && !run.stdout.contains("hunter2"), "{}", run.stdout);
    }
    let audit = node.run(&["enable", "show audit"]).stdout;
    assert!(audit.contains("username eve password <removed>"), "{audit}");
    assert!(!audit.contains("hunter2"), "{audit}");
}
