//! HTTPS with the server certificate: the status pages answer over TLS (checked with
//! curl against the certificate), plain HTTP to the TLS port gets nothing, and a key
//! that does not fit the certificate is refused at start.

mod common;

use std::process::Command;

use common::TestNode;

fn write_cert(node: &TestNode) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = node.path().join("server.pem");
    let key = node.path().join("server.key");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

#[test]
fn status_pages_answer_over_tls() {
    let node = TestNode::new();
    let (cert, key) = write_cert(&node);
    let d = node.daemon().args(&["--tls-cert", &cert, "--tls-key", &key]).start();
    let url = format!("https://localhost:{}/status/status.html", d.addr.port());
    let out = Command::new("curl").args(["-sS", "--max-time", "10", "--cacert", &cert, &url]).output().expect("curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "MOBILEIRON-STATUS: OK");
    let plain = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("http://127.0.0.1:{}/status/status.html", d.addr.port())])
        .output()
        .expect("curl");
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("MOBILEIRON-STATUS"),
        "plain HTTP answered on the TLS port"
    );
    let untrusted = Command::new("curl").args(["-sS", "--max-time", "10", &url]).output().expect("curl");
    assert!(!untrusted.status.success(), "a client that does not trust the certificate must fail");
    assert!(d.stop().success());
}

#[test]
fn a_key_that_does_not_fit_is_refused() {
    let node = TestNode::new();
    let (cert, _) = write_cert(&node);
    let other = TestNode::new();
    let (_, wrong_key) = write_cert(&other);
    let run = node.run_with(
        &[],
        &["serve", "--http-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &wrong_key],
        &[],
    );
    run.expect_code(1);
    assert!(run.stderr.contains("do not fit together"), "{}", run.stderr);
    let run = node.run_with(
        &[],
        &["serve", "--http-listen", "127.0.0.1:0", "--tls-cert", "/nonexistent.pem", "--tls-key", &wrong_key],
        &[],
    );
    run.expect_code(1);
    assert!(run.stderr.contains("cannot read the certificate"), "{}", run.stderr);
}
