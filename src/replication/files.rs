//! Application files (certificates, uploaded app files) kept in `files/` under the data
//! directory: a manifest of content hashes tells what differs, only changed files are
//! sent, each is staged and checked against its SHA-256, then renamed into place; files
//! the primary no longer has are removed.

use std::path::{Component, Path, PathBuf};

use crate::peer::message::{FileEntry as Entry, FilesHeader, Manifest};

/// Directory of the application files inside a data directory.
pub const FILES_DIR: &str = "files";
/// Where received files wait, under the files directory, until they are verified.
pub const STAGING: &str = ".staging";

/// Checks that a manifest path stays inside `files/`.
pub fn safe_path(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with(STAGING)
        && !path.chars().any(char::is_control);
    ok.then(|| p.to_path_buf())
}

/// The manifest of `data_dir`'s files (empty when there are none).
pub fn manifest(data_dir: &Path) -> std::io::Result<Manifest> {
    let root = data_dir.join(FILES_DIR);
    let mut out = Manifest::new();
    if root.is_dir() {
        walk(&root, &root, &mut out)?;
    }
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Manifest) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if path != root.join(STAGING) {
                walk(root, &path, out)?;
            }
        } else if kind.is_file() {
            let Ok(rel) = path.strip_prefix(root) else { continue };
            let Some(rel) = rel.to_str().map(|r| r.replace('\\', "/")) else { continue };
            if safe_path(&rel).is_some() {
                out.insert(rel, Entry { size: entry.metadata()?.len(), sha256: sha256_file(&path)? });
            }
        }
    }
    Ok(())
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    super::digest::read_through(path, |chunk| ctx.update(chunk))?;
    Ok(hex::encode(ctx.finish().as_ref()))
}

/// What the sender with manifest `ours` sends to a receiver with manifest `theirs`.
pub fn plan(ours: &Manifest, theirs: &Manifest) -> FilesHeader {
    let changed =
        ours.iter().filter(|(p, e)| theirs.get(*p) != Some(*e)).map(|(p, e)| (p.clone(), e.clone())).collect();
    let removed = theirs.keys().filter(|p| !ours.contains_key(*p)).cloned().collect();
    FilesHeader { changed, removed }
}

/// A staging file for an incoming file.
pub fn staging_path(data_dir: &Path, seq: usize) -> std::io::Result<PathBuf> {
    let dir = data_dir.join(FILES_DIR).join(STAGING);
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(format!("incoming-{seq}")))
}

/// Moves a verified staging file to its place.
pub fn install(data_dir: &Path, staged: &Path, path: &str) -> std::io::Result<()> {
    let rel = safe_path(path).ok_or_else(|| std::io::Error::other(format!("unsafe path {path:?}")))?;
    let target = data_dir.join(FILES_DIR).join(rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(staged, target)
}

/// Removes a file the sender no longer has.
pub fn remove(data_dir: &Path, path: &str) -> std::io::Result<()> {
    let rel = safe_path(path).ok_or_else(|| std::io::Error::other(format!("unsafe path {path:?}")))?;
    match std::fs::remove_file(data_dir.join(FILES_DIR).join(rel)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "", ".staging/x", "a\u{1}b", "./a"] {
            assert!(safe_path(bad).is_none(), "{bad:?}");
        }
        assert!(safe_path("certs/server.pem").is_some());
    }

    #[test]
    fn the_plan_sends_what_differs_and_removes_what_is_gone() {
        let e = |s: &str| Entry { size: 1, sha256: s.into() };
        let ours = Manifest::from([("a".into(), e("1")), ("b".into(), e("2"))]);
        let theirs = Manifest::from([("b".into(), e("x")), ("c".into(), e("3"))]);
        let plan = plan(&ours, &theirs);
        assert_eq!(plan.changed.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(plan.removed, ["c"]);
    }
}
