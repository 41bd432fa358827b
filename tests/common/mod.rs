//! Test harness: a fresh node per test, the real `coresh` binary run in batch mode, the
//! HA set-ups every fault test starts from (a pair, a standby that follows a primary),
//! and readable failures. The daemon (`daemon`), the OpenSSH client (`ssh`), the
//! pseudo-terminal (`pty`), counted device check-ins (`devices`), HAProxy, SMTP, network namespaces (`lab`), a cuttable TCP
//! proxy and a hostile peer live in rooms of their own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod daemon;
pub mod devices;
pub mod haproxy;
pub mod hostile;
pub mod lab;
pub mod proxy;
pub mod pty;
pub mod smtp;
pub mod ssh;

pub use daemon::Daemon;

/// Retries `f` every 50 ms for up to 30 s; panics saying `what` never happened.
pub fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never: {what}");
}

/// [`until`], and when it never happens, the panic says `why()` too (a node's HA log,
/// its quorum's view).
pub fn until_else(what: &str, mut f: impl FnMut() -> bool, why: impl FnOnce() -> String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("never: {what}\n{}", why());
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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

    /// Asserts a refusal: exit status 1 and `text` in what the shell said on stderr.
    #[track_caller]
    pub fn expect_refused(&self, text: &str) -> &Run {
        self.expect_code(1);
        assert!(self.stderr.contains(text), "{text:?} not in:\n{}", self.stderr);
        self
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_coresh")
}

/// The build's `coresh-node`, the daemon's binary.
pub fn node_binary() -> &'static str {
    env!("CARGO_BIN_EXE_coresh-node")
}

/// Installs the built binaries `names` (`coresh`, `coresh-node`) into `dir`, as an
/// install puts them side by side (a hard link where it can, else a copy); returns
/// where each went.
pub fn install(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    names
        .iter()
        .map(|name| {
            let built = match *name {
                "coresh" => binary(),
                "coresh-node" => node_binary(),
                other => panic!("no binary {other}"),
            };
            let to = dir.join(name);
            if std::fs::hard_link(built, &to).is_err() {
                std::fs::copy(built, &to).unwrap();
            }
            to
        })
        .collect()
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
        self.command_of(Path::new(binary()))
    }

    /// [`TestNode::command`] of another `coresh` binary.
    pub fn command_of(&self, binary: &Path) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
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

    /// Runs `lines` in high-availability configuration mode (entered from user mode).
    pub fn ha(&self, lines: &[&str]) -> Run {
        let mut all = vec!["enable", "configure terminal", "high-availability"];
        all.extend_from_slice(lines);
        self.run(&all)
    }

    /// `show failover | json`, parsed.
    pub fn failover_json(&self) -> serde_json::Value {
        let run = self.run(&["show failover | json"]);
        run.expect_code(0);
        serde_json::from_str(&run.stdout).expect("json")
    }

    /// This node's id, as `show version` gives it.
    pub fn node_id(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.run(&["show version | json"]).stdout).expect("json");
        v["node_id"].as_str().expect("node_id").to_string()
    }

    /// The HA module log (`show logging high-availability`, the last 2000 entries).
    pub fn ha_log(&self) -> String {
        self.run(&["show logging high-availability last 2000"]).expect_code(0).stdout.clone()
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
        self.ha(&[&format!("trusted-host {host} {key}")])
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

/// Where most fault tests start: a primary `a` holding generated data, served by `da`,
/// and `b` its standby secondary (trust both ways), usually synced once. Bind it as
/// `let Pair { a, b, da } = ...` so the daemon stops before the directories go.
pub struct Pair {
    pub a: TestNode,
    pub b: TestNode,
    pub da: Daemon,
}

/// A [`Pair`] whose primary holds `devices` generated devices and `events` events,
/// not synced yet.
pub fn paired(devices: &str, events: &str) -> Pair {
    let (a, b) = (TestNode::new(), TestNode::new());
    generate(&a, devices, events);
    let da = a.serve();
    pair(&a, &da, &b);
    Pair { a, b, da }
}

/// A [`paired`] pair, synced once.
pub fn synced_pair(devices: &str, events: &str) -> Pair {
    let p = paired(devices, events);
    sync(&p.b, &p.da).expect_code(0);
    p
}

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

/// The Core data's WAL: its header's salts (SQLite changes them each time the WAL starts
/// over from its beginning) and its file's size; `None` while there is no WAL.
pub fn wal_state(node: &TestNode) -> Option<([u8; 8], u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(node.data_dir().join("core.db-wal")).ok()?;
    let mut header = [0u8; 24];
    file.read_exact(&mut header).ok()?;
    Some((header[16..24].try_into().ok()?, file.metadata().ok()?.len()))
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
    kill_9_during(node, &format!("failover sync {}", from.ssh), delays_ms, old, new)
}

/// [`kill_9_during_syncs`] of the sync command `line` (`failover sync HOST full`, say).
pub fn kill_9_during(node: &TestNode, line: &str, delays_ms: &[u64], old: &str, new: &str) -> bool {
    let mut saw_old = false;
    for &delay_ms in delays_ms {
        let mut child = node
            .command()
            .args(["-c", "enable", "-c", line])
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

/// `b`, a synced standby of `da`'s node, follows it with a fast heartbeat and
/// `on-failure promote`, is served, and once its heartbeat answered, `da` is killed with
/// SIGKILL: returns `b`'s daemon once it serves as primary.
pub fn take_over_from(b: &TestNode, da: Daemon) -> Daemon {
    b.follow(&da.ssh.to_string(), "promote");
    let db = b.serve();
    db.eventually("the heartbeat reaches the primary", |_| b.reaches_a_peer());
    da.kill_9();
    db.eventually("the secondary takes over", |d| d.get("/hastatus.html").body.contains("Mode: Primary"));
    db
}

impl TestNode {
    /// Whether this node's heartbeat has had an answer from a peer.
    pub fn reaches_a_peer(&self) -> bool {
        self.failover_json()["peers"].as_array().is_some_and(|p| p.iter().any(|p| p["reachable"] == true))
    }

    /// Makes this node a standby secondary of `primary_host` with a fast heartbeat
    /// (interval 1 s, 3 failures, re-check 1 s) and `on_failure`, HA enabled.
    pub fn follow(&self, primary_host: &str, on_failure: &str) {
        let primary = format!("primary-host {primary_host}");
        let on_failure = format!("on-failure {on_failure}");
        self.ha(&[
            "mode secondary",
            &primary,
            "heartbeat interval 1",
            "heartbeat failures 3",
            "heartbeat recheck-interval 1",
            &on_failure,
            "service enable",
        ])
        .expect_code(0);
    }
}
