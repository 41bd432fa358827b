//! The node's own show commands: version, clock, running configuration and audit.
//! Each builds a typed, serialisable result; the shell renders it as text or, after
//! `| json`, as JSON.

use chrono::Utc;
use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::report::{CmdError, Reply, Text, fields, table};
use crate::store::{AuditEntry, SCHEMA_VERSION, Store};

/// How many audit entries `show audit` prints unless told otherwise.
const AUDIT_DEFAULT: u64 = 100;

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Version {
    software: String,
    version: &'static str,
    schema_version: i64,
    sqlite: &'static str,
    node_id: String,
    hostname: String,
    data_dir: String,
}

impl Text for Version {
    fn text(&self) -> String {
        fields(&[
            ("Software", format!("{} {}", self.software, self.version)),
            ("Schema version", self.schema_version.to_string()),
            ("SQLite", self.sqlite.to_string()),
            ("Host name", self.hostname.clone()),
            ("Node id", self.node_id.clone()),
            ("Data directory", self.data_dir.clone()),
        ])
    }
}

pub fn show_version(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(Version {
        software: "coresh".into(),
        version: env!("CARGO_PKG_VERSION"),
        schema_version: SCHEMA_VERSION,
        sqlite: Store::sqlite_version(),
        node_id: ctx.node.id.clone(),
        hostname: ctx.settings()?.hostname,
        data_dir: ctx.node.data_dir.display().to_string(),
    }))
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Clock {
    utc: String,
    unix_ms: i64,
}

impl Text for Clock {
    fn text(&self) -> String {
        chrono::DateTime::from_timestamp_millis(self.unix_ms)
            .map(|t| t.format("%H:%M:%S%.3f UTC %a %b %d %Y").to_string())
            .unwrap_or_else(|| self.utc.clone())
    }
}

pub fn show_clock(_: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let now = Utc::now();
    Ok(Reply::show(Clock {
        utc: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        unix_ms: now.timestamp_millis(),
    }))
}

pub(super) fn last(args: &Args) -> Option<u64> {
    args.int("ENTRIES").and_then(|n| u64::try_from(n).ok())
}

pub fn show_running_config(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let settings = ctx.settings()?;
    let enrollment = ctx.node.core()?.setting(crate::coredb::ENROLLMENT_SECRET)?;
    let owned = crate::shared::owned_lines(&ctx.node.store.settings()?);
    let users = ctx.node.core()?.local_users()?;
    Ok(Reply::show(super::running_config(&settings, owned, &users, enrollment.as_deref())))
}

#[derive(Tabled)]
struct AuditRow<'a> {
    #[tabled(rename = "Time (UTC)")]
    at: &'a str,
    #[tabled(rename = "User")]
    user: &'a str,
    #[tabled(rename = "Source")]
    source: &'a str,
    #[tabled(rename = "Mode")]
    mode: &'a str,
    #[tabled(rename = "Command")]
    command: &'a str,
    #[tabled(rename = "Outcome")]
    outcome: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Audit(Vec<AuditEntry>);

impl Text for Audit {
    fn text(&self) -> String {
        let rows: Vec<AuditRow> = self
            .0
            .iter()
            .map(|e| AuditRow {
                at: &e.at,
                user: &e.user,
                source: &e.source,
                mode: &e.mode,
                command: &e.command,
                outcome: &e.outcome,
            })
            .collect();
        table(&rows)
    }
}

pub fn show_audit(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(Audit(ctx.node.store.audit(last(args).unwrap_or(AUDIT_DEFAULT))?)))
}
