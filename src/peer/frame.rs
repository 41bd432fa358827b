//! How messages travel: each is one line of JSON, at most its [`Message::MAX`] bytes; a
//! store's or a file's bytes follow their header raw, exactly as many as it announced.
//! [`Framed`] does this once, over any [`Link`] (the SSH channel, client or server side),
//! and every way it can fail is a [`PeerError`].

use std::future::Future;

use super::message::Message;

/// Why talking to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(
        "{target} is not a trusted host: add its key with 'trusted-host {target} KEY' in high-availability configuration"
    )]
    Untrusted { target: String },
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error("{target} presented host key {presented}, not the trusted key {expected}")]
    WrongHostKey { target: String, presented: String, expected: String },
    #[error("{target} does not trust this node's key {ours}: add it there with 'trusted-host'")]
    OurKeyRefused { target: String, ours: String },
    #[error("{target} refused the replication channel")]
    ChannelRefused { target: String },
    #[error("{target} did not answer in time")]
    Timeout { target: String },
    #[error("{target} broke the protocol: {reason}")]
    Protocol { target: String, reason: String },
    #[error("{target} answered with a hello this node cannot read ({reason}): does it run another release?")]
    BadHello { target: String, reason: String },
    #[error("{0}")]
    Local(String),
}

impl PeerError {
    /// Whether this says the peer did not answer (it may be down), rather than that a
    /// configuration keeps the two nodes from talking (trust, keys, releases).
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            PeerError::Unreachable { .. }
                | PeerError::Timeout { .. }
                | PeerError::ChannelRefused { .. }
                | PeerError::Protocol { .. }
        )
    }
}

/// Bytes each way between two nodes: the SSH channel, client or server side.
pub trait Link: Send {
    /// Sends `bytes`.
    fn send(&mut self, bytes: Vec<u8>) -> impl Future<Output = Result<(), PeerError>> + Send;
    /// The next bytes that arrived; `None` once the other side has ended.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, PeerError>> + Send;
    /// Ends this side.
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Messages over a [`Link`].
pub struct Framed<L> {
    link: L,
    /// Bytes received and not read yet.
    buffer: Vec<u8>,
    /// Whether the other side has ended.
    ended: bool,
    /// Who is at the other end, for messages.
    target: String,
}

/// One message as it goes on the wire: its JSON and a newline.
pub fn encode(message: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).unwrap_or_default();
    line.push(b'\n');
    line
}

impl<L: Link> Framed<L> {
    /// Messages over `link`, whose other end is `target`.
    pub fn new(link: L, target: &str) -> Framed<L> {
        Framed { link, buffer: Vec::new(), ended: false, target: target.to_string() }
    }

    /// Who is at the other end.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The link the frames go over.
    pub fn link(&self) -> &L {
        &self.link
    }

    fn protocol(&self, reason: impl Into<String>) -> PeerError {
        PeerError::Protocol { target: self.target.clone(), reason: reason.into() }
    }

    /// Sends one message.
    pub async fn send<T: Message>(&mut self, message: &T) -> Result<(), PeerError> {
        self.link.send(encode(message)).await
    }

    /// Sends raw bytes (a store's or a file's, after its header).
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<(), PeerError> {
        self.link.send(bytes).await
    }

    /// Waits for more bytes; false once the other side has ended.
    async fn fill(&mut self) -> Result<bool, PeerError> {
        if self.ended {
            return Ok(false);
        }
        match self.link.recv().await? {
            Some(bytes) => {
                self.buffer.extend_from_slice(&bytes);
                Ok(true)
            }
            None => {
                self.ended = true;
                Ok(false)
            }
        }
    }

    /// The next message, or `None` when the other side ended cleanly before one began.
    pub async fn recv_or_end<T: Message>(&mut self) -> Result<Option<T>, PeerError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                if end > T::MAX {
                    return Err(self.protocol(format!("a message of {end} bytes, more than {}", T::MAX)));
                }
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                let message =
                    serde_json::from_slice(&line[..end]).map_err(|e| self.protocol(format!("bad message: {e}")))?;
                return Ok(Some(message));
            }
            if self.buffer.len() > T::MAX {
                return Err(self.protocol(format!("a message longer than {} bytes", T::MAX)));
            }
            if !self.fill().await? {
                return match self.buffer.is_empty() {
                    true => Ok(None),
                    false => Err(self.protocol("the connection ended inside a message")),
                };
            }
        }
    }

    /// The next message; the other side ending first is a refusal of what was asked.
    pub async fn recv<T: Message>(&mut self) -> Result<T, PeerError> {
        match self.recv_or_end().await? {
            Some(message) => Ok(message),
            None => Err(PeerError::ChannelRefused { target: self.target.clone() }),
        }
    }

    /// Reads exactly `n` raw bytes, handing them to `sink` as they come; `n` sizes
    /// nothing.
    pub async fn recv_bytes(
        &mut self,
        mut n: u64,
        mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> Result<(), PeerError> {
        while n > 0 {
            if self.buffer.is_empty() && !self.fill().await? {
                return Err(self.protocol(format!("connection ended with {n} bytes missing")));
            }
            let take = usize::try_from(n).unwrap_or(usize::MAX).min(self.buffer.len());
            sink(&self.buffer[..take]).map_err(|e| PeerError::Local(format!("cannot store what came: {e}")))?;
            self.buffer.drain(..take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Ends this side.
    pub async fn close(self) {
        self.link.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer::message::{Request, TestBack};

    /// A link that plays back what was queued in chunks, and records what is sent.
    struct Scripted {
        incoming: std::collections::VecDeque<Vec<u8>>,
        sent: Vec<u8>,
    }

    impl Link for Scripted {
        async fn send(&mut self, bytes: Vec<u8>) -> Result<(), PeerError> {
            self.sent.extend(bytes);
            Ok(())
        }
        async fn recv(&mut self) -> Result<Option<Vec<u8>>, PeerError> {
            Ok(self.incoming.pop_front())
        }
        async fn close(self) {}
    }

    fn framed(chunks: &[&[u8]]) -> Framed<Scripted> {
        let incoming = chunks.iter().map(|c| c.to_vec()).collect();
        Framed::new(Scripted { incoming, sent: Vec::new() }, "core-a:22")
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn messages_split_anywhere_come_back_whole_and_bytes_follow() {
        let mut f = framed(&[b"{\"op\":\"test-b", b"ack\"}\nAB", b"CD{\"ok\":true,\"detail\":\"x\"}\n"]);
        block(async {
            assert_eq!(f.recv::<Request>().await.unwrap(), Request::TestBack);
            let mut got = Vec::new();
            f.recv_bytes(4, |b| {
                got.extend_from_slice(b);
                Ok(())
            })
            .await
            .unwrap();
            assert_eq!(got, b"ABCD");
            assert!(f.recv::<TestBack>().await.unwrap().ok);
            assert!(f.recv_or_end::<TestBack>().await.unwrap().is_none(), "a clean end");
        });
    }

    #[test]
    fn too_long_unknown_or_cut_messages_are_protocol_errors() {
        let long = vec![b'x'; TestBack::MAX + 10];
        assert!(matches!(block(framed(&[&long]).recv::<TestBack>()), Err(PeerError::Protocol { .. })));
        assert!(block(framed(&[b"{\"op\":\"format-disk\"}\n"]).recv::<Request>()).is_err());
        assert!(matches!(block(framed(&[b"{\"op\":"]).recv::<Request>()), Err(PeerError::Protocol { .. })));
        assert!(matches!(block(framed(&[]).recv::<Request>()), Err(PeerError::ChannelRefused { .. })));
        let mut cut = framed(&[b"AB"]);
        assert!(block(cut.recv_bytes(4, |_| Ok(()))).is_err());
    }
}
