//! The peer protocol: what two nodes say to each other ([`message`], the [`hello`]
//! first), how it travels ([`frame`]), and the [`Peer`]: one connection to a peer with a
//! verb for each exchange (`hello`, `positions`, `pull`, `follow`, `exec`, `test_back`), as
//! Litestream's replica client. It knows nothing of SSH: the transport is a
//! [`Link`], which `ssh` provides both ways, so that `ssh` and `replication` both stand
//! on this and neither on the other. [`Blocking`] gives the same verbs to callers that
//! are not async, with the one runtime they run on.

pub mod frame;
pub mod hello;
pub mod message;

pub use frame::{Framed, Link, PeerError};
pub use hello::Hello;
use message::{
    ExecAnswer, ExecRequest, HandoverAnswer, HandoverStep, Positions, RaftCall, RaftReply, Request, SharedSettings,
    SwitchoverReport, SwitchoverTo, TestBack,
};

use crate::coredb::changelog::Position;

/// The SSH subsystem that carries the protocol; peers may open nothing else.
pub const SUBSYSTEM: &str = "coresh-replication";
/// The user a peer authenticates as (with its node key).
pub const PEER_USER: &str = "coresh-peer";

/// One connection to a peer, after both hellos.
pub struct Peer<L> {
    framed: Framed<L>,
    /// What the peer said of itself.
    theirs: Hello,
    /// The peer's clock minus ours, in milliseconds: its hello's time against the middle
    /// of our send and its answer.
    clock_offset_ms: i64,
}

impl<L: Link> Peer<L> {
    /// Trades hellos on a fresh `link` to `target`: sends `ours`, reads the peer's.
    pub async fn greet(link: L, target: &str, ours: &Hello) -> Result<Peer<L>, PeerError> {
        let mut framed = Framed::new(link, target);
        let now = || chrono::Utc::now().timestamp_millis();
        let ours = Hello { time_ms: now(), ..ours.clone() };
        framed.send(&Request::Hello(ours.clone())).await?;
        let theirs: Hello = framed.recv().await.map_err(|e| match e {
            PeerError::Protocol { target, reason } => PeerError::BadHello { target, reason },
            other => other,
        })?;
        let clock_offset_ms = theirs.time_ms - (ours.time_ms + now()) / 2;
        Ok(Peer { framed, theirs, clock_offset_ms })
    }

    /// What the peer said of itself.
    pub fn hello(&self) -> &Hello {
        &self.theirs
    }

    /// The link to the peer.
    pub fn link(&self) -> &L {
        self.framed.link()
    }

    /// The peer's clock minus ours, in milliseconds.
    pub fn clock_offset_ms(&self) -> i64 {
        self.clock_offset_ms
    }

    /// Who the peer is, as it was reached.
    pub fn target(&self) -> &str {
        self.framed.target()
    }

    /// The peer's checksums over its change numbers `first..=last`.
    pub async fn positions(&mut self, first: i64, last: i64) -> Result<Positions, PeerError> {
        self.framed.send(&Request::Positions { first, last }).await?;
        self.framed.recv().await
    }

    /// Runs a line on the peer.
    pub async fn exec(&mut self, request: ExecRequest) -> Result<ExecAnswer, PeerError> {
        self.framed.send(&Request::Exec(request)).await?;
        self.framed.recv().await
    }

    /// The peer's settings that the pair must agree on.
    pub async fn shared_settings(&mut self) -> Result<SharedSettings, PeerError> {
        self.framed.send(&Request::SharedSettings).await?;
        self.framed.recv().await
    }

    /// Has the peer connect back to this node.
    pub async fn test_back(&mut self) -> Result<TestBack, PeerError> {
        self.framed.send(&Request::TestBack).await?;
        self.framed.recv().await
    }

    /// Asks the peer, a primary, to hand its role to its standby `to` (or how it would).
    pub async fn switchover(&mut self, dry_run: bool, to: Option<SwitchoverTo>) -> Result<SwitchoverReport, PeerError> {
        self.framed.send(&Request::Switchover { dry_run, to }).await?;
        self.framed.recv().await
    }

    /// One step of a handover with the peer, this node's standby.
    pub async fn handover(&mut self, step: HandoverStep) -> Result<HandoverAnswer, PeerError> {
        self.handover_send(step).await?;
        self.handover_answer().await
    }

    /// Sends one step of a handover; an error means it never left this node.
    pub async fn handover_send(&mut self, step: HandoverStep) -> Result<(), PeerError> {
        self.framed.send(&Request::Handover(step)).await
    }

    /// The peer's answer to the step sent.
    pub async fn handover_answer(&mut self) -> Result<HandoverAnswer, PeerError> {
        self.framed.recv().await
    }

    /// A call of this node's consensus engine to the peer's.
    pub async fn raft(&mut self, call: RaftCall) -> Result<RaftReply, PeerError> {
        self.framed.send(&Request::Raft { call: Box::new(call) }).await?;
        self.framed.recv().await
    }

    /// Returns once the peer, which owes no answer now, breaks off: the connection ends
    /// or fails, or a message comes that nothing asked for.
    pub async fn broke_off(&mut self) -> PeerError {
        match self.framed.recv::<HandoverAnswer>().await {
            Ok(_) => {
                PeerError::Protocol { target: self.target().to_string(), reason: "a message nothing asked for".into() }
            }
            Err(e) => e,
        }
    }

    /// Asks for a pull (`Changes` or `Snapshot`); what comes is read from the returned
    /// stream: each store's header, bytes and trailer, then the files.
    pub async fn pull(&mut self, request: &Request) -> Result<&mut Framed<L>, PeerError> {
        self.framed.send(request).await?;
        Ok(&mut self.framed)
    }

    /// Asks to follow the peer's change log from `since` (as its synchronous standby,
    /// with that timeout in milliseconds, when `synchronous`); what it feeds is read from
    /// the returned stream (and what was applied is said on it), until either side ends.
    pub async fn follow(&mut self, since: Position, synchronous: Option<u32>) -> Result<&mut Framed<L>, PeerError> {
        self.framed.send(&Request::Follow { since, synchronous }).await?;
        Ok(&mut self.framed)
    }

    /// The stream a [`Peer::pull`] is read from.
    pub fn pull_stream(&mut self) -> &mut Framed<L> {
        &mut self.framed
    }

    /// Ends the connection.
    pub async fn close(self) {
        self.framed.close().await;
    }
}

/// A [`Peer`] for callers that are not async: the same verbs, on a runtime of its own.
pub struct Blocking<L> {
    runtime: tokio::runtime::Runtime,
    peer: Peer<L>,
}

impl<L: Link> Blocking<L> {
    /// `peer`, driven on `runtime` (the one it was connected on).
    pub fn new(runtime: tokio::runtime::Runtime, peer: Peer<L>) -> Blocking<L> {
        Blocking { runtime, peer }
    }

    /// Asks one thing with `ask`, then ends the connection, whatever the answer.
    pub fn once<T>(mut self, ask: impl FnOnce(&mut Self) -> Result<T, PeerError>) -> Result<T, PeerError> {
        let answer = ask(&mut self);
        self.close();
        answer
    }

    /// What the peer said of itself.
    pub fn hello(&self) -> &Hello {
        self.peer.hello()
    }

    /// The link to the peer.
    pub fn link(&self) -> &L {
        self.peer.link()
    }

    /// See [`Peer::positions`].
    pub fn positions(&mut self, first: i64, last: i64) -> Result<Positions, PeerError> {
        self.runtime.block_on(self.peer.positions(first, last))
    }

    /// See [`Peer::exec`].
    pub fn exec(&mut self, request: ExecRequest) -> Result<ExecAnswer, PeerError> {
        self.runtime.block_on(self.peer.exec(request))
    }

    /// See [`Peer::shared_settings`].
    pub fn shared_settings(&mut self) -> Result<SharedSettings, PeerError> {
        self.runtime.block_on(self.peer.shared_settings())
    }

    /// See [`Peer::test_back`].
    pub fn test_back(&mut self) -> Result<TestBack, PeerError> {
        self.runtime.block_on(self.peer.test_back())
    }

    /// See [`Peer::switchover`].
    pub fn switchover(&mut self, dry_run: bool, to: Option<SwitchoverTo>) -> Result<SwitchoverReport, PeerError> {
        self.runtime.block_on(self.peer.switchover(dry_run, to))
    }

    /// Runs `work` with the peer on this runtime (a pull reads its stream so).
    pub fn run<T>(&mut self, work: impl AsyncFnOnce(&mut Peer<L>) -> T) -> T {
        self.runtime.block_on(work(&mut self.peer))
    }

    /// Ends the connection.
    pub fn close(self) {
        let Blocking { runtime, peer } = self;
        runtime.block_on(peer.close());
    }
}
