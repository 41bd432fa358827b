//! Checks of the grammar itself (after ripgrep's tests of its flag list) and of the
//! generated command reference.

use std::collections::BTreeSet;

use coresh::cli::Tree;
use coresh::grammar::{Grammar, SpecToken, commands_markdown, visit_spec};
use coresh::handlers::HANDLERS;
use coresh::shell::{BUILTINS, FILTERS};

fn grammar() -> &'static Grammar {
    Grammar::builtin()
}

#[test]
fn every_handler_named_exists_and_every_handler_is_reached() {
    let g = grammar();
    let named: BTreeSet<&str> = g.commands.iter().map(|c| &*c.handler).collect();
    let all: Vec<&str> = HANDLERS.iter().map(|(_, n, _)| *n).chain(BUILTINS.iter().map(|(n, _)| *n)).collect();
    let defined: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(named, defined, "grammar handlers vs HANDLERS and the shell's BUILTINS");
    assert_eq!(defined.len(), all.len(), "a handler is listed twice");
    let filters: BTreeSet<&str> = g.filters.iter().map(|f| &*f.handler).collect();
    assert_eq!(filters, FILTERS.iter().copied().collect(), "grammar filters vs FILTERS");
}

#[test]
fn each_grammar_file_is_served_by_the_file_of_its_name() {
    let g = grammar();
    for cmd in &g.commands {
        let file = cmd.origin.split(".grammar:").next().unwrap_or_default();
        let serving = match HANDLERS.iter().find(|(_, n, _)| *n == cmd.handler) {
            Some((module, _, _)) => format!("handlers/{module}.rs"),
            None if BUILTINS.iter().any(|(n, _)| *n == cmd.handler) => "shell/modes.rs".to_string(),
            None => "nowhere".to_string(),
        };
        let expected = if file == "modes" { "shell/modes.rs".to_string() } else { format!("handlers/{file}.rs") };
        assert_eq!(serving, expected, "{}: -> {} is served by {serving}", cmd.origin, cmd.handler);
    }
    for filter in &g.filters {
        assert!(filter.origin.starts_with("pipes.grammar:"), "{}: filters live in pipes.grammar", filter.origin);
    }
}

#[test]
fn the_read_only_commands_are_the_show_commands_of_user_mode() {
    let g = grammar();
    for cmd in &g.commands {
        let user_show = cmd.modes.iter().any(|m| m == "user") && cmd.spec_text.starts_with("show ");
        assert_eq!(cmd.readonly, user_show, "{}: {} (readonly {})", cmd.origin, cmd.spec_text, cmd.readonly);
    }
}

#[test]
fn every_command_has_a_doc_and_every_word_help() {
    let g = grammar();
    for cmd in g.commands.iter().chain(&g.filters) {
        assert!(!cmd.doc.is_empty(), "{}: {} has no doc string", cmd.origin, cmd.spec_text);
        visit_spec(&cmd.spec, &mut |t| {
            let words: Vec<&str> = match t {
                SpecToken::Keyword(w) => vec![&**w],
                SpecToken::Choice { options, .. } => options.iter().map(|o| &**o).collect(),
                _ => vec![],
            };
            for w in words {
                assert!(!g.word_help(cmd, w).is_empty(), "{}: word {w} has no help", cmd.origin);
            }
        });
    }
}

#[test]
fn a_help_override_differs_from_the_shared_help_and_names_a_word_of_its_command() {
    let g = grammar();
    for cmd in &g.commands {
        for (word, help) in &cmd.help {
            let mut used = false;
            visit_spec(&cmd.spec, &mut |t| match t {
                SpecToken::Keyword(w) if w == word => used = true,
                SpecToken::Choice { options, .. } if options.contains(word) => used = true,
                _ => {}
            });
            assert!(used, "{}: help for {word}, which the command does not use", cmd.origin);
            assert_ne!(g.word(word), Some(&**help), "{}: override of {word} repeats the shared help", cmd.origin);
        }
    }
}

#[test]
fn no_two_commands_share_a_path_in_a_mode() {
    let tree = Tree::build(grammar());
    assert!(tree.conflicts.is_empty(), "{:?}", tree.conflicts);
}

#[test]
fn every_declared_word_and_argument_is_used() {
    let g = grammar();
    let mut used = BTreeSet::new();
    for cmd in g.commands.iter().chain(&g.filters) {
        visit_spec(&cmd.spec, &mut |t| match t {
            SpecToken::Keyword(w) | SpecToken::Arg(w) => {
                used.insert(w.clone());
            }
            SpecToken::Choice { options, .. } => used.extend(options.iter().cloned()),
            SpecToken::Optional(_) => {}
        });
    }
    for name in g.words.iter().map(|(w, _)| w).chain(g.args.iter().map(|a| &a.name)) {
        assert!(used.contains(name), "{name} is declared but no command uses it");
    }
}

#[test]
fn a_broken_grammar_is_reported_with_its_line() {
    let bad = [(
        "x.grammar",
        "mode user parent - inherits - via \"-\" prompt \">\" \"User\"\ncmd user \"show UNDECLARED\" -> h\n  \"doc\"\n",
    )];
    let err = Grammar::from_sources(&bad).unwrap_err();
    assert!(err.to_string().contains("x.grammar:2"), "{err}");
    let bad = [("y.grammar", "word a \"A\"\nword a \"B\"\n")];
    assert!(Grammar::from_sources(&bad).is_err(), "same word, two helps");
}

#[test]
fn docs_commands_md_is_generated_from_the_grammar() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/commands.md");
    let expected = commands_markdown(grammar());
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/commands.md is stale: regenerate it with `cargo run -- docs commands > docs/commands.md`"
    );
}
