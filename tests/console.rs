//! The operator console over SSH, driven with the real OpenSSH client: key and password
//! logins, exec requests and their exit status, a terminal session (`?`, TAB, enable),
//! no escape codes for TERM=dumb, wrong passwords, unknown users, lockout, the idle
//! timeout, the session limit, and peer keys refused a console.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::pty::{TIMEOUT_MS, type_keys};
use common::{Daemon, Run, TestNode};
use rexpect::session::PtySession;

/// A node with a daemon, a user `admin` with a password and a key, and hostname core-a.
struct Console {
    node: TestNode,
    daemon: Daemon,
    /// The operator's private key (OpenSSH format).
    key: PathBuf,
    /// Keeps the key and the askpass script.
    files: tempfile::TempDir,
}

const PASSWORD: &str = "correct-horse-battery";

impl Console {
    fn new(config: &[&str]) -> Console {
        Console::serving(config, TestNode::serve)
    }

    /// [`Console::new`] with the daemon `start` starts.
    fn serving(config: &[&str], start: impl FnOnce(&TestNode) -> Daemon) -> Console {
        let node = TestNode::new();
        let files = tempfile::tempdir().unwrap();
        let (key, public) = common::ssh::new_key(files.path(), "id_ed25519", "admin@test");
        let mut lines = vec![
            "enable".to_string(),
            "configure terminal".into(),
            "hostname core-a".into(),
            format!("username admin password {PASSWORD}"),
            format!("username admin key {public}"),
        ];
        lines.extend(config.iter().map(|l| l.to_string()));
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        node.run(&lines).expect_code(0);
        let daemon = start(&node);
        Console { node, daemon, key, files }
    }

    /// `ssh` to the daemon as `user`, with the options every test needs.
    fn ssh(&self, user: &str) -> Command {
        let mut cmd = common::ssh::client(self.daemon.ssh.port());
        cmd.args(["-o", "NumberOfPasswordPrompts=1"]).arg(format!("{user}@127.0.0.1"));
        cmd
    }

    /// `ssh` logging in with `key` only.
    fn with_key(&self, user: &str, key: &Path) -> Command {
        let mut cmd = common::ssh::with_key(self.daemon.ssh.port(), key);
        cmd.arg(format!("{user}@127.0.0.1"));
        cmd
    }

    /// `ssh` logging in with `password`, given through SSH_ASKPASS (no terminal needed).
    fn with_password(&self, user: &str, password: &str) -> Command {
        let script = self.files.path().join(format!("askpass-{}", password.len()));
        std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' '{password}'\n")).unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&script, executable).unwrap();
        let mut cmd = self.ssh(user);
        cmd.args(["-o", "PubkeyAuthentication=no", "-o", "KbdInteractiveAuthentication=no"])
            .env("SSH_ASKPASS", &script)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null());
        cmd
    }

    /// A terminal session (`ssh -tt`) with TERM set to `term`, logged in by key.
    fn terminal(&self, term: &str) -> PtySession {
        let mut cmd = self.with_key("admin", &self.key);
        cmd.arg("-tt").env("TERM", term);
        rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).expect("spawn ssh")
    }

    fn audit(&self) -> String {
        let secret = [("CORESH_ENABLE_SECRET", "en4ble-secret")];
        self.node.run_with(&["enable", "show audit last 200"], &[], &secret).expect_code(0).stdout.clone()
    }
}

fn run(mut cmd: Command) -> Run {
    let out = cmd.stdin(Stdio::null()).output().expect("run ssh");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// Resizes the terminal ssh runs on, as a window manager would (ssh gets SIGWINCH).
fn resize(p: &PtySession, cols: u16, rows: u16) {
    use std::os::fd::AsRawFd;
    let master = p.process().get_file_handle().expect("pty master");
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize we own from a valid descriptor.
    let done = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(done, 0, "TIOCSWINSZ");
}

/// The daemon (`coresh serve`, handed to `coresh-node`) starts consoles from the shell's
/// binary beside it, opened when the daemon started: a console is that binary, named
/// `coresh`, and replacing the file afterwards (an upgrade) leaves consoles on the
/// release the daemon runs.
#[test]
fn consoles_run_the_shell_binary_the_daemon_found_at_its_start() {
    let install = tempfile::tempdir().unwrap();
    let shell = common::install(install.path(), &["coresh", "coresh-node"]).remove(0);
    let c = Console::serving(&[], |node| node.daemon().binary(&shell).start());
    let daemon_pid = c.daemon.child.id();
    assert_eq!(std::fs::read_to_string(format!("/proc/{daemon_pid}/comm")).unwrap().trim(), "coresh-node");

    // An upgrade replaces the shell's binary while the daemon runs.
    std::fs::remove_file(&shell).unwrap();
    std::fs::write(&shell, "#!/bin/sh\necho not the release the daemon runs\nexit 7\n").unwrap();
    std::fs::set_permissions(&shell, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("show version");
    let shown = run(cmd);
    shown.expect_code(0);
    assert!(shown.stdout.contains("Software       : coresh"), "{}", shown.stdout);

    let mut p = c.terminal("dumb");
    p.exp_string("core-a>").unwrap();
    let children: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u32| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the comm may hold spaces, the fields after ')' do not.
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok()) == Some(daemon_pid)
        })
        .collect();
    assert_eq!(children.len(), 1, "the daemon's children: {children:?}");
    let console = children[0];
    let exe = std::fs::read_link(format!("/proc/{console}/exe")).unwrap();
    let exe = exe.to_string_lossy();
    assert!(exe.starts_with(&format!("{}/coresh", install.path().display())), "{exe}");
    assert!(!exe.contains("coresh-node"), "{exe}");
    assert_eq!(std::fs::read_to_string(format!("/proc/{console}/comm")).unwrap().trim(), "coresh");
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
}

/// A `coresh-node` with no shell's binary beside it runs consoles from its own binary,
/// which carries the shell too.
#[test]
fn a_node_binary_alone_runs_consoles_itself() {
    let install = tempfile::tempdir().unwrap();
    let node_binary = common::install(install.path(), &["coresh-node"]).remove(0);
    let c = Console::serving(&[], |node| node.daemon().binary(&node_binary).start());
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("show version");
    let shown = run(cmd);
    shown.expect_code(0);
    assert!(shown.stdout.contains("Software       : coresh"), "{}", shown.stdout);
}

#[test]
fn exec_requests_run_one_line_and_return_its_exit_status() {
    let c = Console::new(&[]);
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("show failover");
    let shown = run(cmd);
    shown.expect_code(0);
    assert!(shown.stdout.contains("Mode               : primary"), "{}", shown.stdout);
    assert!(!shown.stdout.contains('\x1b'), "escape codes without a terminal: {:?}", shown.stdout);

    let cases: &[(&str, i32, &str)] = &[
        ("show nonsense", 2, "% Invalid input detected at '^' marker."),
        ("failover mode primary", 3, "% This command belongs to Privileged EXEC mode"),
        ("enable", 3, "% No password set"),
        ("-c show version", 2, "% Invalid input detected"),
    ];
    for (line, code, error) in cases {
        let mut cmd = c.with_key("admin", &c.key);
        // `--`: the line is the remote command, even when it starts with '-'.
        cmd.args(["--", line]);
        let r = run(cmd);
        assert_eq!(r.code, *code, "{line}: {r:?}");
        assert!(r.stderr.contains(error), "{line}: {}", r.stderr);
    }

    // A secret on an exec line reaches neither the audit log nor the daemon's log.
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("username eve password hunter2-secret");
    assert_eq!(run(cmd).code, 3);
    let audit = c.audit();

    for expected in ["login (publickey SHA256:", "| exec ", "exec ended: exit status 0", "logout"] {
        assert!(audit.contains(expected), "{expected} not audited:\n{audit}");
    }
    // The shell audits each command with the session's user and address.
    let line = audit.lines().find(|l| l.contains("show failover") && l.contains("| user ")).unwrap_or_default();
    assert!(line.contains("admin") && line.contains("127.0.0.1"), "{line:?}\n{audit}");
    assert!(audit.contains("username eve password <removed>"), "{audit}");
    let log = c.daemon.log.lock().unwrap().join("\n");
    for text in [&audit, &log] {
        assert!(!text.contains("hunter2-secret"), "a secret leaked:\n{text}");
    }
}

#[test]
fn a_session_without_a_terminal_runs_its_input_as_a_batch() {
    let c = Console::new(&[]);
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("-T").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"show clock\nshow version\n").unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("UTC") && stdout.contains("Software       : coresh"), "{stdout}");
    assert!(!stdout.contains("core-a>") && !stdout.contains('\x1b'), "{stdout:?}");
}

#[test]
fn a_terminal_session_has_help_completion_and_enable_with_its_secret() {
    let c = Console::new(&["enable secret en4ble-secret"]);
    let mut p = c.terminal("xterm");
    p.exp_string("core-a>").unwrap();
    type_keys(&mut p, "show ?");
    p.exp_regex("sessions +SSH console sessions open now").unwrap();
    p.exp_string("core-a>show ").unwrap();
    p.send_control('u').unwrap();
    type_keys(&mut p, "sh\tfa\t");
    p.exp_string("show failover ").unwrap();
    p.send_line("").unwrap();
    p.exp_string("High availability  : disabled").unwrap();
    p.send_line("failover mode primary").unwrap();
    p.exp_string("% This command belongs to Privileged EXEC mode").unwrap();
    p.send_line("enable").unwrap();
    p.exp_string("Password: ").unwrap();
    p.send_line("wrong-secret").unwrap();
    p.exp_string("Password: ").unwrap();
    p.send_line("en4ble-secret").unwrap();
    p.exp_string("core-a#").unwrap();
    p.send_line("show sessions").unwrap();
    p.exp_regex(r"\* +\| \d+ +\| admin +\| 127\.0\.0\.1 +\| shell +\| xterm").unwrap();
    p.send_line("terminal length 0").unwrap();
    p.exp_string("core-a#").unwrap();
    // Window changes reach the shell's terminal.
    resize(&p, 100, 30);
    let mut size = String::new();
    for _ in 0..50 {
        p.send_line("show terminal").unwrap();
        p.exp_regex(r"Line +: SSH session \d+: admin from 127\.0\.0\.1").unwrap();
        p.exp_string("Type   : xterm").unwrap();
        size = p.exp_regex(r"Size   : [^\r\n]+").unwrap().1;
        p.exp_string("Length : 0 (no paging)").unwrap();
        if size.contains("100 columns, 30 rows") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(size, "Size   : 100 columns, 30 rows");
    // Arrow-key history.
    p.send_line("show clock").unwrap();
    p.exp_string("UTC").unwrap();
    p.exp_string("core-a#").unwrap();
    type_keys(&mut p, "\x1b[A");
    p.exp_string("show clock").unwrap();
    p.send_line("").unwrap();
    p.exp_string("UTC").unwrap();
    p.exp_string("core-a#").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
    let audit = c.audit();
    assert_eq!(audit.matches("| show clock").count(), 2, "{audit}");
    assert!(audit.contains("shell (terminal xterm)") && audit.contains("shell ended: exit status 0"), "{audit}");
    assert!(!audit.contains("en4ble-secret") && !audit.contains("wrong-secret"), "{audit}");
}

#[test]
fn a_dumb_terminal_over_ssh_gets_prompts_and_no_escape_codes() {
    let c = Console::new(&[]);
    let mut p = c.terminal("dumb");
    let mut seen = p.exp_string("core-a>").unwrap();
    p.send_line("show failover").unwrap();
    seen += &p.exp_string("core-a>").unwrap();
    p.send_line("show nonsense").unwrap();
    seen += &p.exp_string("core-a>").unwrap();
    p.send_line("exit").unwrap();
    seen += &p.exp_eof().unwrap();
    assert!(seen.contains("Mode               : primary"), "{seen:?}");
    assert!(seen.contains("% Invalid input detected at '^' marker."), "{seen:?}");
    assert!(!seen.contains('\x1b'), "escape codes on a dumb terminal: {seen:?}");
}

#[test]
fn password_logins_are_checked_and_failures_audited() {
    let c = Console::new(&["no login block-for"]);
    // Typed at OpenSSH's own prompt, on a terminal.
    let mut cmd = c.ssh("admin");
    cmd.args(["-tt", "-o", "PubkeyAuthentication=no"]).env("TERM", "dumb");
    let mut p = rexpect::session::spawn_command(cmd, Some(TIMEOUT_MS)).unwrap();
    p.exp_string("password:").unwrap();
    p.send_line(PASSWORD).unwrap();
    p.exp_string("core-a>").unwrap();
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();

    let mut cmd = c.with_password("admin", PASSWORD);
    cmd.arg("show version");
    run(cmd).expect_code(0);
    for (user, password) in [("admin", "wrong-password"), ("nobody", PASSWORD)] {
        let mut cmd = c.with_password(user, password);
        cmd.arg("show version");
        let started = std::time::Instant::now();
        let r = run(cmd);
        // Each failure is held back for `login delay` (1 s by default), known user or not.
        assert!(started.elapsed() >= std::time::Duration::from_secs(1), "{user}: answered too soon");
        assert_eq!(r.code, 255, "{user}: {r:?}");
        assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    }
    // The peer user never logs in with a password.
    let mut cmd = c.with_password("coresh-peer", PASSWORD);
    cmd.arg("show version");
    assert_eq!(run(cmd).code, 255);
    let audit = c.audit();
    for expected in
        ["login (password)", "login failed (password): wrong password", "login failed (password): unknown user"]
    {
        assert!(audit.contains(expected), "{expected} not audited:\n{audit}");
    }
    assert!(!audit.contains("wrong-password") && !audit.contains(PASSWORD), "{audit}");
}

#[test]
fn repeated_failures_lock_the_address_out_until_cleared() {
    let c = Console::new(&["login block-for 300 attempts 2 within 60", "login delay 1"]);
    for _ in 0..2 {
        let mut cmd = c.with_password("admin", "wrong-password");
        cmd.arg("show version");
        assert_eq!(run(cmd).code, 255);
    }
    // Locked out: even the right password and the right key are refused.
    let mut cmd = c.with_password("admin", PASSWORD);
    cmd.arg("show version");
    assert_eq!(run(cmd).code, 255, "the right password got in while locked out");
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("show version");
    assert_eq!(run(cmd).code, 255, "the right key got in while locked out");
    let shown = c.node.run(&["show sessions"]).stdout;
    assert!(shown.contains("Locked out: 127.0.0.1") && shown.contains("(2 failed logins)"), "{shown}");
    let audit = c.audit();
    assert!(audit.contains("address locked out for 300 seconds after 2 failed logins within 60 seconds"), "{audit}");
    assert!(audit.contains("login refused: address locked out"), "{audit}");

    c.node.run(&["enable", "clear lockout 127.0.0.1"]).expect_code(0);
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("show version");
    run(cmd).expect_code(0);
    let again = c.node.run(&["enable", "clear lockout 127.0.0.1"]);
    assert_eq!(again.expect_code(0).stdout, "127.0.0.1 is not locked out\n");
    assert_eq!(c.node.run(&["enable", "clear lockout"]).expect_code(0).stdout, "No address is locked out\n");
    let bad = c.node.run(&["enable", "clear lockout not-an-ip"]);
    bad.expect_code(1);
    assert!(bad.stderr.starts_with("% Not an IP address"), "{}", bad.stderr);
    // The IPv4-mapped form names the same client.
    assert_eq!(
        c.node.run(&["enable", "clear lockout ::ffff:127.0.0.1"]).expect_code(0).stdout,
        "127.0.0.1 is not locked out\n"
    );
}

#[test]
fn parallel_wrong_passwords_from_one_address_run_only_as_many_checks_as_the_lockout_allows() {
    let c = Console::new(&["login block-for 300 attempts 5 within 60", "login delay 1"]);
    let codes: Vec<i32> = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let mut cmd = c.with_password("admin", "wrong-password");
                    cmd.arg("show version");
                    run(cmd).code
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert!(codes.iter().all(|c| *c == 255), "{codes:?}");
    let audit = c.audit();
    let checked = audit.matches("login failed (password): wrong password").count();
    assert!((1..=5).contains(&checked), "{checked} passwords were checked:\n{audit}");
    assert!(
        audit.contains("as many logins of this address are under way")
            || audit.contains("login refused: address locked out"),
        "{audit}"
    );
}

#[test]
fn an_idle_shell_times_out_and_a_busy_one_does_not() {
    let c = Console::new(&["exec-timeout 0 3"]);
    let mut p = c.terminal("dumb");
    p.exp_string("core-a>").unwrap();
    // Input every second keeps the session past the timeout.
    for _ in 0..5 {
        std::thread::sleep(std::time::Duration::from_secs(1));
        p.send_line("show clock").unwrap();
        p.exp_string("core-a>").unwrap();
    }
    p.exp_string("% Idle timeout").unwrap();
    p.exp_eof().unwrap();
    c.daemon.eventually("the timeout is audited", |_| c.audit().contains("shell ended: idle timeout after 3 seconds"));
    c.daemon.eventually("the session is gone", |_| c.node.run(&["show sessions"]).stdout.contains("No SSH console"));
}

#[test]
fn sessions_beyond_the_limit_are_refused() {
    let c = Console::new(&["session-limit 1"]);
    let mut p = c.terminal("dumb");
    p.exp_string("core-a>").unwrap();
    let mut cmd = c.with_key("admin", &c.key);
    cmd.arg("show version");
    let r = run(cmd);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("% Session limit reached: 1 console sessions are open (session-limit 1)."), "{r:?}");
    p.send_line("exit").unwrap();
    p.exp_eof().unwrap();
    c.daemon.eventually("a slot is free again", |_| {
        let mut cmd = c.with_key("admin", &c.key);
        cmd.arg("show version");
        run(cmd).code == 0
    });
    assert!(c.audit().contains("exec refused: session limit 1 reached"));
}

#[test]
fn peer_keys_open_no_console_and_operators_no_replication() {
    let c = Console::new(&[]);
    let peer = TestNode::new();
    c.node.trust("127.0.0.1", &peer.local_key()).expect_code(0);
    let peer_key = peer.data_dir().join("ssh_host_ed25519_key");
    // As the peer user, the key logs in but a console is refused.
    let mut cmd = c.with_key("coresh-peer", &peer_key);
    cmd.arg("show version");
    let r = run(cmd);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("Software"), "{r:?}");
    let mut cmd = c.with_key("coresh-peer", &peer_key);
    cmd.arg("-tt");
    let r = run(cmd);
    assert_ne!(r.code, 0, "a peer key opened a shell: {r:?}");
    // Made one of an operator's keys, it still opens nothing.
    c.node.run(&["enable", "configure terminal", &format!("username admin key {}", peer.local_key())]).expect_code(0);
    let mut cmd = c.with_key("admin", &peer_key);
    cmd.arg("show version");
    assert_eq!(run(cmd).code, 255, "a peer key opened a console");
    // An operator may not open the replication channel.
    let mut cmd = c.with_key("admin", &c.key);
    cmd.args(["-s", "coresh-replication"]);
    let r = run(cmd);
    assert_ne!(r.code, 0, "{r:?}");
    // The node itself still syncs over the same server.
    let other = TestNode::new();
    common::pair(&c.node, &c.daemon, &other);
    common::sync(&other, &c.daemon).expect_code(0);
}

#[test]
fn console_settings_show_in_running_config_and_paste_back() {
    let c = Console::new(&[
        "exec-timeout 5 30",
        "session-limit 3",
        "login block-for 90 attempts 4 within 30",
        "login delay 2",
    ]);
    let config = c.node.run(&["enable", "show running-config"]).stdout;
    let lines: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|l| ["exec-timeout", "session-limit", "login "].iter().any(|p| l.starts_with(p)))
        .collect();
    assert_eq!(
        lines,
        ["exec-timeout 5 30", "session-limit 3", "login block-for 90 attempts 4 within 30", "login delay 2"]
    );
    let fresh = TestNode::new();
    let mut paste = vec!["enable", "configure terminal"];
    paste.extend(lines.iter().copied());
    fresh.run(&paste).expect_code(0);
    assert!(fresh.run(&["enable", "show running-config"]).stdout.contains("login block-for 90 attempts 4 within 30"));
    let json: serde_json::Value = serde_json::from_str(&c.node.run(&["show sessions | json"]).stdout).unwrap();
    assert_eq!(json["policy"]["session_limit"], 3);
    assert_eq!(json["policy"]["block"]["attempts"], 4);
    c.node
        .run(&[
            "enable",
            "configure terminal",
            "no exec-timeout",
            "no session-limit",
            "no login block-for",
            "no login delay",
        ])
        .expect_code(0);
    let config = c.node.run(&["enable", "show running-config"]).stdout;
    for line in ["exec-timeout 10 0", "session-limit 8", "no login block-for", "login delay 1"] {
        assert!(config.contains(line), "{line}:\n{config}");
    }
}
