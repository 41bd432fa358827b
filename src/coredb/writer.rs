//! The daemon's single writer of the Core data: device traffic is queued here and
//! applied in batches, one transaction (one fsync) per batch, each operation in its
//! own savepoint so one bad request cannot undo another. A request is answered only
//! after its batch is committed: an acknowledged check-in is on disk; and, with a
//! synchronous standby, only once the [`AfterCommit`] lets the answers go. WAL checkpoints
//! run on a thread of their own, so that copying pages back into the database file
//! never stalls the writer (and with it every device waiting for an answer).
//!
//! A checkpoint beside a writer that never pauses never catches up with it: SQLite starts
//! the WAL over only when a write begins with every frame copied, and there are always
//! frames newer than the checkpoint's pass. Under steady traffic the WAL would grow
//! without end (640 MB in 20 s at 5,000 check-ins/s). So once the WAL holds more than
//! [`RESTART_FRAMES`], the writer copies, between two batches, the few frames written
//! since the checkpointer's pass; its next batch then writes from the WAL's start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{CheckIn, CheckedIn, CoreDb, DeviceError, Registered, Registration, Writes, token_hash};
use crate::store::StoreError;

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 512;
/// Operations waiting before senders are made to wait.
const QUEUE: usize = 8192;

/// A write the daemon asks for.
enum Op {
    Register { reg: Registration, token: String },
    CheckIn { token_hash: [u8; 32], report: CheckIn },
}

/// What a write produced.
enum Done {
    Registered(Registered),
    CheckedIn(CheckedIn),
}

type Reply = oneshot::Sender<Result<Done, DeviceError>>;

/// What follows each commit: told the change number the batch made (`None` when it
/// changed nothing), it sends `answers` (the batch's replies) when they may go.
pub trait AfterCommit: Send {
    fn committed(&self, seq: Option<i64>, answers: Answers);
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<(Op, Reply)>,
}

impl Writer {
    /// Starts the writer thread on `db` and its checkpointer on `checkpoints` (a second
    /// connection to the same database). Both end when every handle is dropped, after
    /// applying what was queued.
    /// `atlas` tells, before each batch, whether Atlas is enabled (its store is then
    /// attached and check-ins record their metrics there); `after` hears each batch once
    /// it is on disk and decides when its answers go.
    pub fn spawn(
        db: CoreDb,
        checkpoints: CoreDb,
        atlas: Box<dyn Fn() -> bool + Send>,
        after: Box<dyn AfterCommit>,
    ) -> std::io::Result<(Writer, std::thread::JoinHandle<()>)> {
        let (queue, rx) = mpsc::channel(QUEUE);
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let restart = Arc::new(AtomicBool::new(false));
        let wanted = Arc::clone(&restart);
        let checkpointer = std::thread::Builder::new()
            .name("core-checkpoint".into())
            .spawn(move || checkpoint_loop(&checkpoints, &finished, &wanted))?;
        let thread = std::thread::Builder::new().name("core-writer".into()).spawn(move || {
            run(db, rx, atlas, after, &restart);
            drop(done);
            let _ = checkpointer.join();
        })?;
        Ok((Writer { queue }, thread))
    }

    async fn submit(&self, op: Op) -> Result<Done, DeviceError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || DeviceError::Store(StoreError::Stopped);
        self.queue.send((op, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Registers a device with `token` (the enrollment secret was checked by the caller).
    pub async fn register(&self, reg: Registration, token: String) -> Result<Registered, DeviceError> {
        match self.submit(Op::Register { reg, token }).await? {
            Done::Registered(r) => Ok(r),
            Done::CheckedIn(_) => Err(DeviceError::Invalid("unexpected answer".into())),
        }
    }

    /// Records a check-in of the device holding `token`.
    pub async fn check_in(&self, token: &str, report: CheckIn) -> Result<CheckedIn, DeviceError> {
        match self.submit(Op::CheckIn { token_hash: token_hash(token), report }).await? {
            Done::CheckedIn(c) => Ok(c),
            Done::Registered(_) => Err(DeviceError::Invalid("unexpected answer".into())),
        }
    }

    /// Whether the writer thread is still taking work.
    pub fn is_running(&self) -> bool {
        !self.queue.is_closed()
    }
}

/// A batch's answers: `Ok` sends each its outcome; `Err(why)` answers each write that
/// was not confirmed (a synchronous standby never had it) with
/// [`DeviceError::Unconfirmed`] instead.
pub type Answers = Box<dyn FnOnce(Result<(), String>) + Send>;

/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// WAL frames (of a 4 KiB page each) past which the writer has the WAL start over: 32
/// MiB, about 5,000 check-ins. Each time costs the writer one copy of the frames since
/// the checkpointer's last pass and a sync of the database file.
const RESTART_FRAMES: i64 = 8192;

/// Frames a pass may find written during the pass before it and still hand the rest to
/// the writer; more, and the checkpointer makes another pass first (it copies while the
/// writer goes on writing, so each pass has less to do).
const LEFT_TO_WRITER: i64 = 512;

/// Passes the checkpointer makes at most before handing the rest to the writer.
const PASSES: usize = 4;

/// Copies the WAL back every [`CHECKPOINT_EVERY`]; sets `restart` when the WAL has grown
/// past [`RESTART_FRAMES`] (the writer clears it), after passes that leave the writer
/// little to copy.
fn checkpoint_loop(db: &CoreDb, finished: &std::sync::mpsc::Receiver<()>, restart: &AtomicBool) {
    loop {
        let stop = !matches!(finished.recv_timeout(CHECKPOINT_EVERY), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
        // Frames the pass before copied.
        let mut copied_before = 0;
        for pass in 1..=PASSES {
            match db.checkpoint() {
                Ok((frames, _)) if frames <= RESTART_FRAMES => break,
                Ok((frames, copied)) => {
                    if frames - copied_before <= LEFT_TO_WRITER || pass == PASSES {
                        // What the passes copied is not synced yet (SQLite syncs only a
                        // pass that copies every frame): written out here, it does not
                        // hold up the writer's sync.
                        if let Err(e) = db.flush_file_system() {
                            tracing::warn!(subsystem = "core-writer", error = %e, "cannot flush the Core data");
                        }
                        restart.store(true, Ordering::Release);
                        break;
                    }
                    copied_before = copied;
                }
                Err(e) => {
                    tracing::warn!(subsystem = "core-writer", error = %e, "checkpoint failed");
                    break;
                }
            }
        }
        if stop {
            return;
        }
    }
}

/// Has the WAL start over when the checkpointer asked: copies what was written since its
/// pass, so that the next write, finding every frame copied, begins at the WAL's start.
/// (A reader still on older frames can keep it from starting over; the checkpointer asks
/// again after its next pass.)
fn restart_wal(db: &CoreDb, restart: &AtomicBool) {
    if restart.swap(false, Ordering::AcqRel)
        && let Err(e) = db.checkpoint()
    {
        tracing::warn!(subsystem = "core-writer", error = %e, "checkpoint failed");
    }
}

fn run(
    mut db: CoreDb,
    mut rx: mpsc::Receiver<(Op, Reply)>,
    atlas: Box<dyn Fn() -> bool + Send>,
    after: Box<dyn AfterCommit>,
    restart: &AtomicBool,
) {
    let mut head = db.log_head().map(|h| h.seq).ok();
    let mut attached = false;
    if let Err(e) = db.leave_checkpoints_to_others() {
        tracing::warn!(subsystem = "core-writer", error = %e, "automatic checkpoints stay on");
    }
    let mut batch: Vec<(Op, Reply)> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let wanted = atlas();
        if wanted != attached {
            match db.attach_atlas(wanted) {
                Ok(()) => attached = wanted,
                Err(e) => tracing::warn!(subsystem = "core-writer", error = %e, "cannot switch the Atlas store"),
            }
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let applied = db.write(|w| {
            Ok::<_, StoreError>(batch.iter().map(|(op, _)| apply(w, op, &now, attached)).collect::<Vec<_>>())
        });
        match applied {
            Ok(outcomes) => {
                let now = db.log_head().map(|h| h.seq).ok();
                let made = now.filter(|seq| Some(*seq) != head);
                head = now.or(head);
                let replies: Vec<(Reply, Result<Done, DeviceError>)> =
                    batch.drain(..).map(|(_, reply)| reply).zip(outcomes).collect();
                after.committed(
                    made,
                    Box::new(move |confirmed: Result<(), String>| {
                        for (reply, outcome) in replies {
                            let outcome = match (&confirmed, outcome) {
                                (Err(why), Ok(_)) => Err(DeviceError::Unconfirmed(why.clone())),
                                (_, outcome) => outcome,
                            };
                            let _ = reply.send(outcome);
                        }
                    }),
                );
            }
            Err(e) => {
                tracing::error!(subsystem = "core-writer", error = %e, "commit failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(DeviceError::Store(StoreError::Commit(e.to_string()))));
                }
            }
        }
        restart_wal(&db, restart);
    }
}

/// Applies one operation in its own savepoint.
fn apply(w: &Writes, op: &Op, now: &str, atlas: bool) -> Result<Done, DeviceError> {
    w.op(|w| match op {
        Op::Register { reg, token } => w
            .register_device(reg, &token_hash(token), now)
            .map(|device_id| Done::Registered(Registered { device_id, token: token.clone() })),
        Op::CheckIn { token_hash, report } => w.check_in(token_hash, report, now).and_then(|c| {
            let c = c.ok_or(DeviceError::Unauthorized)?;
            if let (true, Some(battery)) = (atlas, report.battery) {
                w.atlas_metric(c.device_id, "battery", f64::from(battery), now)?;
            }
            Ok(Done::CheckedIn(c))
        }),
    })
}
