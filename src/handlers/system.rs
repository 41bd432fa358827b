//! Global configuration of the node itself: `hostname`, `prompt`, `enable secret`,
//! `audit retention` and who may read the metrics (`metrics allow`); `write memory`,
//! which has nothing to save.

use super::Ctx;
use crate::cli::Args;
use crate::report::{CmdError, Reply};
use crate::store::{RETENTION, Retention};

/// `write memory` (what automation sends to save, netmiko's `save_config`): every
/// setting is saved as it is made, so there is nothing left to write.
pub fn write_memory(_: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::done().info(
        "[OK] Nothing to save: every setting is saved as it is made (a durable transaction in the system database).",
    ))
}

/// `prompt hostname [mode] [state]`, `no prompt`: what the prompt shows.
pub fn prompt(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let parts = match args.has("no") {
        true => crate::ha::PromptParts::default(),
        false => crate::ha::PromptParts { mode: args.has("mode"), state: args.has("state") },
    };
    ctx.update(|s| s.prompt = parts)?;
    Ok(Reply::done())
}

/// `[no] metrics allow PREFIX`: an address stands for itself alone (/32, /128).
pub fn metrics_allow(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let text = args.text("PREFIX").unwrap_or_default();
    let net: ipnet::IpNet = match text.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.into(),
        Err(_) => text.parse().map_err(|_| {
            CmdError::Failed(format!("'{text}' is not an address or network (ADDRESS or ADDRESS/LENGTH)"))
        })?,
    };
    let net = net.trunc();
    let remove = args.has("no");
    ctx.update(|s| {
        s.metrics_allow.retain(|n| *n != net);
        if !remove {
            s.metrics_allow.push(net);
        }
    })?;
    Ok(Reply::done())
}

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

pub fn audit_retention(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let keep = args.int("KEEP").and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
    let retention = match args.text("unit") {
        _ if args.has("no") => None,
        Some("rows") => Some(Retention::Rows(keep)),
        _ => Some(Retention::Days(keep)),
    };
    let text = retention.map(Retention::text);
    ctx.node.store.update_settings(|c| {
        c.insert(RETENTION, text);
    })?;
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
