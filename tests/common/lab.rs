//! Network namespaces for topology tests: each node gets a namespace of its own with two
//! interfaces, one on a client network (devices, load balancers, and this test process
//! reach it there) and one on a replication network (the HA peers' SSH and status
//! pages). Both networks are bridges in a switch namespace, so a test can cut a node's
//! replication link (a partition between the Cores while both stay up) or all its links.
//! Created by the test, as root, and removed when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Daemon, TestNode};

/// Ports every node's daemon listens on, inside its namespace.
pub const HTTP_PORT: u16 = 8080;
pub const SSH_PORT: u16 = 2222;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces and the networks between them.
pub struct Lab {
    prefix: String,
    subnet: u8,
    names: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("the ip command (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}\nTopology tests need root and network namespaces (CI runs as root).",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// Namespaces for `names` (in order: node `i` gets host address `i + 1`).
    pub fn new(names: &[&str]) -> Lab {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id() % 10_000) * 16 + n;
        let subnet = u8::try_from(100 + (id % 100)).unwrap();
        let lab = Lab { prefix: format!("cs{id}"), subnet, names: names.iter().map(|s| s.to_string()).collect() };
        // A run killed before its cleanup leaves namespaces behind; a later process may
        // get the same id. Clear any such leftovers first.
        for name in names.iter().copied().chain(["sw"]) {
            let _ = Command::new("ip").args(["netns", "del", &lab.ns(name)]).output();
        }
        let _ = Command::new("ip").args(["link", "del", &format!("{}h", lab.prefix)]).output();
        let sw = lab.ns("sw");
        ip(&["netns", "add", &sw]);
        for bridge in ["cl", "rp"] {
            ip(&["-n", &sw, "link", "add", bridge, "type", "bridge"]);
            ip(&["-n", &sw, "link", "set", bridge, "up"]);
        }
        for (i, name) in names.iter().enumerate() {
            let ns = lab.ns(name);
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            for (net, bridge, third) in [("c", "cl", 2u8), ("r", "rp", 1u8)] {
                let (inside, outside) = (format!("{net}{i}"), format!("{}{net}{i}", lab.prefix));
                // Each end is made in its namespace: tests running at once reuse inside names.
                ip(&["-n", &sw, "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &ns]);
                ip(&["-n", &sw, "link", "set", &outside, "master", bridge]);
                ip(&["-n", &sw, "link", "set", &outside, "up"]);
                let addr = format!("10.{}.{third}.{}/24", lab.subnet, i + 1);
                ip(&["-n", &ns, "addr", "add", &addr, "dev", &inside]);
                ip(&["-n", &ns, "link", "set", &inside, "up"]);
            }
        }
        // This test process joins the client network.
        let (host, port) = (format!("{}h", lab.prefix), format!("{}hs", lab.prefix));
        ip(&["-n", &sw, "link", "add", &port, "type", "veth", "peer", "name", &host, "netns", "1"]);
        ip(&["-n", &sw, "link", "set", &port, "master", "cl"]);
        ip(&["-n", &sw, "link", "set", &port, "up"]);
        ip(&["addr", "add", &format!("10.{}.2.254/24", lab.subnet), "dev", &host]);
        ip(&["link", "set", &host, "up"]);
        lab
    }

    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).expect("a node of this lab")
    }

    /// A fresh node whose commands run in `name`'s namespace.
    pub fn node(&self, name: &str) -> TestNode {
        let _ = self.index(name);
        TestNode { dir: tempfile::tempdir().expect("temp dir"), netns: Some(self.ns(name)) }
    }

    /// `name`'s address on the client network.
    pub fn client(&self, name: &str) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 2, u8::try_from(self.index(name) + 1).unwrap())
    }

    /// `name`'s address on the replication network.
    pub fn repl(&self, name: &str) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 1, u8::try_from(self.index(name) + 1).unwrap())
    }

    /// `HOST:PORT` of `name`'s SSH server, as its peers reach it.
    pub fn peer(&self, name: &str) -> String {
        format!("{}:{SSH_PORT}", self.repl(name))
    }

    /// Starts `node`'s daemon in `name`'s namespace; its `addr` is on the client network.
    pub fn serve(&self, name: &str, node: &TestNode) -> Daemon {
        let mut daemon =
            node.daemon().http(&format!("0.0.0.0:{HTTP_PORT}")).ssh(&format!("0.0.0.0:{SSH_PORT}")).start();
        daemon.addr = SocketAddr::from((self.client(name), HTTP_PORT));
        daemon.ssh = SocketAddr::from((self.repl(name), SSH_PORT));
        daemon
    }

    /// Takes `name`'s replication link down (or up again).
    pub fn replication_link(&self, name: &str, up: bool) {
        let port = format!("{}r{}", self.prefix, self.index(name));
        ip(&["-n", &self.ns("sw"), "link", "set", &port, if up { "up" } else { "down" }]);
    }

    /// Cuts the replication network between `x` and `y` only (each drops the other's
    /// packets: a blackhole route), or restores it; both keep reaching every other node.
    pub fn cut(&self, x: &str, y: &str, cut: bool) {
        for (from, to) in [(x, y), (y, x)] {
            let route = format!("{}/32", self.repl(to));
            ip(&["-n", &self.ns(from), "route", if cut { "add" } else { "del" }, "blackhole", &route]);
        }
    }

    /// Takes all of `name`'s links down: the node is lost to everyone.
    pub fn isolate(&self, name: &str) {
        self.replication_link(name, false);
        let port = format!("{}c{}", self.prefix, self.index(name));
        ip(&["-n", &self.ns("sw"), "link", "set", &port, "down"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &format!("{}h", self.prefix)]).status();
        for name in self.names.iter().map(String::as_str).chain(["sw"]) {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(name)]).status();
        }
    }
}
