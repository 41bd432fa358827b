//! Wrong enrollment secrets, counted per source address: after a few within a window,
//! that address is refused (429 with `Retry-After`) until the window passes. Each wrong
//! secret costs an Argon2 verification, so this also bounds the work a stranger can cause.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong secrets allowed from one address within [`WINDOW`].
pub const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, and how long a refused address waits.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before old entries are dropped.
const MAX_TRACKED: usize = 10_000;

/// Failures per address: how many, and when the first of the current window was.
#[derive(Default)]
pub struct EnrollmentGuard {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl EnrollmentGuard {
    /// Seconds `ip` must still wait, if it is refused now.
    pub fn refused(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let map = self.failures.lock().ok()?;
        let (count, since) = map.get(&ip)?;
        let left = WINDOW.checked_sub(now.duration_since(*since))?;
        (*count >= MAX_FAILURES).then(|| left.as_secs().max(1))
    }

    /// Counts a wrong secret from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let Ok(mut map) = self.failures.lock() else { return };
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    /// Forgets `ip`'s failures (it presented the right secret).
    pub fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_too_many_failures_until_the_window_passes() {
        let guard = EnrollmentGuard::default();
        let (ip, other): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(guard.refused(ip, t0), None);
            guard.failed(ip, t0);
        }
        assert!(guard.refused(ip, t0 + Duration::from_secs(1)).is_some());
        assert_eq!(guard.refused(other, t0), None);
        assert_eq!(guard.refused(ip, t0 + WINDOW + Duration::from_secs(1)), None);
        guard.succeeded(ip);
        assert_eq!(guard.refused(ip, t0), None);
    }
}
