//! The role lock: a promotion and a sync's swap exclude each other. A promotion holds it
//! while it makes this node primary; a sync holds it while it checks that this node is
//! still a standby and replaces the Core data. So a sync can never overwrite a node that
//! became primary while its bytes were on their way: either the swap finished before the
//! promotion (and the promotion is of the new data), or the sync sees the promotion and
//! replaces nothing. An exclusive `flock` on `role.lock` in the data directory, waited
//! for (a swap is one local transaction), released on drop and by the kernel when its
//! holder dies.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held role lock.
pub struct RoleLock {
    /// The locked file; closing it releases the lock.
    file: File,
}

impl RoleLock {
    /// Waits for and takes the role lock of the node in `data_dir`.
    pub fn take(data_dir: &Path) -> std::io::Result<RoleLock> {
        let path = data_dir.join("role.lock");
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(RoleLock { file });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl Drop for RoleLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = RoleLock::take(dir.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        let waiter = std::thread::spawn(move || {
            let _second = RoleLock::take(&path).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(std::time::Duration::from_millis(200)).is_err(), "taken while held");
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10)).expect("taken once released");
        waiter.join().unwrap();
    }
}
