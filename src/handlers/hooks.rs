//! `event-hook EVENT webhook URL|command PATH`, its `no` forms, and `show event-hooks`:
//! the hooks this node calls when an HA event happens (`ha::hooks`), and what the
//! outbox holds for each.

use std::os::unix::fs::PermissionsExt;

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::ha::hooks::{EventHook, HookEvent, HookTarget};
use crate::report::{CmdError, Reply, Text, table};
use crate::store::HookTally;

/// Most hooks a node keeps (all events together).
pub const MAX_HOOKS: usize = 32;

fn target(args: &Args) -> Result<Option<HookTarget>, CmdError> {
    let made = match (args.text("HOOKURL"), args.text("HOOKPATH")) {
        (Some(url), _) => HookTarget::webhook(url),
        (None, Some(path)) => HookTarget::command(path),
        (None, None) => return Ok(None),
    };
    made.map(Some).map_err(CmdError::Failed)
}

pub fn event_hook(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let event: HookEvent =
        args.text("event").and_then(|e| e.parse().ok()).ok_or_else(|| CmdError::Failed("An event is needed".into()))?;
    let target = target(args)?;
    let before = ctx.settings()?.event_hooks;
    if args.has("no") {
        let gone = |h: &EventHook| h.event == event && target.as_ref().is_none_or(|t| *t == h.target);
        let removed = before.iter().filter(|h| gone(h)).count();
        if removed == 0 {
            return Ok(Reply::done().info("No such event hook; nothing changed."));
        }
        ctx.update(|s| s.event_hooks.retain(|h| !gone(h)))?;
        return Ok(Reply::done().info(format!("{removed} event hook(s) of {event} removed.")));
    }
    let Some(target) = target else { return Err(CmdError::Failed("A webhook or a command is needed".into())) };
    let hook = EventHook { event, target };
    if before.contains(&hook) {
        return Ok(Reply::done().info(format!("The event hook {} is already set; nothing changed.", hook.text())));
    }
    if before.len() >= MAX_HOOKS {
        return Err(CmdError::Failed(format!("At most {MAX_HOOKS} event hooks; remove one first")));
    }
    let mut reply = Reply::done();
    if let HookTarget::Command(path) = &hook.target {
        let runnable = std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !runnable {
            reply = reply.warn(format!(
                "{path} is not an executable file on this node now: its calls will fail (and be retried) until it is."
            ));
        }
    }
    let text = hook.text();
    ctx.update(|s| s.event_hooks.push(hook))?;
    Ok(reply.info(format!("Event hook set: {text}. Each call goes through the outbox ('show event-hooks').")))
}

/// One hook as `show event-hooks` shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Hook {
    event: HookEvent,
    /// `webhook` or `command`.
    kind: &'static str,
    target: String,
    #[serde(flatten)]
    tally: HookTally,
}

#[derive(Tabled)]
struct Row<'a> {
    #[tabled(rename = "Event")]
    event: &'a str,
    #[tabled(rename = "Calls")]
    target: String,
    #[tabled(rename = "Sent")]
    sent: u64,
    #[tabled(rename = "Waiting")]
    waiting: u64,
    #[tabled(rename = "Failed")]
    failed: u64,
    #[tabled(rename = "Last error")]
    error: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Hooks(Vec<Hook>);

impl Text for Hooks {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No event hooks.".into();
        }
        let rows: Vec<Row> = self
            .0
            .iter()
            .map(|h| Row {
                event: h.event.as_str(),
                target: format!("{} {}", h.kind, h.target),
                sent: h.tally.sent,
                waiting: h.tally.waiting,
                failed: h.tally.failed,
                error: h.tally.last_error.as_deref().unwrap_or("-"),
            })
            .collect();
        format!(
            "{}\nAt most {} calls of one hook for one event an hour go out on their own; the rest wait for a digest.",
            table(&rows),
            crate::ha::hooks::PER_HOUR
        )
    }
}

pub fn show_event_hooks(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let mut hooks = Vec::new();
    for hook in ctx.settings()?.event_hooks {
        let (channel, recipient) = hook.target.channel();
        let tally = ctx.node.store.hook_tally(channel, recipient, hook.event.as_str())?;
        hooks.push(Hook { event: hook.event, kind: channel.as_str(), target: recipient.to_string(), tally });
    }
    Ok(Reply::show(Hooks(hooks)))
}
