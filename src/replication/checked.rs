//! The sender's checked copy of its Core data: the last full snapshot whose checks all
//! passed (`send`: the indexes against the tables and the rows against the change log),
//! kept on disk in `checked/` beside a record of what was proven of it (its size, its
//! digest, where its change log ends, its schema version).
//!
//! A later full sync sends that copy and the change-log entries after it, instead of
//! taking and checking a new snapshot of the whole data: the copy's checks were done
//! once, and only what changed since is new. Nothing the puller proves is given up: it
//! runs its own checks on the bytes (the digest, which the sender also compares with
//! the recorded one as it reads the copy, ties them to the bytes that were checked), and
//! it checks every row the entries touch, as an incremental sync does, ending at the
//! sender's content checksum. The copy is dropped when the log no longer reaches back to
//! it, when its bytes or size no longer match the record, or when its schema is not this
//! release's; a full sync then takes a new snapshot, as before, and keeps that one.
//!
//! What such a sync no longer does is vouch for the sender's live data (a new snapshot's
//! checks would refuse rows changed behind the change log, or a damaged index): the
//! peer gets the copy and the logged changes, never that damage, but the damage must
//! still be found. So each full copy sent from the checked copy is followed by
//! [`recheck`]: a new snapshot of the live data, put through every check a full sync
//! runs on either side (the puller's `quick_check` and schema objects too), on a
//! thread of the lowest priority (it yields to device traffic and to the next sync). It
//! passes: it becomes the checked copy. It fails: the copy is dropped (the next full
//! sync takes a new snapshot, whose checks refuse it) and the node raises
//! `data-damaged`.
//! The copy costs the sender one more copy of its Core data on disk, kept only when the
//! disk has room for it and another snapshot beside it; when the check of the live data
//! cannot run, the copy is dropped too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::coredb::changelog::{self, Position};
use crate::coredb::soundness;
use crate::peer::message::Store;

/// The directory under the data directory that holds the copy and its record.
pub const DIR: &str = "checked";
/// The record of what was proven of the copy.
const RECORD: &str = "core.json";

/// One keeper at a time in this process (only the daemon sends).
static KEEPING: Mutex<()> = Mutex::new(());
/// One check of the live data at a time.
static RECHECKING: AtomicBool = AtomicBool::new(false);

/// A kept copy and what was proven of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// The copy's file name in [`DIR`].
    pub file: String,
    pub size: u64,
    /// Its bytes' digest (`digest`) when they were checked. A record of an older
    /// release (a SHA-256 under another name) does not read: that copy is dropped.
    pub digest: String,
    /// Where its change log ends (its content checksum is this position's).
    pub head: Position,
    /// Its schema version.
    pub schema: i64,
    /// When the snapshot was taken.
    pub taken_at: String,
}

impl Checked {
    /// The copy's path under `data_dir`.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(DIR).join(&self.file)
    }
}

/// Keeps the snapshot at `snapshot` (checked, and sent with digest `digest`) as the
/// checked copy, replacing the one before: the file is synced, moved into [`DIR`], and
/// recorded. Nothing is kept (`Err`, the snapshot left where it is) when the disk has no
/// room for it.
pub fn keep(data_dir: &Path, snapshot: &Path, digest: &str, taken_at: &str) -> Result<Checked, String> {
    let _one = KEEPING.lock().map_err(|_| "another keeper stopped".to_string())?;
    let dir = data_dir.join(DIR);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let size = std::fs::metadata(snapshot).map_err(|e| e.to_string())?.len();
    // The snapshot is already on this file system: moving it takes no room. Kept, it
    // must leave room for the next snapshot of the live data that checks it.
    crate::node::room_for(&dir, size, 1, "the checked copy and a snapshot beside it")?;
    let (head, schema) = {
        let conn = crate::store::open_read_only(snapshot).map_err(|e| e.to_string())?;
        let head = changelog::head(&conn).map_err(|e| e.to_string())?;
        let schema: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| e.to_string())?;
        (head, schema)
    };
    // Written with synchronous=OFF for the transfer: on disk before it is relied upon,
    // a few megabytes at a time (another sync on the disk waits behind one step at most).
    crate::coredb::writeback::sync_in_steps(snapshot).map_err(|e| e.to_string())?;
    let name = format!("core-{}.db", super::snapshot::unique_name().map_err(|e| e.to_string())?);
    std::fs::rename(snapshot, dir.join(&name)).map_err(|e| e.to_string())?;
    let checked =
        Checked { file: name, size, digest: digest.to_string(), head, schema, taken_at: taken_at.to_string() };
    let text = serde_json::to_vec_pretty(&checked).map_err(|e| e.to_string())?;
    let temporary = dir.join(format!("{RECORD}.new"));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::File::open(&temporary)?.sync_all())
        .and_then(|()| std::fs::rename(&temporary, dir.join(RECORD)))
        .and_then(|()| std::fs::File::open(&dir)?.sync_all())
        .map_err(|e| e.to_string())?;
    // The copy before, and any a crash left between its move and its record.
    remove_copies(&dir, Some(&checked.file));
    Ok(checked)
}

/// The kept copy, opened, when there is one that can be sent: recorded, of this size,
/// of this release's schema. A record that does not hold is dropped, with its copy. (A
/// copy replaced between reading its record and opening it is not there to send: the
/// caller takes a new snapshot.)
pub fn find(data_dir: &Path) -> Option<(Checked, std::fs::File)> {
    if !data_dir.join(DIR).join(RECORD).exists() {
        return None;
    }
    let Some(checked) = record(data_dir) else {
        drop_copy(data_dir, "its record does not read");
        return None;
    };
    let file = std::fs::File::open(checked.path(data_dir)).ok()?;
    let size = file.metadata().map(|m| m.len()).ok();
    let problem = if size != Some(checked.size) {
        Some(format!("its file has {size:?} bytes, {} were checked", checked.size))
    } else if checked.schema != crate::coredb::SCHEMA_VERSION {
        Some(format!("it has schema {}, this release {}", checked.schema, crate::coredb::SCHEMA_VERSION))
    } else {
        None
    };
    match problem {
        None => Some((checked, file)),
        Some(why) => {
            drop_copy(data_dir, &why);
            None
        }
    }
}

/// The record of the kept copy, as it stands (nothing checked, nothing dropped): what
/// `show replication` shows.
pub fn recorded(data_dir: &Path) -> Option<Checked> {
    record(data_dir)
}

/// Removes the kept copy and its record, saying why in the log.
pub fn drop_copy(data_dir: &Path, why: &str) {
    let Ok(_one) = KEEPING.lock() else { return };
    let dir = data_dir.join(DIR);
    let _ = std::fs::remove_file(dir.join(RECORD));
    remove_copies(&dir, None);
    tracing::info!(subsystem = "replication", reason = %why, "checked copy of the Core data dropped");
}

/// Removes every copy in `dir` but `keep` (a sender still reading one keeps its open
/// file).
fn remove_copies(dir: &Path, keep: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".db") && Some(name.as_str()) != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A snapshot's content checksum (from its rows) and what its checks found: `ok`, or
/// the first problem; `views` see the snapshot (`snapshot::Taken`). The Core data's
/// rows must also have the checksum its own change log holds, which later incremental
/// syncs build on.
pub fn verdict(views: Vec<rusqlite::Connection>, store: Store) -> Result<(String, Option<String>), String> {
    let logged = match (store, views.first()) {
        (Store::Core, Some(view)) => Some(changelog::head(view).map_err(|e| e.to_string())?.checksum),
        _ => None,
    };
    let content = match soundness::check_views(views).map_err(|e| e.to_string())? {
        Ok(content) => content,
        Err(problem) => return Ok((String::new(), Some(problem))),
    };
    if let Some(logged) = logged.filter(|logged| *logged != content) {
        let problem = format!("its rows have the checksum {content}, its change log says {logged}");
        return Ok((content, Some(problem)));
    }
    Ok((content, Some("ok".into())))
}

/// Starts a check of the live Core data of `data_dir` on a thread of its own at the
/// lowest priority, unless one runs: a new snapshot, checked as a full sync checks one,
/// kept as the checked copy when it passes; when it does not, the copy is dropped and
/// the node raises `data-damaged`.
pub fn recheck(data_dir: &Path) {
    /// Holds [`RECHECKING`] while a check runs, and lets go of it however the check ends
    /// (a panic too: a flag left set would stop every later check).
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            RECHECKING.store(false, Ordering::SeqCst);
        }
    }
    if RECHECKING.swap(true, Ordering::SeqCst) {
        return;
    }
    let running = Running;
    let (dir, data_dir) = (data_dir, data_dir.to_path_buf());
    let spawned = std::thread::Builder::new().name("recheck".into()).spawn(move || {
        let _running = running;
        // SAFETY: `setpriority` on this thread's own id (0 is the calling thread).
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
        match check_live(&data_dir) {
            Ok(Ok(kept)) => tracing::info!(
                subsystem = "replication",
                at = kept.head.seq,
                "live Core data checked; kept as the checked copy"
            ),
            Ok(Err(problem)) => damaged(&data_dir, &problem),
            // Unchecked, the live data has no copy standing for it: the next full copy
            // is a new snapshot, checked on the sync's path.
            Err(e) => drop_copy(&data_dir, &format!("the check of the live data did not run: {e}")),
        }
    });
    // A thread that did not start dropped its closure, and the flag with it; unchecked,
    // the live data has no copy standing for it either.
    if let Err(e) = spawned {
        drop_copy(dir, &format!("the check of the live data did not start: {e}"));
    }
}

/// A new snapshot of the live data, checked: kept when it passes, else the problem.
fn check_live(data_dir: &Path) -> Result<Result<Checked, String>, String> {
    let (dir, db) = (data_dir.join("snapshots"), data_dir.join(crate::coredb::CORE_DB));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let live = std::fs::metadata(&db).map_err(|e| e.to_string())?.len();
    crate::node::room_for(&dir, live, 1, "a check of the live data")?;
    let taken_at = crate::store::now_text();
    let checking =
        |views| std::thread::Builder::new().name("recheck".into()).spawn(move || verdict(views, Store::Core));
    let (taken, checking) =
        super::snapshot::take(&db, &dir, soundness::threads(), checking).map_err(|e| e.to_string())?;
    let (path, digest) = (taken.path, taken.digest);
    let checked = checking
        .map_err(|e| e.to_string())
        .and_then(|thread| thread.join().map_err(|_| "the check of the live data stopped".to_string())?);
    // The sender's checks, and the puller's own (structure, schema version and objects),
    // which a peer runs on the copy too: a copy kept here has passed them all; its bytes
    // must still be those written.
    let outcome = checked.and_then(|(_, found)| match found.as_deref() {
        Some("ok") => match super::apply::verify(&path, Store::Core) {
            Ok(_) => keep_unchanged(data_dir, &path, &digest, &taken_at).map(Ok),
            Err(refused) => Ok(Err(refused.to_string())),
        },
        other => Ok(Err(other.unwrap_or("no verdict").to_string())),
    });
    if !matches!(outcome, Ok(Ok(_))) {
        let _ = std::fs::remove_file(&path);
    }
    outcome
}

/// [`keep`]s the snapshot at `path` when its bytes are still those written (`digest`).
fn keep_unchanged(data_dir: &Path, path: &Path, digest: &str, taken_at: &str) -> Result<Checked, String> {
    let read = super::digest::of_file(path).map_err(|e| e.to_string())?;
    if read != digest {
        return Err(format!("the snapshot's bytes changed on disk (digest {read}, written {digest})"));
    }
    keep(data_dir, path, digest, taken_at)
}

/// The live data failed its check: no checked copy stands for it any more, and the
/// operator is told.
fn damaged(data_dir: &Path, problem: &str) {
    drop_copy(data_dir, &format!("the live data failed its check: {problem}"));
    tracing::error!(subsystem = "replication", %problem, "the live Core data failed its check");
    match crate::node::Node::open(data_dir) {
        Ok(mut node) => {
            let detail = format!("The live Core data failed its check: {problem}");
            let _ = node.store.ha_log("error", &format!("CORE DATA DAMAGED: {problem}"));
            crate::notify::raise_or_log(&mut node.store, &node.id, &crate::notify::Event::DataDamaged { detail });
        }
        Err(e) => tracing::error!(subsystem = "replication", error = %e, "cannot raise data-damaged"),
    }
}

/// The record, when it reads and names a plain file of [`DIR`].
fn record(data_dir: &Path) -> Option<Checked> {
    let text = std::fs::read(data_dir.join(DIR).join(RECORD)).ok()?;
    let checked: Checked = serde_json::from_slice(&text).ok()?;
    let plain = !checked.file.is_empty()
        && checked.file.ends_with(".db")
        && checked.file.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !checked.file.starts_with('.');
    plain.then_some(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coredb::generate::{Counts, generate};
    use crate::coredb::{CORE_DB, CoreDb};

    fn snapshot_of(dir: &Path) -> PathBuf {
        let mut db = CoreDb::open(dir).unwrap();
        generate(&mut db, &Counts { users: 5, devices: 20, events: 50, apps: 2, policies: 2, seed: 1 }).unwrap();
        let snapshots = dir.join("snapshots");
        std::fs::create_dir_all(&snapshots).unwrap();
        super::super::snapshot::take(&dir.join(CORE_DB), &snapshots, 1, drop).unwrap().0.path
    }

    #[test]
    fn a_kept_copy_is_found_and_replaces_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let first = keep(dir.path(), &snapshot_of(dir.path()), "aa", "t").unwrap();
        assert_eq!(find(dir.path()).map(|f| f.0), Some(first.clone()));
        assert_eq!(first.schema, crate::coredb::SCHEMA_VERSION);
        let second_snapshot =
            super::super::snapshot::take(&dir.path().join(CORE_DB), &dir.path().join("snapshots"), 1, drop).unwrap();
        let second = keep(dir.path(), &second_snapshot.0.path, "bb", "t").unwrap();
        assert_eq!(find(dir.path()).map(|f| f.0), Some(second.clone()));
        assert!(!first.path(dir.path()).exists(), "the copy before is removed");
        assert!(second.path(dir.path()).exists());
    }

    #[test]
    fn a_copy_whose_record_does_not_hold_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let kept = keep(dir.path(), &snapshot_of(dir.path()), "aa", "t").unwrap();
        // A file of another size than the one checked.
        std::fs::OpenOptions::new().append(true).open(kept.path(dir.path())).unwrap().set_len(kept.size + 1).unwrap();
        assert!(find(dir.path()).is_none());
        assert!(!kept.path(dir.path()).exists());
        // A record naming a file outside the directory is not followed.
        let record = Checked { file: "../core.db".into(), ..kept };
        std::fs::write(dir.path().join(DIR).join(RECORD), serde_json::to_vec(&record).unwrap()).unwrap();
        assert!(find(dir.path()).is_none());
        std::fs::write(dir.path().join(DIR).join(RECORD), b"{ not json").unwrap();
        assert!(find(dir.path()).is_none());
    }

    #[test]
    fn a_snapshot_whose_bytes_changed_since_they_were_written_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let snapshot = snapshot_of(dir.path());
        let written = super::super::digest::of_file(&snapshot).unwrap();
        let other = super::super::digest::Digest::new().finish();
        let why = keep_unchanged(dir.path(), &snapshot, &other, "t").unwrap_err();
        assert!(why.starts_with("the snapshot's bytes changed on disk"), "{why}");
        assert!(find(dir.path()).is_none(), "nothing kept");
        let kept = keep_unchanged(dir.path(), &snapshot, &written, "t").unwrap();
        assert_eq!(kept.digest, written);
        assert_eq!(find(dir.path()).map(|f| f.0), Some(kept));
    }

    #[test]
    fn a_copy_recorded_by_an_older_release_is_dropped_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let kept = keep(dir.path(), &snapshot_of(dir.path()), "aa", "t").unwrap();
        // The record as the release before wrote it: its SHA-256, under its own name.
        let mut old = serde_json::to_value(&kept).unwrap();
        let fields = old.as_object_mut().unwrap();
        fields.remove("digest");
        fields.insert("sha256".into(), "bb".repeat(32).into());
        std::fs::write(dir.path().join(DIR).join(RECORD), serde_json::to_vec(&old).unwrap()).unwrap();
        assert!(find(dir.path()).is_none());
        assert!(!kept.path(dir.path()).exists(), "its copy is removed with it");
    }
}
