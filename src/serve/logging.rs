//! Daemon logs: to standard error and appended to `coresh.log` in the data directory,
//! with levels (`--log-level`, or `RUST_LOG` when set) and fixed field names
//! (`node`, `peer`, `subsystem`).

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

/// File name of the node's log.
pub const LOG_FILE: &str = "coresh.log";

/// Installs the global subscriber.
pub fn init(data_dir: &Path, level: &str) -> anyhow::Result<()> {
    let path = data_dir.join(LOG_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open the log {}", path.display()))?;
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(level)).context("log level")?;
    let ansi =
        std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var("TERM").map_or(true, |t| t != "dumb");
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi))
        .with(fmt::layer().with_writer(Mutex::new(file)).with_ansi(false))
        .try_init()
        .context("logging already set up")?;
    Ok(())
}
