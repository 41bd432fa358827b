//! The audit log: every command run on this node, with who, from where, in which mode
//! and how it ended. Secrets never reach it (the shell redacts them first).

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It ran and succeeded.
    Ok,
    /// It ran and failed.
    Failed,
    /// It did not parse.
    Syntax,
    /// It is not permitted in that mode, or a secret was wrong.
    Denied,
}

impl Outcome {
    /// Name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Syntax => "syntax",
            Outcome::Denied => "denied",
        }
    }
}

/// One audited command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When it ran (RFC 3339, UTC).
    pub at: String,
    /// Who ran it.
    pub user: String,
    /// From where (`console`, `batch`, an address).
    pub source: String,
    /// The mode it was typed in.
    pub mode: String,
    /// The line, secrets removed.
    pub command: String,
    /// How it ended.
    pub outcome: String,
}

impl Store {
    /// Appends to the audit log.
    pub fn audit_append(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO audit (at, user, source, mode, command, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![e.at, e.user, e.source, e.mode, e.command, e.outcome])?;
        Ok(())
    }

    /// The newest `last` audit entries, oldest first.
    pub fn audit(&self, last: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT at, user, source, mode, command, outcome FROM
               (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
        )?;
        let rows = stmt.query_map([i64::try_from(last).unwrap_or(i64::MAX)], |r| {
            Ok(AuditEntry {
                at: r.get(0)?,
                user: r.get(1)?,
                source: r.get(2)?,
                mode: r.get(3)?,
                command: r.get(4)?,
                outcome: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
