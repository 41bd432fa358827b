//! The command tree as declared in `grammar/*.grammar`: modes, word help, typed
//! arguments, commands and output filters. The build script (build.rs) parses the files
//! with nom (`parse`) into the [`model`]'s types at compile time, so a grammar error
//! fails the build and a start does no parsing: [`Grammar::builtin`] is built from the
//! generated code. Help, completion, the matcher and docs/commands.md all come from that
//! one [`Grammar`] value. The files are still embedded ([`FILES`]), and a test checks
//! that parsing them at run time gives the very same grammar.

mod docs;
mod model;
mod parse;

use std::sync::OnceLock;

pub use docs::commands_markdown;
pub use model::*;

// `fn built() -> Grammar`, written by build.rs from `grammar/`.
include!(concat!(env!("OUT_DIR"), "/grammar.rs"));

impl Grammar {
    /// The grammar of this binary, built once from what build.rs parsed.
    pub fn builtin() -> Result<&'static Grammar, &'static GrammarError> {
        static GRAMMAR: OnceLock<Result<Grammar, GrammarError>> = OnceLock::new();
        GRAMMAR.get_or_init(|| Ok(built())).as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_built_at_compile_time_is_the_one_the_files_parse_into() {
        assert_eq!(*Grammar::builtin().unwrap(), Grammar::from_sources(FILES).unwrap());
    }
}
