//! `coresh serve`: turns a data directory into a running Core node. A few long-lived
//! parts share one shutdown signal: the HTTP server, the SSH server (whose peers'
//! requests the daemon answers: `answers` for replication, `mate` for what a node does
//! for its mate, `handover` for its primary's switchover), the `heartbeat`, the sync
//! `scheduler`, the `stream` from its primary (continuous replication) and the streams
//! it feeds (`followers`), the `switchover` runner, the mail sender, the Core data
//! writer thread and the node-view watcher; `logging` sets up where the daemon's log
//! goes. SIGTERM or SIGINT stops accepting, lets requests in flight finish, commits what
//! was queued and closes the databases.

mod answers;
mod commits;
mod followers;
mod handover;
mod heartbeat;
mod logging;
mod mate;
mod quorum;
mod scheduler;
mod stream;
mod switchover;
mod syslog;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::coredb::CoreDb;
use crate::coredb::writer::Writer;
use crate::http::AppState;
use crate::node::Node;

/// Default HTTP address of a development node (the appliance uses 443/8443).
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// Default SSH address of a development node (the appliance uses 22).
pub const DEFAULT_SSH: &str = "127.0.0.1:2222";

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// Where the HTTP endpoints listen.
    pub http_listen: SocketAddr,
    /// Where the SSH server (peers) listens.
    pub ssh_listen: SocketAddr,
    /// Log level filter (`info`, `debug`, `coresh=debug`, ...).
    pub log_level: String,
    /// Server certificate chain and private key (PEM) for HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long clients may take.
    pub limits: Limits,
}

/// How long clients may take before the daemon hangs up on them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// An HTTP client's TLS handshake, request headers (an idle keep-alive connection
    /// too) and body.
    pub http_timeout: std::time::Duration,
    /// An SSH client, from connecting to having logged in.
    pub login_grace: std::time::Duration,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: ServeOptions) -> anyhow::Result<()> {
    keep_freed_memory();
    crate::ssh::console::pin_shell();
    let node = Node::open(&options.data_dir)?;
    logging::init(&options.data_dir, &options.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("tokio runtime")?;
    runtime.block_on(serve(node, options))
}

/// Tells glibc's malloc to keep freed memory instead of handing it back after every
/// burst: the writer thread frees what a batch used and grows again at the next one, and
/// each shrink was an `madvise` whose TLB shootdown interrupted every core (7% of the
/// writer's samples under full check-in load, with the page faults that followed). The
/// daemon's memory then stays at its high-water mark (up to 64 MiB a thread arena more).
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

async fn serve(node: Node, options: ServeOptions) -> anyhow::Result<()> {
    let signals = Signals::install();
    // What syncs and snapshots an earlier run cut short left on disk goes first.
    for path in crate::replication::lock::clear_leftovers(&node.data_dir) {
        tracing::info!(subsystem = "replication", path = %path.display(), "removed what an interrupted sync left");
    }
    let (tls, cert_sha256) = match &options.tls {
        Some((cert, key)) => {
            let (acceptor, fingerprint) = crate::http::tls::acceptor(cert, key)?;
            (Some(acceptor), Some(fingerprint))
        }
        None => (None, None),
    };
    let mut core = CoreDb::open(&node.data_dir)?;
    core.set_origin(&node.id);
    let checkpoints = CoreDb::open(&node.data_dir)?;
    let watcher = crate::node::view::Watcher::start(node.data_dir.clone(), node.id.clone())?;
    let view = watcher.view.clone();
    let atlas = Box::new(move || view.borrow().settings.atlas);
    // Every commit of the Core data wakes the streams to this node's followers, and its
    // answers wait at the gate while a standby is synchronous.
    let (commits, committed) = watch::channel(0u64);
    let commits = Arc::new(commits);
    // With a quorum, the gate degrades only once the lease records it (`serve::quorum`).
    let quorum = quorum::Quorum::default();
    let permit = quorum::degrade_permit(quorum.clone(), watcher.view.clone(), tokio::runtime::Handle::current());
    let gate =
        commits::gate(node.data_dir.clone(), node.id.clone(), permit).context("starting the synchronous gate")?;
    let after = Box::new(commits::Commits { wake: commits.clone(), gate: gate.clone() });
    let (writer, writer_thread) =
        Writer::spawn(core, checkpoints, atlas, after).context("starting the Core data writer")?;
    let listener = TcpListener::bind(options.http_listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.http_listen))?;
    let local = listener.local_addr()?;
    let status_page = crate::peer::hello::StatusPage { port: local.port(), tls: tls.is_some(), cert_sha256 };
    let host_key = crate::node::keys::host_key(&node.data_dir)?;
    let key_fingerprint = crate::node::keys::fingerprint(host_key.public_key());
    let ssh_listener = TcpListener::bind(options.ssh_listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.ssh_listen))?;
    let ssh_local = ssh_listener.local_addr()?;
    let settings = watcher.view.borrow().settings.clone();
    tracing::info!(
        node = %node.id,
        hostname = %settings.hostname,
        mode = %settings.mode,
        http = %local,
        tls = tls.is_some(),
        ssh = %ssh_local,
        key = %key_fingerprint,
        data_dir = %node.data_dir.display(),
        "coresh node serving"
    );
    let hold = Arc::new(crate::http::hold::WriteHold::default());
    let counters = Arc::new(crate::http::metrics::Counters::default());
    let state = Arc::new(AppState {
        view: watcher.view.clone(),
        writer,
        enrollment_ok: Default::default(),
        enrollment_guard: Default::default(),
        hold: hold.clone(),
        metrics: counters.clone(),
        data_dir: node.data_dir.clone(),
    });
    let (stop, stopped) = watch::channel(false);
    let http =
        tokio::spawn(crate::http::serve(listener, state.clone(), tls, options.limits.http_timeout, stopped.clone()));
    let schedule = tokio::spawn(scheduler::run(watcher.view.clone(), node.data_dir.clone(), stopped.clone()));
    let syslog = tokio::spawn(syslog::run(watcher.view.clone(), node.data_dir.clone(), stopped.clone()));
    let heartbeat =
        heartbeat::spawn(watcher.view.clone(), node.data_dir.clone(), stopped.clone(), quorum.clone(), counters)
            .context("starting the heartbeat")?;
    let streaming = stream::spawn(watcher.view.clone(), node.data_dir.clone(), commits.clone(), stopped.clone())
        .context("starting the stream")?;
    let followers = Arc::new(followers::Followers::default());
    let engine = tokio::spawn(quorum::run(
        quorum.clone(),
        hold.clone(),
        gate.clone(),
        watcher.view.clone(),
        node.data_dir.clone(),
        stopped.clone(),
    ));
    let (switchovers, switchover_thread) = switchover::spawn(switchover::Parts {
        view: watcher.view.clone(),
        data_dir: node.data_dir.clone(),
        hold: hold.clone(),
        followers: followers.clone(),
        stop: stopped.clone(),
    })
    .context("starting the switchover runner")?;
    let mailer = crate::notify::sender::spawn(node.data_dir.clone(), stopped).context("starting the mail sender")?;
    let ssh_config = Arc::new(russh::server::Config {
        keys: vec![host_key],
        auth_rejection_time: std::time::Duration::from_millis(300),
        auth_rejection_time_initial: Some(std::time::Duration::ZERO),
        // Consoles have their own idle timeout (exec-timeout); dead clients are found
        // by keepalives.
        inactivity_timeout: None,
        keepalive_interval: Some(std::time::Duration::from_secs(30)),
        keepalive_max: 3,
        methods: russh::MethodSet::from(&[russh::MethodKind::PublicKey, russh::MethodKind::Password][..]),
        // Replication is request and answer: Nagle's algorithm would hold each answer
        // back for the peer's delayed ACK.
        nodelay: true,
        ..Default::default()
    });
    let ssh_server = crate::ssh::server::SshServer {
        view: watcher.view.clone(),
        data_dir: node.data_dir.clone(),
        status_page: Some(status_page.clone()),
        followers: Arc::default(),
        peers: Arc::default(),
        respond: Arc::new(answers::Answers {
            data_dir: node.data_dir.clone(),
            view: watcher.view.clone(),
            status_page: Some(status_page),
            guesses: Default::default(),
            commits: committed,
            gate,
            shutdown: stop.subscribe(),
            followers,
            handovers: Default::default(),
            hold,
            quorum: quorum.clone(),
            switchovers,
        }),
        gate: Arc::new(crate::ssh::login::Gate::new(node.data_dir.clone(), watcher.view.clone())),
        consoles: Arc::default(),
    };
    // Sessions recorded by an earlier run of the daemon are gone with it.
    node.store.sessions_clear()?;
    let ssh = tokio::spawn(crate::ssh::listen::run(
        ssh_listener,
        ssh_config,
        ssh_server,
        options.limits.login_grace,
        stop.subscribe(),
    ));
    signals.wait().await;
    let _ = stop.send(true);
    let _ = ssh.await;
    let _ = http.await;
    let _ = engine.await;
    let _ = schedule.await;
    let _ = syslog.await;
    let _ = tokio::task::spawn_blocking(move || heartbeat.join()).await;
    let _ = tokio::task::spawn_blocking(move || streaming.join()).await;
    let _ = tokio::task::spawn_blocking(move || mailer.join()).await;
    let _ = tokio::task::spawn_blocking(move || switchover_thread.join()).await;
    // Last handle to the writer: it commits what is queued and ends.
    drop(state);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    watcher.stop();
    tracing::info!(node = %node.id, "coresh node stopped");
    Ok(())
}

/// SIGTERM and SIGINT, watched from the start of the daemon: one that comes while it
/// is still starting is a clean stop too, not the default action (death by signal).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let watch = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| tracing::error!(error = %e, "cannot watch {name}")).ok()
        };
        Signals { term: watch(SignalKind::terminate(), "SIGTERM"), int: watch(SignalKind::interrupt(), "SIGINT") }
    }

    async fn wait(mut self) {
        async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = next(&mut self.term) => tracing::info!("SIGTERM: shutting down"),
            () = next(&mut self.int) => tracing::info!("SIGINT: shutting down"),
        }
    }
}
