//! The guide's failover command set (table 5): `failover mode primary|secondary` and
//! `failover client-connection enable|disable`. Making a secondary primary by hand says
//! what its data lacks of its primary's (never synced, or since when).

use chrono::Utc;

use super::Ctx;
use crate::cli::Args;
use crate::ha::{self, Mode, Readiness};
use crate::report::{CmdError, Reply};

/// A witness holds no Core data: it never becomes primary or secondary by the guide's
/// commands.
fn not_a_witness(s: &crate::ha::Settings) -> Result<(), CmdError> {
    match s.mode {
        Mode::Witness => Err(CmdError::Failed(
            "This node is a quorum witness and holds no Core data; change its mode in (config-ha)# first".into(),
        )),
        _ => Ok(()),
    }
}

pub fn failover_mode_primary(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let before = ctx.settings()?;
    not_a_witness(&before)?;
    // What a secondary made primary by hand lacks of its primary's data: said, not refused.
    let lacks = match (&before.primary_host, before.mode) {
        (Some(host), Mode::Secondary) => {
            let host = host.to_string();
            let seen = ctx.node.store.peer_status(&host)?.and_then(|p| p.node_id);
            Some(Readiness::of(&before, &host, seen.as_deref(), Utc::now()).describe(&before, &host))
        }
        _ => None,
    };
    let cause = ctx.cause();
    let applied = ha::promote(&mut ctx.node.store, &cause)?;
    let epoch = applied.now.epoch;
    if applied.changed.is_empty() {
        return Ok(Reply::done().info(format!("This node is primary (epoch {epoch}); nothing changed.")));
    }
    let reply = Reply::done()
        .info(format!("This node is now primary (epoch {epoch}). It will not replicate from any other node."));
    Ok(match lacks {
        Some(lacks) => reply.warn(format!("Promoted by hand: {lacks}")),
        None => reply,
    })
}

pub fn failover_mode_secondary(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    not_a_witness(&ctx.settings()?)?;
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

pub fn failover_client_connection(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let allow = args.has("enable");
    ctx.update(|s| s.client_connections = allow)?;
    Ok(Reply::done().info(if allow {
        "New device connections are allowed."
    } else {
        "New device connections are refused; status pages keep answering."
    }))
}
