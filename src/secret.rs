//! Secrets at rest: the enable secret, users' passwords and the enrollment secret are
//! kept only as Argon2id hashes (PHC strings). Each verification takes about 19 MiB and
//! a good part of a core, so the daemon runs at most [`MAX_VERIFYING`] at once
//! ([`verify_bounded`]): a flood of wrong passwords waits its turn, it does not exhaust
//! memory.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes a secret with a fresh random salt.
pub fn hash(secret: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the secret: {e}"))
}

/// Whether `secret` matches `hash`; an unreadable hash matches nothing.
pub fn verify(hash: &str, secret: &str) -> bool {
    Argon2::default().verify_password(secret.as_bytes(), hash).is_ok()
}

/// Verifications the daemon runs at once.
pub const MAX_VERIFYING: usize = 4;
/// How long a verification waits for its turn before it is refused.
const WAIT: Duration = Duration::from_secs(10);

static VERIFYING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_VERIFYING);

/// [`verify`] on a blocking thread, at most [`MAX_VERIFYING`] at once; `None` when it
/// could not get its turn in time (or the thread failed), which callers treat as a
/// refusal.
pub async fn verify_bounded(hash: String, secret: String) -> Option<bool> {
    let _turn = tokio::time::timeout(WAIT, VERIFYING.acquire()).await.ok()?.ok()?;
    tokio::task::spawn_blocking(move || verify(&hash, &secret)).await.ok()
}

/// Whether `text` is an Argon2 hash this build can verify against.
pub fn is_hash(text: &str) -> bool {
    PasswordHash::new(text).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_verify_and_differ() {
        let a = super::hash("s3cret").unwrap();
        let b = super::hash("s3cret").unwrap();
        assert_ne!(a, b, "salt must differ");
        assert!(a.starts_with("$argon2id$"));
        assert!(super::verify(&a, "s3cret"));
        assert!(!super::verify(&a, "S3cret"));
        assert!(super::is_hash(&a));
        assert!(!super::is_hash("s3cret"));
        assert!(!super::verify("garbage", "s3cret"));
    }
}
