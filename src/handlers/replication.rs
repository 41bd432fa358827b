//! `show replication`: how replication runs now, on either end. The stream from the
//! primary (the same rows `show failover` shows) with its throughput and its
//! commit-to-apply lag over the last minute, read from the seconds the daemon recorded
//! (`replication::lag`); the streams this node feeds and its synchronous gate; and this
//! node's own write rate over the last minute, from its change log; and the checked
//! copy it sends full copies from (`replication::checked`), when it keeps one.

use chrono::Utc;
use serde::Serialize;

use super::Ctx;
use super::replication_view::Replication;
use crate::cli::Args;
use crate::replication::checked;
use crate::replication::lag::{LagSummary, summarize};
use crate::report::{CmdError, Reply, Text, fields};

/// The window `show replication` sums.
const WINDOW_SECONDS: i64 = 60;

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Shown {
    #[serde(flatten)]
    now: Replication,
    /// The stream from the primary over the last minute (none when nothing was applied).
    last_minute: Option<LagSummary>,
    /// Changes committed on this node over the last minute (its own writes on a
    /// primary, those it applied on a standby), and their changeset bytes.
    commits_last_minute: i64,
    commit_bytes_last_minute: i64,
    /// The checked copy of the Core data this node sends full copies from, when it
    /// keeps one.
    checked_copy: Option<CheckedCopy>,
}

/// A checked copy: the change it ends at, when it was taken, its size.
#[derive(Serialize, schemars::JsonSchema)]
struct CheckedCopy {
    at_change: i64,
    taken_at: String,
    bytes: u64,
}

impl Text for Shown {
    fn text(&self) -> String {
        let mut rows = vec![("Replication", self.now.summary())];
        if let Some(m) = &self.last_minute {
            let per_s = |n: i64| n as f64 / WINDOW_SECONDS as f64;
            let ms = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| format!("{v} ms"));
            rows.push((
                "Last minute",
                format!(
                    "{} changes applied ({:.1}/s, {:.1} KiB/s); commit to apply: p50 {}, p99 {}, max {}",
                    m.entries,
                    per_s(m.entries),
                    per_s(m.bytes) / 1024.0,
                    ms(m.p50_ms),
                    ms(m.p99_ms),
                    ms(m.max_ms)
                ),
            ));
        }
        rows.extend(self.now.rows());
        if let Some(c) = &self.checked_copy {
            rows.push((
                "Checked copy",
                format!(
                    "at change {}, taken {}, {} MB: full copies to peers are sent from it and the changes after it",
                    c.at_change,
                    c.taken_at,
                    c.bytes >> 20
                ),
            ));
        }
        rows.push((
            "Commits",
            format!(
                "{} changes in the last minute ({:.1}/s, {} bytes of changesets)",
                self.commits_last_minute,
                self.commits_last_minute as f64 / WINDOW_SECONDS as f64,
                self.commit_bytes_last_minute
            ),
        ));
        let pairs: Vec<(&str, String)> = rows.into_iter().collect();
        fields(&pairs)
    }
}

pub fn show_replication(ctx: &mut Ctx, _args: &Args) -> Result<Reply, CmdError> {
    let settings = ctx.settings()?;
    let now = Utc::now();
    let core = ctx.node.core()?;
    let head = core.log_head()?.seq;
    let since = (now - chrono::Duration::seconds(WINDOW_SECONDS)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (commits, bytes) = core.log_since(&since)?;
    let seconds = ctx.node.store.lag_seconds(now.timestamp() - WINDOW_SECONDS)?;
    let last_minute = Some(summarize(&seconds)).filter(|s| s.entries > 0);
    let shown = Shown {
        now: Replication::of(&settings, &ctx.node.store, now)?.with_head(head),
        last_minute,
        commits_last_minute: commits,
        commit_bytes_last_minute: bytes,
        checked_copy: checked::recorded(&ctx.node.data_dir).map(|c| CheckedCopy {
            at_change: c.head.seq,
            taken_at: c.taken_at,
            bytes: c.size,
        }),
    };
    Ok(Reply::show(shown))
}
