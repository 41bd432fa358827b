//! One operator's session: who, from where, in which mode, with which terminal length,
//! and whether it may run only read-only commands (a mate's request without the enable
//! secret); and the [`Console`] a command asks the person at the other end through (a
//! hidden prompt on a terminal, a secret handed over for batch runs, a progress line).
//! Below both the commands that use them and the shell that keeps them.

/// State that lives as long as one session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Current mode name (`user`, `enable`, `config`, `config-ha`).
    pub mode: String,
    /// Who is logged in.
    pub user: String,
    /// Where from (`console`, `batch`, an address).
    pub source: String,
    /// Lines per screen before `--More--`; 0 turns paging off.
    pub term_length: u32,
    /// Characters per line as `terminal width` set it (0: not set). Output is not
    /// wrapped; automation (netmiko) sets it and `show terminal` shows it.
    pub term_width: u32,
    /// The SSH console session this is (`show sessions`); `None` on the local console
    /// or in a batch run. Over SSH, `enable` needs an enable secret.
    pub remote: Option<i64>,
    /// Only commands the grammar declares `readonly` run: a mate's request that came
    /// without this node's enable secret.
    pub readonly: bool,
}

impl Session {
    /// A new session in user mode.
    pub fn new(user: &str, source: &str) -> Session {
        Session {
            mode: "user".into(),
            user: user.into(),
            source: source.into(),
            term_length: 0,
            term_width: 0,
            remote: None,
            readonly: false,
        }
    }

    /// A new session of an operator logged in over SSH from `source`.
    pub fn remote(user: &str, source: &str, id: i64) -> Session {
        Session { remote: Some(id), ..Session::new(user, source) }
    }

    /// `user@source`, as the failover history records who caused a change.
    pub fn actor(&self) -> String {
        format!("{}@{}", self.user, self.source)
    }
}

/// How the shell asks the person at the other end for a secret.
pub trait Console {
    /// Asks with `prompt` without echo; `None` when there is nobody to ask.
    fn ask_secret(&mut self, prompt: &str) -> Option<String>;
    /// Whether someone is at a terminal (interactive prompts make sense).
    fn is_terminal(&self) -> bool;
    /// Shows how a long command is getting on, replacing the previous progress line;
    /// `None` clears it. Only a terminal shows it.
    fn progress(&mut self, _line: Option<&str>) {}
}
