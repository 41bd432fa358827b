//! `logging host`: the HA log and the audit log reach a real rsyslog (Debian's, installed
//! by `scripts/test`) as RFC 5424 messages, over TCP and over UDP at once; while the
//! TCP server is down entries wait (`show logging hosts` says how many and why), and
//! once it is back every one of them arrives.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::until;

/// rsyslogd in the foreground, listening on `tcp` and `udp`, writing every message it
/// gets to `dir/received.log` in the RFC 5424 layout.
struct Rsyslog {
    child: Child,
    dir: PathBuf,
}

impl Rsyslog {
    fn start(dir: &Path, tcp: u16, udp: u16) -> Rsyslog {
        let conf = dir.join("rsyslog.conf");
        let text = format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imtcp\")\ninput(type=\"imtcp\" port=\"{tcp}\" address=\"127.0.0.1\")\n\
             module(load=\"imudp\")\ninput(type=\"imudp\" port=\"{udp}\" address=\"127.0.0.1\")\n\
             *.* action(type=\"omfile\" file=\"{d}/received.log\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
            d = dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd (Debian's rsyslog package)");
        until("rsyslog listening", || std::net::TcpStream::connect(("127.0.0.1", tcp)).is_ok());
        Rsyslog { child, dir: dir.to_path_buf() }
    }

    fn received(&self) -> String {
        std::fs::read_to_string(self.dir.join("received.log")).unwrap_or_default()
    }

    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_logs_reach_rsyslog_over_tcp_and_udp_and_nothing_waits_lost_while_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (common::free_port(), common::free_port());
    let server = Rsyslog::start(dir.path(), tcp, udp);
    // A standby whose heartbeat writes its HA log every second.
    let common::Pair { a: _a, b, da } = common::synced_pair("10", "10");
    b.run(&["enable", "configure terminal", "hostname core-b"]).expect_code(0);
    b.follow(&da.ssh.to_string(), "keep-standby");
    b.run(&[
        "enable",
        "configure terminal",
        &format!("logging host 127.0.0.1 port {tcp} tcp"),
        &format!("logging host 127.0.0.1 port {udp}"),
    ])
    .expect_code(0);
    let _db = b.serve();
    b.run(&["enable", "show logging high-availability last 7"]).expect_code(0);
    until("the HA log and the audit log reached rsyslog", || {
        let got = server.received();
        // (The message text starts with a BOM, as RFC 5424 has UTF-8 text begin.)
        // Once over each transport: TCP and UDP deliver on their own schedules.
        got.lines().any(|l| l.contains(" core-b coresh - ha - ") && l.contains("heartbeat to"))
            && got.matches("show logging high-availability last 7").count() >= 2
    });
    let got = server.received();
    let audit = got.lines().find(|l| l.contains("show logging high-availability last 7")).unwrap().to_string();
    // RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG, once per transport.
    assert!(audit.starts_with("<134>1 ") && audit.contains(" core-b coresh - audit [coresh@32473 user="), "{audit}");
    assert_eq!(got.matches("show logging high-availability last 7").count(), 2, "over TCP and over UDP: {got}");

    // The server goes away: entries wait for the TCP server, and the shell says so.
    server.stop();
    for n in 11..16 {
        b.run(&["enable", &format!("show logging high-availability last {n}")]).expect_code(0);
    }
    let tcp_server = || -> serde_json::Value {
        let shown: serde_json::Value = serde_json::from_str(&b.run(&["show logging hosts | json"]).stdout).unwrap();
        shown.as_array().unwrap().iter().find(|s| s["target"].as_str().unwrap().ends_with("/tcp")).unwrap().clone()
    };
    until("entries wait for the TCP server, and it says why", || {
        let s = tcp_server();
        s["error"].is_string() && s["behind"].as_i64() >= Some(5)
    });
    let table = b.run(&["show logging hosts"]).stdout;
    assert!(table.contains(&format!("127.0.0.1:{tcp}/tcp")) && table.contains("cannot connect"), "{table}");
    // Back: every entry made meanwhile arrives.
    let server = Rsyslog::start(dir.path(), tcp, udp);
    until("every entry made while it was down arrived", || {
        let got = server.received();
        (11..16).all(|n| got.contains(&format!("show logging high-availability last {n}")))
    });
    let shown = b.run(&["show logging hosts | json"]).stdout;
    let servers: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(servers.as_array().unwrap().iter().all(|s| s["dropped"] == 0), "{shown}");
    let config = b.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains(&format!("logging host 127.0.0.1 port {tcp} tcp")), "{config}");
    assert!(config.contains(&format!("logging host 127.0.0.1 port {udp} udp")), "{config}");
    b.run(&["enable", "configure terminal", &format!("no logging host 127.0.0.1 port {udp}")]).expect_code(0);
    assert!(!b.run(&["show logging hosts"]).stdout.contains(&format!("{udp}/udp")));
}

#[test]
fn logging_hosts_are_listed_added_and_removed_with_what_they_say() {
    let node = common::TestNode::new();
    let shown = node.run(&["show logging hosts"]);
    shown.expect_code(0);
    assert!(shown.stdout.contains("No logging host: the logs stay on this node."), "{}", shown.stdout);
    let gone = node.run(&["enable", "configure terminal", "no logging host 192.0.2.7"]);
    gone.expect_code(0);
    assert!(gone.stdout.contains("No logging host 192.0.2.7:514/udp; nothing changed."), "{}", gone.stdout);
    // UDP and port 514 unless said; the same server named again replaces its entry.
    node.run(&["enable", "configure terminal", "logging host 192.0.2.7"]).expect_code(0);
    node.run(&["enable", "configure terminal", "logging host 192.0.2.7 tcp"]).expect_code(0);
    let config = node.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains("logging host 192.0.2.7 port 514 tcp"), "{config}");
    assert!(!config.contains("logging host 192.0.2.7 port 514 udp"), "{config}");
    let bad = node.run(&["enable", "configure terminal", "logging host 192.0.2.7 port 0"]);
    assert_eq!(bad.code, 2, "a port out of range is a syntax error: {}", bad.stderr);
}
