//! Test harness: a fresh node per test, the real `coresh` binary run in batch mode or
//! on a pseudo-terminal, and readable failures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A node in a temporary data directory, removed when dropped.
pub struct TestNode {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

/// What a batch run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code().unwrap_or(-1),
        }
    }

    /// Asserts the exit status, showing both streams when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "exit status\n--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_coresh")
}

impl TestNode {
    pub fn new() -> TestNode {
        TestNode { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory (a subdirectory, so first use creates it).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// A `coresh` command on this node, with a clean environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("USER", "tester")
            .env("CORESH_DATA_DIR", self.data_dir());
        cmd
    }

    /// Runs `coresh -c L1 -c L2 ...`.
    pub fn run(&self, lines: &[&str]) -> Run {
        self.run_with(lines, &[], &[])
    }

    /// Runs `coresh` with extra arguments, `-c` lines and environment.
    pub fn run_with(&self, lines: &[&str], args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        for line in lines {
            cmd.arg("-c").arg(line);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.stdin(Stdio::null()).output().expect("run coresh"))
    }

    /// Runs `coresh` with `input` on standard input (not a terminal).
    pub fn run_stdin(&self, input: &[u8], args: &[&str]) -> Run {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn coresh");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait coresh");
        let _ = writer.join();
        Run::from(out)
    }

    /// `show failover | json`, parsed.
    pub fn failover_json(&self) -> serde_json::Value {
        let run = self.run(&["show failover | json"]);
        run.expect_code(0);
        serde_json::from_str(&run.stdout).expect("json")
    }
}
