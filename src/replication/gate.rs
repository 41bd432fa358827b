//! Synchronous replication's gate on the primary: a device write is answered only once
//! the synchronous standby said it applied it (durably, in its own transaction). The
//! Core data writer hands each commit's answers to [`Gate::hold`] with the change number
//! it made; the stream to the standby reports what it applied ([`Gate::applied`]). When
//! the standby does not confirm a change within its timeout (it is slow, gone, or cut
//! off), the gate **degrades**: it answers everything waiting and, from then on, answers
//! at once, as continuous replication does, and says so ([`GateEvent`]); it returns to
//! synchronous once the standby has applied everything committed. No answer ever waits
//! longer than the timeout (and the [`Permit`]'s own bound), and while the gate is
//! synchronous no write is acknowledged before the standby has it.
//!
//! Before it degrades the gate asks its [`Permit`] (with a quorum, the daemon records in
//! the primary lease that writes go on without the standby). When that is refused the
//! gate stays synchronous and the writes that waited their timeout are answered as not
//! confirmed (`Err`: the device API answers 503 and the device sends them again), never
//! acknowledged.
//!
//! Which standby is synchronous, and its timeout, come with its stream
//! (`Request::Follow`); the gate remembers them after the stream ends, so that writes
//! wait for it to come back, up to the timeout. A stream that is not synchronous clears
//! them. A restarted primary waits for nobody until its synchronous standby connects.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The answers of one commit, sent when released: `Ok` acknowledges them, `Err(why)`
/// says the write was not confirmed.
pub type Release = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A release and what it answers.
type Answer = (Release, Result<(), String>);

/// Whether the gate may stop waiting for `standby` (degrade); `Err(why)` when not.
pub type Permit = Arc<dyn Fn(&Standby) -> Result<(), String> + Send + Sync>;

/// The synchronous standby: the name its stream gave, its node id, and how long a
/// write may wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    pub name: String,
    pub node: Option<String>,
    pub timeout: Duration,
}

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
    /// Writes the standby did not confirm in time were refused: the gate was not let
    /// degrade.
    Unconfirmed { standby: String, reason: String },
}

/// How the gate stands, as `show failover` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GateState {
    /// `off`, `synchronous` or `degraded`.
    pub state: &'static str,
    pub standby: Option<String>,
    /// The standby's node id.
    #[serde(skip)]
    pub standby_node: Option<String>,
    /// Why it degraded.
    pub reason: Option<String>,
    /// Answers waiting for the standby now.
    pub waiting: usize,
}

struct Inner {
    /// The synchronous standby.
    wanted: Option<Standby>,
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
    permit: Permit,
}

impl Gate {
    /// A gate that waits for nobody until a synchronous stream attaches; `events` hears
    /// each change of state, `permit` decides whether it may degrade. Starts its timer
    /// thread.
    pub fn start(events: Events, permit: Permit) -> std::io::Result<Gate> {
        let inner = Inner { wanted: None, degraded: None, applied: 0, committed: 0, pending: VecDeque::new() };
        let gate = Gate { inner: Arc::new((Mutex::new(inner), Condvar::new())), events, permit };
        let timer = gate.clone();
        std::thread::Builder::new().name("sync-gate".into()).spawn(move || timer.run_timer())?;
        Ok(gate)
    }

    /// Answers a commit that made change `seq` now, or once the standby has it.
    pub fn hold(&self, seq: i64, release: Release) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return release(Err("the synchronous gate failed".into())) };
        g.committed = g.committed.max(seq);
        if g.wanted.is_none() || g.degraded.is_some() || seq <= g.applied {
            drop(g);
            return release(Ok(()));
        }
        g.pending.push_back((seq, Instant::now(), release));
        wake.notify_all();
    }

    /// A stream attached: synchronous with `timeout` (from `standby`, node id `node`),
    /// or not (`None`).
    pub fn attach(&self, standby: &str, node: Option<&str>, timeout: Option<Duration>, from: i64) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return };
        g.applied = g.applied.max(from);
        let event = match timeout {
            Some(timeout) => {
                let wanted = Standby { name: standby.to_string(), node: node.map(str::to_string), timeout };
                let was = g.wanted.replace(wanted);
                (was.is_none() && g.degraded.is_none()).then(|| GateEvent::Synchronous { standby: standby.into() })
            }
            None if g.wanted.as_ref().is_some_and(|w| w.name == standby) => {
                g.wanted = None;
                g.degraded = None;
                let released: Vec<Release> = g.pending.drain(..).map(|(_, _, r)| r).collect();
                drop(g);
                released.into_iter().for_each(|r| r(Ok(())));
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
        if g.wanted.as_ref().is_none_or(|w| w.name != standby) {
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
        released.into_iter().for_each(|r| r(Ok(())));
        if back {
            (self.events)(GateEvent::Synchronous { standby: standby.into() });
        }
    }

    /// How the gate stands.
    pub fn state(&self) -> GateState {
        let Ok(g) = self.inner.0.lock() else {
            return GateState { state: "off", standby: None, standby_node: None, reason: None, waiting: 0 };
        };
        let state = match (&g.wanted, &g.degraded) {
            (None, _) => "off",
            (Some(_), None) => "synchronous",
            (Some(_), Some(_)) => "degraded",
        };
        GateState {
            state,
            standby: g.wanted.as_ref().map(|w| w.name.clone()),
            standby_node: g.wanted.as_ref().and_then(|w| w.node.clone()),
            reason: g.degraded.clone(),
            waiting: g.pending.len(),
        }
    }

    /// Degrades when the oldest waiting answer has waited its timeout, once the permit
    /// lets it; else answers what waited that long as not confirmed.
    fn run_timer(&self) {
        let (lock, wake) = &*self.inner;
        let Ok(mut g) = lock.lock() else { return };
        loop {
            let oldest = g.pending.front().map(|(seq, at, _)| (*seq, *at));
            let (Some(wanted), Some((seq, at))) = (g.wanted.clone(), oldest) else {
                g = match wake.wait(g) {
                    Ok(g) => g,
                    Err(_) => return,
                };
                continue;
            };
            let waited = at.elapsed();
            if waited < wanted.timeout {
                g = match wake.wait_timeout(g, wanted.timeout - waited) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
                continue;
            }
            let standby = wanted.name.clone();
            let late = format!("{standby} did not confirm change {seq} within {} ms", wanted.timeout.as_millis());
            // The permit may take a while (a quorum write): the writer and the stream go on.
            drop(g);
            let permitted = (self.permit)(&wanted);
            g = match lock.lock() {
                Ok(g) => g,
                Err(_) => return,
            };
            if g.wanted.as_ref() != Some(&wanted) || g.degraded.is_some() {
                continue;
            }
            let (released, event): (Vec<Answer>, GateEvent) = match permitted {
                Ok(()) => {
                    let reason = format!("{late}; writes no longer wait for it");
                    g.degraded = Some(reason.clone());
                    let released = g.pending.drain(..).map(|(_, _, r)| (r, Ok(()))).collect();
                    (released, GateEvent::Degraded { standby, reason })
                }
                Err(why) => {
                    let reason = format!("{late}, and writes may not go on without it: {why}");
                    let mut released = Vec::new();
                    while g.pending.front().is_some_and(|(_, at, _)| at.elapsed() >= wanted.timeout) {
                        if let Some((_, _, r)) = g.pending.pop_front() {
                            released.push((r, Err(reason.clone())));
                        }
                    }
                    (released, GateEvent::Unconfirmed { standby, reason })
                }
            };
            drop(g);
            released.into_iter().for_each(|(r, answer)| r(answer));
            (self.events)(event);
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

    /// Counts the answers, and apart those not confirmed.
    fn counting() -> (Arc<AtomicUsize>, Arc<AtomicUsize>, impl Fn() -> Release) {
        let (n, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (m, r) = (n.clone(), refused.clone());
        (n, refused, move || {
            let (m, r) = (m.clone(), r.clone());
            Box::new(move |answer: Result<(), String>| {
                m.fetch_add(1, Ordering::SeqCst);
                if answer.is_err() {
                    r.fetch_add(1, Ordering::SeqCst);
                }
            }) as Release
        })
    }

    fn allowed() -> Permit {
        Arc::new(|_| Ok(()))
    }

    fn events() -> (Arc<Mutex<Vec<GateEvent>>>, Events) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        (seen, Arc::new(move |e| sink.lock().unwrap().push(e)))
    }

    #[test]
    fn answers_wait_for_the_standby_and_only_for_it() {
        let (seen, sink) = events();
        let gate = Gate::start(sink, allowed()).unwrap();
        let (answered, _, release) = counting();
        gate.hold(1, release());
        assert_eq!(answered.load(Ordering::SeqCst), 1, "nobody is synchronous: at once");
        gate.attach("core-b", Some("b"), Some(Duration::from_secs(30)), 1);
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
        let gate = Gate::start(sink, allowed()).unwrap();
        let (answered, _, release) = counting();
        gate.attach("core-b", Some("b"), Some(Duration::from_millis(100)), 0);
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
        let gate = Gate::start(sink, allowed()).unwrap();
        let (answered, _, release) = counting();
        gate.attach("core-b", Some("b"), Some(Duration::from_secs(30)), 0);
        gate.hold(1, release());
        gate.attach("core-b", None, None, 0);
        assert_eq!(answered.load(Ordering::SeqCst), 1);
        assert_eq!(gate.state().state, "off");
    }

    #[test]
    fn a_gate_not_let_degrade_refuses_what_waited_and_stays_synchronous() {
        let (seen, sink) = events();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let permit: Permit = {
            let asked = asked.clone();
            Arc::new(move |s: &Standby| {
                asked.lock().unwrap().push(s.node.clone());
                Err("the quorum could not record it".into())
            })
        };
        let gate = Gate::start(sink, permit).unwrap();
        let (answered, refused, release) = counting();
        gate.attach("core-b", Some("b"), Some(Duration::from_millis(100)), 0);
        gate.hold(1, release());
        let started = Instant::now();
        while answered.load(Ordering::SeqCst) == 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "never answered");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(refused.load(Ordering::SeqCst), 1, "answered as not confirmed, never acknowledged");
        assert_eq!(gate.state().state, "synchronous");
        assert_eq!(*asked.lock().unwrap(), vec![Some("b".to_string())], "the permit hears the standby's node id");
        // The next write waits for the standby again, and its confirmation acknowledges it.
        gate.hold(2, release());
        gate.applied("core-b", 2);
        assert_eq!((answered.load(Ordering::SeqCst), refused.load(Ordering::SeqCst)), (2, 1));
        assert!(
            matches!(&seen.lock().unwrap()[1], GateEvent::Unconfirmed { reason, .. } if reason.contains("could not record"))
        );
    }
}
