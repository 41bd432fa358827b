//! The real OpenSSH client against a node's daemon, with the options every test needs:
//! no configuration file, no known-hosts file, errors only, a connect timeout, and
//! `timeout` around it so that a hung session fails its test instead of stalling CI
//! (`--foreground`, so a session on a terminal keeps it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::TestNode;

/// `ssh` to `127.0.0.1:port`; add the login options and `user@127.0.0.1`.
pub fn client(port: u16) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--foreground", "60", "ssh", "-F", "/dev/null", "-p", &port.to_string()])
        .args(["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
        .args(["-o", "ConnectTimeout=10"]);
    cmd
}

/// `ssh` logging in with `key` only, never asking for anything.
pub fn with_key(port: u16, key: &Path) -> Command {
    let mut cmd = client(port);
    cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no", "-i"]).arg(key);
    cmd
}

/// The node's own SSH key file, usable by OpenSSH (`-i`): a test speaks as that peer.
pub fn node_key(node: &TestNode) -> PathBuf {
    node.local_key(); // makes the key when missing
    node.data_dir().join("ssh_host_ed25519_key")
}

/// A new key pair in `dir`; returns the private key file and the public key line.
pub fn new_key(dir: &Path, name: &str, comment: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let made = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    (key, public.trim().to_string())
}

/// Speaks the replication channel as the peer whose key is `key`: sends each request
/// line (a hello first), closes, and returns every answer line, parsed.
pub fn peer_exchange(port: u16, key: &Path, requests: &[String]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut child = with_key(port, key)
        .args(["-s", "coresh-peer@127.0.0.1", "coresh-replication"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ssh");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for line in requests {
            writeln!(stdin, "{line}").expect("write a request");
        }
    }
    let out = child.wait_with_output().expect("ssh");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A hello as a peer that knows nothing yet would send it.
pub fn hello(hostname: &str) -> String {
    serde_json::json!({
        "op": "hello", "software": "coresh", "version": "0", "schema": 0, "core_schema": 0,
        "node_id": "x", "hostname": hostname, "mode": "secondary", "node_status": "standby", "epoch": 0
    })
    .to_string()
}
