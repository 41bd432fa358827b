//! Secrets at rest: the enable secret is kept only as an Argon2id hash (PHC string).

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
