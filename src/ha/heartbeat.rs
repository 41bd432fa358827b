//! The heartbeat's judgement, apart from any I/O: when the primary counts as failed and
//! when to look again. A probe asks two signals, the SSH hello and the status page, and
//! each says one of three things: the primary answered; it did not (unreachable, timed
//! out, refused, cannot serve); or a configuration error stands in the way (not trusted,
//! wrong host key, our key refused, another release, no status page address). Only "did
//! not answer" on both signals is a failed probe: a configuration error is an alarm,
//! never evidence that the primary is down, and it breaks a run of failures. The first
//! failure is seen at a regular heartbeat; re-checks follow every re-check interval; the
//! failure action is due after `failures` consecutive failed probes, so a failover comes
//! at most `interval + (failures - 1) x recheck` after the primary died. One answer
//! resets the count.

use std::time::Duration;

use super::Settings;

/// A clock offset past this is warned about (the guide demands equal clocks).
pub const CLOCK_WARN_MS: i64 = 2_000;

/// What one signal said about the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// It answered as a live primary.
    Answered,
    /// It did not answer, or answered that it cannot serve: counts toward failover.
    Down(String),
    /// A configuration error (here or there) kept the signal from asking: an alarm.
    Misconfigured(String),
}

impl Signal {
    /// What it found, as the HA log says it.
    pub fn describe(&self) -> String {
        match self {
            Signal::Answered => "ok".into(),
            Signal::Down(why) => why.clone(),
            Signal::Misconfigured(why) => format!("MISCONFIGURED: {why}"),
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The SSH hello over the trusted connection.
    pub ssh: Signal,
    /// The status page.
    pub page: Signal,
    /// A configuration error seen although the primary answered (another release).
    pub alarm: Option<String>,
}

impl Probe {
    /// Whether the primary is alive by either signal.
    pub fn alive(&self) -> bool {
        self.ssh == Signal::Answered || self.page == Signal::Answered
    }

    /// The configuration error this probe met, if any: the alarm to raise.
    pub fn misconfigured(&self) -> Option<String> {
        let signal = |name: &str, s: &Signal| match s {
            Signal::Misconfigured(why) => Some(format!("{name}: {why}")),
            _ => None,
        };
        self.alarm.clone().or_else(|| signal("ssh", &self.ssh)).or_else(|| signal("status page", &self.page))
    }

    /// Both signals, as the HA log says them.
    pub fn describe(&self) -> String {
        format!("ssh: {}; status page: {}", self.ssh.describe(), self.page.describe())
    }
}

/// What to do after a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The primary is alive; probe again after the heartbeat interval. `recovered`
    /// when it had failed probes before.
    Alive { recovered: bool },
    /// A configuration error kept the probe from telling: no failure is counted.
    Misconfigured(String),
    /// The probe failed (`failures` in a row so far); re-check after the re-check interval.
    Suspect { failures: u32 },
    /// The failures reached the threshold and the failure action has not run: run it
    /// now (and call [`Monitor::acted`] once it has).
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
        if let Some(why) = probe.misconfigured() {
            *self = Monitor::default();
            return Verdict::Misconfigured(why);
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= settings.heartbeat_failures.max(1) && !self.acted {
            return Verdict::Failed { failures: self.failures };
        }
        Verdict::Suspect { failures: self.failures }
    }

    /// The failure action ran: it is not due again until the primary has answered.
    pub fn acted(&mut self) {
        self.acted = true;
    }

    /// Consecutive failed probes.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long to wait before the next probe after `verdict`.
    pub fn next_probe(verdict: &Verdict, settings: &Settings) -> Duration {
        let seconds = match verdict {
            Verdict::Alive { .. } | Verdict::Misconfigured(_) => settings.heartbeat_interval,
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

    fn down() -> Probe {
        Probe { ssh: Signal::Down("refused".into()), page: Signal::Down("refused".into()), alarm: None }
    }

    fn up() -> Probe {
        Probe { ssh: Signal::Answered, page: Signal::Answered, alarm: None }
    }

    #[test]
    fn the_action_is_due_after_the_threshold_until_it_ran_and_a_success_resets() {
        let s = settings(3);
        let mut m = Monitor::default();
        assert_eq!(m.observe(&down(), &s), Verdict::Suspect { failures: 1 });
        assert_eq!(m.observe(&down(), &s), Verdict::Suspect { failures: 2 });
        assert_eq!(m.observe(&down(), &s), Verdict::Failed { failures: 3 });
        assert_eq!(m.observe(&down(), &s), Verdict::Failed { failures: 4 }, "still due: it has not run");
        m.acted();
        assert_eq!(m.observe(&down(), &s), Verdict::Suspect { failures: 5 }, "the action does not repeat");
        assert_eq!(m.observe(&up(), &s), Verdict::Alive { recovered: true });
        assert_eq!(m.observe(&down(), &s), Verdict::Suspect { failures: 1 });
    }

    #[test]
    fn a_live_status_page_keeps_the_primary_alive_when_ssh_fails() {
        let s = settings(1);
        let mut m = Monitor::default();
        let page_up = Probe { ssh: Signal::Down("refused".into()), ..up() };
        assert_eq!(m.observe(&page_up, &s), Verdict::Alive { recovered: false });
        assert_eq!(m.observe(&down(), &s), Verdict::Failed { failures: 1 });
    }

    #[test]
    fn a_configuration_error_is_never_a_failure() {
        let s = settings(1);
        let mut m = Monitor::default();
        for probe in [
            Probe {
                ssh: Signal::Misconfigured("not trusted".into()),
                page: Signal::Down("refused".into()),
                alarm: None,
            },
            Probe {
                ssh: Signal::Down("refused".into()),
                page: Signal::Misconfigured("never advertised".into()),
                alarm: None,
            },
            Probe {
                ssh: Signal::Misconfigured("wrong host key".into()),
                page: Signal::Misconfigured("no address".into()),
                alarm: None,
            },
        ] {
            for _ in 0..10 {
                assert!(matches!(m.observe(&probe, &s), Verdict::Misconfigured(_)), "{probe:?}");
            }
        }
        let mismatch = Probe { alarm: Some("another release".into()), ..up() };
        assert_eq!(m.observe(&mismatch, &s), Verdict::Alive { recovered: false });
        assert_eq!(mismatch.misconfigured().as_deref(), Some("another release"));
    }

    #[test]
    fn a_configuration_error_breaks_a_run_of_failures() {
        let s = settings(3);
        let mut m = Monitor::default();
        m.observe(&down(), &s);
        m.observe(&down(), &s);
        let misconfigured = Probe { ssh: Signal::Misconfigured("not trusted".into()), ..down() };
        m.observe(&misconfigured, &s);
        assert_eq!(m.observe(&down(), &s), Verdict::Suspect { failures: 1 });
    }

    #[test]
    fn a_flapping_link_shorter_than_the_threshold_never_fails_over() {
        let s = settings(3);
        let mut m = Monitor::default();
        for _ in 0..50 {
            assert!(!matches!(m.observe(&down(), &s), Verdict::Failed { .. }));
            assert!(!matches!(m.observe(&down(), &s), Verdict::Failed { .. }));
            m.observe(&up(), &s);
        }
    }

    #[test]
    fn rechecks_come_faster_and_probes_fit_their_slot() {
        let s = settings(3);
        assert_eq!(Monitor::next_probe(&Verdict::Alive { recovered: false }, &s), Duration::from_secs(30));
        assert_eq!(Monitor::next_probe(&Verdict::Suspect { failures: 1 }, &s), Duration::from_secs(10));
        assert_eq!(Monitor::next_probe(&Verdict::Misconfigured(String::new()), &s), Duration::from_secs(30));
        let fast = Settings { heartbeat_interval: 1, heartbeat_recheck: 1, ..s };
        assert!(probe_timeout(&fast) < Duration::from_secs(1));
    }
}
