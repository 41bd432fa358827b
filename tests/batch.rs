//! The shell driven as automation drives it: `coresh -c ...` and commands on standard
//! input, checking output, error lines and the documented exit statuses.

mod common;

use common::TestNode;

#[test]
fn a_fresh_node_shows_its_defaults() {
    let node = TestNode::new();
    let json = node.failover_json();
    assert_eq!(json["high_availability"], "disabled");
    assert_eq!(json["mode"], "primary");
    assert_eq!(json["state"], "active");
    assert_eq!(json["epoch"], 0);
    assert_eq!(json["client_connections"], "enabled");
    assert!(node.data_dir().join("system.db").exists());
}

#[test]
fn words_can_be_abbreviated_to_a_unique_prefix() {
    let node = TestNode::new();
    let run = node.run(&["sh fail"]);
    run.expect_code(0);
    assert!(run.stdout.contains("High availability  : disabled"), "{}", run.stdout);
    node.run(&["en", "conf t", "high", "heart int 45"]).expect_code(0);
    assert_eq!(node.failover_json()["heartbeat_interval"], 45);
}

#[test]
fn invalid_input_points_at_the_bad_word() {
    let node = TestNode::new();
    let run = node.run(&["show failovr"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "show failovr\n     ^\n% Invalid input detected at '^' marker.\n");
    assert_eq!(run.stdout, "");
}

#[test]
fn an_argument_out_of_range_says_why() {
    let node = TestNode::new();
    let run = node.ha(&["heartbeat interval 0"]);
    run.expect_code(2);
    assert_eq!(
        run.stderr,
        "heartbeat interval 0\n                   ^\n% Invalid input detected at '^' marker.\n% expected a number from 1 to 86400\n"
    );
}

#[test]
fn incomplete_and_ambiguous_commands() {
    let node = TestNode::new();
    let run = node.run(&["show"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "% Incomplete command.\n");
    let run = node.run(&["e"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "% Ambiguous command: \"e\"\n");
    let run = node.ha(&["n x"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "% Ambiguous command: \"n ...\"\n");
}

#[test]
fn privileged_commands_are_refused_in_user_mode() {
    let node = TestNode::new();
    let run = node.run(&["failover mode secondary"]);
    run.expect_code(3);
    assert_eq!(run.stderr, "% This command belongs to Privileged EXEC mode: enter 'enable' first\n");
    assert_eq!(node.failover_json()["mode"], "primary", "nothing may change");
    node.run(&["show running-config"]).expect_code(3);
    let run = node.run(&["enable", "hostname x"]);
    run.expect_code(3);
    assert!(run.stderr.contains("enter 'configure terminal' first"), "{}", run.stderr);
    let run = node.run(&["enable", "configure terminal", "show failover"]);
    run.expect_code(3);
    assert!(run.stderr.contains("use 'do show failover'"), "{}", run.stderr);
}

#[test]
fn a_batch_stops_at_the_first_failing_line() {
    let node = TestNode::new();
    let run = node.run(&["enable", "failover mode bogus", "failover mode secondary"]);
    run.expect_code(2);
    assert_eq!(node.failover_json()["mode"], "primary");
    let run = node.ha(&["node-status standby", "service enable"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% node-status applies to a secondary; this node is primary\n");
    assert_eq!(node.failover_json()["high_availability"], "disabled");
}

#[test]
fn failover_mode_primary_is_idempotent_and_bumps_the_epoch_once() {
    let node = TestNode::new();
    node.run(&["enable", "failover mode secondary"]).expect_code(0);
    let first = node.run(&["enable", "failover mode primary"]);
    first.expect_code(0);
    assert!(first.stdout.contains("now primary (epoch 1)"), "{}", first.stdout);
    let again = node.run(&["enable", "failover mode primary"]);
    again.expect_code(0);
    assert!(again.stdout.contains("primary (epoch 1); nothing changed"), "{}", again.stdout);
    let json = node.failover_json();
    assert_eq!(
        (json["mode"].as_str(), json["state"].as_str(), json["epoch"].as_u64()),
        (Some("primary"), Some("active"), Some(1))
    );
    let history = node.run(&["show failover history | json"]);
    let rows: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let events: Vec<&str> = rows.as_array().unwrap().iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["mode", "node-status", "mode", "node-status", "epoch"]);
    assert_eq!(rows[4]["old"], "0");
    assert_eq!(rows[4]["new"], "1");
    assert_eq!(rows[4]["actor"], "tester@batch");
    assert_eq!(rows[4]["reason"], "failover mode primary");
    let last = node.run(&["show failover history last 1 | count"]);
    assert!(last.stdout.contains("Number of lines which match: 3"), "{}", last.stdout);
}

#[test]
fn failover_mode_secondary_does_not_restart_the_scheduler() {
    let node = TestNode::new();
    let run = node.run(&["enable", "failover mode secondary"]);
    run.expect_code(0);
    assert!(run.stdout.contains("now secondary (standby)"), "{}", run.stdout);
    assert!(run.stdout.contains("scheduler was not restarted"), "{}", run.stdout);
    let json = node.failover_json();
    assert_eq!(json["mode"], "secondary");
    assert_eq!(json["state"], "standby");
    assert_eq!(json["next_sync_text"], "none (high availability is disabled)");
    // A running schedule: promotion stops it, and going back to secondary does not restart it.
    node.ha(&["primary-host core-a.example.com", "service enable"]).expect_code(0);
    assert!(node.failover_json()["next_sync"].is_string());
    node.run(&["enable", "failover mode primary"]).expect_code(0);
    node.run(&["enable", "failover mode secondary"]).expect_code(0);
    let json = node.failover_json();
    assert_eq!(json["next_sync"], serde_json::Value::Null);
    assert!(json["next_sync_text"].as_str().unwrap().contains("the scheduler is not running"), "{json}");
    node.ha(&["sync start-time 02:00"]).expect_code(0);
    assert!(node.failover_json()["next_sync"].is_string(), "saving the schedule restarts it");
}

#[test]
fn client_connections_are_persisted() {
    let node = TestNode::new();
    let run = node.run(&["enable", "failover client-connection disable"]);
    run.expect_code(0);
    assert!(run.stdout.contains("refused"), "{}", run.stdout);
    assert_eq!(node.failover_json()["client_connections"], "disabled");
    node.run(&["enable", "failover client-connection enable"]).expect_code(0);
    assert_eq!(node.failover_json()["client_connections"], "enabled");
}

#[test]
fn every_ha_field_is_saved_and_survives_a_restart() {
    let node = TestNode::new();
    node.ha(&[
        "service enable",
        "mode secondary",
        "node-status standby",
        "primary-host core-a.example.com:2222",
        "sync start-time 01:30",
        "sync run-every 2 hours",
        "heartbeat interval 20",
        "heartbeat failures 5",
        "heartbeat recheck-interval 7",
        "on-failure keep-standby",
        "notify email ops@example.com",
        "notify on sync-completion",
        "no notify on failure",
    ])
    .expect_code(0);
    // Every run is a new process: this is the restart.
    let json = node.failover_json();
    assert_eq!(json["high_availability"], "enabled");
    assert_eq!(json["mode"], "secondary");
    assert_eq!(json["primary_host"], "core-a.example.com:2222");
    assert_eq!(json["heartbeat_interval"], 20);
    assert_eq!(json["heartbeat_failures"], 5);
    assert_eq!(json["heartbeat_recheck_interval"], 7);
    assert_eq!(json["on_failure"], "keep-standby");
    assert!(json["next_sync"].as_str().unwrap().contains("T01:30:00"), "{json}");
    let config = node.run(&["enable", "show running-config"]).stdout;
    for line in [
        " sync run-every 2 hours",
        " notify email ops@example.com",
        " notify on sync-completion",
        " no notify on failure",
    ] {
        assert!(config.contains(line), "{line} missing in\n{config}");
    }
    node.ha(&["no primary-host", "no notify email", "notify on failure", "node-status active"]).expect_code(0);
    let json = node.failover_json();
    assert_eq!(json["primary_host"], serde_json::Value::Null);
    assert_eq!(json["state"], "active");
    assert_eq!(json["next_sync_text"], "none (node status is active)");
}

#[test]
fn schedule_saves_print_the_next_sync_and_short_intervals_warn() {
    let node = TestNode::new();
    let run = node.ha(&[
        "mode secondary",
        "primary-host core-a.example.com",
        "service enable",
        "sync start-time 23:59",
        "sync run-every 30 minutes",
    ]);
    run.expect_code(0);
    assert!(run.stdout.contains("Next sync: "), "{}", run.stdout);
    assert!(run.stdout.contains("23:59 UTC (start-time 23:59 UTC, then every 30 minutes)"), "{}", run.stdout);
    assert!(run.stderr.contains("% Warning: Syncing more often than every 60 minutes"), "{}", run.stderr);
    let run = node.ha(&["sync run-every 31 days"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% run-every is at most 30 days\n");
    let run = node.ha(&["heartbeat interval 10"]);
    assert!(!run.stdout.contains("Next sync"), "a non-schedule save must not move the schedule");
}

#[test]
fn bad_values_are_refused_with_a_reason() {
    let node = TestNode::new();
    for (line, reason) in [
        ("sync start-time 24:00", "HH:MM"),
        ("sync start-time 7:00", "HH:MM"),
        ("heartbeat failures 101", "1 to 100"),
        ("notify email nobody", "not an email address"),
        ("notify email ops@localhost", "not an email address"),
        ("primary-host -oProxyCommand=sh", "not a valid host name"),
        ("primary-host a;reboot", "not a valid host name"),
        ("primary-host core-a:0", "not a port"),
        ("primary-host [fe80::1", "missing ']'"),
        ("primary-host 300.1.1.1", "not an IPv4 address"),
    ] {
        let run = node.ha(&[line]);
        run.expect_code(2);
        assert!(run.stderr.contains(reason), "{line}: {}", run.stderr);
    }
    let run = node.ha(&["primary-host \"a b\""]);
    run.expect_code(2);
    assert_eq!(node.failover_json()["primary_host"], serde_json::Value::Null);
    node.ha(&["primary-host [2001:db8::7]:22"]).expect_code(0);
    assert_eq!(node.failover_json()["primary_host"], "[2001:db8::7]:22");
}

#[test]
fn the_enable_secret_is_asked_for_and_never_stored_in_clear() {
    let node = TestNode::new();
    node.run(&["enable", "configure terminal", "enable secret  Tr1cky pass"]).expect_code(0);
    let run = node.run(&["enable"]);
    run.expect_code(3);
    assert!(run.stderr.contains("CORESH_ENABLE_SECRET"), "{}", run.stderr);
    let wrong = node.run_with(&["enable"], &[], &[("CORESH_ENABLE_SECRET", "Tr1cky  pass")]);
    wrong.expect_code(3);
    assert_eq!(wrong.stderr, "% Bad secrets\n");
    node.run_with(&["enable", "show running-config"], &[], &[("CORESH_ENABLE_SECRET", "Tr1cky pass")]).expect_code(0);
    let file = node.path().join("secret");
    std::fs::write(&file, "Tr1cky pass\n").unwrap();
    let file = file.to_str().unwrap();
    let config = node.run_with(&["enable", "show running-config"], &["--secret-file", file], &[]);
    config.expect_code(0);
    assert!(config.stdout.contains("enable secret hashed $argon2id$"), "{}", config.stdout);
    let audit = node.run_with(&["enable", "show audit"], &["--secret-file", file], &[]).stdout;
    assert!(audit.contains("enable secret <removed>"), "{audit}");
    for name in ["system.db", "system.db-wal"] {
        let bytes = std::fs::read(node.data_dir().join(name)).unwrap_or_default();
        assert!(!bytes.windows(11).any(|w| w == b"Tr1cky pass"), "clear secret in {name}");
    }
    assert!(!audit.contains("Tr1cky"), "{audit}");
    let typo = node.run_with(&["enable", "configure terminal", "enable secert Tr1cky"], &["--secret-file", file], &[]);
    typo.expect_code(2);
    assert!(!typo.stderr.contains("Tr1cky"), "a mistyped command must not echo its secret: {}", typo.stderr);
    let audit = node.run_with(&["enable", "show audit last 3"], &["--secret-file", file], &[]).stdout;
    assert!(!audit.contains("Tr1cky"), "{audit}");
    node.run_with(&["enable", "configure terminal", "no enable secret"], &["--secret-file", file], &[]).expect_code(0);
    node.run(&["enable"]).expect_code(0);
}

#[test]
fn enable_secret_without_a_line_needs_a_terminal() {
    let node = TestNode::new();
    let run = node.run(&["enable", "configure terminal", "enable secret"]);
    run.expect_code(1);
    assert!(run.stderr.contains("No terminal to ask on"), "{}", run.stderr);
    let run = node.run(&["enable", "configure terminal", "enable secret hashed nothash"]);
    run.expect_code(1);
}

#[test]
fn running_config_round_trips_through_config_mode() {
    let a = TestNode::new();
    a.run(&[
        "enable",
        "configure terminal",
        "hostname core-a",
        "enable secret s3cr3t",
        "prompt hostname mode state",
        "logging host 10.0.0.9 tcp",
        "metrics allow 10.0.0.0/24",
    ])
    .expect_code(0);
    let env = [("CORESH_ENABLE_SECRET", "s3cr3t")];
    a.run_with(
        &[
            "enable",
            "configure terminal",
            "high-availability",
            "service enable",
            "mode secondary",
            "primary-host 10.1.2.3:22",
            "sync start-time 04:05",
            "sync run-every 3 days",
            "heartbeat interval 12",
            "on-failure keep-standby",
            "notify email ha@example.org",
            "notify on sync-completion",
            "event-hook becomes-primary webhook https://dns.example.com/flip?zone=core",
            "event-hook fenced command /bin/true",
        ],
        &[],
        &env,
    )
    .expect_code(0);
    let config = a.run_with(&["enable", "show running-config"], &[], &env);
    config.expect_code(0);
    let b = TestNode::new();
    let pasted = format!("enable\nconfigure terminal\n{}", config.stdout);
    let run = b.run_stdin(pasted.as_bytes(), &[]);
    run.expect_code(0);
    let again = b.run_with(&["enable", "show running-config"], &[], &env);
    again.expect_code(0);
    assert_eq!(again.stdout, config.stdout);
    assert!(again.stdout.contains("hostname core-a"));
    assert!(again.stdout.contains(" event-hook fenced command /bin/true\n"), "{}", again.stdout);
}

#[test]
fn output_modifiers() {
    let node = TestNode::new();
    let run = node.run(&["show failover | include ^(Mode|Epoch)"]);
    run.expect_code(0);
    assert_eq!(run.stdout, "Mode               : primary\nEpoch              : 0\n");
    let run = node.run(&["show failover | exclude :"]);
    assert_eq!(run.stdout, "");
    let run = node.run(&["show failover | begin ^Primary host"]);
    assert!(run.stdout.starts_with("Primary host"), "{}", run.stdout);
    let run = node.run(&["show failover | count"]);
    assert_eq!(run.stdout, "Number of lines which match: 11\n");
    let run = node.run(&["show failover | json | include ^  .epoch"]);
    assert_eq!(run.stdout, "  \"epoch\": 0,\n");
    let run = node.run(&["show failover | count | json"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% | json must be the first output modifier\n");
    let run = node.run(&["enable", "failover client-connection enable | count"]);
    run.expect_code(1);
    let run = node.run(&["show clock | include ("]);
    run.expect_code(2);
    assert!(run.stderr.contains("not a valid regular expression"), "{}", run.stderr);
    let run = node.run(&["show version | bogus"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "show version | bogus\n               ^\n% Invalid input detected at '^' marker.\n");
}

#[test]
fn every_show_command_has_json() {
    let node = TestNode::new();
    for cmd in
        ["show version", "show clock", "show failover", "show failover history", "show running-config", "show audit"]
    {
        let run = node.run(&["enable", &format!("{cmd} | json")]);
        run.expect_code(0);
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(&run.stdout);
        assert!(parsed.is_ok(), "{cmd}: {}", run.stdout);
    }
}

#[test]
fn commands_from_standard_input() {
    let node = TestNode::new();
    let run = node.run_stdin(b"enable\r\n! a comment\n\nfailover mode secondary\nshow failover | include ^Mode\n", &[]);
    run.expect_code(0);
    assert!(run.stdout.ends_with("Mode               : secondary\n"), "{}", run.stdout);
    let run = node.run_stdin(b"show version\nshow \xff\xfe\nenable\n", &[]);
    run.expect_code(2);
    assert_eq!(run.stderr, "% Invalid input: the line is not valid UTF-8\n");
}

#[test]
fn an_echo_transcript_shows_prompts_and_commands() {
    let node = TestNode::new();
    let run = node.run_with(
        &[
            "enable",
            "configure terminal",
            "hostname core-b",
            "high-availability",
            "heartbeat failures 4",
            "do show failover | include ^Heart",
            "exit",
            "end",
            "disable",
        ],
        &["--echo"],
        &[],
    );
    run.expect_code(0);
    let expected = "core>enable\ncore#configure terminal\ncore(config)#hostname core-b\ncore-b(config)#high-availability\n\
                    core-b(config-ha)#heartbeat failures 4\ncore-b(config-ha)#do show failover | include ^Heart\n\
                    Heartbeat          : every 30 s, re-check every 10 s, 4 failures before promote\n\
                    core-b(config-ha)#exit\ncore-b(config)#end\ncore-b#disable\n";
    assert_eq!(run.stdout, expected);
    let run = node.run_with(&["show failovr"], &["--echo"], &[]);
    assert_eq!(run.stdout, "core-b>show failovr\n            ^\n% Invalid input detected at '^' marker.\n");
    assert_eq!(run.stderr, "");
}

#[test]
fn exit_leaves_the_shell_from_exec_mode() {
    let node = TestNode::new();
    let run = node.run(&["exit", "failover mode secondary"]);
    run.expect_code(0);
    let run = node.run(&["enable", "exit", "show bogus"]);
    run.expect_code(0);
}

#[test]
fn help_in_batch_mode() {
    let node = TestNode::new();
    let run = node.run(&["show ?"]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let width = lines[0].trim_start().find("  ").unwrap();
    for (line, word) in lines.iter().zip([
        "clock",
        "core",
        "devices",
        "event-hooks",
        "failover",
        "logging",
        "notifications",
        "replication",
        "sessions",
        "ssh",
        "sync",
        "terminal",
        "trusted-hosts",
        "users",
        "version",
    ]) {
        assert!(line.starts_with(&format!("  {word:<width$}  ")), "{line:?} in\n{}", run.stdout);
    }
    assert_eq!(lines.len(), 15, "{}", run.stdout);
    assert!(!run.stdout.contains("running-config"), "privileged words are not offered in user mode");
    let run = node.run(&["enable", "sh?"]);
    assert_eq!(run.stdout, "  show  Show running system information\n");
    let run = node.ha(&["heartbeat interval ?"]);
    assert_eq!(run.stdout, "  <1-86400>  Number of seconds\n");
    let run = node.run(&["enable", "show failover ?"]);
    assert_eq!(
        run.stdout,
        "  config-diff  The settings the pair must agree on, side by side with the peer's\n  divergence   Changes a full sync replaced, kept in files\n  handovers    Switchovers this node took part in, each signed by both nodes\n  history      Every mode and state change, with time, reason and cause\n  <cr>         \n"
    );
    let run = node.run(&["enable", "configure terminal", "do show ?"]);
    assert!(run.stdout.contains("running-config"), "{}", run.stdout);
    let run = node.run(&["show version | ?"]);
    assert!(run.stdout.contains("  json     Print the result as JSON"), "{}", run.stdout);
    let run = node.run(&["xyz ?"]);
    run.expect_code(2);
}

#[test]
fn lexical_errors() {
    let node = TestNode::new();
    let run = node.run(&["show \"failover"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "show \"failover\n     ^\n% Unterminated quoted string at '^' marker.\n");
    let run = node.run(&["show\u{7}failover"]);
    run.expect_code(2);
    let long = "show ".repeat(1000);
    let run = node.run(&[&long]);
    run.expect_code(2);
    assert_eq!(run.stderr, "% Line too long (at most 4096 characters).\n");
}

#[test]
fn the_audit_log_records_every_command_and_its_outcome() {
    let node = TestNode::new();
    node.run(&["show version"]).expect_code(0);
    node.run(&["show bogus"]).expect_code(2);
    node.run(&["failover mode primary"]).expect_code(3);
    let run = node.run(&["enable", "show audit | json"]);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let seen: Vec<(String, String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["command"].as_str().unwrap().into(),
                r["mode"].as_str().unwrap().into(),
                r["outcome"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = |c: &str, m: &str, o: &str| (c.to_string(), m.to_string(), o.to_string());
    assert_eq!(
        seen,
        [
            expect("show version", "user", "ok"),
            expect("show bogus", "user", "syntax"),
            expect("failover mode primary", "user", "denied"),
            expect("enable", "user", "ok"),
        ]
    );
    assert_eq!(rows[0]["user"], "tester");
    assert_eq!(rows[0]["source"], "batch");
}

#[test]
fn a_corrupt_database_is_reported_and_left_alone() {
    let node = TestNode::new();
    std::fs::create_dir_all(node.data_dir()).unwrap();
    let db = node.data_dir().join("system.db");
    let junk = vec![0x5a_u8; 8192];
    std::fs::write(&db, &junk).unwrap();
    let run = node.run(&["show failover"]);
    run.expect_code(1);
    assert!(run.stderr.starts_with("% "), "{}", run.stderr);
    assert!(run.stderr.contains("is not a usable database"), "{}", run.stderr);
    assert!(run.stderr.contains("left untouched"), "{}", run.stderr);
    assert_eq!(std::fs::read(&db).unwrap(), junk);
}

#[test]
fn terminal_length_is_accepted_and_hostname_sets_the_prompt() {
    let node = TestNode::new();
    node.run(&["terminal length 0"]).expect_code(0);
    node.run(&["enable", "configure terminal", "hostname 9lives"]).expect_code(2);
    node.run(&["enable", "configure terminal", "hostname mdm-core-1"]).expect_code(0);
    let run = node.run_with(&["show clock"], &["--echo"], &[]);
    assert!(run.stdout.starts_with("mdm-core-1>show clock\n"), "{}", run.stdout);
}

#[test]
fn data_dir_option_and_environment() {
    let node = TestNode::new();
    let other = node.path().join("elsewhere");
    let run = node.run_with(&["enable", "failover mode secondary"], &["--data-dir", other.to_str().unwrap()], &[]);
    run.expect_code(0);
    assert!(other.join("system.db").exists());
    assert_eq!(node.failover_json()["mode"], "primary", "CORESH_DATA_DIR node untouched");
}

#[test]
fn a_data_dir_that_cannot_be_used_is_reported() {
    let node = TestNode::new();
    let file = node.path().join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let run = node.run_with(&["show failover"], &["--data-dir", file.to_str().unwrap()], &[]);
    run.expect_code(1);
    assert!(run.stderr.starts_with("% "), "{}", run.stderr);
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn mode_primary_in_ha_configuration_is_a_promotion() {
    let node = TestNode::new();
    node.ha(&["mode secondary", "service enable"]).expect_code(0);
    let run = node.ha(&["mode primary"]);
    run.expect_code(0);
    assert!(run.stdout.contains("This node is primary (epoch 1)."), "{}", run.stdout);
    assert!(run.stdout.contains("Next sync: none (a primary never replicates from another node)"), "{}", run.stdout);
    let rows: serde_json::Value = serde_json::from_str(&node.run(&["show failover history | json"]).stdout).unwrap();
    let last = rows.as_array().unwrap().last().unwrap();
    assert_eq!((last["event"].as_str(), last["reason"].as_str()), (Some("epoch"), Some("mode primary")));
}

#[test]
fn do_runs_exec_commands_only() {
    let node = TestNode::new();
    let run =
        node.run(&["enable", "configure terminal", "do failover mode secondary", "do show failover | include ^Mode"]);
    run.expect_code(0);
    assert!(run.stdout.ends_with("Mode               : secondary\n"), "{}", run.stdout);
    let run = node.run(&["enable", "configure terminal", "do hostname x"]);
    run.expect_code(2);
    assert_eq!(run.stderr, "do hostname ...\n   ^\n% Invalid input detected at '^' marker.\n");
    node.run(&["enable", "configure terminal", "do"]).expect_code(2);
}

#[test]
fn secrets_that_are_too_short_or_not_hashes_are_refused() {
    let node = TestNode::new();
    let run = node.run(&["enable", "configure terminal", "enrollment-secret short"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% The secret needs at least 8 characters\n");
    let run = node.run(&["enable", "configure terminal", "enable secret \"\""]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% The secret must not be empty\n");
    let run = node.run(&["enable", "configure terminal", "enrollment-secret hashed plain-text"]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% Not an argon2 hash as show running-config prints it\n");
    node.run(&["enable"]).expect_code(0);
}

#[test]
fn shell_options_do_not_go_with_a_subcommand() {
    let node = TestNode::new();
    let run = node.run_with(&[], &["-c", "show version", "docs", "commands"], &[]);
    run.expect_code(1);
    assert_eq!(run.stderr, "% -c, --echo, --keep-going and --secret-file are for the shell, not for a subcommand\n");
}

#[test]
fn the_prompt_shows_the_role_when_asked() {
    let node = TestNode::new();
    let echo = |lines: &[&str]| node.run_with(lines, &["--echo"], &[]).stdout;
    // Off by default: the guide's plain prompt.
    assert!(echo(&["show clock"]).starts_with("core>show clock"));
    node.run(&["enable", "configure terminal", "prompt hostname mode state"]).expect_code(0);
    let seen = echo(&["show clock", "enable", "configure terminal", "high-availability", "mode secondary"]);
    assert!(seen.contains("core/pri/act>show clock"), "{seen}");
    assert!(seen.contains("core/pri/act(config-ha)#mode secondary"), "{seen}");
    // A standby secondary; the mode alone; and back to the default.
    assert!(echo(&["show clock"]).starts_with("core/sec/stby>"), "{}", echo(&["show clock"]));
    node.run(&["enable", "configure terminal", "prompt hostname mode"]).expect_code(0);
    assert!(echo(&["show clock"]).starts_with("core/sec>"));
    let config = node.run(&["enable", "show running-config"]).stdout;
    assert!(config.contains("\nprompt hostname mode\n"), "{config}");
    node.run(&["enable", "configure terminal", "no prompt"]).expect_code(0);
    assert!(echo(&["show clock"]).starts_with("core>"));
    assert!(node.run(&["enable", "show running-config"]).stdout.contains("\nprompt hostname\n"));
}
