//! The command tree as declared in `grammar/*.grammar`: modes, word help, typed
//! arguments, commands and output filters ([`model`]), and the command graph built from
//! them ([`graph`]). The build script (build.rs) parses the files with nom (`parse`) and
//! builds the graph at compile time, so a grammar error fails the build, and writes both
//! out as static data (`emit`): a start parses and builds nothing. Help, completion, the
//! matcher and docs/commands.md all come from that one [`Grammar`]. The files are still
//! embedded ([`FILES`]), and tests check that parsing them at run time, and building the
//! graph from that, gives the very same values.

mod docs;
pub mod graph;
mod model;
mod parse;

pub use docs::commands_markdown;
pub use graph::{Elem, End, Node, NodeId, Tree};
pub use model::*;

// `static GRAMMAR` and `static TREE`, written by build.rs from `grammar/`.
include!(concat!(env!("OUT_DIR"), "/grammar.rs"));

impl Grammar {
    /// The grammar of this binary, as build.rs parsed it.
    pub fn builtin() -> &'static Grammar {
        &GRAMMAR
    }
}

/// The command graph of the built-in grammar, as build.rs built it.
pub fn builtin_tree() -> &'static Tree {
    &TREE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_built_at_compile_time_is_the_one_the_files_parse_into() {
        let parsed = Grammar::from_sources(FILES).unwrap();
        assert_eq!(*Grammar::builtin(), parsed);
        assert_eq!(*builtin_tree(), Tree::build(&parsed));
    }
}
