//! Event hooks (`event-hook EVENT webhook URL`, `event-hook EVENT command PATH`): what
//! a hook is, the events it can follow, the JSON it is given, and its queueing in the
//! outbox, where the daemon's sender delivers it as it delivers mail (retries, once, at
//! most [`PER_HOUR`] an hour on their own and the rest rolled into a digest). The two
//! role changes a site acts on, becoming primary and becoming stale, are queued in the
//! very transaction that makes the change ([`super::update`]), so that a crash never
//! leaves a promotion without its hook.

use std::fmt;

use serde::Serialize;

pub use crate::store::PER_HOUR;
use crate::store::{Channel, NewDelivery, StoreError, queue_capped_in};
use crate::words::word_enum;

use super::Settings;

/// Longest webhook URL or command path accepted.
pub const MAX_TARGET: usize = 1024;

word_enum!(
    /// An event a hook can follow.
    HookEvent { /// This node became primary (a failover, `failover mode primary`, a switchover).
    BecomesPrimary = "becomes-primary", /// This primary learned that a newer primary exists.
    Stale = "stale", /// The heartbeat found the primary failed (promoted or not).
    FailoverDetected = "failover-detected", /// A sync failed.
    SyncFailed = "sync-failed", /// A sync completed.
    SyncCompleted = "sync-completed", /// Synchronous replication lost its standby.
    Degraded = "degraded", /// This primary fenced itself (no quorum lease).
    Fenced = "fenced" }
);

/// Where a hook goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookTarget {
    /// An HTTP(S) URL the event's JSON is POSTed to.
    Webhook(String),
    /// An absolute path of a program run with the event's JSON on its standard input.
    Command(String),
}

/// One configured hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHook {
    pub event: HookEvent,
    pub target: HookTarget,
}

impl HookTarget {
    /// The outbox channel and recipient.
    pub fn channel(&self) -> (Channel, &str) {
        match self {
            HookTarget::Webhook(url) => (Channel::Webhook, url),
            HookTarget::Command(path) => (Channel::Command, path),
        }
    }

    /// A webhook URL: `http://` or `https://`, a host, no user name or password, no
    /// fragment, at most [`MAX_TARGET`] bytes.
    pub fn webhook(text: &str) -> Result<HookTarget, String> {
        if text.len() > MAX_TARGET {
            return Err(format!("a webhook URL has at most {MAX_TARGET} characters"));
        }
        let url = url::Url::parse(text).map_err(|e| format!("'{text}' is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("'{text}': a webhook URL starts with http:// or https://"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("'{text}' names no host"));
        }
        if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
            return Err(format!("'{text}': a webhook URL carries no user name, password or #fragment"));
        }
        Ok(HookTarget::Webhook(url.to_string()))
    }

    /// A command: an absolute path without spaces, at most [`MAX_TARGET`] bytes. Whether
    /// it is there and executable is checked when it is set, and again at each call.
    pub fn command(text: &str) -> Result<HookTarget, String> {
        if text.len() > MAX_TARGET {
            return Err(format!("a command path has at most {MAX_TARGET} characters"));
        }
        if !text.starts_with('/') || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("'{text}' is not an absolute path (it starts with /)"));
        }
        Ok(HookTarget::Command(text.to_string()))
    }
}

impl fmt::Display for HookTarget {
    /// As the command takes it: `webhook URL` or `command PATH`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookTarget::Webhook(url) => write!(f, "webhook {url}"),
            HookTarget::Command(path) => write!(f, "command {path}"),
        }
    }
}

impl EventHook {
    /// `EVENT webhook URL` or `EVENT command PATH`: how it is stored, and the rest of its
    /// `event-hook` command.
    pub fn text(&self) -> String {
        format!("{} {}", self.event, self.target)
    }

    pub(super) fn parse(line: &str) -> Option<EventHook> {
        let mut words = line.split(' ');
        let event = words.next()?.parse().ok()?;
        let target = match (words.next()?, words.next()?) {
            ("webhook", url) => HookTarget::webhook(url).ok()?,
            ("command", path) => HookTarget::command(path).ok()?,
            _ => return None,
        };
        words.next().is_none().then_some(EventHook { event, target })
    }
}

/// The JSON a hook is given: a webhook's body, a command's standard input.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HookPayload<'a> {
    /// Unique to this call: a receiver that gets it twice (a retry after an answer that
    /// was lost) acts once.
    pub id: String,
    pub event: HookEvent,
    /// The node's host name, and its node id.
    pub node: &'a str,
    pub node_id: &'a str,
    /// The node's mode and epoch after the event.
    pub mode: &'a str,
    pub epoch: u64,
    pub reason: &'a str,
    /// When it happened (RFC 3339, UTC).
    pub time: String,
}

/// Queues a call of every hook that follows `event`, in the caller's transaction, with
/// `settings` as they are after the event on node `node_id`. Returns how many were
/// queued (held ones included).
pub fn queue_in(
    tx: &rusqlite::Connection,
    settings: &Settings,
    node_id: &str,
    event: HookEvent,
    reason: &str,
) -> Result<usize, StoreError> {
    let hooks: Vec<&EventHook> = settings.event_hooks.iter().filter(|h| h.event == event).collect();
    if hooks.is_empty() {
        return Ok(0);
    }
    let now = chrono::Utc::now();
    for hook in &hooks {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| StoreError::Commit(format!("no randomness for a hook's id: {e}")))?;
        let payload = HookPayload {
            id: hex::encode(id),
            event,
            node: &settings.hostname,
            node_id,
            mode: settings.mode.as_str(),
            epoch: settings.epoch,
            reason,
            time: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        let body = serde_json::to_string(&payload).map_err(|e| StoreError::Commit(e.to_string()))?;
        let (channel, recipient) = hook.target.channel();
        let subject = format!("{event} on {}", settings.hostname);
        let entry = NewDelivery { channel, event: event.as_str(), recipient, subject: &subject, body: &body };
        queue_capped_in(tx, &entry)?;
    }
    Ok(hooks.len())
}

/// The body of a digest of `held` calls: the newest call's JSON, with `held` saying how
/// many calls it stands for (the newest included) and `first` when the oldest happened.
pub fn digest_body(held: &[crate::store::Delivery]) -> String {
    let Some(last) = held.last() else { return String::new() };
    let mut json: serde_json::Value = serde_json::from_str(&last.body).unwrap_or(serde_json::Value::Null);
    if let Some(map) = json.as_object_mut() {
        map.insert("held".into(), held.len().into());
        if let Some(first) = held.first().and_then(|d| serde_json::from_str::<serde_json::Value>(&d.body).ok()) {
            map.insert("first".into(), first["time"].clone());
        }
    }
    json.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_round_trip_and_refuse_what_is_not_a_target() {
        for line in [
            "becomes-primary webhook https://dns.example.com/flip?zone=core&token=abc",
            "fenced command /usr/local/bin/page-ops",
            "sync-failed webhook http://10.0.0.5:8080/",
        ] {
            assert_eq!(EventHook::parse(line).map(|h| h.text()).as_deref(), Some(line));
        }
        for bad in [
            "becomes-primary webhook ftp://x/",
            "becomes-primary webhook https://user:pw@x/",
            "becomes-primary webhook https://x/#top",
            "becomes-primary command bin/page",
            "rebooted command /bin/true",
            "fenced command /bin/true extra",
        ] {
            assert_eq!(EventHook::parse(bad), None, "{bad}");
        }
        assert!(HookTarget::webhook(&format!("http://x/{}", "a".repeat(MAX_TARGET))).is_err());
    }

    #[test]
    fn role_changes_queue_their_hooks_in_their_own_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::Store::open(dir.path()).unwrap();
        let cause = super::super::Cause { actor: "test@unit".into(), reason: "unit test".into() };
        let hooks = ["becomes-primary command /bin/true", "stale webhook http://hooks.example.com/stale"];
        super::super::update(&mut store, &cause, |s| {
            s.event_hooks = hooks.iter().filter_map(|h| EventHook::parse(h)).collect();
        })
        .unwrap();
        super::super::demote(&mut store, &cause).unwrap();
        assert!(store.deliveries(None).unwrap().is_empty(), "no hook follows a demotion");
        super::super::promote(&mut store, &cause).unwrap();
        super::super::promote(&mut store, &cause).unwrap();
        let queued = store.deliveries(None).unwrap();
        assert_eq!(queued.len(), 1, "one promotion, one call: {queued:?}");
        let body: serde_json::Value = serde_json::from_str(&queued[0].body).unwrap();
        assert_eq!((queued[0].channel, queued[0].event.as_str()), (Channel::Command, "becomes-primary"));
        assert_eq!((body["epoch"].as_u64(), body["reason"].as_str()), (Some(1), Some("unit test")));
        super::super::update(&mut store, &cause, |s| s.stale = Some("core-b is primary at epoch 2".into())).unwrap();
        let queued = store.deliveries(None).unwrap();
        assert_eq!((queued[0].channel, queued[0].event.as_str()), (Channel::Webhook, "stale"));
        assert!(queued[0].body.contains("core-b is primary at epoch 2"), "{}", queued[0].body);
    }
}
