//! The SSH server's accept loop: one task per connection, each stopped with a
//! disconnect when the node stops. A client that has not logged in is held within
//! bounds (OpenSSH's LoginGraceTime and MaxStartups in spirit): it must log in within the
//! login grace time (the identification string and key exchange included) or it is
//! dropped, and at most [`MAX_UNAUTHENTICATED`] such connections are open in all, at most
//! [`MAX_UNAUTHENTICATED_PER_CLIENT`] per client (an IPv4 address, an IPv6 /64); past
//! either a new connection is closed at once. Sockets get TCP_NODELAY, and TCP_QUICKACK
//! during the handshake: OpenSSH's client leaves Nagle on until it has logged in, so its
//! small key exchange packet waited for our delayed ACK of its KEXINIT, 40 ms on every
//! login.

use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use russh::Disconnect;
use russh::server::Server as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::server::SshServer;
use crate::clients::{Place, Slots};

/// Connections not logged in yet, in all.
pub const MAX_UNAUTHENTICATED: usize = 100;
/// Connections not logged in yet, per client.
pub const MAX_UNAUTHENTICATED_PER_CLIENT: u32 = 10;

/// Reads during which ACKs go out at once (the handshake and login take about ten).
const QUICK_READS: u8 = 16;

/// A way to end a connection from outside its session: its next read fails, and the
/// session (which russh runs on a task of its own) ends and closes the socket. A
/// disconnect message would wait behind a key exchange the client never finishes.
#[derive(Default)]
struct Kill {
    killed: std::sync::atomic::AtomicBool,
    reader: std::sync::Mutex<Option<std::task::Waker>>,
}

impl Kill {
    fn now(&self) {
        self.killed.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(waker) = self.reader.lock().ok().and_then(|mut w| w.take()) {
            waker.wake();
        }
    }
}

/// A TCP stream that re-arms TCP_QUICKACK (the kernel clears it) after each of its
/// first reads, and that [`Kill`] can end.
struct QuickAck {
    inner: TcpStream,
    reads: u8,
    kill: Arc<Kill>,
}

impl QuickAck {
    fn new(inner: TcpStream, kill: Arc<Kill>) -> QuickAck {
        let stream = QuickAck { inner, reads: 0, kill };
        stream.arm();
        stream
    }

    fn arm(&self) {
        let on: libc::c_int = 1;
        // SAFETY: setsockopt on a socket this stream owns, with a c_int it reads.
        unsafe {
            libc::setsockopt(
                self.inner.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                std::ptr::from_ref(&on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl AsyncRead for QuickAck {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if let Ok(mut reader) = self.kill.reader.lock() {
            *reader = Some(cx.waker().clone());
        }
        if self.kill.killed.load(std::sync::atomic::Ordering::SeqCst) {
            return Poll::Ready(Err(std::io::ErrorKind::ConnectionAborted.into()));
        }
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && self.reads < QUICK_READS {
            self.reads += 1;
            self.arm();
        }
        polled
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener` until `stop` turns true; then every open
/// connection is told the node is stopping.
pub async fn run(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    mut server: SshServer,
    login_grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let all = Arc::new(tokio::sync::Semaphore::new(MAX_UNAUTHENTICATED));
    let per_client = Slots::new(MAX_UNAUTHENTICATED_PER_CLIENT);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopping(&mut stop) => return,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: do not spin.
                tracing::warn!(subsystem = "ssh", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let place = match (all.clone().try_acquire_owned(), per_client.take(peer.ip())) {
            (Ok(permit), Some(slot)) => (permit, slot),
            _ => {
                tracing::warn!(subsystem = "ssh", %peer, "refused: too many connections that have not logged in");
                continue;
            }
        };
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(subsystem = "ssh", error = %e, "cannot set TCP_NODELAY");
        }
        let pending = Arc::new(Place::new(place.0, place.1));
        let handler = server.new_client(Some(peer)).awaiting_login(pending.clone());
        let (config, mut stop) = (config.clone(), stop.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + login_grace;
            let kill = Arc::new(Kill::default());
            let stream = QuickAck::new(socket, kill.clone());
            let started = tokio::time::timeout_at(deadline, russh::server::run_stream(config, stream, handler));
            let session = match started.await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(subsystem = "ssh", %peer, error = %e, "connection setup failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(subsystem = "ssh", %peer, "dropped: no identification within the login grace time");
                    return;
                }
            };
            let handle = session.handle();
            let grace = async {
                tokio::time::sleep_until(deadline).await;
                if pending.held() {
                    return;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                ended = session => {
                    if let Err(e) = ended {
                        tracing::debug!(subsystem = "ssh", %peer, error = %e, "session ended with an error");
                    }
                }
                () = grace => {
                    tracing::info!(subsystem = "ssh", %peer, "dropped: not logged in within the login grace time");
                    kill.now();
                }
                () = stopping(&mut stop) => {
                    let _ = handle.disconnect(Disconnect::ByApplication, "node stopping".into(), String::new()).await;
                }
            }
        });
    }
}

/// Returns once `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
