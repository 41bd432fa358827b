//! Hostile input: random and malformed lines (very long, control bytes, unbalanced
//! quotes, stray pipes and `?`, words of the grammar in random order) fed to the
//! lexer, the matcher and the whole shell in every mode. Nothing may panic; every line
//! that is not run ends in a `%` error.

use coresh::cli::{Line, Matcher, builtin_tree};
use coresh::node::Node;
use coresh::shell::{BatchConsole, Echo, Session, Shell, Status, Streams};
use proptest::prelude::*;

const WORDS: &[&str] = &[
    "show",
    "failover",
    "mode",
    "primary",
    "secondary",
    "enable",
    "disable",
    "configure",
    "terminal",
    "high-availability",
    "sync",
    "run-every",
    "start-time",
    "heartbeat",
    "interval",
    "no",
    "notify",
    "on",
    "email",
    "primary-host",
    "do",
    "exit",
    "end",
    "|",
    "json",
    "include",
    "count",
    "?",
    "\"",
    "\"a b\"",
    "secret",
    "hashed",
    "12:00",
    "99:99",
    "0",
    "-1",
    "86400",
    "[::1]:22",
    "-oX",
    "a@b.co",
    "\\",
    "",
    "running-config",
    "history",
    "last",
    "5",
];

fn line_strategy() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => "\\PC{0,12}",
        1 => "[a-z|\"?]{200,400}",
        1 => proptest::collection::vec(any::<char>(), 0..6).prop_map(|v| v.into_iter().collect()),
    ];
    let sep = prop_oneof![Just(" "), Just("  "), Just("\t"), Just("")];
    proptest::collection::vec((word, sep), 0..12)
        .prop_map(|parts| parts.into_iter().map(|(w, s)| format!("{w}{s}")).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn the_lexer_and_matcher_never_panic(line in line_strategy()) {
        let tree = builtin_tree();
        let matcher = Matcher { tree };
        if let Ok(lexed) = Line::lex(&line) {
            for (_, root) in &tree.roots {
                let _ = matcher.matches(*root, &lexed, &lexed.command);
                let _ = matcher.help(*root, &lexed, &lexed.command, true);
                let _ = matcher.help(*root, &lexed, &lexed.command, false);
                let _ = matcher.complete(*root, &lexed, &lexed.command);
            }
        }
    }
}

fn shell_in(dir: &std::path::Path) -> Shell {
    Shell::new(Node::open(dir).unwrap(), Session::new("fuzz", "test"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_refused_line_gets_a_percent_error(line in line_strategy(), mode in 0usize..4) {
        let dir = tempfile::tempdir().unwrap();
        let mut shell = shell_in(dir.path());
        shell.session.mode = ["user", "enable", "config", "config-ha"][mode].to_string();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut console = BatchConsole { secret: None };
        let executed = shell.run_line(&line, Echo::Quiet, &mut console, &mut Streams { out: &mut out, err: Some(&mut err) });
        let err = String::from_utf8(err).unwrap();
        let errors = err.lines().filter(|l| l.starts_with("% ") && !l.starts_with("% Warning")).count();
        if executed.status == Status::Ok {
            prop_assert_eq!(errors, 0, "line {:?} succeeded but printed {:?}", line, err);
        } else {
            prop_assert!(errors >= 1, "line {:?} failed ({:?}) without a % error: {:?}", line, executed.status, err);
        }
        prop_assert!(shell.tree.root(&shell.session.mode).is_some());
    }
}

#[test]
fn a_very_long_line_of_valid_words_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut shell = shell_in(dir.path());
    let line = "show ".repeat(900);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut console = BatchConsole { secret: None };
    let executed =
        shell.run_line(&line, Echo::Quiet, &mut console, &mut Streams { out: &mut out, err: Some(&mut err) });
    assert_eq!(executed.status, Status::Syntax);
    assert!(String::from_utf8(err).unwrap().contains("% Line too long"));
}
