//! `show running-config`: each mode writes its part, in the syntax that mode accepts
//! back, so pasting the output into `configure terminal` rebuilds the same settings.

use serde::Serialize;

use crate::coredb::users::LocalUser;
use crate::ha::Settings;
use crate::report::Text;

/// The configuration of one mode.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Section {
    /// Mode the lines belong to.
    pub mode: &'static str,
    /// The commands, as typed in that mode.
    pub lines: Vec<String>,
}

/// The whole running configuration.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunningConfig {
    /// Global configuration first, then each sub-mode.
    pub sections: Vec<Section>,
}

/// The running configuration of a node with settings `s`, the global lines of settings
/// other rooms own (SMTP, the console policy), its local users and the enrollment
/// secret's hash from its Core data.
pub fn running_config(
    s: &Settings,
    owned: Vec<String>,
    users: &[LocalUser],
    enrollment: Option<&str>,
) -> RunningConfig {
    let mut global = crate::ha::config_lines::global(s, enrollment);
    global.extend(owned);
    for user in users {
        if let Some(hash) = &user.password_hash {
            global.push(format!("username {} password hashed {hash}", user.name));
        }
        global.extend(user.public_keys.iter().map(|k| format!("username {} key {k}", user.name)));
    }
    let ha = crate::ha::config_lines::ha(s);
    RunningConfig {
        sections: vec![Section { mode: "config", lines: global }, Section { mode: "config-ha", lines: ha }],
    }
}

impl Text for RunningConfig {
    fn text(&self) -> String {
        let mut out = vec!["! coresh running configuration".to_string(), "!".into()];
        for section in &self.sections {
            match section.mode {
                "config" => out.extend(section.lines.iter().cloned()),
                mode => {
                    out.push("!".into());
                    out.push(entry_command(mode).into());
                    out.extend(section.lines.iter().map(|l| format!(" {l}")));
                    out.push(" exit".into());
                }
            }
        }
        out.push("!".into());
        out.push("end".into());
        out.join("\n")
    }
}

/// The global configuration command that enters `mode`.
fn entry_command(mode: &str) -> &str {
    match mode {
        "config-ha" => "high-availability",
        other => other,
    }
}
