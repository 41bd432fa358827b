//! What the syslog sender keeps (`serve::syslog`): for each server, the last HA log and
//! audit entries it was sent (so a restart or an outage of a TCP server loses nothing
//! within the bound), how many were sent and dropped, and its last error; and the
//! entries after a cursor.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, now_text};

/// How many entries of each log wait for a server at most; older ones are dropped.
pub const BACKLOG: i64 = 10_000;

/// How far one server has been sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SyslogCursor {
    /// `HOST:PORT/udp|tcp`.
    pub target: String,
    pub ha_log_id: i64,
    pub audit_id: i64,
    pub sent: i64,
    /// Entries skipped because the backlog passed its bound.
    pub dropped: i64,
    pub error: Option<String>,
    pub updated_at: String,
}

/// An entry to send: which log, its id, when, how severe, and its text with fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `ha` or `audit`.
    pub log: &'static str,
    pub id: i64,
    pub at: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    pub text: String,
    /// Structured data: (name, value).
    pub fields: Vec<(&'static str, String)>,
}

const COLUMNS: &str = "target, ha_log_id, audit_id, sent, dropped, error, updated_at";

fn cursor(r: &rusqlite::Row) -> rusqlite::Result<SyslogCursor> {
    Ok(SyslogCursor {
        target: r.get(0)?,
        ha_log_id: r.get(1)?,
        audit_id: r.get(2)?,
        sent: r.get(3)?,
        dropped: r.get(4)?,
        error: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

impl Store {
    /// The cursor of `target`; a new one starts at the newest entries (history is not
    /// sent again).
    pub fn syslog_cursor(&self, target: &str) -> Result<SyslogCursor, StoreError> {
        let found = self
            .conn()
            .query_row(&format!("SELECT {COLUMNS} FROM syslog_cursors WHERE target = ?1"), [target], cursor)
            .optional()?;
        if let Some(c) = found {
            return Ok(c);
        }
        let max = |table: &str| -> Result<i64, StoreError> {
            Ok(self.conn().query_row(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), [], |r| r.get(0))?)
        };
        Ok(SyslogCursor {
            target: target.to_string(),
            ha_log_id: max("ha_log")?,
            audit_id: max("audit")?,
            updated_at: now_text(),
            ..SyslogCursor::default()
        })
    }

    pub fn put_syslog_cursor(&mut self, c: &SyslogCursor) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO syslog_cursors (target, ha_log_id, audit_id, sent, dropped, error, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (target) DO UPDATE SET ha_log_id = ?2, audit_id = ?3, sent = ?4, dropped = ?5,
                 error = ?6, updated_at = ?7",
            params![c.target, c.ha_log_id, c.audit_id, c.sent, c.dropped, c.error, now_text()],
        )?;
        Ok(())
    }

    /// Every cursor, by target.
    pub fn syslog_cursors(&self) -> Result<Vec<SyslogCursor>, StoreError> {
        let mut stmt = self.conn().prepare_cached(&format!("SELECT {COLUMNS} FROM syslog_cursors ORDER BY target"))?;
        let rows = stmt.query_map([], cursor)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many entries of each log come after the cursor.
    pub fn syslog_behind(&self, c: &SyslogCursor) -> Result<(i64, i64), StoreError> {
        let count = |table: &str, id: i64| -> Result<i64, StoreError> {
            Ok(self.conn().query_row(&format!("SELECT COUNT(*) FROM {table} WHERE id > ?1"), [id], |r| r.get(0))?)
        };
        Ok((count("ha_log", c.ha_log_id)?, count("audit", c.audit_id)?))
    }

    /// Up to `limit` entries of each log after the cursor, oldest first.
    pub fn log_lines_after(&self, c: &SyslogCursor, limit: i64) -> Result<Vec<LogLine>, StoreError> {
        let mut lines = Vec::new();
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, at, level, message FROM ha_log WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let ha = stmt.query_map(params![c.ha_log_id, limit], |r| {
            Ok(LogLine {
                log: "ha",
                id: r.get(0)?,
                at: r.get(1)?,
                level: r.get(2)?,
                text: r.get(3)?,
                fields: Vec::new(),
            })
        })?;
        for line in ha {
            lines.push(line?);
        }
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, at, user, source, mode, command, outcome FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let audit = stmt.query_map(params![c.audit_id, limit], |r| {
            let outcome: String = r.get(6)?;
            Ok(LogLine {
                log: "audit",
                id: r.get(0)?,
                at: r.get(1)?,
                level: if outcome == "ok" { "info".into() } else { "warning".into() },
                text: r.get(5)?,
                fields: vec![("user", r.get(2)?), ("source", r.get(3)?), ("mode", r.get(4)?), ("outcome", outcome)],
            })
        })?;
        for line in audit {
            lines.push(line?);
        }
        lines.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
        Ok(lines)
    }
}

impl Store {
    /// Moves the cursor past all but the newest `bound` entries of each log; returns how
    /// many it skipped (added to its dropped count).
    pub fn syslog_keep_newest(&self, c: &mut SyslogCursor, bound: i64) -> Result<i64, StoreError> {
        let (ha, audit) = self.syslog_behind(c)?;
        let mut skipped = 0;
        for (table, behind, id) in [("ha_log", ha, &mut c.ha_log_id), ("audit", audit, &mut c.audit_id)] {
            if behind > bound {
                let skip = behind - bound;
                *id = self.conn().query_row(
                    &format!("SELECT id FROM {table} WHERE id > ?1 ORDER BY id LIMIT 1 OFFSET ?2"),
                    params![*id, skip - 1],
                    |r| r.get(0),
                )?;
                skipped += skip;
            }
        }
        c.dropped += skipped;
        Ok(skipped)
    }
}

impl Store {
    /// Starts `target`'s cursor at the newest entries, unless it has one: the server gets
    /// what comes from now on.
    pub fn start_syslog_cursor(&mut self, target: &str) -> Result<(), StoreError> {
        let c = self.syslog_cursor(target)?;
        self.conn().execute(
            "INSERT OR IGNORE INTO syslog_cursors (target, ha_log_id, audit_id, updated_at) VALUES (?1, ?2, ?3, ?4)",
            params![c.target, c.ha_log_id, c.audit_id, now_text()],
        )?;
        Ok(())
    }

    /// Forgets `target`'s cursor (the server was removed).
    pub fn forget_syslog_cursor(&mut self, target: &str) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM syslog_cursors WHERE target = ?1", [target])?;
        Ok(())
    }
}
