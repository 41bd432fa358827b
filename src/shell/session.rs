//! One operator's session: who, from where, in which mode, and how to ask them for a
//! secret (a hidden prompt on a terminal, a secret handed over for batch runs).

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
    /// The SSH console session this is (`show sessions`); `None` on the local console
    /// or in a batch run. Over SSH, `enable` needs an enable secret.
    pub remote: Option<i64>,
}

impl Session {
    /// A new session in user mode.
    pub fn new(user: &str, source: &str) -> Session {
        Session { mode: "user".into(), user: user.into(), source: source.into(), term_length: 0, remote: None }
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

/// A terminal: prompts on the controlling tty without echo.
pub struct TtyConsole;

impl Console for TtyConsole {
    fn ask_secret(&mut self, prompt: &str) -> Option<String> {
        rpassword::prompt_password(prompt).ok()
    }
    fn is_terminal(&self) -> bool {
        true
    }

    fn progress(&mut self, line: Option<&str>) {
        use std::io::Write;
        // Plain carriage returns and spaces: no escape codes, even on a dumb terminal.
        let mut err = std::io::stderr().lock();
        let _ = match line {
            Some(text) => write!(err, "\r{text:<72.72}"),
            None => write!(err, "\r{:72}\r", ""),
        };
        let _ = err.flush();
    }
}

/// Batch runs: a secret may be handed over (environment or file), never typed.
pub struct BatchConsole {
    /// The enable secret given for this run, if any.
    pub secret: Option<String>,
}

impl Console for BatchConsole {
    fn ask_secret(&mut self, _prompt: &str) -> Option<String> {
        self.secret.clone()
    }
    fn is_terminal(&self) -> bool {
        false
    }
}
