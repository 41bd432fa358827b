//! Every command the grammar declares, in every form (each optional group taken and left
//! out, each choice), run once in its mode, each on a fresh node, and every output modifier
//! after a show command. A debug build stops when a handler asks its arguments for a
//! name none of its commands declares, so a misspelt `args.host("HSOT")` fails here
//! rather than in front of an operator; and no command may panic on well-formed input.
//! Commands that reach out go to a closed port on loopback and fail there.

mod common;

use common::TestNode;
use coresh::grammar::{ArgKind, CommandDef, Grammar, SpecToken, expand};

/// A public key that parses (the comment says what it is for).
const SAMPLE_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE243kuBj6itRm+QLoPOzpxeQX57HRmEcGloDrdtvLyE sample@test";

/// A value each argument kind accepts.
fn sample(kind: &ArgKind) -> String {
    match kind {
        ArgKind::Int { min, .. } => min.to_string(),
        ArgKind::Host => "127.0.0.1:1".into(),
        ArgKind::Hostname => "core-x".into(),
        ArgKind::Time => "01:30".into(),
        ArgKind::Email => "ops@example.com".into(),
        ArgKind::Url => "http://127.0.0.1:1/status.json".into(),
        ArgKind::Word => "sample-word".into(),
        ArgKind::Secret => "S4mple-secret-value".into(),
        ArgKind::Regex => ".".into(),
        ArgKind::Exec(_) => "show version".into(),
        ArgKind::SshKey => SAMPLE_KEY.into(),
    }
}

/// Every concrete line a command's spec describes.
fn lines(g: &Grammar, cmd: &CommandDef) -> Vec<String> {
    let mut out = Vec::new();
    for form in expand(&cmd.spec) {
        let mut lines = vec![String::new()];
        for token in &form {
            let words: Vec<String> = match token {
                SpecToken::Keyword(w) => vec![w.to_string()],
                SpecToken::Arg(a) => vec![sample(&g.arg(a).expect("a declared argument").kind)],
                SpecToken::Choice { options, .. } => options.iter().map(ToString::to_string).collect(),
                SpecToken::Optional(_) => unreachable!("expand leaves no optional group"),
            };
            lines = lines
                .iter()
                .flat_map(|l| words.iter().map(move |w| if l.is_empty() { w.clone() } else { format!("{l} {w}") }))
                .collect();
        }
        out.extend(lines);
    }
    out
}

/// The lines that lead from a session's first mode into `mode`.
fn way_into(g: &Grammar, mode: &str) -> Vec<String> {
    let mut way = Vec::new();
    let mut current = g.mode(mode);
    while let Some(via) = current.and_then(|m| m.via.as_deref()) {
        way.insert(0, via.to_string());
        // `via` is typed in the mode `exit` leads back to (the first mode at the top).
        current = current.and_then(|m| m.parent.as_deref()).and_then(|p| g.mode(p)).or_else(|| g.mode("user"));
    }
    way
}

#[test]
fn every_command_runs_without_asking_for_an_undeclared_argument() {
    let g = Grammar::builtin();
    let mut ran = 0;
    for cmd in &g.commands {
        let mode = &cmd.modes[0];
        let way = way_into(g, mode);
        for line in lines(g, cmd) {
            let mut batch: Vec<&str> = way.iter().map(String::as_str).collect();
            batch.push(&line);
            // A node of its own: no earlier line's secret or setting in the way.
            let run = TestNode::new().run(&batch);
            let said = format!("{}{}", run.stdout, run.stderr);
            assert!(
                run.code != 101 && !said.contains("panicked"),
                "{}: `{line}` in {mode} mode stopped the shell:\n{said}",
                cmd.origin
            );
            assert!(
                ["Invalid input", "Incomplete command", "Ambiguous command", "This command belongs to"]
                    .iter()
                    .all(|refusal| !said.contains(refusal)),
                "{}: `{line}` did not reach its handler in {mode} mode:\n{said}",
                cmd.origin
            );
            ran += 1;
        }
    }
    for filter in &g.filters {
        for line in lines(g, filter) {
            let run = TestNode::new().run(&[&format!("show version | {line}")]);
            run.expect_code(0);
            ran += 1;
        }
    }
    assert!(ran > g.commands.len(), "{ran} lines run");
}
