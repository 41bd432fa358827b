//! docs/commands.md, generated from the grammar (a test fails when the file is stale).

use std::fmt::Write;

use super::{ArgKind, CommandDef, Grammar, SpecToken};

/// The command reference in Markdown.
pub fn commands_markdown(g: &Grammar) -> String {
    let mut out = String::new();
    out.push_str("# coresh command reference\n\n");
    out.push_str("Generated from `grammar/` by `coresh docs commands`; do not edit by hand.\n");
    out.push_str("Words can be abbreviated to any unique prefix; `?` lists what may follow.\n\n");
    out.push_str("## Modes\n\n| Mode | Prompt | Entered by | `exit` leads to | Description |\n|---|---|---|---|---|\n");
    for mode in &g.modes {
        let via = mode.via.as_deref().map_or("start of a session".to_string(), |v| format!("`{v}`"));
        let parent = mode.parent.as_deref().unwrap_or("end of session");
        let _ = writeln!(out, "| {} | `HOST{}` | {via} | {parent} | {} |", mode.name, mode.prompt, mode.help);
    }
    for mode in &g.modes {
        let _ = write!(out, "\n## {} mode (`HOST{}`)\n\n", mode.name, mode.prompt);
        if let Some(parent) = &mode.inherits {
            let _ = writeln!(out, "Every command of {parent} mode, and:\n");
        }
        out.push_str("| Command | Description |\n|---|---|\n");
        for cmd in g.commands.iter().filter(|c| c.modes.contains(&mode.name)) {
            let _ = writeln!(out, "| `{}` | {} |", display_spec(&cmd.spec), cmd.doc);
        }
    }
    out.push_str("\n## Output modifiers\n\nAfter `|` on any command that prints output.\n\n| Modifier | Description |\n|---|---|\n");
    for f in &g.filters {
        let _ = writeln!(out, "| `\\| {}` | {} |", display_spec(&f.spec), f.doc);
    }
    out.push_str("\n## Arguments\n\n| Argument | Accepts | Description |\n|---|---|---|\n");
    for arg in &g.args {
        let accepts = match &arg.kind {
            ArgKind::Exec(mode) => format!("a {mode} mode command"),
            ArgKind::Secret => "rest of the line (never logged)".to_string(),
            ArgKind::Regex => "rest of the line, a regular expression".to_string(),
            ArgKind::SshKey => "rest of the line, an OpenSSH public key".to_string(),
            kind => format!("`{kind}`"),
        };
        let _ = writeln!(out, "| `{}` | {accepts} | {} |", arg.name, arg.help);
    }
    out.push_str("\n## Words\n\n| Word | Help |\n|---|---|\n");
    for (word, help) in &g.words {
        let _ = writeln!(out, "| `{word}` | {help} |");
    }
    let overrides: Vec<&CommandDef> = g.commands.iter().filter(|c| !c.help.is_empty()).collect();
    if !overrides.is_empty() {
        out.push_str("\nWords whose help is specific to one command:\n\n");
        for cmd in overrides {
            for (word, help) in &cmd.help {
                let _ = writeln!(out, "- `{word}` in `{}`: {help}", cmd.spec_text);
            }
        }
    }
    out
}

/// A spec as shown to people: choices in braces, optional parts in brackets.
pub fn display_spec(spec: &[SpecToken]) -> String {
    let mut words = Vec::new();
    for token in spec {
        words.push(match token {
            SpecToken::Keyword(w) | SpecToken::Arg(w) => w.to_string(),
            SpecToken::Choice { options, .. } => format!("{{{}}}", options.join("\\|")),
            SpecToken::Optional(inner) => format!("[{}]", display_spec(inner)),
        });
    }
    words.join(" ")
}
