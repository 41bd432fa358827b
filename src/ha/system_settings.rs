//! Typed values of the system settings that are not high availability: what the prompt
//! shows besides the host name (`prompt`), and the syslog servers (`logging host`). The
//! settings themselves are kept with the others (`ha::settings`).

use crate::host::HostPort;

/// What the prompt shows after the host name (`prompt hostname [mode] [state]`), as
/// the ASA's `prompt hostname priority state`: `core-a/pri/act#`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromptParts {
    pub mode: bool,
    pub state: bool,
}

impl PromptParts {
    /// As the command says it: `hostname`, then `mode` and `state` when shown.
    pub fn text(&self) -> String {
        let mut t = String::from("hostname");
        for (on, word) in [(self.mode, " mode"), (self.state, " state")] {
            if on {
                t.push_str(word);
            }
        }
        t
    }

    pub(super) fn parse(text: &str) -> Option<PromptParts> {
        let mut words = text.split_whitespace();
        if words.next() != Some("hostname") {
            return None;
        }
        let mut parts = PromptParts::default();
        for word in words {
            match word {
                "mode" => parts.mode = true,
                "state" => parts.state = true,
                _ => return None,
            }
        }
        Some(parts)
    }
}

/// A syslog server the HA log and the audit log go to (`logging host`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHost {
    pub host: HostPort,
    /// TCP (kept connection, nothing lost within the backlog's bound) or UDP.
    pub tcp: bool,
}

impl LogHost {
    /// The port, 514 unless given.
    pub fn port(&self) -> u16 {
        self.host.port.unwrap_or(514)
    }

    /// `HOST:PORT/udp|tcp`: how it is stored, and its cursor's name.
    pub fn target(&self) -> String {
        let host = HostPort { host: self.host.host.clone(), port: Some(self.port()) };
        format!("{host}/{}", if self.tcp { "tcp" } else { "udp" })
    }

    pub(super) fn parse(text: &str) -> Option<LogHost> {
        let (host, transport) = text.rsplit_once('/')?;
        Some(LogHost { host: host.parse().ok()?, tcp: transport == "tcp" })
    }
}
