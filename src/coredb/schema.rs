//! Schema of the Core data database (`core.db`): what HA replicates. Every table has a
//! primary key, so that changes can be captured and applied row by row.

use rusqlite::Connection;

use crate::store::StoreError;

/// The schema version this coresh writes.
pub const SCHEMA_VERSION: i64 = 3;

const STEPS: &[&str] = &[
    // 1: the Admin Portal database, certificates and System Manager local users.
    "CREATE TABLE users (
         id         INTEGER PRIMARY KEY,
         name       TEXT NOT NULL UNIQUE,
         email      TEXT NOT NULL,
         created_at TEXT NOT NULL
     );
     CREATE TABLE devices (
         id              INTEGER PRIMARY KEY,
         uuid            TEXT NOT NULL UNIQUE,
         user_id         INTEGER REFERENCES users (id),
         platform        TEXT NOT NULL,
         model           TEXT NOT NULL,
         os_version      TEXT NOT NULL,
         token_hash      BLOB NOT NULL UNIQUE,
         registered_at   TEXT NOT NULL,
         last_checkin_at TEXT,
         checkins        INTEGER NOT NULL DEFAULT 0
     );
     CREATE TABLE apps (
         id       INTEGER PRIMARY KEY,
         name     TEXT NOT NULL,
         version  TEXT NOT NULL,
         platform TEXT NOT NULL,
         UNIQUE (name, version, platform)
     );
     CREATE TABLE policies (
         id   INTEGER PRIMARY KEY,
         name TEXT NOT NULL UNIQUE,
         kind TEXT NOT NULL,
         body TEXT NOT NULL
     );
     CREATE TABLE settings (
         key   TEXT PRIMARY KEY,
         value TEXT NOT NULL
     );
     CREATE TABLE events (
         id        INTEGER PRIMARY KEY,
         at        TEXT NOT NULL,
         device_id INTEGER REFERENCES devices (id),
         kind      TEXT NOT NULL,
         detail    TEXT NOT NULL
     );
     CREATE INDEX events_device ON events (device_id, id);
     CREATE TABLE certificates (
         id        INTEGER PRIMARY KEY,
         kind      TEXT NOT NULL CHECK (kind IN ('device', 'server')),
         subject   TEXT NOT NULL,
         device_id INTEGER REFERENCES devices (id),
         pem       TEXT NOT NULL,
         not_after TEXT NOT NULL
     );
     CREATE TABLE local_users (
         name          TEXT PRIMARY KEY,
         password_hash TEXT,
         public_keys   TEXT NOT NULL DEFAULT '',
         created_at    TEXT NOT NULL
     );",
    // 2: replication's change log (incremental syncs).
    super::changelog::SCHEMA,
    // 3: devices an operator retired or let enrol again (a UUID that is enrolled cannot
    // register again: anyone with the enrollment secret could take it over). A table of
    // its own, so that the rows already there keep their content checksums.
    "CREATE TABLE device_enrollment (
         device_id INTEGER PRIMARY KEY REFERENCES devices (id),
         state     TEXT NOT NULL CHECK (state IN ('retired', 're-enroll')),
         since     TEXT NOT NULL
     );",
];

/// Brings `conn` from schema version `from` to [`SCHEMA_VERSION`].
pub fn migrate(conn: &mut Connection, from: i64) -> Result<(), StoreError> {
    crate::store::migrate_steps(conn, from, STEPS)?;
    super::changelog::ensure_base(conn)
}

#[cfg(test)]
mod tests {
    #[test]
    fn steps_match_the_version() {
        assert_eq!(super::STEPS.len() as i64, super::SCHEMA_VERSION);
    }
}
