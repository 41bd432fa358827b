//! `GET /metrics`: the node in the Prometheus text format, encoded by the `prometheus`
//! crate. Each scrape builds its registry from the node's view (mode, state, epoch,
//! stale, fenced, replication mode and lag, the last sync), from counts it reads in the
//! system database then (`Store::counts`, off the async threads), and from the daemon's
//! own counters ([`Counters`]: check-ins by
//! result, heartbeat probes by result), which count from the daemon's start.
//!
//! Who may scrape: this node itself (loopback) and the networks `metrics allow PREFIX`
//! names; others get 403. A safe default: nothing leaves the node until an operator
//! names the Prometheus server.

use std::net::IpAddr;

use hyper::StatusCode;
use prometheus::{Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use super::{AppState, Resp, text};
use crate::ha::{Mode, NodeStatus, ReplicationMode};
use crate::node::view::NodeView;

/// How a check-in was answered, as counted.
const CHECK_IN_RESULTS: [&str; 5] = ["accepted", "unauthorized", "unavailable", "refused", "failed"];

/// What the daemon counts itself.
#[derive(Debug, Clone)]
pub struct Counters {
    check_ins: IntCounterVec,
    heartbeats: IntCounterVec,
}

impl Default for Counters {
    fn default() -> Self {
        let counter = |name: &str, help: &str| {
            // The names and labels are ours and valid: this cannot fail.
            IntCounterVec::new(Opts::new(name, help).namespace("coresh"), &["result"])
                .unwrap_or_else(|e| unreachable!("metric {name}: {e}"))
        };
        let counters = Counters {
            check_ins: counter("check_ins_total", "Device check-ins since the daemon started, by result"),
            heartbeats: counter("heartbeat_probes_total", "Heartbeat probes of the primary since the daemon started"),
        };
        // Every series from the start, at 0: a rate over them needs no first event.
        for result in CHECK_IN_RESULTS {
            counters.check_ins.with_label_values(&[result]);
        }
        for result in ["success", "failure"] {
            counters.heartbeats.with_label_values(&[result]);
        }
        counters
    }
}

impl Counters {
    /// A device check-in answered with `status`.
    pub fn check_in(&self, status: StatusCode) {
        let result = match status.as_u16() {
            200 => "accepted",
            401 => "unauthorized",
            503 => "unavailable",
            400..=499 => "refused",
            _ => "failed",
        };
        self.check_ins.with_label_values(&[result]).inc();
    }

    /// A heartbeat probe of the primary: it answered (`alive`) or not.
    pub fn heartbeat(&self, alive: bool) {
        self.heartbeats.with_label_values(&[if alive { "success" } else { "failure" }]).inc();
    }
}

/// Whether `peer` may scrape, with `allowed` the networks named.
pub fn allowed(peer: IpAddr, allowed: &[ipnet::IpNet]) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    peer.is_loopback() || allowed.iter().any(|net| net.contains(&peer))
}

/// One scrape's registry.
struct Scrape(Registry);

impl Scrape {
    fn opts(name: &str, help: &str) -> Opts {
        Opts::new(name, help).namespace("coresh")
    }

    fn add(&self, c: impl prometheus::core::Collector + 'static) -> Result<(), prometheus::Error> {
        self.0.register(Box::new(c))
    }

    fn gauge(&self, name: &str, help: &str, value: i64) -> Result<(), prometheus::Error> {
        let g = IntGauge::with_opts(Self::opts(name, help))?;
        g.set(value);
        self.add(g)
    }

    fn seconds(&self, name: &str, help: &str, value: f64) -> Result<(), prometheus::Error> {
        let g = Gauge::with_opts(Self::opts(name, help))?;
        g.set(value);
        self.add(g)
    }

    /// A gauge with one series per label value: 1 for `current`, 0 for the others.
    fn one_of(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: &[String],
        current: &str,
    ) -> Result<(), prometheus::Error> {
        let g = IntGaugeVec::new(Self::opts(name, help), &[label])?;
        for v in values {
            g.with_label_values(&[v.as_str()]).set(i64::from(v == current));
        }
        self.add(g)
    }

    fn counted(
        &self,
        name: &str,
        help: &str,
        label: &str,
        counts: &std::collections::BTreeMap<String, i64>,
    ) -> Result<(), prometheus::Error> {
        let g = IntGaugeVec::new(Self::opts(name, help), &[label])?;
        for (k, n) in counts {
            g.with_label_values(&[k.as_str()]).set(*n);
        }
        self.add(g)
    }
}

/// The exposition of `view`, with the daemon's `counters` and whether it is `fenced`.
pub fn exposition(
    view: &NodeView,
    counts: &crate::store::Counts,
    counters: &Counters,
    fenced: bool,
) -> Result<String, prometheus::Error> {
    let s = &view.settings;
    let r = Scrape(Registry::new());
    let node = IntGaugeVec::new(
        Scrape::opts("node", "This node: software version, node id and host name (always 1)"),
        &["version", "node_id", "hostname"],
    )?;
    node.with_label_values(&[env!("CARGO_PKG_VERSION"), &view.node_id, &s.hostname]).set(1);
    r.add(node)?;
    r.gauge("high_availability_enabled", "1 when high availability is enabled", i64::from(s.enabled))?;
    let modes = [Mode::Primary, Mode::Secondary, Mode::Witness].map(|m| m.to_string());
    r.one_of("mode", "The HA mode of this node (1 for the current one)", "mode", &modes, &s.mode.to_string())?;
    let states = [NodeStatus::Active, NodeStatus::Standby].map(|m| m.to_string());
    r.one_of("state", "The HA state of this node (1 for the current one)", "state", &states, &s.state().to_string())?;
    r.gauge("epoch", "The epoch of this node: one more at each promotion", i64::try_from(s.epoch).unwrap_or(i64::MAX))?;
    r.gauge("stale", "1 when this primary learned of a newer primary", i64::from(s.stale.is_some()))?;
    r.gauge("fenced", "1 when this primary fenced itself for want of the quorum's lease", i64::from(fenced))?;
    let kinds =
        [ReplicationMode::Scheduled, ReplicationMode::Continuous, ReplicationMode::Synchronous].map(|m| m.to_string());
    let kind = s.replication_mode.to_string();
    r.one_of("replication_mode", "How this node replicates as a standby", "mode", &kinds, &kind)?;
    if let Some(lag) = super::status::stream_lag(view) {
        r.gauge("replication_lag_changes", "Changes this standby's stream lacks of its primary's", lag.changes)?;
        let behind = lag.ms as f64 / 1000.0;
        r.seconds("replication_lag_seconds", "For how long this standby's stream has lacked a change", behind)?;
    }
    if let Some(last) = &view.last_sync {
        let ok = matches!(last.result, crate::store::SyncResult::Success);
        r.gauge("last_sync_success", "1 when the last sync succeeded", i64::from(ok))?;
        let at = |t: &str| t.parse::<chrono::DateTime<chrono::Utc>>().ok();
        if let Some(started) = at(&last.started_at) {
            r.gauge(
                "last_sync_start_timestamp_seconds",
                "When the last sync started (Unix time)",
                started.timestamp(),
            )?;
            if let Some(finished) = last.finished_at.as_deref().and_then(at) {
                let took = (finished - started).num_milliseconds() as f64 / 1000.0;
                r.seconds("last_sync_duration_seconds", "How long the last sync took", took)?;
            }
        }
    }
    let c = counts;
    r.counted("sync_history_runs", "Sync runs in the sync history, by result", "result", &c.syncs_by_result)?;
    r.counted("failover_history_events", "Entries of the failover history, by event", "event", &c.history_by_event)?;
    r.gauge("console_sessions", "SSH console sessions open now", c.console_sessions)?;
    let waiting = c.outbox_pending;
    r.gauge(
        "outbox_waiting",
        "Mails and event-hook calls waiting in the outbox (to send, or held for a digest)",
        waiting,
    )?;
    r.add(counters.check_ins.clone())?;
    r.add(counters.heartbeats.clone())?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.0.gather(), &mut out)?;
    String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// `GET /metrics` from `peer`.
pub async fn metrics(state: &AppState, peer: IpAddr) -> Resp {
    let view = state.view.borrow().clone();
    if !allowed(peer, &view.settings.metrics_allow) {
        return text(
            StatusCode::FORBIDDEN,
            format!("{peer} may not read the metrics: 'metrics allow PREFIX' names who may"),
        );
    }
    let dir = state.data_dir.clone();
    let counts = tokio::task::spawn_blocking(move || crate::store::Store::open(&dir).and_then(|s| s.counts())).await;
    let counts = match counts {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the system database: {e}")),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot read the counts: {e}")),
    };
    match exposition(&view, &counts, &state.metrics, state.hold.fenced().is_some()) {
        Ok(body) => {
            let mut resp = text(StatusCode::OK, body);
            if let Ok(v) = hyper::header::HeaderValue::from_str(prometheus::TEXT_FORMAT) {
                resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
            }
            resp
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the metrics: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_the_named_networks_may_scrape() {
        let nets: Vec<ipnet::IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        assert!(allowed("127.0.0.1".parse().unwrap(), &[]));
        assert!(allowed("::1".parse().unwrap(), &[]));
        assert!(allowed("192.0.2.9".parse().unwrap(), &nets));
        assert!(allowed("::ffff:192.0.2.9".parse().unwrap(), &nets));
        assert!(!allowed("198.51.100.1".parse().unwrap(), &nets));
    }
}
