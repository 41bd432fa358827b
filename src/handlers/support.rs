//! `show tech-support`: everything a support engineer asks for first, in one output —
//! the show commands of [`SECTIONS`], run as they would be at this prompt, then the
//! databases' integrity. Secrets are removed (hashes and sealed passwords included);
//! `| json` gives each section's own JSON.

use std::path::Path;

use regex::Regex;
use serde::Serialize;

use super::Ctx;
use crate::cli::Args;
use crate::report::{CmdError, Reply, Report, Text};

/// The show commands, in the order they are printed.
const SECTIONS: &[&str] = &[
    "show version",
    "show clock",
    "show failover",
    "show running-config",
    "show trusted-hosts",
    "show failover history last 50",
    "show sync history last 20",
    "show failover divergence",
    "show logging high-availability last 100",
    "show audit last 100",
    "show sessions",
    "show notifications last 20",
    "show core summary",
    "show users",
];

/// The databases checked, by file name.
const DATABASES: &[&str] = &["system.db", "core.db", "atlas.db"];

/// One section: a command and what it printed (or why it failed).
#[derive(Serialize, schemars::JsonSchema)]
struct Section {
    command: String,
    #[serde(skip)]
    text: String,
    /// The command's own JSON; `null` when it failed.
    result: serde_json::Value,
    error: Option<String>,
}

/// `PRAGMA quick_check` of one database file.
#[derive(Serialize, schemars::JsonSchema)]
struct Integrity {
    file: String,
    bytes: u64,
    /// `ok`, or what SQLite found.
    quick_check: String,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct TechSupport {
    hostname: String,
    generated_at: String,
    sections: Vec<Section>,
    integrity: Vec<Integrity>,
}

impl Text for TechSupport {
    fn text(&self) -> String {
        let mut out = vec![format!("coresh tech-support: {} at {}", self.hostname, self.generated_at)];
        for s in &self.sections {
            out.push(String::new());
            out.push(format!("------------------ {} ------------------", s.command));
            out.push(match &s.error {
                Some(e) => format!("% {e}"),
                None => s.text.trim_end().to_string(),
            });
        }
        out.push(String::new());
        out.push("------------------ database integrity ------------------".into());
        for i in &self.integrity {
            out.push(format!("{:<10} {:>12} bytes  quick_check: {}", i.file, i.bytes, i.quick_check));
        }
        out.join("\n")
    }
}

/// Removes what a secret leaves in configuration: hashes and sealed passwords.
fn redact(text: &str) -> String {
    static PATTERN: std::sync::OnceLock<Option<Regex>> = std::sync::OnceLock::new();
    match PATTERN.get_or_init(|| Regex::new(r"\b(hashed|sealed) [^\s\x22]+").ok()) {
        Some(re) => re.replace_all(text, "$1 <removed>").into_owned(),
        None => text.to_string(),
    }
}

fn integrity(dir: &Path, file: &str) -> Option<Integrity> {
    let path = dir.join(file);
    let bytes = std::fs::metadata(&path).ok()?.len();
    let check = crate::store::open_read_only(&path)
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)));
    let quick_check = check.unwrap_or_else(|e| format!("cannot check: {e}"));
    Some(Integrity { file: file.to_string(), bytes, quick_check })
}

/// Runs one show command as the operator would at this prompt.
fn run(ctx: &mut Ctx, line: &str) -> Result<Box<dyn Report>, CmdError> {
    ctx.run(line)?.report.ok_or_else(|| CmdError::Failed("nothing to show".into()))
}

pub fn show_tech_support(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let sections = SECTIONS
        .iter()
        .map(|line| match run(ctx, line) {
            Ok(report) => {
                let json = redact(&report.json().to_string());
                Section {
                    command: line.to_string(),
                    text: redact(&report.text()),
                    result: serde_json::from_str(&json).unwrap_or(serde_json::Value::Null),
                    error: None,
                }
            }
            Err(e) => Section {
                command: line.to_string(),
                text: String::new(),
                result: serde_json::Value::Null,
                error: Some(e.to_string()),
            },
        })
        .collect();
    let dir = ctx.node.data_dir.clone();
    Ok(Reply::show(TechSupport {
        hostname: ctx.settings()?.hostname,
        generated_at: crate::store::now_text(),
        sections,
        integrity: DATABASES.iter().filter_map(|f| integrity(&dir, f)).collect(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_and_sealed_passwords_are_removed() {
        let text = "enable secret hashed $argon2id$v=19$m=19456$abc\nsmtp user u password sealed QUJD+/=\nhostname a";
        assert_eq!(
            super::redact(text),
            "enable secret hashed <removed>\nsmtp user u password sealed <removed>\nhostname a"
        );
        assert_eq!(
            super::redact(r#"{"l":"username x password hashed $a$b"}"#),
            r#"{"l":"username x password hashed <removed>"}"#
        );
    }
}
