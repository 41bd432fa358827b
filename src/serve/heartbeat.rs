//! The daemon's heartbeat (guide step 6, Fail Over Controls). On a standby secondary
//! with HA enabled and a primary-host, it probes the primary: an SSH hello over the
//! trusted connection (both keys proven; it carries mode, epoch, version and clock),
//! and when that fails, the primary's status page at the address it advertised. The
//! judgement is `ha::heartbeat`'s; every outcome goes to the HA module log, the failure
//! action (promote, or stay standby) runs after the configured consecutive failures. On
//! a primary with HA enabled it watches its trusted peers, so that an old primary that
//! comes back learns of a newer one (a higher epoch) and reports itself stale.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::view::NodeView;
use crate::ha::heartbeat::{CLOCK_WARN_MS, Monitor, Probe, Verdict, probe_timeout};
use crate::ha::{self, Cause, Mode, NodeStatus, OnFailure, Settings};
use crate::host::HostPort;
use crate::node::Node;
use crate::notify::{Event, raise_or_log};
use crate::ssh::client::{exchange_hello, trusted_for};
use crate::ssh::hello::Hello;
use crate::ssh::keys::parse_public;
use crate::store::{PeerStatus, now_millis};
use russh::keys::PrivateKey;

/// Starts the heartbeat on a thread of its own; it ends when `stop` turns true.
pub fn spawn(
    view: watch::Receiver<Arc<NodeView>>,
    data_dir: PathBuf,
    stop: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("heartbeat".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(subsystem = "heartbeat", error = %e, "cannot start the heartbeat");
                return;
            }
        };
        runtime.block_on(run(view, data_dir, stop));
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

async fn run(mut view: watch::Receiver<Arc<NodeView>>, data_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut node = match Node::open(&data_dir) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(subsystem = "heartbeat", error = %e, "cannot open the node; no heartbeat");
            return;
        }
    };
    let key = match crate::ssh::keys::host_key(&data_dir) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(subsystem = "heartbeat", error = %e, "cannot read the node key; no heartbeat");
            return;
        }
    };
    let mut state = State::default();
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
            state = State { role: current.clone(), ..State::default() };
        }
        let wait = if Instant::now() < next {
            next - Instant::now()
        } else {
            let pause = match current {
                Role::Follow(primary) => follow(&mut node, &key, &mut state, &primary, &settings).await,
                Role::Watch => {
                    watch_peers(&mut node, &key, &settings).await;
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

/// The secondary's memory of its primary between probes.
#[derive(Default)]
struct State {
    role: Role,
    monitor: Monitor,
    /// Whether the clock offset is past [`CLOCK_WARN_MS`] (warned once per crossing).
    clock_warned: bool,
}

/// One probe of the primary and what follows from it; returns when to probe again.
async fn follow(
    node: &mut Node,
    key: &PrivateKey,
    state: &mut State,
    primary: &HostPort,
    settings: &Settings,
) -> Duration {
    let host = primary.to_string();
    let previous = node.store.peer_status(&host).ok().flatten().unwrap_or_default();
    let (ssh, hello, offset) = hello_of(node, key, primary, settings).await;
    let page = match &ssh {
        Ok(()) => None,
        Err(_) => Some(status_page(previous.status_url.clone(), probe_timeout(settings)).await),
    };
    let probe = Probe { ssh, page };
    let verdict = state.monitor.observe(&probe, settings);
    let mut seen = PeerStatus {
        host: host.clone(),
        role: "primary".into(),
        checked_at: now_millis(),
        reachable: probe.alive(),
        failures: state.monitor.failures(),
        error: if probe.alive() { String::new() } else { probe.describe() },
        ..previous
    };
    match &hello {
        Some(h) => {
            saw(&mut seen, h, offset);
            seen.status_url = h.status_page.map(|p| status_url(primary, p.port, p.tls));
            log(node, "info", &format!("heartbeat to {host}: ok ({})", describe_peer(h, offset)));
            if h.epoch < settings.last_sync_epoch {
                let text = format!(
                    "primary-host {host} has epoch {}, lower than epoch {} this node last synced from: it may be a stale primary",
                    h.epoch, settings.last_sync_epoch
                );
                log(node, "warning", &text);
            }
        }
        None if probe.alive() => {
            log(
                node,
                "warning",
                &format!("heartbeat to {host}: {}; the primary is alive by its status page", probe.describe()),
            );
        }
        None => {
            let text = format!(
                "heartbeat to {host} failed ({} of {}): {}",
                state.monitor.failures(),
                settings.heartbeat_failures,
                probe.describe()
            );
            log(node, "warning", &text);
        }
    }
    check_clock(node, state, &host, offset);
    if let Err(e) = node.store.put_peer_status(&seen) {
        tracing::warn!(subsystem = "heartbeat", error = %e, "cannot record the peer's status");
    }
    match &verdict {
        Verdict::Failed { failures } => act(node, &host, *failures, &probe, settings),
        Verdict::Alive { recovered: true } => log(node, "info", &format!("primary {host} answers again")),
        _ => {}
    }
    Monitor::next_probe(&verdict, settings)
}

/// The failure action, once the primary has failed enough probes in a row.
fn act(node: &mut Node, host: &str, failures: u32, probe: &Probe, settings: &Settings) {
    let why = format!("primary {host} failed {failures} consecutive heartbeats ({})", probe.describe());
    match settings.on_failure {
        OnFailure::Promote => {
            let cause = Cause { actor: "heartbeat".into(), reason: format!("failover: {why}") };
            match ha::promote(&mut node.store, &cause) {
                Ok(applied) => {
                    let epoch = applied.now.epoch;
                    log(node, "error", &format!("FAILOVER: {why}; this node is now primary (epoch {epoch})"));
                    let event = Event::Failover { primary: host.into(), reason: why, promoted: true, epoch };
                    raise_or_log(&mut node.store, &node.id, &event);
                }
                Err(e) => log(node, "error", &format!("FAILOVER FAILED: {why}; promotion failed: {e}")),
            }
        }
        OnFailure::KeepStandby => {
            log(node, "error", &format!("{why}; on-failure keep-standby: this node stays standby"));
            let event = Event::Failover { primary: host.into(), reason: why, promoted: false, epoch: settings.epoch };
            raise_or_log(&mut node.store, &node.id, &event);
        }
    }
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

/// The SSH hello of `target`, with the clock offset it shows (its clock minus ours).
async fn hello_of(
    node: &Node,
    key: &PrivateKey,
    target: &HostPort,
    settings: &Settings,
) -> (Result<(), String>, Option<Hello>, Option<i64>) {
    // Trusted hosts are read at each probe: an operator may change them at any time.
    let prepared = (|| -> Result<_, String> {
        let trusted = node.store.trusted_hosts().map_err(|e| e.to_string())?;
        let entry = trusted_for(&trusted, target).ok_or_else(|| format!("{target} is not a trusted host"))?;
        parse_public(&entry.key)
    })();
    let theirs = match prepared {
        Ok(p) => p,
        Err(e) => return (Err(e), None, None),
    };
    let ours = Hello::of(settings, &node.id);
    let answer = tokio::time::timeout(probe_timeout(settings), exchange_hello(target, key, &theirs, &ours)).await;
    match answer {
        Ok(Ok((hello, offset))) => (Ok(()), Some(hello), Some(offset)),
        Ok(Err(e)) => (Err(e.to_string()), None, None),
        Err(_) => (Err(format!("no answer within {} ms", probe_timeout(settings).as_millis())), None, None),
    }
}

fn status_url(primary: &HostPort, port: u16, tls: bool) -> String {
    let host = if primary.host.contains(':') { format!("[{}]", primary.host) } else { primary.host.clone() };
    format!("{}://{host}:{port}/status.json", if tls { "https" } else { "http" })
}

/// The second signal: the primary's status page answers and says it is primary.
async fn status_page(url: Option<String>, timeout: Duration) -> Result<(), String> {
    let Some(url) = url else { return Err("address unknown (never advertised)".into()) };
    let asked = url.clone();
    let answer = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(timeout)).build().into();
        let mut resp = agent.get(&asked).call().map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        let body = resp.body_mut().read_to_string().map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("not a status page: {e}"))?;
        match json["mode"].as_str() {
            Some("primary") => Ok(()),
            other => Err(format!("says mode {}", other.unwrap_or("unknown"))),
        }
    })
    .await;
    answer.unwrap_or_else(|e| Err(e.to_string())).map_err(|e| format!("{url}: {e}"))
}

/// Records what a peer's hello said, as of this probe.
fn saw(seen: &mut PeerStatus, h: &Hello, offset: Option<i64>) {
    seen.last_seen = Some(seen.checked_at.clone());
    seen.hostname = Some(h.hostname.clone());
    seen.mode = Some(h.mode.clone());
    seen.node_status = Some(h.node_status.clone());
    seen.epoch = Some(h.epoch);
    seen.version = Some(h.version.clone());
    seen.offset_ms = offset;
}

fn describe_peer(h: &Hello, offset: Option<i64>) -> String {
    let clock = offset.map_or_else(|| "unknown".to_string(), |o| format!("{o:+} ms"));
    format!("{} mode {}, epoch {}, version {}, clock offset {clock}", h.hostname, h.mode, h.epoch, h.version)
}

/// A primary's watch of its trusted peers: a peer that is primary with a higher epoch
/// makes this node stale. Only changes are logged.
async fn watch_peers(node: &mut Node, key: &PrivateKey, settings: &Settings) {
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
        let (ssh, hello, offset) = hello_of(node, key, &target, settings).await;
        let mut seen = PeerStatus {
            host: peer.host.clone(),
            role: "peer".into(),
            checked_at: now_millis(),
            reachable: ssh.is_ok(),
            failures: match (&ssh, &previous) {
                (Ok(()), _) => 0,
                (Err(_), Some(p)) => p.failures.saturating_add(1),
                (Err(_), None) => 1,
            },
            error: ssh.as_ref().err().cloned().unwrap_or_default(),
            ..previous.clone().unwrap_or_default()
        };
        if let Some(h) = &hello {
            saw(&mut seen, h, offset);
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
    if h.mode != "primary" {
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

/// Writes to the HA module log and to the daemon's log.
fn log(node: &mut Node, level: &str, message: &str) {
    match level {
        "error" => tracing::error!(subsystem = "high-availability", "{message}"),
        "warning" => tracing::warn!(subsystem = "high-availability", "{message}"),
        _ => tracing::info!(subsystem = "high-availability", "{message}"),
    }
    if let Err(e) = node.store.ha_log(level, message) {
        tracing::warn!(subsystem = "heartbeat", error = %e, "cannot write the HA module log");
    }
}
