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
        None => ask_twice(ctx),
    })?;
    ctx.update(|s| s.enable_secret = hash)?;
    Ok(Reply::done())
}

fn ask_twice(ctx: &mut Ctx) -> Result<String, CmdError> {
    if !ctx.console.is_terminal() {
        return Err(CmdError::Failed(
            "No terminal to ask on: use 'enable secret LINE' or 'enable secret hashed HASH'".into(),
        ));
    }
    let first = ctx.console.ask_secret("Enter enable secret: ");
    let second = ctx.console.ask_secret("Confirm enable secret: ");
    match (first, second) {
        (Some(a), Some(b)) if a == b => Ok(a),
        _ => Err(CmdError::Failed("The secrets do not match; the enable secret is unchanged".into())),
    }
}
