//! Device traffic on the Core data: registration with the enrollment secret, and
//! check-ins authenticated by the per-device token given at registration. Tokens are
//! random, so only their SHA-256 is stored.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{ENROLLMENT_SECRET, Writes};
use crate::store::StoreError;

/// What a device sends to register.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The enrollment secret the administrator set.
    pub enrollment_secret: String,
    /// The device's own identifier.
    pub uuid: String,
    /// The user it belongs to.
    pub user: String,
    /// `ios`, `android`, ...
    pub platform: String,
    /// Hardware model.
    #[serde(default)]
    pub model: String,
    /// Operating system version.
    #[serde(default)]
    pub os_version: String,
}

/// The answer to a registration.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Registered {
    /// The device's id.
    pub device_id: i64,
    /// The token for its check-ins (shown once).
    pub token: String,
}

/// What a device reports when it checks in.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CheckIn {
    /// Its operating system version now.
    #[serde(default)]
    pub os_version: Option<String>,
    /// A sequence number of the device's own (kept in the event).
    #[serde(default)]
    pub seq: Option<u64>,
    /// Battery level in percent.
    #[serde(default)]
    pub battery: Option<u8>,
}

/// The answer to a check-in.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CheckedIn {
    /// The device's id.
    pub device_id: i64,
    /// Its check-ins so far, this one included.
    pub checkins: i64,
    /// The event recorded for this check-in.
    pub event_id: i64,
}

/// Why device traffic was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No enrollment secret is set: registration is closed.
    #[error("enrollment is closed on this node")]
    EnrollmentClosed,
    /// The enrollment secret is wrong.
    #[error("wrong enrollment secret")]
    BadSecret,
    /// The token matches no device.
    #[error("unknown device token")]
    Unauthorized,
    /// The UUID is enrolled already, and no operator let it enrol again.
    #[error(
        "device {0} is already enrolled: an operator must retire it ('device retire {0}') or let it enrol again ('device re-enroll {0}')"
    )]
    Enrolled(String),
    /// No device has that UUID.
    #[error("no device has the UUID {0}")]
    NoSuchDevice(String),
    /// A field is missing or out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// Committed here, but the synchronous standby did not confirm it and writes may not
    /// go on without it: not acknowledged (the device sends it again).
    #[error("the write was not confirmed by the synchronous standby: {0}")]
    Unconfirmed(String),
    /// The Core data failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for DeviceError {
    fn from(e: rusqlite::Error) -> Self {
        DeviceError::Store(StoreError::from(e))
    }
}

/// SHA-256 of a device token, as stored.
pub fn token_hash(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

fn check_field(name: &str, value: &str, max: usize, required: bool) -> Result<(), DeviceError> {
    if required && value.trim().is_empty() {
        return Err(DeviceError::Invalid(format!("{name} is required")));
    }
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(DeviceError::Invalid(format!("{name} must be at most {max} printable characters")));
    }
    Ok(())
}

impl Registration {
    /// Checks the fields' sizes and characters.
    pub fn validate(&self) -> Result<(), DeviceError> {
        check_field("uuid", &self.uuid, 128, true)?;
        check_field("user", &self.user, 128, true)?;
        check_field("platform", &self.platform, 32, true)?;
        check_field("model", &self.model, 128, false)?;
        check_field("os_version", &self.os_version, 64, false)
    }
}

impl Writes<'_> {
    /// The stored hash of the enrollment secret, if registration is open.
    pub fn enrollment_hash(&self) -> Result<Option<String>, StoreError> {
        let value = self
            .tx()
            .query_row("SELECT value FROM settings WHERE key = ?1", [ENROLLMENT_SECRET], |r| r.get(0))
            .optional()?;
        Ok(value)
    }

    /// Registers a device for its user, creating the user when new. A UUID that is
    /// enrolled already registers again (with a new token) only when an operator retired
    /// it or let it enrol again. The caller has checked the enrollment secret.
    pub fn register_device(&self, reg: &Registration, token_hash: &[u8; 32], now: &str) -> Result<i64, DeviceError> {
        let tx = self.tx();
        let known: Option<(i64, Option<String>)> = tx
            .prepare_cached(
                "SELECT d.id, e.state FROM devices d LEFT JOIN device_enrollment e ON e.device_id = d.id
                  WHERE d.uuid = ?1",
            )?
            .query_row([&reg.uuid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((_, None)) = known {
            return Err(DeviceError::Enrolled(reg.uuid.clone()));
        }
        tx.prepare_cached(
            "INSERT INTO users (name, email, created_at) VALUES (?1, '', ?2) ON CONFLICT (name) DO NOTHING",
        )?
        .execute(params![reg.user, now])?;
        let user_id: i64 =
            tx.prepare_cached("SELECT id FROM users WHERE name = ?1")?.query_row([&reg.user], |r| r.get(0))?;
        let id = tx
            .prepare_cached(
                "INSERT INTO devices (uuid, user_id, platform, model, os_version, token_hash, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (uuid) DO UPDATE SET user_id = excluded.user_id, platform = excluded.platform,
                     model = excluded.model, os_version = excluded.os_version, token_hash = excluded.token_hash,
                     registered_at = excluded.registered_at
                 RETURNING id",
            )?
            .query_row(
                params![reg.uuid, user_id, reg.platform, reg.model, reg.os_version, &token_hash[..], now],
                |r| r.get(0),
            )?;
        if known.is_some() {
            tx.prepare_cached("DELETE FROM device_enrollment WHERE device_id = ?1")?.execute([id])?;
        }
        self.event(Some(id), "register", &format!("{{\"uuid\":{}}}", json_string(&reg.uuid)), now)?;
        Ok(id)
    }

    /// An operator's word on an enrolled device: `retired` (its token stops working at
    /// once, and it may enrol again) or `re-enroll` (it may enrol again once, and keeps
    /// its token until then).
    pub fn set_enrollment(&self, uuid: &str, state: &str, now: &str) -> Result<(), DeviceError> {
        let tx = self.tx();
        let id: i64 = tx
            .prepare_cached("SELECT id FROM devices WHERE uuid = ?1")?
            .query_row([uuid], |r| r.get(0))
            .optional()?
            .ok_or_else(|| DeviceError::NoSuchDevice(uuid.to_string()))?;
        if state == "retired" {
            tx.prepare_cached("UPDATE devices SET token_hash = randomblob(32) WHERE id = ?1")?.execute([id])?;
        }
        tx.prepare_cached(
            "INSERT INTO device_enrollment (device_id, state, since) VALUES (?1, ?2, ?3)
             ON CONFLICT (device_id) DO UPDATE SET state = excluded.state, since = excluded.since",
        )?
        .execute(params![id, state, now])?;
        self.event(Some(id), state, &format!("{{\"uuid\":{}}}", json_string(uuid)), now)?;
        Ok(())
    }

    /// Records a check-in of the device holding the token: updates it and appends an
    /// event. `None` when no device has that token.
    pub fn check_in(
        &self,
        token_hash: &[u8; 32],
        report: &CheckIn,
        now: &str,
    ) -> Result<Option<CheckedIn>, DeviceError> {
        if let Some(v) = &report.os_version {
            check_field("os_version", v, 64, false)?;
        }
        // The device is found by its token, then updated by its row id, in the same
        // (immediate) transaction, so nothing changes it in between. `UPDATE … RETURNING`
        // did both in one statement, but gathers its rows in a temporary table first,
        // which cost more than the second lookup (docs/benchmarks.md, check-ins).
        let tx = self.tx();
        let found: Option<(i64, i64)> = tx
            .prepare_cached("SELECT id, checkins FROM devices WHERE token_hash = ?1")?
            .query_row([&token_hash[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((device_id, before)) = found else { return Ok(None) };
        let checkins = before.saturating_add(1);
        tx.prepare_cached(
            "UPDATE devices SET last_checkin_at = ?1, checkins = ?2, os_version = coalesce(?3, os_version)
              WHERE id = ?4",
        )?
        .execute(params![now, checkins, report.os_version, device_id])?;
        let detail = serde_json::to_string(&CheckInDetail { battery: report.battery, seq: report.seq })
            .map_err(|e| DeviceError::Invalid(format!("cannot encode the check-in: {e}")))?;
        let event_id = self.event(Some(device_id), "checkin", &detail, now)?;
        Ok(Some(CheckedIn { device_id, checkins, event_id }))
    }

    /// Appends an event.
    pub fn event(&self, device_id: Option<i64>, kind: &str, detail: &str, now: &str) -> Result<i64, StoreError> {
        self.tx()
            .prepare_cached("INSERT INTO events (at, device_id, kind, detail) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![now, device_id, kind, detail])?;
        Ok(self.tx().last_insert_rowid())
    }
}

/// What a check-in's event keeps of its report, as JSON: `{"battery":…,"seq":…}`, keys
/// in that order, as they always were (a `serde_json` object, ordered by key, wrote them
/// before; a struct writes them without building one).
#[derive(Serialize)]
struct CheckInDetail {
    battery: Option<u8>,
    seq: Option<u64>,
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}
