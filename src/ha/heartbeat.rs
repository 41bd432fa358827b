//! The heartbeat's judgement, apart from any I/O: when the primary counts as failed and
//! when to look again. A probe fails only when both signals fail (the SSH hello and the
//! status page), so that one broken path cannot cause a failover. The first failure is
//! seen at a regular heartbeat; re-checks follow every re-check interval; the failure
//! action runs once, after `failures` consecutive failed probes, so a failover comes at
//! most `interval + (failures - 1) x recheck` after the primary died. One success
//! resets the count.

use std::time::Duration;

use super::Settings;

/// A clock offset past this is warned about (the guide demands equal clocks).
pub const CLOCK_WARN_MS: i64 = 2_000;

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The SSH hello: `Ok` when the primary answered as a peer.
    pub ssh: Result<(), String>,
    /// The status page, asked only when SSH failed; `None` when not asked or unknown.
    pub page: Option<Result<(), String>>,
}

impl Probe {
    /// Whether the primary is alive by either signal.
    pub fn alive(&self) -> bool {
        self.ssh.is_ok() || matches!(self.page, Some(Ok(())))
    }

    /// Both signals, as the HA log says them.
    pub fn describe(&self) -> String {
        let ssh = match &self.ssh {
            Ok(()) => "ok".to_string(),
            Err(e) => e.clone(),
        };
        match &self.page {
            None => format!("ssh: {ssh}"),
            Some(Ok(())) => format!("ssh: {ssh}; status page: ok"),
            Some(Err(e)) => format!("ssh: {ssh}; status page: {e}"),
        }
    }
}

/// What to do after a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The primary is alive; probe again after the heartbeat interval. `recovered`
    /// when it had failed probes before.
    Alive { recovered: bool },
    /// The probe failed (`failures` in a row so far); re-check after the re-check interval.
    Suspect { failures: u32 },
    /// This failure reached the threshold: run the failure action now (once).
    Failed { failures: u32 },
}

/// Counts consecutive failed probes of one primary.
#[derive(Debug, Default)]
pub struct Monitor {
    failures: u32,
    acted: bool,
}

impl Monitor {
    /// Takes a probe's outcome into account.
    pub fn observe(&mut self, probe: &Probe, settings: &Settings) -> Verdict {
        if probe.alive() {
            let recovered = self.failures > 0;
            *self = Monitor::default();
            return Verdict::Alive { recovered };
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= settings.heartbeat_failures.max(1) && !self.acted {
            self.acted = true;
            return Verdict::Failed { failures: self.failures };
        }
        Verdict::Suspect { failures: self.failures }
    }

    /// Consecutive failed probes.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long to wait before the next probe after `verdict`.
    pub fn next_probe(verdict: &Verdict, settings: &Settings) -> Duration {
        let seconds = match verdict {
            Verdict::Alive { .. } => settings.heartbeat_interval,
            Verdict::Suspect { .. } | Verdict::Failed { .. } => settings.heartbeat_recheck,
        };
        Duration::from_secs(u64::from(seconds.max(1)))
    }
}

/// How long a probe may take: it must fit in the time before the next one.
pub fn probe_timeout(settings: &Settings) -> Duration {
    let shortest = settings.heartbeat_interval.min(settings.heartbeat_recheck).max(1);
    Duration::from_millis(u64::from(shortest) * 800).min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(failures: u32) -> Settings {
        Settings { heartbeat_interval: 30, heartbeat_recheck: 10, heartbeat_failures: failures, ..Settings::default() }
    }

    const DOWN: Probe = Probe { ssh: Err(String::new()), page: Some(Err(String::new())) };

    #[test]
    fn the_action_runs_once_after_the_threshold_and_a_success_resets() {
        let s = settings(3);
        let mut m = Monitor::default();
        assert_eq!(m.observe(&DOWN, &s), Verdict::Suspect { failures: 1 });
        assert_eq!(m.observe(&DOWN, &s), Verdict::Suspect { failures: 2 });
        assert_eq!(m.observe(&DOWN, &s), Verdict::Failed { failures: 3 });
        assert_eq!(m.observe(&DOWN, &s), Verdict::Suspect { failures: 4 }, "the action does not repeat");
        let up = Probe { ssh: Ok(()), page: None };
        assert_eq!(m.observe(&up, &s), Verdict::Alive { recovered: true });
        assert_eq!(m.observe(&DOWN, &s), Verdict::Suspect { failures: 1 });
    }

    #[test]
    fn a_live_status_page_keeps_the_primary_alive_when_ssh_fails() {
        let s = settings(1);
        let mut m = Monitor::default();
        let page_up = Probe { ssh: Err("refused".into()), page: Some(Ok(())) };
        assert_eq!(m.observe(&page_up, &s), Verdict::Alive { recovered: false });
        let unknown = Probe { ssh: Err("refused".into()), page: None };
        assert_eq!(m.observe(&unknown, &s), Verdict::Failed { failures: 1 });
    }

    #[test]
    fn a_flapping_link_shorter_than_the_threshold_never_fails_over() {
        let s = settings(3);
        let mut m = Monitor::default();
        let up = Probe { ssh: Ok(()), page: None };
        for _ in 0..50 {
            assert!(!matches!(m.observe(&DOWN, &s), Verdict::Failed { .. }));
            assert!(!matches!(m.observe(&DOWN, &s), Verdict::Failed { .. }));
            m.observe(&up, &s);
        }
    }

    #[test]
    fn rechecks_come_faster_and_probes_fit_their_slot() {
        let s = settings(3);
        assert_eq!(Monitor::next_probe(&Verdict::Alive { recovered: false }, &s), Duration::from_secs(30));
        assert_eq!(Monitor::next_probe(&Verdict::Suspect { failures: 1 }, &s), Duration::from_secs(10));
        let fast = Settings { heartbeat_interval: 1, heartbeat_recheck: 1, ..s };
        assert!(probe_timeout(&fast) < Duration::from_secs(1));
    }
}
