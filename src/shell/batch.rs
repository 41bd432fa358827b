//! Batch mode: lines from `-c` options or from standard input when it is not a
//! terminal. No prompts (unless `--echo`), no escape codes; the first line that fails
//! ends the run with its exit status (with `--keep-going`, the run goes on and exits
//! with the status of the first failure).

use std::io::{BufRead, Write};

use super::{BatchConsole, Echo, Shell, Status, Streams};

/// How a batch run behaves.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// Print `PROMPT COMMAND` before each result.
    pub echo: bool,
    /// Go on after a failing line.
    pub keep_going: bool,
    /// The enable secret handed over for this run.
    pub secret: Option<String>,
}

/// Runs `lines` in order; returns the exit status of the run.
pub fn run(shell: &mut Shell, lines: impl Iterator<Item = std::io::Result<Vec<u8>>>, options: BatchOptions) -> i32 {
    let BatchOptions { echo, keep_going, secret } = options;
    let mut first_failure = Status::Ok;
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
            if !keep_going {
                return Status::Syntax.code();
            }
            if first_failure == Status::Ok {
                first_failure = Status::Syntax;
            }
            continue;
        };
        // A transcript keeps results and errors in one stream, in order.
        let err: Option<&mut dyn Write> = if echo == Echo::Transcript { None } else { Some(&mut err) };
        let executed = shell.run_line(&text, echo, &mut console, &mut Streams { out: &mut out, err });
        let _ = out.flush();
        if executed.status != Status::Ok {
            if !keep_going {
                return executed.status.code();
            }
            if first_failure == Status::Ok {
                first_failure = executed.status;
            }
        }
        if executed.quit {
            break;
        }
    }
    first_failure.code()
}

/// Lines of standard input, as bytes (invalid UTF-8 is reported per line).
pub fn stdin_lines() -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    std::io::stdin().lock().split(b'\n')
}
