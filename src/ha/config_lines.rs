//! The HA and system settings as the configuration commands that set them, in the
//! syntax their modes accept back: the part of `show running-config` these settings
//! make, and what `show failover config-diff` compares with the peer's.

use super::Settings;

fn no(on: bool) -> &'static str {
    if on { "" } else { "no " }
}

/// Global configuration lines of `s` (with `enrollment`, the enrollment secret's hash
/// from the Core data, in its place).
pub fn global(s: &Settings, enrollment: Option<&str>) -> Vec<String> {
    let mut global = vec![format!("hostname {}", s.hostname), format!("prompt {}", s.prompt.text())];
    if let Some(hash) = &s.enable_secret {
        global.push(format!("enable secret hashed {hash}"));
    }
    if let Some(hash) = enrollment {
        global.push(format!("enrollment-secret hashed {hash}"));
    }
    global.push(format!("atlas {}", if s.atlas { "enable" } else { "disable" }));
    global.extend(s.metrics_allow.iter().map(|n| format!("metrics allow {n}")));
    global.extend(
        s.logging_hosts
            .iter()
            .map(|h| format!("logging host {} port {} {}", h.host.host, h.port(), if h.tcp { "tcp" } else { "udp" })),
    );
    global
}

/// `(config-ha)#` lines of `s`.
pub fn ha(s: &Settings) -> Vec<String> {
    let mut ha = vec![format!("service {}", if s.enabled { "enable" } else { "disable" }), format!("mode {}", s.mode)];
    if s.mode == super::Mode::Secondary {
        ha.push(format!("node-status {}", s.node_status));
    }
    ha.push(match &s.primary_host {
        Some(h) => format!("primary-host {h}"),
        None => "no primary-host".into(),
    });
    ha.push(match &s.witness {
        Some(h) => format!("witness {h}"),
        None => "no witness".into(),
    });
    ha.extend([
        format!("sync start-time {:02}:{:02}", s.start_time.0, s.start_time.1),
        format!("sync run-every {} {}", s.run_every.0, s.run_every.1),
        match s.replication_mode {
            super::ReplicationMode::Synchronous => {
                format!("replication mode synchronous timeout {}", s.sync_timeout_ms)
            }
            mode => format!("replication mode {mode}"),
        },
        format!("switchover settle {}", s.switchover_settle_ms),
        format!("heartbeat interval {}", s.heartbeat_interval),
        format!("heartbeat failures {}", s.heartbeat_failures),
        format!("heartbeat recheck-interval {}", s.heartbeat_recheck),
        format!("heartbeat max-staleness {} {}", s.max_staleness.0, s.max_staleness.1),
        match &s.status_url {
            Some(u) => format!("heartbeat status-url {u}"),
            None => "no heartbeat status-url".into(),
        },
        format!("on-failure {}", s.on_failure),
        match &s.notify_email {
            Some(a) => format!("notify email {a}"),
            None => "no notify email".into(),
        },
        format!("{}notify on sync-completion", no(s.notify_sync_completion)),
        format!("{}notify on failure", no(s.notify_failure)),
    ]);
    ha.extend(s.event_hooks.iter().map(|h| format!("event-hook {}", h.text())));
    ha
}
