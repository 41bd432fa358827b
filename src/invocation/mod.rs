//! The command line of coresh's two binaries, one definition for both: the shell
//! (`coresh`: the interactive shell and batch mode, a console session, the generated
//! docs, completions, data generation) and the node (`coresh-node`: the daemon, the load
//! driver, the lab; and all the rest, so the daemon's children and the lab can run it).
//! The shell's binary hands `serve`, `load` and `lab` to `coresh-node` beside it
//! ([`node::exec`]): without the daemon's code a shell starts with a third fewer
//! relocations and a sixth fewer page faults (docs/benchmarks.md, shell start-up). The
//! subcommands' arguments are built only when one is used; completion scripts are made
//! from the whole tree ([`completion_cli`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::grammar::{Grammar, commands_markdown};
use crate::node::{Node, default_data_dir};
use crate::shell::{BatchOptions, Session, Shell, run_batch, run_interactive};

pub mod node;

/// What runs `serve`, `load` and `lab`: in this process (`coresh-node`) or by handing
/// them to the node's binary (`coresh`).
pub type NodeCommands = fn(Command, PathBuf) -> anyhow::Result<i32>;

/// Parses the command line and runs it; `node_commands` runs `serve`, `load` and `lab`.
pub fn main(node_commands: NodeCommands) -> ExitCode {
    let cli = Cli::parse();
    match run(cli, node_commands) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("% {e:#}");
            ExitCode::from(1)
        }
    }
}

const EXIT_STATUS: &str = "\
Exit status (batch runs): 0 every line succeeded; 1 a command failed; 2 a line is not a
valid command (syntax); 3 a command is not permitted in the current mode or a secret was
wrong. The run stops at the first line that does not succeed, unless --keep-going is given.";

/// coresh: the appliance shell of a Core high-availability node.
#[derive(Parser)]
#[command(version, after_help = EXIT_STATUS)]
pub struct Cli {
    /// Data directory of the node (created on first use).
    #[arg(long, global = true, env = "CORESH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run LINE and continue with the next -c; modes carry over. May repeat.
    #[arg(short = 'c', value_name = "LINE")]
    pub commands: Vec<String>,
    /// Print `PROMPT COMMAND` before each result, for transcripts.
    #[arg(long)]
    pub echo: bool,
    /// Go on after a failing line (exit with the status of the first failure).
    #[arg(long)]
    pub keep_going: bool,
    /// Read the enable secret for batch runs from FILE (first line).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Each subcommand's arguments are built only when it is used: a shell start (`-c`, no
/// subcommand) builds none of them (about 80 µs of every start, docs/benchmarks.md).
#[derive(Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run this node: HTTP status pages and device API, until SIGTERM or SIGINT.
    Serve {
        /// Address of the HTTP endpoints (the appliance uses 443/8443).
        #[arg(long, value_name = "ADDR:PORT", default_value = crate::serve::DEFAULT_HTTP)]
        http_listen: std::net::SocketAddr,
        /// Address of the SSH server for HA peers (the appliance uses 22).
        #[arg(long, value_name = "ADDR:PORT", default_value = crate::serve::DEFAULT_SSH)]
        ssh_listen: std::net::SocketAddr,
        /// Log level: error, warn, info, debug, trace (RUST_LOG overrides).
        #[arg(long, default_value = "info")]
        log_level: String,
        /// Serve HTTPS with this server certificate chain (PEM); needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The server certificate's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Seconds an HTTP client has for a TLS handshake, a request's headers (an idle
        /// keep-alive connection too) and its body.
        #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        http_timeout: u64,
        /// Seconds an SSH client has to log in after it connects (OpenSSH: LoginGraceTime).
        #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
        login_grace: u64,
    },
    /// Core data tools.
    Data {
        #[command(subcommand)]
        what: Data,
    },
    /// Send device check-ins to a node at a given rate and report latency.
    Load {
        /// The node's HTTP address.
        #[arg(long, value_name = "ADDR:PORT")]
        target: std::net::SocketAddr,
        /// Check-ins per second (0: as fast as possible).
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Generated devices to check in as.
        #[arg(long, default_value_t = 1000)]
        devices: u64,
        /// Seed the devices were generated with.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print generated documentation.
    Docs {
        #[command(subcommand)]
        what: Docs,
    },
    /// A Core pair (or pair and DR node) on this machine, for trying coresh.
    Lab {
        #[command(subcommand)]
        what: Lab,
    },
    /// Print a completion script for this command line (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
    /// The shell of one SSH console session (started by the daemon's SSH server).
    #[command(hide = true)]
    ConsoleSession {
        /// The local user who logged in.
        #[arg(long)]
        user: String,
        /// The client's address.
        #[arg(long)]
        source: String,
        /// The session's id in `show sessions`.
        #[arg(long)]
        session: i64,
        /// One line to run (an exec request) instead of the shell; given in the
        /// environment, where other users cannot read it.
        #[arg(long, env = "CORESH_CONSOLE_COMMAND", hide_env_values = true)]
        command: Option<String>,
        /// Run the command in privileged mode (`enable` first, with the secret from
        /// CORESH_ENABLE_SECRET): a mate's request.
        #[arg(long, requires = "command")]
        privileged: bool,
        /// Run only commands declared read-only: a mate's request without the secret.
        #[arg(long, requires = "command", conflicts_with = "privileged")]
        readonly: bool,
    },
}

#[derive(Subcommand)]
pub enum Data {
    /// Fill an empty node with deterministic users, devices, events, apps and policies.
    Generate {
        #[arg(long, default_value_t = 1000)]
        devices: u64,
        #[arg(long, default_value_t = 200)]
        users: u64,
        #[arg(long, default_value_t = 10_000)]
        events: u64,
        #[arg(long, default_value_t = 50)]
        apps: u64,
        #[arg(long, default_value_t = 20)]
        policies: u64,
        /// Seed of the pseudo-random choices (and of the device tokens).
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Subcommand)]
pub enum Lab {
    /// Start a primary, a secondary and optionally a DR node on loopback ports, with
    /// trust exchanged, HA configured, generated data and device traffic.
    Up {
        /// 2: primary and secondary; 3: and a DR node following the secondary.
        #[arg(long, default_value_t = 2)]
        nodes: u8,
        /// Where the nodes' data directories and logs go (created; must be empty).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Stop the lab's daemons and remove its directory.
    Down {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum Docs {
    /// The command reference (docs/commands.md), from the grammar.
    Commands,
    /// The JSON output reference (docs/json.md), from the reply types.
    Json,
}

/// Runs what `cli` asks for; `node_commands` runs the daemon, the load driver and the lab.
fn run(cli: Cli, node_commands: NodeCommands) -> anyhow::Result<i32> {
    let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let shell_options = !cli.commands.is_empty() || cli.echo || cli.keep_going || cli.secret_file.is_some();
    if cli.command.is_some() && shell_options {
        anyhow::bail!("-c, --echo, --keep-going and --secret-file are for the shell, not for a subcommand");
    }
    match cli.command {
        Some(Command::Docs { what }) => {
            let grammar = Grammar::builtin();
            match what {
                Docs::Commands => print!("{}", commands_markdown(grammar)),
                Docs::Json => print!("{}", crate::shell::json_docs::json_markdown(grammar)),
            }
            return Ok(0);
        }
        Some(command @ (Command::Serve { .. } | Command::Load { .. } | Command::Lab { .. })) => {
            return node_commands(command, data_dir);
        }
        Some(Command::Data { what: Data::Generate { devices, users, events, apps, policies, seed } }) => {
            let node = Node::open(&data_dir)?;
            let mut core = crate::coredb::CoreDb::open(&node.data_dir)?;
            let counts = crate::coredb::generate::Counts { users, devices, events, apps, policies, seed };
            crate::coredb::generate::generate(&mut core, &counts)?;
            let s = core.summary()?;
            println!(
                "Generated in {}: {} users, {} devices, {} events, {} apps, {} policies (seed {seed})",
                core.path().display(),
                s.users,
                s.devices,
                s.events,
                s.apps,
                s.policies
            );
            return Ok(0);
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut completion_cli(), "coresh", &mut std::io::stdout());
            return Ok(0);
        }
        Some(Command::ConsoleSession { user, source, session, command, privileged, readonly }) => {
            name_process_coresh();
            let node = Node::open(&data_dir)?;
            let session = Session { readonly, ..Session::remote(&user, &source, session) };
            let mut shell = Shell::new(node, session);
            return Ok(match command {
                Some(line) if privileged => {
                    let options = BatchOptions { secret: batch_secret(None)?, ..BatchOptions::default() };
                    let lines = [String::from("enable"), line].into_iter().map(|l| Ok(l.into_bytes()));
                    run_batch(&mut shell, lines, options)
                }
                Some(line) => run_batch(&mut shell, std::iter::once(Ok(line.into_bytes())), BatchOptions::default()),
                None if std::io::stdin().is_terminal() => run_interactive(&mut shell),
                None => run_batch(&mut shell, crate::shell::stdin_lines(), BatchOptions::default()),
            });
        }
        None => {}
    }
    let node = Node::open(&data_dir)?;
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "admin".into());
    let interactive = cli.commands.is_empty() && std::io::stdin().is_terminal();
    let source = if interactive { "console" } else { "batch" };
    let mut shell = Shell::new(node, Session::new(&user, source));
    if interactive {
        return Ok(run_interactive(&mut shell));
    }
    let options =
        BatchOptions { echo: cli.echo, keep_going: cli.keep_going, secret: batch_secret(cli.secret_file.as_deref())? };
    if cli.commands.is_empty() {
        Ok(run_batch(&mut shell, crate::shell::stdin_lines(), options))
    } else {
        let lines = cli.commands.into_iter().map(|c| Ok(c.into_bytes()));
        Ok(run_batch(&mut shell, lines, options))
    }
}

/// The daemon starts a console through a descriptor of the shell's binary
/// (`ssh::console::shell_exe`), which names the process after the descriptor's number;
/// `ps` and `top` show it as `coresh` again.
fn name_process_coresh() {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"coresh".as_ptr()) };
}

/// The command line as completion scripts see it. The subcommands are deferred, so the
/// `help` subcommand that building the root adds holds copies of them made before their
/// own subcommands exist (`help lab` without `up` and `down`); the copies get them here,
/// made as clap makes them: name, about, hidden or not, no flags.
fn completion_cli() -> clap::Command {
    use clap::CommandFactory;
    fn help_copy(cmd: &clap::Command, parent: &str) -> clap::Command {
        let bin_name = format!("{parent} {}", cmd.get_name());
        let children: Vec<clap::Command> =
            cmd.get_subcommands().filter(|sub| sub.get_name() != "help").map(|sub| help_copy(sub, &bin_name)).collect();
        let copy = clap::Command::new(cmd.get_name().to_string())
            .hide(cmd.is_hide_set())
            .disable_help_flag(true)
            .disable_version_flag(true)
            .disable_help_subcommand(true)
            .subcommands(children)
            .bin_name(bin_name);
        match cmd.get_about() {
            Some(about) => copy.about(about.clone()),
            None => copy,
        }
    }
    let mut cli = Cli::command();
    cli.build();
    let mut nested: std::collections::HashMap<String, Vec<clap::Command>> = cli
        .get_subcommands()
        .filter(|sub| sub.get_name() != "help")
        .map(|sub| {
            let parent = format!("coresh help {}", sub.get_name());
            let children = sub.get_subcommands().filter(|s| s.get_name() != "help");
            (sub.get_name().to_string(), children.map(|s| help_copy(s, &parent)).collect())
        })
        .collect();
    if let Some(help) = cli.get_subcommands_mut().find(|sub| sub.get_name() == "help") {
        for copy in help.get_subcommands_mut() {
            if let Some(children) = nested.remove(copy.get_name()).filter(|c| !c.is_empty()) {
                *copy = copy.clone().subcommands(children);
            }
        }
    }
    cli
}

/// The enable secret for a batch run: `--secret-file`, else `CORESH_ENABLE_SECRET`.
fn batch_secret(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_string()));
    }
    Ok(std::env::var("CORESH_ENABLE_SECRET").ok())
}
