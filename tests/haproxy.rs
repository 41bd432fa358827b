//! The status pages under a real HAProxy configured as the guide's "Load balancer
//! setup" describes: probe /status/status.html on the primary and /hastatus.html on
//! the secondary; send traffic to the secondary only when the primary's probe fails
//! and the secondary shows `Mode: Standby`. HAProxy comes from Debian (`.ci/run`
//! installs it).

mod common;

use std::process::{Child, Command, Stdio};

use common::{Daemon, TestNode};

/// A port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Haproxy(Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy(dir: &std::path::Path, front: u16, primary: &Daemon, secondary: &Daemon) -> Haproxy {
    let config = format!(
        r#"global
    maxconn 64
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend core_vip
    bind 127.0.0.1:{front}
    default_backend cores
backend primary_probe
    option httpchk
    http-check send meth GET uri /status/status.html
    http-check expect string MOBILEIRON-STATUS:\ OK
    server primary {p} check inter 100ms fall 2 rise 2
backend standby_probe
    option httpchk
    http-check send meth GET uri /hastatus.html
    http-check expect string MOBILEIRON-STATUS:\ OK\ (Mode:\ Standby)
    server secondary {s} check inter 100ms fall 2 rise 2
backend cores
    server primary {p} track primary_probe/primary
    server secondary {s} track standby_probe/secondary backup
"#,
        p = primary.addr,
        s = secondary.addr
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("haproxy is not installed: apt-get install haproxy (.ci/run does)");
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    Haproxy(child)
}

/// Which node answers `/status.json` through the load balancer (or the HTTP status).
fn served_by(front: u16) -> Result<String, u16> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(5)))
        .build()
        .into();
    match agent.get(&format!("http://127.0.0.1:{front}/status.json")).call() {
        Ok(mut resp) if resp.status() == 200 => {
            let body = resp.body_mut().read_to_string().unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            Ok(v["node_id"].as_str().unwrap_or_default().to_string())
        }
        Ok(resp) => Err(resp.status().as_u16()),
        Err(_) => Err(0),
    }
}

fn until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never: {what}");
}

fn node_id(d: &Daemon) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.get("/status.json").body).unwrap();
    v["node_id"].as_str().unwrap().to_string()
}

#[test]
fn haproxy_fails_over_to_a_standby_and_only_to_a_standby() {
    let (a, b) = (TestNode::new(), TestNode::new());
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    let primary = a.serve();
    let secondary = b.serve();
    let (pid, sid) = (node_id(&primary), node_id(&secondary));
    let front = free_port();
    let _lb = haproxy(a.path(), front, &primary, &secondary);

    until("traffic goes to the primary", || served_by(front) == Ok(pid.clone()));
    // The primary dies: its probe fails, the secondary shows Mode: Standby: fail over.
    primary.kill_9();
    until("traffic goes to the standby", || served_by(front) == Ok(sid.clone()));

    // A secondary that is not in standby is no failover target.
    b.run(&["enable", "configure terminal", "high-availability", "node-status active"]).expect_code(0);
    until("secondary reports Mode: Primary", || secondary.get("/hastatus.html").body.ends_with("(Mode: Primary)"));
    until("no server left", || served_by(front) == Err(503));
}

#[test]
fn haproxy_keeps_traffic_on_a_healthy_primary() {
    let (a, b) = (TestNode::new(), TestNode::new());
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    let primary = a.serve();
    let secondary = b.serve();
    let pid = node_id(&primary);
    let front = free_port();
    let _lb = haproxy(b.path(), front, &primary, &secondary);
    until("traffic goes to the primary", || served_by(front) == Ok(pid.clone()));
    for _ in 0..20 {
        assert_eq!(served_by(front), Ok(pid.clone()));
    }
    drop(secondary);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(served_by(front), Ok(pid), "losing the standby moves nothing");
}
