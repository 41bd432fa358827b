//! The shell: runs one input line at a time against the local node. A line is lexed,
//! matched in the session's mode, its secrets redacted, run by its handler (or one of
//! the shell's own commands, [`modes`]; a read-only session runs only commands the
//! grammar declares `readonly`), rendered (text or `| json`, then filters), and
//! audited. The interactive loop and batch mode both drive [`Shell::run_line`]; what
//! differs is only how lines arrive and where errors go. A command made of other
//! commands runs them through the same steps ([`nested`]).

mod batch;
mod consoles;
mod interactive;
pub mod json_docs;
pub mod modes;
mod nested;
mod output;
mod pager;
mod plain;
mod redact;

use std::io::Write;

use crate::cli::{LexError, Line, MatchError, Matched, Matcher, Tree};
use crate::grammar::Grammar;
use crate::handlers::{Ctx, Handler};
use crate::node::Node;
use crate::report::{CmdError, Next, Note, Reply};
use crate::store::{AuditEntry, Outcome, now_text};
use redact::{cut, redact};

pub use crate::session::{Console, Session};
pub use batch::{BatchOptions, run as run_batch, stdin_lines};
pub use consoles::{BatchConsole, TtyConsole};
pub use interactive::run as run_interactive;
pub use modes::BUILTINS;
pub use output::FILTERS;

/// How a line ended. Batch runs exit with [`Status::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It worked (or was empty, a comment or a help request).
    Ok,
    /// The command ran and failed: exit status 1.
    Failed,
    /// The line is not a command: exit status 2.
    Syntax,
    /// Not permitted in this mode, or a wrong secret: exit status 3.
    Denied,
}

impl Status {
    /// The documented exit status.
    pub fn code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Failed => 1,
            Status::Syntax => 2,
            Status::Denied => 3,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            Status::Ok => Outcome::Ok,
            Status::Failed => Outcome::Failed,
            Status::Syntax => Outcome::Syntax,
            Status::Denied => Outcome::Denied,
        }
    }
}

/// Where a line came from, which decides how errors point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// Typed at a terminal after a prompt this wide: the line is on screen already.
    Typed(usize),
    /// Batch with `--echo`: print `PROMPT LINE` first.
    Transcript,
    /// Batch: nothing printed but output and errors.
    Quiet,
}

/// The result of running one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// How it ended.
    pub status: Status,
    /// Whether the session ends.
    pub quit: bool,
    /// Whether the line may be kept whole (in a history): nothing of it was removed as
    /// a secret or cut after a bad word.
    pub keepable: bool,
}

/// Output streams: results, and `%` errors.
pub struct Streams<'a> {
    /// Results and notes.
    pub out: &'a mut dyn Write,
    /// Error lines; `None` sends them to `out` (a terminal, a transcript).
    pub err: Option<&'a mut dyn Write>,
}

impl Streams<'_> {
    /// Where `%` lines go.
    fn err(&mut self) -> &mut dyn Write {
        match self.err {
            Some(ref mut e) => &mut **e,
            None => &mut *self.out,
        }
    }
}

/// A shell bound to one node and one session.
pub struct Shell {
    /// The command grammar.
    pub grammar: &'static Grammar,
    /// Its command graph.
    pub tree: &'static Tree,
    /// The local node.
    pub node: Node,
    /// The operator's session.
    pub session: Session,
}

impl Shell {
    /// A shell on `node` for `session`, with the built-in grammar.
    pub fn new(node: Node, session: Session) -> Shell {
        Shell { grammar: Grammar::builtin(), tree: crate::cli::builtin_tree(), node, session }
    }

    /// The prompt of the current mode: `HOST>`, `HOST#`, `HOST(config)#`, ...
    pub fn prompt(&self) -> String {
        let suffix = self.grammar.mode(&self.session.mode).map_or(">", |m| &*m.prompt);
        let Ok(s) = self.node.settings() else { return format!("core{suffix}") };
        // Whether this primary fenced itself is the daemon's to say (the quorum's report).
        let fenced = s.prompt.state
            && s.mode == crate::ha::Mode::Primary
            && s.witness.is_some()
            && crate::quorum::store::Storage::open(&self.node.data_dir)
                .ok()
                .and_then(|q| q.status().ok().flatten())
                .is_some_and(|q| q.fenced.is_some());
        format!("{}{}{suffix}", s.hostname, s.prompt_role(fenced))
    }

    fn matcher(&self) -> Matcher<'static> {
        Matcher { tree: self.tree }
    }

    /// Runs one line and writes what it prints.
    pub fn run_line(&mut self, input: &str, echo: Echo, console: &mut dyn Console, io: &mut Streams) -> Executed {
        // Only a transcript prints the prompt; a quiet batch run does not read it.
        let prompt = if echo == Echo::Quiet { String::new() } else { self.prompt() };
        let input = input.trim_end_matches(['\r', '\n']);
        let body = input.trim();
        if body.is_empty() || body.starts_with('!') {
            if echo == Echo::Transcript && !body.is_empty() {
                let _ = writeln!(io.out, "{prompt}{input}");
            }
            return Executed { status: Status::Ok, quit: false, keepable: true };
        }
        if let Some(before) = input.strip_suffix('?')
            && Line::lex(before).is_ok()
        {
            if echo == Echo::Transcript {
                let _ = writeln!(io.out, "{prompt}{input}");
            }
            let status = self.help(before, echo, &prompt, io);
            return Executed { status, quit: false, keepable: true };
        }
        let mode = self.session.mode.clone();
        let (status, quit, audited) = match Line::lex(input) {
            Err(e) => {
                let (column, message) = match e {
                    LexError::Unterminated { column } => (Some(column), "% Unterminated quoted string at '^' marker."),
                    LexError::Control { column } => (Some(column), "% Invalid input detected at '^' marker."),
                    LexError::TooLong => (None, "% Line too long (at most 4096 characters)."),
                };
                // A line that does not lex may still hold a secret: its own words say so.
                let secret = self.secret_start(input);
                self.point(input, column, secret, echo, &prompt, io);
                let _ = writeln!(io.err(), "{message}");
                (Status::Syntax, false, cut(input, column, secret))
            }
            Ok(line) => self.run_lexed(&line, echo, &prompt, console, io),
        };
        if let Err(e) = audit(&self.node, &self.session, mode, &audited, status.outcome()) {
            let _ = writeln!(io.err(), "% Warning: the audit log could not be written: {e}");
        }
        let keepable = audited == body;
        Executed { status, quit, keepable }
    }

    /// Matches and runs a lexed line; returns its status, whether to quit, and the line
    /// as it may be recorded (secrets removed).
    fn run_lexed(
        &mut self,
        line: &Line,
        echo: Echo,
        prompt: &str,
        console: &mut dyn Console,
        io: &mut Streams,
    ) -> (Status, bool, String) {
        let matcher = self.matcher();
        let root = self.tree.root(&self.session.mode).unwrap_or(0);
        let matched = match matcher.matches(root, line, &line.command) {
            Ok(m) => m,
            Err(e) => return self.refuse(line, &line.command, e, None, echo, prompt, io),
        };
        let secret = matched.args.secret_at.and_then(|i| line.command.tokens.get(i)).map(|t| t.start);
        let mut filters = Vec::new();
        for seg in &line.pipes {
            match matcher.matches(self.tree.filters, line, seg) {
                Ok(f) => filters.push(output::Filter::of(&self.grammar.filters[f.command].handler, &f.args)),
                Err(e) => return self.refuse(line, seg, e, secret, echo, prompt, io),
            }
        }
        let shown = redact(line, &matched);
        if echo == Echo::Transcript {
            let _ = writeln!(io.out, "{prompt}{shown}");
        }
        let (result, quit) = match filters.into_iter().collect::<Result<Vec<_>, _>>() {
            Ok(filters) => {
                let (result, quit) = self.dispatch(&matched, &shown, console);
                (result.and_then(|reply| output::render(reply, &filters)), quit)
            }
            Err(e) => (Err(e), false),
        };
        let status = match result {
            Ok((text, notes)) => {
                let _ = io.out.write_all(text.as_bytes());
                let mut status = Status::Ok;
                for note in notes {
                    let _ = match note {
                        Note::Info(t) => writeln!(io.out, "{t}"),
                        Note::Warning(t) => writeln!(io.err(), "% Warning: {t}"),
                        Note::Failure(t) => {
                            status = Status::Failed;
                            writeln!(io.err(), "% {t}")
                        }
                    };
                }
                status
            }
            Err(CmdError::Denied(msg)) => {
                let _ = writeln!(io.err(), "% {msg}");
                Status::Denied
            }
            Err(e) => {
                let _ = writeln!(io.err(), "% {e}");
                Status::Failed
            }
        };
        (status, quit, shown)
    }

    /// Runs a matched command's handler and applies the mode change it asks for.
    fn dispatch(
        &mut self,
        matched: &Matched,
        shown: &str,
        console: &mut dyn Console,
    ) -> (Result<Reply, CmdError>, bool) {
        let handler = match handler(self.grammar, &self.session, matched) {
            Ok(handler) => handler,
            Err(e) => return (Err(e), false),
        };
        let mut ctx = Ctx {
            node: &mut self.node,
            session: &mut self.session,
            console,
            line: shown,
            inner: matched.inner.as_ref(),
            runner: nested::run,
        };
        let reply = match handler(&mut ctx, &matched.args) {
            Ok(reply) => reply,
            Err(e) => return (Err(e), false),
        };
        match &reply.next {
            Next::Stay => (Ok(reply), false),
            Next::Mode(mode) => {
                self.session.mode = mode.clone();
                (Ok(reply), false)
            }
            Next::Quit => (Ok(reply), true),
            Next::Up => match self.grammar.mode(&self.session.mode).and_then(|m| m.parent.as_deref()) {
                Some(parent) => {
                    self.session.mode = parent.to_string();
                    (Ok(reply), false)
                }
                None => (Ok(reply), true),
            },
            Next::Run(mode, inner) => {
                // `do`: run the inner command as if in `mode`, then come back.
                let back = std::mem::replace(&mut self.session.mode, mode.clone());
                let (result, _) = self.dispatch(inner, shown, console);
                self.session.mode = back;
                (result, false)
            }
        }
    }

    /// Reports a line that does not match; says so when it would run in another mode.
    /// `secret` is where a secret starts in the line (its command matched), which
    /// nothing shown or recorded may include.
    #[allow(clippy::too_many_arguments)]
    fn refuse(
        &self,
        line: &Line,
        seg: &crate::cli::lexer::Segment,
        e: MatchError,
        secret: Option<usize>,
        echo: Echo,
        prompt: &str,
        io: &mut Streams,
    ) -> (Status, bool, String) {
        if std::ptr::eq(seg, &line.command)
            && let Some((other, matched)) = self.mode_that_accepts(line)
        {
            // The line is refused, but its secret is still a secret.
            let shown = redact(line, &matched);
            if echo == Echo::Transcript {
                let _ = writeln!(io.out, "{prompt}{shown}");
            }
            let hint = match &other.via {
                _ if self.accepts_with_do(line) => format!(": use 'do {}'", line.input.trim()),
                Some(via) => format!(": enter '{via}' first"),
                None => String::new(),
            };
            let _ = writeln!(io.err(), "% This command belongs to {}{hint}", other.help);
            return (Status::Denied, false, shown);
        }
        let column = match &e {
            MatchError::Invalid { column, .. } | MatchError::Ambiguous { column } => Some(*column),
            MatchError::Incomplete => None,
        };
        let audited = cut(line.input, column, secret);
        match e {
            MatchError::Invalid { column, detail } => {
                self.point(line.input, Some(column), secret, echo, prompt, io);
                let _ = writeln!(io.err(), "% Invalid input detected at '^' marker.");
                if let Some(d) = detail {
                    let _ = writeln!(io.err(), "% {d}");
                }
            }
            MatchError::Ambiguous { .. } => {
                if echo == Echo::Transcript {
                    let _ = writeln!(io.out, "{prompt}{audited}");
                }
                let _ = writeln!(io.err(), "% Ambiguous command: \"{}\"", audited);
            }
            MatchError::Incomplete => {
                if echo == Echo::Transcript {
                    let _ = writeln!(io.out, "{prompt}{audited}");
                }
                let _ = writeln!(io.err(), "% Incomplete command.");
            }
        }
        (Status::Syntax, false, audited)
    }

    /// Where a secret starts in `input`, in any mode (see [`redact::secret_start`]).
    fn secret_start(&self, input: &str) -> Option<usize> {
        redact::secret_start(self.grammar, self.tree, &self.session.mode, input)
    }

    /// Another mode in which the whole line would be a command, and its match there.
    fn mode_that_accepts(&self, line: &Line) -> Option<(&'static crate::grammar::ModeDef, Matched)> {
        let matcher = self.matcher();
        self.grammar.modes.iter().filter(|m| m.name != self.session.mode).find_map(|m| {
            let root = self.tree.root(&m.name)?;
            matcher.matches(root, line, &line.command).ok().map(|matched| (m, matched))
        })
    }

    /// Whether `do LINE` would run in the current mode.
    fn accepts_with_do(&self, line: &Line) -> bool {
        let text = format!("do {}", line.input.trim());
        let root = self.tree.root(&self.session.mode);
        Line::lex(&text).is_ok_and(|l| root.is_some_and(|r| self.matcher().matches(r, &l, &l.command).is_ok()))
    }

    /// Prints the caret under `column` of `input` (the line itself first unless it is on
    /// screen already). Words after the bad one are not repeated: they may be a secret;
    /// from `secret` on nothing is (the caret stops where the secret starts).
    fn point(
        &self,
        input: &str,
        column: Option<usize>,
        secret: Option<usize>,
        echo: Echo,
        prompt: &str,
        io: &mut Streams,
    ) {
        let Some(column) = column else {
            if echo == Echo::Transcript {
                let _ = writeln!(io.out, "{prompt}{}", cut(input, None, secret));
            }
            return;
        };
        let column = match secret.and_then(|at| input.get(..at)) {
            Some(before) => column.min(before.chars().count()),
            None => column,
        };
        let (shown, offset) = match echo {
            Echo::Typed(width) => (None, width),
            Echo::Transcript => (Some(format!("{prompt}{}", cut(input, Some(column), secret))), prompt.chars().count()),
            Echo::Quiet => (Some(cut(input, Some(column), secret)), 0),
        };
        let stream = io.err();
        if let Some(shown) = shown {
            let _ = writeln!(stream, "{shown}");
        }
        let _ = writeln!(stream, "{}^", " ".repeat(offset + column));
    }

    /// Prints `?` help for the line before the `?`.
    fn help(&self, before: &str, echo: Echo, prompt: &str, io: &mut Streams) -> Status {
        let Ok(line) = Line::lex(before) else {
            return Status::Syntax;
        };
        let partial = !before.is_empty() && !line.trailing_space;
        let (root, seg) = match line.pipes.last() {
            Some(seg) => (self.tree.filters, seg),
            None => (self.tree.root(&self.session.mode).unwrap_or(0), &line.command),
        };
        match self.matcher().help(root, &line, seg, partial) {
            Ok(items) if items.is_empty() => {
                self.point(before, Some(before.chars().count()), self.secret_start(before), echo, prompt, io);
                let _ = writeln!(io.err(), "% Unrecognized command");
                Status::Syntax
            }
            Ok(items) => {
                let width = items.iter().map(|i| i.word.chars().count()).max().unwrap_or(0);
                for item in items {
                    let _ = writeln!(io.out, "  {:<width$}  {}", item.word, item.help);
                }
                Status::Ok
            }
            Err(MatchError::Invalid { column, .. }) => {
                self.point(before, Some(column), self.secret_start(before), echo, prompt, io);
                let _ = writeln!(io.err(), "% Invalid input detected at '^' marker.");
                Status::Syntax
            }
            Err(_) => {
                let _ = writeln!(io.err(), "% Ambiguous command: \"{}\"", before.trim());
                Status::Syntax
            }
        }
    }
}

/// The function a matched command calls (one of the shell's own commands, or a command
/// handler), unless the session may run only read-only commands and this is not one.
fn handler(grammar: &Grammar, session: &Session, matched: &Matched) -> Result<Handler, CmdError> {
    if session.readonly && !matched.readonly {
        return Err(CmdError::Denied(
            "Without this node's enable secret a mate runs only read-only commands (show commands of user mode)".into(),
        ));
    }
    let name = &grammar.commands[matched.command].handler;
    BUILTINS
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, h)| *h)
        .or_else(|| crate::handlers::lookup(name))
        .ok_or_else(|| CmdError::Failed(format!("no handler {name}")))
}

/// Appends one line to the audit log: who ran what, in which mode, and how it ended.
fn audit(
    node: &Node,
    session: &Session,
    mode: String,
    command: &str,
    outcome: Outcome,
) -> Result<(), crate::store::StoreError> {
    node.store.audit_append(&AuditEntry {
        at: now_text(),
        user: session.user.clone(),
        source: session.source.clone(),
        mode,
        command: command.to_string(),
        outcome: outcome.as_str().to_string(),
    })
}
