//! The daemon's outbox sender: takes due entries from the outbox one at a time (mails,
//! and event hooks' webhook calls and commands), delivers them, and records each
//! attempt. A failed attempt is retried after a delay that doubles
//! (from [`FIRST_RETRY`] up to [`LAST_RETRY`]); after [`ATTEMPTS`] the mail is marked
//! failed. Held notifications and hook calls (past the hourly cap) go out as one digest
//! per event and recipient once the oldest has waited [`DIGEST_AFTER`]. It runs on a
//! thread of its own, so SMTP, a webhook or a hook's program never holds up HA work.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use super::smtp::{self, Smtp};
use crate::store::{Channel, Delivery, Store, now_millis};

/// Delay before the first retry.
pub const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest delay between retries.
pub const LAST_RETRY: Duration = Duration::from_secs(600);
/// Attempts before a mail is given up (about a day with the delays above).
pub const ATTEMPTS: u32 = 150;
/// How long held notifications wait before they go out as one digest.
pub const DIGEST_AFTER: Duration = Duration::from_secs(900);

/// [`DIGEST_AFTER`], or `CORESH_TEST_DIGEST_SECONDS` (tests cannot wait a quarter hour).
fn digest_window() -> Duration {
    std::env::var("CORESH_TEST_DIGEST_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(DIGEST_AFTER, Duration::from_secs)
}

/// How often the outbox is looked at when nothing is due.
const POLL: Duration = Duration::from_millis(500);

/// Starts the sender; it ends when `stop` turns true.
pub fn spawn(data_dir: PathBuf, stop: watch::Receiver<bool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("mail-sender".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(subsystem = "notify", error = %e, "cannot start the mail sender");
                return;
            }
        };
        runtime.block_on(run(data_dir, stop));
    })
}

async fn run(data_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut store = match Store::open(&data_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(subsystem = "notify", error = %e, "cannot open the outbox; no mail will be sent");
            return;
        }
    };
    let window = digest_window();
    loop {
        let before = chrono::Utc::now() - chrono::Duration::from_std(window).unwrap_or_default();
        match store.roll_digests(&before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), super::digest) {
            Ok(0) => {}
            Ok(n) => tracing::info!(subsystem = "notify", digests = n, "held notifications rolled into digests"),
            Err(e) => tracing::warn!(subsystem = "notify", error = %e, "cannot roll the digests"),
        }
        let due = store.next_due(&now_millis());
        match due {
            Ok(Some(mail)) => {
                deliver(&mut store, &data_dir, &mail).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(subsystem = "notify", error = %e, "cannot read the outbox"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn deliver(store: &mut Store, data_dir: &std::path::Path, mail: &Delivery) {
    let outcome = match mail.channel {
        Channel::Mail => {
            let smtp = match store.settings() {
                Ok(map) => Smtp::from_map(&map),
                Err(e) => {
                    tracing::warn!(subsystem = "notify", error = %e, "cannot read the SMTP settings");
                    return;
                }
            };
            smtp::send(&smtp, data_dir, &mail.recipient, &mail.subject, &mail.body).await.map_err(|e| e.to_string())
        }
        Channel::Webhook => super::hook::post(&mail.recipient, hook_event(mail), &mail.body).await,
        Channel::Command => super::hook::run(&mail.recipient, hook_event(mail), &mail.body).await,
    };
    let recorded = match outcome {
        Ok(answer) => {
            tracing::info!(subsystem = "notify", id = mail.id, channel = mail.channel.as_str(), event = %mail.event, to = %mail.recipient, %answer, "delivered");
            store.delivered(mail.id, &answer)
        }
        Err(e) => {
            let attempts = mail.attempts + 1;
            let retry = (attempts < ATTEMPTS).then(|| {
                let delay = FIRST_RETRY.saturating_mul(2u32.saturating_pow(attempts.min(16) - 1)).min(LAST_RETRY);
                let at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            });
            tracing::warn!(subsystem = "notify", id = mail.id, channel = mail.channel.as_str(), attempts, error = %e, retry = ?retry, "not delivered");
            store.delivery_failed(mail.id, &e, retry.as_deref())
        }
    };
    if let Err(e) = recorded {
        tracing::error!(subsystem = "notify", id = mail.id, error = %e, "cannot record the attempt");
        tokio::time::sleep(POLL).await;
    }
}

/// The event a hook's call is about: `becomes-primary` for its digest too.
fn hook_event(d: &Delivery) -> &str {
    d.event.strip_prefix("digest:").unwrap_or(&d.event)
}
