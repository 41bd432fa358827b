//! The IOS-style line editor, for the terminals automation asks for (`vt100` and its
//! kin, `ansi`, paramiko's `vanilla`, `dumb`): the prompt is plain text, what is typed
//! is echoed as typed, and no escape code is ever written. An edit inside the line moves
//! the cursor with backspaces and reprints the rest, as an IOS device does. It reads the
//! keys an IOS user has: the arrows, Home/End and Delete (their escape sequences, read,
//! never written), Ctrl-A/E/B/F/D/K/U/W/P/N, Backspace, TAB (completes the word as far as
//! it is unique), `?` outside quotes (help at once: the `?` stays on the input line), and
//! Ctrl-C (the line is dropped). Lines longer than the terminal are not scrolled.
//!
//! The terminal is in raw mode while a line is read, its output processing as it was
//! (a line feed goes out as CR LF, as for all other output). Between lines its echo stays off,
//! so that input typed ahead (automation sends its next line before the prompt) is
//! echoed once, when its line is read.

use std::io::Write;

/// What reading a line gave.
pub enum Read {
    Line(String),
    /// `?`: the text before and after the cursor.
    Help(String, String),
    /// Ctrl-C.
    Interrupted,
    Eof,
}

/// The terminal's settings when the shell started, restored when it ends.
struct Terminal {
    saved: libc::termios,
}

fn attributes() -> std::io::Result<libc::termios> {
    // SAFETY: tcgetattr writes the termios of fd 0 into the zeroed struct it is given.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(t)
}

fn set(t: &libc::termios) -> std::io::Result<()> {
    // SAFETY: tcsetattr reads the termios given; fd 0 is the terminal.
    if unsafe { libc::tcsetattr(0, libc::TCSADRAIN, t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Terminal {
    fn take() -> std::io::Result<Terminal> {
        let saved = attributes()?;
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        set(&quiet)?;
        Ok(Terminal { saved })
    }

    /// Raw while a line is read: every key at once, no echo, no signals.
    fn raw(&self) -> std::io::Result<()> {
        let mut raw = self.saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::ICRNL | libc::INLCR | libc::IXON);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        set(&raw)
    }

    /// Between lines: as it was, but without echo.
    fn quiet(&self) {
        let mut quiet = self.saved;
        quiet.c_lflag &= !libc::ECHO;
        let _ = set(&quiet);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = set(&self.saved);
    }
}

/// Whether a terminal of type `term` gets this editor.
pub fn wanted(term: &str) -> bool {
    matches!(term, "dumb" | "vanilla" | "ansi" | "network") || term.starts_with("vt")
}

/// The editor, with its history.
pub struct Plain {
    terminal: Terminal,
    history: Vec<String>,
    /// The last line ended with a carriage return: a line feed right after it is part
    /// of the same Enter.
    after_cr: bool,
}

/// The line being edited and the cursor in it, with what is written for each edit.
struct Edit<'a> {
    line: Vec<char>,
    at: usize,
    out: &'a mut Vec<u8>,
}

impl Edit<'_> {
    fn put(&mut self, chars: &[char]) {
        let text: String = chars.iter().collect();
        self.out.extend_from_slice(text.as_bytes());
    }

    fn back(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(b'\x08', n));
    }

    fn insert(&mut self, c: char) {
        self.line.insert(self.at, c);
        let rest = self.line[self.at..].to_vec();
        self.put(&rest);
        self.at += 1;
        self.back(rest.len() - 1);
    }

    /// Removes `n` characters at the cursor and redraws the rest of the line.
    fn remove(&mut self, n: usize) {
        let n = n.min(self.line.len() - self.at);
        self.line.drain(self.at..self.at + n);
        let rest = self.line[self.at..].to_vec();
        self.put(&rest);
        self.out.extend(std::iter::repeat_n(b' ', n));
        self.back(rest.len() + n);
    }

    fn left(&mut self, n: usize) {
        let n = n.min(self.at);
        self.at -= n;
        self.back(n);
    }

    fn right(&mut self, n: usize) {
        let n = n.min(self.line.len() - self.at);
        let moved = self.line[self.at..self.at + n].to_vec();
        self.put(&moved);
        self.at += n;
    }

    fn backspace(&mut self, n: usize) {
        let n = n.min(self.at);
        self.left(n);
        self.remove(n);
    }

    fn replace(&mut self, text: &str) {
        self.left(self.at);
        let len = self.line.len();
        self.remove(len);
        for c in text.chars() {
            self.insert(c);
        }
    }

    fn word_start(&self) -> usize {
        let mut i = self.at;
        while i > 0 && self.line[i - 1] == ' ' {
            i -= 1;
        }
        while i > 0 && self.line[i - 1] != ' ' {
            i -= 1;
        }
        i
    }

    fn text(&self, from: usize, to: usize) -> String {
        self.line[from..to].iter().collect()
    }
}

/// The longest prefix every word shares.
fn common_prefix(words: &[String]) -> String {
    let Some(first) = words.first() else { return String::new() };
    let mut n = first.chars().count();
    for w in &words[1..] {
        n = n.min(first.chars().zip(w.chars()).take_while(|(a, b)| a == b).count());
    }
    first.chars().take(n).collect()
}

impl Plain {
    /// Takes the terminal on fd 0 (its echo goes off until the editor is dropped).
    pub fn new() -> std::io::Result<Plain> {
        Ok(Plain { terminal: Terminal::take()?, history: Vec::new(), after_cr: false })
    }

    pub fn remember(&mut self, line: &str) {
        if self.history.last().map(String::as_str) != Some(line) {
            self.history.push(line.to_string());
        }
    }

    /// Reads one line after `prompt`, starting with `initial` (before and after the
    /// cursor). `complete` gives, for the text before the cursor, where the word being
    /// completed starts (in characters) and the words it may be.
    pub fn read(
        &mut self,
        prompt: &str,
        initial: (&str, &str),
        complete: &dyn Fn(&str) -> (usize, Vec<String>),
    ) -> std::io::Result<Read> {
        self.terminal.raw()?;
        let read = self.edit(prompt, initial, complete);
        self.terminal.quiet();
        read
    }

    fn edit(
        &mut self,
        prompt: &str,
        initial: (&str, &str),
        complete: &dyn Fn(&str) -> (usize, Vec<String>),
    ) -> std::io::Result<Read> {
        let stdout = std::io::stdout();
        let mut input = std::io::stdin().lock();
        let mut out = Vec::new();
        let mut edit = Edit { line: Vec::new(), at: 0, out: &mut out };
        edit.out.extend_from_slice(prompt.as_bytes());
        for c in initial.0.chars().chain(initial.1.chars()) {
            edit.insert(c);
        }
        edit.left(initial.1.chars().count());
        let mut recalled = self.history.len();
        loop {
            {
                let mut screen = stdout.lock();
                screen.write_all(edit.out)?;
                screen.flush()?;
            }
            edit.out.clear();
            let Some(key) = next_key(&mut input)? else { return Ok(Read::Eof) };
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match key {
                Key::Char('\n') if after_cr && edit.line.is_empty() => {}
                Key::Char('\r' | '\n') => {
                    self.after_cr = key == Key::Char('\r');
                    stdout.lock().write_all(b"\n")?;
                    return Ok(Read::Line(edit.text(0, edit.line.len())));
                }
                Key::Char('?') if edit.line[..edit.at].iter().filter(|&&c| c == '"').count() % 2 == 0 => {
                    let (before, after) = (edit.text(0, edit.at), edit.text(edit.at, edit.line.len()));
                    let mut screen = stdout.lock();
                    screen.write_all(b"?\n")?;
                    screen.flush()?;
                    return Ok(Read::Help(before, after));
                }
                Key::Char('\x03') => {
                    stdout.lock().write_all(b"^C\n")?;
                    return Ok(Read::Interrupted);
                }
                Key::Char('\x04') if edit.line.is_empty() => {
                    stdout.lock().write_all(b"\n")?;
                    return Ok(Read::Eof);
                }
                Key::Char('\x04') | Key::Delete => edit.remove(1),
                Key::Char('\x7f' | '\x08') => edit.backspace(1),
                Key::Char('\x01') | Key::Home => edit.left(edit.at),
                Key::Char('\x05') | Key::End => edit.right(edit.line.len()),
                Key::Char('\x02') | Key::Left => edit.left(1),
                Key::Char('\x06') | Key::Right => edit.right(1),
                Key::Char('\x0b') => edit.remove(edit.line.len()),
                Key::Char('\x15') => {
                    let at = edit.at;
                    edit.backspace(at);
                }
                Key::Char('\x17') => {
                    let n = edit.at - edit.word_start();
                    edit.backspace(n);
                }
                Key::Char('\x10') | Key::Up if recalled > 0 => {
                    recalled -= 1;
                    edit.replace(&self.history[recalled]);
                }
                Key::Char('\x0e') | Key::Down if recalled < self.history.len() => {
                    recalled += 1;
                    let line = self.history.get(recalled).cloned().unwrap_or_default();
                    edit.replace(&line);
                }
                Key::Char('\t') => {
                    let before = edit.text(0, edit.at);
                    let (start, words) = complete(&before);
                    let typed = before.chars().count().saturating_sub(start);
                    let add = match words.as_slice() {
                        [one] => format!("{one} "),
                        _ => common_prefix(&words),
                    };
                    for c in add.chars().skip(typed) {
                        edit.insert(c);
                    }
                }
                Key::Char(c) if !c.is_control() => edit.insert(c),
                _ => {}
            }
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Key {
    Char(char),
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    Delete,
    /// An escape sequence this editor does not use.
    Other,
}

fn byte(input: &mut impl std::io::Read) -> std::io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match input.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The next key: a character (UTF-8 decoded; an invalid byte is dropped), or an escape
/// sequence (`ESC [` or `ESC O`, parameters, a final byte).
fn next_key(input: &mut impl std::io::Read) -> std::io::Result<Option<Key>> {
    let Some(first) = byte(input)? else { return Ok(None) };
    if first == 0x1b {
        let Some(kind) = byte(input)? else { return Ok(None) };
        if kind != b'[' && kind != b'O' {
            return Ok(Some(Key::Other));
        }
        let mut params = Vec::new();
        loop {
            let Some(b) = byte(input)? else { return Ok(None) };
            // Parameters are digits and ';' (bounded: a sequence is short).
            if (b.is_ascii_digit() || b == b';') && params.len() < 16 {
                params.push(b);
                continue;
            }
            return Ok(Some(match (b, params.as_slice()) {
                (b'A', _) => Key::Up,
                (b'B', _) => Key::Down,
                (b'C', _) => Key::Right,
                (b'D', _) => Key::Left,
                (b'H', _) | (b'~', b"1" | b"7") => Key::Home,
                (b'F', _) | (b'~', b"4" | b"8") => Key::End,
                (b'~', b"3") => Key::Delete,
                _ => Key::Other,
            }));
        }
    }
    let len = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Ok(Some(Key::Other)),
    };
    let mut bytes = vec![first];
    for _ in 1..len {
        let Some(b) = byte(input)? else { return Ok(None) };
        bytes.push(b);
    }
    Ok(Some(std::str::from_utf8(&bytes).ok().and_then(|s| s.chars().next()).map_or(Key::Other, Key::Char)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        let mut input = bytes;
        std::iter::from_fn(|| next_key(&mut input).unwrap()).collect()
    }

    #[test]
    fn keys_are_read_from_bytes_and_escape_sequences() {
        assert_eq!(
            keys(b"a\x1b[A\x1b[3~\x1bOD\xc3\xa9\x1b[1;5C"),
            vec![Key::Char('a'), Key::Up, Key::Delete, Key::Left, Key::Char('é'), Key::Right]
        );
    }

    #[test]
    fn edits_inside_the_line_use_backspaces_and_no_escape_code() {
        let mut out = Vec::new();
        let mut e = Edit { line: Vec::new(), at: 0, out: &mut out };
        for c in "shw".chars() {
            e.insert(c);
        }
        e.left(1);
        e.insert('o');
        e.right(1);
        e.backspace(1);
        let line = e.text(0, e.line.len());
        assert_eq!(line, "sho");
        assert_eq!(out, b"shw\x08ow\x08w\x08 \x08".to_vec());
        assert!(!out.contains(&0x1b));
    }

    #[test]
    fn completion_adds_what_the_words_share() {
        assert_eq!(common_prefix(&["failover".into(), "failures".into()]), "fail");
        assert_eq!(common_prefix(&[]), "");
    }
}
