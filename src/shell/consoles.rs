//! The shell's consoles: a terminal, which prompts on the controlling tty without echo
//! and shows progress on one line; and batch runs, where a secret may be handed over
//! (environment or file), never typed.

use crate::session::Console;

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
