//! The SSH server's accept loop: one task per connection, each stopped with a
//! disconnect when the node stops. Sockets get TCP_NODELAY, and TCP_QUICKACK during the
//! handshake: OpenSSH's client leaves Nagle on until it has logged in, so its small key
//! exchange packet waited for our delayed ACK of its KEXINIT, 40 ms on every login.

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

/// Reads during which ACKs go out at once (the handshake and login take about ten).
const QUICK_READS: u8 = 16;

/// A TCP stream that re-arms TCP_QUICKACK (the kernel clears it) after each of its
/// first reads.
struct QuickAck {
    inner: TcpStream,
    reads: u8,
}

impl QuickAck {
    fn new(inner: TcpStream) -> QuickAck {
        let stream = QuickAck { inner, reads: 0 };
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
    mut stop: watch::Receiver<bool>,
) {
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
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(subsystem = "ssh", error = %e, "cannot set TCP_NODELAY");
        }
        let handler = server.new_client(Some(peer));
        let (config, mut stop) = (config.clone(), stop.clone());
        tokio::spawn(async move {
            let session = match russh::server::run_stream(config, QuickAck::new(socket), handler).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(subsystem = "ssh", %peer, error = %e, "connection setup failed");
                    return;
                }
            };
            let handle = session.handle();
            tokio::select! {
                ended = session => {
                    if let Err(e) = ended {
                        tracing::debug!(subsystem = "ssh", %peer, error = %e, "session ended with an error");
                    }
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
