//! A deterministic generator of Core data for tests and benchmarks: the same counts
//! and seed always give the same rows, and device tokens can be derived again from the
//! seed (so a load driver can check in as generated devices).

use rusqlite::params;

use super::{CoreDb, Writes, token_hash};
use crate::store::StoreError;

/// How much data to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub users: u64,
    pub devices: u64,
    pub events: u64,
    pub apps: u64,
    pub policies: u64,
    /// Seed of the pseudo-random choices.
    pub seed: u64,
}

/// Rows per transaction.
const CHUNK: u64 = 20_000;
const PLATFORMS: &[&str] = &["ios", "android", "macos", "windows"];
const MODELS: &[&str] = &["iPhone15,2", "Pixel 8", "SM-S918B", "MacBookPro18,3", "Surface Pro 9"];
/// Time the generated history starts at.
const EPOCH: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The token of generated device number `index` (0-based) under `seed`.
pub fn token_for(seed: u64, index: u64) -> String {
    let mut rng = Rng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
    format!("gen{:016x}{:016x}", rng.next(), rng.next())
}

fn time(offset_seconds: u64) -> String {
    let t = EPOCH + i64::try_from(offset_seconds).unwrap_or(0);
    chrono::DateTime::from_timestamp(t, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Fills an empty Core data with generated rows; refuses one that has devices or users.
/// A bulk load: it bypasses the change log and restarts it at the end, so peers then
/// take a full copy.
pub fn generate(db: &mut CoreDb, counts: &Counts) -> Result<(), StoreError> {
    let summary = db.summary()?;
    if summary.devices > 0 || summary.users > 0 || summary.events > 0 {
        return Err(StoreError::NotEmpty);
    }
    let mut rng = Rng(counts.seed);
    for start in (0..counts.users).step_by(CHUNK as usize) {
        db.write_unlogged(|w| (start..(start + CHUNK).min(counts.users)).try_for_each(|i| w.generated_user(i)))?;
    }
    for start in (0..counts.devices).step_by(CHUNK as usize) {
        db.write_unlogged(|w| {
            (start..(start + CHUNK).min(counts.devices)).try_for_each(|i| {
                let user = if counts.users == 0 {
                    None
                } else {
                    Some(i64::try_from(rng.below(counts.users)).unwrap_or(0) + 1)
                };
                let platform = PLATFORMS[rng.below(PLATFORMS.len() as u64) as usize];
                let model = MODELS[rng.below(MODELS.len() as u64) as usize];
                w.generated_device(i, user, platform, model, &token_hash(&token_for(counts.seed, i)))
            })
        })?;
    }
    for start in (0..counts.events).step_by(CHUNK as usize) {
        db.write_unlogged(|w| {
            (start..(start + CHUNK).min(counts.events)).try_for_each(|i| {
                let device = if counts.devices == 0 {
                    None
                } else {
                    Some(i64::try_from(rng.below(counts.devices)).unwrap_or(0) + 1)
                };
                w.event(device, "checkin", &format!("{{\"seq\":{i}}}"), &time(i)).map(|_| ())
            })
        })?;
    }
    db.write_unlogged(|w| {
        (0..counts.apps).try_for_each(|i| w.generated_app(i, PLATFORMS[(i % PLATFORMS.len() as u64) as usize]))?;
        (0..counts.policies).try_for_each(|i| w.generated_policy(i))
    })?;
    db.restart_log()
}

impl Writes<'_> {
    fn generated_user(&self, i: u64) -> Result<(), StoreError> {
        self.tx()
            .prepare_cached("INSERT INTO users (name, email, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![format!("user{i:06}"), format!("user{i:06}@example.com"), time(i)])?;
        Ok(())
    }

    fn generated_device(
        &self,
        i: u64,
        user: Option<i64>,
        platform: &str,
        model: &str,
        token: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.tx()
            .prepare_cached(
                "INSERT INTO devices (uuid, user_id, platform, model, os_version, token_hash, registered_at)
                 VALUES (?1, ?2, ?3, ?4, '1.0', ?5, ?6)",
            )?
            .execute(params![format!("gen-device-{i:08}"), user, platform, model, &token[..], time(i)])?;
        Ok(())
    }

    fn generated_app(&self, i: u64, platform: &str) -> Result<(), StoreError> {
        self.tx()
            .prepare_cached("INSERT INTO apps (name, version, platform) VALUES (?1, '1.0', ?2)")?
            .execute(params![format!("app{i:04}"), platform])?;
        Ok(())
    }

    fn generated_policy(&self, i: u64) -> Result<(), StoreError> {
        let kind = if i.is_multiple_of(2) { "policy" } else { "config" };
        self.tx()
            .prepare_cached("INSERT INTO policies (name, kind, body) VALUES (?1, ?2, '{}')")?
            .execute(params![format!("{kind}{i:04}"), kind])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coredb::CheckIn;

    fn counts() -> Counts {
        Counts { users: 30, devices: 100, events: 500, apps: 5, policies: 4, seed: 7 }
    }

    #[test]
    fn the_same_counts_and_seed_give_the_same_data() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut da = CoreDb::open(a.path()).unwrap();
        let mut dbb = CoreDb::open(b.path()).unwrap();
        generate(&mut da, &counts()).unwrap();
        generate(&mut dbb, &counts()).unwrap();
        assert_eq!(da.devices(None).unwrap(), dbb.devices(None).unwrap());
        let s = da.summary().unwrap();
        assert_eq!((s.users, s.devices, s.events, s.apps, s.policies), (30, 100, 500, 5, 4));
        assert!(matches!(generate(&mut da, &counts()), Err(StoreError::NotEmpty)));
    }

    /// A Core generated with [`counts`], in a directory of its own (kept while it lives).
    fn generated() -> (tempfile::TempDir, CoreDb) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = CoreDb::open(dir.path()).unwrap();
        generate(&mut db, &counts()).unwrap();
        (dir, db)
    }

    #[test]
    fn generated_tokens_check_in() {
        let (_dir, mut db) = generated();
        let hash = token_hash(&token_for(7, 99));
        let done = db.write(|w| w.check_in(&hash, &Default::default(), "2026-11-26T00:00:00Z")).unwrap();
        assert_eq!(done.map(|c| c.device_id), Some(100));
    }

    /// A check-in counts, stamps and (when told) updates its device, and its event keeps
    /// the report as it always did; a token no device holds changes nothing.
    #[test]
    fn a_check_in_updates_its_device_and_keeps_its_report() {
        let (_dir, mut db) = generated();
        let hash = token_hash(&token_for(7, 3));
        let read = |db: &CoreDb| {
            let conn = rusqlite::Connection::open(db.path()).unwrap();
            conn.query_row(
                "SELECT d.checkins, d.os_version, d.last_checkin_at, e.detail
                   FROM devices d JOIN events e ON e.device_id = d.id WHERE d.id = 4 ORDER BY e.id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .unwrap()
        };
        let report = CheckIn { os_version: Some("17.4".into()), seq: Some(9), battery: Some(80) };
        let first = db.write(|w| w.check_in(&hash, &report, "2026-12-05T10:00:00.000Z")).unwrap().unwrap();
        assert_eq!(first.device_id, 4);
        let (checkins, os, at, detail) = read(&db);
        assert_eq!((checkins, os.as_str(), at.as_deref()), (first.checkins, "17.4", Some("2026-12-05T10:00:00.000Z")));
        assert_eq!(detail, r#"{"battery":80,"seq":9}"#);

        let second = db.write(|w| w.check_in(&hash, &CheckIn::default(), "2026-12-05T10:00:01.000Z")).unwrap().unwrap();
        assert_eq!(second.checkins, first.checkins + 1);
        assert!(second.event_id > first.event_id);
        let (checkins, os, _, detail) = read(&db);
        assert_eq!(
            (checkins, os.as_str(), detail.as_str()),
            (second.checkins, "17.4", r#"{"battery":null,"seq":null}"#)
        );

        let nobody =
            db.write(|w| w.check_in(&token_hash("no such token"), &report, "2026-12-05T10:00:02.000Z")).unwrap();
        assert!(nobody.is_none());
        assert_eq!(read(&db).0, second.checkins);
    }
}
