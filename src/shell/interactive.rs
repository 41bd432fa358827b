//! The interactive shell on a terminal (rustyline): line editing, history, TAB
//! completion from the command graph, and `?` help that answers at once, as on IOS.
//! With TERM=dumb, rustyline falls back to plain line reading and no escape codes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
use rustyline::config::Configurer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler, Helper, KeyEvent,
    RepeatCount,
};

use super::pager::{page, terminal_rows};
use super::{Echo, Shell, Status, Streams, TtyConsole};

/// Lines per screen when the terminal does not say (as on IOS).
const DEFAULT_LENGTH: u32 = 24;
use crate::cli::{Line, Matcher, Tree};

/// Completion for the mode the session is in.
struct CliHelper {
    tree: &'static Tree,
    mode: String,
}

impl Completer for CliHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &rustyline::Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let Ok(lexed) = Line::lex(before) else {
            return Ok((pos, Vec::new()));
        };
        let (root, seg) = match lexed.pipes.last() {
            Some(seg) => (self.tree.filters, seg),
            None => (self.tree.root(&self.mode).unwrap_or(0), &lexed.command),
        };
        let start = match seg.tokens.last() {
            Some(last) if !lexed.trailing_space => last.start,
            _ => pos,
        };
        let words = Matcher { tree: self.tree }.complete(root, &lexed, seg);
        let pairs = words.into_iter().map(|w| Pair { display: w.clone(), replacement: format!("{w} ") }).collect();
        Ok((start, pairs))
    }
}

impl Hinter for CliHelper {
    type Hint = String;
}
impl Highlighter for CliHelper {}
impl Validator for CliHelper {}
impl Helper for CliHelper {}

/// `?` outside quotes: remember the line and stop reading so help can be printed.
struct HelpKey(Arc<Mutex<Option<(String, String)>>>);

impl ConditionalEventHandler for HelpKey {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        let (before, after) = ctx.line().split_at(ctx.pos());
        if before.chars().filter(|&c| c == '"').count() % 2 == 1 {
            return None;
        }
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some((before.to_string(), after.to_string()));
        }
        Some(Cmd::Interrupt)
    }
}

/// Runs the interactive shell until `exit` or end of input; returns the exit status.
pub fn run(shell: &mut Shell) -> i32 {
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    let config =
        Config::builder().auto_add_history(false).completion_type(CompletionType::List).bracketed_paste(!dumb).build();
    let mut editor: Editor<CliHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("% Cannot use the terminal: {e}");
            return Status::Failed.code();
        }
    };
    if dumb {
        editor.enable_synchronized_output(false);
    }
    let help_request = Arc::new(Mutex::new(None));
    editor.bind_sequence(KeyEvent::from('?'), EventHandler::Conditional(Box::new(HelpKey(help_request.clone()))));
    let mut console = TtyConsole;
    shell.session.term_length = terminal_rows().unwrap_or(DEFAULT_LENGTH);
    let mut initial = (String::new(), String::new());
    loop {
        let prompt = shell.prompt();
        editor.set_helper(Some(CliHelper { tree: shell.tree, mode: shell.session.mode.clone() }));
        let read = editor.readline_with_initial(&prompt, (&initial.0, &initial.1));
        initial = (String::new(), String::new());
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        match read {
            Ok(line) => {
                let mut screen = Vec::new();
                let width = prompt.chars().count();
                let executed = shell.run_line(
                    &line,
                    Echo::Typed(width),
                    &mut console,
                    &mut Streams { out: &mut screen, err: None },
                );
                page(&String::from_utf8_lossy(&screen), shell.session.term_length, &mut out);
                // A line that carried a secret (or may have: cut after a bad word) is not kept.
                if executed.keepable && !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if executed.quit {
                    return 0;
                }
            }
            Err(ReadlineError::Interrupted) => {
                let asked = help_request.lock().ok().and_then(|mut slot| slot.take());
                let _ = writeln!(out, "{}", if asked.is_some() { "?" } else { "" });
                if let Some((before, after)) = asked {
                    let mut screen = Vec::new();
                    let width = prompt.chars().count();
                    let help = format!("{before}?");
                    shell.run_line(
                        &help,
                        Echo::Typed(width),
                        &mut console,
                        &mut Streams { out: &mut screen, err: None },
                    );
                    page(&String::from_utf8_lossy(&screen), shell.session.term_length, &mut out);
                    initial = (before, after);
                }
            }
            Err(ReadlineError::Eof) => {
                let _ = writeln!(out);
                return 0;
            }
            Err(e) => {
                let _ = writeln!(out, "% Terminal error: {e}");
                return Status::Failed.code();
            }
        }
        let _ = out.flush();
    }
}
