//! A primary's watch of its trusted peers, at start and every heartbeat interval: a peer
//! that is primary with a higher epoch means a failover happened while this node was
//! away, so this node reports itself stale (and stops taking devices); one at the same
//! epoch is a split brain, reported when it starts. Only changes are logged.

use russh::keys::PrivateKey;

use super::follow::{describe_peer, saw};
use super::log;
use super::signals::{Heard, hello_of};
use crate::ha::heartbeat::{Signal, probe_timeout};
use crate::ha::{self, Cause, Mode, Settings};
use crate::host::HostPort;
use crate::node::Node;
use crate::notify::{Event, raise_or_log};
use crate::peer::hello::Hello;
use crate::store::{PeerStatus, now_millis};

/// A primary's watch of its trusted peers: a peer that is primary with a higher epoch
/// makes this node stale. Only changes are logged.
pub async fn watch_peers(node: &mut Node, key: &PrivateKey, settings: &Settings) {
    let peers = match node.store.trusted_hosts() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(subsystem = "heartbeat", error = %e, "cannot read the trusted hosts");
            return;
        }
    };
    let mut kept = Vec::new();
    for peer in peers {
        let Ok(target) = peer.host.parse::<HostPort>() else { continue };
        kept.push(peer.host.clone());
        let previous = node.store.peer_status(&peer.host).ok().flatten();
        let Heard { signal, hello, offset } = hello_of(node, key, &target, settings, probe_timeout(settings)).await;
        let answered = signal == Signal::Answered;
        let mut seen = PeerStatus {
            host: peer.host.clone(),
            role: "peer".into(),
            checked_at: now_millis(),
            reachable: answered,
            failures: match (answered, &previous) {
                (true, _) => 0,
                (false, Some(p)) => p.failures.saturating_add(1),
                (false, None) => 1,
            },
            error: if answered { String::new() } else { signal.describe() },
            alarm: match &signal {
                Signal::Misconfigured(why) => Some(why.clone()),
                _ => None,
            },
            ..previous.clone().unwrap_or_default()
        };
        if let Some(h) = &hello {
            saw(&mut seen, &target, h, offset);
            if h.epoch > node.settings().map_or(u64::MAX, |s| s.epoch_seen)
                && let Err(e) = ha::saw_epoch(&mut node.store, h.epoch, &peer.host)
            {
                tracing::warn!(subsystem = "heartbeat", error = %e, "cannot record a peer's epoch");
            }
            // A split brain is reported when it starts, not at every look.
            let already =
                previous.as_ref().is_some_and(|p| p.mode.as_deref() == Some("primary") && p.epoch == Some(h.epoch));
            judge_peer(node, settings, &peer.host, h, !already);
        }
        let was = previous.as_ref().map(|p| (p.reachable, p.mode.clone(), p.epoch));
        if was != Some((seen.reachable, seen.mode.clone(), seen.epoch)) {
            let text = match &hello {
                Some(h) => format!("peer {}: reachable ({})", peer.host, describe_peer(h, offset)),
                None => format!("peer {}: unreachable ({})", peer.host, seen.error),
            };
            log(node, "info", &text);
        }
        if let Err(e) = node.store.put_peer_status(&seen) {
            tracing::warn!(subsystem = "heartbeat", error = %e, "cannot record the peer's status");
        }
    }
    if let Err(e) = node.store.forget_peers_except(&kept) {
        tracing::warn!(subsystem = "heartbeat", error = %e, "cannot forget old peers");
    }
}

/// Compares a peer's claim with ours: a primary with a higher epoch makes us stale.
fn judge_peer(node: &mut Node, settings: &Settings, host: &str, h: &Hello, newly: bool) {
    if h.mode != Mode::Primary {
        return;
    }
    if h.epoch > settings.epoch && settings.stale.is_none() {
        let stale = format!(
            "{} ({host}) is primary with epoch {}, this node has epoch {} (seen {})",
            h.hostname,
            h.epoch,
            settings.epoch,
            now_millis()
        );
        let cause = Cause { actor: "heartbeat".into(), reason: format!("stale primary: {stale}") };
        match ha::update(&mut node.store, &cause, |s| s.stale = Some(stale.clone())) {
            Ok(_) => {
                log(
                    node,
                    "error",
                    &format!(
                        "STALE PRIMARY: {stale}. This node no longer claims to be the healthy primary. \
                         To recover: 'failover mode secondary', then 'failover sync {host}'"
                    ),
                );
                raise_or_log(&mut node.store, &node.id, &Event::Stale { detail: stale });
            }
            Err(e) => log(node, "error", &format!("stale primary detected ({stale}) but not saved: {e}")),
        }
    } else if h.epoch == settings.epoch && settings.stale.is_none() && newly {
        let text = format!(
            "SPLIT BRAIN: {} ({host}) is also primary, at the same epoch {}; choose one with 'failover mode secondary' on the other",
            h.hostname, h.epoch
        );
        log(node, "error", &text);
        raise_or_log(&mut node.store, &node.id, &Event::SplitBrain { detail: text });
    }
}
