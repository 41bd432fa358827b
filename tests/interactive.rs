//! The shell on a pseudo-terminal, as an operator uses it: `?` help that answers at
//! once, TAB completion, history, Ctrl-C, the caret error, and the `Password:` prompt.

mod common;

use common::TestNode;
use common::pty::{TIMEOUT_MS, type_keys};
use rexpect::session::PtySession;

fn spawn(node: &TestNode, term: &str) -> PtySession {
    let mut cmd = node.command();
    cmd.env("TERM", term);
    rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawn coresh on a pty")
}

fn open(node: &TestNode) -> PtySession {
    let mut p = spawn(node, "xterm");
    p.exp_string("core>").expect("first prompt");
    p
}

/// A shell in global configuration mode.
fn open_config(node: &TestNode) -> PtySession {
    let mut p = open(node);
    p.send_line("enable").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("configure terminal").unwrap();
    p.exp_string("core(config)#").unwrap();
    p
}

#[test]
fn question_mark_lists_the_next_words_at_once() {
    let node = TestNode::new();
    let mut p = open(&node);
    type_keys(&mut p, "show ?");
    p.exp_regex("clock +Current time of this node, in UTC").unwrap();
    p.exp_regex("version +Software and node version").unwrap();
    // The prompt comes back with the line as it was, ready to go on.
    p.exp_string("core>show ").unwrap();
    p.send_line("ver").unwrap();
    p.exp_string("Software       : coresh").unwrap();
    p.exp_string("core>").unwrap();
    type_keys(&mut p, "sh?");
    p.exp_string("show  Show running system information").unwrap();
    p.exp_string("core>sh").unwrap();
    p.send_control('u').unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn tab_completes_unique_words_and_lists_choices() {
    let node = TestNode::new();
    let mut p = open(&node);
    type_keys(&mut p, "sh\tfa\t");
    p.exp_string("show failover ").unwrap();
    p.send_line("").unwrap();
    p.exp_string("High availability  : disabled").unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("enable").unwrap();
    p.exp_string("core#").unwrap();
    type_keys(&mut p, "failover mode \t\t");
    p.exp_regex("primary\\s+secondary").unwrap();
    type_keys(&mut p, "s\t\r");
    p.exp_string("now secondary").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn history_ctrl_c_and_the_caret() {
    let node = TestNode::new();
    let mut p = open(&node);
    p.send_line("show clock").unwrap();
    p.exp_string("UTC").unwrap();
    p.exp_string("core>").unwrap();
    // Ctrl-C drops the line and gives a fresh prompt; the session goes on.
    type_keys(&mut p, "show fail");
    p.send_control('c').unwrap();
    p.exp_string("core>").unwrap();
    // Up arrow recalls the last command.
    type_keys(&mut p, "\x1b[A\r");
    p.exp_string("UTC").unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("show failovr").unwrap();
    // Prompt `core>` is 5 wide, `show ` 5 more: the caret sits under column 10.
    p.exp_string("\r\n          ^\r\n% Invalid input detected at '^' marker.").unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn enable_asks_for_the_secret_without_echo() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", "enable secret letmein"]).expect_code(0);
    let mut p = open(&node);
    p.send_line("enable").unwrap();
    p.exp_string("Password:").unwrap();
    p.send_line("wrong").unwrap();
    p.exp_string("Password:").unwrap();
    p.send_line("letmein").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("disable").unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("enable").unwrap();
    for _ in 0..3 {
        p.exp_string("Password:").unwrap();
        p.send_line("nope").unwrap();
    }
    p.exp_string("% Bad secrets").unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("exit").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(!rest.contains("letmein") && !rest.contains("nope"), "secret echoed: {rest:?}");
}

#[test]
fn enable_secret_on_a_terminal_asks_twice() {
    let node = TestNode::new();
    let mut p = open_config(&node);
    p.send_line("enable secret").unwrap();
    p.exp_string("Enter enable secret:").unwrap();
    p.send_line("one").unwrap();
    p.exp_string("Confirm enable secret:").unwrap();
    p.send_line("two").unwrap();
    p.exp_string("% The secrets do not match; the enable secret is unchanged").unwrap();
    p.send_line("enable secret").unwrap();
    p.exp_string("Enter enable secret:").unwrap();
    p.send_line("same").unwrap();
    p.exp_string("Confirm enable secret:").unwrap();
    p.send_line("same").unwrap();
    p.exp_string("core(config)#").unwrap();
    // A line that carries a secret never enters the history: up arrow skips it.
    p.send_line("enable secret in-clear").unwrap();
    p.exp_string("core(config)#").unwrap();
    // Nor a mistyped one, whose secret may follow the bad word.
    p.send_line("enable secert hunter2").unwrap();
    p.exp_string("% Invalid input detected").unwrap();
    p.exp_string("core(config)#").unwrap();
    // Nor one that does not lex (an unterminated quote in the secret).
    p.send_line("enable secret Sup3r\"Secret").unwrap();
    p.exp_string("% Unterminated quoted string").unwrap();
    p.exp_string("core(config)#").unwrap();
    // Up arrow then Enter reruns the bare `enable secret`, which asks again.
    type_keys(&mut p, "\x1b[A\r");
    p.exp_string("Enter enable secret:").unwrap();
    p.send_line("x").unwrap();
    p.exp_string("Confirm enable secret:").unwrap();
    p.send_line("y").unwrap();
    p.exp_string("% The secrets do not match").unwrap();
    p.send_line("enable secret same").unwrap();
    p.exp_string("core(config)#").unwrap();
    p.send_line("end").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
    let env = [("CORESH_ENABLE_SECRET", "same")];
    node.run_with(&["enable"], &[], &env).expect_code(0);
}

#[test]
fn a_dumb_terminal_gets_no_escape_codes() {
    let node = TestNode::new();
    let mut p = spawn(&node, "dumb");
    let banner = p.exp_string("core>").unwrap();
    p.send_line("enable").unwrap();
    let mut seen = banner;
    seen += &p.exp_string("core#").unwrap();
    p.send_line("show failover").unwrap();
    seen += &p.exp_string("core#").unwrap();
    p.send_line("exit").unwrap();
    seen += &p.exp_eof().unwrap();
    assert!(seen.contains("Mode               : primary"), "{seen:?}");
    assert!(!seen.contains('\x1b'), "escape codes on a dumb terminal: {seen:?}");
}

#[test]
fn modes_and_prompts() {
    let node = TestNode::new();
    let mut p = open(&node);
    p.send_line("enable").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("conf t").unwrap();
    p.exp_string("Enter configuration commands").unwrap();
    p.exp_string("core(config)#").unwrap();
    p.send_line("high-availability").unwrap();
    p.exp_string("core(config-ha)#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_string("core(config)#").unwrap();
    p.send_line("high").unwrap();
    p.exp_string("core(config-ha)#").unwrap();
    p.send_line("end").unwrap();
    p.exp_string("core#").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn long_output_pages_until_terminal_length_zero() {
    let node = TestNode::new();
    let mut p = open(&node);
    p.send_line("terminal length 6").unwrap();
    p.exp_string("core>").unwrap();
    p.send_line("enable").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("show running-config").unwrap();
    p.exp_string("hostname core").unwrap();
    p.exp_string(" --More-- ").unwrap();
    type_keys(&mut p, " ");
    p.exp_string("login delay 1").unwrap();
    p.exp_string(" --More-- ").unwrap();
    type_keys(&mut p, "\r");
    p.exp_string(" --More-- ").unwrap();
    type_keys(&mut p, "q");
    p.exp_string("core#").unwrap();
    p.send_line("terminal length 0").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("show running-config").unwrap();
    let shown = p.exp_string("\r\nend").unwrap();
    assert!(!shown.contains("--More--"), "{shown:?}");
    p.exp_string("core#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn lines_typed_ahead_in_one_burst_all_run() {
    // Automation often sends several lines before the first prompt returns; rustyline
    // must keep what it read past the first line (its buffer-redux feature).
    let node = TestNode::new();
    let mut p = open(&node);
    type_keys(
        &mut p,
        "enable\nfailover mode secondary\nconfigure terminal\nhostname burst\nend\nshow failover | include ^Mode\n",
    );
    p.exp_string("Mode               : secondary").unwrap();
    p.exp_string("burst#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn a_user_password_on_a_terminal_is_asked_twice_and_never_echoed() {
    let node = TestNode::new();
    let mut p = open_config(&node);
    p.send_line("username alice password").unwrap();
    p.exp_string("Enter password for alice:").unwrap();
    p.send_line("first-try-1").unwrap();
    p.exp_string("Confirm password for alice:").unwrap();
    p.send_line("other-try-2").unwrap();
    p.exp_string("% The secrets do not match; the password for alice is unchanged").unwrap();
    p.send_line("username alice password").unwrap();
    p.exp_string("Enter password for alice:").unwrap();
    p.send_line("kept-secret-9").unwrap();
    p.exp_string("Confirm password for alice:").unwrap();
    p.send_line("kept-secret-9").unwrap();
    p.exp_string("core(config)#").unwrap();
    p.send_line("do show users").unwrap();
    p.exp_string("alice").unwrap();
    p.exp_string("core(config)#").unwrap();
    p.send_line("end").unwrap();
    p.exp_string("core#").unwrap();
    p.send_line("exit").unwrap();
    let rest = p.exp_eof().unwrap();
    assert!(!rest.contains("kept-secret-9") && !rest.contains("first-try-1"), "password echoed: {rest:?}");
}

#[test]
fn a_vt100_terminal_gets_the_ios_line_editor_and_no_escape_codes() {
    let node = TestNode::new();
    let mut p = spawn(&node, "vt100");
    let mut seen = p.exp_string("core>").unwrap();
    // Help at once: the `?` stays on the input line, then the line is redrawn as typed.
    type_keys(&mut p, "show ?");
    seen += &p.exp_regex("version +Software and node version").unwrap().0;
    seen += &p.exp_string("core>show ").unwrap();
    // TAB completes a unique word; an edit inside the line moves with backspaces.
    type_keys(&mut p, "vers\t");
    seen += &p.exp_string("version ").unwrap();
    type_keys(&mut p, "\x1b[D\x1b[D"); // two left arrows: the cursor before "n "
    type_keys(&mut p, "\x01"); // Ctrl-A: to the start
    type_keys(&mut p, "\x05"); // Ctrl-E: to the end
    p.send_line("").unwrap();
    seen += &p.exp_string("Software").unwrap();
    seen += &p.exp_string("core>").unwrap();
    // History: the up arrow brings the line back.
    type_keys(&mut p, "\x1b[A");
    p.send_line("").unwrap();
    seen += &p.exp_string("Software").unwrap();
    seen += &p.exp_string("core>").unwrap();
    // Ctrl-C drops the line.
    type_keys(&mut p, "show bogus\x03");
    seen += &p.exp_string("^C").unwrap();
    p.send_line("exit").unwrap();
    seen += &p.exp_eof().unwrap();
    assert!(!seen.contains("Invalid input"), "the dropped line ran: {seen:?}");
    assert!(seen.starts_with("show ?\r\n  clock"), "the ? stays on the input line: {seen:?}");
    assert!(!seen.contains('\x1b'), "escape codes on a vt100 terminal: {seen:?}");
}
