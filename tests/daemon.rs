//! The node daemon over real HTTP: status pages, device registration and check-in,
//! client connections switched off and on by the shell, bad requests, clean shutdown.

mod common;

use common::{Daemon, TestNode};

const SECRET: &str = "enroll-me-please";

fn registration(uuid: &str, secret: &str) -> String {
    format!(
        r#"{{"enrollment_secret":"{secret}","uuid":"{uuid}","user":"alice","platform":"ios","model":"iPhone15,2","os_version":"17.1"}}"#
    )
}

fn register(d: &Daemon, uuid: &str) -> String {
    let r = d.post("/api/v1/devices/register", None, &registration(uuid, SECRET));
    assert_eq!(r.status, 201, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["token"].as_str().unwrap().to_string()
}

fn open_enrollment(node: &TestNode) {
    node.run(&["enable", "configure terminal", &format!("enrollment-secret {SECRET}")]).expect_code(0);
}

#[test]
fn status_pages_follow_the_mode() {
    let node = TestNode::new();
    let d = node.serve();
    let page = d.get("/status/status.html");
    assert_eq!((page.status, page.body.as_str()), (200, "MOBILEIRON-STATUS: OK"));
    assert_eq!(d.get("/hastatus.html").body, "MOBILEIRON-STATUS: OK (Mode: Primary)");
    node.run(&["enable", "failover mode secondary"]).expect_code(0);
    d.eventually("hastatus shows Standby", |d| d.get("/hastatus.html").body == "MOBILEIRON-STATUS: OK (Mode: Standby)");
    assert_eq!(d.get("/status/status.html").body, "MOBILEIRON-STATUS: OK");
    node.run(&["enable", "failover mode primary"]).expect_code(0);
    d.eventually("hastatus shows Primary", |d| d.get("/hastatus.html").body == "MOBILEIRON-STATUS: OK (Mode: Primary)");
    let json: serde_json::Value = serde_json::from_str(&d.get("/status.json").body).unwrap();
    assert_eq!(json["mode"], "primary");
    assert_eq!(json["epoch"], 1);
    assert_eq!(json["healthy"], true);
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert!(json["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(d.get("/nope").status, 404);
    assert_eq!(d.post("/hastatus.html", None, "").status, 405);
    assert!(d.stop().success());
}

#[test]
fn devices_register_and_check_in() {
    let node = TestNode::new();
    let d = node.serve();
    let closed = d.post("/api/v1/devices/register", None, &registration("dev-1", SECRET));
    assert_eq!(closed.status, 403, "{}", closed.body);
    assert!(closed.body.contains("enrollment is closed"), "{}", closed.body);
    open_enrollment(&node);
    d.eventually("enrollment opens", |d| {
        d.post("/api/v1/devices/register", None, &registration("dev-0", SECRET)).status == 201
    });
    let wrong = d.post("/api/v1/devices/register", None, &registration("dev-1", "not-the-secret"));
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let token = register(&d, "dev-1");
    assert_eq!(token.len(), 64);
    for n in 1..=3 {
        let r = d.post("/api/v1/devices/checkin", Some(&token), &format!(r#"{{"seq":{n},"os_version":"17.2"}}"#));
        assert_eq!(r.status, 200, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["checkins"], n);
    }
    let run = node.run(&["show core summary | json"]);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!((summary["users"].as_u64(), summary["devices"].as_u64()), (Some(1), Some(2)));
    assert_eq!(summary["events"], 5, "2 registrations and 3 check-ins");
    let devices = node.run(&["show devices last 1"]).stdout;
    assert!(devices.contains("dev-1") && devices.contains("17.2") && devices.contains("alice"), "{devices}");
    // An enrolled device registers again only when an operator lets it; then its new
    // token replaces the old one.
    let again = d.post("/api/v1/devices/register", None, &registration("dev-1", SECRET));
    assert_eq!(again.status, 409, "{}", again.body);
    node.run(&["enable", "configure terminal", "device re-enroll dev-1"]).expect_code(0);
    let fresh = register(&d, "dev-1");
    assert_eq!(d.post("/api/v1/devices/checkin", Some(&token), "{}").status, 401);
    assert_eq!(d.post("/api/v1/devices/checkin", Some(&fresh), "{}").status, 200);
    assert!(d.stop().success());
}

#[test]
fn bad_device_requests_are_refused() {
    let node = TestNode::new();
    open_enrollment(&node);
    let d = node.serve();
    let token = register(&d, "dev-1");
    let cases: &[(&str, Option<&str>, String, u16)] = &[
        ("/api/v1/devices/checkin", None, "{}".into(), 401),
        ("/api/v1/devices/checkin", Some("0000"), "{}".into(), 401),
        ("/api/v1/devices/checkin", Some(&token), "{not json".into(), 400),
        ("/api/v1/devices/checkin", Some(&token), "".into(), 400),
        ("/api/v1/devices/checkin", Some(&token), r#"{"battery":900}"#.into(), 400),
        ("/api/v1/devices/checkin", Some(&token), format!(r#"{{"os_version":"{}"}}"#, "x".repeat(20_000)), 413),
        ("/api/v1/devices/register", None, r#"{"uuid":"x"}"#.into(), 400),
        ("/api/v1/devices/register", None, registration("", SECRET), 400),
        ("/api/v1/devices/register", None, registration("a\u{0007}b", SECRET), 400),
        ("/api/v1/devices/register", None, registration(&"u".repeat(200), SECRET), 400),
        ("/api/v1/devices/register", None, registration("dev-2", SECRET).replace("}", r#","extra":1}"#), 400),
    ];
    for (path, token, body, status) in cases {
        let r = d.post(path, *token, body);
        assert_eq!(r.status, *status, "{path} {body:.60}: {}", r.body);
        assert!(r.body.starts_with("{\"error\":"), "{}", r.body);
    }
    assert_eq!(d.get("/api/v1/devices/checkin").status, 405);
    let summary: serde_json::Value = serde_json::from_str(&node.run(&["show core summary | json"]).stdout).unwrap();
    assert_eq!(summary["devices"], 1, "nothing registered by a bad request");
    assert_eq!(d.get("/status/status.html").body, "MOBILEIRON-STATUS: OK");
    assert!(d.stop().success());
}

#[test]
fn disabled_client_connections_get_503_until_enabled() {
    let node = TestNode::new();
    open_enrollment(&node);
    let d = node.serve();
    let token = register(&d, "dev-1");
    node.run(&["enable", "failover client-connection disable"]).expect_code(0);
    d.eventually("check-ins refused", |d| d.post("/api/v1/devices/checkin", Some(&token), "{}").status == 503);
    let r = d.post("/api/v1/devices/checkin", Some(&token), "{}");
    assert_eq!(r.retry_after.as_deref(), Some("120"));
    assert!(r.body.contains("client connections are disabled"), "{}", r.body);
    assert_eq!(d.post("/api/v1/devices/register", None, &registration("dev-2", SECRET)).status, 503);
    assert_eq!(d.get("/status/status.html").body, "MOBILEIRON-STATUS: OK", "status pages keep answering");
    assert_eq!(d.get("/hastatus.html").status, 200);
    node.run(&["enable", "failover client-connection enable"]).expect_code(0);
    d.eventually("check-ins accepted again", |d| d.post("/api/v1/devices/checkin", Some(&token), "{}").status == 200);
    assert!(d.stop().success());
}

#[test]
fn a_standby_refuses_device_traffic() {
    let node = TestNode::new();
    open_enrollment(&node);
    node.run(&["enable", "failover mode secondary"]).expect_code(0);
    let d = node.serve();
    let r = d.post("/api/v1/devices/register", None, &registration("dev-1", SECRET));
    assert_eq!(r.status, 503);
    assert!(r.body.contains("standby"), "{}", r.body);
    assert!(d.stop().success());
}

#[test]
fn sigterm_stops_cleanly_and_logs_to_the_node_log() {
    let node = TestNode::new();
    let d = node.serve();
    assert_eq!(d.get("/status/status.html").status, 200);
    let log = d.log.clone();
    assert!(d.stop().success());
    let lines = log.lock().unwrap().join("\n");
    assert!(lines.contains("SIGTERM: shutting down") && lines.contains("coresh node stopped"), "{lines}");
    let file = std::fs::read_to_string(node.data_dir().join("coresh.log")).unwrap();
    assert!(file.contains("coresh node serving") && file.contains("coresh node stopped"), "{file}");
    assert!(!file.contains('\x1b'), "no colours in the log file");
}

#[test]
fn a_second_daemon_on_the_same_port_fails_clearly() {
    let node = TestNode::new();
    let d = node.serve();
    let other = TestNode::new();
    let run = other.run_with(&[], &["serve", "--http-listen", &d.addr.to_string()], &[]);
    run.expect_code(1);
    assert!(run.stderr.contains("cannot listen on"), "{}", run.stderr);
}

fn atlas_records(node: &TestNode) -> serde_json::Value {
    let run = node.run(&["show core summary | json"]);
    run.expect_code(0);
    serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()["atlas"].clone()
}

#[test]
fn atlas_data_lives_in_its_own_store_only_when_enabled() {
    let node = TestNode::new();
    open_enrollment(&node);
    let d = node.serve();
    let token = register(&d, "dev-1");
    assert_eq!(d.post("/api/v1/devices/checkin", Some(&token), r#"{"battery":80}"#).status, 200);
    assert!(!node.data_dir().join("atlas.db").exists(), "no Atlas store while Atlas is off");
    assert_eq!(atlas_records(&node), serde_json::Value::Null);

    let run = node.run(&["enable", "configure terminal", "atlas enable"]);
    run.expect_code(0);
    assert!(run.stdout.contains("enable it on the HA peer too"), "{}", run.stdout);
    assert!(node.data_dir().join("atlas.db").exists());
    d.eventually("check-ins reach Atlas", |d| {
        assert_eq!(d.post("/api/v1/devices/checkin", Some(&token), r#"{"battery":79}"#).status, 200);
        atlas_records(&node).as_u64() > Some(0)
    });
    node.run(&["enable", "configure terminal", "atlas disable"]).expect_code(0);
    // Once the daemon has seen the change, check-ins stop reaching Atlas; the store stays.
    d.eventually("Atlas off in the daemon", |d| {
        let before = atlas_records(&node);
        assert_eq!(d.post("/api/v1/devices/checkin", Some(&token), r#"{"battery":78}"#).status, 200);
        atlas_records(&node) == before
    });
    assert!(node.data_dir().join("atlas.db").exists(), "disabling Atlas deletes nothing");
    let config = node.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains("\natlas disable\n"), "{config}");
    assert!(d.stop().success());
}

#[test]
fn repeated_wrong_enrollment_secrets_lock_the_address_out() {
    let node = TestNode::new();
    open_enrollment(&node);
    let d = node.serve();
    for i in 0..5 {
        let r = d.post("/api/v1/devices/register", None, &registration(&format!("x-{i}"), "wrong-secret"));
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let r = d.post("/api/v1/devices/register", None, &registration("dev-1", SECRET));
    assert_eq!(r.status, 429, "even the right secret waits: {}", r.body);
    let wait: u64 = r.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let summary: serde_json::Value = serde_json::from_str(&node.run(&["show core summary | json"]).stdout).unwrap();
    assert_eq!(summary["devices"], 0);
    let log = d.log.clone();
    assert!(d.stop().success());
    assert!(log.lock().unwrap().iter().any(|l| l.contains("wrong enrollment secret")));
}

#[test]
fn the_load_driver_checks_in_as_generated_devices() {
    let node = TestNode::new();
    node.run_with(&[], &["data", "generate", "--devices", "50", "--events", "10"], &[]).expect_code(0);
    let d = node.serve();
    let target = d.addr.to_string();
    let args = [
        "load",
        "--target",
        &target,
        "--rate",
        "200",
        "--seconds",
        "1",
        "--connections",
        "4",
        "--devices",
        "50",
        "--json",
    ];
    let run = node.run_with(&[], &args, &[]);
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["failed"], 0, "{report}");
    let ok = report["ok"].as_u64().unwrap();
    assert!(ok > 100, "{report}");
    let summary: serde_json::Value = serde_json::from_str(&node.run(&["show core summary | json"]).stdout).unwrap();
    assert_eq!(summary["events"].as_u64(), Some(10 + ok), "every acknowledged check-in is an event");
    // Devices that were never generated are refused, and the driver says so.
    let wrong = ["load", "--target", &target, "--rate", "50", "--seconds", "0.2", "--connections", "1", "--seed", "7"];
    node.run_with(&[], &wrong, &[]).expect_code(1);
}

/// Check-ins that never pause: a checkpoint beside such a writer never catches up by
/// itself, and the WAL grew by every page written (640 MB in 20 s at 5,000/s). Now it
/// starts over (its salts change) while the load runs, and its file stays within the
/// size it is cut back to (64 MiB) and a pass's growth.
#[test]
fn the_wal_starts_over_under_steady_check_ins() {
    let node = TestNode::new();
    common::generate(&node, "20000", "10");
    let d = node.serve();
    let target = d.addr.to_string();
    let args =
        ["load", "--target", &target, "--rate", "0", "--seconds", "300", "--connections", "16", "--devices", "20000"];
    let mut load = node
        .command()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let (mut salts, mut largest) = (std::collections::BTreeSet::new(), 0);
    while salts.len() < 4 && started.elapsed() < std::time::Duration::from_secs(240) {
        if let Some((salt, size)) = common::wal_state(&node) {
            salts.insert(salt);
            largest = largest.max(size);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = load.kill();
    let _ = load.wait();
    assert!(salts.len() >= 4, "the WAL started over {} times in {:?}", salts.len() - 1, started.elapsed());
    assert!(largest <= 128 << 20, "the WAL file reached {largest} bytes");
    assert!(d.stop().success());
}

/// `coresh serve`, `load` and `lab` run in `coresh-node`, installed beside `coresh`:
/// the daemon started through `coresh` keeps the process id it was started with (the
/// process is replaced, not forked), and a `coresh` without `coresh-node` beside it
/// says so, with the path it looked at, and touches nothing.
#[test]
fn serve_runs_in_the_node_binary_beside_the_shell() {
    let node = TestNode::new();
    let d = node.serve();
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.child.id())).unwrap();
    assert_eq!(comm.trim(), "coresh-node");
    assert_eq!(d.get("/status/status.html").status, 200);
    drop(d);

    let lone = tempfile::tempdir().unwrap();
    let shell = common::install(lone.path(), &["coresh"]).remove(0);
    let before: Vec<_> =
        std::fs::read_dir(node.data_dir()).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    for args in [&["serve"][..], &["load", "--target", "127.0.0.1:9"], &["lab", "down", "--dir", "/nonexistent"]] {
        let out = node.command_of(&shell).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let expected = format!("% cannot start {}/coresh-node", lone.path().display());
        assert!(stderr.starts_with(&expected), "{args:?}: {stderr}");
    }
    let after: Vec<_> =
        std::fs::read_dir(node.data_dir()).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    assert_eq!(before, after);
    // The shell itself needs nothing beside it.
    let out = node.command_of(&shell).args(["-c", "show version"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Both binaries carry GCC's unwinder instead of loading libgcc_s.so.1 (build.rs; one
/// shared library less at every shell start): the dynamic loader's own list of what
/// each one loads has no libgcc_s, and neither has a running daemon's memory map. That
/// the unwinder still works is shown by the unit tests that catch a panic (a write to
/// the Core data that panics, `should_panic`), linked the same way.
#[test]
fn neither_binary_loads_the_shared_gcc_unwinder() {
    for binary in [common::binary(), common::node_binary()] {
        let out = std::process::Command::new(binary).env("LD_TRACE_LOADED_OBJECTS", "1").output().unwrap();
        let loaded = String::from_utf8_lossy(&out.stdout);
        assert!(loaded.contains("libc.so.6"), "{binary}: {loaded}");
        assert!(!loaded.contains("libgcc_s"), "{binary}: {loaded}");
    }
    let node = TestNode::new();
    let d = node.serve();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", d.child.id())).unwrap();
    assert!(maps.contains("libc.so.6"), "{maps}");
    assert!(!maps.contains("libgcc_s"), "{maps}");
    assert!(d.stop().success());
}
