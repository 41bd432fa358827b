//! Notification commands: the SMTP server, sender and credentials (global
//! configuration), `notify test` (the guide's Test button) and `show notifications`.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use super::show::last;
use crate::cli::Args;
use crate::notify::Event;
use crate::notify::smtp::{self, Security, Smtp};
use crate::report::{CmdError, Reply, Text, table};
use crate::store::Delivery;

pub fn smtp_server(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let server = match args.host("HOST") {
        None => None,
        Some(h) => {
            let mut h = h.clone();
            if let Some(port) = args.int("PORT").and_then(|p| u16::try_from(p).ok()) {
                h.port = Some(port);
            }
            Some(h)
        }
    };
    let security = args.text("security").and_then(|t| t.parse::<Security>().ok()).unwrap_or(Security::Starttls);
    ctx.node.store.update_settings(|c| {
        c.insert(smtp::SERVER, server.as_ref().map(ToString::to_string));
        c.insert(smtp::SECURITY, server.as_ref().map(|_| security.as_str().to_string()));
    })?;
    Ok(Reply::done())
}

pub fn smtp_from(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let from = args.text("ADDRESS").map(str::to_string);
    ctx.node.store.update_settings(|c| {
        c.insert(smtp::FROM, from);
    })?;
    Ok(Reply::done())
}

pub fn smtp_user(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let user = args.text("USER").map(str::to_string);
    let sealed = match (args.text("PASSWORD"), args.text("SEALED")) {
        (Some(clear), _) => Some(smtp::seal(&ctx.node.data_dir, clear).map_err(CmdError::Failed)?),
        (None, Some(sealed)) => {
            // Refuse a sealed password this node cannot open, rather than fail at send time.
            smtp::unseal(&ctx.node.data_dir, sealed).map_err(|e| CmdError::Failed(format!("Sealed password: {e}")))?;
            Some(sealed.to_string())
        }
        (None, None) => None,
    };
    ctx.node.store.update_settings(|c| {
        c.insert(smtp::USER, user);
        c.insert(smtp::PASSWORD, sealed);
    })?;
    Ok(Reply::done())
}

/// What `notify test` did.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct TestSent {
    recipient: String,
    server: String,
    answer: String,
}

impl Text for TestSent {
    fn text(&self) -> String {
        format!(
            "Test notification sent to {} through {}\nServer answered: {}",
            self.recipient, self.server, self.answer
        )
    }
}

pub fn notify_test(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let settings = ctx.settings()?;
    let recipient = settings.notify_email.clone().ok_or_else(|| {
        CmdError::Failed("No notification address: 'notify email ADDRESS' in high-availability configuration".into())
    })?;
    let map = ctx.node.store.settings()?;
    let smtp = Smtp::from_map(&map);
    let (subject, body) = Event::Test.compose(&settings, &ctx.node.id);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CmdError::Failed(e.to_string()))?;
    let data_dir = ctx.node.data_dir.clone();
    let sent = runtime.block_on(smtp::send(&smtp, &data_dir, &recipient, &subject, &body));
    let server = smtp.server.as_ref().map_or_else(|| "-".into(), ToString::to_string);
    match sent {
        Ok(answer) => {
            let id = ctx.node.store.queue_mail(Event::Test.name(), &recipient, &subject, &body)?;
            ctx.node.store.delivered(id, &answer)?;
            Ok(Reply::show(TestSent { recipient, server, answer }))
        }
        Err(e) => Err(CmdError::Failed(format!("Test notification not sent: {e}"))),
    }
}

#[derive(Tabled)]
struct MailRow<'a> {
    #[tabled(rename = "Queued (UTC)")]
    at: &'a str,
    #[tabled(rename = "Event")]
    event: &'a str,
    #[tabled(rename = "Via")]
    via: &'a str,
    #[tabled(rename = "To")]
    to: &'a str,
    #[tabled(rename = "Status")]
    status: &'a str,
    #[tabled(rename = "Attempts")]
    attempts: u32,
    #[tabled(rename = "Last answer or error")]
    last: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Outbox(Vec<Delivery>);

impl Text for Outbox {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No notifications.".into();
        }
        let rows: Vec<MailRow> = self
            .0
            .iter()
            .map(|m| MailRow {
                at: &m.created_at,
                event: &m.event,
                via: m.channel.as_str(),
                to: &m.recipient,
                status: &m.status,
                attempts: m.attempts,
                last: &m.last_error,
            })
            .collect();
        table(&rows)
    }
}

pub fn show_notifications(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(Outbox(ctx.node.store.deliveries(Some(last(args).unwrap_or(100)))?)))
}
