//! The crate's modules stand in layers, and code uses only what stands below it: no
//! import runs up a layer or sideways within one, so there is no cycle. The layers are
//! listed here, top first (docs/architecture.md draws them); every `crate::` path in the
//! code under `src/` (comments aside) is checked against them.

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules, by layer, the highest first.
const LAYERS: &[&[&str]] = &[
    &["invocation"],
    &["shell"],
    &["serve", "handlers"],
    &["replication", "report", "shared"],
    &["ssh", "http", "cli"],
    &["peer", "node", "notify", "load"],
    &["coredb", "ha", "quorum"],
    &["store", "clients", "host", "secret", "session", "grammar", "lab"],
    &["words"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level modules a piece of code names with `crate::` (in `use` lines, groups
/// `crate::{a, b::c}` included, and in paths).
fn named(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => start = true,
                    c if c.is_whitespace() => continue,
                    _ if start && depth == 1 => {
                        out.insert(ident(&group[i..]));
                        start = false;
                    }
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// The file's code without its comments (doc links are not imports).
fn code_of(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_import_runs_up_a_layer_or_sideways() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in &all {
        let relative = path.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("a component").as_os_str().to_string_lossy();
        let module = first.trim_end_matches(".rs");
        // The binaries (main.rs, bin/) stand on top of everything; lib.rs names the modules.
        if module == "main" || module == "lib" || module == "bin" {
            continue;
        }
        let own = layer(module).unwrap_or_else(|| panic!("src/{module} is in no layer: add it to LAYERS"));
        let text = std::fs::read_to_string(path).expect("read");
        for used in named(&code_of(&text)) {
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l > own => {}
                Some(_) => wrong.push(format!("{}: {module} uses crate::{used}", relative.display())),
                None => wrong.push(format!("{}: crate::{used} is in no layer", relative.display())),
            }
        }
    }
    assert!(wrong.is_empty(), "imports that run up or sideways:\n{}", wrong.join("\n"));
}

#[test]
fn every_module_of_the_crate_is_in_a_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).expect("lib.rs");
    for line in lib.lines() {
        if let Some(name) = line.strip_prefix("pub mod ").and_then(|l| l.strip_suffix(';')) {
            assert!(layer(name).is_some(), "{name} is in no layer");
        }
    }
    assert_eq!(LAYERS.iter().map(|l| l.len()).sum::<usize>(), lib.matches("\npub mod ").count());
}

#[test]
fn groups_and_paths_are_read() {
    let found = named("use crate::{a::{b, c}, d};\nfn f() { crate::e::g(); }\nuse crate::h::{i, j};");
    assert_eq!(found, ["a", "d", "e", "h"].iter().map(|s| s.to_string()).collect());
}
