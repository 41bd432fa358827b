//! Lines run inside another command (`show tech-support`, `failover validate`), through
//! the shell's steps: lexed, matched in the session's mode, their secrets redacted,
//! audited like any typed line, and run by their handler. Output modifiers are the
//! outer command's, so a nested line carries none.

use super::redact::redact;
use super::{Status, audit, handler};
use crate::cli::{Line, Matcher};
use crate::handlers::Ctx;
use crate::report::{CmdError, Reply};

/// Runs `line` for the command running in `ctx`, as its [`crate::handlers::Runner`].
pub fn run(ctx: &mut Ctx, line: &str) -> Result<Reply, CmdError> {
    let (grammar, tree) = (crate::grammar::Grammar::builtin(), crate::cli::builtin_tree());
    let lexed = Line::lex(line).map_err(|e| CmdError::Failed(format!("{line}: {e:?}")))?;
    let root = tree.root(&ctx.session.mode).ok_or_else(|| CmdError::Failed("no such mode".into()))?;
    let matched = Matcher { tree }
        .matches(root, &lexed, &lexed.command)
        .map_err(|e| CmdError::Failed(format!("{line}: {e:?}")))?;
    if !lexed.pipes.is_empty() {
        return Err(CmdError::Failed(format!("{line}: a line run inside another command takes no output modifiers")));
    }
    let shown = redact(&lexed, &matched);
    let handler = handler(grammar, ctx.session, &matched)?;
    let result = {
        let mut inner = Ctx {
            node: &mut *ctx.node,
            session: &mut *ctx.session,
            console: &mut *ctx.console,
            line: &shown,
            inner: matched.inner.as_ref(),
            runner: ctx.runner,
        };
        handler(&mut inner, &matched.args)
    };
    let status = match &result {
        Ok(_) => Status::Ok,
        Err(CmdError::Denied(_)) => Status::Denied,
        Err(_) => Status::Failed,
    };
    if let Err(e) = audit(ctx.node, ctx.session, ctx.session.mode.clone(), &shown, status.outcome()) {
        tracing::warn!(subsystem = "shell", error = %e, "the audit log could not be written");
    }
    result
}
