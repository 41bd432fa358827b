//! Golden transcripts (after FRR's): each file in fixtures/transcripts is the exact
//! `coresh --echo --keep-going` output of a session; the commands are the lines that
//! start with a prompt. Run with CORESH_BLESS=1 to rewrite them after a deliberate change.

mod common;

use common::TestNode;

/// The command typed after a prompt such as `core>`, `core-a#` or `core(config-ha)#`.
fn command_of(line: &str) -> Option<&str> {
    let end = line.find(['>', '#'])?;
    let prompt = &line[..end];
    let host_end = prompt.find('(').unwrap_or(prompt.len());
    let host_ok = prompt[..host_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '-') && host_end > 0;
    let mode_ok = prompt[host_end..].is_empty() || (prompt[host_end..].starts_with('(') && prompt.ends_with(')'));
    (host_ok && mode_ok).then(|| &line[end + 1..])
}

#[test]
fn transcripts_match() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/transcripts");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no transcripts in {dir}");
    for path in files {
        let expected = std::fs::read_to_string(&path).unwrap();
        let input: String = expected.lines().filter_map(command_of).map(|c| format!("{c}\n")).collect();
        let node = TestNode::new();
        let run = node.run_stdin(input.as_bytes(), &["--echo", "--keep-going"]);
        if std::env::var_os("CORESH_BLESS").is_some() {
            std::fs::write(&path, &run.stdout).unwrap();
            continue;
        }
        assert!(
            run.stdout == expected,
            "{} differs (CORESH_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- got\n{}",
            path.display(),
            run.stdout
        );
    }
}
