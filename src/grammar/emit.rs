//! Writes a parsed [`Grammar`] as Rust source (`fn built() -> Grammar`), for the build
//! script: the code constructs the same value the parser made, so a start builds its
//! command tree without parsing.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{ArgDef, ArgKind, CommandDef, Grammar, ModeDef, SpecToken};

/// A string as a Rust expression (`Debug` writes a valid, escaped literal).
fn s(text: &str) -> String {
    format!("s({text:?})")
}

fn opt(text: &Option<String>) -> String {
    match text {
        Some(t) => format!("Some({})", s(t)),
        None => "None".into(),
    }
}

fn map(m: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = m.iter().map(|(k, v)| format!("({}, {})", s(k), s(v))).collect();
    format!("BTreeMap::from([{}])", pairs.join(", "))
}

fn mode(m: &ModeDef) -> String {
    format!(
        "ModeDef {{ name: {}, parent: {}, inherits: {}, via: {}, prompt: {}, help: {} }}",
        s(&m.name),
        opt(&m.parent),
        opt(&m.inherits),
        opt(&m.via),
        s(&m.prompt),
        s(&m.help)
    )
}

fn kind(k: &ArgKind) -> String {
    match k {
        ArgKind::Int { min, max } => format!("ArgKind::Int {{ min: {min}, max: {max} }}"),
        ArgKind::Exec(mode) => format!("ArgKind::Exec({})", s(mode)),
        other => format!("ArgKind::{other:?}"),
    }
}

fn arg(a: &ArgDef) -> String {
    format!("ArgDef {{ name: {}, kind: {}, help: {} }}", s(&a.name), kind(&a.kind), s(&a.help))
}

fn spec(tokens: &[SpecToken]) -> String {
    let items: Vec<String> = tokens
        .iter()
        .map(|t| match t {
            SpecToken::Keyword(w) => format!("SpecToken::Keyword({})", s(w)),
            SpecToken::Arg(a) => format!("SpecToken::Arg({})", s(a)),
            SpecToken::Choice { name, options } => {
                let options: Vec<String> = options.iter().map(|o| s(o)).collect();
                format!("SpecToken::Choice {{ name: {}, options: vec![{}] }}", s(name), options.join(", "))
            }
            SpecToken::Optional(inner) => format!("SpecToken::Optional({})", spec(inner)),
        })
        .collect();
    format!("vec![{}]", items.join(", "))
}

fn command(c: &CommandDef) -> String {
    let modes: Vec<String> = c.modes.iter().map(|m| s(m)).collect();
    format!(
        "CommandDef {{ modes: vec![{}], spec_text: {}, spec: {}, handler: {}, readonly: {}, doc: {}, help: {}, origin: {} }}",
        modes.join(", "),
        s(&c.spec_text),
        spec(&c.spec),
        s(&c.handler),
        c.readonly,
        s(&c.doc),
        map(&c.help),
        s(&c.origin)
    )
}

/// `g` as the source of `fn built() -> Grammar`.
pub fn rust(g: &Grammar) -> String {
    let mut out = String::from(
        "/// The grammar of `grammar/`, as build.rs parsed it.\n\
         fn built() -> Grammar {\n    use std::collections::BTreeMap;\n    fn s(text: &str) -> String {\n        text.to_string()\n    }\n",
    );
    let list = |items: Vec<String>| format!("vec![\n        {},\n    ]", items.join(",\n        "));
    let _ = writeln!(out, "    let modes = {};", list(g.modes.iter().map(mode).collect()));
    let _ = writeln!(out, "    let words = {};", map(&g.words));
    let args: Vec<String> = g.args.iter().map(|(k, a)| format!("({}, {})", s(k), arg(a))).collect();
    let _ = writeln!(out, "    let args = BTreeMap::from([{}]);", args.join(", "));
    let _ = writeln!(out, "    let commands = {};", list(g.commands.iter().map(command).collect()));
    let _ = writeln!(out, "    let filters = {};", list(g.filters.iter().map(command).collect()));
    out.push_str("    Grammar { modes, words, args, commands, filters }\n}\n");
    out
}
