//! The outbox: a notification mail or an event hook's call is written here, durably,
//! before anything tries to deliver it; the daemon's sender takes the due ones, and
//! records each attempt. Nothing is lost to a down SMTP server, a down webhook receiver
//! or a restart. Every change of an entry's state says which state it changes from, so
//! two writers (the sender, a shell holding an entry for a digest) can never both act on
//! one entry: an entry is held from the start or never, and only a pending entry becomes
//! sent or failed.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{Store, StoreError, now_millis};

/// How an entry is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A mail to the address in `recipient`, through the SMTP server.
    Mail,
    /// An HTTP POST of the JSON body to the URL in `recipient`.
    Webhook,
    /// The program at the path in `recipient`, the JSON body on its standard input.
    Command,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Mail => "mail",
            Channel::Webhook => "webhook",
            Channel::Command => "command",
        }
    }

    fn parse(text: &str) -> Option<Channel> {
        [Channel::Mail, Channel::Webhook, Channel::Command].into_iter().find(|c| c.as_str() == text)
    }
}

/// One entry of the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Delivery {
    pub id: i64,
    pub created_at: String,
    pub channel: Channel,
    /// What raised it (e.g. `became-primary`, `sync-failed`, `test`).
    pub event: String,
    /// The mail address, the webhook's URL or the command's path.
    pub recipient: String,
    pub subject: String,
    /// The mail's text, or the event hook's JSON.
    pub body: String,
    /// `pending`, `sent`, `failed` (given up), `held` (for the next digest) or
    /// `digested` (sent as part of one).
    pub status: String,
    pub attempts: u32,
    /// When the sender tries next (pending entries).
    pub next_attempt: String,
    pub last_error: String,
    pub sent_at: Option<String>,
}

/// An entry to queue.
#[derive(Debug, Clone, Copy)]
pub struct NewDelivery<'a> {
    pub channel: Channel,
    pub event: &'a str,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

/// Entries of one event for one recipient over one channel queued an hour at most to go
/// out on their own; more are held for the next digest, so a flapping pair floods nobody.
pub const PER_HOUR: u64 = 5;

/// Queues `entry` in the caller's transaction, so that it commits with the change that
/// raised it: pending, or held for the next digest when [`PER_HOUR`] of its kind went out
/// on their own within the hour. Returns its id and whether it was held.
pub fn queue_capped_in(conn: &Connection, entry: &NewDelivery) -> Result<(i64, bool), StoreError> {
    let hour_ago =
        (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let held = queued_since(conn, entry.channel, entry.recipient, entry.event, &hour_ago)? >= PER_HOUR;
    Ok((queue_in(conn, entry, held)?, held))
}

/// Queues `entry` in the caller's transaction (pending, or `held` for the next digest);
/// returns its id.
pub fn queue_in(conn: &Connection, entry: &NewDelivery, held: bool) -> Result<i64, StoreError> {
    let now = now_millis();
    conn.prepare_cached(
        "INSERT INTO outbox (created_at, channel, event, recipient, subject, body, next_attempt, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?1, ?7)",
    )?
    .execute(params![
        now,
        entry.channel.as_str(),
        entry.event,
        entry.recipient,
        entry.subject,
        entry.body,
        if held { "held" } else { "pending" }
    ])?;
    Ok(conn.last_insert_rowid())
}

/// How many entries of `event` for `recipient` over `channel` were queued to be sent on
/// their own since `since` (the hourly cap counts them).
fn queued_since(
    conn: &Connection,
    channel: Channel,
    recipient: &str,
    event: &str,
    since: &str,
) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM outbox WHERE channel = ?1 AND recipient = ?2 AND event = ?3 AND created_at >= ?4
            AND status IN ('pending', 'sent', 'failed')",
        )?
        .query_row(params![channel.as_str(), recipient, event, since], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// What the outbox holds for one event hook (a channel, a recipient and an event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HookTally {
    pub sent: u64,
    /// Pending or held for a digest.
    pub waiting: u64,
    pub failed: u64,
    /// When the last one was delivered.
    pub last_sent: Option<String>,
    /// The newest entry's last error, if it has one.
    pub last_error: Option<String>,
}

impl Store {
    /// Queues a mail, synced to disk before this returns; returns its id.
    pub fn queue_mail(&mut self, event: &str, recipient: &str, subject: &str, body: &str) -> Result<i64, StoreError> {
        let entry = NewDelivery { channel: Channel::Mail, event, recipient, subject, body };
        self.durably(|tx| queue_in(tx, &entry, false))
    }

    /// Rolls the held entries of each event (for one channel and recipient) whose oldest
    /// was held before `before` into one pending digest entry, made by `compose` from
    /// them, in one transaction; the held ones become `digested`. Returns how many
    /// digests were queued.
    pub fn roll_digests(
        &mut self,
        before: &str,
        compose: impl Fn(&str, &[Delivery]) -> (String, String),
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
            let groups: Vec<(String, String, String)> = tx
                .prepare(
                    "SELECT channel, recipient, event FROM outbox WHERE status = 'held'
                      GROUP BY channel, recipient, event HAVING min(created_at) <= ?1",
                )?
                .query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            for (channel, recipient, event) in &groups {
                let held: Vec<Delivery> = tx
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM outbox
                          WHERE status = 'held' AND channel = ?1 AND recipient = ?2 AND event = ?3 ORDER BY id"
                    ))?
                    .query_map([channel, recipient, event], delivery)?
                    .collect::<Result<_, _>>()?;
                let Some(first) = held.first() else { continue };
                let (subject, body) = compose(event, &held);
                let digest = format!("digest:{event}");
                let entry =
                    NewDelivery { channel: first.channel, event: &digest, recipient, subject: &subject, body: &body };
                queue_in(tx, &entry, false)?;
                tx.execute(
                    "UPDATE outbox SET status = 'digested'
                      WHERE status = 'held' AND channel = ?1 AND recipient = ?2 AND event = ?3",
                    [channel, recipient, event],
                )?;
            }
            Ok(groups.len())
        })
    }

    /// The oldest pending entry due at `now` (RFC 3339), if any.
    pub fn next_due(&self, now: &str) -> Result<Option<Delivery>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt <= ?1 ORDER BY id LIMIT 1"
            ))?
            .query_row([now], delivery)
            .optional()?)
    }

    /// Records a delivery.
    pub fn delivered(&mut self, id: i64, answer: &str) -> Result<(), StoreError> {
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
    pub fn delivery_failed(&mut self, id: i64, error: &str, retry_at: Option<&str>) -> Result<(), StoreError> {
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

    /// The outbox, newest first; `last` keeps only the newest entries.
    pub fn deliveries(&self, last: Option<u64>) -> Result<Vec<Delivery>, StoreError> {
        let limit = last.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut stmt =
            self.conn().prepare_cached(&format!("SELECT {COLUMNS} FROM outbox ORDER BY id DESC LIMIT ?1"))?;
        let rows = stmt.query_map([limit], delivery)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What the outbox holds for the hook calling `recipient` over `channel` on `event`
    /// (its digests included).
    pub fn hook_tally(&self, channel: Channel, recipient: &str, event: &str) -> Result<HookTally, StoreError> {
        let digest = format!("digest:{event}");
        let (sent, waiting, failed, last_sent): (i64, i64, i64, Option<String>) = self
            .conn()
            .prepare_cached(
                "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status IN ('pending', 'held')),
                        count(*) FILTER (WHERE status = 'failed'), max(sent_at)
                   FROM outbox WHERE channel = ?1 AND recipient = ?2 AND event IN (?3, ?4)",
            )?
            .query_row(params![channel.as_str(), recipient, event, digest], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
        let last_error: Option<String> = self
            .conn()
            .prepare_cached(
                "SELECT last_error FROM outbox WHERE channel = ?1 AND recipient = ?2 AND event IN (?3, ?4)
                    AND status != 'sent' AND last_error != '' ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![channel.as_str(), recipient, event, digest], |r| r.get(0))
            .optional()?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(HookTally { sent: count(sent), waiting: count(waiting), failed: count(failed), last_sent, last_error })
    }
}

const COLUMNS: &str =
    "id, created_at, channel, event, recipient, subject, body, status, attempts, next_attempt, last_error, sent_at";

fn delivery(r: &rusqlite::Row) -> rusqlite::Result<Delivery> {
    let channel: String = r.get(2)?;
    Ok(Delivery {
        id: r.get(0)?,
        created_at: r.get(1)?,
        channel: Channel::parse(&channel)
            .ok_or_else(|| rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, channel.into()))?,
        event: r.get(3)?,
        recipient: r.get(4)?,
        subject: r.get(5)?,
        body: r.get(6)?,
        status: r.get(7)?,
        attempts: r.get(8)?,
        next_attempt: r.get(9)?,
        last_error: r.get(10)?,
        sent_at: r.get(11)?,
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
                if let Some(mail) = daemon.next_due(far).unwrap() {
                    daemon.delivered(mail.id, "250 ok").unwrap();
                    sent += 1;
                }
            }
            sent
        });
        for n in 0..200 {
            let subject = format!("held {n}");
            let entry = NewDelivery {
                channel: Channel::Mail,
                event: "sync-failed",
                recipient: "ops@example.com",
                subject: &subject,
                body: "body",
            };
            shell.durably(|tx| queue_in(tx, &entry, true)).unwrap();
            if n % 10 == 0 {
                shell.queue_mail("sync-failed", "ops@example.com", "on its own", "body").unwrap();
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = sender.join().unwrap();
        let mails = shell.deliveries(None).unwrap();
        assert!(
            mails.iter().filter(|m| m.subject.starts_with("held")).all(|m| m.status == "held" && m.sent_at.is_none())
        );
        assert_eq!(sent, 20, "only the queued mails went out");
        // A late report about a mail that is no longer pending changes nothing.
        let held = mails.iter().find(|m| m.status == "held").unwrap().id;
        shell.delivered(held, "250 ok").unwrap();
        shell.delivery_failed(held, "gone", None).unwrap();
        assert!(shell.deliveries(None).unwrap().iter().any(|m| m.id == held && m.status == "held"));
    }
}
