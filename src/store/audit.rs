//! The audit log: every command run on this node, with who, from where, in which mode
//! and how it ended. Secrets never reach it (the shell redacts them first). Each field
//! is cut to a bound (a client chooses the user name of a failed login), and the log
//! keeps entries for its retention (`audit retention`, 365 days unless set): older ones
//! are removed every [`PRUNE_EVERY`] entries, never younger ones.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// The setting that holds the retention (`365 days`, `100000 rows`).
pub const RETENTION: &str = "audit.retention";
/// Entries written between two removals of expired ones.
pub const PRUNE_EVERY: i64 = 100;
/// Characters kept of each field: user, source, mode, command, outcome.
const FIELD_CHARS: [usize; 5] = [64, 160, 32, 4200, 16];

/// How long the audit log keeps its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    /// Entries younger than this many days.
    Days(u32),
    /// The newest this many entries.
    Rows(u32),
}

impl Default for Retention {
    fn default() -> Self {
        Retention::Days(365)
    }
}

impl Retention {
    /// The retention the settings hold (the default when unset or unreadable).
    pub fn from_map(map: &BTreeMap<String, String>) -> Retention {
        let parse = |t: &str| {
            let (n, unit) = t.split_once(' ')?;
            let n = n.parse().ok().filter(|n| *n > 0)?;
            match unit {
                "days" => Some(Retention::Days(n)),
                "rows" => Some(Retention::Rows(n)),
                _ => None,
            }
        };
        map.get(RETENTION).and_then(|t| parse(t)).unwrap_or_default()
    }

    /// As stored and as configuration mode takes it after `audit retention`.
    pub fn text(self) -> String {
        match self {
            Retention::Days(n) => format!("{n} days"),
            Retention::Rows(n) => format!("{n} rows"),
        }
    }
}

/// `text` cut to `max` characters (marked when cut).
fn bounded(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// Appends to the audit log, each field cut to its bound; every [`PRUNE_EVERY`]
    /// entries, removes those past the retention.
    pub fn audit_append(&self, e: &AuditEntry) -> Result<(), StoreError> {
        let [user, source, mode, command, outcome] = FIELD_CHARS;
        let id = self
            .conn()
            .prepare_cached(
                "INSERT INTO audit (at, user, source, mode, command, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .insert(params![
                e.at,
                bounded(&e.user, user),
                bounded(&e.source, source),
                bounded(&e.mode, mode),
                bounded(&e.command, command),
                bounded(&e.outcome, outcome)
            ])?;
        if id % PRUNE_EVERY == 0 {
            self.audit_prune(Retention::from_map(&self.settings()?), chrono::Utc::now())?;
        }
        Ok(())
    }

    /// Removes the entries past `retention` at `now`; returns how many.
    pub fn audit_prune(&self, retention: Retention, now: chrono::DateTime<chrono::Utc>) -> Result<usize, StoreError> {
        let conn = self.conn();
        Ok(match retention {
            Retention::Days(days) => {
                let cutoff =
                    (now - chrono::Duration::days(i64::from(days))).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                conn.prepare_cached("DELETE FROM audit WHERE at < ?1")?.execute([cutoff])?
            }
            Retention::Rows(rows) => conn
                .prepare_cached("DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?1")?
                .execute([i64::from(rows)])?,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: &str, user: &str) -> AuditEntry {
        AuditEntry {
            at: at.into(),
            user: user.into(),
            source: "console".into(),
            mode: "enable".into(),
            command: "show clock".into(),
            outcome: "ok".into(),
        }
    }

    #[test]
    fn fields_are_bounded_and_the_retention_keeps_what_is_young_enough() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.audit_append(&entry("2020-01-01T00:00:00Z", &"x".repeat(50_000))).unwrap();
        let user = &store.audit(1).unwrap()[0].user;
        assert_eq!(user.chars().count(), 64);
        assert!(user.ends_with('…'));
        let now: chrono::DateTime<chrono::Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        store.audit_append(&entry("2026-11-30T00:00:00Z", "recent")).unwrap();
        assert_eq!(store.audit_prune(Retention::Days(30), now).unwrap(), 1, "the 2020 entry");
        assert_eq!(store.audit(10).unwrap().len(), 1);
        for _ in 0..5 {
            store.audit_append(&entry("2026-11-30T00:00:00Z", "more")).unwrap();
        }
        assert_eq!(store.audit_prune(Retention::Rows(3), now).unwrap(), 3);
        assert_eq!(store.audit(10).unwrap().len(), 3, "the newest three stay");
        assert_eq!(store.audit_prune(Retention::Days(30), now).unwrap(), 0, "none is older than the retention");
    }

    #[test]
    fn the_retention_setting_reads_back_and_defaults() {
        let map = |v: &str| BTreeMap::from([(RETENTION.to_string(), v.to_string())]);
        assert_eq!(Retention::from_map(&BTreeMap::new()), Retention::Days(365));
        assert_eq!(Retention::from_map(&map("30 days")), Retention::Days(30));
        assert_eq!(Retention::from_map(&map("5000 rows")).text(), "5000 rows");
        assert_eq!(Retention::from_map(&map("0 rows")), Retention::default());
    }
}
