//! Writes a parsed [`Grammar`] and its command [`Tree`] as Rust source, for the build
//! script: `static GRAMMAR` and `static TREE`, the very values the parser and
//! [`Tree::build`] made, and the pools their texts and lists are spans of (`mod pools`:
//! every text once in one string, every list once in the array of its kind of item;
//! see [`super::pool`]). The whole is data without pointers, so a start neither builds
//! it nor has it relocated: it reads it where it lies.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use super::{ArgDef, ArgKind, CommandDef, Elem, End, Grammar, ModeDef, Node, SpecToken, Tree};

/// The pools, by name, with the Rust type of their items: each type's `Pooled` impl
/// is written beside its pool (build.rs has them too, with empty pools).
const POOLS: &[(&str, &str)] = &[
    ("TEXTS", "Text"),
    ("NODE_IDS", "usize"),
    ("NODES", "Node"),
    ("ROOTS", "(Text, usize)"),
    ("PAIRS", "(Text, Text)"),
    ("MODES", "ModeDef"),
    ("ARGS", "ArgDef"),
    ("COMMANDS", "CommandDef"),
    ("SPEC", "SpecToken"),
];

/// The pools as they fill: each text and each list is written once, and every later
/// use of the same one gets the same span.
#[derive(Default)]
struct Pools {
    text: String,
    texts: HashMap<String, usize>,
    items: BTreeMap<&'static str, Vec<String>>,
    lists: HashMap<(&'static str, Vec<String>), usize>,
}

impl Pools {
    /// A text as a Rust expression: its span of the text pool.
    fn t(&mut self, text: &str) -> String {
        let start = match self.texts.get(text) {
            Some(start) => *start,
            None => {
                let start = self.text.len();
                self.text.push_str(text);
                self.texts.insert(text.to_string(), start);
                start
            }
        };
        format!("t({start}, {})", text.len())
    }

    fn opt(&mut self, text: &Option<super::Text>) -> String {
        match text.as_deref() {
            Some(x) => format!("Some({})", self.t(x)),
            None => "None".into(),
        }
    }

    /// A list of already written items as a Rust expression: its span of `pool`.
    fn l(&mut self, pool: &'static str, items: Vec<String>) -> String {
        let len = items.len();
        let key = (pool, items);
        let start = match self.lists.get(&key) {
            Some(start) => *start,
            None => {
                let slot = self.items.entry(pool).or_default();
                let start = slot.len();
                slot.extend(key.1.iter().cloned());
                self.lists.insert(key, start);
                start
            }
        };
        format!("l({start}, {len})")
    }

    fn texts<'a>(&mut self, items: impl IntoIterator<Item = &'a super::Text>) -> String {
        let items = items.into_iter().map(|x| self.t(x)).collect();
        self.l("TEXTS", items)
    }

    fn pairs(&mut self, items: &[(super::Text, super::Text)]) -> String {
        let items = items.iter().map(|(k, v)| format!("({}, {})", self.t(k), self.t(v))).collect();
        self.l("PAIRS", items)
    }

    fn mode(&mut self, m: &ModeDef) -> String {
        format!(
            "ModeDef {{ name: {}, parent: {}, inherits: {}, via: {}, prompt: {}, help: {} }}",
            self.t(&m.name),
            self.opt(&m.parent),
            self.opt(&m.inherits),
            self.opt(&m.via),
            self.t(&m.prompt),
            self.t(&m.help)
        )
    }

    fn kind(&mut self, k: &ArgKind) -> String {
        match k {
            ArgKind::Int { min, max } => format!("ArgKind::Int {{ min: {min}, max: {max} }}"),
            ArgKind::Exec(mode) => format!("ArgKind::Exec({})", self.t(mode)),
            other => format!("ArgKind::{other:?}"),
        }
    }

    fn arg(&mut self, a: &ArgDef) -> String {
        format!("ArgDef {{ name: {}, kind: {}, help: {} }}", self.t(&a.name), self.kind(&a.kind), self.t(&a.help))
    }

    fn spec(&mut self, tokens: &[SpecToken]) -> String {
        let items = tokens
            .iter()
            .map(|token| match token {
                SpecToken::Keyword(w) => format!("SpecToken::Keyword({})", self.t(w)),
                SpecToken::Arg(a) => format!("SpecToken::Arg({})", self.t(a)),
                SpecToken::Choice { name, options } => {
                    format!("SpecToken::Choice {{ name: {}, options: {} }}", self.t(name), self.texts(options.iter()))
                }
                SpecToken::Optional(inner) => format!("SpecToken::Optional({})", self.spec(inner)),
            })
            .collect();
        self.l("SPEC", items)
    }

    fn command(&mut self, c: &CommandDef) -> String {
        format!(
            "CommandDef {{ modes: {}, spec_text: {}, spec: {}, handler: {}, readonly: {}, doc: {}, help: {}, origin: {} }}",
            self.texts(c.modes.iter()),
            self.t(&c.spec_text),
            self.spec(&c.spec),
            self.t(&c.handler),
            c.readonly,
            self.t(&c.doc),
            self.pairs(&c.help),
            self.t(&c.origin)
        )
    }

    fn elem(&mut self, e: &Elem) -> String {
        match e {
            Elem::Root => "Elem::Root".into(),
            Elem::Keyword { word, help, capture } => {
                let (word, help) = (self.t(word), self.t(help));
                format!("Elem::Keyword {{ word: {word}, help: {help}, capture: {} }}", self.opt(capture))
            }
            Elem::Arg { name, kind, help } => {
                let name = self.t(name);
                format!("Elem::Arg {{ name: {name}, kind: {}, help: {} }}", self.kind(kind), self.t(help))
            }
        }
    }

    fn end(&mut self, e: &End) -> String {
        format!(
            "End {{ command: {}, readonly: {}, declared: {} }}",
            e.command,
            e.readonly,
            self.texts(e.declared.iter())
        )
    }

    fn node(&mut self, n: &Node) -> String {
        let children = self.l("NODE_IDS", n.children.iter().map(ToString::to_string).collect());
        let end = match &n.end {
            Some(e) => format!("Some({})", self.end(e)),
            None => "None".into(),
        };
        format!("Node {{ elem: {}, children: {children}, end: {end} }}", self.elem(&n.elem))
    }

    /// `mod pools`: the text and every list pool, one item a line; and each kind's
    /// `Pooled` impl, which reaches its pool.
    fn module(&self) -> String {
        let mut out = String::new();
        for (name, item) in POOLS {
            let text =
                if *item == "Text" { "\n    fn text() -> &'static str {\n        pools::TEXT\n    }" } else { "" };
            let _ = writeln!(
                out,
                "impl Pooled for {item} {{\n    fn pool() -> &'static [{item}] {{\n        &pools::{name}\n    }}{text}\n}}"
            );
        }
        let _ = write!(out, "mod pools {{\n    use super::*;\n    pub const TEXT: &str = {:?};\n", self.text);
        for (name, item) in POOLS {
            let items = self.items.get(name).map(Vec::as_slice).unwrap_or_default();
            let _ = write!(out, "    pub static {name}: [{item}; {}] = [", items.len());
            for item in items {
                let _ = write!(out, "\n        {item},");
            }
            out.push_str("\n    ];\n");
        }
        out.push_str("}\n");
        out
    }
}

/// `g` and its command graph `graph` as the source of `static GRAMMAR`, `static TREE`
/// and their pools.
pub fn rust(g: &Grammar, graph: &Tree) -> String {
    let mut p = Pools::default();
    let modes = g.modes.iter().map(|m| p.mode(m)).collect();
    let modes = p.l("MODES", modes);
    let words = p.pairs(&g.words);
    let args = g.args.iter().map(|a| p.arg(a)).collect();
    let args = p.l("ARGS", args);
    let commands = g.commands.iter().map(|c| p.command(c)).collect();
    let commands = p.l("COMMANDS", commands);
    let filters = g.filters.iter().map(|c| p.command(c)).collect();
    let filters = p.l("COMMANDS", filters);
    let nodes = graph.nodes.iter().map(|n| p.node(n)).collect();
    let nodes = p.l("NODES", nodes);
    let roots = graph.roots.iter().map(|(name, id)| format!("({}, {id})", p.t(name))).collect();
    let roots = p.l("ROOTS", roots);
    let conflicts = p.texts(graph.conflicts.iter());
    let mut out = String::from(
        "// Written by build.rs from grammar/ (src/grammar/emit.rs); not to be edited.\n\
         const fn t(start: u32, len: u32) -> Text {\n    Text::Builtin { start, len }\n}\n\
         const fn l<T: Pooled>(start: u32, len: u32) -> List<T> {\n    List::Builtin { start, len }\n}\n",
    );
    let _ = writeln!(
        out,
        "/// The grammar of `grammar/`, as build.rs parsed it.\n\
         pub(crate) static GRAMMAR: Grammar = Grammar {{ modes: {modes}, words: {words}, args: {args}, commands: {commands}, filters: {filters} }};\n\
         /// The command graph of `grammar/`, as build.rs built it.\n\
         pub(crate) static TREE: Tree = Tree {{ nodes: {nodes}, roots: {roots}, filters: {}, conflicts: {conflicts} }};",
        graph.filters
    );
    out.push_str(&p.module());
    out
}
