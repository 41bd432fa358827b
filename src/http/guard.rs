//! Wrong enrollment secrets, counted per client (an IPv4 address, an IPv6 /64): after a
//! few within a window, that client is refused (429 with `Retry-After`) until the window
//! passes. An attempt counts from the moment it starts, before its Argon2 verification:
//! parallel attempts cannot all slip past the check before the first failure is counted.
//! At most [`MAX_TRACKED`] clients are remembered (the oldest is forgotten first).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clients::Client;

/// Wrong secrets (and attempts under way) allowed from one client within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, and how long a refused client waits.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients remembered at most.
pub const MAX_TRACKED: usize = 10_000;

/// One client's failures in the current window, and its attempts under way.
#[derive(Debug, Clone, Copy)]
struct Tally {
    failures: u32,
    since: Instant,
    under_way: u32,
}

/// Failures per client.
#[derive(Default)]
pub struct EnrollmentGuard {
    tallies: Mutex<HashMap<Client, Tally>>,
}

/// An attempt under way; counted as a failure unless [`Attempt::succeeded`] is called.
pub struct Attempt<'a> {
    guard: &'a EnrollmentGuard,
    client: Client,
    succeeded: bool,
}

impl EnrollmentGuard {
    /// Starts an attempt from `ip`, or says how many seconds it must still wait.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<Attempt<'_>, u64> {
        let client = Client::of(ip);
        let Ok(mut map) = self.tallies.lock() else { return Err(WINDOW.as_secs()) };
        if map.len() >= MAX_TRACKED && !map.contains_key(&client) {
            map.retain(|_, t| t.under_way > 0 || now.duration_since(t.since) < WINDOW);
            if map.len() >= MAX_TRACKED
                && let Some(oldest) = map.iter().filter(|(_, t)| t.under_way == 0).min_by_key(|(_, t)| t.since)
            {
                let oldest = *oldest.0;
                map.remove(&oldest);
            }
        }
        let tally = map.entry(client).or_insert(Tally { failures: 0, since: now, under_way: 0 });
        if now.duration_since(tally.since) >= WINDOW {
            tally.failures = 0;
            tally.since = now;
        }
        if tally.failures + tally.under_way >= MAX_FAILURES {
            let left = WINDOW.saturating_sub(now.duration_since(tally.since));
            return Err(left.as_secs().max(1));
        }
        tally.under_way += 1;
        Ok(Attempt { guard: self, client, succeeded: false })
    }
}

impl Attempt<'_> {
    /// The secret was right: the client's failures are forgotten.
    pub fn succeeded(mut self) {
        self.succeeded = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let Ok(mut map) = self.guard.tallies.lock() else { return };
        if self.succeeded {
            map.remove(&self.client);
        } else if let Some(t) = map.get_mut(&self.client) {
            t.under_way = t.under_way.saturating_sub(1);
            t.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_refused_after_too_many_failures_until_the_window_passes() {
        let guard = EnrollmentGuard::default();
        let (ip, other): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            drop(guard.begin(ip, t0).unwrap());
        }
        assert!(guard.begin(ip, t0 + Duration::from_secs(1)).is_err());
        assert!(guard.begin("::ffff:192.0.2.1".parse().unwrap(), t0).is_err(), "the mapped form is the same client");
        assert!(guard.begin(other, t0).is_ok());
        assert!(guard.begin(ip, t0 + WINDOW + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn attempts_under_way_count_before_they_fail() {
        let guard = EnrollmentGuard::default();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        let running: Vec<_> = (0..MAX_FAILURES).map(|_| guard.begin(ip, t0).unwrap()).collect();
        assert!(guard.begin("2001:db8::2".parse().unwrap(), t0).is_err(), "the same /64, while five run");
        drop(running);
        assert!(guard.begin(ip, t0).is_err(), "and five failures after");
    }

    #[test]
    fn a_success_forgets_and_the_table_stays_bounded() {
        let guard = EnrollmentGuard::default();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        drop(guard.begin(ip, t0).unwrap());
        guard.begin(ip, t0).unwrap().succeeded();
        assert!(guard.tallies.lock().unwrap().is_empty());
        for n in 0..(MAX_TRACKED as u32 + 50) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            drop(guard.begin(ip, t0).unwrap());
        }
        assert!(guard.tallies.lock().unwrap().len() <= MAX_TRACKED);
    }
}
