//! The command tree as declared in `grammar/*.grammar`: modes, word help, typed
//! arguments, commands and output filters ([`model`]), and the command graph built from
//! them ([`graph`]). The build script (build.rs) parses the files with nom (`parse`) and
//! builds the graph at compile time, so a grammar error fails the build, and writes both
//! out as static data without pointers (`emit`, `pool`): a start parses, builds and
//! relocates nothing of them. Help, completion, the
//! matcher and docs/commands.md all come from that one [`Grammar`]. The files are still
//! embedded ([`FILES`]), and tests check that parsing them at run time, and building the
//! graph from that, gives the very same values.

mod docs;
pub mod graph;
mod model;
mod parse;
mod pool;

pub use docs::commands_markdown;
pub use graph::{Elem, End, Node, NodeId, Tree};
pub use model::*;
use pool::Pooled;

// `static GRAMMAR`, `static TREE` and `mod pools`, written by build.rs from `grammar/`.
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

    /// The sections of an ELF file, by name: (address, size).
    fn sections(elf: &[u8]) -> std::collections::HashMap<String, (usize, usize)> {
        let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
        let u32_at = |at: usize| u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) as usize;
        let u64_at = |at: usize| u64::from_le_bytes(elf[at..at + 8].try_into().unwrap()) as usize;
        let (table, size, count) = (u64_at(0x28), u16_at(0x3a), u16_at(0x3c));
        let header = |i: usize| table + i * size;
        let names = u64_at(header(u16_at(0x3e)) + 24);
        (0..count)
            .map(|i| {
                let name = &elf[names + u32_at(header(i))..];
                let name = String::from_utf8_lossy(&name[..name.iter().position(|b| *b == 0).unwrap()]);
                (name.into_owned(), (u64_at(header(i) + 16), u64_at(header(i) + 32)))
            })
            .collect()
    }

    /// No pointer in the built-in grammar, the command graph or their pools: they lie in
    /// `.rodata`, which the dynamic loader never writes, not in `.data.rel.ro`, which it
    /// relocates at every start. A field that holds a pointer again (a `&str`, a `Cow`)
    /// moves them there and fails this.
    #[test]
    fn the_built_in_grammar_is_data_the_loader_does_not_relocate() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let sections = sections(&std::fs::read(&exe).unwrap());
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = exe.to_string_lossy();
        let base = maps
            .lines()
            .find(|l| l.ends_with(&*exe) && l.split_whitespace().nth(2) == Some("00000000"))
            .and_then(|l| usize::from_str_radix(l.split('-').next()?, 16).ok())
            .unwrap();
        let (start, size) = sections[".rodata"];
        let statics = [
            ("GRAMMAR", &GRAMMAR as *const Grammar as usize),
            ("TREE", &TREE as *const Tree as usize),
            ("NODES", pools::NODES.as_ptr() as usize),
            ("COMMANDS", pools::COMMANDS.as_ptr() as usize),
            ("TEXTS", pools::TEXTS.as_ptr() as usize),
        ];
        for (name, at) in statics {
            let at = at - base;
            assert!((start..start + size).contains(&at), "{name} at {at:#x}, .rodata {start:#x}+{size:#x}");
        }
    }
}
