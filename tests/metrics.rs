//! `GET /metrics`: the Prometheus text format, checked by `promtool check metrics` and
//! scraped by a real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/test`). It is served to this node itself and to the networks named by
//! `metrics allow`, and refused (403) to others: from the client network of a
//! namespace lab (root).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::lab::Lab;
use common::until;

/// `promtool check metrics` on `body`: its exit status and what it said.
fn promtool(body: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The value of the series `series` (name and labels as exposed) in `body`.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let common::Pair { a, b, da } = common::synced_pair("20", "20");
    b.follow(&da.ssh.to_string(), "keep-standby");
    let db = b.serve();
    assert_eq!(da.check_in(1, 1), 200);
    assert_eq!(da.check_in(2, 2), 200);
    assert_eq!(da.post("/api/v1/devices/checkin", Some("not-a-token"), r#"{"seq":3}"#).status, 401);
    until("b's heartbeat reached a", || {
        value(&db.get("/metrics").body, "coresh_heartbeat_probes_total{result=\"success\"}").is_some_and(|n| n >= 1.0)
    });
    let (pa, pb) = (da.get("/metrics"), db.get("/metrics"));
    assert_eq!((pa.status, pb.status), (200, 200));
    for body in [&pa.body, &pb.body] {
        let (ok, said) = promtool(body);
        assert!(ok, "promtool: {said}\n{body}");
    }
    let (ma, mb) = (&pa.body, &pb.body);
    assert_eq!(value(ma, "coresh_mode{mode=\"primary\"}"), Some(1.0), "{ma}");
    assert_eq!(value(mb, "coresh_mode{mode=\"secondary\"}"), Some(1.0), "{mb}");
    assert_eq!(value(mb, "coresh_state{state=\"standby\"}"), Some(1.0), "{mb}");
    assert_eq!(value(ma, "coresh_check_ins_total{result=\"accepted\"}"), Some(2.0), "{ma}");
    assert_eq!(value(ma, "coresh_check_ins_total{result=\"unauthorized\"}"), Some(1.0), "{ma}");
    assert_eq!(value(mb, "coresh_last_sync_success"), Some(1.0), "{mb}");
    assert_eq!(value(mb, "coresh_sync_history_runs{result=\"success\"}"), Some(1.0), "{mb}");
    assert!(value(mb, "coresh_last_sync_duration_seconds").is_some(), "{mb}");
    assert_eq!(value(ma, "coresh_stale"), Some(0.0));
    assert_eq!(value(ma, "coresh_console_sessions"), Some(0.0));
    assert!(value(ma, "coresh_outbox_waiting").is_some());

    // A real Prometheus scrapes both nodes, and its query API answers from what it got.
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: coresh\n    static_configs:\n      - targets: ['{}', '{}']\n",
        da.addr, db.addr
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let mut server = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian's prometheus package)");
    let agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(5))).build().new_agent();
    let query = |q: &str| -> serde_json::Value {
        agent
            .get(&format!("http://127.0.0.1:{port}/api/v1/query"))
            .query("query", q)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    until("Prometheus scraped both nodes", || {
        query("up == 1")["data"]["result"].as_array().is_some_and(|r| r.len() == 2)
    });
    let modes = query("coresh_mode == 1");
    let mut seen: Vec<String> = modes["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"]["mode"].as_str().unwrap_or_default().to_string())
        .collect();
    seen.sort();
    assert_eq!(seen, ["primary", "secondary"], "{modes}");
    let accepted = query(&format!("coresh_check_ins_total{{result=\"accepted\",instance=\"{}\"}}", da.addr));
    assert_eq!(accepted["data"]["result"][0]["value"][1], "2", "{accepted}");
    let _ = server.kill();
    let _ = server.wait();
    drop((a, b));
}

#[test]
fn only_this_node_and_the_named_networks_may_read_the_metrics() {
    let lab = Lab::new(&["a"]);
    let a = lab.node("a");
    let da = lab.serve("a", &a);
    // The test speaks from the client network: not this node.
    let refused = da.get("/metrics");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("metrics allow"), "{}", refused.body);
    let bad = a.run(&["enable", "configure terminal", "metrics allow 10.1.2.300"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not an address or network"), "{}", bad.stderr);
    let net = format!("{}/8", lab.client("a"));
    a.run(&["enable", "configure terminal", &format!("metrics allow {net}")]).expect_code(0);
    until("allowed", || da.get("/metrics").status == 200);
    let config = a.run(&["enable", "show running-config"]).stdout;
    let line = config.lines().find(|l| l.starts_with("metrics allow ")).unwrap_or_default().to_string();
    assert!(line.ends_with("/8") && !line.contains(&net), "the network, not the address: {line}");
    a.run(&["enable", "configure terminal", &format!("no {line}")]).expect_code(0);
    until("refused again", || da.get("/metrics").status == 403);
}
