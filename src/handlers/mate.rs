//! `failover exec mate LINE` / `failover exec HOST LINE`: one line run on the peer over
//! the trusted channel, its output shown here (Cisco ASA's `failover exec mate`). From
//! user mode only the commands the grammar declares `readonly` go; others need enable
//! mode here and the mate's enable secret, which the mate checks (without it, the mate
//! runs read-only commands only). Lines with a secret are not carried, and a line run
//! for a mate cannot reach on to another node (the mate refuses `failover exec` itself).

use serde::Serialize;

use super::Ctx;
use crate::cli::Args;
use crate::host::HostPort;
use crate::peer::Blocking;
use crate::peer::message::{ExecAnswer, ExecRequest};
use crate::report::{CmdError, Reply, Text};

/// What the mate printed.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct MateOutput {
    mate: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Text for MateOutput {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr).trim_end().to_string()
    }
}

/// The peer `mate` stands for: a secondary's primary, else the only trusted host.
pub(super) fn the_mate(ctx: &Ctx) -> Result<HostPort, CmdError> {
    let settings = ctx.settings()?;
    if settings.mode == crate::ha::Mode::Secondary
        && let Some(primary) = settings.primary_host
    {
        return Ok(primary);
    }
    let hosts = ctx.node.store.trusted_hosts()?;
    match hosts.as_slice() {
        [only] => {
            only.host.parse().map_err(|_| CmdError::Failed(format!("The trusted host {} is unreadable", only.host)))
        }
        [] => Err(CmdError::Failed("No mate: there is no trusted host (and no primary-host on a secondary)".into())),
        many => Err(CmdError::Failed(format!(
            "Which mate? Trusted hosts: {}; use 'failover exec HOST COMMAND'",
            many.iter().map(|h| h.host.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Runs `line` on the trusted host `target` as this session's operator; `secret` (the
/// mate's enable secret) runs it in privileged mode.
pub(super) fn exec_on(ctx: &Ctx, target: &HostPort, line: &str, secret: Option<String>) -> Result<ExecAnswer, String> {
    let hostname = ctx.settings().map_err(|e| e.to_string())?.hostname;
    let operator = format!("{}@{hostname}", ctx.session.user);
    let request = ExecRequest { line: line.to_string(), operator, secret };
    Blocking::trusted(ctx.node, target).and_then(|peer| peer.once(|p| p.exec(request))).map_err(|e| e.to_string())
}

pub fn failover_exec(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    ctx.not_for_a_mate()?;
    let line = args.text("MATE_LINE").unwrap_or_default().trim().to_string();
    let (_, inner) = ctx.inner.ok_or_else(|| CmdError::Failed("failover exec needs a command".into()))?;
    if inner.args.secret_at.is_some() {
        return Err(CmdError::Failed("failover exec does not carry secrets: log in to the mate to set them".into()));
    }
    let secret = if inner.readonly {
        None
    } else if ctx.session.mode == "user" {
        return Err(CmdError::Denied(
            "From user mode, failover exec runs only show commands of user mode (read-only ones): enter 'enable' first"
                .into(),
        ));
    } else {
        let asked = ctx.console.ask_secret("Password: ");
        Some(asked.ok_or_else(|| {
            CmdError::Denied("A privileged command on the mate needs the mate's enable secret, and there is no terminal to ask for it".into())
        })?)
    };
    let target = match args.host("HOST") {
        Some(h) => h.clone(),
        None => the_mate(ctx)?,
    };
    let answer = exec_on(ctx, &target, &line, secret)
        .map_err(|why| CmdError::Failed(format!("Cannot reach the mate {target}: {why}")))?;
    let output =
        MateOutput { mate: target.to_string(), code: answer.code, stdout: answer.stdout, stderr: answer.stderr };
    match output.code {
        0 => Ok(Reply::show(output)),
        code => {
            let said = format!("{}{}", output.stdout, output.stderr);
            let said = said.trim_end().trim_start_matches("% ");
            let message = format!("On the mate {}: {said}", output.mate);
            Err(if code == 3 { CmdError::Denied(message) } else { CmdError::Failed(message) })
        }
    }
}
