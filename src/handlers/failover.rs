//! The guide's failover command set (table 5): `failover mode primary|secondary` and
//! `failover client-connection enable|disable`. Making a secondary primary by hand says
//! what its data lacks of its primary's (never synced, or since when). With a witness
//! and a formed quorum, `failover mode primary` first asks the quorum for the primary
//! lease at the next epoch, through the other voters over the trusted channel, and is
//! refused with the quorum's reason when not granted; `force` promotes without it and
//! takes the node out of the quorum (disaster recovery, when the witness is gone).

use chrono::Utc;

use super::Ctx;
use crate::cli::Args;
use crate::ha::{self, Mode, Readiness, Settings};
use crate::peer::Blocking;
use crate::peer::message::{RaftCall, RaftReply};
use crate::quorum::{LEASE_TTL_MS, LeaseAnswer, LeaseRequest};
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

/// How many times the quorum is asked, and how long apart.
const ASK_ROUNDS: u32 = 3;
const ASK_AGAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the quorum decides for this node: a witness is set and the engine has its
/// three voters (as the daemon last wrote it).
fn quorum_formed(ctx: &Ctx, s: &Settings) -> bool {
    s.witness.is_some()
        && crate::quorum::store::Storage::open(&ctx.node.data_dir)
            .ok()
            .and_then(|st| st.machine().ok())
            .is_some_and(|m| m.membership.membership().voter_ids().count() >= 3)
}

/// Asks the quorum to make this node the lease's holder at `epoch`: through each other
/// voter (the primary and the witness) in turn, each of which hands it to the engine's
/// leader. The first answer decides.
fn ask_for_lease(ctx: &Ctx, s: &Settings, epoch: u64) -> Result<(), CmdError> {
    let request = LeaseRequest::Acquire {
        node: ctx.node.id.clone(),
        epoch,
        at_ms: Utc::now().timestamp_millis(),
        ttl_ms: LEASE_TTL_MS,
    };
    let mut failures = Vec::new();
    // While the voters elect a leader (the old one just went), none may answer: asked
    // again, a few times, before saying the quorum could not decide.
    for round in 0..ASK_ROUNDS {
        if round > 0 {
            std::thread::sleep(ASK_AGAIN);
        }
        failures.clear();
        match ask_once(ctx, s, &request, &mut failures) {
            Some(decided) => return decided,
            None => continue,
        }
    }
    Err(CmdError::Failed(format!(
        "The quorum could not decide ({}). Nothing changed. If the witness is gone for good, \
         'failover mode primary force' promotes this node without the quorum and takes it out of it",
        failures.join("; ")
    )))
}

/// One round of [`ask_for_lease`]: the quorum's decision, or none (each failure noted).
fn ask_once(
    ctx: &Ctx,
    s: &Settings,
    request: &LeaseRequest,
    failures: &mut Vec<String>,
) -> Option<Result<(), CmdError>> {
    for host in s.primary_host.iter().chain(s.witness.iter()) {
        let call = RaftCall::ClientWrite { request: request.clone(), relayed: false };
        let answered =
            Blocking::trusted(ctx.node, host).and_then(|peer| peer.once(|b| b.run(async |p| p.raft(call).await)));
        match answered {
            Ok(RaftReply::ClientWrite(LeaseAnswer::Granted { .. })) => return Some(Ok(())),
            Ok(RaftReply::ClientWrite(LeaseAnswer::Refused { why, .. })) => {
                return Some(Err(CmdError::Failed(format!(
                    "The quorum refused this node the primary lease: {why}. Nothing changed. \
                     'failover switchover' hands the role over from a running primary"
                ))));
            }
            Ok(RaftReply::Failed { why }) => failures.push(format!("{host}: {why}")),
            Ok(other) => failures.push(format!("{host}: answered {other:?}")),
            Err(e) => failures.push(format!("{host}: {e}")),
        }
    }
    None
}

pub fn failover_mode_primary(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let before = ctx.settings()?;
    not_a_witness(&before)?;
    let force = args.has("force");
    let with_quorum = before.mode != Mode::Primary && quorum_formed(ctx, &before);
    if with_quorum && !force {
        ask_for_lease(ctx, &before, before.highest_epoch() + 1)?;
    }
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
    let leaves = force && before.mode != Mode::Primary && before.witness.is_some();
    let applied = ha::promote_and(&mut ctx.node.store, &cause, |s| {
        if leaves {
            s.witness = None;
        }
    })?;
    let epoch = applied.now.epoch;
    if applied.changed.is_empty() {
        return Ok(Reply::done().info(format!("This node is primary (epoch {epoch}); nothing changed.")));
    }
    let mut reply = Reply::done()
        .info(format!("This node is now primary (epoch {epoch}). It will not replicate from any other node."));
    if with_quorum && !force {
        reply = reply.info(format!("The quorum granted this node the primary lease at epoch {epoch}."));
    }
    if leaves {
        reply = reply.warn(
            "Promoted without the quorum: this node has left it (no witness). If the old primary \
             still runs, it may take writes too. 'witness HOST' in (config-ha)# joins the quorum again.",
        );
    }
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
