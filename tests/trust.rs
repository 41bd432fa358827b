//! Trust between nodes (the guide's step 4): node keys, trusted hosts, and
//! `failover test-connection` between real daemons, with each failure named; and the
//! real OpenSSH client showing that a peer key opens the replication channel only.

mod common;

use std::process::Stdio;

use common::{Daemon, TestNode};

fn test_connection(node: &TestNode, peer: &Daemon) -> common::Run {
    node.run(&["enable", &format!("failover test-connection {}", peer.ssh)])
}

#[test]
fn the_node_key_is_stable_and_shown_with_its_fingerprint() {
    let node = TestNode::new();
    let run = node.run(&["show ssh local-key"]);
    run.expect_code(0);
    assert!(run.stdout.starts_with("ssh-ed25519 AAAA"), "{}", run.stdout);
    assert!(run.stdout.contains("\nFingerprint: SHA256:"), "{}", run.stdout);
    let json: serde_json::Value = serde_json::from_str(&node.run(&["show ssh local-key | json"]).stdout).unwrap();
    assert!(json["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert_eq!(node.local_key(), node.local_key());
}

#[test]
fn trusted_hosts_are_added_listed_and_removed() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let key_b = b.local_key();
    let run = a.trust("core-b.example.com:2222", &format!("{key_b} admin@core-b"));
    run.expect_code(0);
    assert!(run.stdout.contains("core-b.example.com:2222 trusted with key SHA256:"), "{}", run.stdout);
    let list = a.run(&["show trusted-hosts | json"]);
    let rows: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(rows[0]["host"], "core-b.example.com:2222");
    assert_eq!(rows[0]["key"], key_b);
    assert!(a.run(&["show trusted-hosts"]).stdout.contains("core-b.example.com:2222"));
    let bad = a.trust("core-c", "ssh-ed25519 not-a-key");
    bad.expect_code(2);
    assert!(bad.stderr.contains("not an OpenSSH public key"), "{}", bad.stderr);
    a.trust("-oProxyCommand=x", &key_b).expect_code(2);
    let own = a.trust("core-a", &a.local_key());
    own.expect_code(1);
    assert!(own.stderr.contains("this node's own key"), "{}", own.stderr);
    a.ha(&["no trusted-host core-b.example.com:2222"]).expect_code(0);
    assert_eq!(a.run(&["show trusted-hosts"]).stdout, "No trusted hosts.\n");
    let again = a.ha(&["no trusted-host core-b.example.com:2222"]);
    again.expect_code(1);
}

#[test]
fn test_connection_succeeds_both_ways_once_keys_are_exchanged() {
    let (a, b) = (TestNode::new(), TestNode::new());
    b.run(&["enable", "configure terminal", "hostname core-b"]).expect_code(0);
    let (da, db) = (a.serve(), b.serve());
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    let ab = test_connection(&a, &db);
    ab.expect_code(0);
    assert!(ab.stdout.starts_with("Test was successful\n"), "{}", ab.stdout);
    assert!(ab.stdout.contains("core-b"), "{}", ab.stdout);
    let ba = test_connection(&b, &da);
    ba.expect_code(0);
    assert!(ba.stdout.starts_with("Test was successful\n"), "{}", ba.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&a.run(&["enable", &format!("failover test-connection {} | json", db.ssh)]).stdout)
            .unwrap();
    assert_eq!(json["result"], "success");
    assert_eq!(json["peer_hostname"], "core-b");
    // Peer links offer AES-256-GCM first (this CPU has AES instructions) and take it.
    assert_eq!(json["cipher"], "aes256-gcm@openssh.com");
    assert!(ab.stdout.contains("Cipher        : aes256-gcm@openssh.com"), "{}", ab.stdout);
}

#[test]
fn test_connection_names_each_failure() {
    let (a, b, c) = (TestNode::new(), TestNode::new(), TestNode::new());
    let (da, db) = (a.serve(), b.serve());
    let peer = db.ssh.to_string();

    let run = test_connection(&a, &db);
    run.expect_code(1);
    assert!(run.stderr.contains(&format!("Test failed: {peer} is not a trusted host")), "{}", run.stderr);

    // Trusted under a key that is not the one B presents.
    a.trust(&peer, &c.local_key()).expect_code(0);
    let run = test_connection(&a, &db);
    run.expect_code(1);
    assert!(
        run.stderr.contains("presented host key SHA256:") && run.stderr.contains("not the trusted key"),
        "{}",
        run.stderr
    );

    // A trusts B, but B does not trust A.
    a.trust(&peer, &b.local_key()).expect_code(0);
    let run = test_connection(&a, &db);
    run.expect_code(1);
    assert!(run.stderr.contains("does not trust this node's key SHA256:"), "{}", run.stderr);

    // Nothing listening.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    a.trust(&gone.to_string(), &b.local_key()).expect_code(0);
    let run = a.run(&["enable", &format!("failover test-connection {gone}")]);
    run.expect_code(1);
    assert!(run.stderr.contains(&format!("Test failed: cannot reach {gone}")), "{}", run.stderr);
    drop(da);
}

#[test]
fn test_connection_refuses_a_version_mismatch_and_says_which_to_upgrade() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let db = b.daemon().env("CORESH_TEST_REPORTED_VERSION", "99.0.0").start();
    a.trust(&db.ssh.to_string(), &b.local_key()).expect_code(0);
    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    let run = test_connection(&a, &db);
    run.expect_code(1);
    let expected = format!(
        "% Test failed: version mismatch: this node runs coresh {}, {} runs coresh 99.0.0; both must run the same release (upgrade this node)\n",
        env!("CARGO_PKG_VERSION"),
        db.ssh
    );
    assert_eq!(run.stderr, expected);
}

#[test]
fn a_peer_key_opens_the_replication_channel_and_never_a_shell() {
    let (a, b, stranger) = (TestNode::new(), TestNode::new(), TestNode::new());
    let db = b.serve();
    b.trust("core-a", &a.local_key()).expect_code(0);
    let key = common::ssh::node_key(&a);
    let port = db.ssh.port();

    // The replication subsystem answers a hello with B's own.
    let answers = common::ssh::peer_exchange(port, &key, &[common::ssh::hello("a")]);
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["software"], "coresh");

    // A shell, a command, or a terminal: refused.
    let ssh = |key: &std::path::Path, args: &[&str]| {
        common::ssh::with_key(port, key).args(args).stdin(Stdio::null()).output().unwrap()
    };
    let out = ssh(&key, &["-T", "coresh-peer@127.0.0.1"]);
    assert!(!out.status.success(), "a peer got a shell");
    let out = ssh(&key, &["coresh-peer@127.0.0.1", "show", "version"]);
    assert!(!out.status.success() && out.stdout.is_empty(), "a peer ran a command: {:?}", out);
    // A key that is not trusted, or another user name: no login at all.
    let out = ssh(&common::ssh::node_key(&stranger), &["-T", "coresh-peer@127.0.0.1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{:?}", out);
    let out = ssh(&key, &["-T", "admin@127.0.0.1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{:?}", out);
}

#[test]
fn ipv6_peers_are_reached_in_brackets() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let db = b.daemon().ssh("[::1]:0").start();
    assert!(db.ssh.is_ipv6(), "{}", db.ssh);
    let peer = format!("[::1]:{}", db.ssh.port());
    a.trust(&peer, &b.local_key()).expect_code(0);
    let da = a.serve();
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    let run = a.run(&["enable", &format!("failover test-connection {peer}")]);
    run.expect_code(0);
    assert!(run.stdout.starts_with("Test was successful"), "{}", run.stdout);
}
