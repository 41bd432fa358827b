//! A real HAProxy configured as the guide's "Load balancer setup" says: probe
//! `/status/status.html` on the primary and `/hastatus.html` on the secondary; fail over
//! only when the primary's probe fails while the secondary shows `Mode: Standby`; never
//! move traffic back by itself (manual resume). The last point is a latch in a stick
//! table: set once by the failover condition, cleared only by an operator (`clear table
//! latch` on HAProxy's runtime socket, or a reload). HAProxy comes from Debian
//! (`scripts/test` installs it).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// What both configurations share.
const DEFAULTS: &str = r#"global
    maxconn 64
defaults
    mode http
    # A dead server refuses at once; HAProxy would wait a turn-around of min(timeout
    # connect, 1 s) before each retry and hold the request meanwhile.
    retries 1
    timeout connect 500ms
    timeout client 5s
    timeout server 5s
"#;

/// The configuration, for a VIP on `front` and the two Cores' HTTP addresses.
pub fn config(front: SocketAddr, primary: SocketAddr, secondary: SocketAddr) -> String {
    format!(
        r#"{DEFAULTS}frontend core_vip
    bind {front}
    # The failover latch: set once the primary's probe fails while the secondary shows
    # Mode: Standby; never cleared by itself (the guide's Manual Resume = Yes).
    http-request track-sc0 int(1) table latch
    http-request sc-set-gpt0(0) 1 if {{ nbsrv(primary_probe) eq 0 }} {{ nbsrv(standby_probe) gt 0 }}
    use_backend secondary if {{ sc_get_gpt0(0) eq 1 }}
    default_backend primary
backend latch
    stick-table type integer size 1 store gpt0
backend primary_probe
    option httpchk
    http-check send meth GET uri /status/status.html
    http-check expect string MOBILEIRON-STATUS:\ OK
    server primary {primary} check inter 100ms fall 2 rise 2
backend standby_probe
    option httpchk
    http-check send meth GET uri /hastatus.html
    http-check expect string MOBILEIRON-STATUS:\ OK\ (Mode:\ Standby)
    server secondary {secondary} check inter 100ms fall 2 rise 2
backend primary
    server primary {primary} track primary_probe/primary
backend secondary
    server secondary {secondary}
"#
    )
}

/// A configuration from the guide's text alone, with no latch: the primary probed on
/// `/status/status.html` (anything but OK is a failure), the secondary a backup probed on
/// `/hastatus.html` (its OK says it is up and running), and first-alive stickiness (a
/// client stays on the server it first reached while that one is up). Only the status
/// pages decide where a new client goes.
pub fn guide_config(front: SocketAddr, primary: SocketAddr, secondary: SocketAddr) -> String {
    format!(
        r#"{DEFAULTS}frontend core_vip
    bind {front}
    default_backend core
backend core
    stick-table type ip size 1k
    stick on src
    server primary {primary} track primary_probe/primary
    server secondary {secondary} backup track secondary_probe/secondary
backend primary_probe
    option httpchk
    http-check send meth GET uri /status/status.html
    http-check expect string MOBILEIRON-STATUS:\ OK
    server primary {primary} check inter 100ms fall 2 rise 2
backend secondary_probe
    option httpchk
    http-check send meth GET uri /hastatus.html
    http-check expect string MOBILEIRON-STATUS:\ OK
    server secondary {secondary} check inter 100ms fall 2 rise 2
"#
    )
}

/// A running HAProxy, stopped when dropped.
pub struct Haproxy {
    child: Child,
    /// Its front address.
    pub front: SocketAddr,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks and starts HAProxy with [`config`], writing it into `dir`.
pub fn start(dir: &std::path::Path, front: SocketAddr, primary: SocketAddr, secondary: SocketAddr) -> Haproxy {
    start_with(dir, front, &config(front, primary, secondary))
}

/// Checks and starts HAProxy with the configuration `text` for the VIP `front`.
pub fn start_with(dir: &std::path::Path, front: SocketAddr, text: &str) -> Haproxy {
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, text).unwrap();
    let check = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("haproxy is not installed: apt-get install haproxy (scripts/test does)");
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    Haproxy { child, front }
}

impl Haproxy {
    /// Which node answers `/status.json` through the load balancer, or the HTTP status.
    pub fn served_by(&self) -> Result<String, u16> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(5)))
            .build()
            .into();
        match agent.get(&format!("http://{}/status.json", self.front)).call() {
            Ok(mut resp) if resp.status() == 200 => {
                let body = resp.body_mut().read_to_string().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                Ok(v["node_id"].as_str().unwrap_or_default().to_string())
            }
            Ok(resp) => Err(resp.status().as_u16()),
            Err(_) => Err(0),
        }
    }

    /// The HTTP status of a device check-in sent through the load balancer.
    pub fn checkin(&self, token: &str) -> u16 {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(5)))
            .build()
            .into();
        agent
            .post(&format!("http://{}/api/v1/devices/checkin", self.front))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(r#"{"seq":1}"#)
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }
}

/// What a client at the loopback address `source` (its first request, for stickiness)
/// gets through the VIP `front`: `/status.json`'s node id, or the HTTP status; and the
/// status of a device check-in with `token`. Sent with curl from that address.
pub fn from_client(front: SocketAddr, source: &str, token: &str) -> (Result<String, u16>, u16) {
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "5", "--interface", source, "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("curl (scripts/test installs it)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (body.to_string(), code.trim().parse::<u16>().unwrap_or(0))
    };
    let (body, code) = curl(&[&format!("http://{front}/status.json")]);
    let served = match code {
        200 => Ok(serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["node_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()),
        other => Err(other),
    };
    let auth = format!("Authorization: Bearer {token}");
    let url = format!("http://{front}/api/v1/devices/checkin");
    let (_, checkin) = curl(&["-H", &auth, "-H", "Content-Type: application/json", "-d", r#"{"seq":1}"#, &url]);
    (served, checkin)
}
