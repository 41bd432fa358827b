//! A node's daemon (`coresh serve`) as the tests start it: one builder for every way a
//! test needs it (`node.daemon().args(..).env(..).ssh(..).start()`, `node.serve()` for
//! the defaults), the addresses it printed, its log, HTTP requests to it, and stopping
//! it gently or with SIGKILL.

use std::io::BufRead;
use std::process::{Command, Stdio};

use super::TestNode;

/// A running `coresh serve` on a loopback port of its choosing; stopped on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub addr: std::net::SocketAddr,
    /// Where its SSH server listens.
    pub ssh: std::net::SocketAddr,
    /// Standard error lines after the start line, read in the background.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// How a test wants the daemon started; [`Serve::start`] starts it.
#[must_use]
pub struct Serve<'a> {
    node: &'a TestNode,
    http: String,
    ssh: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    binary: Option<std::path::PathBuf>,
}

impl TestNode {
    /// The daemon on 127.0.0.1, ports chosen by the system, to be adjusted and started.
    pub fn daemon(&self) -> Serve<'_> {
        Serve {
            node: self,
            http: "127.0.0.1:0".into(),
            ssh: "127.0.0.1:0".into(),
            args: Vec::new(),
            env: Vec::new(),
            binary: None,
        }
    }

    /// Starts the daemon with its defaults.
    pub fn serve(&self) -> Daemon {
        self.daemon().start()
    }
}

impl Serve<'_> {
    /// Where the HTTP server listens.
    pub fn http(mut self, addr: &str) -> Self {
        self.http = addr.into();
        self
    }

    /// Where the SSH server listens (e.g. `[::1]:0`).
    pub fn ssh(mut self, addr: &str) -> Self {
        self.ssh = addr.into();
        self
    }

    /// More `serve` arguments (`--tls-cert`, `--http-timeout`, ...).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable (the `CORESH_TEST_*` fault knobs).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Started as `BINARY serve` (a `coresh` installed elsewhere) instead of the build's.
    pub fn binary(mut self, path: &std::path::Path) -> Self {
        self.binary = Some(path.to_path_buf());
        self
    }

    /// Starts it and waits for the line that says where it listens.
    pub fn start(self) -> Daemon {
        let mut command = match &self.binary {
            Some(binary) => self.node.command_of(binary),
            None => self.node.command(),
        };
        command.envs(self.env);
        let mut child = command
            .args(["serve", "--http-listen", &self.http, "--ssh-listen", &self.ssh])
            .args(self.args)
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

    /// A check-in of generated device `device` carrying `seq`: its HTTP status.
    pub fn check_in(&self, device: u64, seq: u64) -> u16 {
        let token = coresh::coredb::generate::token_for(42, device);
        self.post("/api/v1/devices/checkin", Some(&token), &format!(r#"{{"seq":{seq}}}"#)).status
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
    /// Kills it; when a test failed, prints the daemon's last log lines first, so the
    /// failure says what the daemon was doing.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log.lock().map(|l| l.clone()).unwrap_or_default();
            eprintln!("--- the daemon at {} (last {} lines of its log):", self.addr, log.len().min(80));
            for line in &log[log.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
    }
}
