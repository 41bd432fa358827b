//! A full sync's swap: a staged database copied into the live one with SQLite's online
//! backup, in one write transaction, through the WAL and back by a checkpoint, written
//! out as it goes ([`Writeback`]).
//!
//! A swap is prepared first, then committed or dropped ([`Swap`]): a thread of its own
//! copies every page but the last into the live file's WAL as soon as the staged file is
//! whole, uncommitted, while the checks that decide about it still run (the sender's and
//! this node's own). Committing copies the last page and commits; dropping rolls the copy
//! back. Until the commit the live data is the old data for every reader and after any
//! crash: SQLite ignores WAL frames no commit follows. While it is prepared, the swap
//! holds the live database's write lock, so it asks `keep_on` between its steps and
//! every [`POLL`] while it waits: a "no" (the caller's: this node was promoted) rolls
//! it back at once, and another writer waits at most that long. Nor does it wait for its
//! decision longer than [`HOLD`]: then it rolls back and lets go too (another writer, an
//! operator's command on the standby, waits at most the copy and that, within SQLite's
//! 5 s busy timeout for 90 MB), and copies everything again once the decision comes.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::writeback::Writeback;
use crate::store::StoreError;

/// Pages copied a step (4 MB of 4 KB pages): `keep_on` is asked between two steps.
const STEP: i32 = 1024;
/// How often `keep_on` is asked, at most, while the swap is prepared or waits.
pub const POLL: Duration = Duration::from_millis(50);
/// How long a prepared swap waits for its decision before it lets go.
pub const HOLD: Duration = Duration::from_secs(2);

/// Opens the live database at a path (created and migrated when needed).
pub type Open = fn(&Path) -> Result<Connection, StoreError>;

/// Whether a prepared swap may go on holding the live database (asked on its thread):
/// `Err` says why not.
pub type KeepOn = Box<dyn FnMut() -> Result<(), String> + Send>;

/// A swap under way on a thread of its own: prepared (every page but the last copied,
/// uncommitted) and waiting for [`Swap::commit`]. Dropped, it is rolled back (the drop
/// waits for that).
pub struct Swap {
    decide: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

impl Swap {
    /// Starts preparing the swap of the database at `staged` into the live one that
    /// `open` opens at `path`, held at most [`HOLD`].
    pub fn prepare(open: Open, path: PathBuf, staged: PathBuf, keep_on: KeepOn) -> Swap {
        Swap::holding(open, path, staged, keep_on, HOLD)
    }

    /// [`Swap::prepare`], held at most `hold`.
    fn holding(open: Open, path: PathBuf, staged: PathBuf, keep_on: KeepOn, hold: Duration) -> Swap {
        let (decide, decided) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("swap".into())
            .spawn(move || run(open(&path)?, (&path, &staged), &decided, keep_on, hold))
            .map_err(|e| tracing::warn!(subsystem = "replication", error = %e, "the swap thread did not start"))
            .ok();
        Swap { decide: Some(decide), thread }
    }

    /// Commits the prepared swap: the last page copied, the transaction committed, the
    /// WAL copied back and emptied. `Err` when it did not happen (the live data is the
    /// old data).
    pub fn commit(mut self) -> Result<(), StoreError> {
        if let Some(decide) = self.decide.take() {
            // A thread that already ended has its reason in its result.
            let _ = decide.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| StoreError::Commit("the swap stopped".into()))?,
            None => Err(StoreError::Commit("the swap did not start".into())),
        }
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        // No decision: the thread rolls the copy back; wait for that.
        self.decide.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The swap's thread: prepare, wait, then commit or roll back (by dropping the backup).
/// Held past `hold`, the prepared copy is rolled back and the whole copy made again
/// once the decision comes.
fn run(
    mut live: Connection,
    (path, staged): (&Path, &Path),
    decided: &mpsc::Receiver<()>,
    mut keep_on: KeepOn,
    hold: Duration,
) -> Result<(), StoreError> {
    let source = crate::store::open_read_only(staged)?;
    let pages: i32 = source.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let mut asked: Option<Instant> = None;
    let mut ask = |force: bool| -> Result<(), StoreError> {
        if !force && asked.is_some_and(|at| at.elapsed() < POLL) {
            return Ok(());
        }
        asked = Some(Instant::now());
        keep_on().map_err(|why| StoreError::Commit(format!("the swap was given up: {why}")))
    };
    let committed = {
        let _early = Writeback::start(path);
        let backup = Backup::new(&source, &mut live)?;
        match prepared(&backup, pages, (decided, hold), &mut ask)? {
            true => finish(&backup).map(|()| true)?,
            // Dropped here: rolled back, the write lock let go.
            false => false,
        }
    };
    // Written out as they are copied, here too: the checkpoint's pages, which its sync
    // would otherwise wait for all at once.
    let _early = Writeback::start(path);
    if !committed {
        tracing::info!(subsystem = "replication", held = ?hold, "a prepared swap let go of the live data; it copies again once decided");
        if decided.recv().is_err() {
            return Err(dropped());
        }
        finish(&Backup::new(&source, &mut live)?)?;
    }
    // Every page went through the WAL. Copy them back now and empty it: a process that
    // opens the database after this one closed would otherwise rebuild the WAL index
    // from the whole file and copy it all again at its first commit.
    live.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

fn dropped() -> StoreError {
    StoreError::Commit("the swap was dropped".into())
}

/// Copies every page of `pages` but the last (the step that copies the last one
/// commits), then waits for the decision. `true`: commit; `false`: no decision within
/// `hold`. A swap dropped meanwhile, or given up by `ask`, is an `Err`.
fn prepared(
    backup: &Backup,
    pages: i32,
    (decided, hold): (&mpsc::Receiver<()>, Duration),
    ask: &mut impl FnMut(bool) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let (mut left, mut go) = (pages, false);
    while left > 1 {
        match decided.try_recv() {
            // Committed meanwhile: the copy goes on to the end.
            Ok(()) => go = true,
            Err(TryRecvError::Disconnected) if !go => return Err(dropped()),
            Err(_) => {}
        }
        ask(false)?;
        match backup.step(STEP.min(left - 1))? {
            StepResult::More => left = backup.progress().remaining,
            other => return Err(unexpected(other)),
        }
    }
    let held = Instant::now();
    while !go {
        if held.elapsed() > hold {
            return Ok(false);
        }
        match decided.recv_timeout(POLL) {
            Ok(()) => go = true,
            Err(RecvTimeoutError::Timeout) => ask(true)?,
            Err(RecvTimeoutError::Disconnected) => return Err(dropped()),
        }
    }
    Ok(true)
}

/// Copies what is left and commits.
fn finish(backup: &Backup) -> Result<(), StoreError> {
    match backup.step(-1)? {
        StepResult::Done => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// A step that neither copied its pages nor finished: the live database stayed locked
/// (another writer held it past the busy timeout), or the copy ended early.
fn unexpected(step: StepResult) -> StoreError {
    StoreError::Commit(match step {
        StepResult::Busy | StepResult::Locked => "the live database stayed locked by another writer".into(),
        other => format!("the copy stopped early ({other:?})"),
    })
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
