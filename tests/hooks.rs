//! Event hooks against a real HTTP receiver (Python's http.server on loopback, logging
//! every request it gets and the answer it gave) and a real program: a failover's
//! `becomes-primary` and `failover-detected` calls wait in the outbox while the receiver
//! is down (and across a kill -9 of the daemon), are retried past a 503, and are accepted
//! exactly once each; the command gets the same JSON and its environment; a flapping
//! event is capped and the rest rolled into one digest call.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{TestNode, free_port, pair, until};
use serde_json::Value;

/// Answers 503 to its first `fail` requests and 200 to the rest; logs each request as a
/// JSON line (path, answer, headers, body).
const RECEIVER: &str = r#"
import http.server, json, sys
port, log_path, fail = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = open(log_path, 'a', buffering=1)
seen = 0
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        seen += 1
        code = 503 if seen <= fail else 200
        log.write(json.dumps({'path': self.path, 'code': code, 'event': self.headers.get('X-Coresh-Event'),
                              'delivery': self.headers.get('X-Coresh-Delivery'),
                              'type': self.headers.get('Content-Type'), 'body': json.loads(body)}) + '\n')
        self.send_response(code)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', port), Hook).serve_forever()
"#;

struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn receiver(port: u16, log: &Path, fail: u32) -> Receiver {
    let child = Command::new("python3")
        .args(["-c", RECEIVER, &port.to_string()])
        .arg(log)
        .arg(fail.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    until("the receiver listens", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    Receiver(child)
}

fn requests(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A program that appends its environment's event and its standard input to `out`.
fn script(dir: &Path, out: &Path) -> String {
    let path = dir.join("on-primary.sh");
    let text = format!(
        "#!/bin/sh\nprintf '%s %s %s|' \"$CORESH_EVENT\" \"$CORESH_NODE\" \"$CORESH_EPOCH\" >> {out}\ncat >> {out}\necho >> {out}\necho flipped\n",
        out = out.display()
    );
    std::fs::write(&path, text).unwrap();
    Command::new("chmod").args(["+x"]).arg(&path).status().unwrap();
    path.display().to_string()
}

fn outbox(node: &TestNode) -> Vec<Value> {
    serde_json::from_str::<Value>(&node.run(&["show notifications | json"]).stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn a_failover_calls_its_webhooks_and_its_command_once_each_through_the_outbox() {
    let (a, b) = (TestNode::new(), TestNode::new());
    let da = a.serve();
    pair(&a, &da, &b);
    common::sync(&b, &da).expect_code(0);
    let port = free_port();
    let (log, out) = (b.path().join("requests.jsonl"), b.path().join("script.out"));
    let program = script(b.path(), &out);
    let flip = format!("event-hook becomes-primary webhook http://127.0.0.1:{port}/flip?zone=core");
    let pager = format!("event-hook failover-detected webhook http://127.0.0.1:{port}/pager");
    let run = format!("event-hook becomes-primary command {program}");
    b.ha(&[&flip, &pager, &run]).expect_code(0);
    let config = b.run(&["enable", "show running-config"]).stdout;
    for line in [&flip, &pager, &run] {
        assert!(config.contains(&format!(" {line}\n")), "{line} not in {config}");
    }
    let db = common::take_over_from(&b, da);

    // The receiver is down: both calls wait in the outbox with the error; the command
    // has run.
    db.eventually("both webhook calls failed once", |_| {
        let waiting = outbox(&b);
        waiting.iter().filter(|d| d["channel"] == "webhook" && d["status"] == "pending" && d["attempts"] == 1).count()
            == 2
    });
    let shown = b.run(&["show event-hooks"]).stdout;
    assert!(shown.contains("Connection refused"), "{shown}");
    until("the command ran", || std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 1));
    // A crash with the calls waiting loses none of them.
    db.kill_9();
    let db = b.serve();

    // Up, answering 503 once: retried, and then accepted once each.
    let _up = receiver(port, &log, 1);
    until("both calls accepted", || requests(&log).iter().filter(|r| r["code"] == 200).count() == 2);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let got = requests(&log);
    let accepted: Vec<&Value> = got.iter().filter(|r| r["code"] == 200).collect();
    assert_eq!(accepted.len(), 2, "exactly once each: {got:?}");
    assert_eq!(got.len(), 3, "one 503, then one call each: {got:?}");
    let flipped = accepted.iter().find(|r| r["path"] == "/flip?zone=core").expect("the flip call");
    let paged = accepted.iter().find(|r| r["path"] == "/pager").expect("the pager call");
    let node_id = b.node_id();
    for (call, event) in [(flipped, "becomes-primary"), (paged, "failover-detected")] {
        let body = &call["body"];
        assert_eq!(call["type"], "application/json");
        assert_eq!(call["event"], event);
        assert_eq!(body["event"], event);
        assert_eq!(call["delivery"], body["id"]);
        assert_eq!(body["node_id"], node_id.as_str());
        assert_eq!(body["epoch"], 1, "{body}");
        assert_eq!(body["mode"], "primary", "{body}");
        assert!(body["reason"].as_str().is_some_and(|r| r.contains("failed 3 consecutive heartbeats")), "{body}");
        assert!(chrono::DateTime::parse_from_rfc3339(body["time"].as_str().unwrap()).is_ok(), "{body}");
    }
    let shown = b.run(&["show event-hooks | json"]).stdout;
    let hooks: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(hooks.as_array().unwrap().len(), 3);
    assert!(hooks.as_array().unwrap().iter().all(|h| h["sent"] == 1 && h["waiting"] == 0), "{hooks}");

    // The command: once, with the same JSON on its standard input, the event in its
    // environment; what it printed is the outbox's answer.
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let (env, json) = text.trim().split_once('|').unwrap();
    let json: Value = serde_json::from_str(json).unwrap();
    assert_eq!(json["event"], "becomes-primary");
    assert_eq!(env, format!("becomes-primary {} 1", json["node"].as_str().unwrap()));
    let command = outbox(&b).into_iter().find(|d| d["channel"] == "command").unwrap();
    assert_eq!(command["status"], "sent");
    assert_eq!(command["last_error"], "exit 0: flipped");
    drop(db);
}

#[test]
fn a_flapping_event_calls_its_hook_five_times_an_hour_and_then_once_as_a_digest() {
    let node = TestNode::new();
    let port = free_port();
    let log = node.path().join("requests.jsonl");
    let _up = receiver(port, &log, 0);
    node.ha(&[&format!("event-hook becomes-primary webhook http://127.0.0.1:{port}/flip")]).expect_code(0);
    let _d = node.daemon().env("CORESH_TEST_DIGEST_SECONDS", "2").start();
    // Eight promotions by hand: each one is a role change that calls the hook.
    for _ in 0..8 {
        node.run(&["enable", "failover mode secondary", "failover mode primary"]).expect_code(0);
    }
    until("five calls and one digest", || requests(&log).len() == 6);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let got = requests(&log);
    assert_eq!(got.len(), 6, "{got:?}");
    let epochs: Vec<u64> = got[..5].iter().map(|r| r["body"]["epoch"].as_u64().unwrap()).collect();
    assert_eq!(epochs, [1, 2, 3, 4, 5]);
    let digest = &got[5]["body"];
    assert_eq!(digest["held"], 3, "{digest}");
    assert_eq!(digest["epoch"], 8, "the newest call's JSON: {digest}");
    assert!(digest["first"].is_string(), "{digest}");
    let text = node.run(&["show event-hooks"]).stdout;
    assert!(text.contains("| 6    | 0"), "{text}");
}

#[test]
fn event_hooks_refuse_what_they_cannot_call_and_are_removed_by_no() {
    let node = TestNode::new();
    let bad = node.ha(&["event-hook stale webhook ftp://example.com/"]);
    bad.expect_code(1);
    assert!(
        bad.stderr.contains("% 'ftp://example.com/': a webhook URL starts with http:// or https://"),
        "{}",
        bad.stderr
    );
    let bad = node.ha(&["event-hook fenced command page-ops"]);
    assert!(bad.stderr.contains("% 'page-ops' is not an absolute path"), "{}", bad.stderr);
    let missing = node.ha(&["event-hook fenced command /nonexistent/page-ops"]);
    missing.expect_code(0);
    assert!(missing.stderr.contains("is not an executable file on this node now"), "{}", missing.stderr);
    node.ha(&["event-hook fenced webhook https://pager.example.com/v2/enqueue?key=abc"]).expect_code(0);
    let again = node.ha(&["event-hook fenced webhook https://pager.example.com/v2/enqueue?key=abc"]);
    assert!(again.stdout.contains("already set; nothing changed"), "{}", again.stdout);
    node.ha(&["no event-hook fenced command /nonexistent/page-ops"]).expect_code(0);
    let shown = node.run(&["show event-hooks"]).stdout;
    assert!(
        shown.contains("webhook https://pager.example.com/v2/enqueue?key=abc") && !shown.contains("page-ops"),
        "{shown}"
    );
    node.ha(&["no event-hook fenced"]).expect_code(0);
    assert_eq!(node.run(&["show event-hooks"]).stdout.trim(), "No event hooks.");
    let none = node.ha(&["no event-hook stale webhook http://x.example.com/"]);
    none.expect_code(0);
    assert!(none.stdout.contains("No such event hook; nothing changed."), "{}", none.stdout);
    let secret = node.ha(&["event-hook stale webhook https://ops:pw@hooks.example.com/"]);
    secret.expect_code(1);
    assert!(secret.stderr.contains("a webhook URL carries no user name, password or #fragment"), "{}", secret.stderr);
    // At most 32: the 33rd is refused and nothing is lost.
    let many: Vec<String> =
        (0..32).map(|n| format!("event-hook degraded webhook http://hooks.example.com/{n}")).collect();
    node.ha(&many.iter().map(String::as_str).collect::<Vec<_>>()).expect_code(0);
    let full = node.ha(&["event-hook degraded webhook http://hooks.example.com/32"]);
    full.expect_code(1);
    assert!(full.stderr.contains("% At most 32 event hooks; remove one first"), "{}", full.stderr);
    let hooks: Value = serde_json::from_str(&node.run(&["show event-hooks | json"]).stdout).unwrap();
    assert_eq!(hooks.as_array().unwrap().len(), 32);
}
