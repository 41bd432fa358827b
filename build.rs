//! Parses `grammar/*.grammar` at compile time with the shell's own nom parser and model
//! (src/grammar/{model,parse}.rs) and builds its command graph (src/grammar/graph.rs): a
//! grammar error fails the build, and the binary gets both as static data without
//! pointers ($OUT_DIR/grammar.rs, see src/grammar/emit.rs and pool.rs), so a start
//! parses, builds and relocates nothing of them.
//!
//! It also links GCC's unwinder (libgcc_eh.a) into every binary on GNU/Linux, in place of
//! the shared libgcc_s.so.1 that Rust's std asks for: one shared library less to map,
//! relocate and initialise at every start, whose constructor alone runs nine `cpuid`
//! instructions (docs/benchmarks.md, shell start-up). The C library stays shared.

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
#[allow(dead_code)]
#[path = "src/grammar/pool.rs"]
mod pool;

/// Every kind of text and list item with an empty pool (src/grammar/pool.rs): here
/// every one is parsed, so owned. The binary's pools and their impls are written by
/// emit.rs; a kind missing here fails to compile.
macro_rules! empty_pools {
    ($($item:ty),* $(,)?) => {
        $(impl pool::Pooled for $item {
            fn pool() -> &'static [$item] {
                &[]
            }
        })*
    };
}
empty_pools!(Text, usize, Node, (Text, usize), (Text, Text), ModeDef, ArgDef, CommandDef, SpecToken);

use graph::*;
use model::*;

fn main() {
    link_the_unwinder_statically();
    println!("cargo::rerun-if-changed=grammar");
    for file in ["model.rs", "parse.rs", "graph.rs", "emit.rs", "pool.rs"] {
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

/// Asks for `-lgcc_eh` ahead of std's `-lgcc_s` (a library's native libraries come before
/// std's at the final link), so the linker takes the unwinder from the archive and, with
/// `--as-needed`, leaves libgcc_s.so.1 out. Only where std links libgcc_s: GNU/Linux
/// without `crt-static`.
fn link_the_unwinder_statically() {
    let var = |name| std::env::var(name).unwrap_or_default();
    let static_crt = var("CARGO_CFG_TARGET_FEATURE").split(',').any(|f| f == "crt-static");
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && !static_crt {
        println!("cargo::rustc-link-lib=static:-bundle=gcc_eh");
    }
}
