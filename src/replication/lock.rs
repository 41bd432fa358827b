//! One sync at a time per node: an exclusive `flock` on `sync.lock` in the data
//! directory, which says who holds it. The kernel drops the lock when its holder dies,
//! so a killed sync never blocks the next one; what it staged is removed
//! ([`clear_leftovers`]) once no sync runs, as are the snapshots a sender was writing.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

/// Where a pull stages the entries after a peer's checked copy, under the data
/// directory (removed here with the other staged files when no sync runs).
pub const CHANGES_STAGING: &str = "core-changes.staging";

/// A held sync lock; released on drop.
pub struct SyncLock {
    file: File,
}

impl SyncLock {
    /// Takes the lock for a sync from `peer`, or says which sync holds it.
    pub fn take(data_dir: &Path, peer: &str) -> Result<SyncLock, String> {
        let path = data_dir.join("sync.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own; LOCK_NB makes it return at once.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !locked {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(if holder.is_empty() {
                "another sync is running".into()
            } else {
                format!("a sync is already running ({holder})")
            });
        }
        let note = format!("from {peer}, started {}, pid {}", crate::store::now_text(), std::process::id());
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(note.as_bytes());
        Ok(SyncLock { file })
    }
}

/// Removes what syncs and senders cut short left in `data_dir`: staged databases and
/// files (only while no sync runs, so never under a running one) and the sender's
/// snapshots and changes files (call it when the daemon starts, before it serves).
/// Returns what was removed.
pub fn clear_leftovers(data_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    let mut remove = |path: std::path::PathBuf| {
        let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if gone.is_ok() {
            removed.push(path);
        }
    };
    if let Ok(entries) = std::fs::read_dir(data_dir.join("snapshots")) {
        entries.flatten().for_each(|e| remove(e.path()));
    }
    if let Ok(_lock) = SyncLock::take(data_dir, "clearing what earlier syncs left") {
        for name in ["core.db.staging", "core.db.staging-journal", CHANGES_STAGING, "atlas.db.staging"] {
            let path = data_dir.join(name);
            if path.exists() {
                remove(path);
            }
        }
        let files = data_dir.join(super::files::FILES_DIR).join(super::files::STAGING);
        if files.exists() {
            remove(files);
        }
    }
    removed
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // SAFETY: unlocking our own descriptor.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn leftovers_go_but_not_under_a_running_sync() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("snapshots")).unwrap();
        std::fs::write(dir.path().join("snapshots/core-1.db"), b"x").unwrap();
        std::fs::write(dir.path().join("core.db.staging"), b"x").unwrap();
        let running = super::SyncLock::take(dir.path(), "core-a:22").unwrap();
        let removed = super::clear_leftovers(dir.path());
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert!(dir.path().join("core.db.staging").exists(), "a running sync keeps its staged copy");
        drop(running);
        assert_eq!(super::clear_leftovers(dir.path()).len(), 1);
        assert!(!dir.path().join("core.db.staging").exists());
    }

    #[test]
    fn a_second_sync_is_refused_with_the_first_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::SyncLock::take(dir.path(), "core-a:22").unwrap();
        let err = super::SyncLock::take(dir.path(), "core-b:22").err().unwrap();
        assert!(err.contains("from core-a:22"), "{err}");
        drop(first);
        assert!(super::SyncLock::take(dir.path(), "core-b:22").is_ok());
    }
}
