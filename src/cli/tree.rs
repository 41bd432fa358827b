//! The command graph: one tree of words and arguments per mode (and one for output
//! filters), built from the grammar with every optional group expanded. Where a
//! command ends, the graph keeps what the matcher hands on with it: the command, whether
//! it is read-only, and every name its handler may read.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::grammar::{ArgKind, CommandDef, Grammar, SpecToken, expand, visit_spec};

/// Index of a node in the tree.
pub type NodeId = usize;

/// What a node matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    /// The start of a mode's commands.
    Root,
    /// A literal word; `capture` names the choice it answers, if any.
    Keyword { word: String, help: String, capture: Option<String> },
    /// A typed argument.
    Arg { name: String, kind: ArgKind, help: String },
}

/// One word position in the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// What this node matches.
    pub elem: Elem,
    /// What may follow.
    pub children: Vec<NodeId>,
    /// The command that ends here, if one does.
    pub end: Option<End>,
}

/// A command where its words end.
#[derive(Debug, Clone)]
pub struct End {
    /// Index into `Grammar::commands` (or `filters`, in the filters' graph).
    pub command: usize,
    /// Declared `readonly` in the grammar.
    pub readonly: bool,
    /// Every keyword, placeholder and choice name of the commands its handler serves:
    /// what the handler may ask its [`crate::cli::Args`] for.
    pub declared: Arc<BTreeSet<String>>,
}

/// Every mode's command graph.
#[derive(Debug, Clone)]
pub struct Tree {
    /// All nodes; roots included.
    pub nodes: Vec<Node>,
    /// Root node of each mode.
    pub roots: BTreeMap<String, NodeId>,
    /// Root of the output filters that follow `|`.
    pub filters: NodeId,
    /// Commands whose path another command of the same mode already ends at.
    pub conflicts: Vec<String>,
}

impl Tree {
    /// Builds the graph of every mode from the grammar.
    pub fn build(g: &Grammar) -> Tree {
        let mut tree = Tree { nodes: Vec::new(), roots: BTreeMap::new(), filters: 0, conflicts: Vec::new() };
        for mode in &g.modes {
            let root = tree.add(Elem::Root);
            tree.roots.insert(mode.name.clone(), root);
        }
        tree.filters = tree.add(Elem::Root);
        let declared = declared_by_handler(&g.commands);
        for (index, cmd) in g.commands.iter().enumerate() {
            for mode in &g.modes {
                if inherits_from(g, &mode.name, &cmd.modes) {
                    let root = tree.roots[&mode.name];
                    tree.insert(g, cmd, root, End::of(index, cmd, &declared));
                }
            }
        }
        let declared = declared_by_handler(&g.filters);
        for (index, cmd) in g.filters.iter().enumerate() {
            let root = tree.filters;
            tree.insert(g, cmd, root, End::of(index, cmd, &declared));
        }
        tree
    }

    /// Root of `mode`, if it exists.
    pub fn root(&self, mode: &str) -> Option<NodeId> {
        self.roots.get(mode).copied()
    }

    fn add(&mut self, elem: Elem) -> NodeId {
        self.nodes.push(Node { elem, children: Vec::new(), end: None });
        self.nodes.len() - 1
    }

    fn insert(&mut self, g: &Grammar, cmd: &CommandDef, root: NodeId, end: End) {
        for form in expand(&cmd.spec) {
            self.insert_form(g, cmd, &end, root, &form);
        }
    }

    /// Adds one concrete form of a command below `at`; a choice forks into one path per option.
    fn insert_form(&mut self, g: &Grammar, cmd: &CommandDef, end: &End, at: NodeId, form: &[SpecToken]) {
        let Some((token, rest)) = form.split_first() else {
            if let Some(other) = self.nodes[at].end.as_ref().map(|e| e.command).filter(|&o| o != end.command) {
                self.conflicts.push(format!("{} repeats the path of command #{other}", cmd.origin));
            }
            self.nodes[at].end = Some(end.clone());
            return;
        };
        let keyword = |word: &String, capture: Option<&String>| Elem::Keyword {
            word: word.clone(),
            help: g.word_help(cmd, word).to_string(),
            capture: capture.cloned(),
        };
        match token {
            SpecToken::Keyword(word) => {
                let id = self.child(at, keyword(word, None));
                self.insert_form(g, cmd, end, id, rest);
            }
            SpecToken::Arg(name) => {
                if let Some(def) = g.args.get(name) {
                    let elem = Elem::Arg { name: name.clone(), kind: def.kind.clone(), help: def.help.clone() };
                    let id = self.child(at, elem);
                    self.insert_form(g, cmd, end, id, rest);
                }
            }
            SpecToken::Choice { name, options } => {
                for word in options {
                    let id = self.child(at, keyword(word, Some(name)));
                    self.insert_form(g, cmd, end, id, rest);
                }
            }
            SpecToken::Optional(_) => self.insert_form(g, cmd, end, at, rest),
        }
    }

    /// The child of `at` matching `elem`, created when missing.
    fn child(&mut self, at: NodeId, elem: Elem) -> NodeId {
        let same = |a: &Elem, b: &Elem| match (a, b) {
            (Elem::Keyword { word: x, capture: cx, .. }, Elem::Keyword { word: y, capture: cy, .. }) => {
                x == y && cx == cy
            }
            (Elem::Arg { name: x, .. }, Elem::Arg { name: y, .. }) => x == y,
            _ => false,
        };
        if let Some(&id) = self.nodes[at].children.iter().find(|&&c| same(&self.nodes[c].elem, &elem)) {
            return id;
        }
        let id = self.add(elem);
        self.nodes[at].children.push(id);
        id
    }
}

impl End {
    fn of(command: usize, cmd: &CommandDef, declared: &BTreeMap<&str, Arc<BTreeSet<String>>>) -> End {
        let declared = declared.get(cmd.handler.as_str()).cloned().unwrap_or_default();
        End { command, readonly: cmd.readonly, declared }
    }
}

/// For each handler, every name the commands it serves declare.
fn declared_by_handler(commands: &[CommandDef]) -> BTreeMap<&str, Arc<BTreeSet<String>>> {
    let mut names: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for cmd in commands {
        let set = names.entry(cmd.handler.as_str()).or_default();
        visit_spec(&cmd.spec, &mut |token| match token {
            SpecToken::Keyword(word) | SpecToken::Arg(word) => {
                set.insert(word.clone());
            }
            SpecToken::Choice { name, options } => {
                set.insert(name.clone());
                set.extend(options.iter().cloned());
            }
            SpecToken::Optional(_) => {}
        });
    }
    names.into_iter().map(|(handler, set)| (handler, Arc::new(set))).collect()
}

/// Whether a command declared for `modes` is available in `mode` (directly or inherited).
fn inherits_from(g: &Grammar, mode: &str, modes: &[String]) -> bool {
    let mut current = Some(mode);
    while let Some(name) = current {
        if modes.iter().any(|m| m == name) {
            return true;
        }
        current = g.mode(name).and_then(|m| m.inherits.as_deref());
    }
    false
}
