//! The daemon's heartbeat (guide step 6, Fail Over Controls), on a thread of its own.
//! On a standby secondary with HA enabled and a primary-host it probes the primary
//! ([`follow`]); on a primary with HA enabled it watches its trusted peers ([`peers`]),
//! so that an old primary that comes back learns of a newer one and reports itself
//! stale. [`signals`] asks the two signals (the SSH hello and the status page) and says
//! what each found; the judgement is `ha::heartbeat`'s. Every outcome goes to the HA
//! module log.

mod follow;
mod peers;
mod signals;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::ha::heartbeat::Monitor;
use crate::ha::{Mode, NodeStatus, Settings};
use crate::host::HostPort;
use crate::node::Node;
use crate::node::view::NodeView;

/// Starts the heartbeat on a thread of its own; it ends when `stop` turns true.
pub fn spawn(
    view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    stop: watch::Receiver<bool>,
    quorum: super::quorum::Quorum,
    counters: Arc<crate::http::metrics::Counters>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(subsystem = "heartbeat", error = %e, "cannot start the heartbeat");
                return;
            }
        };
        runtime.block_on(run(view, data_dir, stop, quorum, counters));
    })
}

/// What the heartbeat does on this node now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Role {
    /// Probe the primary (a standby secondary).
    Follow(HostPort),
    /// Watch the trusted peers (a primary).
    Watch,
    #[default]
    Idle,
}

fn role(s: &Settings) -> Role {
    match (s.enabled, s.mode, s.node_status, &s.primary_host) {
        (false, ..) => Role::Idle,
        (true, Mode::Secondary, NodeStatus::Standby, Some(primary)) => Role::Follow(primary.clone()),
        (true, Mode::Primary, ..) => Role::Watch,
        _ => Role::Idle,
    }
}

async fn run(
    mut view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
    quorum: super::quorum::Quorum,
    counters: Arc<crate::http::metrics::Counters>,
) {
    let mut node = match Node::open(&data_dir) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(subsystem = "heartbeat", error = %e, "cannot open the node; no heartbeat");
            return;
        }
    };
    let key = match crate::node::keys::host_key(&data_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(subsystem = "heartbeat", error = %e, "cannot read the node key; no heartbeat");
            return;
        }
    };
    let mut state = State { quorum: quorum.clone(), counters: counters.clone(), ..State::default() };
    let mut next = Instant::now();
    loop {
        let settings = view.borrow_and_update().settings.clone();
        let current = role(&settings);
        if current != state.role {
            // A new role (or another primary) starts afresh, at once.
            next = Instant::now();
            match &current {
                Role::Follow(primary) => {
                    let text = format!("heartbeat towards primary {primary} every {} s", settings.heartbeat_interval);
                    log(&mut node, "info", &text);
                }
                Role::Watch => {
                    log(&mut node, "info", "this node is primary: watching its trusted peers for a newer primary")
                }
                Role::Idle => log(&mut node, "info", "heartbeat stopped"),
            }
            state =
                State { role: current.clone(), quorum: quorum.clone(), counters: counters.clone(), ..State::default() };
        }
        let wait = if Instant::now() < next {
            next - Instant::now()
        } else {
            let pause = match current {
                Role::Follow(primary) => follow::follow(&mut node, &key, &mut state, &primary, &settings).await,
                Role::Watch => {
                    peers::watch_peers(&mut node, &key, &settings).await;
                    Duration::from_secs(u64::from(settings.heartbeat_interval.max(1)))
                }
                Role::Idle => Duration::from_secs(3600),
            };
            next = Instant::now() + pause;
            pause
        };
        tokio::select! {
            _ = stop.changed() => return,
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long a lease granted to this standby may stay unused before the standby takes
/// the role it holds (`State::granted_meanwhile`).
const GRANT_UNUSED_MS: i64 = 5000;

/// The secondary's memory of its primary between probes.
#[derive(Default)]
struct State {
    role: Role,
    monitor: Monitor,
    /// Whether the clock offset is past the warning threshold (warned once per crossing).
    clock_warned: bool,
    /// The configuration alarm raised, while it lasts (raised once).
    alarm: Option<String>,
    /// Why the last due failure action was refused (said once per reason).
    refused: Option<String>,
    /// The quorum's engine: with a witness, a promotion needs its lease.
    quorum: super::quorum::Quorum,
    /// Where each probe's outcome is counted (`/metrics`).
    counters: Arc<crate::http::metrics::Counters>,
}

impl State {
    /// The epoch at which the quorum made this standby the lease's holder although no
    /// promotion followed: a request that seemed to fail (it timed out) was committed
    /// later. The primary cannot renew a lease another holds, so this node must take the
    /// role the quorum gave it.
    fn granted_meanwhile(&self, node_id: &str, s: &crate::ha::Settings) -> Option<u64> {
        if s.witness.is_none() || !self.quorum.formed() {
            return None;
        }
        let lease = self.quorum.lease_now()?;
        // Granted a while ago and not used: not a switchover or promotion under way here,
        // which take the role within moments of their grant.
        let unused = chrono::Utc::now().timestamp_millis().saturating_sub(lease.renewed_at_ms) > GRANT_UNUSED_MS;
        (lease.holder.as_deref() == Some(node_id) && lease.epoch > s.highest_epoch() && unused).then_some(lease.epoch)
    }

    /// Why the quorum does not let this node promote itself, when a witness is set and
    /// the quorum is formed: it asks for the lease at the next epoch, which the engine
    /// grants only once the primary's renewals have expired.
    async fn quorum_refusal(&self, node_id: &str, s: &crate::ha::Settings) -> Option<String> {
        if s.witness.is_none() || !self.quorum.formed() {
            return None;
        }
        let request = crate::quorum::LeaseRequest::Acquire {
            node: node_id.to_string(),
            epoch: s.highest_epoch() + 1,
            at_ms: chrono::Utc::now().timestamp_millis(),
            ttl_ms: crate::quorum::LEASE_TTL_MS,
        };
        match self.quorum.write(request).await {
            Ok(crate::quorum::LeaseAnswer::Granted { .. }) => None,
            Ok(crate::quorum::LeaseAnswer::Refused { why, .. }) => {
                Some(format!("the quorum did not grant this node the primary lease: {why}"))
            }
            Ok(crate::quorum::LeaseAnswer::None) => Some("the quorum gave no answer".into()),
            Err(e) => Some(format!("the quorum could not decide: {e}")),
        }
    }
}

/// Writes to the HA module log and to the daemon's log.
pub(super) fn log(node: &mut Node, level: &str, message: &str) {
    match level {
        "error" => tracing::error!(subsystem = "high-availability", "{message}"),
        "warning" => tracing::warn!(subsystem = "high-availability", "{message}"),
        _ => tracing::info!(subsystem = "high-availability", "{message}"),
    }
    if let Err(e) = node.store.ha_log(level, message) {
        tracing::warn!(subsystem = "heartbeat", error = %e, "cannot write the HA module log");
    }
}
