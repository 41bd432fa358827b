//! `failover switchover [dry-run]` and `show failover handovers`. A switchover is run
//! by the primary's daemon (`serve::switchover`), which holds the device writes and
//! the streams: on the primary this command asks its own daemon through the system
//! database and waits for the report; on the standby it asks the primary over the
//! trusted channel. Either way the report is the same typed [`SwitchoverReport`].

use std::time::{Duration, Instant};

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::ha::Mode;
use crate::peer::Blocking;
use crate::peer::message::{SwitchoverOutcome, SwitchoverReport, SwitchoverTo};
use crate::report::{CmdError, Reply, Text, fields, table};
use crate::store::{Handover, SIGNATURE_NAMESPACE};

/// How long the daemon may take to notice a request (it looks within 50 ms).
const TAKEN_WITHIN: Duration = Duration::from_secs(3);
/// How long a switchover may take once the daemon runs it (the bound, the commit and
/// asking a silent standby what it did, with room to spare).
const REPORT_WITHIN: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(25);

impl Text for SwitchoverReport {
    fn text(&self) -> String {
        let title = match self.outcome {
            SwitchoverOutcome::WouldSwitch => "Switchover (dry run): would go ahead",
            SwitchoverOutcome::WouldRefuse => "Switchover (dry run): would be refused",
            SwitchoverOutcome::Switched => "Switchover done",
            SwitchoverOutcome::Refused => "Switchover refused",
            SwitchoverOutcome::Aborted => "Switchover aborted",
            SwitchoverOutcome::InDoubt => "Switchover IN DOUBT",
        };
        let mut pairs = vec![("Old primary", format!("{} (epoch {})", self.from, self.from_epoch))];
        if let Some(to) = &self.to {
            let epoch = self.to_epoch.map(|e| format!(" (epoch {e})")).unwrap_or_default();
            pairs.push(("New primary", format!("{to}{epoch}")));
        }
        if let (Some(seq), Some(sum)) = (self.seq, &self.checksum) {
            pairs.push(("At change", format!("{seq}, content checksum {sum}")));
        }
        if let (Some(changes), Some(ms)) = (self.lag_changes, self.lag_ms) {
            pairs.push(("Standby lag", format!("{changes} changes ({ms} ms) when it began")));
        }
        let held = self.writes_held_ms.map_or_else(|| "none".to_string(), |ms| format!("{ms} ms"));
        pairs.push(("Writes held", format!("{held} (bound {} ms)", self.bound_ms)));
        pairs.push(("Took", format!("{} ms", self.took_ms)));
        let steps: Vec<String> = self.steps.iter().map(|s| format!("  {:>6} ms  {}", s.at_ms, s.what)).collect();
        format!("{title}: {}\n{}\nSteps:\n{}", self.detail, fields(&pairs), steps.join("\n"))
    }
}

pub fn failover_switchover(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let dry_run = args.has("dry-run");
    let to = args.host("HOST").map(ToString::to_string);
    let settings = ctx.settings()?;
    let report = match settings.mode {
        Mode::Witness => {
            return Err(CmdError::Failed("This node is a quorum witness: run the switchover on the pair".into()));
        }
        Mode::Primary => ask_own_daemon(ctx, dry_run, to.as_deref())?,
        Mode::Secondary if to.is_some() => {
            return Err(CmdError::Failed(
                "On a standby, 'failover switchover' makes this node primary; 'to HOST' is for the primary".into(),
            ));
        }
        Mode::Secondary => {
            let primary = settings.primary_host.clone().ok_or_else(|| {
                CmdError::Failed("This node follows no primary: set 'primary-host' in (config-ha)#".into())
            })?;
            ctx.console.progress(Some(&format!("asking the primary {primary}")));
            let me = Some(SwitchoverTo::Node(ctx.node.id.clone()));
            let asked = Blocking::trusted(ctx.node, &primary).and_then(|peer| peer.once(|p| p.switchover(dry_run, me)));
            ctx.console.progress(None);
            asked.map_err(|e| CmdError::Failed(format!("Switchover failed: cannot ask the primary {primary}: {e}")))?
        }
    };
    let why = match report.outcome {
        SwitchoverOutcome::WouldSwitch | SwitchoverOutcome::Switched => None,
        SwitchoverOutcome::WouldRefuse | SwitchoverOutcome::Refused => Some("Switchover refused"),
        SwitchoverOutcome::Aborted => Some("Switchover aborted; the old primary serves"),
        SwitchoverOutcome::InDoubt => Some("Switchover in doubt: see 'show failover' on both nodes"),
    };
    Ok(match why {
        None => Reply::show(report),
        Some(why) => Reply::show(report).fail(why),
    })
}

/// Leaves a request for this node's daemon and waits for its report.
fn ask_own_daemon(ctx: &mut Ctx, dry_run: bool, to: Option<&str>) -> Result<SwitchoverReport, CmdError> {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).map_err(|e| CmdError::Failed(format!("no randomness: {e}")))?;
    let id = hex::encode(raw);
    let asked_by = format!("{}@{}", ctx.session.user, ctx.session.source);
    ctx.node.store.ask_switchover(&id, &asked_by, dry_run, to)?;
    ctx.console.progress(Some("waiting for this node's daemon"));
    let asked = Instant::now();
    let result = loop {
        std::thread::sleep(POLL);
        let Some(request) = ctx.node.store.switchover_request(&id)? else {
            break Err(CmdError::Failed("Switchover failed: the request disappeared".into()));
        };
        if let Some(text) = request.report {
            break serde_json::from_str(&text)
                .map_err(|e| CmdError::Failed(format!("Switchover failed: unreadable report from the daemon: {e}")));
        }
        if request.taken_at.is_none() && asked.elapsed() > TAKEN_WITHIN && ctx.node.store.withdraw_switchover(&id)? {
            break Err(CmdError::Failed(
                "No coresh daemon runs on this node ('coresh serve'): a switchover needs it; nothing changed".into(),
            ));
        }
        if asked.elapsed() > REPORT_WITHIN {
            break Err(CmdError::Failed(
                "Switchover: the daemon has not reported yet; see 'show failover' and 'show logging high-availability'"
                    .into(),
            ));
        }
    };
    ctx.console.progress(None);
    result
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "At (UTC)")]
    at: String,
    #[tabled(rename = "Change")]
    seq: i64,
    #[tabled(rename = "Checksum")]
    checksum: String,
    #[tabled(rename = "From")]
    from: String,
    #[tabled(rename = "To")]
    to: String,
    #[tabled(rename = "Signatures")]
    signatures: String,
}

/// A handover as `show failover handovers` lists it: each signature checked against
/// the keys this node knows (its own and its trusted hosts').
#[derive(Serialize, schemars::JsonSchema)]
struct Checked {
    #[serde(flatten)]
    handover: Handover,
    from_signed_by: Option<String>,
    to_signed_by: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Handovers(Vec<Checked>);

impl Text for Handovers {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No switchover has handed the primary role over on this node.".into();
        }
        let rows: Vec<Row> = self
            .0
            .iter()
            .map(|c| {
                let h = &c.handover;
                let signed = |by: &Option<String>| by.clone().unwrap_or_else(|| "NOT VERIFIED".into());
                Row {
                    at: h.at.clone(),
                    seq: h.seq,
                    checksum: h.checksum.get(..12).unwrap_or(&h.checksum).to_string(),
                    from: format!("{} (epoch {})", h.from_host, h.from_epoch),
                    to: format!("{} (epoch {})", h.to_host, h.to_epoch),
                    signatures: format!(
                        "{}: {}; {}: {}",
                        h.from_host,
                        signed(&c.from_signed_by),
                        h.to_host,
                        signed(&c.to_signed_by)
                    ),
                }
            })
            .collect();
        table(&rows)
    }
}

pub fn show_failover_handovers(ctx: &mut Ctx, _args: &Args) -> Result<Reply, CmdError> {
    let mut keys = Vec::new();
    if let Ok(own) = crate::node::keys::host_key(&ctx.node.data_dir) {
        keys.push(("this node's key".to_string(), own.public_key().clone()));
    }
    for t in ctx.node.store.trusted_hosts()? {
        if let Ok(k) = crate::node::keys::parse_public(&t.key) {
            keys.push((format!("{}'s trusted key", t.host), k));
        }
    }
    let signer = |statement: &str, signature: &str| {
        keys.iter()
            .find(|(_, k)| crate::node::keys::verify(k, SIGNATURE_NAMESPACE, statement, signature))
            .map(|(who, _)| format!("verified ({who})"))
    };
    let checked = ctx
        .node
        .store
        .handovers()?
        .into_iter()
        .map(|h| {
            let statement = h.statement();
            Checked {
                from_signed_by: signer(&statement, &h.from_signature),
                to_signed_by: signer(&statement, &h.to_signature),
                handover: h,
            }
        })
        .collect();
    Ok(Reply::show(Handovers(checked)))
}
