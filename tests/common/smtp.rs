//! A real SMTP server for notification tests: Debian's python3-aiosmtpd with its Mailbox
//! handler, delivering into a Maildir the tests read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestNode;

/// aiosmtpd on a port, delivering into a Maildir.
pub struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    pub fn start(dir: &Path, port: u16) -> SmtpServer {
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer { child, maildir }
    }

    /// Every mail delivered so far, as text a test can search.
    pub fn mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        let mut mails: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            // Undo quoted-printable soft breaks and header folding.
            .map(|m| m.replace("=\n", "").replace("=3D", "=").replace("\n ", " "))
            .collect();
        mails.sort();
        mails
    }

    pub fn wait_for(&self, what: &str, f: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mails = self.mails();
            if f(&mails) {
                return mails;
            }
            assert!(Instant::now() < deadline, "never: {what}; mails so far:\n{}", mails.join("\n----\n"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Points `node`'s notifications at 127.0.0.1:`port`.
pub fn configure(node: &TestNode, port: u16) {
    node.run(&[
        "enable",
        "configure terminal",
        "hostname core-b",
        &format!("smtp server 127.0.0.1 port {port} tls none"),
        "smtp from coresh@example.com",
        "high-availability",
        "notify email ops@example.com",
    ])
    .expect_code(0);
}
