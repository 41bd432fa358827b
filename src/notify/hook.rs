//! Delivering one event hook's call: an HTTP(S) POST of the event's JSON to a webhook,
//! or a program run with the JSON on its standard input. Each is bounded in time
//! ([`WEBHOOK_TIMEOUT`], [`COMMAND_TIMEOUT`]) and in what is read back, so a hung
//! receiver or script holds the sender up for a bounded while only. Success is a 2xx
//! answer or exit status 0; anything else is retried by the sender.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Longest a webhook call may take, connection included.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a hook command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Most of an answer or of a command's output kept for the outbox's record.
const KEEP: usize = 512;

/// POSTs `body` to `url`; the answer's status line on success.
pub async fn post(url: &str, event: &str, body: &str) -> Result<String, String> {
    match tokio::time::timeout(WEBHOOK_TIMEOUT, post_now(url, event, body)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", WEBHOOK_TIMEOUT.as_secs())),
    }
}

async fn post_now(url: &str, event: &str, body: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let host = parsed.host_str().ok_or("the URL names no host")?.trim_matches(['[', ']']).to_string();
    let port = parsed.port_or_known_default().ok_or("the URL names no port")?;
    let authority = match parsed.port() {
        Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
        None => parsed.host_str().unwrap_or_default().to_string(),
    };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let delivery = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let request = Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, concat!("coresh/", env!("CARGO_PKG_VERSION")))
        .header("X-Coresh-Event", event)
        .header("X-Coresh-Delivery", delivery)
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    if parsed.scheme() == "https" {
        let name = ServerName::try_from(host.clone()).map_err(|_| format!("'{host}' is not a TLS server name"))?;
        let tls = TlsConnector::from(public_tls()?).connect(name, tcp).await.map_err(|e| format!("TLS: {e}"))?;
        send(tls, request).await
    } else {
        send(tcp, request).await
    }
}

/// TLS on the one crypto stack (rustls on ring), trusting the public roots.
fn public_tls() -> Result<Arc<ClientConfig>, String> {
    let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await.map_err(|e| e.to_string());
    let answer = match response {
        Ok(response) => {
            let status = response.status();
            let text = match Limited::new(response.into_body(), KEEP).collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
                Err(_) => String::new(),
            };
            let line = format!("HTTP {}{}{}", status.as_u16(), if text.is_empty() { "" } else { ": " }, text);
            if status.is_success() { Ok(line) } else { Err(line) }
        }
        Err(e) => Err(e),
    };
    driver.abort();
    answer
}

/// Reads `from` to its end, keeping the first [`KEEP`] bytes (the rest is read and
/// dropped, so a talkative program never blocks on a full pipe).
async fn keep(from: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut from) = from else { return kept };
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let room = KEEP.saturating_sub(kept.len()).min(n);
        kept.extend_from_slice(&buf[..room]);
    }
    kept
}

/// Runs the program at `path` with `body` on its standard input and the event in its
/// environment (`CORESH_EVENT`, `CORESH_NODE`, `CORESH_EPOCH`, `CORESH_REASON`,
/// `CORESH_DELIVERY`); what it printed last, on exit status 0.
pub async fn run(path: &str, event: &str, body: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{path} is not an executable file"));
    }
    let json: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let field = |k: &str| match &json[k] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut child = tokio::process::Command::new(path)
        .env("CORESH_EVENT", event)
        .env("CORESH_NODE", field("node"))
        .env("CORESH_EPOCH", field("epoch"))
        .env("CORESH_REASON", field("reason"))
        .env("CORESH_DELIVERY", field("id"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{path}: {e}"))?;
    let outcome = tokio::time::timeout(COMMAND_TIMEOUT, async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that does not read its input is not a failure.
            let _ = stdin.write_all(body.as_bytes()).await;
        }
        let (out, err) = tokio::join!(keep(child.stdout.take()), keep(child.stderr.take()));
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, out, err))
    })
    .await;
    let (status, out, err) = match outcome {
        Ok(r) => r?,
        Err(_) => return Err(format!("{path} did not finish within {} s; killed", COMMAND_TIMEOUT.as_secs())),
    };
    let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().lines().last().unwrap_or_default().to_string();
    if status.success() {
        Ok(format!("exit 0{}", if out.is_empty() { String::new() } else { format!(": {}", said(&out)) }))
    } else {
        let text = if err.is_empty() { said(&out) } else { said(&err) };
        Err(format!("{status}{}", if text.is_empty() { String::new() } else { format!(": {text}") }))
    }
}
