//! Synchronous replication's gate on the primary: a device write is answered only once
//! the synchronous standby said it applied it (durably, in its own transaction). The
//! Core data writer hands each commit's answers to [`Gate::hold`] with the change number
//! it made; the stream to the standby reports what it applied ([`Gate::applied`]). When
//! the standby does not confirm a change within its timeout (it is slow, gone, or cut
//! off), the gate **degrades**: it answers everything waiting and, from then on, answers
//! at once, as continuous replication does, and says so ([`GateEvent`]); it returns to
//! synchronous once the standby has applied everything committed. No answer ever waits
//! longer than the timeout, and while the gate is synchronous no write is answered
//! before the standby has it.
//!
//! Which standby is synchronous, and its timeout, come with its stream
//! (`Request::Follow`); the gate remembers them after the stream ends, so that writes
//! wait for it to come back, up to the timeout. A stream that is not synchronous clears
//! them. A restarted primary waits for nobody until its synchronous standby connects.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The answers of one commit, sent when released.
pub type Release = Box<dyn FnOnce() + Send>;

/// Who hears the gate's events.
pub type Events = Arc<dyn Fn(GateEvent) + Send + Sync>;

/// What the gate tells the daemon (for the HA log, a mail and `show failover`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateEvent {
    /// Writes wait for the standby again (it caught up, or it asked to be synchronous).
    Synchronous { standby: String },
    /// The standby did not confirm in time: writes no longer wait for it.
    Degraded { standby: String, reason: String },
    /// No standby is synchronous any more (its stream asked for continuous).
    Off,
}

/// How the gate stands, as `show failover` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GateState {
    /// `off`, `synchronous` or `degraded`.
    pub state: &'static str,
    pub standby: Option<String>,
    /// Why it degraded.
    pub reason: Option<String>,
    /// Answers waiting for the standby now.
    pub waiting: usize,
}

struct Inner {
    /// The synchronous standby and how long a write may wait for it.
    wanted: Option<(String, Duration)>,
    degraded: Option<String>,
    /// The last change the standby applied, and the last one committed here.
    applied: i64,
    committed: i64,
    pending: VecDeque<(i64, Instant, Release)>,
}

/// The gate; cheap to share.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<(Mutex<Inner>, Condvar)>,
    events: Events,
}

impl Gate {
    /// A gate that waits for nobody until a synchronous stream attaches; `events` hears
    /// each change of state. Starts its timer thread.
    pub fn start(events: Events) -> std::io::Result<Gate> {
        let inner = Inner { wanted: None, degraded: None, applied: 0, committed: 0, pending: VecDeque::new() };
        let gate = Gate { inner: Arc::new((Mutex::new(inner), Condvar::new())), events };
        let timer = gate.clone();
        std::thread::Builder::new().name("sync-gate".into()).spawn(move || timer.run_timer())?;
        Ok(gate)
    }

    /// Answers a commit that made change `seq` now, or once the standby has it.
    pub fn hold(&self, seq: i64, release: Release) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return release() };
        g.committed = g.committed.max(seq);
        if g.wanted.is_none() || g.degraded.is_some() || seq <= g.applied {
            drop(g);
            return release();
        }
        g.pending.push_back((seq, Instant::now(), release));
        wake.notify_all();
    }

    /// A stream attached: synchronous with `timeout` (from `standby`), or not (`None`).
    pub fn attach(&self, standby: &str, timeout: Option<Duration>, from: i64) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return };
        g.applied = g.applied.max(from);
        let event = match timeout {
            Some(t) => {
                let was = g.wanted.replace((standby.to_string(), t));
                (was.is_none() && g.degraded.is_none()).then(|| GateEvent::Synchronous { standby: standby.into() })
            }
            None if g.wanted.as_ref().is_some_and(|(s, _)| s == standby) => {
                g.wanted = None;
                g.degraded = None;
                let released: Vec<Release> = g.pending.drain(..).map(|(_, _, r)| r).collect();
                drop(g);
                released.into_iter().for_each(|r| r());
                (self.events)(GateEvent::Off);
                return;
            }
            None => None,
        };
        drop(g);
        wake.notify_all();
        if let Some(e) = event {
            (self.events)(e);
        }
    }

    /// The synchronous standby `standby` applied everything up to `seq`.
    pub fn applied(&self, standby: &str, seq: i64) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return };
        if g.wanted.as_ref().is_none_or(|(s, _)| s != standby) {
            return;
        }
        g.applied = g.applied.max(seq);
        let mut released = Vec::new();
        while g.pending.front().is_some_and(|(s, _, _)| *s <= seq) {
            if let Some((_, _, r)) = g.pending.pop_front() {
                released.push(r);
            }
        }
        let back = g.degraded.is_some() && g.applied >= g.committed;
        if back {
            g.degraded = None;
        }
        drop(g);
        wake.notify_all();
        released.into_iter().for_each(|r| r());
        if back {
            (self.events)(GateEvent::Synchronous { standby: standby.into() });
        }
    }

    /// How the gate stands.
    pub fn state(&self) -> GateState {
        let Ok(g) = self.inner.0.lock() else {
            return GateState { state: "off", standby: None, reason: None, waiting: 0 };
        };
        let state = match (&g.wanted, &g.degraded) {
            (None, _) => "off",
            (Some(_), None) => "synchronous",
            (Some(_), Some(_)) => "degraded",
        };
        GateState {
            state,
            standby: g.wanted.as_ref().map(|(s, _)| s.clone()),
            reason: g.degraded.clone(),
            waiting: g.pending.len(),
        }
    }

    /// Degrades when the oldest waiting answer has waited its timeout.
    fn run_timer(&self) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return };
        loop {
            let timeout = g.wanted.as_ref().map(|(_, t)| *t);
            let oldest = g.pending.front().map(|(seq, at, _)| (*seq, *at));
            let (Some(timeout), Some((seq, at))) = (timeout, oldest) else {
                g = match wake.wait(g) {
                    Ok(g) => g,
                    Err(_) => return,
                };
                continue;
            };
            let waited = at.elapsed();
            if waited < timeout {
                g = match wake.wait_timeout(g, timeout - waited) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
                continue;
            }
            let standby = g.wanted.as_ref().map(|(s, _)| s.clone()).unwrap_or_default();
            let reason = format!(
                "{standby} did not confirm change {seq} within {} ms; writes no longer wait for it",
                timeout.as_millis()
            );
            g.degraded = Some(reason.clone());
            let released: Vec<Release> = g.pending.drain(..).map(|(_, _, r)| r).collect();
            drop(g);
            released.into_iter().for_each(|r| r());
            (self.events)(GateEvent::Degraded { standby, reason });
            g = match lock.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Arc<AtomicUsize>, impl Fn() -> Release) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (n, move || {
            let m = m.clone();
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
            }) as Release
        })
    }

    fn events() -> (Arc<Mutex<Vec<GateEvent>>>, Events) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        (seen, Arc::new(move |e| sink.lock().unwrap().push(e)))
    }

    #[test]
    fn answers_wait_for_the_standby_and_only_for_it() {
        let (seen, sink) = events();
        let gate = Gate::start(sink).unwrap();
        let (answered, release) = counting();
        gate.hold(1, release());
        assert_eq!(answered.load(Ordering::SeqCst), 1, "nobody is synchronous: at once");
        gate.attach("core-b", Some(Duration::from_secs(30)), 1);
        gate.hold(2, release());
        gate.hold(3, release());
        assert_eq!(answered.load(Ordering::SeqCst), 1, "both wait");
        gate.applied("core-c", 3);
        assert_eq!(answered.load(Ordering::SeqCst), 1, "another follower does not count");
        gate.applied("core-b", 2);
        assert_eq!(answered.load(Ordering::SeqCst), 2);
        gate.applied("core-b", 3);
        assert_eq!(answered.load(Ordering::SeqCst), 3);
        assert_eq!(gate.state().state, "synchronous");
        assert_eq!(*seen.lock().unwrap(), vec![GateEvent::Synchronous { standby: "core-b".into() }]);
    }

    #[test]
    fn a_silent_standby_degrades_the_gate_within_its_timeout_and_a_caught_up_one_restores_it() {
        let (seen, sink) = events();
        let gate = Gate::start(sink).unwrap();
        let (answered, release) = counting();
        gate.attach("core-b", Some(Duration::from_millis(100)), 0);
        let started = Instant::now();
        gate.hold(1, release());
        while answered.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "never released");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(started.elapsed() >= Duration::from_millis(100), "released before the timeout");
        assert_eq!(gate.state().state, "degraded");
        gate.hold(2, release());
        assert_eq!(answered.load(Ordering::SeqCst), 2, "degraded: at once");
        gate.applied("core-b", 1);
        assert_eq!(gate.state().state, "degraded", "not caught up yet");
        gate.applied("core-b", 2);
        assert_eq!(gate.state().state, "synchronous");
        let seen = seen.lock().unwrap();
        assert!(matches!(&seen[1], GateEvent::Degraded { reason, .. } if reason.contains("did not confirm change 1")));
        assert_eq!(seen[2], GateEvent::Synchronous { standby: "core-b".into() });
    }

    #[test]
    fn a_standby_that_turns_continuous_releases_what_waits() {
        let (_, sink) = events();
        let gate = Gate::start(sink).unwrap();
        let (answered, release) = counting();
        gate.attach("core-b", Some(Duration::from_secs(30)), 0);
        gate.hold(1, release());
        gate.attach("core-b", None, 0);
        assert_eq!(answered.load(Ordering::SeqCst), 1);
        assert_eq!(gate.state().state, "off");
    }
}
