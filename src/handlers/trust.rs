//! SSH trust between HA nodes: `show ssh local-key`, `show trusted-hosts`,
//! `trusted-host HOST KEY` and `failover test-connection HOST`, which proves the trust
//! both ways and says exactly why when it cannot.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::node::keys::{fingerprint, host_key, openssh_line, parse_public};
use crate::peer::Blocking;
use crate::peer::hello::{reported_version, version_mismatch};
use crate::report::{CmdError, Reply, Text, fields, table};
use crate::ssh::client::trusted_key;
use crate::store::trusted;

fn key_error(e: impl std::fmt::Display) -> CmdError {
    CmdError::Failed(e.to_string())
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct LocalKey {
    public_key: String,
    fingerprint: String,
}

impl Text for LocalKey {
    fn text(&self) -> String {
        format!("{}\nFingerprint: {}", self.public_key, self.fingerprint)
    }
}

pub fn show_ssh_local_key(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let key = host_key(&ctx.node.data_dir).map_err(key_error)?;
    Ok(Reply::show(LocalKey { public_key: openssh_line(key.public_key()), fingerprint: fingerprint(key.public_key()) }))
}

#[derive(Serialize, schemars::JsonSchema)]
struct Trusted {
    host: String,
    fingerprint: String,
    key: String,
    added_at: String,
}

#[derive(Tabled)]
struct TrustedRow<'a> {
    #[tabled(rename = "Host")]
    host: &'a str,
    #[tabled(rename = "Key fingerprint")]
    fingerprint: &'a str,
    #[tabled(rename = "Added (UTC)")]
    added_at: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct TrustedList(Vec<Trusted>);

impl Text for TrustedList {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No trusted hosts.".into();
        }
        let rows: Vec<TrustedRow> = self
            .0
            .iter()
            .map(|t| TrustedRow { host: &t.host, fingerprint: &t.fingerprint, added_at: &t.added_at })
            .collect();
        table(&rows)
    }
}

pub fn show_trusted_hosts(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let list = ctx
        .node
        .store
        .trusted_hosts()?
        .into_iter()
        .map(|t| Trusted {
            fingerprint: parse_public(&t.key).map_or_else(|e| format!("unreadable: {e}"), |k| fingerprint(&k)),
            host: t.host,
            key: t.key,
            added_at: t.added_at,
        })
        .collect();
    Ok(Reply::show(TrustedList(list)))
}

pub fn ha_trusted_host(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let host = args.host("HOST").map(ToString::to_string).unwrap_or_default();
    if args.has("no") {
        let removed = ctx.node.store.durably(|tx| trusted::remove(tx, &host))?;
        if !removed {
            return Err(CmdError::Failed(format!("{host} is not a trusted host")));
        }
        return Ok(Reply::done().info(format!("{host} is no longer trusted.")));
    }
    let key = parse_public(args.text("KEY").unwrap_or_default()).map_err(CmdError::Failed)?;
    let own = host_key(&ctx.node.data_dir).map_err(key_error)?;
    if own.public_key().key_data() == key.key_data() {
        return Err(CmdError::Failed("That is this node's own key: add the peer's key".into()));
    }
    let line = openssh_line(&key);
    ctx.node.store.durably(|tx| trusted::put(tx, &host, &line))?;
    Ok(Reply::done().info(format!("{host} trusted with key {}.", fingerprint(&key))))
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct TestResult {
    result: &'static str,
    peer: String,
    peer_node_id: String,
    peer_hostname: String,
    peer_mode: String,
    peer_epoch: u64,
    version: String,
    host_key: String,
    /// The cipher of the peer link, as SSH names it (AES-256-GCM first, then
    /// ChaCha20-Poly1305, as this node offers them).
    cipher: String,
}

impl Text for TestResult {
    fn text(&self) -> String {
        let details = fields(&[
            ("Peer", format!("{} ({}, node {})", self.peer, self.peer_hostname, self.peer_node_id)),
            ("Peer mode", format!("{}, epoch {}", self.peer_mode, self.peer_epoch)),
            ("Software", format!("coresh {} on both nodes", self.version)),
            ("Peer host key", self.host_key.clone()),
            ("Cipher", self.cipher.clone()),
        ]);
        format!("Test was successful\n{details}")
    }
}

pub fn failover_test_connection(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let target = args.host("HOST").cloned().ok_or_else(|| CmdError::Failed("missing HOST".into()))?;
    let fail = |why: String| CmdError::Failed(format!("Test failed: {why}"));
    let host_key = trusted_key(ctx.node, &target).map(|k| fingerprint(&k)).map_err(|e| fail(e.to_string()))?;
    let peer = Blocking::trusted(ctx.node, &target).map_err(|e| fail(e.to_string()))?;
    let theirs = peer.hello().clone();
    let cipher = peer.link().cipher().to_string();
    peer.close();
    if let Some(mismatch) = version_mismatch(&reported_version(), &target.to_string(), &theirs.version) {
        return Err(fail(mismatch));
    }
    Ok(Reply::show(TestResult {
        result: "success",
        peer: target.to_string(),
        peer_node_id: theirs.node_id,
        peer_hostname: theirs.hostname,
        peer_mode: theirs.mode.to_string(),
        peer_epoch: theirs.epoch,
        version: reported_version(),
        host_key,
        cipher,
    }))
}
