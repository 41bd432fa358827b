//! The console's login policy (node settings, as on IOS): `exec-timeout`,
//! `session-limit`, `login block-for … attempts … within …` and `login delay`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub const EXEC_TIMEOUT: &str = "console.exec_timeout_s";
pub const SESSION_LIMIT: &str = "console.session_limit";
pub const BLOCK_FOR: &str = "login.block_for_s";
pub const ATTEMPTS: &str = "login.attempts";
pub const WITHIN: &str = "login.within_s";
pub const DELAY: &str = "login.delay_s";

/// How the console treats its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Policy {
    /// Seconds without input before a shell session is closed; 0 never.
    pub exec_timeout_s: u64,
    /// Console sessions (shells and commands) open at once.
    pub session_limit: u32,
    /// Lockout after failed logins; `None` turns it off.
    pub block: Option<Block>,
    /// Seconds each failed login is held before it is answered.
    pub delay_s: u64,
}

/// `login block-for SECONDS attempts TRIES within SECONDS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Block {
    pub for_s: u64,
    pub attempts: u32,
    pub within_s: u64,
}

/// The lockout as shipped: 5 failures in a minute lock an address out for 2 minutes.
const SHIPPED_BLOCK: Block = Block { for_s: 120, attempts: 5, within_s: 60 };

impl Default for Policy {
    /// As shipped: 10 minutes idle (IOS's default), 8 sessions, 5 failures in a minute
    /// lock an address out for 2 minutes, 1 second's delay after each failure.
    fn default() -> Self {
        Policy { exec_timeout_s: 600, session_limit: 8, block: Some(SHIPPED_BLOCK), delay_s: 1 }
    }
}

impl Policy {
    /// The policy the settings hold (defaults for what they do not).
    pub fn from_map(map: &BTreeMap<String, String>) -> Policy {
        let shipped = Policy::default();
        let num = |key: &str, default: u64| map.get(key).and_then(|v| v.parse().ok()).unwrap_or(default);
        let block = match map.get(BLOCK_FOR).map(String::as_str) {
            Some("off") => None,
            _ => Some(Block {
                for_s: num(BLOCK_FOR, SHIPPED_BLOCK.for_s),
                attempts: u32::try_from(num(ATTEMPTS, u64::from(SHIPPED_BLOCK.attempts))).unwrap_or(u32::MAX),
                within_s: num(WITHIN, SHIPPED_BLOCK.within_s),
            }),
        };
        Policy {
            exec_timeout_s: num(EXEC_TIMEOUT, shipped.exec_timeout_s),
            session_limit: u32::try_from(num(SESSION_LIMIT, u64::from(shipped.session_limit))).unwrap_or(u32::MAX),
            block,
            delay_s: num(DELAY, shipped.delay_s),
        }
    }

    /// The idle timeout; `None` when sessions never time out.
    pub fn idle(&self) -> Option<Duration> {
        (self.exec_timeout_s > 0).then(|| Duration::from_secs(self.exec_timeout_s))
    }

    /// The commands that set this policy, for `show running-config`.
    pub fn config_lines(&self) -> Vec<String> {
        let t = self.exec_timeout_s;
        vec![
            format!("exec-timeout {} {}", t / 60, t % 60),
            format!("session-limit {}", self.session_limit),
            match self.block {
                Some(b) => format!("login block-for {} attempts {} within {}", b.for_s, b.attempts, b.within_s),
                None => "no login block-for".into(),
            },
            format!("login delay {}", self.delay_s),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_default() {
        assert_eq!(Policy::from_map(&BTreeMap::new()), Policy::default());
        let map: BTreeMap<String, String> = [
            (EXEC_TIMEOUT, "90"),
            (SESSION_LIMIT, "2"),
            (BLOCK_FOR, "30"),
            (ATTEMPTS, "3"),
            (WITHIN, "10"),
            (DELAY, "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = Policy::from_map(&map);
        assert_eq!(p.idle(), Some(Duration::from_secs(90)));
        assert_eq!(
            p.config_lines(),
            ["exec-timeout 1 30", "session-limit 2", "login block-for 30 attempts 3 within 10", "login delay 2"]
        );
        let off: BTreeMap<String, String> =
            [(BLOCK_FOR.to_string(), "off".to_string()), (EXEC_TIMEOUT.to_string(), "0".to_string())].into();
        let p = Policy::from_map(&off);
        assert_eq!((p.block, p.idle()), (None, None));
    }
}
