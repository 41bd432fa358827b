//! Settings drift between a real pair over the trusted channel: `show failover
//! config-diff` beside the primary's, `failover config-sync` on the standby copying them
//! (each line audited there, the request audited on the primary), a sealed SMTP password
//! never copied, and `failover config-sync` refused on the primary.

mod common;

use common::{TestNode, pair};
use serde_json::Value;

fn diff(b: &TestNode) -> Value {
    let out = b.run(&["enable", "show failover config-diff | json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap()
}

fn differing(v: &Value) -> Vec<String> {
    v["settings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["same"] == false)
        .map(|s| s["setting"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_standby_sees_its_drift_and_copies_the_primarys_settings() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    pair(&a, &da, &b);
    b.ha(&[&format!("primary-host {}", da.ssh)]).expect_code(0);
    a.run(&["enable", "configure terminal", "logging host 10.0.0.9 tcp", "smtp user alerts password s3cret"])
        .expect_code(0);
    a.ha(&[
        "heartbeat interval 5",
        "event-hook becomes-primary webhook http://dns.example.com/flip",
        "notify email ops@example.com",
    ])
    .expect_code(0);
    b.run(&["enable", "configure terminal", "logging host 10.0.0.9 udp"]).expect_code(0);
    b.ha(&["heartbeat interval 1", "event-hook fenced command /bin/true"]).expect_code(0);

    let v = diff(&b);
    assert_eq!(differing(&v), ["logging host", "smtp user", "heartbeat interval", "notify email", "event-hook"]);
    assert_eq!(v["differ"], 5);
    let text = b.run(&["enable", "show failover config-diff"]).stdout;
    assert!(text.contains("heartbeat interval 1") && text.contains("heartbeat interval 5"), "{text}");
    assert!(text.contains("smtp user alerts password (sealed)"), "the sealed text is not shown: {text}");
    assert!(text.contains(&format!("5 of {} settings differ from {}", coresh::shared::SHARED.len(), da.ssh)), "{text}");

    let synced = b.run(&["enable", "failover config-sync"]);
    synced.expect_code(0);
    for line in [
        "(config) no logging host 10.0.0.9 port 514",
        "(config) logging host 10.0.0.9 port 514 tcp",
        "(config-ha) heartbeat interval 5",
        "(config-ha) notify email ops@example.com",
        "(config-ha) no event-hook fenced command /bin/true",
        "(config-ha) event-hook becomes-primary webhook http://dns.example.com/flip",
    ] {
        assert!(synced.stdout.contains(line), "{line} not in {}", synced.stdout);
    }
    assert!(synced.stdout.contains("'smtp user alerts' is not copied"), "{}", synced.stdout);
    // Only the password, which cannot travel, differs; set here, all agree.
    assert_eq!(differing(&diff(&b)), ["smtp user"]);
    b.run(&["enable", "configure terminal", "smtp user alerts password other"]).expect_code(0);
    assert!(differing(&diff(&b)).is_empty());
    let again = b.run(&["enable", "failover config-sync"]);
    assert!(again.stdout.contains("already agree"), "{}", again.stdout);

    // Audited on both: each line here as the operator typed it, the request there.
    let audit = b.run(&["enable", "show audit"]).stdout;
    assert!(audit.contains("heartbeat interval 5") && audit.contains("failover config-sync"), "{audit}");
    let audit = a.run(&["enable", "show audit"]).stdout;
    assert!(audit.contains("peer shared-settings request"), "{audit}");
    // The primary's running configuration is unchanged by any of it.
    let config = a.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains(" heartbeat interval 5\n") && !config.contains("fenced"), "{config}");

    let on_primary = a.run(&["enable", "failover config-sync"]);
    on_primary.expect_refused("% Run failover config-sync on the standby");
}

#[test]
fn drift_without_a_peer_to_ask_says_why() {
    let node = TestNode::new();
    node.ha(&["mode secondary"]).expect_code(0);
    let none = node.run(&["enable", "failover config-sync"]);
    none.expect_refused("% No primary-host: set it in (config-ha)# first");
    let no_mate = node.run(&["enable", "show failover config-diff"]);
    no_mate.expect_refused("% No mate");
    let down = node.run(&["enable", "show failover config-diff 127.0.0.1:1"]);
    down.expect_refused("% Cannot ask 127.0.0.1:1 for its settings");
}
