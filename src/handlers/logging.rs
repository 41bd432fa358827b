//! `logging host HOST [port PORT] [udp|tcp]`, `no logging host HOST [port PORT]`
//! and `show logging hosts`: the syslog servers the daemon sends the HA log and the
//! audit log to (`serve::syslog`), and how far each has been sent.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::ha::LogHost;
use crate::host::HostPort;
use crate::report::{CmdError, Reply, Text, table};

fn named(args: &Args) -> Result<HostPort, CmdError> {
    let mut host: HostPort = args.host("HOST").cloned().ok_or_else(|| CmdError::Failed("A host is needed".into()))?;
    if let Some(port) = args.int("LOGPORT").and_then(|p| u16::try_from(p).ok()) {
        host.port = Some(port);
    }
    Ok(host)
}

pub fn logging_host(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let host = LogHost { host: named(args)?, tcp: args.text("transport") == Some("tcp") };
    let (remove, target) = (args.has("no"), host.target());
    // One entry per server: `no` takes it away whatever its transport.
    let (name, port) = (host.host.host.clone(), host.port());
    let same = |h: &LogHost| h.host.host == name && h.port() == port;
    let mut found = false;
    ctx.update(|s| {
        found = s.logging_hosts.iter().any(same);
        s.logging_hosts.retain(|h| !same(h));
        if !remove {
            s.logging_hosts.push(host);
        }
    })?;
    if remove {
        for transport in ["udp", "tcp"] {
            let gone = LogHost { host: HostPort { host: name.clone(), port: Some(port) }, tcp: transport == "tcp" };
            ctx.node.store.forget_syslog_cursor(&gone.target())?;
        }
    } else {
        ctx.node.store.start_syslog_cursor(&target)?;
    }
    Ok(match (remove, found) {
        (true, false) => Reply::done().info(format!("No logging host {target}; nothing changed.")),
        (true, true) => Reply::done(),
        (false, _) => Reply::done().info(format!("The HA log and the audit log go to {target} from their next entry.")),
    })
}

/// One server as `show logging hosts` shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Server {
    target: String,
    sent: i64,
    /// Entries not sent yet.
    behind: i64,
    dropped: i64,
    error: Option<String>,
    updated_at: Option<String>,
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "Server")]
    target: String,
    #[tabled(rename = "Sent")]
    sent: i64,
    #[tabled(rename = "Waiting")]
    behind: i64,
    #[tabled(rename = "Dropped")]
    dropped: i64,
    #[tabled(rename = "Last error")]
    error: String,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Servers(Vec<Server>);

impl Text for Servers {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No logging host: the logs stay on this node.".into();
        }
        let rows: Vec<Row> = self
            .0
            .iter()
            .map(|s| Row {
                target: s.target.clone(),
                sent: s.sent,
                behind: s.behind,
                dropped: s.dropped,
                error: s.error.clone().unwrap_or_else(|| "-".into()),
            })
            .collect();
        let bound = crate::store::SYSLOG_BACKLOG;
        format!("{}\nAt most {bound} entries of each log wait for a server; older ones are dropped.", table(&rows))
    }
}

pub fn show_logging_hosts(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    let mut servers = Vec::new();
    for host in ctx.settings()?.logging_hosts {
        let c = ctx.node.store.syslog_cursor(&host.target())?;
        let (ha, audit) = ctx.node.store.syslog_behind(&c)?;
        let known = !c.updated_at.is_empty() && (c.sent > 0 || c.error.is_some() || c.dropped > 0);
        servers.push(Server {
            target: c.target,
            sent: c.sent,
            behind: ha + audit,
            dropped: c.dropped,
            error: c.error,
            updated_at: known.then_some(c.updated_at),
        });
    }
    Ok(Reply::show(Servers(servers)))
}
