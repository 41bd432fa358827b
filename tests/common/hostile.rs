//! A hostile primary for tests: an SSH server (russh, as coresh's own) that accepts any
//! peer key on the replication channel, answers the hello as a coresh primary would, and
//! then answers a sync request with whatever bytes the test scripted (a header claiming
//! sizes the stream does not hold, frames claiming lengths past their end, ...). It runs
//! on a thread of its own on a loopback port until dropped.

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::PrivateKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};

/// A running hostile primary.
pub struct HostilePrimary {
    pub addr: SocketAddr,
    /// Its host key, as `trusted-host` takes it.
    pub public_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HostilePrimary {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct Script {
    /// What it sends after the puller's request line.
    answer: Arc<Vec<u8>>,
    hello: Arc<String>,
}

struct Handler {
    script: Script,
    buffer: Vec<u8>,
    greeted: bool,
}

impl russh::server::Handler for Handler {
    type Error = russh::Error;

    async fn auth_publickey_offered(&mut self, _: &str, _: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn auth_publickey(&mut self, _: &str, _: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _: Channel<Msg>,
        reply: ChannelOpenHandle,
        _: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn data(&mut self, channel: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        self.buffer.extend_from_slice(data);
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            self.buffer.drain(..=end);
            if !self.greeted {
                self.greeted = true;
                session.data(channel, format!("{}\n", self.script.hello).into_bytes())?;
            } else {
                session.data(channel, self.script.answer.to_vec())?;
                session.eof(channel)?;
            }
        }
        Ok(())
    }
}

impl HostilePrimary {
    /// Starts a hostile primary that answers a sync request with `answer`.
    pub fn start(dir: &std::path::Path, answer: Vec<u8>) -> HostilePrimary {
        let key: PrivateKey = coresh::node::keys::host_key(dir).expect("a host key");
        let public_key = coresh::node::keys::openssh_line(key.public_key());
        let hello = serde_json::json!({
            "software": "coresh",
            "version": env!("CARGO_PKG_VERSION"),
            "schema": coresh::store::SCHEMA_VERSION,
            "core_schema": coresh::coredb::SCHEMA_VERSION,
            "node_id": "0badc0de0badc0de",
            "hostname": "hostile",
            "mode": "primary",
            "epoch": 0,
            "node_status": "active",
            "time_ms": chrono::Utc::now().timestamp_millis(),
        })
        .to_string();
        let script = Script { answer: Arc::new(answer), hello: Arc::new(hello) };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let config = Arc::new(russh::server::Config { keys: vec![key], ..Default::default() });
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let handler = Handler { script: script.clone(), buffer: Vec::new(), greeted: false };
                            let config = config.clone();
                            tokio::spawn(async move {
                                if let Ok(session) = russh::server::run_stream(config, socket, handler).await {
                                    let _ = session.await;
                                }
                            });
                        }
                    }
                }
            });
        });
        HostilePrimary { addr, public_key, stop: Some(stop), thread: Some(thread) }
    }
}
