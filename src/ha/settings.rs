//! The typed HA settings and node identity, and their key/value form in the system
//! database. Defaults follow the guide: HA disabled, sync hourly, notify on failure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::host::HostPort;
use crate::store::StoreError;
use crate::words::word_enum;

pub const ENABLED: &str = "ha.enabled";
pub const MODE: &str = "ha.mode";
pub const NODE_STATUS: &str = "ha.node_status";
pub const PRIMARY_HOST: &str = "ha.primary_host";
pub const START_TIME: &str = "ha.sync.start_time";
pub const RUN_EVERY: &str = "ha.sync.run_every";
pub const ANCHOR: &str = "ha.sync.anchor";
pub const HB_INTERVAL: &str = "ha.heartbeat.interval";
pub const HB_FAILURES: &str = "ha.heartbeat.failures";
pub const HB_RECHECK: &str = "ha.heartbeat.recheck";
pub const ON_FAILURE: &str = "ha.on_failure";
pub const NOTIFY_EMAIL: &str = "ha.notify.email";
pub const NOTIFY_SYNC: &str = "ha.notify.sync_completion";
pub const NOTIFY_FAILURE: &str = "ha.notify.failure";
pub const CLIENT_CONNECTIONS: &str = "core.client_connections";
pub const ATLAS: &str = "core.atlas";
pub const EPOCH: &str = "ha.epoch";
pub const HOSTNAME: &str = "system.hostname";
pub const ENABLE_SECRET: &str = "system.enable_secret";
pub const STALE: &str = "ha.stale";
pub const LAST_SYNC_EPOCH: &str = "ha.sync.last_epoch";
pub const LAST_SYNC_NODE: &str = "ha.sync.last_node";
pub const LAST_SYNC_PEER: &str = "ha.sync.last_peer";
pub const LAST_SYNC_AT: &str = "ha.sync.last_at";
pub const EPOCH_SEEN: &str = "ha.epoch.seen";
pub const MAX_STALENESS: &str = "ha.heartbeat.max_staleness";
pub const STATUS_URL: &str = "ha.heartbeat.status_url";
pub const REPLICATION_MODE: &str = "ha.replication.mode";
pub const SYNC_TIMEOUT: &str = "ha.replication.timeout_ms";
pub const SWITCHOVER_SETTLE: &str = "ha.switchover.settle_ms";
pub const WITNESS: &str = "ha.witness";
pub const PROMPT: &str = "system.prompt";
pub const METRICS_ALLOW: &str = "system.metrics_allow";
pub const LOGGING_HOSTS: &str = "system.logging_hosts";
pub const EVENT_HOOKS: &str = "ha.event_hooks";
/// The node id, made when the data directory is first used (`node`).
pub const NODE_ID: &str = "node.id";

pub use super::hooks::EventHook;
pub use super::system_settings::{LogHost, PromptParts};

word_enum!(
    /// The HA mode of a node.
    Mode { /// Serves traffic; never replicates from another node.
    Primary = "primary", /// Checks the primary and replicates from it.
    Secondary = "secondary", /// Votes in the quorum of a pair; holds no Core data and serves no device.
    Witness = "witness" }
);
word_enum!(
    /// State of a secondary.
    NodeStatus { /// Allowed to sync from the primary.
    Standby = "standby", /// Promoted; does not sync.
    Active = "active" }
);
word_enum!(
    /// What a secondary does when its primary has failed.
    OnFailure { /// Become primary.
    Promote = "promote", /// Stay standby and notify.
    KeepStandby = "keep-standby" }
);
word_enum!(
    /// How a standby replicates from its primary.
    ReplicationMode { /// The guide's schedule: a sync at StartTime and every Run Every.
    Scheduled = "scheduled", /// A stream: each change sent as the primary commits it.
    Continuous = "continuous", /// A stream whose changes the primary's device writes wait for.
    Synchronous = "synchronous" }
);
word_enum!(
    /// Unit of a stored span (the sync interval, the staleness bound).
    Unit { /// Seconds (the staleness bound only).
    Seconds = "seconds", /// Minutes.
    Minutes = "minutes", /// Hours.
    Hours = "hours", /// Days.
    Days = "days" }
);

impl Unit {
    /// Seconds in one unit.
    pub fn seconds(self) -> i64 {
        match self {
            Unit::Seconds => 1,
            Unit::Minutes => 60,
            Unit::Hours => 3600,
            Unit::Days => 86_400,
        }
    }
}

/// Every HA setting of this node, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// High availability service on (scheduler and heartbeat run).
    pub enabled: bool,
    /// Primary or secondary.
    pub mode: Mode,
    /// Standby or active (meaningful for a secondary; a primary is active).
    pub node_status: NodeStatus,
    /// The primary a secondary follows.
    pub primary_host: Option<HostPort>,
    /// UTC hour and minute of the first sync after a save.
    pub start_time: (u8, u8),
    /// Sync interval: count and unit.
    pub run_every: (u32, Unit),
    /// When the current schedule starts (set by saves that touch it).
    pub schedule_anchor: Option<DateTime<Utc>>,
    /// Seconds between heartbeats.
    pub heartbeat_interval: u32,
    /// Consecutive failed heartbeats before the failure action.
    pub heartbeat_failures: u32,
    /// Seconds between re-checks after a failed heartbeat.
    pub heartbeat_recheck: u32,
    /// What to do when the primary has failed.
    pub on_failure: OnFailure,
    /// Where notifications go.
    pub notify_email: Option<String>,
    /// Mail on every successful sync.
    pub notify_sync_completion: bool,
    /// Mail on sync failures and failover events.
    pub notify_failure: bool,
    /// Whether new device connections are accepted.
    pub client_connections: bool,
    /// Whether Atlas (device analytics, with a store of its own) runs on this node.
    pub atlas: bool,
    /// Bumped by every promotion; tells a newer primary from a stale one.
    pub epoch: u64,
    /// Host name shown in prompts.
    pub hostname: String,
    /// Argon2 hash of the enable secret.
    pub enable_secret: Option<String>,
    /// Set on a primary that has seen a primary with a higher epoch: who, which epoch,
    /// when. Cleared by the next change of mode.
    pub stale: Option<String>,
    /// The epoch of the primary this node last synced from; a primary with a lower one
    /// is refused.
    pub last_sync_epoch: u64,
    /// The node id of the peer this node last synced from successfully.
    pub last_sync_node: Option<String>,
    /// That peer as the sync named it (`HOST[:PORT]`).
    pub last_sync_peer: Option<String>,
    /// When that sync started: the Core data here is as of then.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// The highest epoch seen on any other node (heartbeats, syncs, watched peers): a
    /// promotion takes one more than the highest of this, its own and the last synced.
    pub epoch_seen: u64,
    /// A standby never promotes by itself when its last sync is older than this.
    pub max_staleness: (u32, Unit),
    /// Where the heartbeat asks the primary's status page (its second signal); `None`:
    /// the address the primary advertises.
    pub status_url: Option<String>,
    /// How this node, as a standby, replicates from its primary.
    pub replication_mode: ReplicationMode,
    /// Synchronous: how long the primary's writes wait for this standby before the
    /// primary stops waiting (degrades to continuous).
    pub sync_timeout_ms: u32,
    /// Switchover, on the primary: how long its status page reports the handover (not
    /// OK) while the standby still says standby, before the standby takes over, so that
    /// a load balancer set up from the guide sees the primary fail and moves traffic.
    pub switchover_settle_ms: u32,
    /// The quorum witness of this pair (`HOST[:PORT]`, a trusted host); `None`: no
    /// quorum, the heartbeat decides (the guide).
    pub witness: Option<HostPort>,
    /// What the prompt shows besides the host name.
    pub prompt: PromptParts,
    /// Who may read `/metrics` besides this node itself (loopback always may).
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// Where the HA log and the audit log go, as syslog.
    pub logging_hosts: Vec<LogHost>,
    /// The event hooks, in the order they were added.
    pub event_hooks: Vec<EventHook>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            enabled: false,
            mode: Mode::Primary,
            node_status: NodeStatus::Active,
            primary_host: None,
            start_time: (0, 0),
            run_every: (60, Unit::Minutes),
            schedule_anchor: None,
            heartbeat_interval: 30,
            heartbeat_failures: 3,
            heartbeat_recheck: 10,
            on_failure: OnFailure::Promote,
            notify_email: None,
            notify_sync_completion: false,
            notify_failure: true,
            client_connections: true,
            atlas: false,
            epoch: 0,
            hostname: "core".into(),
            enable_secret: None,
            stale: None,
            last_sync_epoch: 0,
            last_sync_node: None,
            last_sync_peer: None,
            last_sync_at: None,
            epoch_seen: 0,
            max_staleness: (3, Unit::Hours),
            status_url: None,
            replication_mode: ReplicationMode::Scheduled,
            sync_timeout_ms: 1000,
            switchover_settle_ms: 1000,
            witness: None,
            prompt: PromptParts::default(),
            metrics_allow: Vec::new(),
            logging_hosts: Vec::new(),
            event_hooks: Vec::new(),
        }
    }
}

fn on_off(b: bool) -> String {
    if b { "on" } else { "off" }.to_string()
}

impl Settings {
    /// The key/value form, in a fixed order (every key, `None` for unset).
    pub fn to_pairs(&self) -> Vec<(&'static str, Option<String>)> {
        vec![
            (ENABLED, Some(on_off(self.enabled))),
            (MODE, Some(self.mode.to_string())),
            (NODE_STATUS, Some(self.node_status.to_string())),
            (PRIMARY_HOST, self.primary_host.as_ref().map(HostPort::to_string)),
            (START_TIME, Some(format!("{:02}:{:02}", self.start_time.0, self.start_time.1))),
            (RUN_EVERY, Some(format!("{} {}", self.run_every.0, self.run_every.1))),
            (ANCHOR, self.schedule_anchor.map(|a| a.to_rfc3339())),
            (HB_INTERVAL, Some(self.heartbeat_interval.to_string())),
            (HB_FAILURES, Some(self.heartbeat_failures.to_string())),
            (HB_RECHECK, Some(self.heartbeat_recheck.to_string())),
            (ON_FAILURE, Some(self.on_failure.to_string())),
            (NOTIFY_EMAIL, self.notify_email.clone()),
            (NOTIFY_SYNC, Some(on_off(self.notify_sync_completion))),
            (NOTIFY_FAILURE, Some(on_off(self.notify_failure))),
            (CLIENT_CONNECTIONS, Some(on_off(self.client_connections))),
            (ATLAS, Some(on_off(self.atlas))),
            (EPOCH, Some(self.epoch.to_string())),
            (HOSTNAME, Some(self.hostname.clone())),
            (ENABLE_SECRET, self.enable_secret.clone()),
            (STALE, self.stale.clone()),
            (LAST_SYNC_EPOCH, Some(self.last_sync_epoch.to_string())),
            (LAST_SYNC_NODE, self.last_sync_node.clone()),
            (LAST_SYNC_PEER, self.last_sync_peer.clone()),
            (LAST_SYNC_AT, self.last_sync_at.map(|a| a.to_rfc3339())),
            (EPOCH_SEEN, Some(self.epoch_seen.to_string())),
            (MAX_STALENESS, Some(format!("{} {}", self.max_staleness.0, self.max_staleness.1))),
            (STATUS_URL, self.status_url.clone()),
            (REPLICATION_MODE, Some(self.replication_mode.to_string())),
            (SYNC_TIMEOUT, Some(self.sync_timeout_ms.to_string())),
            (SWITCHOVER_SETTLE, Some(self.switchover_settle_ms.to_string())),
            (WITNESS, self.witness.as_ref().map(HostPort::to_string)),
            (PROMPT, Some(self.prompt.text())),
            (METRICS_ALLOW, Some(self.metrics_allow.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "))),
            (LOGGING_HOSTS, Some(self.logging_hosts.iter().map(LogHost::target).collect::<Vec<_>>().join(" "))),
            (EVENT_HOOKS, Some(self.event_hooks.iter().map(EventHook::text).collect::<Vec<_>>().join("\n"))),
        ]
    }

    /// Reads the typed settings from stored rows; a missing key takes its default, an
    /// unreadable one is an error (never silently replaced).
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Settings, StoreError> {
        let d = Settings::default();
        let get = |key: &str| map.get(key).map(String::as_str);
        fn parse<T>(
            key: &str,
            text: Option<&str>,
            default: T,
            f: impl FnOnce(&str) -> Option<T>,
        ) -> Result<T, StoreError> {
            match text {
                None => Ok(default),
                Some(t) => f(t).ok_or_else(|| StoreError::BadSetting { key: key.into(), value: t.into() }),
            }
        }
        let flag = |t: &str| match t {
            "on" => Some(true),
            "off" => Some(false),
            _ => None,
        };
        let opt = |key: &str| Ok::<_, StoreError>(get(key).map(str::to_string));
        Ok(Settings {
            enabled: parse(ENABLED, get(ENABLED), d.enabled, flag)?,
            mode: parse(MODE, get(MODE), d.mode, |t| t.parse().ok())?,
            node_status: parse(NODE_STATUS, get(NODE_STATUS), d.node_status, |t| t.parse().ok())?,
            primary_host: parse(PRIMARY_HOST, get(PRIMARY_HOST), None, |t| t.parse().ok().map(Some))?,
            start_time: parse(START_TIME, get(START_TIME), d.start_time, |t| {
                let (h, m) = t.split_once(':')?;
                Some((h.parse().ok()?, m.parse().ok()?))
            })?,
            run_every: parse(RUN_EVERY, get(RUN_EVERY), d.run_every, count_unit)?,
            schedule_anchor: parse(ANCHOR, get(ANCHOR), None, |t| t.parse().ok().map(Some))?,
            heartbeat_interval: parse(HB_INTERVAL, get(HB_INTERVAL), d.heartbeat_interval, |t| t.parse().ok())?,
            heartbeat_failures: parse(HB_FAILURES, get(HB_FAILURES), d.heartbeat_failures, |t| t.parse().ok())?,
            heartbeat_recheck: parse(HB_RECHECK, get(HB_RECHECK), d.heartbeat_recheck, |t| t.parse().ok())?,
            on_failure: parse(ON_FAILURE, get(ON_FAILURE), d.on_failure, |t| t.parse().ok())?,
            notify_email: opt(NOTIFY_EMAIL)?,
            notify_sync_completion: parse(NOTIFY_SYNC, get(NOTIFY_SYNC), d.notify_sync_completion, flag)?,
            notify_failure: parse(NOTIFY_FAILURE, get(NOTIFY_FAILURE), d.notify_failure, flag)?,
            client_connections: parse(CLIENT_CONNECTIONS, get(CLIENT_CONNECTIONS), d.client_connections, flag)?,
            atlas: parse(ATLAS, get(ATLAS), d.atlas, flag)?,
            epoch: parse(EPOCH, get(EPOCH), d.epoch, |t| t.parse().ok())?,
            hostname: opt(HOSTNAME)?.unwrap_or(d.hostname),
            enable_secret: opt(ENABLE_SECRET)?,
            stale: opt(STALE)?,
            last_sync_epoch: parse(LAST_SYNC_EPOCH, get(LAST_SYNC_EPOCH), d.last_sync_epoch, |t| t.parse().ok())?,
            last_sync_node: opt(LAST_SYNC_NODE)?,
            last_sync_peer: opt(LAST_SYNC_PEER)?,
            last_sync_at: parse(LAST_SYNC_AT, get(LAST_SYNC_AT), None, |t| t.parse().ok().map(Some))?,
            epoch_seen: parse(EPOCH_SEEN, get(EPOCH_SEEN), d.epoch_seen, |t| t.parse().ok())?,
            max_staleness: parse(MAX_STALENESS, get(MAX_STALENESS), d.max_staleness, count_unit)?,
            status_url: opt(STATUS_URL)?,
            replication_mode: parse(REPLICATION_MODE, get(REPLICATION_MODE), d.replication_mode, |t| t.parse().ok())?,
            sync_timeout_ms: parse(SYNC_TIMEOUT, get(SYNC_TIMEOUT), d.sync_timeout_ms, |t| t.parse().ok())?,
            switchover_settle_ms: parse(SWITCHOVER_SETTLE, get(SWITCHOVER_SETTLE), d.switchover_settle_ms, |t| {
                t.parse().ok()
            })?,
            witness: parse(WITNESS, get(WITNESS), None, |t| t.parse().ok().map(Some))?,
            prompt: parse(PROMPT, get(PROMPT), d.prompt, PromptParts::parse)?,
            metrics_allow: parse(METRICS_ALLOW, get(METRICS_ALLOW), Vec::new(), |t| {
                t.split_whitespace().map(|n| n.parse().ok()).collect()
            })?,
            logging_hosts: parse(LOGGING_HOSTS, get(LOGGING_HOSTS), Vec::new(), |t| {
                t.split_whitespace().map(LogHost::parse).collect()
            })?,
            event_hooks: parse(EVENT_HOOKS, get(EVENT_HOOKS), Vec::new(), |t| {
                t.lines().filter(|l| !l.is_empty()).map(EventHook::parse).collect()
            })?,
        })
    }

    /// What `prompt hostname mode state` shows after the host name: `/pri`, `/sec` or
    /// `/wit`, then `/act`, `/stby`, `/stale` or `/fenced` (`fenced`: a primary that
    /// fenced itself for want of the quorum's lease).
    pub fn prompt_role(&self, fenced: bool) -> String {
        let mut role = String::new();
        if self.prompt.mode {
            role.push_str(match self.mode {
                Mode::Primary => "/pri",
                Mode::Secondary => "/sec",
                Mode::Witness => "/wit",
            });
        }
        if self.prompt.state {
            role.push_str(match (&self.stale, fenced, self.state()) {
                (Some(_), _, _) => "/stale",
                (None, true, _) => "/fenced",
                (None, false, NodeStatus::Active) => "/act",
                (None, false, NodeStatus::Standby) => "/stby",
            });
        }
        role
    }

    /// The node state derived from mode and node status (table 1 of the guide).
    pub fn state(&self) -> NodeStatus {
        match self.mode {
            Mode::Primary => NodeStatus::Active,
            Mode::Secondary => self.node_status,
            Mode::Witness => NodeStatus::Standby,
        }
    }

    /// The first scheduled sync at or after `after`, or why the scheduler runs none: the
    /// guide's StartTime anchors the schedule at each save, Run Every repeats it.
    pub fn next_sync_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>, &'static str> {
        if !self.enabled {
            return Err("high availability is disabled");
        }
        if self.mode == Mode::Primary {
            return Err("a primary never replicates from another node");
        }
        if self.node_status == NodeStatus::Active {
            return Err("node status is active");
        }
        if self.primary_host.is_none() {
            return Err("no primary-host is set");
        }
        let anchor = self
            .schedule_anchor
            .ok_or("the scheduler is not running: save the schedule in high-availability configuration")?;
        Ok(super::next_sync(anchor, self.interval_seconds(), after))
    }

    /// Sync interval in seconds.
    pub fn interval_seconds(&self) -> i64 {
        i64::from(self.run_every.0) * self.run_every.1.seconds()
    }

    /// `heartbeat max-staleness` in seconds.
    pub fn max_staleness_seconds(&self) -> i64 {
        i64::from(self.max_staleness.0) * self.max_staleness.1.seconds()
    }

    /// The highest epoch this node knows of: its own, the last one it synced from, and
    /// any other node's it has seen.
    pub fn highest_epoch(&self) -> u64 {
        self.epoch.max(self.last_sync_epoch).max(self.epoch_seen)
    }
}

/// `COUNT UNIT` as stored (`60 minutes`).
fn count_unit(t: &str) -> Option<(u32, Unit)> {
    let (n, u) = t.split_once(' ')?;
    Some((n.parse().ok()?, u.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let s = Settings {
            primary_host: Some("[fe80::1]:22".parse().unwrap()),
            run_every: (2, Unit::Hours),
            notify_email: Some("ops@example.com".into()),
            schedule_anchor: Some("2026-11-27T13:00:00Z".parse().unwrap()),
            last_sync_node: Some("0a1b2c3d4e5f6071".into()),
            last_sync_peer: Some("core-a:22".into()),
            last_sync_at: Some("2026-11-27T12:00:00.250Z".parse().unwrap()),
            epoch_seen: 4,
            max_staleness: (90, Unit::Minutes),
            status_url: Some("https://core-a.example.com/status.json".into()),
            replication_mode: ReplicationMode::Synchronous,
            sync_timeout_ms: 250,
            switchover_settle_ms: 300,
            witness: Some("core-w:2222".parse().unwrap()),
            prompt: PromptParts { mode: true, state: false },
            metrics_allow: vec!["192.0.2.0/24".parse().unwrap(), "2001:db8::7/128".parse().unwrap()],
            logging_hosts: vec![
                LogHost { host: "logs.example.com:6514".parse().unwrap(), tcp: true },
                LogHost { host: "[2001:db8::1]:514".parse().unwrap(), tcp: false },
            ],
            ..Settings::default()
        };
        let map: BTreeMap<String, String> =
            s.to_pairs().into_iter().filter_map(|(k, v)| v.map(|v| (k.to_string(), v))).collect();
        assert_eq!(Settings::from_map(&map).unwrap(), s);
    }

    #[test]
    fn the_scheduler_runs_only_on_a_standby_secondary_with_a_saved_schedule() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let mut s = Settings {
            enabled: true,
            mode: Mode::Secondary,
            node_status: NodeStatus::Standby,
            primary_host: Some("core-a".parse().unwrap()),
            schedule_anchor: Some(at("2026-11-27T13:00:00Z")),
            ..Settings::default()
        };
        assert_eq!(s.next_sync_after(at("2026-11-27T12:00:00Z")), Ok(at("2026-11-27T13:00:00Z")));
        assert_eq!(s.next_sync_after(at("2026-11-27T13:00:01Z")), Ok(at("2026-11-27T14:00:00Z")));
        for (edit, why) in [
            (&(|s: &mut Settings| s.enabled = false) as &dyn Fn(&mut Settings), "disabled"),
            (&|s: &mut Settings| s.mode = Mode::Primary, "primary"),
            (&|s: &mut Settings| s.node_status = NodeStatus::Active, "active"),
            (&|s: &mut Settings| s.primary_host = None, "primary-host"),
            (&|s: &mut Settings| s.schedule_anchor = None, "not running"),
        ] {
            let mut t = s.clone();
            edit(&mut t);
            assert!(t.next_sync_after(at("2026-11-27T12:00:00Z")).unwrap_err().contains(why), "{why}");
        }
        s.run_every = (1, Unit::Days);
        assert_eq!(s.next_sync_after(at("2026-11-28T13:00:01Z")), Ok(at("2026-11-29T13:00:00Z")));
    }

    #[test]
    fn unreadable_values_are_errors() {
        let map = BTreeMap::from([(MODE.to_string(), "sideways".to_string())]);
        assert!(Settings::from_map(&map).is_err());
    }
}
