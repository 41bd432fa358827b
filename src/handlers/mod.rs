//! Command handlers: one function per grammar `-> handler` name, each taking the
//! typed [`Args`] and returning a typed [`Reply`]. [`HANDLERS`] is the only place
//! names meet functions (the shell's own commands, which move between modes, are in
//! its table); a test checks that the two and the grammar agree. A command made of other
//! commands runs them through the shell's pipeline with [`Ctx::run`].

mod config_sync;
mod console;
mod core;
mod failover;
mod ha;
mod ha_status;
mod hooks;
mod logging;
mod mate;
mod notify;
mod quorum_view;
mod replication;
mod replication_view;
mod running_config;
mod show;
mod support;
mod switchover;
mod sync;
mod system;
mod trust;
mod users;
mod validate;

use chrono::Utc;

use crate::cli::Args;
use crate::ha::{Applied, Cause, Settings};
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
    pub fn update(&mut self, edit: impl FnOnce(&mut Settings)) -> Result<Applied, CmdError> {
        let cause = self.cause();
        Ok(crate::ha::update(&mut self.node.store, &cause, edit)?)
    }
}

/// A command handler.
pub type Handler = fn(&mut Ctx, &Args) -> Result<Reply, CmdError>;

/// Declares [`HANDLERS`]: each grammar file's handlers, in the file of the same name,
/// each function named as the grammar names its handler.
macro_rules! handlers {
    ($($file:ident: $($name:ident),+;)+) => {
        /// Every handler: the file it lives in (the grammar file it serves), the name
        /// the grammar uses, and the function of that name.
        pub const HANDLERS: &[(&str, &str, Handler)] = &[$($((stringify!($file), stringify!($name), $file::$name)),+),+];
    };
}

handlers! {
    config_sync: show_failover_config_diff, failover_config_sync;
    console: exec_timeout, session_limit, login_block, login_delay, show_sessions, clear_lockout;
    core: show_core_summary, show_devices, enrollment_secret, device_enrollment, atlas;
    failover: failover_mode_primary, failover_mode_secondary, failover_client_connection;
    ha: ha_service, ha_mode, ha_node_status, ha_primary_host, ha_sync_start_time, ha_sync_run_every,
        ha_heartbeat_interval, ha_heartbeat_failures, ha_heartbeat_recheck, ha_heartbeat_max_staleness,
        ha_heartbeat_status_url, ha_replication_mode, ha_witness, ha_switchover_settle, ha_on_failure, ha_notify_email, ha_notify_on;
    ha_status: show_failover, show_failover_history, show_logging_ha, show_failover_divergence;
    switchover: failover_switchover, show_failover_handovers;
    replication: show_replication;
    hooks: event_hook, show_event_hooks;
    logging: logging_host, show_logging_hosts;
    mate: failover_exec;
    notify: smtp_server, smtp_from, smtp_user, notify_test, show_notifications;
    show: show_version, show_clock, show_running_config, show_audit;
    support: show_tech_support;
    sync: failover_sync, show_sync_history;
    system: hostname, prompt, enable_secret, audit_retention, write_memory, metrics_allow;
    trust: show_ssh_local_key, show_trusted_hosts, ha_trusted_host, failover_test_connection;
    users: username, show_users;
    validate: failover_validate;
}

/// What each command that prints a report prints with `| json`: its handler's name and
/// the JSON Schema of its reply, from the reply's own type (docs/json.md is made from
/// these, and a test checks real output against them).
pub fn json_shapes() -> Vec<(&'static str, schemars::Schema)> {
    use schemars::schema_for;
    vec![
        ("show_failover_config_diff", schema_for!(config_sync::ConfigDiff)),
        ("failover_config_sync", schema_for!(config_sync::Synced)),
        ("show_sessions", schema_for!(console::Sessions)),
        ("show_core_summary", schema_for!(crate::coredb::Summary)),
        ("show_devices", schema_for!(core::Devices)),
        ("show_failover", schema_for!(ha_status::Failover)),
        ("show_logging_ha", schema_for!(ha_status::HaLog)),
        ("show_failover_divergence", schema_for!(ha_status::Divergence)),
        ("show_failover_history", schema_for!(ha_status::History)),
        ("show_event_hooks", schema_for!(hooks::Hooks)),
        ("show_logging_hosts", schema_for!(logging::Servers)),
        ("failover_exec", schema_for!(mate::MateOutput)),
        ("notify_test", schema_for!(notify::TestSent)),
        ("show_notifications", schema_for!(notify::Outbox)),
        ("show_replication", schema_for!(replication::Shown)),
        ("show_version", schema_for!(show::Version)),
        ("show_clock", schema_for!(show::Clock)),
        ("show_running_config", schema_for!(running_config::RunningConfig)),
        ("show_audit", schema_for!(show::Audit)),
        ("show_tech_support", schema_for!(support::TechSupport)),
        ("failover_switchover", schema_for!(crate::peer::message::SwitchoverReport)),
        ("show_failover_handovers", schema_for!(switchover::Handovers)),
        ("failover_sync", schema_for!(crate::replication::pull::SyncReport)),
        ("show_sync_history", schema_for!(sync::History)),
        ("show_ssh_local_key", schema_for!(trust::LocalKey)),
        ("show_trusted_hosts", schema_for!(trust::TrustedList)),
        ("failover_test_connection", schema_for!(trust::TestResult)),
        ("show_users", schema_for!(users::Users)),
        ("failover_validate", schema_for!(validate::Validation)),
    ]
}

/// The handler called `name`.
pub fn lookup(name: &str) -> Option<Handler> {
    HANDLERS.iter().find(|(_, n, _)| *n == name).map(|(_, _, h)| *h)
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
