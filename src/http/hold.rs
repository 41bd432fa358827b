//! What the HTTP side knows of a switchover under way, and whether a primary has fenced
//! itself for want of the quorum's lease (device API 503, both status pages not OK). On the old primary, the hold
//! on device writes: while it is on, the device API answers 503 with `Retry-After` and
//! `/status/status.html` reports the switchover (not OK); putting it on waits for the
//! writes already under way (their answers included, which may wait for a synchronous
//! standby), so once [`WriteHold::hold`] returns, nothing more is acknowledged here
//! until the hold is lifted. Once the node has handed its role over, the hold also
//! makes its status pages say standby until its live view does. On the standby, that
//! it is ready to take over (the devices it refuses are told to retry soon).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{RwLock, RwLockReadGuard};

/// Device writes, held or not.
#[derive(Default)]
pub struct WriteHold {
    held: AtomicBool,
    /// Set once this node handed its role over, before the new primary takes it: the
    /// status pages say standby from then on, so no instant has two primaries.
    handed: AtomicBool,
    /// On a standby: until when it is ready to take over in a switchover (devices it
    /// refuses meanwhile are told to come back soon).
    ready_until: std::sync::Mutex<Option<std::time::Instant>>,
    /// Each device write holds it shared while it runs; the hold takes it alone.
    writes: RwLock<()>,
    /// Why this primary has fenced itself (it could not renew the quorum's lease).
    fenced: std::sync::Mutex<Option<String>>,
}

/// A device write under way: the hold waits for it.
pub struct Writing<'a>(#[allow(dead_code)] RwLockReadGuard<'a, ()>);

impl WriteHold {
    /// Lets a device write start, unless writes are held or this node is fenced.
    pub async fn enter(&self) -> Option<Writing<'_>> {
        let guard = self.writes.read().await;
        (!self.held.load(Ordering::SeqCst) && self.fenced().is_none()).then_some(Writing(guard))
    }

    /// Fences this primary (`Some(why)`) or lifts it (`None`); a fence waits for the
    /// device writes under way, so none is answered after it. Says whether it changed.
    pub async fn fence(&self, why: Option<String>) -> bool {
        let (changed, on) = {
            let Ok(mut fenced) = self.fenced.lock() else { return false };
            let changed = fenced.is_some() != why.is_some();
            let on = why.is_some();
            *fenced = why;
            (changed, on)
        };
        // No write starts once the fence is on; those under way finish first.
        if changed && on {
            drop(self.writes.write().await);
        }
        changed
    }

    /// Why this primary is fenced, while it is.
    pub fn fenced(&self) -> Option<String> {
        self.fenced.lock().ok().and_then(|f| f.clone())
    }

    /// Holds device writes once those under way are done, waiting for them `within`
    /// at most (`None` when they took longer: nothing is held then).
    pub async fn hold(self: &Arc<Self>, within: Duration) -> Option<Held> {
        let alone = tokio::time::timeout(within, self.writes.write()).await.ok()?;
        self.held.store(true, Ordering::SeqCst);
        drop(alone);
        Some(Held { hold: Some(self.clone()) })
    }

    /// Whether writes are held now.
    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// A standby: ready to take over until `until` (`None`: no longer).
    pub fn ready(&self, until: Option<std::time::Instant>) {
        if let Ok(mut ready) = self.ready_until.lock() {
            *ready = until;
        }
    }

    /// Whether this standby may take over any moment now.
    pub fn taking_over_soon(&self) -> bool {
        self.ready_until.lock().is_ok_and(|r| r.is_some_and(|t| std::time::Instant::now() < t))
    }

    /// Whether this node handed its role over and its live view may not show it yet.
    pub fn handed_over(&self) -> bool {
        self.handed.load(Ordering::SeqCst)
    }
}

/// Device writes held until this is dropped (or [`Held::keep`] keeps them held).
pub struct Held {
    hold: Option<Arc<WriteHold>>,
}

impl Held {
    /// This node handed its role over: it says standby from now on.
    pub fn handed_over(&self) {
        if let Some(hold) = &self.hold {
            hold.handed.store(true, Ordering::SeqCst);
        }
    }

    /// Leaves writes held for good (this node must not take any more).
    pub fn keep(mut self) {
        self.hold = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            hold.handed.store(false, Ordering::SeqCst);
            hold.held.store(false, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_hold_waits_for_writes_under_way_and_refuses_new_ones() {
        let hold = Arc::new(WriteHold::default());
        let writing = hold.enter().await.unwrap();
        assert!(hold.hold(Duration::from_millis(50)).await.is_none(), "a write is under way");
        assert!(!hold.is_held());
        drop(writing);
        let held = hold.hold(Duration::from_millis(50)).await.unwrap();
        assert!(hold.enter().await.is_none());
        drop(held);
        assert!(hold.enter().await.is_some());
        hold.hold(Duration::from_millis(50)).await.unwrap().keep();
        assert!(hold.is_held());
    }
}
