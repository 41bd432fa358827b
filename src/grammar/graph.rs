//! The command graph: one tree of words and arguments per mode (and one for output
//! filters), built from the grammar with every optional group expanded. Where a
//! command ends, the graph keeps what the matcher hands on with it: the command, whether
//! it is read-only, and every name its handler may read. Shared with the build script,
//! which builds the graph of `grammar/` at compile time and writes it out as static data
//! ([`super::builtin_tree`]); a start builds nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::{ArgKind, CommandDef, Grammar, List, SpecToken, Text, expand, visit_spec};

/// Index of a node in the tree.
pub type NodeId = usize;

/// What a node matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    /// The start of a mode's commands.
    Root,
    /// A literal word; `capture` names the choice it answers, if any.
    Keyword { word: Text, help: Text, capture: Option<Text> },
    /// A typed argument.
    Arg { name: Text, kind: ArgKind, help: Text },
}

/// One word position in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What this node matches.
    pub elem: Elem,
    /// What may follow.
    pub children: List<NodeId>,
    /// The command that ends here, if one does.
    pub end: Option<End>,
}

/// A command where its words end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    /// Index into `Grammar::commands` (or `filters`, in the filters' graph).
    pub command: usize,
    /// Declared `readonly` in the grammar.
    pub readonly: bool,
    /// Every keyword, placeholder and choice name of the commands its handler serves,
    /// sorted: what the handler may ask its `cli::Args` for.
    pub declared: List<Text>,
}

/// Every mode's command graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// All nodes; roots included.
    pub nodes: List<Node>,
    /// Root node of each mode, in the grammar's order of modes.
    pub roots: List<(Text, NodeId)>,
    /// Root of the output filters that follow `|`.
    pub filters: NodeId,
    /// Commands whose path another command of the same mode already ends at.
    pub conflicts: List<Text>,
}

impl Tree {
    /// Builds the graph of every mode from the grammar.
    pub fn build(g: &Grammar) -> Tree {
        let mut b = Builder { nodes: Vec::new(), conflicts: Vec::new() };
        let roots: Vec<(Text, NodeId)> = g.modes.iter().map(|mode| (mode.name.clone(), b.add(Elem::Root))).collect();
        let filters = b.add(Elem::Root);
        let declared = declared_by_handler(&g.commands);
        for (index, cmd) in g.commands.iter().enumerate() {
            for (mode, root) in &roots {
                if inherits_from(g, mode, &cmd.modes) {
                    b.insert(g, cmd, *root, End::of(index, cmd, &declared));
                }
            }
        }
        let declared = declared_by_handler(&g.filters);
        for (index, cmd) in g.filters.iter().enumerate() {
            b.insert(g, cmd, filters, End::of(index, cmd, &declared));
        }
        let nodes = b.nodes.into_iter().map(|(elem, children, end)| Node { elem, children: children.into(), end });
        Tree { nodes: nodes.collect(), roots: roots.into(), filters, conflicts: b.conflicts.into() }
    }

    /// Root of `mode`, if it exists.
    pub fn root(&self, mode: &str) -> Option<NodeId> {
        self.roots.iter().find(|(name, _)| name == mode).map(|(_, id)| *id)
    }
}

/// A graph being built: each node's element, children and end.
struct Builder {
    nodes: Vec<(Elem, Vec<NodeId>, Option<End>)>,
    conflicts: Vec<Text>,
}

impl Builder {
    fn add(&mut self, elem: Elem) -> NodeId {
        self.nodes.push((elem, Vec::new(), None));
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
            if let Some(other) = self.nodes[at].2.as_ref().map(|e| e.command).filter(|&o| o != end.command) {
                self.conflicts.push(format!("{} repeats the path of command #{other}", cmd.origin).into());
            }
            self.nodes[at].2 = Some(end.clone());
            return;
        };
        let keyword = |word: &Text, capture: Option<&Text>| Elem::Keyword {
            word: word.clone(),
            help: g.word_help(cmd, word).to_string().into(),
            capture: capture.cloned(),
        };
        match token {
            SpecToken::Keyword(word) => {
                let id = self.child(at, keyword(word, None));
                self.insert_form(g, cmd, end, id, rest);
            }
            SpecToken::Arg(name) => {
                if let Some(def) = g.arg(name) {
                    let elem = Elem::Arg { name: name.clone(), kind: def.kind.clone(), help: def.help.clone() };
                    let id = self.child(at, elem);
                    self.insert_form(g, cmd, end, id, rest);
                }
            }
            SpecToken::Choice { name, options } => {
                for word in options.iter() {
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
        if let Some(&id) = self.nodes[at].1.iter().find(|&&c| same(&self.nodes[c].0, &elem)) {
            return id;
        }
        let id = self.add(elem);
        self.nodes[at].1.push(id);
        id
    }
}

impl End {
    fn of(command: usize, cmd: &CommandDef, declared: &BTreeMap<&str, List<Text>>) -> End {
        let declared = declared.get(&*cmd.handler).cloned().unwrap_or_default();
        End { command, readonly: cmd.readonly, declared }
    }
}

/// For each handler, every name the commands it serves declare, sorted.
fn declared_by_handler(commands: &[CommandDef]) -> BTreeMap<&str, List<Text>> {
    let mut names: BTreeMap<&str, BTreeSet<Text>> = BTreeMap::new();
    for cmd in commands {
        let set = names.entry(&*cmd.handler).or_default();
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
    names.into_iter().map(|(handler, set)| (handler, set.into_iter().collect())).collect()
}

/// Whether a command declared for `modes` is available in `mode` (directly or inherited).
fn inherits_from(g: &Grammar, mode: &str, modes: &[Text]) -> bool {
    let mut current = Some(mode);
    while let Some(name) = current {
        if modes.iter().any(|m| m == name) {
            return true;
        }
        current = g.mode(name).and_then(|m| m.inherits.as_deref());
    }
    false
}
