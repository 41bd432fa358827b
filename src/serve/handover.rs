//! A standby's side of a handover, as its primary asks it over the trusted channel
//! (`failover switchover`, run by the primary's daemon, `serve::switchover`):
//! *prepare* (apply every change up to the one the primary stopped at, prove the same
//! content checksum there, sign), then *commit* (take over at the agreed epoch, in one
//! transaction with the handover record) or *abort*. Commit and abort exclude each
//! other, and a prepared handover is forgotten when its time passes or this daemon
//! restarts, so the primary's question "did you take over?" always has one true answer:
//! yes exactly when the handover is in this node's records.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use russh::keys::PublicKey;
use tokio::sync::Mutex;

use crate::coredb::CoreDb;
use crate::ha::{Cause, Mode, NodeStatus, take_over};
use crate::http::hold::WriteHold;
use crate::peer::message::{HandoverAnswer, HandoverStep};
use crate::ssh::peer_channel::Caller;
use crate::store::{Handover, SIGNATURE_NAMESPACE, Store, now_text};

/// How often the prepare step looks at how far this node has applied.
const APPLIED_POLL: Duration = Duration::from_millis(5);
/// The longest a primary may ask this node to stay ready.
const MAX_TTL: Duration = Duration::from_secs(60);

/// A handover prepared here, waiting for its commit.
struct Ready {
    handover: Handover,
    /// The primary's key, which must sign the commit.
    primary: PublicKey,
    until: Instant,
}

/// How long the live view may take to show this node as primary (it polls every 50 ms).
const VIEW_WAIT: Duration = Duration::from_secs(5);

/// What of this daemon a handover's answers touch.
pub struct Here<'a> {
    pub hold: &'a WriteHold,
    /// The quorum's engine: with a witness, the lease moves with the role.
    pub quorum: &'a super::quorum::Quorum,
    pub view: &'a tokio::sync::watch::Receiver<std::sync::Arc<crate::node::view::NodeView>>,
}

/// The handover this node is ready for, if any.
#[derive(Default)]
pub struct Handovers(Mutex<Option<Ready>>);

fn refused(why: impl Into<String>) -> HandoverAnswer {
    HandoverAnswer::Refused { why: why.into() }
}

impl Handovers {
    /// Answers one step of `caller`, this node's primary.
    /// A commit is answered once this daemon's live view has the node as primary, so
    /// that when the switchover says it is done, the new primary takes writes.
    pub async fn answer(&self, data_dir: &Path, caller: &Caller, step: HandoverStep, at: &Here<'_>) -> HandoverAnswer {
        let answer = self.step(data_dir, caller, step, at.quorum).await;
        let ready = self.0.lock().await.as_ref().map(|r| r.until);
        at.hold.ready(ready);
        if answer == HandoverAnswer::Committed {
            let mut view = at.view.clone();
            let primary = async {
                while view.borrow_and_update().settings.mode != Mode::Primary {
                    if view.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = tokio::time::timeout(VIEW_WAIT, primary).await;
        }
        answer
    }

    async fn step(
        &self,
        data_dir: &Path,
        caller: &Caller,
        step: HandoverStep,
        quorum: &super::quorum::Quorum,
    ) -> HandoverAnswer {
        match step {
            HandoverStep::Prepare { id, seq, checksum, from_epoch, to_epoch, ttl_ms } => {
                let ttl = Duration::from_millis(u64::from(ttl_ms)).min(MAX_TTL);
                let asked = Asked { id, seq, checksum, from_epoch, to_epoch };
                match prepare(data_dir, caller, asked, Instant::now() + ttl).await {
                    Ok(ready) => {
                        let signature = ready.handover.to_signature.clone();
                        *self.0.lock().await = Some(ready);
                        HandoverAnswer::Prepared { signature }
                    }
                    Err(why) => refused(why),
                }
            }
            HandoverStep::Commit { id, signature } => {
                let mut ready = self.0.lock().await;
                let Some(r) = ready.take_if(|r| r.handover.id == id) else {
                    return match recorded(data_dir, &id).await {
                        true => HandoverAnswer::Committed,
                        false => {
                            refused(format!("no handover {id} is ready here (its time passed, or it was aborted)"))
                        }
                    };
                };
                if Instant::now() > r.until {
                    return refused(format!("handover {id} was ready too long ago"));
                }
                commit(data_dir.to_path_buf(), r, signature, quorum).await
            }
            HandoverStep::Abort { id } => {
                let mut ready = self.0.lock().await;
                let _ = ready.take_if(|r| r.handover.id == id);
                match recorded(data_dir, &id).await {
                    true => HandoverAnswer::Committed,
                    false => HandoverAnswer::Aborted,
                }
            }
        }
    }
}

/// What the primary asks this node to prepare for.
struct Asked {
    id: String,
    seq: i64,
    checksum: String,
    from_epoch: u64,
    to_epoch: u64,
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| format!("internal error: {e}"))?
}

async fn recorded(data_dir: &Path, id: &str) -> bool {
    let (dir, id) = (data_dir.to_path_buf(), id.to_string());
    blocking(move || Store::open(&dir).and_then(|s| s.handover(&id)).map_err(|e| e.to_string()))
        .await
        .is_ok_and(|h| h.is_some())
}

/// Checks that this node may take over from `caller`, waits until it has applied
/// change `asked.seq`, proves the checksum there and signs.
async fn prepare(data_dir: &Path, caller: &Caller, asked: Asked, until: Instant) -> Result<Ready, String> {
    let hello = caller.hello.clone().ok_or("the primary sent no hello")?;
    let (dir, key) = (data_dir.to_path_buf(), caller.key.clone());
    let to_epoch = asked.to_epoch;
    let (hostname, node_id) = blocking(move || {
        let node = crate::node::Node::open(&dir).map_err(|e| e.to_string())?;
        let s = node.settings().map_err(|e| e.to_string())?;
        if !(s.enabled && s.mode == Mode::Secondary && s.node_status == NodeStatus::Standby) {
            return Err(format!("{} is not a standby secondary with HA enabled", s.hostname));
        }
        let primary = s.primary_host.clone().ok_or("this node follows no primary")?;
        let trusted = crate::ssh::client::trusted_key(&node, &primary).map_err(|e| e.to_string())?;
        if trusted.key_data() != key.key_data() {
            return Err(format!("the asker is not this node's primary ({primary})"));
        }
        if to_epoch <= s.highest_epoch() {
            return Err(format!("epoch {to_epoch} is not past epoch {}, the highest seen here", s.highest_epoch()));
        }
        Ok((s.hostname, node.id.clone()))
    })
    .await?;
    let core_dir = data_dir.to_path_buf();
    let core = blocking(move || CoreDb::open(&core_dir).map_err(|e| e.to_string())).await?;
    let core = std::sync::Arc::new(std::sync::Mutex::new(core));
    loop {
        let reader = core.clone();
        let head =
            blocking(move || reader.lock().map_err(|_| "poisoned".to_string())?.log_head().map_err(|e| e.to_string()))
                .await?;
        if head.seq > asked.seq {
            return Err(format!(
                "{hostname} has changes past {} (it is at {}): it is not this primary's copy",
                asked.seq, head.seq
            ));
        }
        if head.seq == asked.seq {
            if head.checksum != asked.checksum {
                return Err(format!(
                    "content checksums differ at change {}: {} here, {} on the primary",
                    asked.seq, head.checksum, asked.checksum
                ));
            }
            break;
        }
        if Instant::now() > until {
            return Err(format!("{hostname} did not apply change {} in time (it is at {})", asked.seq, head.seq));
        }
        tokio::time::sleep(APPLIED_POLL).await;
    }
    let mut handover = Handover {
        id: asked.id,
        at: now_text(),
        seq: asked.seq,
        checksum: asked.checksum,
        from_node: hello.node_id.clone(),
        from_host: hello.hostname.clone(),
        from_epoch: asked.from_epoch,
        to_node: node_id,
        to_host: hostname,
        to_epoch: asked.to_epoch,
        from_signature: String::new(),
        to_signature: String::new(),
    };
    handover.to_signature = sign(data_dir, &handover.statement())?;
    Ok(Ready { handover, primary: caller.key.clone(), until })
}

/// Signs a handover's statement with this node's key.
pub fn sign(data_dir: &Path, statement: &str) -> Result<String, String> {
    crate::node::keys::sign(data_dir, SIGNATURE_NAMESPACE, statement)
}

/// Whether `signature` is `key`'s signature of a handover's statement.
pub fn verify(key: &PublicKey, statement: &str, signature: &str) -> bool {
    crate::node::keys::verify(key, SIGNATURE_NAMESPACE, statement, signature)
}

/// Takes over: the primary's signature checked, nothing applied since the prepare,
/// then primary at the agreed epoch with the handover recorded.
async fn commit(data_dir: PathBuf, ready: Ready, signature: String, quorum: &super::quorum::Quorum) -> HandoverAnswer {
    let Ready { mut handover, primary, .. } = ready;
    if !verify(&primary, &handover.statement(), &signature) {
        return refused("the primary's signature of the handover does not verify");
    }
    handover.from_signature = signature;
    // With a witness, the quorum's lease moves first: without it this node could not
    // serve, and refused, nothing changed.
    if quorum.formed() {
        let transfer = crate::quorum::LeaseRequest::Transfer {
            from: handover.from_node.clone(),
            to: handover.to_node.clone(),
            epoch: handover.to_epoch,
            at_ms: chrono::Utc::now().timestamp_millis(),
        };
        match quorum.write(transfer).await {
            Ok(crate::quorum::LeaseAnswer::Granted { .. }) => {}
            Ok(other) => return refused(format!("the quorum did not move the primary lease: {other:?}")),
            Err(e) => return refused(format!("the quorum did not move the primary lease: {e}")),
        }
    }
    let done = blocking(move || {
        let core = CoreDb::open(&data_dir).map_err(|e| e.to_string())?;
        let head = core.log_head().map_err(|e| e.to_string())?;
        if head.seq != handover.seq {
            return Err(format!("this node moved to change {} since it was ready at {}", head.seq, handover.seq));
        }
        let mut store = Store::open(&data_dir).map_err(|e| e.to_string())?;
        let cause = Cause {
            actor: "switchover".into(),
            reason: format!("switchover from {} (handover {})", handover.from_host, handover.id),
        };
        take_over(&mut store, &cause, &handover).map_err(|e| e.to_string())?;
        let line = format!(
            "switchover: this node took over from {} at change {} (epoch {})",
            handover.from_host, handover.seq, handover.to_epoch
        );
        let _ = store.ha_log("info", &line);
        Ok(())
    })
    .await;
    match done {
        Ok(()) => HandoverAnswer::Committed,
        Err(why) => refused(why),
    }
}
