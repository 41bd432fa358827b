//! Moving between modes: enable (with the enable secret), disable, configure terminal,
//! high-availability, exit, end, do; and `terminal length`.

use super::Ctx;
use crate::cli::Args;
use crate::report::{CmdError, Next, Reply};
use crate::secret;

/// Tries a secret this many times on a terminal before giving up, as IOS does.
const ATTEMPTS: usize = 3;

pub fn enable(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let Some(hash) = ctx.settings()?.enable_secret else {
        return Ok(Reply::mode("enable"));
    };
    let attempts = if ctx.console.is_terminal() { ATTEMPTS } else { 1 };
    for _ in 0..attempts {
        let Some(given) = ctx.console.ask_secret("Password: ") else {
            return Err(CmdError::Denied(
                "An enable secret is set and there is no terminal to ask for it: \
                 give it with --secret-file FILE or CORESH_ENABLE_SECRET"
                    .into(),
            ));
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

pub fn exit(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let grammar = crate::grammar::Grammar::builtin().map_err(|e| CmdError::Failed(e.to_string()))?;
    let parent = grammar.mode(&ctx.session.mode).and_then(|m| m.parent.clone());
    Ok(Reply { next: parent.map_or(Next::Quit, Next::Mode), ..Reply::done() })
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
