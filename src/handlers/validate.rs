//! `failover validate HOST`: the guide's test and validation plan (step 7, table 4), run
//! from the secondary against its primary, each task with pass or fail and its evidence:
//! connectivity both ways, a manual sync, the same device count and content checksum,
//! a test notification, and heartbeat activity in the HA log; beyond the guide, a sixth
//! task: the settings the pair must agree on do (`config_sync`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use super::mate::exec_on;
use crate::cli::Args;
use crate::coredb::Summary;
use crate::host::HostPort;
use crate::peer::Blocking;
use crate::report::{CmdError, Reply, Text, table};

/// One task of the plan.
#[derive(Serialize, schemars::JsonSchema)]
struct Task {
    /// The task's number in the guide's table 4.
    number: u8,
    task: &'static str,
    passed: bool,
    evidence: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Validation {
    peer: String,
    passed: bool,
    tasks: Vec<Task>,
}

#[derive(Tabled)]
struct Row<'a> {
    #[tabled(rename = "#")]
    number: u8,
    #[tabled(rename = "Task")]
    task: &'a str,
    #[tabled(rename = "Result")]
    result: &'static str,
    #[tabled(rename = "Evidence")]
    evidence: &'a str,
}

impl Text for Validation {
    fn text(&self) -> String {
        let rows: Vec<Row> = self
            .tasks
            .iter()
            .map(|t| Row {
                number: t.number,
                task: t.task,
                result: if t.passed { "PASS" } else { "FAIL" },
                evidence: &t.evidence,
            })
            .collect();
        let failed = self.tasks.iter().filter(|t| !t.passed).count();
        let verdict = match failed {
            0 => format!("All {} tasks passed against {}.", self.tasks.len(), self.peer),
            n => format!("{n} of {} tasks failed against {}.", self.tasks.len(), self.peer),
        };
        format!("{}\n{verdict}", table(&rows))
    }
}

/// The first line of what a command printed (or of why it failed).
fn first_line(result: Result<Reply, CmdError>) -> (bool, String) {
    match result {
        Ok(reply) => {
            let text = reply.report.map(|r| r.text()).unwrap_or_default();
            let notes = reply.notes.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join("; ");
            let line = text.lines().find(|l| !l.trim().is_empty()).map(str::to_string).unwrap_or(notes);
            (true, line)
        }
        Err(e) => (false, e.to_string()),
    }
}

/// Task 3: the same device count here and on the primary, and the same content at the
/// change this node synced to (the primary may have moved on since: devices check in).
fn compare(ctx: &mut Ctx, target: &HostPort) -> (bool, String) {
    let ours = match ctx.node.core().and_then(|c| c.summary()) {
        Ok(s) => s,
        Err(e) => return (false, format!("cannot read the Core data here: {e}")),
    };
    let theirs = match exec_on(ctx, target, "show core summary | json", None) {
        Ok(a) if a.code == 0 => match serde_json::from_str::<serde_json::Value>(&a.stdout) {
            Ok(v) => v,
            Err(e) => return (false, format!("unreadable summary from {target}: {e}")),
        },
        Ok(a) => return (false, format!("{target} answered: {}", a.stderr.trim())),
        Err(e) => return (false, format!("cannot ask {target}: {e}")),
    };
    let Summary { devices: here, content_checksum: checksum, change, .. } = ours;
    let positions = Blocking::trusted(ctx.node, target).and_then(|peer| peer.once(|p| p.positions(change, change)));
    let at_change = match positions {
        Ok(p) => p.base.into_iter().chain(p.positions).find(|p| p.seq == change).map(|p| p.checksum),
        Err(e) => return (false, format!("cannot ask {target}: {e}")),
    };
    let devices = theirs["devices"].as_u64().unwrap_or(u64::MAX);
    let now = theirs["change"].as_i64().unwrap_or(0);
    let short = |s: &str| s.chars().take(12).collect::<String>();
    let content = match &at_change {
        Some(c) if *c == checksum => format!("same content at change {change} (checksum {})", short(c)),
        Some(c) => {
            format!("content differs at change {change}: checksum {} here, {} there", short(&checksum), short(c))
        }
        None => format!("{target} no longer holds change {change} in its log: sync again"),
    };
    let passed = devices == here && at_change.as_deref() == Some(checksum.as_str());
    (passed, format!("devices {here} here, {devices} on {target}; {content}; the primary is at change {now}"))
}

/// Task 5: a heartbeat to `target` in the HA log, answered, within three intervals, and
/// no configuration alarm on it.
fn heartbeat(ctx: &Ctx, target: &HostPort) -> (bool, String) {
    let settings = match ctx.settings() {
        Ok(s) => s,
        Err(e) => return (false, e.to_string()),
    };
    if !settings.enabled {
        return (false, "high availability is disabled here: no heartbeat runs ('service enable')".into());
    }
    if let Some(alarm) = ctx.node.store.peer_status(&target.to_string()).ok().flatten().and_then(|p| p.alarm) {
        return (false, format!("Heartbeat: MISCONFIGURED: {alarm}"));
    }
    let entries = ctx.node.store.ha_log_entries(Some(500)).unwrap_or_default();
    let prefix = format!("heartbeat to {target}");
    let Some(last) = entries.iter().rev().find(|e| e.message.starts_with(&prefix)) else {
        return (false, format!("no heartbeat to {target} in the HA log (is the daemon running?)"));
    };
    let age = DateTime::parse_from_rfc3339(&last.at).map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds());
    let window = i64::from(settings.heartbeat_interval.max(10)) * 3;
    let recent = age.is_ok_and(|a| a <= window);
    let ok = last.message.starts_with(&format!("{prefix}: ok"));
    (ok && recent, format!("{} {}", last.at, last.message))
}

/// Beyond the guide: the settings the pair must agree on, here against the primary's
/// (`show failover config-diff`).
fn agree(ctx: &Ctx, target: &HostPort) -> (bool, String) {
    match super::config_sync::drift(ctx, target) {
        Ok(drifts) => {
            let differ: Vec<&str> = drifts.iter().filter(|d| !d.same).map(|d| d.setting).collect();
            match differ.as_slice() {
                [] => (true, format!("all {} shared settings agree", drifts.len())),
                some => (
                    false,
                    format!(
                        "{} differ: {}; 'show failover config-diff', 'failover config-sync'",
                        some.len(),
                        some.join(", ")
                    ),
                ),
            }
        }
        Err(e) => (false, e.to_string()),
    }
}

pub fn failover_validate(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let target = args.host("HOST").cloned().ok_or_else(|| CmdError::Failed("missing HOST".into()))?;
    if ctx.settings()?.mode != crate::ha::Mode::Secondary {
        return Err(CmdError::Failed(
            "Run failover validate on the secondary, against its primary (the guide's plan runs there)".into(),
        ));
    }
    let mut tasks = Vec::new();
    let mut add =
        |number, task, (passed, evidence): (bool, String)| tasks.push(Task { number, task, passed, evidence });

    add(1, "Connectivity to the primary", first_line(ctx.run(&format!("failover test-connection {target}"))));
    let back = Blocking::trusted(ctx.node, &target).and_then(|peer| peer.once(Blocking::test_back));
    add(
        1,
        "Connectivity from the primary",
        match back {
            Ok(t) => (t.ok, t.detail),
            Err(e) => (false, e.to_string()),
        },
    );
    add(2, "Manual sync, no errors", first_line(ctx.run(&format!("failover sync {target}"))));
    add(3, "Standby updated: same devices", compare(ctx, &target));
    add(4, "Test email notification", first_line(ctx.run("notify test")));
    add(5, "Heartbeat activity in the HA log", heartbeat(ctx, &target));
    add(6, "Settings agree with the primary", agree(ctx, &target));

    let passed = tasks.iter().all(|t| t.passed);
    let failed = tasks.iter().filter(|t| !t.passed).count();
    let reply = Reply::show(Validation { peer: target.to_string(), passed, tasks });
    Ok(if passed { reply } else { reply.fail(format!("Validation failed: {failed} task(s)")) })
}
