//! The guide's topologies with each Core on a network host of its own (network
//! namespaces, see `common::lab`): two Cores across two data centres, three Cores with a
//! DR node, a partition between the Cores while both stay up, and a flapping link. Needs
//! root (CI runs as root).

mod common;

use std::time::Duration;

use common::lab::Lab;
use common::{Daemon, TestNode, generate};

/// Trust both ways over the replication network.
fn trust(lab: &Lab, x: (&str, &TestNode), y: (&str, &TestNode)) {
    x.1.trust(&lab.peer(y.0), &y.1.local_key()).expect_code(0);
    y.1.trust(&lab.peer(x.0), &x.1.local_key()).expect_code(0);
}

/// Two Cores, `a` primary (watching its peers) and `b` its standby with a fast
/// heartbeat, synced once; the daemons first, so they stop before the lab goes.
struct TwoCores {
    da: Daemon,
    db: Daemon,
    a: TestNode,
    b: TestNode,
    lab: Lab,
}

fn two_cores() -> TwoCores {
    let lab = Lab::new(&["a", "b"]);
    let (a, b) = (lab.node("a"), lab.node("b"));
    generate(&a, "100", "100");
    watch(&a);
    trust(&lab, ("a", &a), ("b", &b));
    let da = lab.serve("a", &a);
    let db = lab.serve("b", &b);
    b.follow(&lab.peer("a"), "promote");
    sync(&lab, &b, "a").expect_code(0);
    db.eventually("the heartbeat crosses the data centres", |_| reaches_its_primary(&b));
    TwoCores { da, db, a, b, lab }
}

/// The guide's three Cores: `a` primary, `b` its standby, `c` a DR node following `b`,
/// each with a fast heartbeat and synced once; named core-a, core-b and core-c.
struct ThreeCores {
    da: Daemon,
    db: Daemon,
    dc: Daemon,
    a: TestNode,
    b: TestNode,
    c: TestNode,
    lab: Lab,
}

fn three_cores() -> ThreeCores {
    let lab = Lab::new(&["a", "b", "c"]);
    let (a, b, c) = (lab.node("a"), lab.node("b"), lab.node("c"));
    for (node, name) in [(&a, "core-a"), (&b, "core-b"), (&c, "core-c")] {
        node.run(&["enable", "configure terminal", &format!("hostname {name}")]).expect_code(0);
    }
    generate(&a, "200", "200");
    trust(&lab, ("a", &a), ("b", &b));
    trust(&lab, ("b", &b), ("c", &c));
    let da = lab.serve("a", &a);
    let db = lab.serve("b", &b);
    let dc = lab.serve("c", &c);
    b.follow(&lab.peer("a"), "promote");
    c.follow(&lab.peer("b"), "promote");
    sync(&lab, &b, "a").expect_code(0);
    sync(&lab, &c, "b").expect_code(0);
    ThreeCores { da, db, dc, a, b, c, lab }
}

/// HA on for a primary, watching its peers every second.
fn watch(node: &TestNode) {
    node.ha(&["heartbeat interval 1", "service enable"]).expect_code(0);
}

fn sync(lab: &Lab, node: &TestNode, from: &str) -> common::Run {
    node.run(&["enable", &format!("failover sync {}", lab.peer(from))])
}

fn reaches_its_primary(node: &TestNode) -> bool {
    node.reaches_a_peer()
}

fn ha_mode(d: &Daemon) -> String {
    d.get("/hastatus.html").body
}

#[test]
fn two_cores_across_two_data_centres() {
    let TwoCores { da, db, a, b, lab } = two_cores();
    // Devices check in on the primary; one check-in never reaches the secondary.
    assert_eq!(da.check_in(1, 1), 200);
    assert!(sync(&lab, &b, "a").stdout.contains("completed: changes"));
    assert_eq!(da.check_in(2, 1), 200);

    // The primary's host dies.
    da.kill_9();
    db.eventually("the secondary takes over", |d| ha_mode(d) == "MOBILEIRON-STATUS: OK (Mode: Primary)");
    assert_eq!(db.check_in(3, 1), 200, "device traffic continues on the new primary");

    // The old primary returns, learns of the newer one, and stops claiming the role.
    let da = lab.serve("a", &a);
    da.eventually("the old primary reports itself stale", |d| ha_mode(d) == "MOBILEIRON-STATUS: ERROR (Mode: Stale)");
    assert_eq!(da.check_in(4, 1), 503);

    // Manual recovery; the one check-in the secondary never got is kept, not lost.
    a.run(&["enable", "failover mode secondary"]).expect_code(0);
    let run = sync(&lab, &a, "b");
    run.expect_code(0);
    assert!(run.stdout.contains("% 1 changes (2 rows) this node made were not on"), "{}", run.stdout);
    a.assert_same_rows(&b);
}

#[test]
fn three_cores_the_dr_node_follows_the_main_site_secondary() {
    let ThreeCores { da, db, dc, a, b, c, lab } = three_cores();
    dc.eventually("the DR node's heartbeat reaches the main-site secondary", |_| reaches_its_primary(&c));
    assert_eq!(da.check_in(1, 1), 200);
    assert!(sync(&lab, &b, "a").stdout.contains("completed: changes"));
    let run = sync(&lab, &c, "b");
    assert!(run.stdout.contains("completed: changes"), "{}", run.stdout);
    c.assert_same_rows(&a);

    // The main data centre is lost: both its Cores drop off the network.
    lab.isolate("a");
    lab.isolate("b");
    dc.eventually("the DR node takes over", |d| ha_mode(d) == "MOBILEIRON-STATUS: OK (Mode: Primary)");
    let log = c.ha_log();
    assert!(log.contains(&format!("FAILOVER: primary {}", lab.peer("b"))), "{log}");
    c.assert_same_rows(&a);
    assert_eq!(dc.check_in(2, 1), 200, "devices check in at the DR site");
    drop((da, db));
}

#[test]
fn a_partition_between_the_cores_then_manual_recovery() {
    let TwoCores { da, db, a, b, lab } = two_cores();
    // The link between the Cores goes down; both stay up for their clients.
    lab.replication_link("a", false);
    db.eventually("the secondary promotes", |d| ha_mode(d) == "MOBILEIRON-STATUS: OK (Mode: Primary)");
    assert_eq!(ha_mode(&da), "MOBILEIRON-STATUS: OK (Mode: Primary)", "the old primary cannot know yet");
    assert_eq!(da.check_in(1, 1), 200, "a device still reaching the old primary");

    // The link returns: the old primary sees the newer epoch and steps aside.
    lab.replication_link("a", true);
    da.eventually("the old primary reports itself stale", |d| ha_mode(d) == "MOBILEIRON-STATUS: ERROR (Mode: Stale)");
    assert!(a.ha_log().contains("STALE PRIMARY"));
    a.run(&["enable", "failover mode secondary"]).expect_code(0);
    let run = sync(&lab, &a, "b");
    run.expect_code(0);
    assert!(run.stdout.contains("% 1 changes (2 rows) this node made were not on"), "{}", run.stdout);
    a.assert_same_rows(&b);
}

#[test]
fn a_flapping_link_shorter_than_the_threshold_does_not_fail_over() {
    let lab = Lab::new(&["a", "b"]);
    let (a, b) = (lab.node("a"), lab.node("b"));
    trust(&lab, ("a", &a), ("b", &b));
    let _da = lab.serve("a", &a);
    let db = lab.serve("b", &b);
    b.follow(&lab.peer("a"), "promote");
    db.eventually("the heartbeat works", |_| reaches_its_primary(&b));
    // Drops of 1.2 s: at most two failed probes each, below the three that fail over.
    for _ in 0..5 {
        lab.replication_link("a", false);
        std::thread::sleep(Duration::from_millis(1200));
        lab.replication_link("a", true);
        std::thread::sleep(Duration::from_millis(2500));
    }
    let log = b.ha_log();
    assert!(log.contains("failed (1 of 3)"), "the drops were seen:\n{log}");
    assert!(!log.contains("failed (3 of 3)") && !log.contains("FAILOVER"), "{log}");
    assert_eq!(b.failover_json()["mode"], "secondary");
    assert_eq!(ha_mode(&db), "MOBILEIRON-STATUS: OK (Mode: Standby)");
}

#[test]
fn a_load_balancer_in_front_moves_traffic_once_and_not_back() {
    let TwoCores { da, db, a, b: _b, lab } = two_cores();
    let node_id =
        |d: &Daemon| serde_json::from_str::<serde_json::Value>(&d.get("/status.json").body).unwrap()["node_id"].clone();
    let (pid, sid) = (node_id(&da), node_id(&db));
    let front = std::net::SocketAddr::from((
        [127, 0, 0, 1],
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(),
    ));
    let lb = common::haproxy::start(a.path(), front, da.addr, db.addr);
    let token = coresh::coredb::generate::token_for(42, 9);
    common::until("devices reach the primary through the VIP", || {
        lb.served_by().ok() == pid.as_str().map(String::from)
    });
    assert_eq!(lb.checkin(&token), 200);

    // The primary's host dies: the VIP moves to the standby, which takes devices once
    // its heartbeat has promoted it.
    assert_eq!(ha_mode(&db), "MOBILEIRON-STATUS: OK (Mode: Standby)", "no failover before the primary died");
    da.kill_9();
    common::until("the VIP moves to the secondary", || lb.served_by().ok() == sid.as_str().map(String::from));
    common::until("devices check in on the promoted secondary", || lb.checkin(&token) == 200);
    assert_eq!(ha_mode(&db), "MOBILEIRON-STATUS: OK (Mode: Primary)");

    // The old primary returns on its address: stale, and the VIP stays (manual resume).
    let da = lab.serve("a", &a);
    da.eventually("the old primary reports itself stale", |d| ha_mode(d).contains("Mode: Stale"));
    let page = da.get("/status/status.html");
    assert_eq!(
        (page.status, page.body.as_str()),
        (503, "MOBILEIRON-STATUS: ERROR (Mode: Stale)"),
        "no monitor may trust it"
    );
    for _ in 0..10 {
        assert_eq!(lb.served_by().ok(), sid.as_str().map(String::from));
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_cut_of_the_replication_link_alone_does_not_promote_with_an_independent_status_path() {
    let TwoCores { da, db, a: _a, b, lab } = two_cores();
    // The second signal goes over the client network, apart from the replication link.
    let url = format!("http://{}:{}", lab.client("a"), common::lab::HTTP_PORT);
    b.ha(&[&format!("heartbeat status-url {url}")]).expect_code(0);
    db.eventually("the heartbeat uses it", |_| b.ha_log().contains("heartbeat to"));
    lab.replication_link("a", false);
    db.eventually("the cut is seen", |_| b.ha_log().contains("the primary is alive by its status page"));
    std::thread::sleep(Duration::from_secs(5));
    let log = b.ha_log();
    assert!(!log.contains("FAILOVER"), "{log}");
    assert_eq!(ha_mode(&db), "MOBILEIRON-STATUS: OK (Mode: Standby)");
    assert_eq!(da.check_in(1, 1), 200, "devices stay on the one primary");

    // With the replication link back, nothing needs recovering.
    let answered = |b: &TestNode| b.ha_log().matches(": ok (").count();
    let before = answered(&b);
    lab.replication_link("a", true);
    db.eventually("the SSH hello answers again", |_| answered(&b) > before);
    assert_eq!(ha_mode(&da), "MOBILEIRON-STATUS: OK (Mode: Primary)");
}

#[test]
fn a_dr_node_that_loses_only_the_secondary_stays_standby() {
    let ThreeCores { da, db, dc, a, b, c, lab } = three_cores();
    // The chain is visible on every node once the hellos have carried it.
    let chain = |node: &TestNode| node.run(&["show failover | include ^Chain"]).stdout;
    let whole = |node: &TestNode, me: &str| {
        let shown = chain(node);
        shown.contains("core-a (")
            && shown.contains("core-b (")
            && shown.contains(&format!("{me} (this node"))
            && shown.contains("core-c (")
    };
    dc.eventually("the chain reaches every node", |_| {
        whole(&a, "core-a") && whole(&b, "core-b") && whole(&c, "core-c")
    });
    assert!(chain(&c).starts_with("Chain              : core-a (upstream, primary"), "{}", chain(&c));
    assert!(chain(&a).contains("core-b (follower, secondary standby"), "{}", chain(&a));

    // Only the main-site secondary is lost; the primary goes on serving.
    lab.isolate("b");
    dc.eventually("the DR node sees its upstream fail", |_| c.ha_log().contains("FAILOVER REFUSED"));
    let log = c.ha_log();
    assert!(log.contains("the primary core-a further up the chain (via"), "{log}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ha_mode(&dc), "MOBILEIRON-STATUS: OK (Mode: Standby)");
    assert!(!c.ha_log().contains("FAILOVER:"), "{}", c.ha_log());
    assert_eq!(da.check_in(1, 1), 200);

    // Then the primary's site goes too: now the DR node takes over.
    lab.isolate("a");
    dc.eventually("the DR node takes over", |d| ha_mode(d) == "MOBILEIRON-STATUS: OK (Mode: Primary)");
    drop((da, db));
}
