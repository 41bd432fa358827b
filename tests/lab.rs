//! `coresh lab up` / `lab down`: a pair and a DR node on this machine, working (status
//! pages, HA following, device traffic streamed on to both followers), and nothing left
//! behind once it is down.

mod common;

use std::process::Command;

use common::binary;

fn coresh(args: &[&str]) -> common::Run {
    let out = Command::new(binary()).args(args).env_remove("CORESH_DATA_DIR").output().expect("coresh");
    common::Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

fn get(url: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    agent.get(url).call().ok()?.body_mut().read_to_string().ok()
}

fn change(data_dir: &str) -> i64 {
    let run = coresh(&["--data-dir", data_dir, "-c", "show core summary | json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    v["change"].as_i64().unwrap_or(0)
}

/// Takes a lab down when a test ends, passed or failed (a failed test left its daemons
/// and their device load running, and every later test and benchmark shared the
/// machine with them).
struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = coresh(&["lab", "down", "--dir", self.0.to_str().unwrap_or_default()]);
        }
    }
}

#[test]
fn a_lab_comes_up_working_and_goes_down_without_a_trace() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("lab");
    let dir_s = dir.to_str().unwrap();
    let _down = Down(dir.clone());
    let up = coresh(&["lab", "up", "--nodes", "3", "--dir", dir_s]);
    up.expect_code(0);
    let lab: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("lab.json")).unwrap()).unwrap();
    let nodes = lab["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 3);

    // Each node's status page, as the output names it.
    let expected = ["Mode: Primary", "Mode: Standby", "Mode: Standby"];
    for (node, mode) in nodes.iter().zip(expected) {
        let url = format!("http://{}/hastatus.html", node["http"].as_str().unwrap());
        assert!(up.stdout.contains(&url), "{url} not printed:\n{}", up.stdout);
        let page = get(&url).unwrap_or_default();
        assert!(page.contains(mode), "{url}: {page}");
    }
    // The DR node follows the secondary, which follows the primary; both synced.
    let data = |i: usize| nodes[i]["data_dir"].as_str().unwrap().to_string();
    for (i, upstream) in [(1, 0), (2, 1)] {
        let shown = coresh(&["--data-dir", &data(i), "-c", "show failover"]).stdout;
        let primary = nodes[upstream]["ssh"].as_str().unwrap();
        assert!(shown.contains(&format!("Primary host       : {primary}")), "{shown}");
        assert!(shown.contains("success"), "not synced: {shown}");
    }
    // Device traffic flows into the primary.
    let before = change(&data(0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while change(&data(0)) == before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(change(&data(0)) > before, "no device traffic reached the primary");
    // It streams on to the secondary and the DR node as it commits.
    let reached = change(&data(0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while (change(&data(1)) < reached || change(&data(2)) < reached) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(change(&data(1)) >= reached && change(&data(2)) >= reached, "the traffic did not stream on");

    let pids: Vec<u32> = nodes
        .iter()
        .map(|n| n["pid"].as_u64().unwrap() as u32)
        .chain(lab["load_pid"].as_u64().map(|p| p as u32))
        .collect();
    let twice = coresh(&["lab", "up", "--dir", dir_s]);
    twice.expect_code(1);
    assert!(twice.stderr.contains("a lab is up in") && twice.stderr.contains("lab down --dir"), "{}", twice.stderr);
    let down = coresh(&["lab", "down", "--dir", dir_s]);
    down.expect_code(0);
    assert!(!dir.exists(), "the lab directory is still there");
    for pid in pids {
        assert!(!coresh::lab::alive(pid), "process {pid} still runs");
    }
    for node in &nodes {
        let http = node["http"].as_str().unwrap();
        assert!(std::net::TcpStream::connect(http).is_err(), "{http} still answers");
    }
}

#[test]
fn lab_refuses_what_it_should_and_touches_nothing_else() {
    let parent = tempfile::tempdir().unwrap();
    let busy = parent.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "mine").unwrap();
    let busy_s = busy.to_str().unwrap();
    let up = coresh(&["lab", "up", "--dir", busy_s]);
    up.expect_code(1);
    assert!(up.stderr.contains("exists and is not empty"), "{}", up.stderr);
    let down = coresh(&["lab", "down", "--dir", busy_s]);
    down.expect_code(1);
    assert!(down.stderr.contains("no lab in") && down.stderr.contains("nothing was touched"), "{}", down.stderr);
    assert_eq!(std::fs::read_to_string(busy.join("keep.txt")).unwrap(), "mine");
    let four = coresh(&["lab", "up", "--nodes", "4", "--dir", parent.path().join("four").to_str().unwrap()]);
    four.expect_code(1);
    assert!(four.stderr.contains("--nodes is 2"), "{}", four.stderr);
}
