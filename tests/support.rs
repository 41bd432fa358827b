//! Support tooling: `show tech-support` gathers the node's state in one output, text or
//! JSON, and leaves every secret out (clear, hashed or sealed).

mod common;

use common::TestNode;

const SECRET_ENV: [(&str, &str); 1] = [("CORESH_ENABLE_SECRET", "en4ble-secret")];

#[test]
fn tech_support_has_every_section_and_no_secret() {
    let node = TestNode::new();
    node.run(&[
        "enable",
        "configure terminal",
        "hostname core-a",
        "enable secret en4ble-secret",
        "enrollment-secret enr0ll-secret",
        "username ops password us3r-password",
        "smtp server mail.example.com",
        "smtp user mailer password smtp-passw0rd",
    ])
    .expect_code(0);
    let config = node.run_with(&["enable", "show running-config"], &[], &SECRET_ENV).expect_code(0).stdout.clone();
    let sealed = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("smtp user mailer password sealed "))
        .expect("a sealed SMTP password in running-config")
        .to_string();

    let text = node.run_with(&["enable", "show tech-support"], &[], &SECRET_ENV).expect_code(0).stdout.clone();
    assert!(text.starts_with("coresh tech-support: core-a at "), "{text}");
    for header in [
        "show version",
        "show failover",
        "show running-config",
        "show failover history last 50",
        "show sync history last 20",
        "show logging high-availability last 100",
        "show audit last 100",
        "show sessions",
        "show core summary",
        "database integrity",
    ] {
        assert!(text.contains(&format!("------------------ {header} ------------------")), "{header}:\n{text}");
    }
    assert!(text.contains("core.db") && text.contains("quick_check: ok"), "{text}");
    assert!(text.contains("username ops password hashed <removed>"), "{text}");

    let json = node.run_with(&["enable", "show tech-support | json"], &[], &SECRET_ENV).expect_code(0).stdout.clone();
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(parsed["hostname"], "core-a");
    let failover = parsed["sections"].as_array().unwrap().iter().find(|s| s["command"] == "show failover").unwrap();
    assert_eq!(failover["result"]["mode"], "primary", "{failover}");
    assert!(parsed["integrity"].as_array().unwrap().iter().all(|i| i["quick_check"] == "ok"), "{json}");

    for output in [&text, &json] {
        for secret in ["en4ble-secret", "enr0ll-secret", "us3r-password", "smtp-passw0rd", "$argon2", sealed.as_str()] {
            assert!(!output.contains(secret), "{secret} in tech-support");
        }
    }
    // Privileged: refused in user mode.
    node.run(&["show tech-support"]).expect_code(3);
}

#[test]
fn bash_completion_offers_every_level_of_subcommands_and_their_options() {
    let run = TestNode::new().run_with(&[], &["completions", "bash"], &[]);
    run.expect_code(0);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("coresh.bash");
    std::fs::write(&script, &run.stdout).unwrap();
    // What bash offers at the end of each command line (the last word being typed).
    let cases: [(&str, &[&str]); 6] = [
        ("coresh ''", &["serve", "lab", "help", "-c", "--data-dir"]),
        ("coresh lab ''", &["up", "down"]),
        ("coresh help ''", &["serve", "lab", "console-session"]),
        ("coresh help lab ''", &["up", "down"]),
        ("coresh help docs ''", &["commands", "json"]),
        ("coresh serve --", &["--http-listen", "--tls-cert", "--data-dir", "--help"]),
    ];
    for (words, offered) in cases {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _coresh coresh \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash").arg("-c").arg(&probe).output().expect("bash");
        let said: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
        for word in offered {
            assert!(said.iter().any(|w| w == word), "{words}: {word} not offered in {said:?}");
        }
    }
}

#[test]
fn the_systemd_unit_example_verifies_and_completion_scripts_parse() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/coresh.service")).unwrap();
    assert!(unit.contains("/usr/local/bin/coresh --data-dir /var/lib/coresh serve"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coresh.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/coresh", common::binary())).unwrap();
    let verified =
        std::process::Command::new("systemd-analyze").arg("verify").arg(&path).output().expect("systemd-analyze");
    let said = String::from_utf8_lossy(&verified.stderr);
    assert!(verified.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    for (shell, check) in [("bash", "bash"), ("zsh", "")] {
        let run = TestNode::new().run_with(&[], &["completions", shell], &[]);
        run.expect_code(0);
        assert!(run.stdout.contains("serve") && run.stdout.contains("--data-dir"), "{shell}");
        if !check.is_empty() {
            let mut syntax =
                std::process::Command::new(check).arg("-n").stdin(std::process::Stdio::piped()).spawn().unwrap();
            std::io::Write::write_all(syntax.stdin.as_mut().unwrap(), run.stdout.as_bytes()).unwrap();
            assert!(syntax.wait().unwrap().success(), "{shell} completion does not parse");
        }
    }
}
