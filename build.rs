//! Parses `grammar/*.grammar` at compile time with the shell's own nom parser and model
//! (src/grammar/{model,parse}.rs) and builds its command graph (src/grammar/graph.rs): a
//! grammar error fails the build, and the binary gets both as static data
//! ($OUT_DIR/grammar.rs, see src/grammar/emit.rs), so a start parses and builds nothing.

#[path = "src/grammar/emit.rs"]
mod emit;
#[allow(dead_code)]
#[path = "src/grammar/graph.rs"]
mod graph;
#[allow(dead_code)]
#[path = "src/grammar/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "src/grammar/parse.rs"]
mod parse;

use graph::*;
use model::*;

fn main() {
    println!("cargo::rerun-if-changed=grammar");
    for file in ["model.rs", "parse.rs", "graph.rs", "emit.rs"] {
        println!("cargo::rerun-if-changed=src/grammar/{file}");
    }
    let grammar = match Grammar::from_sources(FILES) {
        Ok(g) => g,
        Err(e) => {
            println!("cargo::error={e}");
            std::process::exit(1);
        }
    };
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default()).join("grammar.rs");
    let tree = Tree::build(&grammar);
    if let Some(conflict) = tree.conflicts.first() {
        println!("cargo::error=grammar: {conflict}");
        std::process::exit(1);
    }
    if let Err(e) = std::fs::write(&out, emit::rust(&grammar, &tree)) {
        println!("cargo::error=cannot write {}: {e}", out.display());
        std::process::exit(1);
    }
}
