//! The notification outbox: a mail is written here, durably, before anything tries to
//! send it; the daemon's sender takes the due ones, and records each attempt. Nothing
//! is lost to a down SMTP server or a restart. Every change of a mail's state says
//! which state it changes from, so two writers (the sender, a shell holding a mail for
//! a digest) can never both act on one mail: a mail is held from the start or never,
//! and only a pending mail becomes sent or failed.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, now_millis};

/// One mail of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mail {
    pub id: i64,
    pub created_at: String,
    /// What raised it (e.g. `failover`, `sync-failed`, `test`).
    pub event: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// `pending`, `sent`, `failed` (given up), `held` (for the next digest) or
    /// `digested` (sent as part of one).
    pub status: String,
    pub attempts: u32,
    /// When the sender tries next (pending mails).
    pub next_attempt: String,
    pub last_error: String,
    pub sent_at: Option<String>,
}

impl Store {
    /// Queues a mail, synced to disk before this returns; returns its id.
    pub fn queue_mail(&mut self, event: &str, recipient: &str, subject: &str, body: &str) -> Result<i64, StoreError> {
        self.insert_mail("pending", event, recipient, subject, body)
    }

    /// Keeps a mail back for the next digest of its event: written `held` in the first
    /// place, so the sender never sees it pending.
    pub fn hold_mail(&mut self, event: &str, recipient: &str, subject: &str, body: &str) -> Result<i64, StoreError> {
        self.insert_mail("held", event, recipient, subject, body)
    }

    fn insert_mail(
        &mut self,
        status: &str,
        event: &str,
        recipient: &str,
        subject: &str,
        body: &str,
    ) -> Result<i64, StoreError> {
        self.durably(|tx| {
            let now = now_millis();
            tx.execute(
                "INSERT INTO outbox (created_at, event, recipient, subject, body, next_attempt, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?1, ?6)",
                params![now, event, recipient, subject, body, status],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Rolls the held mails of each event whose oldest was held before `before` into
    /// one pending digest mail, made by `compose` from them, in one transaction; the
    /// held ones become `digested`. Returns how many digests were queued.
    pub fn roll_digests(
        &mut self,
        before: &str,
        compose: impl Fn(&str, &[Mail]) -> (String, String),
    ) -> Result<usize, StoreError> {
        // The sender asks twice a second: only a due digest is worth a synced write.
        let due: Option<String> = self
            .conn()
            .prepare_cached("SELECT min(created_at) FROM outbox WHERE status = 'held'")?
            .query_row([], |r| r.get(0))?;
        if due.is_none_or(|oldest| oldest.as_str() > before) {
            return Ok(0);
        }
        self.durably(|tx| {
            let events: Vec<String> = tx
                .prepare("SELECT event FROM outbox WHERE status = 'held' GROUP BY event HAVING min(created_at) <= ?1")?
                .query_map([before], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            for event in &events {
                let held: Vec<Mail> = tx
                    .prepare(&format!("SELECT {COLUMNS} FROM outbox WHERE status = 'held' AND event = ?1 ORDER BY id"))?
                    .query_map([event], mail)?
                    .collect::<Result<_, _>>()?;
                let Some(first) = held.first() else { continue };
                let (subject, body) = compose(event, &held);
                let now = now_millis();
                tx.execute(
                    "INSERT INTO outbox (created_at, event, recipient, subject, body, next_attempt)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?1)",
                    params![now, format!("digest:{event}"), first.recipient, subject, body],
                )?;
                tx.execute("UPDATE outbox SET status = 'digested' WHERE status = 'held' AND event = ?1", [event])?;
            }
            Ok(events.len())
        })
    }

    /// The oldest pending mail due at `now` (RFC 3339), if any.
    pub fn next_due_mail(&self, now: &str) -> Result<Option<Mail>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt <= ?1 ORDER BY id LIMIT 1"
            ))?
            .query_row([now], mail)
            .optional()?)
    }

    /// When the next pending mail is due, if any is pending.
    pub fn next_mail_due_at(&self) -> Result<Option<String>, StoreError> {
        Ok(self.conn().query_row("SELECT min(next_attempt) FROM outbox WHERE status = 'pending'", [], |r| r.get(0))?)
    }

    /// Records a delivery.
    pub fn mail_sent(&mut self, id: i64, answer: &str) -> Result<(), StoreError> {
        self.durably(|tx| {
            tx.execute(
                "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?2, last_error = ?3
                  WHERE id = ?1 AND status = 'pending'",
                params![id, now_millis(), answer],
            )?;
            Ok(())
        })
    }

    /// Records a failed attempt: retried at `retry_at`, or given up when `None`.
    pub fn mail_failed(&mut self, id: i64, error: &str, retry_at: Option<&str>) -> Result<(), StoreError> {
        self.durably(|tx| {
            match retry_at {
                Some(at) => tx.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt = ?3
                      WHERE id = ?1 AND status = 'pending'",
                    params![id, error, at],
                )?,
                None => tx.execute(
                    "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2
                      WHERE id = ?1 AND status = 'pending'",
                    params![id, error],
                )?,
            };
            Ok(())
        })
    }

    /// The outbox, newest first; `last` keeps only the newest mails.
    pub fn mails(&self, last: Option<u64>) -> Result<Vec<Mail>, StoreError> {
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt =
            self.conn().prepare_cached(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1"))?;
        let rows = stmt.query_map([limit], mail)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// How many mails of `event` were queued to be sent on their own since `since`.
    pub fn mails_since(&self, event: &str, since: &str) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM outbox WHERE event = ?1 AND created_at >= ?2 AND status IN ('pending', 'sent', 'failed')",
            params![event, since],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

const COLUMNS: &str =
    "id, created_at, event, recipient, subject, body, status, attempts, next_attempt, last_error, sent_at";

fn mail(r: &rusqlite::Row) -> rusqlite::Result<Mail> {
    Ok(Mail {
        id: r.get(0)?,
        created_at: r.get(1)?,
        event: r.get(2)?,
        recipient: r.get(3)?,
        subject: r.get(4)?,
        body: r.get(5)?,
        status: r.get(6)?,
        attempts: r.get(7)?,
        next_attempt: r.get(8)?,
        last_error: r.get(9)?,
        sent_at: r.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_held_while_the_sender_runs_is_never_sent() {
        let dir = tempfile::tempdir().unwrap();
        let mut shell = Store::open(dir.path()).unwrap();
        let path = dir.path().to_path_buf();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let running = stop.clone();
        // The daemon's sender, as fast as it can: take what is due, mark it sent.
        let sender = std::thread::spawn(move || {
            let mut daemon = Store::open(&path).unwrap();
            let mut sent = 0;
            while !running.load(std::sync::atomic::Ordering::Relaxed) {
                let far = "9999-12-31T00:00:00.000Z";
                if let Some(mail) = daemon.next_due_mail(far).unwrap() {
                    daemon.mail_sent(mail.id, "250 ok").unwrap();
                    sent += 1;
                }
            }
            sent
        });
        for n in 0..200 {
            let subject = format!("held {n}");
            shell.hold_mail("sync-failed", "ops@example.com", &subject, "body").unwrap();
            if n % 10 == 0 {
                shell.queue_mail("sync-failed", "ops@example.com", "on its own", "body").unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let mails = shell.mails(None).unwrap();
        assert!(
            mails.iter().filter(|m| m.subject.starts_with("held")).all(|m| m.status == "held" && m.sent_at.is_none())
        );
        assert_eq!(sent, 20, "only the queued mails went out");
        // A late report about a mail that is no longer pending changes nothing.
        let held = mails.iter().find(|m| m.status == "held").unwrap().id;
        shell.mail_sent(held, "250 ok").unwrap();
        shell.mail_failed(held, "gone", None).unwrap();
        assert!(shell.mails(None).unwrap().iter().any(|m| m.id == held && m.status == "held"));
    }
}
