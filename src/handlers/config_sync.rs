//! `show failover config-diff [HOST]` and `failover config-sync`: the settings the pair
//! must agree on (`shared`), this node's beside the peer's (asked over the trusted
//! channel), and on a standby, its primary's copied here line by line, each line run in
//! its configuration mode through the shell's pipeline, so it is checked and audited as
//! if typed.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::ha::Mode;
use crate::host::HostPort;
use crate::peer::Blocking;
use crate::peer::message::SharedSettings;
use crate::report::{CmdError, Reply, Text, table};
use crate::shared::{Drift, Step, compare, of_this_node, plan};

/// The peer's shared settings.
fn peer_settings(ctx: &Ctx, peer: &HostPort) -> Result<SharedSettings, CmdError> {
    let asked = Blocking::trusted(ctx.node, peer).and_then(|p| p.once(Blocking::shared_settings));
    let theirs = asked.map_err(|e| CmdError::Failed(format!("Cannot ask {peer} for its settings: {e}")))?;
    match theirs.error {
        Some(e) => Err(CmdError::Failed(format!("{peer} could not read its settings: {e}"))),
        None => Ok(theirs),
    }
}

/// The shared settings here against `peer`'s.
pub(super) fn drift(ctx: &Ctx, peer: &HostPort) -> Result<Vec<Drift>, CmdError> {
    let theirs = peer_settings(ctx, peer)?;
    Ok(compare(&of_this_node(&ctx.node.store)?, &theirs))
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct ConfigDiff {
    peer: String,
    /// How many settings differ.
    differ: usize,
    settings: Vec<Drift>,
}

#[derive(Tabled)]
struct Row<'a> {
    #[tabled(rename = "Mode")]
    mode: &'a str,
    #[tabled(rename = "Setting")]
    setting: &'a str,
    #[tabled(rename = "This node")]
    here: String,
    #[tabled(rename = "Peer")]
    peer: String,
    #[tabled(rename = "Differs")]
    differs: &'a str,
}

fn cell(lines: &[String]) -> String {
    if lines.is_empty() { "(not set)".into() } else { lines.join("\n") }
}

impl Text for ConfigDiff {
    fn text(&self) -> String {
        let rows: Vec<Row> = self
            .settings
            .iter()
            .map(|d| Row {
                mode: d.mode,
                setting: d.setting,
                here: cell(&d.here),
                peer: cell(&d.peer),
                differs: if d.same { "" } else { "*" },
            })
            .collect();
        let total = self.settings.len();
        let verdict = match self.differ {
            0 => format!("All {total} settings agree with {}.", self.peer),
            n => format!(
                "{n} of {total} settings differ from {} (*). 'failover config-sync' on the standby copies the primary's.",
                self.peer
            ),
        };
        format!("{}\n{verdict}", table(&rows))
    }
}

pub fn show_failover_config_diff(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let peer = match args.host("HOST") {
        Some(h) => h.clone(),
        None => super::mate::the_mate(ctx)?,
    };
    let settings = drift(ctx, &peer)?;
    let differ = settings.iter().filter(|d| !d.same).count();
    Ok(Reply::show(ConfigDiff { peer: peer.to_string(), differ, settings }))
}

/// What `failover config-sync` did.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Synced {
    primary: String,
    /// The lines run here, each with its error if it failed.
    applied: Vec<Applied>,
    /// What could not be copied, and what to do instead.
    not_copied: Vec<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct Applied {
    #[serde(flatten)]
    step: Step,
    error: Option<String>,
}

impl Text for Synced {
    fn text(&self) -> String {
        let mut out = Vec::new();
        if self.applied.is_empty() {
            out.push(format!("The settings already agree with {}; nothing changed.", self.primary));
        } else {
            out.push(format!("Copied from {}:", self.primary));
            for a in &self.applied {
                let mode = if a.step.mode == "config-ha" { "(config-ha)" } else { "(config)" };
                match &a.error {
                    None => out.push(format!("  {mode} {}", a.step.line)),
                    Some(e) => out.push(format!("  {mode} {}  FAILED: {e}", a.step.line)),
                }
            }
        }
        out.extend(self.not_copied.iter().cloned());
        out.join("\n")
    }
}

pub fn failover_config_sync(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let settings = ctx.settings()?;
    let primary = match (settings.mode, settings.primary_host) {
        (Mode::Secondary, Some(primary)) => primary,
        (Mode::Secondary, None) => {
            return Err(CmdError::Failed("No primary-host: set it in (config-ha)# first".into()));
        }
        _ => {
            return Err(CmdError::Failed(
                "Run failover config-sync on the standby: it copies its primary's settings to the node it runs on \
                 (here, 'show failover config-diff' shows the drift)"
                    .into(),
            ));
        }
    };
    let (steps, not_copied) = plan(&drift(ctx, &primary)?);
    let mode = ctx.session.mode.clone();
    let mut applied = Vec::new();
    for step in steps {
        ctx.session.mode = step.mode.to_string();
        let error = ctx.run(&step.line).err().map(|e| e.to_string());
        applied.push(Applied { step, error });
    }
    ctx.session.mode = mode;
    let failed = applied.iter().filter(|a| a.error.is_some()).count();
    let reply = Reply::show(Synced { primary: primary.to_string(), applied, not_copied });
    Ok(if failed == 0 { reply } else { reply.fail(format!("{failed} line(s) could not be applied")) })
}
