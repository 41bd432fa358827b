//! The shell's own commands, which move between modes and look at the session: enable
//! (with the enable secret), disable, configure terminal, high-availability, exit, end,
//! do; and the session's terminal (`terminal length`, `show terminal`). They are the
//! shell's because the modes and the session are: [`BUILTINS`] names them for the
//! grammar as `handlers::HANDLERS` names the rest.

use serde::Serialize;

use crate::cli::Args;
use crate::handlers::{Ctx, Handler};
use crate::report::{CmdError, Next, Reply, Text, fields};
use crate::secret;

/// The shell's commands, by the name the grammar uses.
pub const BUILTINS: &[(&str, Handler)] = &[
    ("enable", enable),
    ("disable", disable),
    ("configure", configure),
    ("high_availability", high_availability),
    ("exit", exit),
    ("end", end),
    ("do_exec", do_exec),
    ("terminal_length", terminal_length),
    ("terminal_width", terminal_width),
    ("show_terminal", show_terminal),
];

/// Tries a secret this many times on a terminal before giving up, as IOS does.
const ATTEMPTS: usize = 3;

pub fn enable(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let Some(hash) = ctx.settings()?.enable_secret else {
        // As on IOS: over a remote line, no enable secret means no enable.
        if ctx.session.remote.is_some() {
            return Err(CmdError::Denied("No password set".into()));
        }
        return Ok(Reply::mode("enable"));
    };
    let attempts = if ctx.console.is_terminal() { ATTEMPTS } else { 1 };
    for _ in 0..attempts {
        let Some(given) = ctx.console.ask_secret("Password: ") else {
            let how = if ctx.session.remote.is_some() {
                "log in with a terminal (ssh -t) to be asked for it"
            } else {
                "give it with --secret-file FILE or CORESH_ENABLE_SECRET"
            };
            return Err(CmdError::Denied(format!(
                "An enable secret is set and there is no terminal to ask for it: {how}"
            )));
        };
        if secret::verify(&hash, &given) {
            return Ok(Reply::mode("enable"));
        }
    }
    Err(CmdError::Denied("Bad secrets".into()))
}

pub fn disable(_: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::mode("user"))
}

pub fn configure(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let reply = Reply::mode("config");
    Ok(if ctx.console.is_terminal() {
        reply.info("Enter configuration commands, one per line. End with 'end'.")
    } else {
        reply
    })
}

pub fn high_availability(_: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::mode("config-ha"))
}

pub fn exit(_: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply { next: Next::Up, ..Reply::done() })
}

pub fn end(_: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::mode("enable"))
}

/// `do COMMAND`: asks the shell to run the inner command in its own mode and come back.
pub fn do_exec(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let (mode, inner) = ctx.inner.ok_or_else(|| CmdError::Failed("do needs a command".into()))?;
    Ok(Reply { next: Next::Run(mode.clone(), inner.clone()), ..Reply::done() })
}

pub fn terminal_length(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.session.term_length = args.int("LENGTH").and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Ok(Reply::done())
}

pub fn terminal_width(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.session.term_width = args.int("WIDTH").and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    Ok(Reply::done())
}

/// `show terminal`: the session's line, as IOS shows it.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Line {
    /// `TERM`, if set.
    kind: Option<String>,
    /// Columns and rows, when output goes to a terminal.
    columns: Option<u32>,
    rows: Option<u32>,
    /// Lines per screen before `--More--` (0: no paging).
    length: u32,
    /// As `terminal width` set it (0: not set).
    width: u32,
    user: String,
    source: String,
    /// The SSH console session, if this is one.
    ssh_session: Option<i64>,
}

impl Text for Line {
    fn text(&self) -> String {
        let size = match (self.columns, self.rows) {
            (Some(c), Some(r)) => format!("{c} columns, {r} rows"),
            _ => "not a terminal".into(),
        };
        let length = match self.length {
            0 => "0 (no paging)".to_string(),
            n => format!("{n} lines"),
        };
        let line = match self.ssh_session {
            Some(id) => format!("SSH session {id}: {} from {}", self.user, self.source),
            None => format!("{} on the {}", self.user, self.source),
        };
        fields(&[
            ("Line", line),
            ("Type", self.kind.clone().unwrap_or_else(|| "-".into())),
            ("Size", size),
            ("Length", length),
            ("Width", if self.width == 0 { "not set".into() } else { format!("{} characters", self.width) }),
        ])
    }
}

pub fn show_terminal(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let size = super::pager::terminal_size();
    Ok(Reply::show(Line {
        kind: std::env::var("TERM").ok().filter(|t| !t.is_empty()),
        columns: size.map(|s| s.0),
        rows: size.map(|s| s.1),
        length: ctx.session.term_length,
        width: ctx.session.term_width,
        user: ctx.session.user.clone(),
        source: ctx.session.source.clone(),
        ssh_session: ctx.session.remote,
    }))
}
