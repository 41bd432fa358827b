//! A standby secondary's heartbeat towards its primary: both signals at each probe,
//! what they found recorded for `show failover`, a configuration error raised once as an
//! alarm (never a failover), and the failure action once the primary has failed enough
//! probes in a row. Before it promotes itself the node checks that it may: its Core data
//! must be recent enough (`heartbeat max-staleness`), and no primary further up its chain
//! may still answer (a DR node that lost only the secondary). Otherwise it stays standby
//! and says why, and looks again at the next failed probe.

use std::time::Duration;

use russh::keys::PrivateKey;

use super::signals::{advertised, hello_of, page_of, page_url};
use super::{State, log};
use crate::ha::heartbeat::{CLOCK_WARN_MS, Monitor, Probe, Signal, Verdict, probe_timeout};
use crate::ha::{self, Cause, OnFailure, Readiness, Settings};
use crate::host::HostPort;
use crate::node::Node;
use crate::notify::{Event, raise_or_log};
use crate::peer::hello::{Hello, reported_version, version_mismatch};
use crate::store::{ChainLink, PeerStatus, now_millis};

/// One probe of the primary and what follows from it; returns when to probe again.
pub async fn follow(
    node: &mut Node,
    key: &PrivateKey,
    state: &mut State,
    primary: &HostPort,
    settings: &Settings,
) -> Duration {
    let host = primary.to_string();
    let previous = node.store.peer_status(&host).ok().flatten().unwrap_or_default();
    let timeout = probe_timeout(settings);
    let url = page_url(settings, previous.status_url.as_deref());
    let (pin, expected, ours) = (previous.status_cert.as_deref(), previous.node_id.as_deref(), node.id.clone());
    let (heard, page) = tokio::join!(
        hello_of(node, key, primary, settings, timeout),
        page_of(url.as_ref(), pin, expected, &ours, timeout)
    );
    // A first hello tells where the page is: ask it now rather than at the next probe.
    let page = match (&heard.hello, &url) {
        (Some(h), None) => {
            let cert = h.status_page.as_ref().and_then(|p| p.cert_sha256.as_deref());
            page_of(advertised(primary, h).as_ref(), cert, Some(&h.node_id), &ours, timeout).await
        }
        _ => page,
    };
    let alarm = heard.hello.as_ref().and_then(|h| version_mismatch(&reported_version(), &h.hostname, &h.version));
    let probe = Probe { ssh: heard.signal, page, alarm };
    state.counters.heartbeat(probe.alive());
    let verdict = state.monitor.observe(&probe, settings);
    if let Some(epoch) = state.granted_meanwhile(&node.id, settings) {
        take_granted_role(node, state, &host, epoch);
        return Monitor::next_probe(&verdict, settings);
    }
    let mut seen = PeerStatus {
        host: host.clone(),
        role: "primary".into(),
        checked_at: now_millis(),
        reachable: probe.alive(),
        failures: state.monitor.failures(),
        error: if probe.alive() { String::new() } else { probe.describe() },
        alarm: probe.misconfigured(),
        ..previous
    };
    match &heard.hello {
        Some(h) => {
            saw(&mut seen, primary, h, heard.offset);
            let page = match &probe.page {
                Signal::Answered => String::new(),
                other => format!("; status page: {}", other.describe()),
            };
            log(node, "info", &format!("heartbeat to {host}: ok ({}){page}", describe_peer(h, heard.offset)));
            if h.epoch > settings.epoch_seen
                && let Err(e) = ha::saw_epoch(&mut node.store, h.epoch, &host)
            {
                tracing::warn!(subsystem = "heartbeat", error = %e, "cannot record the primary's epoch");
            }
            if h.epoch < settings.last_sync_epoch {
                let text = format!(
                    "primary-host {host} has epoch {}, lower than epoch {} this node last synced from: it may be a stale primary",
                    h.epoch, settings.last_sync_epoch
                );
                log(node, "warning", &text);
            }
        }
        None if probe.alive() => log(
            node,
            "warning",
            &format!("heartbeat to {host}: {}; the primary is alive by its status page", probe.describe()),
        ),
        None => match &verdict {
            Verdict::Misconfigured(_) => {
                log(node, "warning", &format!("heartbeat to {host}: not counted as a failure: {}", probe.describe()))
            }
            _ => {
                let (n, of) = (state.monitor.failures(), settings.heartbeat_failures);
                log(node, "warning", &format!("heartbeat to {host} failed ({n} of {of}): {}", probe.describe()));
            }
        },
    }
    check_clock(node, state, &host, heard.offset);
    alarm_once(node, state, &host, seen.alarm.clone());
    let upstream = seen.upstream.clone();
    if let Err(e) = node.store.put_peer_status(&seen) {
        tracing::warn!(subsystem = "heartbeat", error = %e, "cannot record the peer's status");
    }
    match &verdict {
        Verdict::Failed { failures } => {
            let why = format!("primary {host} failed {failures} consecutive heartbeats ({})", probe.describe());
            act(node, state, &host, seen.node_id.as_deref(), &upstream, why, settings).await;
        }
        Verdict::Alive { recovered } => {
            state.refused = None;
            if *recovered {
                log(node, "info", &format!("primary {host} answers again"));
            }
        }
        _ => {}
    }
    Monitor::next_probe(&verdict, settings)
}

/// Raises a configuration alarm when it starts (HA log, one mail), and says when it ends.
fn alarm_once(node: &mut Node, state: &mut State, host: &str, alarm: Option<String>) {
    if alarm == state.alarm {
        return;
    }
    match &alarm {
        Some(why) => {
            let text = format!(
                "HEARTBEAT MISCONFIGURED towards {host}: {why}. This is not a failed primary: no automatic failover \
                 happens while it lasts. Fix the configuration; 'failover test-connection {host}' shows the details"
            );
            log(node, "error", &text);
            raise_or_log(
                &mut node.store,
                &node.id,
                &Event::Misconfigured { primary: host.to_string(), reason: why.clone() },
            );
        }
        None => log(node, "info", &format!("heartbeat towards {host}: the configuration error is gone")),
    }
    state.alarm = alarm;
}

/// Promotes this node at `epoch`, the lease's, which the quorum granted it although the
/// request seemed to fail: the old primary cannot hold the role any more (it fenced
/// itself and cannot renew), so keeping it standby would leave nobody taking writes.
fn take_granted_role(node: &mut Node, state: &mut State, host: &str, epoch: u64) {
    state.monitor.acted();
    let why = format!(
        "the quorum granted this node the primary lease at epoch {epoch} (a request of its own that seemed to \
         fail was committed); {host} can no longer renew it"
    );
    // At the lease's epoch: the promotion takes one more than any epoch seen.
    promote(node, host, why, |s| s.epoch_seen = s.epoch_seen.max(epoch.saturating_sub(1)));
}

/// Makes this node primary because of `why` (`also` changes the settings in the same
/// transaction), and says so: HA log and the failover event.
fn promote(node: &mut Node, host: &str, why: String, also: impl FnOnce(&mut Settings)) {
    let cause = Cause { actor: "heartbeat".into(), reason: format!("failover: {why}") };
    match ha::promote_and(&mut node.store, &cause, also) {
        Ok(applied) => {
            let epoch = applied.now.epoch;
            log(node, "error", &format!("FAILOVER: {why}; this node is now primary (epoch {epoch})"));
            let event = Event::Failover { primary: host.into(), reason: why, promoted: true, epoch };
            raise_or_log(&mut node.store, &node.id, &event);
        }
        Err(e) => log(node, "error", &format!("FAILOVER FAILED: {why}; promotion failed: {e}")),
    }
}

/// The failure action, once the primary has failed enough probes in a row.
async fn act(
    node: &mut Node,
    state: &mut State,
    host: &str,
    primary_node: Option<&str>,
    upstream: &[ChainLink],
    why: String,
    settings: &Settings,
) {
    if settings.on_failure == OnFailure::KeepStandby {
        state.monitor.acted();
        log(node, "error", &format!("{why}; on-failure keep-standby: this node stays standby"));
        let event = Event::Failover { primary: host.into(), reason: why, promoted: false, epoch: settings.epoch };
        raise_or_log(&mut node.store, &node.id, &event);
        return;
    }
    let refused = match refusal(node, host, primary_node, upstream, settings).await {
        Some(why) => Some(why),
        None => state.quorum_refusal(&node.id, settings).await,
    };
    if let Some(refusal) = refused {
        if state.refused.as_ref() != Some(&refusal) {
            let text = format!("FAILOVER REFUSED: {why}; this node stays standby: {refusal}");
            log(node, "error", &text);
            let cause = Cause { actor: "heartbeat".into(), reason: text };
            if let Err(e) = ha::note(&mut node.store, &cause, "failover-refused", "standby", "standby") {
                tracing::warn!(subsystem = "heartbeat", error = %e, "cannot record the refused failover");
            }
            let event = Event::FailoverRefused { primary: host.into(), reason: format!("{why}; {refusal}") };
            raise_or_log(&mut node.store, &node.id, &event);
            state.refused = Some(refusal);
        }
        return;
    }
    state.monitor.acted();
    promote(node, host, why, |_| {});
}

/// Why this node must not promote itself now, if it must not: its data is not recent
/// enough, or a primary further up its chain still answers.
async fn refusal(
    node: &Node,
    host: &str,
    primary_node: Option<&str>,
    upstream: &[ChainLink],
    settings: &Settings,
) -> Option<String> {
    let readiness = Readiness::of(settings, host, primary_node, chrono::Utc::now());
    if !readiness.ready() {
        return Some(format!(
            "{}. 'failover mode primary' promotes it by hand if that is what you want",
            readiness.describe(settings, host)
        ));
    }
    let top = upstream.iter().find(|l| l.mode == "primary")?;
    let url = top.status_url.as_deref().and_then(|u| u.parse().ok())?;
    let signal =
        page_of(Some(&url), top.status_cert.as_deref(), Some(&top.node_id), &node.id, probe_timeout(settings)).await;
    (signal == Signal::Answered).then(|| {
        format!(
            "the primary {} further up the chain (via {host}) still answers at {url}: it serves the devices, so \
             this node only lost its own upstream",
            top.hostname
        )
    })
}

fn check_clock(node: &mut Node, state: &mut State, host: &str, offset: Option<i64>) {
    let Some(offset) = offset else { return };
    let off = offset.abs() > CLOCK_WARN_MS;
    if off && !state.clock_warned {
        let text = format!(
            "clock offset to {host} is {offset:+} ms, past {CLOCK_WARN_MS} ms: the guide requires the same time on both nodes (use NTP)"
        );
        log(node, "warning", &text);
        raise_or_log(&mut node.store, &node.id, &Event::Clock { peer: host.into(), offset_ms: offset });
    } else if !off && state.clock_warned {
        log(node, "info", &format!("clock offset to {host} is back to {offset:+} ms"));
    }
    state.clock_warned = off;
}

/// Records what a peer reached at `target` said in its hello, as of this probe.
pub fn saw(seen: &mut PeerStatus, target: &HostPort, h: &Hello, offset: Option<i64>) {
    seen.last_seen = Some(seen.checked_at.clone());
    seen.hostname = Some(h.hostname.clone());
    seen.mode = Some(h.mode.to_string());
    seen.node_status = Some(h.node_status.to_string());
    seen.epoch = Some(h.epoch);
    seen.version = Some(h.version.clone());
    seen.offset_ms = offset;
    seen.node_id = Some(h.node_id.clone());
    seen.status_url = advertised(target, h).map(|u| u.to_string());
    seen.status_cert = h.status_page.as_ref().and_then(|p| p.cert_sha256.clone());
    seen.upstream = h.upstream.iter().take(crate::store::MAX_LINKS).cloned().collect();
}

pub fn describe_peer(h: &Hello, offset: Option<i64>) -> String {
    let clock = offset.map_or_else(|| "unknown".to_string(), |o| format!("{o:+} ms"));
    format!("{} mode {}, epoch {}, version {}, clock offset {clock}", h.hostname, h.mode, h.epoch, h.version)
}
