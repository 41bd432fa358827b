//! `--More--` paging of long output on a terminal, as `terminal length N` asks
//! (0 turns it off; batch runs never page). Space shows the next screen, Enter one more
//! line, `q` (or Ctrl-C) drops the rest. The prompt is erased with plain characters, so
//! a dumb terminal gets no escape codes.

use std::io::{Read, Write};

const MORE: &str = " --More-- ";

/// Writes `text` to `out`, pausing every `length - 1` lines for a key from the terminal.
pub fn page(text: &str, length: u32, out: &mut dyn Write) {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let screen = usize::try_from(length).unwrap_or(usize::MAX).saturating_sub(1);
    if screen == 0 || lines.len() <= screen + 1 {
        let _ = out.write_all(text.as_bytes());
        return;
    }
    let mut shown = 0;
    let mut budget = screen;
    while shown < lines.len() {
        let end = (shown + budget).min(lines.len());
        for line in &lines[shown..end] {
            let _ = out.write_all(line.as_bytes());
        }
        shown = end;
        if shown == lines.len() {
            break;
        }
        let _ = write!(out, "{MORE}");
        let _ = out.flush();
        let key = read_key();
        let _ = write!(out, "\r{}\r", " ".repeat(MORE.len()));
        budget = match key {
            Some(b' ') => screen,
            Some(b'\r' | b'\n') => 1,
            _ => break,
        };
    }
    let _ = out.flush();
}

/// One key from standard input with echo and line buffering off; `None` on error.
fn read_key() -> Option<u8> {
    // SAFETY: termios is plain data; tcgetattr/tcsetattr only read and write it for fd 0.
    unsafe {
        let mut saved: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut saved) != 0 {
            return None;
        }
        let mut raw = saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, &raw) != 0 {
            return None;
        }
        let mut byte = [0u8; 1];
        let got = std::io::stdin().lock().read(&mut byte);
        libc::tcsetattr(libc::STDIN_FILENO, libc::TCSADRAIN, &saved);
        match got {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }
}

/// Rows of the terminal on standard output, if it is one.
pub fn terminal_rows() -> Option<u32> {
    terminal_size().map(|(_, rows)| rows)
}

/// The size of the terminal on standard output, as (columns, rows); `None` when
/// standard output is not a terminal or the terminal does not say.
pub fn terminal_size() -> Option<(u32, u32)> {
    // SAFETY: winsize is plain data filled by the ioctl.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        (libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_row > 0)
            .then_some((u32::from(size.ws_col), u32::from(size.ws_row)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_output_and_length_zero_are_not_paged() {
        let mut out = Vec::new();
        super::page("a\nb\nc\n", 0, &mut out);
        assert_eq!(out, b"a\nb\nc\n");
        let mut out = Vec::new();
        super::page("a\nb\n", 3, &mut out);
        assert_eq!(out, b"a\nb\n");
    }
}
