//! Test harness: a fresh node per test, the real `coresh` binary run in batch mode or
//! on a pseudo-terminal, and readable failures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod haproxy;
pub mod hostile;
pub mod lab;
pub mod proxy;
pub mod smtp;

/// A node in a temporary data directory, removed when dropped.
pub struct TestNode {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The network namespace its commands and daemon run in (see [`lab`]), if any.
    pub netns: Option<String>,
}

/// What a batch run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    /// Asserts the exit status, showing both streams when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit status\n--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_coresh")
}

impl TestNode {
    pub fn new() -> TestNode {
        TestNode { dir: tempfile::tempdir().expect("temp dir"), netns: None }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (a subdirectory, so first use creates it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// A `coresh` command on this node, with a clean environment.
    pub fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, binary()]);
                c
            }
            None => Command::new(binary()),
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("USER", "tester")
            .env("CORESH_DATA_DIR", self.data_dir());
        cmd
    }

    /// Runs `coresh -c L1 -c L2 ...`.
    pub fn run(&self, lines: &[&str]) -> Run {
        self.run_with(lines, &[], &[])
    }

    /// Runs `coresh` with extra arguments, `-c` lines and environment.
    pub fn run_with(&self, lines: &[&str], args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for line in lines {
            cmd.arg("-c").arg(line);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.stdin(Stdio::null()).output().expect("run coresh"))
    }

    /// Runs `coresh` with `input` on standard input (not a terminal).
    pub fn run_stdin(&self, input: &[u8], args: &[&str]) -> Run {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coresh");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait coresh");
        let _ = writer.join();
        Run::from(out)
    }

    /// `show failover | json`, parsed.
    pub fn failover_json(&self) -> serde_json::Value {
        let run = self.run(&["show failover | json"]);
        run.expect_code(0);
        serde_json::from_str(&run.stdout).expect("json")
    }
}

/// A running `coresh serve` on a loopback port of its choosing; stopped on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// Where its SSH server listens.
    pub ssh: std::net::SocketAddr,
    /// Standard error lines after the start line, read in the background.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl TestNode {
    /// Starts the node daemon on 127.0.0.1 (port chosen by the system).
    pub fn serve(&self) -> Daemon {
        self.serve_with(&[])
    }

    /// Starts the node daemon with extra `serve` arguments.
    pub fn serve_with(&self, extra: &[&str]) -> Daemon {
        self.spawn_daemon(extra, &[])
    }

    /// Starts the node daemon with its SSH server on `ssh` (e.g. `[::1]:0`).
    pub fn serve_with_listen(&self, ssh: &str) -> Daemon {
        self.spawn_daemon_on(ssh, &[], &[])
    }

    /// Starts the node daemon with extra environment.
    pub fn serve_env(&self, env: &[(&str, &str)]) -> Daemon {
        self.spawn_daemon(&[], env)
    }

    fn spawn_daemon(&self, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.spawn_daemon_on("127.0.0.1:0", extra, env)
    }

    /// Starts the daemon with both listen addresses given.
    pub fn spawn_daemon_at(&self, http: &str, ssh: &str) -> Daemon {
        self.spawn_daemon_with(http, ssh, &[], &[])
    }

    fn spawn_daemon_on(&self, ssh: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        self.spawn_daemon_with("127.0.0.1:0", ssh, extra, env)
    }

    fn spawn_daemon_with(&self, http: &str, ssh: &str, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        use std::io::BufRead;
        let mut command = self.command();
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .args(["serve", "--http-listen", http, "--ssh-listen", ssh])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coresh serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let field = |line: &str, name: &str| -> Option<std::net::SocketAddr> {
            line.split(&format!(" {name}=")).nth(1)?.split_whitespace().next()?.parse().ok()
        };
        let mut found = None;
        for line in lines.by_ref() {
            let line = line.expect("daemon stderr");
            if line.contains("coresh node serving") {
                found = field(&line, "http").zip(field(&line, "ssh"));
                break;
            }
        }
        let (addr, ssh) = found.expect("the daemon printed its addresses");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, addr, ssh, log }
    }
}

/// An HTTP answer: status, headers we look at, body.
#[derive(Debug)]
pub struct Http {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Daemon {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(20)))
            .build()
            .into()
    }

    fn answer(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Http {
        let mut resp = resp.expect("http request");
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Http { status, retry_after, body }
    }

    pub fn get(&self, path: &str) -> Http {
        Self::answer(Self::agent().get(&self.url(path)).call())
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &str) -> Http {
        let mut req = Self::agent().post(&self.url(path)).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        Self::answer(req.send(body))
    }

    /// Asks `f` until it says yes (the daemon sees a shell's change within ~50 ms).
    /// Retries `f` every 25 ms for up to 20 s (generous: CI machines are shared).
    pub fn eventually(&self, what: &str, mut f: impl FnMut(&Daemon) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if f(self) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("never: {what}");
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait for the daemon");
        std::mem::forget(self);
        status
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestNode {
    /// This node's SSH public key, as `show ssh local-key` prints it.
    pub fn local_key(&self) -> String {
        let run = self.run(&["show ssh local-key | json"]);
        run.expect_code(0);
        let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        v["public_key"].as_str().expect("public_key").to_string()
    }

    /// `trusted-host HOST KEY` in high-availability configuration.
    pub fn trust(&self, host: &str, key: &str) -> Run {
        self.run(&["enable", "configure terminal", "high-availability", &format!("trusted-host {host} {key}")])
    }

    /// The content checksum of this node's Core data.
    pub fn checksum(&self) -> String {
        let conn = rusqlite::Connection::open(self.data_dir().join("core.db")).expect("core.db");
        coresh::replication::snapshot::content_checksum(&conn).expect("checksum")
    }

    /// Asserts that this node's Core data holds exactly the rows of `other`'s, table by
    /// table, compared by SQLite itself (`EXCEPT` both ways), not by coresh's checksum.
    pub fn assert_same_rows(&self, other: &TestNode) {
        let conn = rusqlite::Connection::open(self.data_dir().join("core.db")).expect("core.db");
        conn.execute("ATTACH DATABASE ?1 AS other", [other.data_dir().join("core.db").to_string_lossy()])
            .expect("attach");
        for table in CORE_TABLES {
            let differ: i64 = conn
                .query_row(
                    &format!(
                        "SELECT (SELECT count(*) FROM (SELECT * FROM main.{table} EXCEPT SELECT * FROM other.{table}))
                              + (SELECT count(*) FROM (SELECT * FROM other.{table} EXCEPT SELECT * FROM main.{table}))"
                    ),
                    [],
                    |r| r.get(0),
                )
                .expect("compare");
            assert_eq!(differ, 0, "{differ} rows of {table} differ");
        }
    }
}

/// The tables of the Core data.
pub const CORE_TABLES: &[&str] =
    &["users", "devices", "apps", "policies", "settings", "events", "certificates", "local_users", "device_enrollment"];

/// Makes `b` a standby secondary that trusts `a`'s daemon, and `a` trust `b`.
pub fn pair(a: &TestNode, da: &Daemon, b: &TestNode) {
    b.trust(&da.ssh.to_string(), &a.local_key()).expect_code(0);
    a.trust("core-b", &b.local_key()).expect_code(0);
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
}

/// Takes `node` to primary at epoch 2 with `failover mode` toggles (maintenance).
pub fn toggle_to_epoch_2(node: &TestNode) {
    node.run(&[
        "enable",
        "failover mode secondary",
        "failover mode primary",
        "failover mode secondary",
        "failover mode primary",
    ])
    .expect_code(0);
}

pub fn generate(node: &TestNode, devices: &str, events: &str) {
    node.run_with(&[], &["data", "generate", "--devices", devices, "--users", "50", "--events", events], &[])
        .expect_code(0);
}

pub fn sync(node: &TestNode, from: &Daemon) -> Run {
    node.run(&["enable", &format!("failover sync {}", from.ssh)])
}

/// Starts `failover sync FROM` on `node` and kills it with SIGKILL after each delay in
/// turn, checking each time that the Core data is sound and either `old` or `new`,
/// never a mix. Stops once a run got through. Returns whether a kill left `old`.
pub fn kill_9_during_syncs(node: &TestNode, from: &Daemon, delays_ms: &[u64], old: &str, new: &str) -> bool {
    let mut saw_old = false;
    for &delay_ms in delays_ms {
        let mut child = node
            .command()
            .args(["-c", "enable", "-c", &format!("failover sync {}", from.ssh)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let conn = rusqlite::Connection::open(node.data_dir().join("core.db")).unwrap();
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok", "after a kill at {delay_ms} ms");
        let now = node.checksum();
        assert!(now == old || now == new, "mixed data after a kill at {delay_ms} ms");
        saw_old |= now == old;
        if now == new {
            break;
        }
    }
    saw_old
}

/// The `-c` lines that make a node a standby secondary of `primary_host` with a fast
/// heartbeat (interval 1 s, 3 failures, re-check 1 s) and `on_failure`, HA enabled.
pub fn follow_lines(primary_host: &str, on_failure: &str) -> Vec<String> {
    [
        "enable",
        "configure terminal",
        "high-availability",
        "mode secondary",
        &format!("primary-host {primary_host}"),
        "heartbeat interval 1",
        "heartbeat failures 3",
        "heartbeat recheck-interval 1",
        &format!("on-failure {on_failure}"),
        "service enable",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
