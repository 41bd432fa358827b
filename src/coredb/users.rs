//! System Manager local users (the operators who log in to the console): name, argon2
//! password hash, OpenSSH public keys. They are Core data, so HA replicates them.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{CoreDb, Writes};
use crate::store::StoreError;

/// One local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LocalUser {
    pub name: String,
    /// Argon2 hash (PHC string), when a password is set.
    pub password_hash: Option<String>,
    /// OpenSSH public key lines.
    pub public_keys: Vec<String>,
    pub created_at: String,
}

/// Whether `name` is a valid user name: 1 to 32 letters, digits, `.`, `_` or `-`,
/// starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl CoreDb {
    /// The local user called `name`.
    pub fn local_user(&self, name: &str) -> Result<Option<LocalUser>, StoreError> {
        Ok(self.local_users()?.into_iter().find(|u| u.name == name))
    }

    /// Every local user, by name.
    pub fn local_users(&self) -> Result<Vec<LocalUser>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, password_hash, public_keys, created_at FROM local_users ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            let keys: String = r.get(2)?;
            Ok(LocalUser {
                name: r.get(0)?,
                password_hash: r.get(1)?,
                public_keys: keys.lines().filter(|l| !l.is_empty()).map(str::to_string).collect(),
                created_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Writes<'_> {
    fn ensure_user(&self, name: &str) -> Result<(), StoreError> {
        self.tx().execute(
            "INSERT INTO local_users (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![name, crate::store::now_text()],
        )?;
        Ok(())
    }

    /// Sets a user's password hash, creating the user when new.
    pub fn set_user_password(&self, name: &str, hash: &str) -> Result<(), StoreError> {
        self.ensure_user(name)?;
        self.tx().execute("UPDATE local_users SET password_hash = ?2 WHERE name = ?1", params![name, hash])?;
        Ok(())
    }

    /// Adds an OpenSSH public key to a user (creating the user when new); a key the
    /// user already has is not added twice. Returns whether it was new.
    pub fn add_user_key(&self, name: &str, key: &str) -> Result<bool, StoreError> {
        self.ensure_user(name)?;
        let keys: String =
            self.tx().query_row("SELECT public_keys FROM local_users WHERE name = ?1", [name], |r| r.get(0))?;
        if keys.lines().any(|k| k == key) {
            return Ok(false);
        }
        let joined = if keys.is_empty() { key.to_string() } else { format!("{keys}\n{key}") };
        self.tx().execute("UPDATE local_users SET public_keys = ?2 WHERE name = ?1", params![name, joined])?;
        Ok(true)
    }

    /// Removes a user; returns whether there was one.
    pub fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let found: Option<String> =
            self.tx().query_row("SELECT name FROM local_users WHERE name = ?1", [name], |r| r.get(0)).optional()?;
        self.tx().execute("DELETE FROM local_users WHERE name = ?1", [name])?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(valid_name("admin") && valid_name("ops.team-1") && valid_name("a"));
        assert!(!valid_name("") && !valid_name("-x") && !valid_name("a b") && !valid_name(&"x".repeat(33)));
        assert!(!valid_name("root;rm") && !valid_name("ünï"));
    }
}
