//! The status pages under a real HAProxy configured as the guide's "Load balancer
//! setup" describes (see `common::haproxy`): traffic stays on a healthy primary, moves
//! to the secondary only when the primary's probe fails while the secondary shows
//! `Mode: Standby`, and never moves back by itself; and, configured from the guide's text
//! alone (no latch), keeps new clients off an old primary that comes back stale.

mod common;

use common::haproxy::{from_client, guide_config, start, start_with};
use common::until;
use common::{Daemon, TestNode};

fn front() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], common::free_port()))
}

fn node_id(d: &Daemon) -> String {
    let v: serde_json::Value = serde_json::from_str(&d.get("/status.json").body).unwrap();
    v["node_id"].as_str().unwrap().to_string()
}

#[test]
fn haproxy_fails_over_to_a_standby_and_does_not_move_back() {
    let (a, b) = (TestNode::new(), TestNode::new());
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    let primary = a.serve();
    let secondary = b.serve();
    let (pid, sid) = (node_id(&primary), node_id(&secondary));
    let lb = start(a.path(), front(), primary.addr, secondary.addr);

    until("traffic goes to the primary", || lb.served_by() == Ok(pid.clone()));
    // The primary dies: its probe fails, the secondary shows Mode: Standby: fail over.
    let primary_addr = primary.addr;
    primary.kill_9();
    until("traffic goes to the standby", || lb.served_by() == Ok(sid.clone()));
    // Promoted, it keeps the traffic (it now says Mode: Primary).
    b.run(&["enable", "failover mode primary"]).expect_code(0);
    until("the secondary reports Mode: Primary", || secondary.get("/hastatus.html").body.ends_with("(Mode: Primary)"));
    assert_eq!(lb.served_by(), Ok(sid.clone()));
    // The old primary comes back at its address, healthy: traffic stays (manual resume).
    let back = a.daemon().http(&primary_addr.to_string()).ssh("127.0.0.1:0").start();
    assert_eq!(back.get("/status/status.html").body, "MOBILEIRON-STATUS: OK");
    std::thread::sleep(std::time::Duration::from_millis(500));
    for _ in 0..10 {
        assert_eq!(lb.served_by(), Ok(sid.clone()));
    }
}

#[test]
fn haproxy_does_not_fail_over_to_a_secondary_that_is_not_standby() {
    let (a, b) = (TestNode::new(), TestNode::new());
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    b.ha(&["node-status active"]).expect_code(0);
    let primary = a.serve();
    let secondary = b.serve();
    let pid = node_id(&primary);
    let lb = start(a.path(), front(), primary.addr, secondary.addr);
    until("traffic goes to the primary", || lb.served_by() == Ok(pid.clone()));
    primary.kill_9();
    until("no server is left", || lb.served_by() == Err(503));
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(lb.served_by(), Err(503), "an active secondary is no failover target");
}

#[test]
fn haproxy_keeps_traffic_on_a_healthy_primary() {
    let (a, b) = (TestNode::new(), TestNode::new());
    b.run(&["enable", "failover mode secondary"]).expect_code(0);
    let primary = a.serve();
    let secondary = b.serve();
    let pid = node_id(&primary);
    let lb = start(b.path(), front(), primary.addr, secondary.addr);
    until("traffic goes to the primary", || lb.served_by() == Ok(pid.clone()));
    for _ in 0..20 {
        assert_eq!(lb.served_by(), Ok(pid.clone()));
    }
    drop(secondary);
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(lb.served_by(), Ok(pid), "losing the standby moves nothing");
}

#[test]
fn a_load_balancer_from_the_guide_alone_keeps_new_clients_off_a_stale_primary() {
    let (a, b) = (TestNode::new(), TestNode::new());
    common::generate(&a, "20", "20");
    // a is primary and watches its peers; b is its synced standby with a fast heartbeat.
    a.ha(&["heartbeat interval 1", "service enable"]).expect_code(0);
    let primary = a.serve();
    common::pair(&a, &primary, &b);
    let secondary = b.serve();
    a.trust(&secondary.ssh.to_string(), &b.local_key()).expect_code(0);
    common::sync(&b, &primary).expect_code(0);
    b.follow(&primary.ssh.to_string(), "promote");
    let (pid, sid) = (node_id(&primary), node_id(&secondary));
    let vip = front();
    let lb = start_with(a.path(), vip, &guide_config(vip, primary.addr, secondary.addr));
    let token = coresh::coredb::generate::token_for(42, 3);
    until("the first client reaches the primary", || from_client(vip, "127.0.0.1", &token).0 == Ok(pid.clone()));

    // The primary dies: the backup takes the clients, and its heartbeat promotes it.
    let primary_addr = primary.addr;
    primary.kill_9();
    until("devices check in on the promoted secondary", || {
        from_client(vip, "127.0.0.1", &token) == (Ok(sid.clone()), 200)
    });

    // The old primary returns on its address and learns it is stale.
    let back = a.daemon().http(&primary_addr.to_string()).ssh("127.0.0.1:0").start();
    back.eventually("the old primary reports itself stale", |d| d.get("/hastatus.html").body.contains("Mode: Stale"));
    std::thread::sleep(std::time::Duration::from_millis(800));
    // New clients (new addresses, no stickiness yet) go where the status pages say.
    for n in 2..8 {
        let source = format!("127.0.0.{n}");
        assert_eq!(from_client(vip, &source, &token), (Ok(sid.clone()), 200), "a new client from {source}");
    }
    assert_eq!(from_client(vip, "127.0.0.1", &token), (Ok(sid.clone()), 200), "the first client stays");
    drop(lb);
}
