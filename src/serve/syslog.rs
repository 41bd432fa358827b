//! The HA log and the audit log, sent to the syslog servers `logging host` names as
//! RFC 5424 messages (formatted by the `syslog_fmt` crate): app-name `coresh`, the
//! node's host name, MSGID `ha` or `audit`, the entry's own time, its severity, and for
//! audit entries the user, source, mode and outcome as structured data
//! (`[coresh@32473 …]`, the documentation enterprise number of RFC 5612).
//!
//! Each server has a cursor in the system database (`store::syslog`): the last entry
//! of each log it was sent. Over TCP (octet-counted frames, RFC 6587, on a kept
//! connection) the cursor moves only past what was written, so a server that is down
//! gets everything once it is back, and so does one that was down while the daemon
//! restarted. A connection the server closed is noticed before the next write. TCP
//! itself confirms nothing: what was written into a connection that then died without
//! a close (the server's machine lost) can be lost; RELP would be needed for that. The backlog is bounded ([`BACKLOG`] entries of each log): older entries
//! are dropped, counted, and shown by `show logging hosts`. Over UDP every entry is
//! sent once, whether or not anyone listens.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use syslog_fmt::v5424::{Formatter, Timestamp};
use syslog_fmt::{Facility, Severity};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

use crate::ha::LogHost;
use crate::node::view::NodeView;
use crate::store::{LogLine, SYSLOG_BACKLOG as BACKLOG, Store};

/// How often the logs are looked at.
const EVERY: Duration = Duration::from_secs(1);
/// How many entries of each log go in one round.
const BATCH: i64 = 500;
/// How long connecting or writing may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The longest message text sent (a UDP datagram must hold the whole message).
const MAX_TEXT: usize = 8 * 1024;

/// Sends until `stop`.
pub async fn run(view: watch::Receiver<Arc<NodeView>>, data_dir: PathBuf, mut stop: watch::Receiver<bool>) {
    let mut tcp: BTreeMap<String, TcpStream> = BTreeMap::new();
    let mut store: Option<Store> = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
        let s = view.borrow().settings.clone();
        tcp.retain(|target, _| s.logging_hosts.iter().any(|h| h.target() == *target));
        if s.logging_hosts.is_empty() {
            continue;
        }
        if store.is_none() {
            store = Store::open(&data_dir)
                .map_err(|e| tracing::warn!(subsystem = "syslog", error = %e, "cannot open the system database"))
                .ok();
        }
        let Some(store) = store.as_mut() else { continue };
        let formatter = syslog_fmt::v5424::Config {
            facility: Facility::Local0,
            hostname: Some(&s.hostname),
            app_name: Some("coresh"),
            proc_id: None,
        }
        .into_formatter();
        for host in &s.logging_hosts {
            if let Err(e) = send_to(store, &formatter, host, &mut tcp).await {
                tracing::warn!(subsystem = "syslog", target = %host.target(), error = %e, "cannot send the logs");
            }
        }
    }
}

/// One round for `host`: what came since its cursor, as far as it goes.
async fn send_to(
    store: &mut Store,
    formatter: &Formatter,
    host: &LogHost,
    tcp: &mut BTreeMap<String, TcpStream>,
) -> Result<(), crate::store::StoreError> {
    let target = host.target();
    let mut cursor = store.syslog_cursor(&target)?;
    let dropped = store.syslog_keep_newest(&mut cursor, BACKLOG)?;
    let lines = store.log_lines_after(&cursor, BATCH)?;
    if lines.is_empty() && dropped == 0 {
        return Ok(());
    }
    let mut error = None;
    for line in &lines {
        let message = format(formatter, line);
        let sent = if host.tcp { send_tcp(tcp, host, &message).await } else { send_udp(host, &message).await };
        if let Err(e) = &sent {
            error = Some(e.clone());
            if host.tcp {
                // Kept for the next round: nothing is lost while the server is away.
                break;
            }
        } else {
            cursor.sent += 1;
        }
        match line.log {
            "ha" => cursor.ha_log_id = line.id,
            _ => cursor.audit_id = line.id,
        }
    }
    cursor.error = error;
    store.put_syslog_cursor(&cursor)
}

/// The RFC 5424 message of `line`.
fn format(formatter: &Formatter, line: &LogLine) -> Vec<u8> {
    let severity = match line.level.as_str() {
        "error" => Severity::Err,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    };
    let mut text = line.text.as_str();
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text = &text[..end];
    }
    let params: Vec<(&str, &str)> = line.fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut out = Vec::new();
    let written = match params.is_empty() {
        true => {
            formatter.write_without_data(&mut out, severity, Timestamp::PreformattedStr(&line.at), text, Some(line.log))
        }
        false => formatter.write_with_data(
            &mut out,
            severity,
            Timestamp::PreformattedStr(&line.at),
            text,
            Some(line.log),
            [("coresh@32473", params)],
        ),
    };
    if written.is_err() {
        out.clear();
    }
    out
}

async fn resolve(host: &LogHost) -> Result<std::net::SocketAddr, String> {
    let mut found = tokio::net::lookup_host((host.host.host.as_str(), host.port()))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", host.host.host))?;
    found.next().ok_or_else(|| format!("{} has no address", host.host.host))
}

/// Writes `message` as one octet-counted frame on the connection kept for `host`.
async fn send_tcp(tcp: &mut BTreeMap<String, TcpStream>, host: &LogHost, message: &[u8]) -> Result<(), String> {
    let target = host.target();
    // A server that closed the connection (it stopped) shows as its end: a write now
    // would go into the void, so connect again first.
    if let Some(stream) = tcp.get(&target)
        && closed(stream).await
    {
        tcp.remove(&target);
    }
    if !tcp.contains_key(&target) {
        let addr = resolve(host).await?;
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("no connection to {addr} within {} s", TIMEOUT.as_secs()))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        tcp.insert(target.clone(), stream);
    }
    let Some(stream) = tcp.get_mut(&target) else { return Err("not connected".into()) };
    let mut frame = format!("{} ", message.len()).into_bytes();
    frame.extend_from_slice(message);
    let written = tokio::time::timeout(TIMEOUT, stream.write_all(&frame)).await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tcp.remove(&target);
            Err(format!("the connection broke: {e}"))
        }
        Err(_) => {
            tcp.remove(&target);
            Err(format!("the server took no data for {} s", TIMEOUT.as_secs()))
        }
    }
}

/// Whether the server closed `stream` (or it failed): it is readable at once, and a read
/// finds its end or an error. A server sends nothing, so anything else is ignored.
async fn closed(stream: &TcpStream) -> bool {
    let Ok(ready) = tokio::time::timeout(Duration::from_millis(1), stream.readable()).await else { return false };
    if ready.is_err() {
        return true;
    }
    let mut probe = [0u8; 64];
    match stream.try_read(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

async fn send_udp(host: &LogHost, message: &[u8]) -> Result<(), String> {
    let addr = resolve(host).await?;
    let local = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local).await.map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    socket.send_to(message, addr).await.map(|_| ()).map_err(|e| format!("cannot send to {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_entry_is_an_rfc_5424_message_with_its_fields() {
        let f = syslog_fmt::v5424::Config {
            facility: Facility::Local0,
            hostname: Some("core-a"),
            app_name: Some("coresh"),
            proc_id: None,
        }
        .into_formatter();
        let line = LogLine {
            log: "audit",
            id: 7,
            at: "2026-12-01T16:00:00Z".into(),
            level: "warning".into(),
            text: "failover mode primary".into(),
            fields: vec![("user", "admin".into()), ("outcome", "denied \"x\"]".into())],
        };
        let text = String::from_utf8_lossy(&format(&f, &line)).to_string();
        assert!(
            text.starts_with("<132>1 2026-12-01T16:00:00Z core-a coresh - audit [coresh@32473 user=\"admin\""),
            "{text}"
        );
        assert!(text.contains(r#"outcome="denied \"x\"\]""#), "{text}");
        assert!(text.ends_with("failover mode primary"), "{text}");
    }
}
