//! This node's SSH key (ed25519), made on first use and kept as
//! `ssh_host_ed25519_key` (OpenSSH format, mode 0600) in the data directory. The same
//! key identifies the node as an SSH server and authenticates it to its peers, and signs
//! what the node attests (a switchover's handover).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PublicKey};

/// File name of the host key in a data directory.
pub const HOST_KEY: &str = "ssh_host_ed25519_key";

/// Why the host key is not usable.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the host key {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the host key {path}: {reason}")]
    Write { path: String, reason: String },
}

/// Loads the node's key, creating it when the file does not exist.
pub fn host_key(data_dir: &Path) -> Result<PrivateKey, KeyError> {
    let path = data_dir.join(HOST_KEY);
    let shown = path.display().to_string();
    if path.exists() {
        return PrivateKey::read_openssh_file(&path).map_err(|e| KeyError::Read { path: shown, reason: e.to_string() });
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Write { path: shown.clone(), reason: e.to_string() })?;
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text =
        key.to_openssh(LineEnding::LF).map_err(|e| KeyError::Write { path: shown.clone(), reason: e.to_string() })?;
    let write = |p: &Path| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(p)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    };
    // Write a temporary file and link it into place, so two processes starting at once
    // end up with one key.
    let tmp = data_dir.join(format!("{HOST_KEY}.{}", std::process::id()));
    write(&tmp).map_err(|e| KeyError::Write { path: shown.clone(), reason: e.to_string() })?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            PrivateKey::read_openssh_file(&path).map_err(|e| KeyError::Read { path: shown, reason: e.to_string() })
        }
        Err(e) => Err(KeyError::Write { path: shown, reason: e.to_string() }),
    }
}

/// A public key as one OpenSSH line without comment.
pub fn openssh_line(key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh().unwrap_or_default()
}

/// `SHA256:...` fingerprint of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Parses an OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
pub fn parse_public(line: &str) -> Result<PublicKey, String> {
    PublicKey::from_openssh(line.trim()).map_err(|e| format!("not an OpenSSH public key ({e})"))
}

/// Signs `text` with the node's key in `namespace`: an OpenSSH `SSHSIG` in PEM, which
/// `ssh-keygen -Y verify -n NAMESPACE` checks too.
pub fn sign(data_dir: &Path, namespace: &str, text: &str) -> Result<String, String> {
    let key = host_key(data_dir).map_err(|e| e.to_string())?;
    let signature = key.sign(namespace, HashAlg::Sha512, text.as_bytes()).map_err(|e| format!("cannot sign: {e}"))?;
    signature.to_pem(LineEnding::LF).map_err(|e| format!("cannot encode a signature: {e}"))
}

/// Whether `signature` (PEM) is `key`'s signature of `text` in `namespace`.
pub fn verify(key: &PublicKey, namespace: &str, text: &str, signature: &str) -> bool {
    russh::keys::ssh_key::SshSig::from_pem(signature)
        .is_ok_and(|sig| key.verify(namespace, text.as_bytes(), &sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = host_key(dir.path()).unwrap();
        let b = host_key(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let line = openssh_line(a.public_key());
        assert!(line.starts_with("ssh-ed25519 "), "{line}");
        assert_eq!(parse_public(&line).unwrap().key_data(), a.public_key().key_data());
        assert!(fingerprint(a.public_key()).starts_with("SHA256:"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(HOST_KEY)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(parse_public("ssh-ed25519 notbase64").is_err());
    }

    #[test]
    fn a_signature_verifies_for_its_key_text_and_namespace_only() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let key = host_key(dir.path()).unwrap();
        let stranger = host_key(other.path()).unwrap();
        let sig = sign(dir.path(), "coresh-test", "change 7").unwrap();
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----"), "{sig}");
        assert!(verify(key.public_key(), "coresh-test", "change 7", &sig));
        assert!(!verify(key.public_key(), "coresh-test", "change 8", &sig));
        assert!(!verify(key.public_key(), "other", "change 7", &sig));
        assert!(!verify(stranger.public_key(), "coresh-test", "change 7", &sig));
        assert!(!verify(key.public_key(), "coresh-test", "change 7", "not a signature"));
    }
}
