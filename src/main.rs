//! The `coresh` binary: argument parsing, opening the node, and choosing the
//! interactive shell or batch mode.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use coresh::grammar::{Grammar, commands_markdown};
use coresh::node::{Node, default_data_dir};
use coresh::shell::{BatchOptions, Session, Shell, run_batch, run_interactive};

const EXIT_STATUS: &str = "\
Exit status (batch runs): 0 every line succeeded; 1 a command failed; 2 a line is not a
valid command (syntax); 3 a command is not permitted in the current mode or a secret was
wrong. The run stops at the first line that does not succeed, unless --keep-going is given.";

/// coresh: the appliance shell of a Core high-availability node.
#[derive(Parser)]
#[command(version, after_help = EXIT_STATUS, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Data directory of the node (created on first use).
    #[arg(long, env = "CORESH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run LINE and continue with the next -c; modes carry over. May repeat.
    #[arg(short = 'c', value_name = "LINE")]
    commands: Vec<String>,
    /// Print `PROMPT COMMAND` before each result, for transcripts.
    #[arg(long)]
    echo: bool,
    /// Go on after a failing line (exit with the status of the first failure).
    #[arg(long)]
    keep_going: bool,
    /// Read the enable secret for batch runs from FILE (first line).
    #[arg(long, value_name = "FILE")]
    secret_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print generated documentation.
    Docs {
        #[command(subcommand)]
        what: Docs,
    },
}

#[derive(Subcommand)]
enum Docs {
    /// The command reference (docs/commands.md), from the grammar.
    Commands,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("% {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Some(Command::Docs { what: Docs::Commands }) = cli.command {
        let grammar = Grammar::builtin().map_err(|e| anyhow::anyhow!("{e}"))?;
        print!("{}", commands_markdown(grammar));
        return Ok(0);
    }
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    let node = Node::open(&data_dir)?;
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "admin".into());
    let interactive = cli.commands.is_empty() && std::io::stdin().is_terminal();
    let source = if interactive { "console" } else { "batch" };
    let mut shell = Shell::new(node, Session::new(&user, source)).map_err(anyhow::Error::msg)?;
    if interactive {
        return Ok(run_interactive(&mut shell));
    }
    let options =
        BatchOptions { echo: cli.echo, keep_going: cli.keep_going, secret: batch_secret(cli.secret_file.as_deref())? };
    if cli.commands.is_empty() {
        Ok(run_batch(&mut shell, coresh::shell::stdin_lines(), options))
    } else {
        let lines = cli.commands.into_iter().map(|c| Ok(c.into_bytes()));
        Ok(run_batch(&mut shell, lines, options))
    }
}

/// The enable secret for a batch run: `--secret-file`, else `CORESH_ENABLE_SECRET`.
fn batch_secret(file: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_string()));
    }
    Ok(std::env::var("CORESH_ENABLE_SECRET").ok())
}
