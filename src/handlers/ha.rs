//! `(config-ha)#`: one handler per field of the guide's HA Configuration window. Each
//! saves at once; saves that move the schedule say when the next sync will run.

use super::{Ctx, next_sync_text};
use crate::cli::Args;
use crate::ha::{self, Mode, NodeStatus, ReplicationMode, Unit};
use crate::report::{CmdError, Reply};

/// The guide: "The replication process should not be set more frequently than 60 minutes."
const MIN_ADVISED_INTERVAL: i64 = 3600;
/// Longest sync interval accepted.
const MAX_INTERVAL: i64 = 30 * 86_400;

/// A reply that tells when the next sync runs after this save.
fn with_schedule(ctx: &Ctx, reply: Reply) -> Result<Reply, CmdError> {
    let s = ctx.settings()?;
    Ok(reply.info(format!("Next sync: {}", next_sync_text(&s))))
}

fn choice<T: std::str::FromStr>(args: &Args, name: &str) -> Result<T, CmdError> {
    args.text(name).and_then(|t| t.parse().ok()).ok_or_else(|| CmdError::Failed(format!("missing {name}")))
}

fn seconds(args: &Args) -> u32 {
    args.int("SECONDS").and_then(|n| u32::try_from(n).ok()).unwrap_or(1)
}

pub fn ha_service(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let on = args.has("enable");
    let applied = ctx.update(|s| s.enabled = on)?;
    let s = &applied.now;
    let mut reply = Reply::done();
    if on && s.mode == Mode::Secondary && s.primary_host.is_none() {
        reply = reply.warn("No primary-host is set: this secondary has nothing to check or sync from");
    }
    with_schedule(ctx, reply)
}

pub fn ha_mode(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let role: Mode = choice(args, "role")?;
    let cause = ctx.cause();
    let applied = match role {
        Mode::Primary => ha::promote(&mut ctx.node.store, &cause)?,
        Mode::Secondary => {
            ha::demote(&mut ctx.node.store, &cause)?;
            // Saving the mode here, unlike `failover mode secondary`, restarts the scheduler.
            ha::restart_schedule(&mut ctx.node.store, &cause)?
        }
        Mode::Witness => ctx.update(|s| {
            s.mode = Mode::Witness;
            s.node_status = NodeStatus::Standby;
            s.witness = None;
        })?,
    };
    let reply = match role {
        Mode::Primary => Reply::done().info(format!("This node is primary (epoch {}).", applied.now.epoch)),
        Mode::Secondary => Reply::done(),
        Mode::Witness => {
            Reply::done().info("This node is a quorum witness: it votes, holds no Core data and serves no device.")
        }
    };
    with_schedule(ctx, reply)
}

pub fn ha_node_status(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let status: NodeStatus = choice(args, "status")?;
    if ctx.settings()?.mode != Mode::Secondary {
        return Err(CmdError::Failed("node-status applies to a secondary; this node is primary".into()));
    }
    ctx.update(|s| s.node_status = status)?;
    with_schedule(ctx, Reply::done())
}

pub fn ha_primary_host(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let host = if args.has("no") { None } else { args.host("HOST").cloned() };
    ctx.update(|s| s.primary_host = host)?;
    Ok(Reply::done())
}

pub fn ha_sync_start_time(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let time = args.time("TIME").unwrap_or((0, 0));
    ctx.update(|s| s.start_time = time)?;
    with_schedule(ctx, Reply::done())
}

pub fn ha_sync_run_every(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let count = args.int("INTERVAL").and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
    let unit: Unit = choice(args, "unit")?;
    let total = i64::from(count) * unit.seconds();
    if total > MAX_INTERVAL {
        return Err(CmdError::Failed("run-every is at most 30 days".into()));
    }
    let s = ctx.update(|s| s.run_every = (count, unit))?.now;
    let mut reply = Reply::done();
    if total < MIN_ADVISED_INTERVAL {
        reply = reply.warn(
            "Syncing more often than every 60 minutes is against the HA best practice; \
             check in the sync history that syncs do not overlap",
        );
    }
    if total >= s.max_staleness_seconds() {
        reply = reply.warn(format!(
            "Syncs every {count} {unit} are not more often than heartbeat max-staleness {} {}: between syncs this \
             node would not promote itself",
            s.max_staleness.0, s.max_staleness.1
        ));
    }
    with_schedule(ctx, reply)
}

pub fn ha_heartbeat_interval(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let secs = seconds(args);
    ctx.update(|s| s.heartbeat_interval = secs)?;
    Ok(Reply::done())
}

pub fn ha_heartbeat_failures(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let count = args.int("COUNT").and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
    ctx.update(|s| s.heartbeat_failures = count)?;
    Ok(Reply::done())
}

pub fn ha_heartbeat_recheck(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let secs = seconds(args);
    ctx.update(|s| s.heartbeat_recheck = secs)?;
    Ok(Reply::done())
}

pub fn ha_heartbeat_max_staleness(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let bound = if args.has("no") {
        ha::Settings::default().max_staleness
    } else {
        let count = args.int("AMOUNT").and_then(|n| u32::try_from(n).ok()).unwrap_or(1);
        (count, choice(args, "unit")?)
    };
    if i64::from(bound.0) * bound.1.seconds() > MAX_INTERVAL {
        return Err(CmdError::Failed("max-staleness is at most 30 days".into()));
    }
    let s = ctx.update(|s| s.max_staleness = bound)?.now;
    let mut reply = Reply::done();
    if s.interval_seconds() >= s.max_staleness_seconds() {
        reply = reply.warn(format!(
            "Syncs run every {} {}, not more often than max-staleness {} {}: between syncs this node would not              promote itself",
            s.run_every.0, s.run_every.1, s.max_staleness.0, s.max_staleness.1
        ));
    }
    Ok(reply)
}

pub fn ha_heartbeat_status_url(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let url = if args.has("no") { None } else { args.text("URL").map(str::to_string) };
    ctx.update(|s| s.status_url = url)?;
    Ok(Reply::done())
}

pub fn ha_replication_mode(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    if args.has("synchronous") {
        let timeout = args.int("MILLISECONDS").and_then(|n| u32::try_from(n).ok()).unwrap_or(1000);
        ctx.update(|s| {
            s.replication_mode = ReplicationMode::Synchronous;
            s.sync_timeout_ms = timeout;
        })?;
        return Ok(Reply::done());
    }
    let kind = choice(args, "kind")?;
    ctx.update(|s| s.replication_mode = kind)?;
    Ok(Reply::done())
}

pub fn ha_witness(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let witness = if args.has("no") { None } else { args.host("HOST").cloned() };
    if witness.is_some() && ctx.settings()?.mode == Mode::Witness {
        return Err(CmdError::Failed(
            "This node is itself a witness; name the witness on the primary and the secondary".into(),
        ));
    }
    ctx.update(|s| s.witness = witness)?;
    Ok(Reply::done())
}

pub fn ha_switchover_settle(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let ms = args
        .int("SETTLE")
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| CmdError::Failed("missing SETTLE".into()))?;
    ctx.update(|s| s.switchover_settle_ms = ms)?;
    Ok(Reply::done())
}

pub fn ha_on_failure(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let action = choice(args, "action")?;
    ctx.update(|s| s.on_failure = action)?;
    Ok(Reply::done())
}

pub fn ha_notify_email(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let address = if args.has("no") { None } else { args.text("ADDRESS").map(str::to_string) };
    ctx.update(|s| s.notify_email = address)?;
    Ok(Reply::done())
}

pub fn ha_notify_on(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let on = !args.has("no");
    let sync = args.has("sync-completion");
    let applied = ctx.update(|s| {
        if sync {
            s.notify_sync_completion = on;
        } else {
            s.notify_failure = on;
        }
    })?;
    let mut reply = Reply::done();
    if on && applied.now.notify_email.is_none() {
        reply = reply.warn("No notify email is set: notifications have nowhere to go");
    }
    Ok(reply)
}
