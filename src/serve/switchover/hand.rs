//! Steps 2 to 5 of a switchover (see the parent module): hold device writes, have the
//! standby prepare, decide here, ask it to commit; and each way that ends: switched,
//! back to primary, aborted before the decision, or asking a silent standby what it did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{BOUND, COMMIT_WAIT, RESOLVE_FOR, Run, Standby, VIEW_WAIT};
use crate::ha::{Cause, Mode, Settings, hand_over, take_back};
use crate::http::hold::Held;
use crate::node::view::NodeView;
use crate::peer::message::{HandoverAnswer, HandoverStep, SwitchoverOutcome, SwitchoverReport};
use crate::peer::{Hello, Peer};
use crate::serve::handover::{sign, verify};
use crate::ssh::client::SshLink;
use crate::store::{Handover, handover_statement, now_text};

/// Steps 2 to 5: hold writes, prepare, decide, commit.
pub(super) async fn hand(
    mut run: Run<'_>,
    mut peer: Peer<SshLink>,
    standby: Standby,
    before: Settings,
    to_epoch: u64,
) -> SwitchoverReport {
    let Some(held) = run.parts.hold.hold(BOUND).await else {
        peer.close().await;
        return run.end(
            SwitchoverOutcome::Aborted,
            format!("device writes under way did not finish within {} ms; nothing changed", BOUND.as_millis()),
        );
    };
    let held_at = Instant::now();
    run.held_at = Some(held_at);
    let settle = Duration::from_millis(u64::from(before.switchover_settle_ms));
    let deadline = held_at + settle + BOUND;
    run.report.bound_ms = (settle + BOUND).as_millis() as u64;
    let last = match run.node.core().and_then(|c| c.log_head()) {
        Ok(h) => h,
        Err(e) => {
            return abort(run, peer, None, held, held_at, format!("cannot read this node's change log: {e}")).await;
        }
    };
    run.step(format!("device writes held; this node's last change is {}", last.seq));
    (run.report.seq, run.report.checksum) = (Some(last.seq), Some(last.checksum.clone()));
    let id = handover_id();
    let prepare = HandoverStep::Prepare {
        id: id.clone(),
        seq: last.seq,
        checksum: last.checksum.clone(),
        from_epoch: before.epoch,
        to_epoch,
        ttl_ms: (settle + BOUND).as_millis() as u32,
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let signature = match tokio::time::timeout(left, peer.handover(prepare)).await {
        Ok(Ok(HandoverAnswer::Prepared { signature })) => signature,
        Ok(Ok(HandoverAnswer::Refused { why })) => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby refused: {why}")).await;
        }
        Ok(Ok(other)) => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby answered {other:?} to prepare"))
                .await;
        }
        Ok(Err(e)) => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby did not answer: {e}")).await;
        }
        Err(_) => {
            let why = format!("the standby was not ready within {} ms", BOUND.as_millis());
            return abort(run, peer, Some(&id), held, held_at, why).await;
        }
    };
    let hello = peer.hello().clone();
    let statement =
        handover_statement(&id, last.seq, &last.checksum, (&run.node.id, before.epoch), (&hello.node_id, to_epoch));
    if !verify(&standby.live.key, &statement, &signature) {
        return abort(
            run,
            peer,
            Some(&id),
            held,
            held_at,
            "the standby's signature of the handover does not verify".into(),
        )
        .await;
    }
    run.step(format!("{} applied change {} and proved checksum {}", standby.name, last.seq, short(&last.checksum)));
    // The load balancer sees this node's status page fail while the standby still says
    // standby (switchover settle); a standby that breaks off meanwhile ends it here.
    tokio::select! {
        () = tokio::time::sleep_until((held_at + settle).into()) => {}
        e = peer.broke_off() => {
            return abort(run, peer, Some(&id), held, held_at, format!("the standby broke off while ready: {e}")).await;
        }
    }
    let moved = run.node.core().and_then(|c| c.log_head()).map(|h| h != last).unwrap_or(true);
    if moved || Instant::now() > deadline {
        let why = if moved { "this node's data changed while writes were held" } else { "the bound passed" };
        return abort(run, peer, Some(&id), held, held_at, why.into()).await;
    }
    let ours = match sign(&run.parts.data_dir, &statement) {
        Ok(s) => s,
        Err(why) => return abort(run, peer, Some(&id), held, held_at, why).await,
    };
    let handover = Handover {
        id: id.clone(),
        at: now_text(),
        seq: last.seq,
        checksum: last.checksum.clone(),
        from_node: run.node.id.clone(),
        from_host: before.hostname.clone(),
        from_epoch: before.epoch,
        to_node: hello.node_id.clone(),
        to_host: hello.hostname.clone(),
        to_epoch,
        from_signature: ours.clone(),
        to_signature: signature,
    };
    let cause = Cause { actor: "switchover".into(), reason: format!("switchover to {} (handover {id})", standby.name) };
    if let Err(e) = hand_over(&mut run.node.store, &cause, &handover, &standby.address) {
        return abort(run, peer, Some(&id), held, held_at, format!("cannot record the handover here: {e}")).await;
    }
    held.handed_over();
    run.note_held(held_at);
    run.step("handed over: this node is now a standby of the new primary");
    let commit = HandoverStep::Commit { id: id.clone(), signature: ours };
    if let Err(e) = peer.handover_send(commit).await {
        // It never left: the standby cannot take over without it.
        peer.close().await;
        return back(run, held, &before, &handover, format!("the commit could not be sent: {e}")).await;
    }
    let answer = tokio::time::timeout(COMMIT_WAIT, peer.handover_answer()).await;
    peer.close().await;
    match answer {
        Ok(Ok(HandoverAnswer::Committed)) => switched(run, held, &standby, &handover).await,
        Ok(Ok(HandoverAnswer::Refused { why })) => {
            back(run, held, &before, &handover, format!("the standby refused to take over: {why}")).await
        }
        Ok(Ok(other)) => back(run, held, &before, &handover, format!("the standby answered {other:?} to commit")).await,
        Ok(Err(_)) | Err(_) => resolve(run, held, &standby, &before, &handover).await,
    }
}

async fn switched(mut run: Run<'_>, held: Held, standby: &Standby, h: &Handover) -> SwitchoverReport {
    run.step(format!("{} took over at epoch {}", standby.name, h.to_epoch));
    // Writes stay held until the live view has this node as a standby, which refuses them.
    let mut view = run.parts.view.clone();
    match view_shows(&mut view, |s| s.mode == Mode::Secondary).await {
        true => drop(held),
        false => held.keep(),
    }
    let detail = format!(
        "{} is primary at epoch {} from change {} (checksum {}); this node follows it",
        standby.name,
        h.to_epoch,
        h.seq,
        short(&h.checksum)
    );
    let event = crate::notify::Event::Switchover { to: standby.name.clone(), detail: detail.clone(), done: true };
    crate::notify::raise_or_log(&mut run.node.store, &run.node.id, &event);
    run.end(SwitchoverOutcome::Switched, detail)
}

/// The standby said it did not take over: this node is the primary again.
async fn back(mut run: Run<'_>, held: Held, before: &Settings, h: &Handover, why: String) -> SwitchoverReport {
    let cause = Cause { actor: "switchover".into(), reason: format!("handover {} did not happen: {why}", h.id) };
    if let Err(e) = take_back(&mut run.node.store, &cause, before, h) {
        held.keep();
        let detail = format!(
            "{why}; and this node could not take its role back ({e}): it takes no writes; run 'failover mode primary'"
        );
        return run.end(SwitchoverOutcome::InDoubt, detail);
    }
    let mut view = run.parts.view.clone();
    let _ = view_shows(&mut view, |s| s.mode == Mode::Primary).await;
    drop(held);
    if let Some(at) = run.held_at {
        run.note_held(at);
    }
    run.step("this node is the primary again");
    let held_ms = run.report.writes_held_ms.unwrap_or_default();
    run.end(
        SwitchoverOutcome::Aborted,
        format!("{why}; this node took writes again ({held_ms} ms held) and nothing changed"),
    )
}

/// The commit's answer did not come: ask until the standby says what it did.
async fn resolve(mut run: Run<'_>, held: Held, standby: &Standby, before: &Settings, h: &Handover) -> SwitchoverReport {
    run.step(format!("{} did not answer the commit; asking it what it did", standby.name));
    let settings = run.parts.view.borrow().settings.clone();
    let ours = Hello::of(&settings, &run.node.id);
    let until = Instant::now() + RESOLVE_FOR;
    while Instant::now() < until {
        if let Ok(mut peer) = Peer::trusted(&run.node, &standby.address, &ours).await {
            let answer =
                tokio::time::timeout(COMMIT_WAIT, peer.handover(HandoverStep::Abort { id: h.id.clone() })).await;
            peer.close().await;
            match answer {
                Ok(Ok(HandoverAnswer::Committed)) => return switched(run, held, standby, h).await,
                Ok(Ok(HandoverAnswer::Aborted)) => {
                    return back(run, held, before, h, format!("{} did not take over", standby.name)).await;
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    held.keep();
    let detail = format!(
        "this node handed over to {} at change {}, which did not say within {} s whether it took over; this node stays its standby",
        standby.name,
        h.seq,
        RESOLVE_FOR.as_secs()
    );
    let event = crate::notify::Event::Switchover { to: standby.name.clone(), detail: detail.clone(), done: false };
    crate::notify::raise_or_log(&mut run.node.store, &run.node.id, &event);
    run.end(SwitchoverOutcome::InDoubt, detail)
}

/// Before the decision: tell the standby to forget it (when it may have prepared) and
/// take writes again.
async fn abort(
    mut run: Run<'_>,
    mut peer: Peer<SshLink>,
    id: Option<&str>,
    held: Held,
    held_at: Instant,
    why: String,
) -> SwitchoverReport {
    if let Some(id) = id {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), peer.handover(HandoverStep::Abort { id: id.into() })).await;
    }
    peer.close().await;
    drop(held);
    run.note_held(held_at);
    let held_ms = run.report.writes_held_ms.unwrap_or_default();
    run.end(
        SwitchoverOutcome::Aborted,
        format!("{why}; this node took writes again ({held_ms} ms held) and nothing changed"),
    )
}

async fn view_shows(view: &mut watch::Receiver<Arc<NodeView>>, want: impl Fn(&Settings) -> bool) -> bool {
    let wait = async {
        loop {
            if want(&view.borrow_and_update().settings) {
                return true;
            }
            if view.changed().await.is_err() {
                return false;
            }
        }
    };
    tokio::time::timeout(VIEW_WAIT, wait).await.unwrap_or(false)
}

fn handover_id() -> String {
    let mut raw = [0u8; 8];
    let _ = getrandom::fill(&mut raw);
    format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S"), hex::encode(raw))
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}
