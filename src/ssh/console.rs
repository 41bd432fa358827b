//! Console channels: an operator's shell or command runs as a child `coresh` process
//! (the shell's binary, pinned when the daemon starts),
//! on a pseudo-terminal of its own when the client asked for one (line editing, TAB,
//! `?`, history and window resizes then work as on a local terminal), on pipes when it
//! did not (batch behaviour: no prompts, no escape codes, errors on stderr). This file
//! bridges the SSH channel and the child: input, resizes, end of input, the idle
//! timeout, and the child's exit status back to the client.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use russh::ChannelId;
use russh::server::Handle;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the SSH side hands to a running console.
#[derive(Debug)]
pub enum Input {
    /// Bytes the client typed or sent.
    Data(Vec<u8>),
    /// The client's window changed.
    Resize { cols: u32, rows: u32 },
    /// The client will send nothing more.
    Eof,
    /// The client closed the channel.
    Close,
}

/// The terminal a client asked for.
#[derive(Debug, Clone)]
pub struct Terminal {
    /// Its type (`TERM`): `dumb` turns escape codes off.
    pub term: String,
    pub cols: u32,
    pub rows: u32,
}

/// What to run for one console channel.
#[derive(Debug, Clone)]
pub struct Launch {
    pub data_dir: PathBuf,
    pub user: String,
    pub address: IpAddr,
    /// The session's id in `show sessions`.
    pub session_id: i64,
    pub terminal: Option<Terminal>,
    /// One line to run (an exec request); `None` runs the shell.
    pub command: Option<String>,
    /// Closes a shell after this long without input.
    pub idle: Option<Duration>,
}

/// How a console ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The shell or command ended with this status.
    Exited(i32),
    /// No input for the idle timeout.
    Idle(Duration),
    /// The client closed the channel or went away.
    Closed,
    /// The child could not be started.
    Failed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Exited(code) => write!(f, "exit status {code}"),
            End::Idle(d) => write!(f, "idle timeout after {} seconds", d.as_secs()),
            End::Closed => write!(f, "closed by the client"),
            End::Failed(e) => write!(f, "could not start: {e}"),
        }
    }
}

/// Where input for the child goes.
enum Writer {
    Pty(pty_process::OwnedWritePty),
    Pipe(Option<tokio::process::ChildStdin>),
}

/// A started child and its streams.
struct Started {
    child: Child,
    output: Box<dyn AsyncRead + Unpin + Send>,
    writer: Writer,
    /// Copies the child's stderr to the channel (pipes only).
    errors: Option<tokio::task::JoinHandle<()>>,
}

/// The binary this daemon runs: `/proc/self/exe`, which still opens after the file was
/// replaced (an upgrade, a rebuild).
fn self_exe() -> Result<PathBuf, String> {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        return Ok(proc);
    }
    std::env::current_exe().map_err(|e| format!("cannot find the coresh binary: {e}"))
}

/// The shell's binary (`coresh` beside this one), opened once: [`pin_shell`] when the
/// daemon starts.
static SHELL: OnceLock<Option<File>> = OnceLock::new();

/// Opens the shell's binary for this daemon's consoles and exec requests, so that they
/// run the release the daemon runs even after the files were replaced. Called once
/// when the daemon starts.
pub fn pin_shell() {
    SHELL.get_or_init(|| {
        let here = std::env::current_exe().ok()?;
        File::open(here.with_file_name(SHELL_BINARY)).ok()
    });
}

/// The binary a console or an exec request runs: the shell's, as [`pin_shell`] opened it
/// (started through that descriptor, which every child inherits until its exec), or this
/// daemon's own binary, which runs consoles too, when there is none beside it.
pub fn shell_exe() -> Result<PathBuf, String> {
    pin_shell();
    match SHELL.get() {
        Some(Some(file)) => Ok(PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))),
        _ => self_exe(),
    }
}

/// The shell's binary, installed beside the node's.
const SHELL_BINARY: &str = "coresh";

/// Where the child finds an exec request's line: its environment, which only its own
/// user can read (an argument would show in `ps` to everyone, secrets and all).
const COMMAND_ENV: &str = "CORESH_CONSOLE_COMMAND";

/// The child's arguments: who, from where, which session.
fn child_args(launch: &Launch) -> Vec<String> {
    vec![
        "--data-dir".into(),
        launch.data_dir.display().to_string(),
        "console-session".into(),
        "--user".into(),
        launch.user.clone(),
        "--source".into(),
        launch.address.to_string(),
        "--session".into(),
        launch.session_id.to_string(),
    ]
}

/// The child's whole environment: the terminal type, and an exec request's line.
fn child_env(launch: &Launch, term: &str) -> Vec<(&'static str, String)> {
    let mut env = vec![("TERM", term.to_string())];
    if let Some(line) = &launch.command {
        env.push((COMMAND_ENV, line.clone()));
    }
    env
}

fn start(launch: &Launch, handle: &Handle, channel: ChannelId) -> Result<Started, String> {
    let exe = shell_exe()?;
    let args = child_args(launch);
    match &launch.terminal {
        Some(t) => {
            let (pty, pts) = pty_process::open().map_err(|e| format!("cannot open a pseudo-terminal: {e}"))?;
            pty.resize(size(t.cols, t.rows)).map_err(|e| format!("cannot size the pseudo-terminal: {e}"))?;
            let child = pty_process::Command::new(exe)
                .arg0("coresh")
                .args(&args)
                .env_clear()
                .envs(child_env(launch, &t.term))
                .kill_on_drop(true)
                .spawn(pts)
                .map_err(|e| format!("cannot start the shell: {e}"))?;
            let (read, write) = pty.into_split();
            Ok(Started { child, output: Box::new(read), writer: Writer::Pty(write), errors: None })
        }
        None => {
            let mut child = tokio::process::Command::new(exe)
                .arg0("coresh")
                .args(&args)
                .env_clear()
                .envs(child_env(launch, "dumb"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start the shell: {e}"))?;
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err("the shell's pipes are missing".into());
            };
            let errors = tokio::spawn(copy_errors(stderr, handle.clone(), channel));
            Ok(Started { child, output: Box::new(stdout), writer: Writer::Pipe(Some(stdin)), errors: Some(errors) })
        }
    }
}

fn size(cols: u32, rows: u32) -> pty_process::Size {
    let clamp = |n: u32, default: u16| if n == 0 { default } else { u16::try_from(n).unwrap_or(u16::MAX) };
    pty_process::Size::new(clamp(rows, 24), clamp(cols, 80))
}

async fn copy_errors(mut stderr: tokio::process::ChildStderr, handle: Handle, channel: ChannelId) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 || handle.extended_data(channel, 1, Bytes::copy_from_slice(&buf[..n])).await.is_err() {
            return;
        }
    }
}

/// Runs one console until it ends; [`finish`] then tells the client.
pub async fn run(handle: Handle, channel: ChannelId, launch: Launch, mut input: mpsc::Receiver<Input>) -> End {
    let Started { mut child, mut output, mut writer, errors } = match start(&launch, &handle, channel) {
        Ok(s) => s,
        Err(e) => {
            let _ = handle.extended_data(channel, 1, Bytes::from(format!("% {e}\r\n"))).await;
            return End::Failed(e);
        }
    };
    let idle = launch.idle.filter(|_| launch.command.is_none());
    let mut deadline = idle.map(|d| Instant::now() + d);
    let mut buf = vec![0u8; 32 * 1024];
    let stopped = loop {
        let timeout = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = output.read(&mut buf) => match read {
                // A pseudo-terminal answers EIO once the child has closed it.
                Ok(0) | Err(_) => break None,
                Ok(n) => {
                    if handle.data(channel, Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        break Some(End::Closed);
                    }
                }
            },
            message = input.recv() => match message {
                Some(Input::Data(bytes)) => {
                    deadline = idle.map(|d| Instant::now() + d);
                    let written = match &mut writer {
                        Writer::Pty(w) => w.write_all(&bytes).await,
                        Writer::Pipe(Some(w)) => w.write_all(&bytes).await,
                        Writer::Pipe(None) => Ok(()),
                    };
                    if let Err(e) = written {
                        tracing::debug!(subsystem = "ssh", error = %e, "console input not delivered");
                    }
                }
                Some(Input::Resize { cols, rows }) => {
                    if let Writer::Pty(w) = &writer {
                        let _ = w.resize(size(cols, rows));
                    }
                }
                Some(Input::Eof) => match &mut writer {
                    // End of input on a terminal is the EOF character (^D) at a line start.
                    Writer::Pty(w) => {
                        let _ = w.write_all(&[4]).await;
                    }
                    Writer::Pipe(stdin) => *stdin = None,
                },
                Some(Input::Close) | None => break Some(End::Closed),
            },
            () = timeout => {
                let minutes = idle.map_or(0, |d| d.as_secs().div_ceil(60));
                let note = format!("\r\n% Idle timeout: no input for {minutes} minute(s); session closed.\r\n");
                let _ = handle.data(channel, Bytes::from(note)).await;
                break idle.map(End::Idle);
            }
        }
    };
    let end = match stopped {
        Some(end) => {
            hang_up(&mut child).await;
            end
        }
        None => match child.wait().await {
            Ok(status) => End::Exited(status.code().unwrap_or(1)),
            Err(e) => End::Failed(e.to_string()),
        },
    };
    if let Some(errors) = errors {
        let _ = errors.await;
    }
    end
}

/// Ends the child as a closed terminal would (SIGHUP to its process group), and
/// forcibly if it has not gone within two seconds.
async fn hang_up(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a pid this process started; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGHUP);
        }
    }
    if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Tells the client how the console ended (its exit status) and closes the channel.
pub async fn finish(handle: &Handle, channel: ChannelId, end: &End) {
    let code = match end {
        End::Closed => return,
        End::Exited(code) => u32::try_from(*code).unwrap_or(1),
        _ => 1,
    };
    let _ = handle.exit_status_request(channel, code).await;
    let _ = handle.eof(channel).await;
    let _ = handle.close(channel).await;
}
