//! The SSH console's settings (`exec-timeout`, `session-limit`, `login block-for`,
//! `login delay`), `show sessions` and `clear lockout`.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::node::policy::{self, Policy};
use crate::report::{CmdError, Reply, Text, table};
use crate::ssh::login::unix_ms;
use crate::store::{ConsoleSession, Lockout};

/// Stores each (setting, value) pair; `None` removes the setting (its default again).
fn store(ctx: &mut Ctx, pairs: Vec<(&'static str, Option<String>)>) -> Result<Reply, CmdError> {
    ctx.node.store.update_settings(|c| c.extend(pairs))?;
    Ok(Reply::done())
}

/// A number argument as text, for storing.
fn number(args: &Args, name: &str) -> Option<String> {
    args.int(name).map(|n| n.to_string())
}

pub fn exec_timeout(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let seconds = args.int("IDLE_MIN").map(|minutes| minutes * 60 + args.int("IDLE_SEC").unwrap_or(0));
    store(ctx, vec![(policy::EXEC_TIMEOUT, seconds.map(|s| s.to_string()))])
}

pub fn session_limit(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    store(ctx, vec![(policy::SESSION_LIMIT, number(args, "SESSIONS"))])
}

pub fn login_block(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let block = if args.has("no") { Some("off".into()) } else { number(args, "BLOCK") };
    store(
        ctx,
        vec![
            (policy::BLOCK_FOR, block),
            (policy::ATTEMPTS, number(args, "TRIES")),
            (policy::WITHIN, number(args, "WINDOW")),
        ],
    )
}

pub fn login_delay(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    store(ctx, vec![(policy::DELAY, number(args, "DELAY"))])
}

/// `show sessions`: the consoles open now, the policy, and the lockouts in force.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Sessions {
    /// This session's id, when it is an SSH console.
    current: Option<i64>,
    sessions: Vec<ConsoleSession>,
    policy: Policy,
    lockouts: Vec<Lockout>,
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "")]
    mark: &'static str,
    #[tabled(rename = "Id")]
    id: i64,
    #[tabled(rename = "User")]
    user: String,
    #[tabled(rename = "From")]
    source: String,
    #[tabled(rename = "Kind")]
    kind: String,
    #[tabled(rename = "Terminal")]
    terminal: String,
    #[tabled(rename = "Since (UTC)")]
    since: String,
}

impl Text for Sessions {
    fn text(&self) -> String {
        let mut out = Vec::new();
        if self.sessions.is_empty() {
            out.push("No SSH console sessions.".to_string());
        } else {
            let rows: Vec<Row> = self
                .sessions
                .iter()
                .map(|s| Row {
                    mark: if Some(s.id) == self.current { "*" } else { "" },
                    id: s.id,
                    user: s.user.clone(),
                    source: s.source.clone(),
                    kind: s.kind.clone(),
                    terminal: s.terminal.clone(),
                    since: s.started_at.clone(),
                })
                .collect();
            out.push(table(&rows));
        }
        let p = &self.policy;
        let idle = match p.exec_timeout_s {
            0 => "never".to_string(),
            s => format!("{} min {} s", s / 60, s % 60),
        };
        out.push(format!(
            "Idle timeout {idle}; at most {} sessions; each failed login is held {} s.",
            p.session_limit, p.delay_s
        ));
        out.push(match p.block {
            Some(b) => format!(
                "An address is locked out for {} s after {} failed logins within {} s.",
                b.for_s, b.attempts, b.within_s
            ),
            None => "Addresses are never locked out.".into(),
        });
        let now = unix_ms();
        for l in &self.lockouts {
            out.push(format!(
                "Locked out: {} since {} ({} failed logins), {} s left",
                l.address,
                l.locked_at,
                l.failures,
                (l.until_ms - now).max(0) / 1000 + 1
            ));
        }
        out.join("\n")
    }
}

pub fn show_sessions(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let store = &ctx.node.store;
    Ok(Reply::show(Sessions {
        current: ctx.session.remote,
        sessions: store.sessions()?,
        policy: Policy::from_map(&store.settings()?),
        lockouts: store.lockouts(unix_ms())?,
    }))
}

pub fn clear_lockout(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    // Lockouts are kept per client: an IPv4 address (mapped forms too) or an IPv6 /64.
    let client = match args.text("CLIENT") {
        Some(c) => Some(
            crate::clients::Client::parse(c)
                .ok_or_else(|| CmdError::Failed(format!("Not an IP address: {c:?}")))?
                .to_string(),
        ),
        None => None,
    };
    let lifted = ctx.node.store.clear_lockouts(client.as_deref())?;
    Ok(Reply::done().info(match (lifted, client) {
        (0, Some(c)) => format!("{c} is not locked out"),
        (0, None) => "No address is locked out".into(),
        (n, _) => format!("Lifted {n} lockout(s)"),
    }))
}
