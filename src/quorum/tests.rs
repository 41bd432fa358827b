//! The engine with three instances in one process, each on its own system database,
//! joined by an in-process transport (the real one, over the trusted channel, is to
//! come): they elect a leader, commit the lease rules, keep their state across a
//! restart, and go on with two of three.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Config, RaftNetwork, RaftNetworkFactory};

use super::store::Storage;
use super::{Lease, LeaseAnswer, LeaseRequest, Raft, TypeConfig};

#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Raft>>>,
}

struct Link {
    router: Router,
    target: u64,
}

impl Router {
    fn get(&self, target: u64) -> Result<Raft, String> {
        self.nodes.lock().unwrap().get(&target).cloned().ok_or_else(|| format!("node {target} is down"))
    }
}

fn unreachable<E: std::error::Error>(e: String) -> RPCError<u64, BasicNode, E> {
    RPCError::Unreachable(openraft::error::Unreachable::new(&std::io::Error::other(e)))
}

impl RaftNetworkFactory<TypeConfig> for Router {
    type Network = Link;
    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Link {
        Link { router: self.clone(), target }
    }
}

impl RaftNetwork<TypeConfig> for Link {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.get(self.target).map_err(unreachable)?;
        raft.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        let raft = self.router.get(self.target).map_err(unreachable)?;
        raft.install_snapshot(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self.router.get(self.target).map_err(unreachable)?;
        raft.vote(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn config() -> Arc<Config> {
    let c =
        Config { heartbeat_interval: 50, election_timeout_min: 150, election_timeout_max: 300, ..Default::default() };
    Arc::new(c.validate().unwrap())
}

async fn start(router: &Router, id: u64, dir: &std::path::Path) -> Raft {
    let storage = Storage::open(dir).unwrap();
    let raft = Raft::new(id, config(), router.clone(), storage.clone(), storage).await.unwrap();
    router.nodes.lock().unwrap().insert(id, raft.clone());
    raft
}

async fn leader(rafts: &[&Raft]) -> u64 {
    for _ in 0..200 {
        for r in rafts {
            if let Some(l) = r.current_leader().await {
                return l;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no leader");
}

async fn write(raft: &Raft, request: LeaseRequest) -> LeaseAnswer {
    raft.client_write(request).await.unwrap().data
}

#[test]
fn lease_rules() {
    let mut lease = Lease::default();
    let acquire = |node: &str, epoch, at_ms| LeaseRequest::Acquire { node: node.into(), epoch, at_ms, ttl_ms: 1000 };
    assert!(matches!(lease.apply(&acquire("a", 1, 0)), LeaseAnswer::Granted { .. }));
    assert!(matches!(lease.apply(&acquire("b", 2, 1000)), LeaseAnswer::Refused { .. }), "not expired yet");
    assert!(matches!(lease.apply(&acquire("b", 2, 1400)), LeaseAnswer::Refused { .. }), "within the clock margin");
    assert!(matches!(lease.apply(&acquire("b", 1, 5000)), LeaseAnswer::Refused { .. }), "not past the holder's epoch");
    let renew = LeaseRequest::Renew { node: "a".into(), epoch: 1, at_ms: 900 };
    assert!(matches!(lease.apply(&renew), LeaseAnswer::Granted { .. }));
    assert!(matches!(lease.apply(&acquire("b", 2, 2300)), LeaseAnswer::Refused { .. }), "renewed at 900");
    assert!(matches!(lease.apply(&acquire("b", 2, 2401)), LeaseAnswer::Granted { .. }));
    let stale = LeaseRequest::Renew { node: "a".into(), epoch: 1, at_ms: 2500 };
    assert!(matches!(lease.apply(&stale), LeaseAnswer::Refused { .. }), "the old holder cannot renew");
    let handover = LeaseRequest::Transfer { from: "b".into(), to: "a".into(), epoch: 3, at_ms: 3000 };
    assert!(matches!(lease.apply(&handover), LeaseAnswer::Granted { .. }));
    assert_eq!((lease.holder.as_deref(), lease.epoch), (Some("a"), 3));
}

#[test]
fn a_synchronous_holder_is_replaced_only_by_its_synchronous_standby() {
    let mut lease = Lease::default();
    let acquire = |node: &str, epoch, at_ms| LeaseRequest::Acquire { node: node.into(), epoch, at_ms, ttl_ms: 1000 };
    let sync = |node: &str, standby: Option<&str>| LeaseRequest::Synchronous {
        node: node.into(),
        epoch: 1,
        synchronous: Some(super::Synchronous { standby: standby.map(str::to_string) }),
    };
    assert!(matches!(lease.apply(&acquire("a", 1, 0)), LeaseAnswer::Granted { .. }));
    assert!(matches!(lease.apply(&sync("b", Some("b"))), LeaseAnswer::Refused { .. }), "only the holder says");
    assert!(matches!(lease.apply(&sync("a", Some("b"))), LeaseAnswer::Granted { .. }));
    assert!(matches!(lease.apply(&acquire("c", 2, 9000)), LeaseAnswer::Refused { .. }), "c is not synchronous");
    assert!(matches!(lease.apply(&sync("a", None)), LeaseAnswer::Granted { .. }), "degraded");
    match lease.apply(&acquire("b", 2, 9000)) {
        LeaseAnswer::Refused { why, .. } => assert!(why.contains("no standby confirmed"), "{why}"),
        other => panic!("granted while degraded: {other:?}"),
    }
    assert!(matches!(lease.apply(&sync("a", Some("b"))), LeaseAnswer::Granted { .. }), "synchronous again");
    assert!(matches!(lease.apply(&acquire("b", 2, 9000)), LeaseAnswer::Granted { .. }));
    assert_eq!(lease.synchronous, None, "the new holder says its own");
    let off = LeaseRequest::Synchronous { node: "b".into(), epoch: 2, synchronous: None };
    assert!(matches!(lease.apply(&off), LeaseAnswer::Granted { .. }));
    assert!(matches!(lease.apply(&acquire("a", 3, 20_000)), LeaseAnswer::Granted { .. }), "not synchronous: anyone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_agree_on_the_lease_and_keep_it_across_a_restart() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let router = Router::default();
    let mut rafts = Vec::new();
    for (i, d) in dirs.iter().enumerate() {
        rafts.push(start(&router, i as u64 + 1, d.path()).await);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::new(format!("node-{i}")))).collect();
    rafts[0].initialize(members).await.unwrap();
    let l = leader(&[&rafts[0], &rafts[1], &rafts[2]]).await;
    let lead = &rafts[(l - 1) as usize];
    let now = 1_000_000;
    let got = write(lead, LeaseRequest::Acquire { node: "a".into(), epoch: 1, at_ms: now, ttl_ms: 1000 }).await;
    assert!(matches!(got, LeaseAnswer::Granted { .. }), "{got:?}");
    let got = write(lead, LeaseRequest::Acquire { node: "b".into(), epoch: 2, at_ms: now + 100, ttl_ms: 1000 }).await;
    assert!(matches!(got, LeaseAnswer::Refused { .. }), "{got:?}");

    // Every instance applies the same record.
    for r in &rafts {
        r.wait(Some(Duration::from_secs(5))).applied_index_at_least(Some(3), "applied").await.unwrap();
    }
    for d in &dirs {
        let lease = Storage::open(d.path()).unwrap().machine().unwrap().lease;
        assert_eq!((lease.holder.as_deref(), lease.epoch), (Some("a"), 1));
    }

    // One instance stops: the other two still commit.
    let down = if l == 3 { 2 } else { 3 };
    router.nodes.lock().unwrap().remove(&down);
    rafts[(down - 1) as usize].shutdown().await.unwrap();
    let up: Vec<&Raft> = rafts.iter().enumerate().filter(|(i, _)| *i as u64 + 1 != down).map(|(_, r)| r).collect();
    let l = leader(&up).await;
    let lead = &rafts[(l - 1) as usize];
    let got = write(lead, LeaseRequest::Renew { node: "a".into(), epoch: 1, at_ms: now + 500 }).await;
    assert!(matches!(got, LeaseAnswer::Granted { .. }), "{got:?}");

    // It comes back from its database: its vote, log and record were kept, and it catches up.
    let back = start(&router, down, dirs[(down - 1) as usize].path()).await;
    back.wait(Some(Duration::from_secs(5))).applied_index_at_least(Some(4), "caught up").await.unwrap();
    let lease = Storage::open(dirs[(down - 1) as usize].path()).unwrap().machine().unwrap().lease;
    assert_eq!(lease.renewed_at_ms, now + 500);
    for r in rafts.iter().chain([&back]) {
        let _ = r.shutdown().await;
    }
}
