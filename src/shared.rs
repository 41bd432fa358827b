//! The settings a pair must agree on: heartbeat, sync schedule, replication mode,
//! switchover, failure action, notifications, event hooks, the witness, SMTP, the
//! console's login policy, syslog, metrics, audit retention and the prompt. Which they
//! are ([`SHARED`]), this node's as configuration lines ([`of_this_node`]), compared with
//! a peer's ([`compare`]), and the lines that make this node's agree with the peer's
//! ([`plan`]). What is a node's own (host name, mode, primary-host, status URL, enable
//! secret, trusted hosts) is never compared or copied; local users and the enrollment
//! secret live in the Core data, which replication already copies.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ha::{Settings, config_lines};
use crate::peer::message::{SharedLine, SharedSettings};
use crate::store::{Store, StoreError};

/// The shared settings: the mode their command is typed in, the words it starts with
/// (after a `no`), and whether a node may have several lines of it.
pub const SHARED: &[(&str, &str, bool)] = &[
    ("config", "prompt", false),
    ("config", "metrics allow", true),
    ("config", "logging host", true),
    ("config", "smtp server", false),
    ("config", "smtp from", false),
    ("config", "smtp user", false),
    ("config", "exec-timeout", false),
    ("config", "session-limit", false),
    ("config", "login block-for", false),
    ("config", "login delay", false),
    ("config", "audit retention", false),
    ("config-ha", "witness", false),
    ("config-ha", "sync start-time", false),
    ("config-ha", "sync run-every", false),
    ("config-ha", "replication mode", false),
    ("config-ha", "switchover settle", false),
    ("config-ha", "heartbeat interval", false),
    ("config-ha", "heartbeat failures", false),
    ("config-ha", "heartbeat recheck-interval", false),
    ("config-ha", "heartbeat max-staleness", false),
    ("config-ha", "on-failure", false),
    ("config-ha", "notify email", false),
    ("config-ha", "notify on sync-completion", false),
    ("config-ha", "notify on failure", false),
    ("config-ha", "event-hook", true),
];

/// What a sealed SMTP password is shown as: sealed with one node's key, it means
/// nothing on the other, so only whether one is set is compared.
const SEALED: &str = "password (sealed)";

/// The global configuration lines of the settings other rooms own (SMTP, the console's
/// login policy, audit retention), as `show running-config` prints them.
pub fn owned_lines(map: &BTreeMap<String, String>) -> Vec<String> {
    let mut owned = crate::notify::smtp::Smtp::from_map(map).config_lines();
    owned.extend(crate::node::policy::Policy::from_map(map).config_lines());
    owned.push(format!("audit retention {}", crate::store::Retention::from_map(map).text()));
    owned
}

/// The entry of [`SHARED`] a line of `mode` sets, if it is shared.
fn entry(mode: &str, line: &str) -> Option<&'static (&'static str, &'static str, bool)> {
    let bare = line.strip_prefix("no ").unwrap_or(line);
    SHARED.iter().find(|(m, prefix, _)| {
        *m == mode && bare.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
    })
}

/// This node's shared settings, as lines.
pub fn of_this_node(store: &Store) -> Result<SharedSettings, StoreError> {
    let map = store.settings()?;
    let s = Settings::from_map(&map)?;
    let mut global = config_lines::global(&s, None);
    global.extend(owned_lines(&map));
    let mut lines = Vec::new();
    for (mode, part) in [("config", global), ("config-ha", config_lines::ha(&s))] {
        lines.extend(
            part.into_iter()
                .filter(|l| entry(mode, l).is_some())
                .map(|line| SharedLine { mode: mode.to_string(), line }),
        );
    }
    Ok(SharedSettings { lines, error: None })
}

/// One shared setting on both nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Drift {
    pub mode: &'static str,
    /// The words its command starts with (`heartbeat interval`, `event-hook`).
    pub setting: &'static str,
    /// Its lines here and on the peer (none: not set); a sealed password shows as
    /// `password (sealed)`.
    pub here: Vec<String>,
    pub peer: Vec<String>,
    pub same: bool,
}

/// The lines of each shared setting in `settings`, sorted, a sealed password hidden.
fn by_setting(settings: &SharedSettings) -> BTreeMap<(&'static str, &'static str), Vec<String>> {
    let mut out: BTreeMap<_, Vec<String>> = BTreeMap::new();
    for l in &settings.lines {
        if let Some((mode, setting, _)) = entry(&l.mode, &l.line) {
            let line = match l.line.split_once(" password sealed ") {
                Some((head, _)) => format!("{head} {SEALED}"),
                None => l.line.clone(),
            };
            out.entry((*mode, *setting)).or_default().push(line);
        }
    }
    out.values_mut().for_each(|v| v.sort());
    out
}

/// Every shared setting, here against the peer, in [`SHARED`]'s order.
pub fn compare(here: &SharedSettings, peer: &SharedSettings) -> Vec<Drift> {
    let (mine, theirs) = (by_setting(here), by_setting(peer));
    SHARED
        .iter()
        .map(|(mode, setting, _)| {
            let get = |m: &BTreeMap<_, Vec<String>>| m.get(&(*mode, *setting)).cloned().unwrap_or_default();
            let (here, peer) = (get(&mine), get(&theirs));
            Drift { mode, setting, same: here == peer, here, peer }
        })
        .collect()
}

/// A configuration line to run, in its mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub mode: &'static str,
    pub line: String,
}

/// The lines that make this node's settings agree with the peer's, and what cannot be
/// copied (a sealed SMTP password), with what to do instead.
pub fn plan(drifts: &[Drift]) -> (Vec<Step>, Vec<String>) {
    let (mut steps, mut left) = (Vec::new(), Vec::new());
    for d in drifts.iter().filter(|d| !d.same) {
        let many = SHARED.iter().any(|(m, s, many)| *m == d.mode && *s == d.setting && *many);
        let step = |line: String| Step { mode: d.mode, line };
        if !many {
            match d.peer.first() {
                Some(line) if line.ends_with(SEALED) => left.push(format!(
                    "'{}' is not copied: the peer's password is sealed with its own key. Set it here: \
                     'smtp user USER password PASSWORD'",
                    line.trim_end_matches(SEALED).trim_end()
                )),
                Some(line) => steps.push(step(line.clone())),
                None => steps.push(step(format!("no {}", d.setting))),
            }
            continue;
        }
        for gone in d.here.iter().filter(|l| !d.peer.contains(l)) {
            // `no logging host HOST port PORT` takes no transport.
            let line = match d.setting {
                "logging host" => gone.rsplit_once(' ').map_or(gone.as_str(), |(head, _)| head).to_string(),
                _ => gone.clone(),
            };
            steps.push(step(format!("no {line}")));
        }
        steps.extend(d.peer.iter().filter(|l| !d.here.contains(l)).map(|l| step(l.clone())));
    }
    (steps, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(lines: &[(&str, &str)]) -> SharedSettings {
        SharedSettings {
            lines: lines.iter().map(|(m, l)| SharedLine { mode: m.to_string(), line: l.to_string() }).collect(),
            error: None,
        }
    }

    #[test]
    fn drift_is_found_setting_by_setting_and_planned_away() {
        let here = settings(&[
            ("config-ha", "heartbeat interval 1"),
            ("config-ha", "event-hook fenced command /bin/page"),
            ("config-ha", "no notify email"),
            ("config", "logging host 10.0.0.9 port 514 udp"),
            ("config", "smtp user alerts password sealed AAAA"),
            ("config", "hostname core-b"),
        ]);
        let peer = settings(&[
            ("config-ha", "heartbeat interval 30"),
            ("config-ha", "event-hook becomes-primary webhook http://x/"),
            ("config-ha", "event-hook fenced command /bin/page"),
            ("config-ha", "notify email ops@example.com"),
            ("config", "logging host 10.0.0.9 port 514 tcp"),
            ("config", "smtp user alerts password sealed BBBB"),
            ("config", "hostname core-a"),
        ]);
        let drifts = compare(&here, &peer);
        assert_eq!(drifts.len(), SHARED.len(), "hostname is a node's own");
        let differ: Vec<&str> = drifts.iter().filter(|d| !d.same).map(|d| d.setting).collect();
        assert_eq!(differ, ["logging host", "heartbeat interval", "notify email", "event-hook"]);
        let (steps, left) = plan(&drifts);
        let lines: Vec<&str> = steps.iter().map(|s| s.line.as_str()).collect();
        assert_eq!(
            lines,
            [
                "no logging host 10.0.0.9 port 514",
                "logging host 10.0.0.9 port 514 tcp",
                "heartbeat interval 30",
                "notify email ops@example.com",
                "event-hook becomes-primary webhook http://x/",
            ]
        );
        assert!(left.is_empty(), "both have a sealed password: the same as far as can be told");
        let peer = settings(&[("config", "smtp user relay password sealed CCCC")]);
        let (steps, left) = plan(&compare(&here, &peer));
        assert!(steps.iter().all(|s| !s.line.starts_with("smtp user")), "{steps:?}");
        assert!(left[0].contains("'smtp user relay' is not copied"), "{left:?}");
        // A setting the peer lacks is taken away here.
        let (steps, _) = plan(&compare(&settings(&[("config", "smtp from a@example.com")]), &settings(&[])));
        assert_eq!(steps[0].line, "no smtp from");
    }
}
