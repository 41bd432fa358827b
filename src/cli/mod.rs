//! The command-line front: lexing a line, the command graph built from the grammar,
//! typed arguments, and the matcher (match, help, completion).

pub mod args;
pub mod lexer;
pub mod matcher;
pub mod tree;

use std::sync::OnceLock;

pub use args::{Args, Value};
pub use lexer::{LexError, Line};
pub use matcher::{HelpItem, MatchError, Matched, Matcher};
pub use tree::Tree;

/// The command graph of the built-in grammar, built once.
pub fn builtin_tree() -> Result<&'static Tree, String> {
    static TREE: OnceLock<Result<Tree, String>> = OnceLock::new();
    TREE.get_or_init(|| crate::grammar::Grammar::builtin().map(Tree::build).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}
