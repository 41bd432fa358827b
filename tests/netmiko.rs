//! netmiko, the network-automation library, drives the console over SSH with its
//! `cisco_ios` driver, unmodified: it finds the prompt, enters privileged mode with the
//! enable secret, runs show commands (text and `| json`), gets the `%` error of an
//! invalid command, applies a configuration set and saves it. The Python virtual
//! environment with the pinned netmiko (tests/netmiko/requirements.txt) is made by
//! `scripts/test`; `CORESH_NETMIKO_PYTHON` may name another interpreter that has it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestNode;

fn python() -> PathBuf {
    match std::env::var_os("CORESH_NETMIKO_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/netmiko-venv/bin/python"),
    }
}

#[test]
fn netmiko_drives_the_console_as_an_ios_device() {
    let python = python();
    assert!(python.exists(), "{} is missing: scripts/test sets up netmiko's virtual environment", python.display());
    let node = TestNode::new();
    let files = tempfile::tempdir().unwrap();
    let (key, public) = common::ssh::new_key(files.path(), "id_ed25519", "automation@test");
    node.run(&[
        "enable",
        "configure terminal",
        "hostname core-a",
        &format!("username admin key {public}"),
        "enable secret netmiko-enable-1",
    ])
    .expect_code(0);
    let daemon = node.serve();
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/netmiko/drive.py");
    let out = Command::new("timeout")
        .args(["120"])
        .arg(&python)
        .arg(&driver)
        .arg(daemon.ssh.port().to_string())
        .arg(&key)
        .arg("netmiko-enable-1")
        .output()
        .expect("run netmiko");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "netmiko failed: {stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let text = |k: &str| seen[k].as_str().unwrap_or_else(|| panic!("{k}: {seen}")).to_string();

    assert_eq!(text("prompt"), "core-a>");
    assert_eq!(text("enable_prompt"), "core-a#");
    assert!(text("show_failover").contains("Mode               : primary"), "{seen}");
    assert_eq!(seen["show_failover_json"]["mode"], "primary");
    assert!(text("invalid").contains("% Invalid input detected at '^' marker."), "{seen}");
    assert!(text("config_set").contains("core-z(config)#"), "{seen}");
    assert_eq!(text("prompt_after_config"), "core-z#");
    assert!(text("save").contains("[OK]"), "{seen}");
    let running = text("running_config");
    assert!(running.contains("hostname core-z") && running.contains("audit retention 400 days"), "{running}");
    // netmiko set the terminal up as for an IOS device.
    let terminal = text("terminal");
    assert!(terminal.contains("511 characters") && terminal.contains("0 (no paging)"), "{terminal}");
    assert!(!seen.to_string().contains("\\u001b"), "escape codes reached netmiko: {seen}");
}
