//! The interactive shell on a terminal: line editing, history, TAB completion from the
//! command graph, and `?` help that answers at once, as on IOS. The terminals automation
//! asks for (vt100 and its kin, `ansi`, `vanilla`, `dumb`) get the IOS-style editor of
//! `plain`, which writes no escape code; the others get rustyline.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rustyline::completion::{Completer, Pair};
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
use super::plain::{self, Plain};
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
        let (start, words) = completions(self.tree, &self.mode, &line[..pos]);
        let pairs = words.into_iter().map(|w| Pair { display: w.clone(), replacement: format!("{w} ") }).collect();
        Ok((start, pairs))
    }
}

/// What the word before the cursor may become in `mode`: where it starts (a byte
/// offset into `before`) and the words.
fn completions(tree: &Tree, mode: &str, before: &str) -> (usize, Vec<String>) {
    let Ok(lexed) = Line::lex(before) else {
        return (before.len(), Vec::new());
    };
    let (root, seg) = match lexed.pipes.last() {
        Some(seg) => (tree.filters, seg),
        None => (tree.root(mode).unwrap_or(0), &lexed.command),
    };
    let start = match seg.tokens.last() {
        Some(last) if !lexed.trailing_space => last.start,
        _ => before.len(),
    };
    (start, Matcher { tree }.complete(root, &lexed, seg))
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

/// The line editor of this terminal.
enum Reader {
    Rich { editor: Box<Editor<CliHelper, DefaultHistory>>, help: Arc<Mutex<Option<(String, String)>>> },
    Plain(Plain),
}

impl Reader {
    fn open(term: &str) -> Result<Reader, String> {
        if plain::wanted(term) {
            return Plain::new().map(Reader::Plain).map_err(|e| e.to_string());
        }
        let config = Config::builder()
            .auto_add_history(false)
            .completion_type(CompletionType::List)
            .bracketed_paste(true)
            .build();
        let mut editor: Editor<CliHelper, DefaultHistory> = Editor::with_config(config).map_err(|e| e.to_string())?;
        let help = Arc::new(Mutex::new(None));
        editor.bind_sequence(KeyEvent::from('?'), EventHandler::Conditional(Box::new(HelpKey(help.clone()))));
        Ok(Reader::Rich { editor: Box::new(editor), help })
    }

    /// One line after `prompt`, starting with `initial`; `?` answers `Help`.
    fn read(&mut self, shell: &Shell, prompt: &str, initial: &(String, String)) -> Result<plain::Read, String> {
        let (tree, mode) = (shell.tree, shell.session.mode.clone());
        match self {
            Reader::Plain(p) => {
                let complete = |before: &str| {
                    let (start, words) = completions(tree, &mode, before);
                    (before[..start].chars().count(), words)
                };
                p.read(prompt, (&initial.0, &initial.1), &complete).map_err(|e| e.to_string())
            }
            Reader::Rich { editor, help } => {
                editor.set_helper(Some(CliHelper { tree, mode }));
                match editor.readline_with_initial(prompt, (&initial.0, &initial.1)) {
                    Ok(line) => Ok(plain::Read::Line(line)),
                    Err(ReadlineError::Interrupted) => {
                        let asked = help.lock().ok().and_then(|mut slot| slot.take());
                        let stdout = std::io::stdout();
                        let _ = writeln!(stdout.lock(), "{}", if asked.is_some() { "?" } else { "" });
                        Ok(asked.map_or(plain::Read::Interrupted, |(before, after)| plain::Read::Help(before, after)))
                    }
                    Err(ReadlineError::Eof) => {
                        let _ = writeln!(std::io::stdout().lock());
                        Ok(plain::Read::Eof)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }

    fn remember(&mut self, line: &str) {
        match self {
            Reader::Plain(p) => p.remember(line),
            Reader::Rich { editor, .. } => {
                let _ = editor.add_history_entry(line);
            }
        }
    }
}

/// Runs the interactive shell until `exit` or end of input; returns the exit status.
pub fn run(shell: &mut Shell) -> i32 {
    let term = std::env::var("TERM").unwrap_or_default();
    let mut reader = match Reader::open(&term) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("% Cannot use the terminal: {e}");
            return Status::Failed.code();
        }
    };
    let mut console = TtyConsole;
    shell.session.term_length = terminal_rows().unwrap_or(DEFAULT_LENGTH);
    let mut initial = (String::new(), String::new());
    loop {
        let prompt = shell.prompt();
        let read = reader.read(shell, &prompt, &initial);
        initial = (String::new(), String::new());
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let width = prompt.chars().count();
        match read {
            Ok(plain::Read::Line(line)) => {
                let mut screen = Vec::new();
                let executed = shell.run_line(
                    &line,
                    Echo::Typed(width),
                    &mut console,
                    &mut Streams { out: &mut screen, err: None },
                );
                page(&String::from_utf8_lossy(&screen), shell.session.term_length, &mut out);
                // A line that carried a secret (or may have: cut after a bad word) is not kept.
                if executed.keepable && !line.trim().is_empty() {
                    reader.remember(&line);
                }
                if executed.quit {
                    return 0;
                }
            }
            Ok(plain::Read::Help(before, after)) => {
                let mut screen = Vec::new();
                let help = format!("{before}?");
                shell.run_line(&help, Echo::Typed(width), &mut console, &mut Streams { out: &mut screen, err: None });
                page(&String::from_utf8_lossy(&screen), shell.session.term_length, &mut out);
                initial = (before, after);
            }
            Ok(plain::Read::Interrupted) => {}
            Ok(plain::Read::Eof) => return 0,
            Err(e) => {
                let _ = writeln!(out, "% Terminal error: {e}");
                return Status::Failed.code();
            }
        }
        let _ = out.flush();
    }
}
