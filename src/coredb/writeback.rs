//! Writing out early what a full sync's swap (`swap`) copies. The swap copies a whole
//! database into the live file through SQLite (into its WAL, then back by a
//! checkpoint), and SQLite syncs each copy to disk when it ends. Left alone, the kernel
//! starts writing only then, so the swap waits for the whole copy twice. [`Writeback`]
//! keeps a thread asking the kernel to start writing out the database file and its WAL
//! (`sync_file_range`, which does not wait) while the copy goes on, so that the disk
//! works beside the copy and SQLite's syncs find little left. Only those two files: the
//! staged copy beside them is removed after the swap and never needs the disk. What is
//! durable, and when, is still SQLite's to say: this only starts writes earlier.
//!
//! The descriptors are SQLite's own, found by device and inode among this process's
//! open files: a descriptor of the database opened and closed here would drop SQLite's
//! locks on it (POSIX ties them to the process, and the first close releases them all).
//!
//! Also [`sync_in_steps`], for a large file of the node's own that must reach the disk
//! (the sender's checked copy): written out a few megabytes at a time, so that another
//! sync on the same disk waits behind one step at most, not the whole file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the thread waits between two rounds.
const PAUSE: Duration = Duration::from_millis(5);

/// How much of a file [`sync_in_steps`] writes out at a time.
const STEP: u64 = 8 << 20;

/// Syncs `file` (opened here: it must be a file no SQLite connection of this process
/// holds) to disk: its pages written out [`STEP`] bytes at a time, each step waited
/// for, then `fsync` for what is left and its metadata.
pub fn sync_in_steps(file: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let opened = std::fs::File::open(file)?;
    let size = opened.metadata()?.len();
    let (fd, mut offset) = (opened.as_raw_fd(), 0u64);
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    while offset < size {
        let (Ok(from), Ok(length)) = (libc::off64_t::try_from(offset), libc::off64_t::try_from(STEP)) else { break };
        // SAFETY: `sync_file_range` reads only its arguments; `opened` keeps `fd` open.
        if unsafe { libc::sync_file_range(fd, from, length, flags) } != 0 {
            // The file system cannot write out ranges: the `fsync` below does it all.
            break;
        }
        offset += STEP;
    }
    opened.sync_all()
}

/// A thread starting the writeback of a database file and its WAL until it is dropped.
pub struct Writeback {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Writeback {
    /// Starts writing out the database at `db` and its WAL as they are written, each as
    /// soon as this process has it open. When the thread cannot start, nothing is
    /// written early (the copy is as durable, only slower).
    pub fn start(db: &Path) -> Writeback {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let files = [db.to_path_buf(), PathBuf::from(wal)];
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    files.iter().for_each(|file| write_out(file));
                    std::thread::park_timeout(PAUSE);
                }
            })
            .ok();
        Writeback { stop, thread }
    }
}

impl Drop for Writeback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Starts the writeback of every dirty page of `file` through each descriptor this
/// process holds of it. A descriptor closed and reused meanwhile only has some other
/// file written out early, or refuses (a socket): harmless either way.
fn write_out(file: &Path) {
    for fd in descriptors_of(file) {
        // SAFETY: `sync_file_range` reads only its arguments; it neither closes `fd` nor
        // waits for the writes.
        unsafe { libc::sync_file_range(fd, 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

/// The descriptors this process holds of `file` (by device and inode; none when it is
/// not there). Nothing is opened on `file` to find them.
fn descriptors_of(file: &Path) -> Vec<libc::c_int> {
    let Ok(meta) = std::fs::metadata(file) else { return Vec::new() };
    let Ok(open) = std::fs::read_dir("/proc/self/fd") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in open.flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else { continue };
        // SAFETY: `fstat` writes into the zeroed `stat` it is given and only reads `fd`.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut stat) } == 0 && stat.st_dev == meta.dev() && stat.st_ino == meta.ino() {
            found.push(fd);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_file_synced_in_steps_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes: Vec<u8> = (0..(STEP * 2 + 12_345)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        sync_in_steps(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::write(&path, b"").unwrap();
        sync_in_steps(&path).unwrap();
        assert!(sync_in_steps(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn the_descriptors_of_an_open_file_are_found_and_left_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        assert_eq!(descriptors_of(&path), vec![file.as_raw_fd()]);
        let again = std::fs::File::open(&path).unwrap();
        let mut both = vec![file.as_raw_fd(), again.as_raw_fd()];
        both.sort_unstable();
        assert_eq!(descriptors_of(&path), both);
        // Not open here, or not there: nothing.
        let other = dir.path().join("closed");
        std::fs::write(&other, b"x").unwrap();
        assert!(descriptors_of(&other).is_empty());
        assert!(descriptors_of(&dir.path().join("absent")).is_empty());
        // A writeback running over it (and its absent `-wal`) leaves the file open and its
        // bytes whole.
        let writeback = Writeback::start(&path);
        file.write_all(&vec![8u8; 1 << 20]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        drop(writeback);
        file.write_all(b"end").unwrap();
        file.sync_all().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), (2 << 20) + 3);
        assert!(bytes[..1 << 20].iter().all(|b| *b == 7) && bytes.ends_with(b"end"));
    }
}
