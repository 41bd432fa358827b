//! The node's own commands, `serve`, `load` and `lab`: run here by the `coresh-node`
//! binary, or handed to it by the shell's binary, which does not carry their code.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use super::{Command, Lab};

/// The node's binary, installed beside the shell's.
pub const BINARY: &str = "coresh-node";

/// Runs `serve`, `load` or `lab` in this process.
pub fn run(command: Command, data_dir: PathBuf) -> anyhow::Result<i32> {
    match command {
        Command::Serve { http_listen, ssh_listen, log_level, tls_cert, tls_key, http_timeout, login_grace } => {
            let tls = tls_cert.zip(tls_key);
            let limits = crate::serve::Limits {
                http_timeout: std::time::Duration::from_secs(http_timeout),
                login_grace: std::time::Duration::from_secs(login_grace),
            };
            crate::serve::run(crate::serve::ServeOptions {
                data_dir,
                http_listen,
                ssh_listen,
                log_level,
                tls,
                limits,
            })?;
            Ok(0)
        }
        Command::Load { target, rate, seconds, connections, devices, seed, json } => {
            let duration =
                std::time::Duration::try_from_secs_f64(seconds).map_err(|_| anyhow::anyhow!("bad --seconds"))?;
            let options = crate::load::LoadOptions { target, rate, duration, connections, devices, seed };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(crate::load::run(options))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "{} check-ins in {:.1} s: {:.0}/s, {} failed; latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    report.ok,
                    report.seconds,
                    report.per_second,
                    report.failed,
                    report.p50_ms,
                    report.p90_ms,
                    report.p99_ms,
                    report.max_ms
                );
            }
            Ok(if report.failed == 0 { 0 } else { 1 })
        }
        Command::Lab { what: Lab::Up { nodes, dir } } => {
            let dir = dir.unwrap_or_else(crate::lab::default_dir);
            let lab = crate::lab::up(&dir, nodes)?;
            println!("Lab up in {}:\n{}", dir.display(), crate::lab::describe(&lab));
            println!("Stop it with: coresh lab down --dir {}", dir.display());
            Ok(0)
        }
        Command::Lab { what: Lab::Down { dir } } => {
            let dir = dir.unwrap_or_else(crate::lab::default_dir);
            let stopped = crate::lab::down(&dir)?;
            println!("Lab down: {stopped} processes stopped, {} removed", dir.display());
            Ok(0)
        }
        _ => anyhow::bail!("only serve, load and lab are the node's own commands"),
    }
}

/// Hands the command line to `coresh-node` beside this binary, in this process (it
/// keeps the process id, the descriptors and the environment): returns only when it
/// could not start it.
pub fn exec(_: Command, _: PathBuf) -> anyhow::Result<i32> {
    let here = std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot find this binary: {e}"))?;
    let node = here.with_file_name(BINARY);
    let error = std::process::Command::new(&node).args(std::env::args_os().skip(1)).exec();
    anyhow::bail!("cannot start {} (serve, load and lab run there): {error}", node.display())
}
