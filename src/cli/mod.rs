//! The command-line front: lexing a line, typed arguments, and the matcher (match,
//! help, completion) over the grammar's command graph ([`crate::grammar::graph`]).

pub mod args;
pub mod lexer;
pub mod matcher;

pub use crate::grammar::{Tree, builtin_tree};
pub use args::{Args, Value};
pub use lexer::{LexError, Line};
pub use matcher::{HelpItem, MatchError, Matched, Matcher};
