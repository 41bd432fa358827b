//! Writes a parsed [`Grammar`] and its command [`Tree`] as Rust source, for the build
//! script: `static GRAMMAR` and `static TREE`, the very values the parser and
//! [`Tree::build`] made, every text and list borrowed from the binary. A start then
//! builds neither: it reads them where they lie.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{ArgDef, ArgKind, CommandDef, Elem, End, Grammar, ModeDef, Node, SpecToken, Text, Tree};

/// A text as a Rust expression (`Debug` writes a valid, escaped literal).
fn t(text: &str) -> String {
    format!("t({text:?})")
}

fn opt(text: &Option<Text>) -> String {
    text.as_deref().map_or_else(|| "None".into(), |x| format!("Some({})", t(x)))
}

/// A list of already written items.
fn l(items: impl IntoIterator<Item = String>) -> String {
    format!("l![{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// A list of texts.
fn texts<'a>(items: impl IntoIterator<Item = &'a Text>) -> String {
    l(items.into_iter().map(|x| t(x)))
}

fn pairs(items: &[(Text, Text)]) -> String {
    l(items.iter().map(|(k, v)| format!("({}, {})", t(k), t(v))))
}

fn mode(m: &ModeDef) -> String {
    format!(
        "ModeDef {{ name: {}, parent: {}, inherits: {}, via: {}, prompt: {}, help: {} }}",
        t(&m.name),
        opt(&m.parent),
        opt(&m.inherits),
        opt(&m.via),
        t(&m.prompt),
        t(&m.help)
    )
}

fn kind(k: &ArgKind) -> String {
    match k {
        ArgKind::Int { min, max } => format!("ArgKind::Int {{ min: {min}, max: {max} }}"),
        ArgKind::Exec(mode) => format!("ArgKind::Exec({})", t(mode)),
        other => format!("ArgKind::{other:?}"),
    }
}

fn arg(a: &ArgDef) -> String {
    format!("ArgDef {{ name: {}, kind: {}, help: {} }}", t(&a.name), kind(&a.kind), t(&a.help))
}

fn spec(tokens: &[SpecToken]) -> String {
    l(tokens.iter().map(|token| match token {
        SpecToken::Keyword(w) => format!("SpecToken::Keyword({})", t(w)),
        SpecToken::Arg(a) => format!("SpecToken::Arg({})", t(a)),
        SpecToken::Choice { name, options } => {
            format!("SpecToken::Choice {{ name: {}, options: {} }}", t(name), texts(options.iter()))
        }
        SpecToken::Optional(inner) => format!("SpecToken::Optional({})", spec(inner)),
    }))
}

fn command(c: &CommandDef) -> String {
    format!(
        "CommandDef {{ modes: {}, spec_text: {}, spec: {}, handler: {}, readonly: {}, doc: {}, help: {}, origin: {} }}",
        texts(c.modes.iter()),
        t(&c.spec_text),
        spec(&c.spec),
        t(&c.handler),
        c.readonly,
        t(&c.doc),
        pairs(&c.help),
        t(&c.origin)
    )
}

fn elem(e: &Elem) -> String {
    match e {
        Elem::Root => "Elem::Root".into(),
        Elem::Keyword { word, help, capture } => {
            format!("Elem::Keyword {{ word: {}, help: {}, capture: {} }}", t(word), t(help), opt(capture))
        }
        Elem::Arg { name, kind: k, help } => {
            format!("Elem::Arg {{ name: {}, kind: {}, help: {} }}", t(name), kind(k), t(help))
        }
    }
}

/// Every node; the names a handler declares are written once (`DECLARED_n`), and the
/// ends of that handler's commands point at them.
fn tree(tree: &Tree, out: &mut String) {
    let mut declared: BTreeMap<&[Text], usize> = BTreeMap::new();
    for end in tree.nodes.iter().filter_map(|n| n.end.as_ref()) {
        let next = declared.len();
        if let std::collections::btree_map::Entry::Vacant(slot) = declared.entry(&end.declared) {
            let names = texts(end.declared.iter());
            let _ = writeln!(out, "const DECLARED_{next}: List<Text> = {names};");
            slot.insert(next);
        }
    }
    let end = |e: &End| {
        let names = declared.get(&*e.declared).map_or_else(|| texts(e.declared.iter()), |i| format!("DECLARED_{i}"));
        format!("End {{ command: {}, readonly: {}, declared: {names} }}", e.command, e.readonly)
    };
    let node = |n: &Node| {
        let children = l(n.children.iter().map(ToString::to_string));
        let end = n.end.as_ref().map_or_else(|| "None".into(), |e| format!("Some({})", end(e)));
        format!("Node {{ elem: {}, children: {children}, end: {end} }}", elem(&n.elem))
    };
    let _ = writeln!(
        out,
        "/// The command graph of `grammar/`, as build.rs built it.\n\
         pub(crate) static TREE: Tree = Tree {{\n    nodes: {},\n    roots: {},\n    filters: {},\n    conflicts: {},\n}};",
        list(tree.nodes.iter().map(node)),
        l(tree.roots.iter().map(|(name, id)| format!("({}, {id})", t(name)))),
        tree.filters,
        texts(tree.conflicts.iter())
    );
}

/// A long list, one item a line.
fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("l![\n        {},\n    ]", items.join(",\n        "))
}

/// `g` and its command graph `graph` as the source of `static GRAMMAR` and `static TREE`.
pub fn rust(g: &Grammar, graph: &Tree) -> String {
    let mut out = String::from(
        "// Written by build.rs from grammar/ (src/grammar/emit.rs); not to be edited.\n\
         const fn t(text: &'static str) -> Text {\n    std::borrow::Cow::Borrowed(text)\n}\n\
         macro_rules! l {\n    ($($item:expr),* $(,)?) => {\n        List(std::borrow::Cow::Borrowed(&[$($item),*]))\n    };\n}\n",
    );
    let _ = writeln!(
        out,
        "/// The grammar of `grammar/`, as build.rs parsed it.\n\
         pub(crate) static GRAMMAR: Grammar = Grammar {{\n    modes: {},\n    words: {},\n    args: {},\n    commands: {},\n    filters: {},\n}};",
        list(g.modes.iter().map(mode)),
        pairs(&g.words),
        list(g.args.iter().map(arg)),
        list(g.commands.iter().map(command)),
        list(g.filters.iter().map(command))
    );
    tree(graph, &mut out);
    out
}
