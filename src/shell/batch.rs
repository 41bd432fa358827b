//! Batch mode: lines from `-c` options or from standard input when it is not a
//! terminal. No prompts (unless `--echo`), no escape codes; the first line that fails
//! ends the run with its exit status.

use std::io::{BufRead, Write};

use super::{BatchConsole, Echo, Shell, Status, Streams};

/// Runs `lines` in order; returns the exit status of the run.
pub fn run(shell: &mut Shell, lines: impl Iterator<Item = std::io::Result<Vec<u8>>>, echo: bool, secret: Option<String>) -> i32 {
    let mut console = BatchConsole { secret };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let (mut out, mut err) = (stdout.lock(), stderr.lock());
    let echo = if echo { Echo::Transcript } else { Echo::Quiet };
    for line in lines {
        let bytes = match line {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(err, "% Cannot read input: {e}");
                return Status::Failed.code();
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            let _ = writeln!(err, "% Invalid input: the line is not valid UTF-8");
            return Status::Syntax.code();
        };
        // A transcript keeps results and errors in one stream, in order.
        let err: Option<&mut dyn Write> = if echo == Echo::Transcript { None } else { Some(&mut err) };
        let executed = shell.run_line(&text, echo, &mut console, &mut Streams { out: &mut out, err });
        let _ = out.flush();
        if executed.status != Status::Ok {
            return executed.status.code();
        }
        if executed.quit {
            break;
        }
    }
    Status::Ok.code()
}

/// Lines of standard input, as bytes (invalid UTF-8 is reported per line).
pub fn stdin_lines() -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    std::io::stdin().lock().split(b'\n')
}
