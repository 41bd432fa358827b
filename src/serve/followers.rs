//! The streams this node feeds, live: one per peer key (a newer one takes over, as after
//! a follower reconnects before this node saw the old connection die), each with what
//! its follower said of itself in its hello and what it last said it applied. The
//! switchover finds its standby here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use russh::keys::PublicKey;
use tokio::sync::watch;

use crate::peer::Hello;
use crate::ssh::peer_channel::Caller;
use crate::store::StreamFollower;

struct Entry {
    stop: watch::Sender<Option<String>>,
    key: PublicKey,
    hello: Option<Hello>,
    seen: Arc<Mutex<StreamFollower>>,
    token: u64,
}

/// A follower streaming from this node now.
#[derive(Debug, Clone)]
pub struct Live {
    pub key: PublicKey,
    pub hello: Option<Hello>,
    pub follower: StreamFollower,
}

/// The live streams, by peer key.
#[derive(Default)]
pub struct Followers {
    streams: Mutex<HashMap<String, Entry>>,
    next: std::sync::atomic::AtomicU64,
}

/// One registered stream: ends it in the registry when dropped.
pub struct Registered<'a> {
    followers: &'a Followers,
    fingerprint: String,
    token: u64,
    /// Told why, when the stream must stop.
    pub stop: watch::Receiver<Option<String>>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut streams) = self.followers.streams.lock()
            && streams.get(&self.fingerprint).is_some_and(|e| e.token == self.token)
        {
            streams.remove(&self.fingerprint);
        }
    }
}

impl Followers {
    /// Registers `caller`'s stream, whose progress `seen` holds; an older one of the
    /// same key is told to stop.
    pub fn start(&self, caller: &Caller, seen: Arc<Mutex<StreamFollower>>) -> Registered<'_> {
        let (tell, told) = watch::channel(None);
        let token = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = Entry { stop: tell, key: caller.key.clone(), hello: caller.hello.clone(), seen, token };
        if let Ok(mut streams) = self.streams.lock()
            && let Some(old) = streams.insert(caller.fingerprint.clone(), entry)
        {
            let _ = old.stop.send(Some("a newer stream of the same peer took over".into()));
        }
        Registered { followers: self, fingerprint: caller.fingerprint.clone(), token, stop: told }
    }

    /// The streams now.
    pub fn live(&self) -> Vec<Live> {
        let Ok(streams) = self.streams.lock() else { return Vec::new() };
        streams
            .values()
            .filter_map(|e| {
                let follower = e.seen.lock().ok()?.clone();
                Some(Live { key: e.key.clone(), hello: e.hello.clone(), follower })
            })
            .collect()
    }
}
