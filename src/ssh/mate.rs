//! What a node asks of its mate over the trusted replication channel, mate side.
//! `exec` (`failover exec mate`): one shell line run here, its output sent back (as Cisco
//! ASA's `failover exec mate`). `test-back` (`failover validate`): this node connects
//! back to the caller as its trusted-host entry names it, proving the trust the other
//! way. For `exec` the mate runs
//! the line in a child `coresh` of its own, as a session of the calling operator from
//! the caller's address and key, so its audit log says who did what (the operator's
//! name marked as the peer's claim); in user mode, unless the caller is privileged and
//! gives the mate's enable secret, which the mate checks (and, past a few wrong ones a
//! minute from one peer key, refuses to try).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use russh::ChannelId;
use serde::{Deserialize, Serialize};

use crate::replication::serve::answer_and_close;

/// How long the mate lets a line run (the caller's channel waits a minute at most).
pub const LIMIT: Duration = Duration::from_secs(50);
/// Output kept of each stream.
const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// The source a mate session's shell records; such a session may not reach further.
pub const SOURCE_PREFIX: &str = "mate ";

/// What the caller asks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The line to run.
    pub line: String,
    /// Who asks, as `user@hostname` of the calling node.
    pub operator: String,
    /// The mate's enable secret: run the line in privileged mode.
    pub secret: Option<String>,
}

/// What the mate answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecAnswer {
    /// The shell's exit status (0 ok, 1 failed, 2 syntax, 3 denied).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Who asks for an `exec`: the peer's address and key, and what the daemon remembers of
/// its earlier guesses at the enable secret.
pub struct Caller {
    pub address: IpAddr,
    /// The peer's key fingerprint.
    pub key: String,
    pub peers: std::sync::Arc<super::peers::Peers>,
}

/// Runs a caller's line in a child shell; returns what it printed. The operator is the
/// one the peer names, marked as its claim, and the source names the peer's key.
pub async fn run(data_dir: PathBuf, request: ExecRequest, caller: &Caller) -> ExecAnswer {
    let exe = match super::console::self_exe() {
        Ok(e) => e,
        Err(e) => return refused(format!("% {e}")),
    };
    let claimed: String =
        request.operator.chars().filter(|c| !c.is_control() && !c.is_whitespace()).take(100).collect();
    let operator = format!("{claimed} (claimed)");
    let mut command = tokio::process::Command::new(exe);
    command
        .args(["--data-dir".as_ref(), data_dir.as_os_str()])
        .args(["console-session", "--user", &operator, "--session", "0"])
        .arg("--source")
        .arg(format!("{SOURCE_PREFIX}{} key {}", caller.address, caller.key))
        .env_clear()
        .env("TERM", "dumb")
        .env("CORESH_CONSOLE_COMMAND", &request.line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(secret) = &request.secret {
        command.arg("--privileged").env("CORESH_ENABLE_SECRET", secret);
    }
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

/// Answers an `exec` request on the replication channel, then closes it.
pub async fn answer(
    handle: russh::server::Handle,
    channel: ChannelId,
    data_dir: PathBuf,
    request: ExecRequest,
    caller: Caller,
) {
    let privileged = request.secret.is_some();
    tracing::info!(subsystem = "ssh", peer = %caller.address, operator = %request.operator, privileged, "failover exec mate");
    let answer = if privileged && !caller.peers.may_guess(&caller.key) {
        ExecAnswer {
            code: 3,
            stdout: String::new(),
            stderr: format!(
                "% Too many wrong enable secrets from this peer: privileged mate commands are refused for a minute ({} at most)\n",
                super::peers::MAX_GUESSES
            ),
        }
    } else {
        let answer = run(data_dir, request, &caller).await;
        // The child's `enable` refused the secret (its batch stops there).
        if privileged && answer.code == 3 && answer.stderr.contains("% Bad secrets") {
            caller.peers.guessed_wrong(&caller.key);
        }
        answer
    };
    answer_and_close(&handle, channel, &answer).await;
}

/// What `test-back` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestBack {
    pub ok: bool,
    /// What was reached, or why not.
    pub detail: String,
}

/// Connects back to the caller (whose key is `caller`) at the address this node trusts
/// it under, and says how that went.
async fn connect_back(
    data_dir: PathBuf,
    caller: russh::keys::PublicKey,
    ours: super::hello::Hello,
) -> Result<String, String> {
    let dir = data_dir.clone();
    let hosts = tokio::task::spawn_blocking(move || crate::store::Store::open(&dir).and_then(|s| s.trusted_hosts()))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let entry = hosts
        .iter()
        .find(|h| super::keys::parse_public(&h.key).is_ok_and(|k| k.key_data() == caller.key_data()))
        .ok_or("no trusted-host entry here holds the caller's key")?;
    let target: crate::host::HostPort =
        entry.host.parse().map_err(|_| format!("the trusted host {} is unreadable", entry.host))?;
    let key = super::keys::host_key(&data_dir).map_err(|e| e.to_string())?;
    let (hello, _) = super::client::exchange_hello(&target, &key, &caller, &ours).await.map_err(|e| e.to_string())?;
    Ok(format!("{} reached {} ({} mode) at {target}", ours.hostname, hello.hostname, hello.mode))
}

/// Answers a `test-back` request, then closes the channel.
pub async fn test_back(
    handle: russh::server::Handle,
    channel: ChannelId,
    data_dir: PathBuf,
    caller: russh::keys::PublicKey,
    ours: super::hello::Hello,
) {
    let answer = match connect_back(data_dir, caller, ours).await {
        Ok(detail) => TestBack { ok: true, detail },
        Err(detail) => TestBack { ok: false, detail },
    };
    answer_and_close(&handle, channel, &answer).await;
}
