//! Command handlers: one function per grammar `-> handler` name, each taking the
//! typed [`Args`] and returning a typed [`Reply`]. [`HANDLERS`] is the only place
//! names meet functions (the shell's own commands, which move between modes, are in
//! its table); a test checks that the two and the grammar agree. A command made of other
//! commands runs them through the shell's pipeline with [`Ctx::run`].

mod console;
mod core;
mod failover;
mod ha_config;
mod ha_status;
mod mate;
mod notify;
mod running_config;
mod show;
mod support;
mod sync;
mod system;
mod trust;
mod users;
mod validate;

use chrono::Utc;

use crate::cli::Args;
use crate::ha::{self, Cause, Settings};
use crate::node::Node;
use crate::report::{CmdError, Reply};
use crate::session::{Console, Session};

pub use running_config::running_config;

/// What a handler may use.
pub struct Ctx<'a> {
    /// The local node.
    pub node: &'a mut Node,
    /// The operator's session.
    pub session: &'a mut Session,
    /// How to ask the operator for a secret.
    pub console: &'a mut dyn Console,
    /// The full line, secrets removed, as the history records it.
    pub line: &'a str,
    /// For `do`: the command matched in another mode, and that mode.
    pub inner: Option<&'a (String, Box<crate::cli::Matched>)>,
    /// How a command made of other commands runs one: the shell's one pipeline.
    pub runner: Runner,
}

/// Runs one more line for a command made of other commands (`show tech-support`,
/// `failover validate`), through the shell's pipeline: matched in the session's mode,
/// its secrets redacted, audited, run by its handler.
pub type Runner = fn(&mut Ctx, &str) -> Result<Reply, CmdError>;

impl Ctx<'_> {
    /// The node's current settings.
    pub fn settings(&self) -> Result<Settings, CmdError> {
        Ok(self.node.settings()?)
    }

    /// Who caused a change made by this command, and the command as the reason.
    pub fn cause(&self) -> Cause {
        Cause { actor: self.session.actor(), reason: self.line.to_string() }
    }

    /// Refuses a command that connects to another node when it runs for a mate: a
    /// peer's request reaches this node and no further.
    pub fn not_for_a_mate(&self) -> Result<(), CmdError> {
        if self.session.source.starts_with(crate::peer::message::MATE_SOURCE_PREFIX) {
            return Err(CmdError::Denied("A command run for the mate cannot reach another node".into()));
        }
        Ok(())
    }

    /// Runs `line` as if typed in the session's mode (see [`Runner`]).
    pub fn run(&mut self, line: &str) -> Result<Reply, CmdError> {
        (self.runner)(self, line)
    }

    /// Saves a settings change made by this command.
    pub fn update(&mut self, edit: impl FnOnce(&mut Settings)) -> Result<ha::Applied, CmdError> {
        let cause = self.cause();
        Ok(ha::update(&mut self.node.store, &cause, edit)?)
    }
}

/// A command handler.
pub type Handler = fn(&mut Ctx, &Args) -> Result<Reply, CmdError>;

/// Every handler, by the name the grammar uses.
pub const HANDLERS: &[(&str, Handler)] = &[
    ("failover_mode_primary", failover::mode_primary),
    ("failover_mode_secondary", failover::mode_secondary),
    ("failover_client_connection", failover::client_connection),
    ("hostname", system::hostname),
    ("enable_secret", system::enable_secret),
    ("audit_retention", system::audit_retention),
    ("ha_service", ha_config::service),
    ("ha_mode", ha_config::mode),
    ("ha_node_status", ha_config::node_status),
    ("ha_primary_host", ha_config::primary_host),
    ("ha_sync_start_time", ha_config::sync_start_time),
    ("ha_sync_run_every", ha_config::sync_run_every),
    ("ha_heartbeat_interval", ha_config::heartbeat_interval),
    ("ha_heartbeat_failures", ha_config::heartbeat_failures),
    ("ha_heartbeat_recheck", ha_config::heartbeat_recheck),
    ("ha_heartbeat_max_staleness", ha_config::heartbeat_max_staleness),
    ("ha_heartbeat_status_url", ha_config::heartbeat_status_url),
    ("ha_on_failure", ha_config::on_failure),
    ("ha_notify_email", ha_config::notify_email),
    ("ha_notify_on", ha_config::notify_on),
    ("show_version", show::version),
    ("show_clock", show::clock),
    ("show_failover", ha_status::failover),
    ("show_logging_ha", ha_status::ha_log),
    ("smtp_server", notify::smtp_server),
    ("smtp_from", notify::smtp_from),
    ("smtp_user", notify::smtp_user),
    ("notify_test", notify::notify_test),
    ("show_notifications", notify::show_notifications),
    ("username", users::username),
    ("show_users", users::show_users),
    ("exec_timeout", console::exec_timeout),
    ("session_limit", console::session_limit),
    ("login_block", console::login_block),
    ("login_delay", console::login_delay),
    ("show_sessions", console::show_sessions),
    ("clear_lockout", console::clear_lockout),
    ("show_failover_divergence", ha_status::divergence),
    ("show_failover_history", show::failover_history),
    ("show_running_config", show::running_config),
    ("show_audit", show::audit),
    ("show_tech_support", support::tech_support),
    ("show_core_summary", core::summary),
    ("show_devices", core::devices),
    ("enrollment_secret", core::enrollment_secret),
    ("device_enrollment", core::device_enrollment),
    ("atlas", core::atlas),
    ("show_ssh_local_key", trust::show_local_key),
    ("show_trusted_hosts", trust::show_trusted_hosts),
    ("ha_trusted_host", trust::trusted_host),
    ("failover_test_connection", trust::test_connection),
    ("failover_sync", sync::sync),
    ("failover_exec", mate::failover_exec),
    ("failover_validate", validate::validate),
    ("show_sync_history", sync::history),
];

/// The handler called `name`.
pub fn lookup(name: &str) -> Option<Handler> {
    HANDLERS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

/// What a secret-setting command stores: nothing for its `no` form, a hash given as
/// `hashed HASH` (checked), or the Argon2 hash of the clear secret that `clear` yields
/// (at least `min_len` characters).
pub(crate) fn stored_secret(
    args: &Args,
    min_len: usize,
    clear: impl FnOnce() -> Result<String, CmdError>,
) -> Result<Option<String>, CmdError> {
    if args.has("no") {
        return Ok(None);
    }
    if let Some(hash) = args.text("HASH") {
        if !crate::secret::is_hash(hash) {
            return Err(CmdError::Failed("Not an argon2 hash as show running-config prints it".into()));
        }
        return Ok(Some(hash.to_string()));
    }
    let clear = clear()?;
    if clear.chars().count() < min_len.max(1) {
        return Err(CmdError::Failed(if min_len > 1 {
            format!("The secret needs at least {min_len} characters")
        } else {
            "The secret must not be empty".into()
        }));
    }
    Ok(Some(crate::secret::hash(&clear).map_err(CmdError::Failed)?))
}

/// A one-line account of when the next sync runs under `s`, and why not when it won't.
pub fn next_sync_text(s: &Settings) -> String {
    match s.next_sync_after(Utc::now()) {
        Ok(at) => format!(
            "{} (start-time {:02}:{:02} UTC, then every {} {})",
            at.format("%Y-%m-%d %H:%M UTC"),
            s.start_time.0,
            s.start_time.1,
            s.run_every.0,
            s.run_every.1
        ),
        Err(why) => format!("none ({why})"),
    }
}
