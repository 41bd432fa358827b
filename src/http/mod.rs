//! The node's HTTP endpoints: load-balancer status pages (the guide's exact strings),
//! a JSON status for peers and tools, and the device API; and ([`client`]) asking
//! another node's status page. One accept loop that only accepts: each connection gets
//! a task of its own (TLS handshake included), served by hyper (HTTP/1.1, keep-alive)
//! with a timer, so the TLS handshake, the wait for headers (an idle connection too) and
//! the body are bounded in time; at most [`MAX_PER_CLIENT`] connections per client and
//! [`MAX_CONNECTIONS`] in all; shutdown lets in-flight requests finish.

pub mod client;
mod device;
mod guard;
pub mod hold;
pub mod metrics;
mod status;
pub mod tls;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::clients::Slots;
use crate::coredb::writer::Writer;
use crate::node::view::NodeView;

/// Most connections served at once; more wait in the accept queue.
const MAX_CONNECTIONS: usize = 4096;
/// How long shutdown waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(10);

/// A response with a complete body.
pub type Resp = Response<Full<Bytes>>;

/// What every request handler shares.
pub struct AppState {
    /// The live view of the node.
    pub view: watch::Receiver<Arc<NodeView>>,
    /// The Core data writer.
    pub writer: Writer,
    /// The last enrollment secret that verified: (stored hash, SHA-256 of the secret).
    pub enrollment_ok: std::sync::Mutex<Option<(String, [u8; 32])>>,
    /// Wrong enrollment secrets per source address.
    pub enrollment_guard: guard::EnrollmentGuard,
    /// Device writes, held during a switchover.
    pub hold: Arc<hold::WriteHold>,
    /// What the daemon counts for `/metrics`.
    pub metrics: Arc<metrics::Counters>,
    /// The node's data directory: `/metrics` reads its counts there at each scrape.
    pub data_dir: std::path::PathBuf,
}

/// Connections one client (an IPv4 address, an IPv6 /64) may hold open at once.
pub const MAX_PER_CLIENT: u32 = 64;

/// Serves HTTP (HTTPS with `tls`) on `listener` until `shutdown` turns true, then
/// waits (up to a bound) for the requests in flight. `timeout` bounds a TLS handshake,
/// the wait for a request's headers (and so an idle keep-alive connection) and the
/// reading of its body.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let slots = Slots::new(MAX_PER_CLIENT);
    loop {
        let permit = tokio::select! {
            _ = shutdown.changed() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(subsystem = "http", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = slots.take(peer.ip()) else {
            tracing::debug!(subsystem = "http", %peer, "refused: {MAX_PER_CLIENT} connections of this client are open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (watcher, state, tls) = (graceful.watcher(), state.clone(), tls.clone());
        // Everything a client can stall (the TLS handshake included) happens in the
        // connection's own task, never in this loop.
        tokio::spawn(async move {
            let held = (permit, slot);
            match tls {
                None => serve_connection(watcher, stream, state, peer, timeout).await,
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve_connection(watcher, stream, state, peer, timeout).await,
                    Ok(Err(e)) => tracing::debug!(subsystem = "http", %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(subsystem = "http", %peer, "TLS handshake timed out"),
                },
            }
            drop(held);
        });
    }
    tracing::info!(subsystem = "http", "no longer accepting; finishing requests in flight");
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!(subsystem = "http", "requests still in flight after {DRAIN:?}; closing");
    }
}

/// Serves one connection, tracked for graceful shutdown.
async fn serve_connection<I>(
    watcher: hyper_util::server::graceful::Watcher,
    io: I,
    state: Arc<AppState>,
    peer: std::net::SocketAddr,
    timeout: Duration,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&state, req, peer, timeout).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(subsystem = "http", %peer, error = %e, "connection ended");
    }
}

async fn route(state: &AppState, req: Request<Incoming>, peer: std::net::SocketAddr, timeout: Duration) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let resp = match (method.clone(), path.as_str()) {
        (Method::GET | Method::HEAD, "/status/status.html") => status::status_page(state),
        (Method::GET | Method::HEAD, "/hastatus.html") => status::ha_status_page(state),
        (Method::GET | Method::HEAD, "/status.json") => status::status_json(state),
        (Method::GET | Method::HEAD, "/metrics") => metrics::metrics(state, peer.ip()).await,
        (Method::POST, "/api/v1/devices/register") => device::register(state, req, peer.ip(), timeout).await,
        (Method::POST, "/api/v1/devices/checkin") => {
            let answer = device::check_in(state, req, timeout).await;
            state.metrics.check_in(answer.status());
            answer
        }
        (_, "/status/status.html" | "/hastatus.html" | "/status.json") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "use GET")
        }
        (_, "/api/v1/devices/register" | "/api/v1/devices/checkin") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    };
    tracing::debug!(subsystem = "http", %method, %path, status = resp.status().as_u16());
    resp
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
    resp
}

/// A JSON error `{"error": message}`.
pub fn error(status: StatusCode, message: &str) -> Resp {
    json(status, &serde_json::json!({ "error": message }))
}
