//! Replication commands: `failover sync HOST` (the guide's Run Sync Now) and
//! `show sync history` (Sync History and Last Sync Status).

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::replication::pull::{SyncReport, checked_copy_text, sync_from};
use crate::report::{CmdError, Reply, Text, table};
use crate::store::{SyncKind, SyncRecord};

impl Text for SyncReport {
    fn text(&self) -> String {
        let mut what = match (self.changes, &self.fallback) {
            (Some((from, to)), _) if from == to => "already up to date".to_string(),
            (Some((from, to)), _) => format!("changes {}..{to}", from + 1),
            (None, Some(why)) => format!("full copy, because {why}"),
            (None, None) => "full copy".to_string(),
        };
        if let Some(copy) = self.checked_copy.map(checked_copy_text) {
            what.push_str(&format!(" ({copy})"));
        }
        let mut text = format!(
            "Sync from {} ({}) completed: {what}, {} bytes, {} rows in {:.2} s\nContent checksum verified: {}\nAtlas: {}\nApplication files: {}",
            self.peer, self.peer_hostname, self.bytes, self.rows, self.seconds, self.content, self.atlas, self.files
        );
        if let Some(k) = &self.kept {
            let fork =
                k.fork.map_or_else(|| "no change both nodes share was found".into(), |f| format!("after change {f}"));
            text.push_str(&format!(
                "\n% {} changes ({} rows) this node made were not on {} ({fork}): the copy replaced them.\n% They are kept in {} under the data directory: 'show failover divergence' lists them.",
                k.entries, k.rows, self.peer, k.file
            ));
        }
        text
    }
}

pub fn failover_sync(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let target = args.host("HOST").cloned().ok_or_else(|| CmdError::Failed("missing HOST".into()))?;
    let Ctx { node, console, .. } = ctx;
    let want = if args.has("full") { SyncKind::Full } else { SyncKind::Incremental };
    let result = sync_from(node, &target, want, &mut |line| console.progress(Some(line)));
    console.progress(None);
    match result {
        Ok(report) => Ok(Reply::show(report)),
        Err(e) => Err(CmdError::Failed(format!("Sync failed: {e}"))),
    }
}

#[derive(Tabled)]
struct Row<'a> {
    #[tabled(rename = "Started (UTC)")]
    started: &'a str,
    #[tabled(rename = "Seconds")]
    seconds: String,
    #[tabled(rename = "Peer")]
    peer: &'a str,
    #[tabled(rename = "Kind")]
    kind: &'a str,
    #[tabled(rename = "Result")]
    result: &'a str,
    #[tabled(rename = "Bytes")]
    bytes: i64,
    #[tabled(rename = "Rows")]
    rows: i64,
    #[tabled(rename = "Detail")]
    detail: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct History(Vec<SyncRecord>);

impl Text for History {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No sync has run on this node.".into();
        }
        let rows: Vec<Row> = self
            .0
            .iter()
            .map(|r| Row {
                started: &r.started_at,
                seconds: r.seconds.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
                peer: &r.peer,
                kind: r.kind.as_str(),
                result: r.result.as_str(),
                bytes: r.bytes,
                rows: r.rows,
                detail: &r.detail,
            })
            .collect();
        table(&rows)
    }
}

pub fn show_sync_history(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let last = args.int("ENTRIES").and_then(|n| u64::try_from(n).ok());
    Ok(Reply::show(History(ctx.node.store.sync_history(last)?)))
}
