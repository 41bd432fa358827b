//! `show running-config`: each mode writes its part, in the syntax that mode accepts
//! back, so pasting the output into `configure terminal` rebuilds the same settings.

use serde::Serialize;

use crate::coredb::users::LocalUser;
use crate::ha::Settings;
use crate::report::Text;

/// The configuration of one mode.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    /// Mode the lines belong to.
    pub mode: &'static str,
    /// The commands, as typed in that mode.
    pub lines: Vec<String>,
}

/// The whole running configuration.
#[derive(Debug, Clone, Serialize)]
pub struct RunningConfig {
    /// Global configuration first, then each sub-mode.
    pub sections: Vec<Section>,
}

fn no(on: bool) -> &'static str {
    if on { "" } else { "no " }
}

/// The running configuration of a node with settings `s`, the global lines of settings
/// other rooms own (SMTP, the console policy), its local users and the enrollment
/// secret's hash from its Core data.
pub fn running_config(
    s: &Settings,
    owned: Vec<String>,
    users: &[LocalUser],
    enrollment: Option<&str>,
) -> RunningConfig {
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
    global.extend(owned);
    for user in users {
        if let Some(hash) = &user.password_hash {
            global.push(format!("username {} password hashed {hash}", user.name));
        }
        global.extend(user.public_keys.iter().map(|k| format!("username {} key {k}", user.name)));
    }
    let mut ha = vec![format!("service {}", if s.enabled { "enable" } else { "disable" }), format!("mode {}", s.mode)];
    if s.mode == crate::ha::Mode::Secondary {
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
            crate::ha::ReplicationMode::Synchronous => {
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
    RunningConfig {
        sections: vec![Section { mode: "config", lines: global }, Section { mode: "config-ha", lines: ha }],
    }
}

impl Text for RunningConfig {
    fn text(&self) -> String {
        let mut out = vec!["! coresh running configuration".to_string(), "!".into()];
        for section in &self.sections {
            match section.mode {
                "config" => out.extend(section.lines.iter().cloned()),
                mode => {
                    out.push("!".into());
                    out.push(entry_command(mode).into());
                    out.extend(section.lines.iter().map(|l| format!(" {l}")));
                    out.push(" exit".into());
                }
            }
        }
        out.push("!".into());
        out.push("end".into());
        out.join("\n")
    }
}

/// The global configuration command that enters `mode`.
fn entry_command(mode: &str) -> &str {
    match mode {
        "config-ha" => "high-availability",
        other => other,
    }
}
