//! Global configuration of the node itself: `hostname` and `enable secret`.

use super::Ctx;
use crate::cli::Args;
use crate::report::{CmdError, Reply};

pub fn hostname(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let name = args.text("NAME").unwrap_or_default().to_string();
    ctx.update(|s| s.hostname = name)?;
    Ok(Reply::done())
}

pub fn enable_secret(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let hash = super::stored_secret(args, 1, || match args.text("SECRET") {
        Some(clear) => Ok(clear.to_string()),
        None => ask_twice(ctx, "enable secret"),
    })?;
    ctx.update(|s| s.enable_secret = hash)?;
    Ok(Reply::done())
}

/// Asks for `what` twice without echo, on a terminal only.
pub(super) fn ask_twice(ctx: &mut Ctx, what: &str) -> Result<String, CmdError> {
    if !ctx.console.is_terminal() {
        return Err(CmdError::Failed(format!(
            "No terminal to ask on: give the {what} on the line, or its hash with 'hashed HASH'"
        )));
    }
    let first = ctx.console.ask_secret(&format!("Enter {what}: "));
    let second = ctx.console.ask_secret(&format!("Confirm {what}: "));
    match (first, second) {
        (Some(a), Some(b)) if a == b => Ok(a),
        _ => Err(CmdError::Failed(format!("The secrets do not match; the {what} is unchanged"))),
    }
}
