//! What handlers return: a typed [`Reply`] whose report renders both as text for people
//! and as JSON for `| json`, plus notes and a mode change. Handlers never print.

use serde::Serialize;
use tabled::settings::Style;
use tabled::{Table, Tabled};

use crate::store::StoreError;

/// A typed result that renders as text.
pub trait Text {
    /// The text shown to people (lines, no trailing newline needed).
    fn text(&self) -> String;
}

/// A typed result the shell can render both ways.
pub trait Report {
    /// For people.
    fn text(&self) -> String;
    /// For `| json`.
    fn json(&self) -> serde_json::Value;
}

impl<T: Text + Serialize> Report for T {
    fn text(&self) -> String {
        Text::text(self)
    }
    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// A line printed after the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Information, printed as is.
    Info(String),
    /// Advice against a setting, printed as `% Warning: ...`.
    Warning(String),
    /// Why a command whose result is shown still failed, printed as `% ...`; the line
    /// ends with the status of a failed command.
    Failure(String),
}

/// What the session should do after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Stay in the current mode.
    Stay,
    /// Change to this mode.
    Mode(String),
    /// Go up to the mode's parent; from a mode without one, end the session (`exit`).
    Up,
    /// End the session.
    Quit,
    /// Run a command matched for another mode (`do`), then stay.
    Run(String, Box<crate::cli::Matched>),
}

/// The typed outcome of a handler.
pub struct Reply {
    /// The result, if the command shows one.
    pub report: Option<Box<dyn Report>>,
    /// Notes and warnings.
    pub notes: Vec<Note>,
    /// Where the session goes next.
    pub next: Next,
}

impl Reply {
    /// Nothing to show.
    pub fn done() -> Reply {
        Reply { report: None, notes: Vec::new(), next: Next::Stay }
    }

    /// A result to show.
    pub fn show(report: impl Report + 'static) -> Reply {
        Reply { report: Some(Box::new(report)), ..Reply::done() }
    }

    /// A change of mode.
    pub fn mode(mode: &str) -> Reply {
        Reply { next: Next::Mode(mode.to_string()), ..Reply::done() }
    }

    /// Adds an information line.
    pub fn info(mut self, text: impl Into<String>) -> Reply {
        self.notes.push(Note::Info(text.into()));
        self
    }

    /// Shows the result and fails the command, saying why.
    pub fn fail(mut self, text: impl Into<String>) -> Reply {
        self.notes.push(Note::Failure(text.into()));
        self
    }

    /// Adds a warning line.
    pub fn warn(mut self, text: impl Into<String>) -> Reply {
        self.notes.push(Note::Warning(text.into()));
        self
    }
}

/// Why a command failed; the shell prints it as one `%` line.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    /// The command ran and could not do what was asked.
    #[error("{0}")]
    Failed(String),
    /// Not permitted: wrong mode, wrong secret.
    #[error("{0}")]
    Denied(String),
    /// The node's database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Renders rows as a table with a header line.
pub fn table<R: Tabled>(rows: &[R]) -> String {
    Table::new(rows).with(Style::psql()).to_string()
}

/// Renders `label : value` lines with the labels aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs.iter().map(|(k, v)| format!("{k:<width$} : {v}")).collect::<Vec<_>>().join("\n")
}
