//! Email notifications (guide step 6, Notification Settings) and event hooks. An HA
//! event becomes a mail that says what happened, on which node, when, and what to do
//! next, and a call of each event hook that follows it (`ha::hooks`); both are written
//! to the durable outbox first (`store::outbox`), in one transaction, and the daemon's
//! [`sender`] delivers them with retries, so a down or slow SMTP server or webhook
//! receiver never blocks HA work and nothing is lost. More than [`PER_HOUR`] of one kind
//! of event in an hour are held back and rolled into one digest, so a flapping pair
//! cannot flood anyone's mailbox or pager.

pub mod hook;
pub mod sender;
pub mod smtp;

use crate::ha::Settings;
use crate::ha::hooks::{self, HookEvent};
pub use crate::store::PER_HOUR;
use crate::store::{Channel, Delivery, NewDelivery, Store, StoreError, queue_capped_in, settings_in};

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A sync from `peer` completed (only with `notify on sync-completion`).
    SyncCompleted { peer: String, detail: String },
    /// A sync from `peer` failed.
    SyncFailed { peer: String, reason: String },
    /// The primary failed its heartbeats; `promoted` when this node became primary.
    Failover { primary: String, reason: String, promoted: bool, epoch: u64 },
    /// The primary failed, but this node may not promote itself (its data is too old,
    /// or a primary further up its chain answers): it stays standby.
    FailoverRefused { primary: String, reason: String },
    /// A configuration error keeps the heartbeat from telling whether the primary lives.
    Misconfigured { primary: String, reason: String },
    /// This primary saw a newer one.
    Stale { detail: String },
    /// Two primaries at the same epoch.
    SplitBrain { detail: String },
    /// The peer's clock is off.
    Clock { peer: String, offset_ms: i64 },
    /// Synchronous replication lost its standby: writes no longer wait for it.
    Degraded { standby: String, reason: String },
    /// A switchover this node ran as the old primary: `to` took over (`done`), or this
    /// node handed over and could not learn whether `to` took over (not `done`).
    Switchover { to: String, detail: String, done: bool },
    /// This primary fenced itself: it could not renew the quorum's lease.
    Fenced { reason: String },
    /// The check of this node's live Core data that follows a full copy sent from its
    /// checked copy found damage, or rows that left the change log.
    DataDamaged { detail: String },
    /// `notify test`.
    Test,
}

impl Event {
    /// The event's name in the outbox.
    pub fn name(&self) -> &'static str {
        match self {
            Event::SyncCompleted { .. } => "sync-completed",
            Event::SyncFailed { .. } => "sync-failed",
            Event::Failover { promoted: true, .. } => "became-primary",
            Event::Failover { .. } => "failover-detected",
            Event::FailoverRefused { .. } => "failover-refused",
            Event::Misconfigured { .. } => "heartbeat-misconfigured",
            Event::Stale { .. } => "stale-primary",
            Event::SplitBrain { .. } => "split-brain",
            Event::Clock { .. } => "clock-offset",
            Event::Degraded { .. } => "degraded",
            Event::Switchover { done: true, .. } => "switchover",
            Event::Switchover { .. } => "switchover-in-doubt",
            Event::Fenced { .. } => "fenced",
            Event::DataDamaged { .. } => "data-damaged",
            Event::Test => "test",
        }
    }

    /// The hook event it is, and the reason a hook is given. `becomes-primary` and
    /// `stale` are not here: they are queued with the role change itself.
    fn hook(&self) -> Option<(HookEvent, String)> {
        Some(match self {
            Event::SyncCompleted { peer, detail } => {
                (HookEvent::SyncCompleted, format!("sync from {peer} completed: {detail}"))
            }
            Event::SyncFailed { peer, reason } => (HookEvent::SyncFailed, format!("sync from {peer} failed: {reason}")),
            Event::Failover { reason, .. } | Event::FailoverRefused { reason, .. } => {
                (HookEvent::FailoverDetected, reason.clone())
            }
            Event::Degraded { standby, reason } => {
                (HookEvent::Degraded, format!("writes no longer wait for {standby}: {reason}"))
            }
            Event::Fenced { reason } => (HookEvent::Fenced, reason.clone()),
            _ => return None,
        })
    }

    /// Whether the settings ask for this event's mail.
    fn wanted(&self, s: &Settings) -> bool {
        match self {
            Event::SyncCompleted { .. } => s.notify_sync_completion,
            Event::Test => true,
            _ => s.notify_failure,
        }
    }

    /// Subject and body.
    pub fn compose(&self, s: &Settings, node_id: &str) -> (String, String) {
        let (what, details, next) = match self {
            Event::SyncCompleted { peer, detail } => (
                format!("sync from {peer} completed"),
                detail.clone(),
                "Nothing: this is the notification 'notify on sync-completion' asks for.".to_string(),
            ),
            Event::SyncFailed { peer, reason } => (
                format!("sync from {peer} FAILED"),
                reason.clone(),
                format!(
                    "Check 'show sync history' and 'failover test-connection {peer}' on this node; the next scheduled sync will try again."
                ),
            ),
            Event::Failover { primary, reason, promoted: true, epoch } => (
                format!("FAILOVER: this node is now primary (primary {primary} failed)"),
                format!("{reason}\nThis node was promoted to primary, epoch {epoch}."),
                format!(
                    "Devices now use this node. Find out why {primary} failed. Nothing fails back by itself: when {primary} returns it reports itself stale; recover it with 'failover mode secondary' and 'failover sync' from this node."
                ),
            ),
            Event::Failover { primary, reason, .. } => (
                format!("FAILOVER DETECTED: primary {primary} failed; this node stays standby"),
                reason.clone(),
                "On-failure is keep-standby: no node serves devices now. Bring the primary back, or promote this node with 'failover mode primary'.".to_string(),
            ),
            Event::FailoverRefused { primary, reason } => (
                format!("FAILOVER REFUSED: primary {primary} failed; this node stays standby"),
                reason.clone(),
                format!(
                    "This node did not promote itself, for the reason above. If {primary} is truly lost and this \
                     node's data is what you want to serve, promote it with 'failover mode primary' (it says what it \
                     would lose); otherwise bring {primary} back."
                ),
            ),
            Event::Misconfigured { primary, reason } => (
                format!("HEARTBEAT MISCONFIGURED towards {primary}"),
                format!(
                    "{reason}\nA configuration error is not a failed primary: no automatic failover happens while it lasts."
                ),
                format!(
                    "Fix the configuration ('failover test-connection {primary}' and 'show failover' show the details); \
                     this alarm is sent once, and the HA log says when it is gone."
                ),
            ),
            Event::Stale { detail } => (
                "STALE PRIMARY: a newer primary exists".to_string(),
                detail.clone(),
                "This node refuses devices now. Recover it with 'failover mode secondary', then 'failover sync' from the current primary; 'show failover divergence' lists any writes the sync replaced.".to_string(),
            ),
            Event::SplitBrain { detail } => (
                "SPLIT BRAIN: two primaries at the same epoch".to_string(),
                detail.clone(),
                "Choose the primary and run 'failover mode secondary' on the other node.".to_string(),
            ),
            Event::Clock { peer, offset_ms } => (
                format!("clock offset to {peer} is {offset_ms:+} ms"),
                "The guide requires the same time on both nodes.".to_string(),
                "Set both nodes' clocks from NTP.".to_string(),
            ),
            Event::Degraded { standby, reason } => (
                format!("SYNCHRONOUS REPLICATION DEGRADED: writes no longer wait for {standby}"),
                format!(
                    "{reason}\nThis primary keeps serving devices; what it acknowledges now may be lost if it fails before {standby} has it."
                ),
                format!(
                    "Find out why {standby} does not confirm ('show failover' on both nodes). Replication returns to synchronous by itself, and the HA log says so, once {standby} has caught up."
                ),
            ),
            Event::Switchover { to, detail, done: true } => (
                format!("switchover: {to} is now primary; this node is its standby"),
                detail.clone(),
                format!(
                    "Nothing, if you asked for it: devices and the load balancer now use {to}. To switch back, run 'failover switchover' again."
                ),
            ),
            Event::Switchover { to, detail, .. } => (
                format!("SWITCHOVER IN DOUBT: this node handed over to {to}, which did not confirm"),
                format!("{detail}\nThis node stays a standby and takes no device writes."),
                format!(
                    "Look at {to}: if it is primary ('show failover' there), nothing is wrong. If it is down or still a standby, make one node primary with 'failover mode primary'."
                ),
            ),
            Event::Fenced { reason } => (
                "FENCED: this primary takes no device writes (no quorum lease)".to_string(),
                reason.clone(),
                "It resumes by itself once it renews the lease; if its secondary took the lease, it is a stale primary now: recover it with 'failover mode secondary'. 'show failover' on all three nodes shows the quorum.".to_string(),
            ),
            Event::DataDamaged { detail } => (
                "CORE DATA DAMAGED on this node".to_string(),
                format!(
                    "{detail}\nFound by the check of this node's live Core data that follows a full copy sent to a peer. \
                     The peer got this node's checked copy and the logged changes after it, not the damage."
                ),
                "Fail over to the standby if this node is primary ('show failover' on both nodes), then rebuild this \
                 node from it with 'failover mode secondary' and 'failover sync ... full'. Full copies from this node \
                 are refused until its data passes the checks again."
                    .to_string(),
            ),
            Event::Test => (
                "test notification".to_string(),
                "This is a test notification, sent by 'notify test'.".to_string(),
                "Nothing: notifications reach this address.".to_string(),
            ),
        };
        let subject = format!("[coresh {}] {what}", s.hostname);
        let body = format!(
            "What happened: {what}\n\n{details}\n\nNode: {} (node id {node_id}), mode {}, state {}, epoch {}\nWhen: {} UTC\n\nWhat to do next: {next}\n",
            s.hostname,
            s.mode,
            s.state(),
            s.epoch,
            chrono::Utc::now().format("%Y-%m-%d %H:%M:%S"),
        );
        (subject, body)
    }
}

/// What became of a raised event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// Queued as outbox mail `id`.
    Queued(i64),
    /// No mail: no notification address, or the settings do not ask for this event.
    NotWanted,
    /// More than [`PER_HOUR`] of this kind within the hour: kept for the next digest.
    Held,
}

/// The digest of `held` entries of `event`: a mail, or a hook's call.
pub fn digest(event: &str, held: &[Delivery]) -> (String, String) {
    match held.first() {
        Some(first) if first.channel != Channel::Mail => {
            (format!("digest: {} {event}", held.len()), hooks::digest_body(held))
        }
        _ => digest_mail(event, held),
    }
}

fn digest_mail(event: &str, held: &[Delivery]) -> (String, String) {
    let host = held
        .first()
        .and_then(|m| m.subject.strip_prefix("[coresh ").and_then(|r| r.split(']').next()))
        .unwrap_or("node")
        .to_string();
    let subject = format!("[coresh {host}] digest: {} more {event} notifications", held.len());
    let mut body = format!(
        "What happened: {event} happened {} more times than the {PER_HOUR} notifications an hour sent on their own.\n\n",
        held.len()
    );
    for m in held {
        body.push_str(&format!("{} UTC  {}\n", m.created_at, m.subject));
    }
    if let Some(last) = held.last() {
        body.push_str(&format!("\nThe latest in full:\n\n{}", last.body));
    }
    (subject, body)
}

/// Turns `event` into a mail in the outbox, when the settings ask for it and the hourly
/// cap allows, and into a call of each hook that follows it: durably, in one
/// transaction. What became of the mail is returned.
pub fn raise(store: &mut Store, node_id: &str, event: &Event) -> Result<Raised, StoreError> {
    let hook = event.hook();
    let wanted = |s: &Settings| {
        let mail = s.notify_email.is_some() && event.wanted(s);
        let hooked = hook.as_ref().is_some_and(|(h, _)| s.event_hooks.iter().any(|k| k.event == *h));
        (mail, hooked)
    };
    // Most events want nothing: no write transaction for them.
    if wanted(&Settings::from_map(&store.settings()?)?) == (false, false) {
        return Ok(Raised::NotWanted);
    }
    let raised = store.durably(|tx| {
        let s = Settings::from_map(&settings_in(tx)?)?;
        let (mail, hooked) = wanted(&s);
        if let (true, Some((hook, reason))) = (hooked, &hook) {
            hooks::queue_in(tx, &s, node_id, *hook, reason)?;
        }
        let (true, Some(recipient)) = (mail, s.notify_email.as_deref()) else { return Ok(Raised::NotWanted) };
        let (subject, body) = event.compose(&s, node_id);
        let entry =
            NewDelivery { channel: Channel::Mail, event: event.name(), recipient, subject: &subject, body: &body };
        let (id, held) = queue_capped_in(tx, &entry)?;
        Ok(if held { Raised::Held } else { Raised::Queued(id) })
    })?;
    if raised == Raised::Held {
        let text = format!("notification {} held for a digest: more than {PER_HOUR} this hour", event.name());
        let _ = store.ha_log("warning", &text);
    }
    Ok(raised)
}

/// Raises `event` where a failure to queue must not stop the HA work that raised it.
pub fn raise_or_log(store: &mut Store, node_id: &str, event: &Event) {
    if let Err(e) = raise(store, node_id, event) {
        tracing::error!(subsystem = "notify", event = event.name(), error = %e, "notification not queued");
    }
}
