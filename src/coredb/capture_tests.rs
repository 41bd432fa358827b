//! The capture against the session extension it replaced: the same statements in one
//! transaction on two copies of a Core database give the same row changes; and the ways
//! a write could change rows behind the hook's back are refused.

use rusqlite::Connection;
use rusqlite::session::Session;

use super::super::changelog::changes;
use super::super::checksum::is_replicated;
use super::super::{CoreDb, changelog};
use crate::store::StoreError;

fn seeded() -> (tempfile::TempDir, CoreDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut db = CoreDb::open(dir.path()).unwrap();
    db.write(|w| {
        let tx = w.tx();
        for i in 1..=6 {
            tx.execute(
                "INSERT INTO devices (id, uuid, platform, model, os_version, token_hash, registered_at)
                 VALUES (?1, 'u' || ?1, 'ios', 'm', '17', randomblob(32), 'then')",
                [i],
            )?;
        }
        tx.execute("INSERT INTO settings (key, value) VALUES ('a', '1'), ('b', '2')", [])?;
        Ok::<_, StoreError>(())
    })
    .unwrap();
    (dir, db)
}

/// The changes of `script` as the session extension records them, on a connection of
/// its own to a copy of `db`'s file.
fn by_session(dir: &std::path::Path, script: &str) -> Vec<String> {
    let copy = dir.join("session.db");
    let _ = std::fs::remove_file(&copy);
    Connection::open(dir.join(super::super::CORE_DB))
        .unwrap()
        .backup(rusqlite::MAIN_DB, &copy, None::<fn(rusqlite::backup::Progress)>)
        .unwrap();
    let conn = Connection::open(&copy).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut session = Session::new(&conn).unwrap();
    session.table_filter(Some(is_replicated));
    session.attach::<&str>(None).unwrap();
    conn.execute_batch(script).unwrap();
    let mut changeset = Vec::new();
    session.changeset_strm(&mut changeset).unwrap();
    drop(session);
    conn.execute_batch("COMMIT").unwrap();
    described(&changeset)
}

/// The changes of `script` as the capture records them in `db`'s change log.
fn by_capture(db: &mut CoreDb, script: &str) -> Vec<String> {
    let before = db.log_head().unwrap();
    db.write(|w| w.tx().execute_batch(script).map_err(StoreError::from)).unwrap();
    let head = db.log_head().unwrap();
    if head == before {
        return Vec::new();
    }
    assert_eq!(head.checksum, db.content_checksum().unwrap(), "the kept checksum after {script}");
    let entries = changelog::next_after(db.connection(), &before, 10, usize::MAX).unwrap().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].rows as usize, changes(&entries[0].changeset).unwrap().len());
    described(&entries[0].changeset)
}

fn described(changeset: &[u8]) -> Vec<String> {
    let mut all: Vec<String> = changes(changeset).unwrap().iter().map(|c| format!("{c:?}")).collect();
    all.sort();
    all
}

fn same(script: &str) {
    let (dir, mut db) = seeded();
    let session = by_session(dir.path(), script);
    let captured = by_capture(&mut db, script);
    assert_eq!(captured, session, "{script}");
}

#[test]
fn each_kind_of_change_is_recorded_as_the_session_extension_records_it() {
    same("INSERT INTO users (id, name, email, created_at) VALUES (9, 'n', 'e', 'now')");
    same("UPDATE devices SET os_version = '18', checkins = checkins + 1 WHERE id = 2");
    same("DELETE FROM devices WHERE id > 4");
    same("UPDATE settings SET value = 'x' WHERE key = 'a'");
    same("DELETE FROM settings");
    same("UPDATE devices SET token_hash = x'00ff', last_checkin_at = NULL WHERE id = 1");
    same("INSERT INTO settings (key, value) VALUES ('a', 'v') ON CONFLICT (key) DO UPDATE SET value = excluded.value");
}

#[test]
fn changes_to_one_row_are_merged_as_the_session_extension_merges_them() {
    // Nothing at all: back to the old values, or in and out again.
    same("UPDATE devices SET model = 'n' WHERE id = 3; UPDATE devices SET model = 'm' WHERE id = 3");
    same("UPDATE devices SET model = model WHERE id = 3");
    same("INSERT INTO settings (key, value) VALUES ('c', '1'); DELETE FROM settings WHERE key = 'c'");
    same("DELETE FROM settings WHERE key = 'a'; INSERT INTO settings (key, value) VALUES ('a', '1')");
    // One change of each row.
    same("INSERT INTO settings (key, value) VALUES ('c', '1'); UPDATE settings SET value = '2' WHERE key = 'c'");
    same("UPDATE devices SET model = 'n' WHERE id = 3; UPDATE devices SET os_version = '9' WHERE id = 3");
    same("UPDATE devices SET model = 'n' WHERE id = 3; DELETE FROM devices WHERE id = 3");
    same("DELETE FROM settings WHERE key = 'a'; INSERT INTO settings (key, value) VALUES ('a', 'new')");
    // A new primary key: one row goes, another comes.
    same("UPDATE devices SET id = 60 WHERE id = 6");
    same("UPDATE settings SET key = 'z' WHERE key = 'b'; UPDATE settings SET key = 'b' WHERE key = 'z'");
}

#[test]
fn random_writes_give_the_session_extensions_changes() {
    // A small generator of its own (deterministic, so a failure names its seed).
    for seed in 1..=40u64 {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut script = String::new();
        for _ in 0..(3 + next(12)) {
            let (id, key) = (1 + next(8), ["a", "b", "c", "d"][next(4) as usize]);
            script.push_str(&match next(7) {
                0 => format!(
                    "INSERT OR IGNORE INTO devices (id, uuid, platform, model, os_version, token_hash, registered_at)
                     VALUES ({id}, 'r{id}', 'android', 'p', '{}', x'01', 'now');",
                    next(3)
                ),
                1 => format!("UPDATE devices SET os_version = '{}' WHERE id = {id};", next(3)),
                2 => format!("UPDATE devices SET checkins = checkins + {} WHERE id = {id};", next(2)),
                3 => format!("DELETE FROM devices WHERE id = {id};"),
                4 => format!("INSERT OR IGNORE INTO settings (key, value) VALUES ('{key}', '{}');", next(3)),
                5 => format!("UPDATE settings SET value = '{}' WHERE key = '{key}';", next(3)),
                _ => format!("DELETE FROM settings WHERE key = '{key}';"),
            });
        }
        let (dir, mut db) = seeded();
        let session = by_session(dir.path(), &script);
        assert_eq!(by_capture(&mut db, &script), session, "seed {seed}: {script}");
    }
}

#[test]
fn a_step_undone_through_its_savepoint_leaves_nothing_in_the_log() {
    let (_dir, mut db) = seeded();
    let before = db.log_head().unwrap();
    db.write(|w| {
        let undone = w.op(|w| {
            w.tx().execute("UPDATE devices SET model = 'gone' WHERE id = 1", [])?;
            Err::<(), _>(StoreError::Stopped)
        });
        assert!(undone.is_err());
        w.op(|w| w.tx().execute("UPDATE devices SET model = 'kept' WHERE id = 2", []).map_err(StoreError::from))
    })
    .unwrap();
    let entries = changelog::next_after(db.connection(), &before, 10, usize::MAX).unwrap().unwrap();
    let described = described(&entries[0].changeset);
    assert_eq!(described.len(), 1, "{described:?}");
    assert!(described[0].contains("kept"), "{described:?}");
    assert_eq!(db.log_head().unwrap().checksum, db.content_checksum().unwrap());
}

#[test]
fn a_failed_statement_whose_rows_the_hook_saw_refuses_the_write() {
    let (_dir, mut db) = seeded();
    let before = db.log_head().unwrap();
    // The first row passes the CHECK and reaches the hook; the second fails it, and
    // SQLite undoes the statement. A write that went on regardless would log a change
    // that never happened.
    let result = db.write(|w| {
        let tx = w.tx();
        tx.execute_batch(
            "INSERT INTO certificates (id, kind, subject, pem, not_after) VALUES
                 (1, 'device', 's', 'p', 'n'), (2, 'device', 's', 'p', 'n')",
        )?;
        let failed = tx.execute("UPDATE certificates SET kind = CASE id WHEN 1 THEN 'server' ELSE 'nope' END", []);
        assert!(failed.is_err());
        Ok::<_, StoreError>(())
    });
    let err = result.expect_err("a write with a change the capture cannot account for was taken");
    assert!(err.to_string().contains("nothing was written"), "{err}");
    assert_eq!(db.log_head().unwrap(), before);
    let rows: i64 = db.connection().query_row("SELECT count(*) FROM certificates", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0);
}

#[test]
fn a_rollback_to_any_other_savepoint_is_refused_inside_a_write() {
    let (_dir, mut db) = seeded();
    let before = db.log_head().unwrap();
    let result = db.write(|w| {
        w.tx().execute_batch("SAVEPOINT s; UPDATE devices SET model = 'x' WHERE id = 1; ROLLBACK TO s; RELEASE s")?;
        Ok::<_, StoreError>(())
    });
    let err = result.expect_err("a ROLLBACK TO the capture cannot see was run");
    assert!(err.to_string().contains("not authorized"), "{err}");
    assert_eq!(db.log_head().unwrap(), before);
    // Outside a write, SQLite's own savepoints (changeset application uses them) work.
    db.connection().execute_batch("SAVEPOINT s; ROLLBACK TO s; RELEASE s").unwrap();
}

#[test]
fn a_write_that_panics_stops_recording() {
    let (_dir, mut db) = seeded();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        db.write(|w| {
            w.tx().execute("UPDATE devices SET model = 'x' WHERE id = 1", [])?;
            panic!("a bug in a write");
            #[allow(unreachable_code)]
            Ok::<_, StoreError>(())
        })
    }));
    assert!(panicked.is_err());
    // Not recording any more: SQLite's own savepoints work again, and the next write
    // logs only its own change.
    db.connection().execute_batch("SAVEPOINT s; ROLLBACK TO s; RELEASE s").unwrap();
    let before = db.log_head().unwrap();
    db.write(|w| w.tx().execute("UPDATE devices SET model = 'y' WHERE id = 2", []).map_err(StoreError::from)).unwrap();
    let entries = changelog::next_after(db.connection(), &before, 10, usize::MAX).unwrap().unwrap();
    assert_eq!(described(&entries[0].changeset).len(), 1);
}

#[test]
fn a_table_the_capture_does_not_know_refuses_the_write() {
    let (_dir, mut db) = seeded();
    let before = db.log_head().unwrap();
    // A table made inside the write is not in the capture's list (read at its start).
    let err = db
        .write(|w| {
            w.tx().execute_batch("CREATE TABLE extra (id INTEGER PRIMARY KEY); INSERT INTO extra VALUES (1)")?;
            Ok::<_, StoreError>(())
        })
        .expect_err("a change to an unknown table was taken");
    assert!(err.to_string().contains("table extra is not one change capture knows"), "{err}");
    assert_eq!(db.log_head().unwrap(), before);
}

#[test]
fn a_replicated_table_without_a_primary_key_stops_writes_rather_than_go_unlogged() {
    let (_dir, mut db) = seeded();
    db.connection().execute_batch("CREATE TABLE loose (a TEXT)").unwrap();
    let err =
        db.write(|w| w.set_setting("a", Some("3"))).expect_err("a write went on while a table could not be captured");
    assert!(err.to_string().contains("table loose has no primary key"), "{err}");
}
