//! A node's data directory: created on first use (mode 0700), holding the system
//! database; the node id is made once and kept; the node's SSH [`keys`] (its own, and how
//! peers' keys are read and named); the disk room replication may use. Below the
//! services that serve it: the daemon's live [`view`] of the node (what its HTTP and SSH
//! handlers read) and the console's login [`policy`].

pub mod keys;
pub mod policy;
pub mod view;

use std::path::{Path, PathBuf};

use crate::coredb::CoreDb;
use crate::ha::{NODE_ID, Settings};
use crate::store::{Store, StoreError, put_setting};

/// The local node this shell (or daemon) works on.
pub struct Node {
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its system database.
    pub store: Store,
    /// Random id made when the directory was first used.
    pub id: String,
    /// The Core data, opened when first needed.
    core: Option<CoreDb>,
}

/// Why a node could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data directory cannot be created or used.
    #[error("cannot use data directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The database cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Node {
    /// Opens the node in `data_dir`, creating it on first use.
    pub fn open(data_dir: &Path) -> Result<Node, NodeError> {
        let dir_err = |source| NodeError::Dir { path: data_dir.to_path_buf(), source };
        if !data_dir.exists() {
            create_private_dir(data_dir).map_err(dir_err)?;
        }
        let mut store = Store::open(data_dir)?;
        let id = match store.setting(NODE_ID)? {
            Some(id) => id,
            None => {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).map_err(|e| dir_err(std::io::Error::other(e.to_string())))?;
                let id = hex::encode(bytes);
                store.durably(|tx| put_setting(tx, NODE_ID, Some(&id)))?;
                id
            }
        };
        Ok(Node { data_dir: data_dir.to_path_buf(), store, id, core: None })
    }

    /// The node's Core data, opened (and created) on first use.
    pub fn core(&mut self) -> Result<&mut CoreDb, StoreError> {
        if self.core.is_none() {
            let mut core = CoreDb::open(&self.data_dir)?;
            core.set_origin(&self.id);
            self.core = Some(core);
        }
        self.core.as_mut().ok_or(StoreError::Stopped)
    }

    /// Where the Core data's change log ends. A shell that only shows it (`show failover`
    /// on a node that feeds streams) reads it from a read-only connection, without the
    /// schema check and change capture of opening the Core data for writes
    /// (docs/benchmarks.md: 1 to 4% of a `show failover` start);
    /// the Core data is opened, and created, when it is already open, absent (a
    /// read-only open does not create it) or unreadable that way.
    pub fn log_head(&mut self) -> Result<crate::coredb::changelog::Position, StoreError> {
        let path = self.data_dir.join(crate::coredb::CORE_DB);
        if self.core.is_none()
            && let Ok(head) = crate::store::open_read_only(&path)
                .map_err(StoreError::from)
                .and_then(|c| crate::coredb::changelog::head(&c))
        {
            return Ok(head);
        }
        self.core()?.log_head()
    }

    /// The current settings.
    pub fn settings(&self) -> Result<Settings, StoreError> {
        Settings::from_map(&self.store.settings()?)
    }
}

/// Bytes free for an unprivileged writer on the file system holding `path`.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs writes into a zeroed struct we own, from a NUL-terminated path.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Refuses to write `copies` copies of `bytes` under `dir` unless the file system keeps
/// [`SPARE`] free after them.
pub fn room_for(dir: &Path, bytes: u64, copies: u64, what: &str) -> Result<(), String> {
    let free = free_space(dir).map_err(|e| format!("cannot tell the free disk space of {}: {e}", dir.display()))?;
    let needed = bytes.saturating_mul(copies).saturating_add(SPARE);
    if free < needed {
        return Err(format!(
            "not enough disk space for {what}: {bytes} bytes announced, {free} bytes free in {} (needs {needed})",
            dir.display()
        ));
    }
    Ok(())
}

/// Disk space always left free by replication.
pub const SPARE: u64 = 64 * 1024 * 1024;

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// The embedded default node's directory: `$XDG_DATA_HOME/coresh/node`, else
/// `~/.local/share/coresh/node`, else `./coresh-node`.
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    match base {
        Some(b) => b.join("coresh").join("node"),
        None => PathBuf::from("coresh-node"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_head_read_without_opening_the_core_data_is_the_same() {
        let dir = tempfile::tempdir().unwrap();
        // No Core data yet: it is created, with an empty log.
        let mut node = Node::open(dir.path()).unwrap();
        let empty = node.log_head().unwrap();
        assert!(dir.path().join(crate::coredb::CORE_DB).exists());
        node.core().unwrap().write(|w| w.event(None, "x", "{}", "2026-12-02T00:00:00Z")).unwrap();
        let written = node.core().unwrap().log_head().unwrap();
        assert_ne!(written, empty);
        // A shell that has not opened it reads the same head.
        let mut shell = Node::open(dir.path()).unwrap();
        assert_eq!(shell.log_head().unwrap(), written);
        assert!(shell.core.is_none(), "the Core data was opened to read the log head");
    }
}
