//! The guide's failover command set (table 5): `failover mode primary|secondary` and
//! `failover client-connection enable|disable`.

use super::Ctx;
use crate::cli::Args;
use crate::ha;
use crate::report::{CmdError, Reply};

pub fn mode_primary(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let cause = ctx.cause();
    let applied = ha::promote(&mut ctx.node.store, &cause)?;
    let epoch = applied.now.epoch;
    Ok(if applied.changed.is_empty() {
        Reply::done().info(format!("This node is primary (epoch {epoch}); nothing changed."))
    } else {
        Reply::done()
            .info(format!("This node is now primary (epoch {epoch}). It will not replicate from any other node."))
    })
}

pub fn mode_secondary(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let cause = ctx.cause();
    let applied = ha::demote(&mut ctx.node.store, &cause)?;
    let reply = if applied.changed.is_empty() {
        Reply::done().info("This node is secondary (standby); nothing changed.")
    } else {
        Reply::done().info("This node is now secondary (standby).")
    };
    Ok(reply.info(
        "The sync scheduler was not restarted; 'service enable' in high-availability \
         configuration restarts it.",
    ))
}

pub fn client_connection(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let allow = args.has("enable");
    ctx.update(|s| s.client_connections = allow)?;
    Ok(Reply::done().info(if allow {
        "New device connections are allowed."
    } else {
        "New device connections are refused; status pages keep answering."
    }))
}
