//! Matching typed words against a mode's command graph: unique-prefix abbreviation,
//! typed arguments ranked below keywords, `?` help lists and TAB completion. Handlers
//! never see the graph; they get a [`Matched`] command with its [`Args`].

use crate::cli::args::{Args, Value, check, is_catch_all, takes_rest};
use crate::cli::lexer::{Line, Segment, Token};
use crate::grammar::ArgKind;
use crate::grammar::{Elem, NodeId, Tree};

/// A command that matched, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// Index of the command (or filter) in the grammar.
    pub command: usize,
    /// Its arguments.
    pub args: Args,
    /// Declared `readonly`: a mate or a user-mode `failover exec` may run it.
    pub readonly: bool,
    /// For `do COMMAND`: the mode to run it in, and the command.
    pub inner: Option<(String, Box<Matched>)>,
}

/// Why a line does not name a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    /// The word at `column` fits nothing here; `detail` says why when an argument refused it.
    Invalid { column: usize, detail: Option<String> },
    /// The word at `column` is a prefix of several keywords.
    Ambiguous { column: usize },
    /// The words so far are the start of a command, not a whole one.
    Incomplete,
}

/// One line of `?` help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpItem {
    /// The word, argument placeholder, or `<cr>`.
    pub word: String,
    /// What it means.
    pub help: String,
}

/// Where a walk over some words ended.
struct Walk {
    node: NodeId,
    args: Args,
    inner: Option<(String, Box<Walk>)>,
}

/// Matches lines against one [`Tree`].
#[derive(Clone, Copy)]
pub struct Matcher<'a> {
    /// The graph of every mode.
    pub tree: &'a Tree,
}

impl<'a> Matcher<'a> {
    /// Matches a whole segment of `line` from `root`.
    pub fn matches(&self, root: NodeId, line: &Line, seg: &Segment) -> Result<Matched, MatchError> {
        let walk = self.walk(root, line, seg, 0, seg.tokens.len())?;
        self.finish(walk)
    }

    fn finish(&self, walk: Walk) -> Result<Matched, MatchError> {
        let end = self.tree.nodes[walk.node].end.as_ref().ok_or(MatchError::Incomplete)?;
        let inner = match walk.inner {
            Some((mode, inner)) => Some((mode, Box::new(self.finish(*inner)?))),
            None => None,
        };
        let args = Args { declared: Some(end.declared.clone()), ..walk.args };
        Ok(Matched { command: end.command, args, readonly: end.readonly, inner })
    }

    /// `?` help. `partial` is true when the last word is being typed (`sh?`), false
    /// when help is asked for the next word (`show ?`).
    pub fn help(&self, root: NodeId, line: &Line, seg: &Segment, partial: bool) -> Result<Vec<HelpItem>, MatchError> {
        let (node, prefix) = self.prepare(root, line, seg, partial)?;
        let mut items: Vec<HelpItem> = Vec::new();
        let mut args: Vec<HelpItem> = Vec::new();
        for child in self.next_nodes(node) {
            match &self.tree.nodes[child].elem {
                Elem::Keyword { word, help, .. } if word.starts_with(&prefix) => {
                    items.push(HelpItem { word: word.to_string(), help: help.to_string() });
                }
                Elem::Arg { name, kind, help } if !partial => {
                    let word = match kind {
                        ArgKind::Int { .. } => kind.to_string(),
                        ArgKind::Secret | ArgKind::Regex | ArgKind::SshKey => "LINE".to_string(),
                        _ => name.to_string(),
                    };
                    args.push(HelpItem { word, help: help.to_string() });
                }
                _ => {}
            }
        }
        items.sort_by(|a, b| a.word.cmp(&b.word));
        items.dedup();
        items.extend(args);
        if !partial && self.tree.nodes[node].end.is_some() {
            items.push(HelpItem { word: "<cr>".into(), help: String::new() });
        }
        Ok(items)
    }

    /// TAB completion: the keywords that can replace the last (partial) word.
    pub fn complete(&self, root: NodeId, line: &Line, seg: &Segment) -> Vec<String> {
        let partial = !line.trailing_space && !seg.tokens.is_empty();
        let Ok((node, prefix)) = self.prepare(root, line, seg, partial) else {
            return Vec::new();
        };
        let mut words: Vec<String> = self
            .next_nodes(node)
            .into_iter()
            .filter_map(|c| match &self.tree.nodes[c].elem {
                Elem::Keyword { word, .. } if word.starts_with(&prefix) => Some(word.to_string()),
                _ => None,
            })
            .collect();
        words.sort();
        words.dedup();
        words
    }

    /// Walks all words but a partial last one; returns the node reached and that prefix.
    fn prepare(&self, root: NodeId, line: &Line, seg: &Segment, partial: bool) -> Result<(NodeId, String), MatchError> {
        let upto = if partial { seg.tokens.len().saturating_sub(1) } else { seg.tokens.len() };
        let prefix = match (partial, seg.tokens.last()) {
            (true, Some(last)) => last.text.to_lowercase(),
            _ => String::new(),
        };
        let mut walk = self.walk(root, line, seg, 0, upto)?;
        while let Some((_, inner)) = walk.inner {
            walk = *inner;
        }
        Ok((walk.node, prefix))
    }

    /// What may follow `node`; an argument that runs another mode's command stands
    /// for the first words of that mode.
    fn next_nodes(&self, node: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        for &child in &self.tree.nodes[node].children {
            match &self.tree.nodes[child].elem {
                Elem::Arg { kind: ArgKind::Exec(mode), .. } => {
                    if let Some(root) = self.tree.root(mode) {
                        out.extend(self.tree.nodes[root].children.iter().copied());
                    }
                }
                _ => out.push(child),
            }
        }
        out
    }

    fn walk(&self, root: NodeId, line: &Line, seg: &Segment, from: usize, upto: usize) -> Result<Walk, MatchError> {
        let mut node = root;
        let mut args = Args::default();
        let mut i = from;
        while i < upto {
            let token = &seg.tokens[i];
            let exec = self.tree.nodes[node].children.iter().copied().find_map(|c| match &self.tree.nodes[c].elem {
                Elem::Arg { name, kind: ArgKind::Exec(mode), .. } => Some((c, name.clone(), mode.clone())),
                _ => None,
            });
            if let Some((child, name, mode)) = exec {
                let target = self.tree.root(&mode).ok_or(MatchError::Incomplete)?;
                args.values.insert(name.to_string(), Value::Text(line.rest(seg, i)));
                let inner = self.walk(target, line, seg, i, upto)?;
                return Ok(Walk { node: child, args, inner: Some((mode.to_string(), Box::new(inner))) });
            }
            let child = self.pick(node, token)?;
            match &self.tree.nodes[child].elem {
                Elem::Keyword { word, capture, .. } => {
                    args.keywords.insert(word.to_string());
                    if let Some(name) = capture {
                        args.values.insert(name.to_string(), Value::Text(word.to_string()));
                    }
                }
                Elem::Arg { name, kind, .. } => {
                    let rest = takes_rest(kind);
                    let text = if rest { line.rest(seg, i) } else { token.text.clone() };
                    let value = check(kind, &text)
                        .map_err(|detail| MatchError::Invalid { column: token.column, detail: Some(detail) })?;
                    args.values.insert(name.to_string(), value);
                    if *kind == ArgKind::Secret {
                        args.secret_at = Some(i);
                    }
                    if rest {
                        i = upto;
                    }
                }
                Elem::Root => {}
            }
            node = child;
            i += 1;
        }
        Ok(Walk { node, args, inner: None })
    }

    /// The child of `node` that `token` selects. Exact keywords first, then a unique
    /// keyword prefix (unless a catch-all argument is there too), then typed arguments.
    fn pick(&self, node: NodeId, token: &Token) -> Result<NodeId, MatchError> {
        let word = token.text.to_lowercase();
        let children = &self.tree.nodes[node].children;
        let elem = |c: &NodeId| &self.tree.nodes[*c].elem;
        let keyword = |c: &&NodeId, exact: bool| match elem(c) {
            Elem::Keyword { word: w, .. } if !token.quoted && !word.is_empty() => {
                if exact {
                    *w == word
                } else {
                    w.starts_with(&word)
                }
            }
            _ => false,
        };
        let exact: Vec<&NodeId> = children.iter().filter(|c| keyword(c, true)).collect();
        if let [only] = exact.as_slice() {
            return Ok(**only);
        }
        let prefixed: Vec<&NodeId> = children.iter().filter(|c| keyword(c, false)).collect();
        let catch_all: Vec<&NodeId> =
            children.iter().filter(|c| matches!(elem(c), Elem::Arg { kind, .. } if is_catch_all(kind))).collect();
        if !prefixed.is_empty() && catch_all.is_empty() {
            return match prefixed.as_slice() {
                [only] => Ok(**only),
                _ => Err(MatchError::Ambiguous { column: token.column }),
            };
        }
        let mut refusal = None;
        for child in children {
            if let Elem::Arg { kind, .. } = elem(child)
                && !is_catch_all(kind)
            {
                match check(kind, &token.text) {
                    Ok(_) => return Ok(*child),
                    Err(why) => {
                        refusal.get_or_insert(why);
                    }
                }
            }
        }
        if let Some(child) = catch_all.first() {
            return Ok(**child);
        }
        Err(MatchError::Invalid { column: token.column, detail: refusal })
    }
}
