//! What a node does for its mate, asked over the trusted replication channel. `exec`
//! (`failover exec mate`): one shell line run here, its output sent back (as Cisco
//! ASA's `failover exec mate`), in a child `coresh` of its own, as a session of the
//! calling operator from the caller's address and key, so its audit log says who did
//! what (the operator's name marked as the peer's claim); in user mode and limited to
//! the commands the grammar declares `readonly`, unless the caller is privileged and
//! gives this node's enable secret, which the child checks
//! (and which, past [`MAX_GUESSES`] wrong ones a minute from one peer key, is not tried
//! at all). `test-back` (`failover validate`): this node connects back to the caller as
//! its trusted-host entry names it, proving the trust the other way.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::peer::message::{ExecAnswer, ExecRequest, MATE_SOURCE_PREFIX, TestBack};
use crate::peer::{Hello, Peer};
use crate::ssh::peer_channel::Caller;

/// How long the mate lets a line run (the caller's channel waits a minute at most).
pub const LIMIT: Duration = Duration::from_secs(50);
/// Output kept of each stream.
const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// Wrong enable secrets allowed per peer key within [`GUESS_WINDOW`].
pub const MAX_GUESSES: usize = 5;
const GUESS_WINDOW: Duration = Duration::from_secs(60);
/// Peer keys whose guesses are remembered at most.
const MAX_KEYS: usize = 1024;

/// Recent wrong enable secrets per peer key.
#[derive(Default)]
pub struct Guesses(Mutex<HashMap<String, VecDeque<Instant>>>);

impl Guesses {
    /// Whether `key` may still try the enable secret.
    fn allowed(&self, key: &str) -> bool {
        let now = Instant::now();
        let Ok(mut guesses) = self.0.lock() else { return false };
        let Some(recent) = guesses.get_mut(key) else { return true };
        while recent.front().is_some_and(|t| now.duration_since(*t) > GUESS_WINDOW) {
            recent.pop_front();
        }
        recent.len() < MAX_GUESSES
    }

    /// Counts a wrong enable secret of `key`.
    fn wrong(&self, key: &str) {
        let now = Instant::now();
        if let Ok(mut guesses) = self.0.lock() {
            if guesses.len() >= MAX_KEYS && !guesses.contains_key(key) {
                guesses.retain(|_, r| r.back().is_some_and(|t| now.duration_since(*t) < GUESS_WINDOW));
            }
            guesses.entry(key.to_string()).or_default().push_back(now);
        }
    }
}

/// Runs the caller's line here, unless its key has guessed the enable secret too often.
pub async fn exec(data_dir: &Path, request: ExecRequest, caller: &Caller, guesses: &Guesses) -> ExecAnswer {
    let privileged = request.secret.is_some();
    tracing::info!(subsystem = "ssh", peer = %caller.address, operator = %request.operator, privileged, "failover exec mate");
    if privileged && !guesses.allowed(&caller.fingerprint) {
        let why = format!(
            "% Too many wrong enable secrets from this peer: privileged mate commands are refused for a minute ({MAX_GUESSES} at most)"
        );
        return ExecAnswer { code: 3, stdout: String::new(), stderr: why + "\n" };
    }
    let answer = run(data_dir, request, caller).await;
    // The child's `enable` refused the secret (its batch stops there).
    if privileged && answer.code == 3 && answer.stderr.contains("% Bad secrets") {
        guesses.wrong(&caller.fingerprint);
    }
    answer
}

/// Runs a caller's line in a child shell; returns what it printed. The operator is the
/// one the peer names, marked as its claim, and the source names the peer's key.
async fn run(data_dir: &Path, request: ExecRequest, caller: &Caller) -> ExecAnswer {
    let exe = match crate::ssh::console::shell_exe() {
        Ok(e) => e,
        Err(e) => return refused(format!("% {e}")),
    };
    let claimed: String =
        request.operator.chars().filter(|c| !c.is_control() && !c.is_whitespace()).take(100).collect();
    let mut command = tokio::process::Command::new(exe);
    command
        .arg0("coresh")
        .args(["--data-dir".as_ref(), data_dir.as_os_str()])
        .args(["console-session", "--user", &format!("{claimed} (claimed)"), "--session", "0"])
        .arg("--source")
        .arg(format!("{MATE_SOURCE_PREFIX}{} key {}", caller.address, caller.fingerprint))
        .env_clear()
        .env("TERM", "dumb")
        .env("CORESH_CONSOLE_COMMAND", &request.line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match &request.secret {
        Some(secret) => command.arg("--privileged").env("CORESH_ENABLE_SECRET", secret),
        None => command.arg("--readonly"),
    };
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return refused(format!("% Cannot start the shell: {e}")),
    };
    match tokio::time::timeout(LIMIT, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            ExecAnswer { code: out.status.code().unwrap_or(1), stdout: cut(&out.stdout), stderr: cut(&out.stderr) }
        }
        Ok(Err(e)) => refused(format!("% The shell failed: {e}")),
        Err(_) => refused(format!("% The command ran longer than {} seconds and was stopped", LIMIT.as_secs())),
    }
}

fn refused(stderr: String) -> ExecAnswer {
    ExecAnswer { code: 1, stdout: String::new(), stderr: stderr + "\n" }
}

fn cut(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned()
}

/// Connects back to the caller at the address this node trusts its key under, and says
/// how that went.
pub async fn test_back(data_dir: &Path, caller: &Caller, ours: &Hello) -> TestBack {
    match connect_back(data_dir, caller, ours).await {
        Ok(detail) => TestBack { ok: true, detail },
        Err(detail) => TestBack { ok: false, detail },
    }
}

async fn connect_back(data_dir: &Path, caller: &Caller, ours: &Hello) -> Result<String, String> {
    let dir = data_dir.to_path_buf();
    let hosts = tokio::task::spawn_blocking(move || crate::store::Store::open(&dir).and_then(|s| s.trusted_hosts()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let entry = hosts
        .iter()
        .find(|h| crate::node::keys::parse_public(&h.key).is_ok_and(|k| k.key_data() == caller.key.key_data()))
        .ok_or("no trusted-host entry here holds the caller's key")?;
    let target: crate::host::HostPort =
        entry.host.parse().map_err(|_| format!("the trusted host {} is unreadable", entry.host))?;
    let key = crate::node::keys::host_key(data_dir).map_err(|e| e.to_string())?;
    let peer = Peer::connect(&target, &key, &caller.key, ours).await.map_err(|e| e.to_string())?;
    let reached =
        format!("{} reached {} ({} mode) at {target}", ours.hostname, peer.hello().hostname, peer.hello().mode);
    peer.close().await;
    Ok(reached)
}
