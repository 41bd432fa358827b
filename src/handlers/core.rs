//! Commands on the Core data: `show core summary`, `show devices`, and the
//! enrollment secret that opens device registration.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::coredb::{Device, ENROLLMENT_SECRET, Summary};
use crate::report::{CmdError, Reply, Text, fields, table};

/// How many devices `show devices` lists unless told otherwise.
const DEVICES_DEFAULT: u64 = 100;

impl Text for Summary {
    fn text(&self) -> String {
        fields(&[
            ("Users", self.users.to_string()),
            ("Devices", self.devices.to_string()),
            ("Apps", self.apps.to_string()),
            ("Policies and configs", self.policies.to_string()),
            ("Logs and events", self.events.to_string()),
            ("Certificates", self.certificates.to_string()),
            ("Local users", self.local_users.to_string()),
            ("Atlas records", self.atlas.map_or_else(|| "no Atlas store".to_string(), |n| n.to_string())),
            ("Content checksum", format!("{} (change {})", self.content_checksum, self.change)),
        ])
    }
}

pub fn show_core_summary(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(ctx.node.core()?.summary()?))
}

#[derive(Tabled)]
struct DeviceRow<'a> {
    #[tabled(rename = "Id")]
    id: i64,
    #[tabled(rename = "UUID")]
    uuid: &'a str,
    #[tabled(rename = "User")]
    user: &'a str,
    #[tabled(rename = "Platform")]
    platform: &'a str,
    #[tabled(rename = "OS")]
    os: &'a str,
    #[tabled(rename = "Last check-in (UTC)")]
    last: &'a str,
    #[tabled(rename = "Check-ins")]
    checkins: i64,
    #[tabled(rename = "Enrollment")]
    enrollment: &'a str,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(transparent)]
pub(super) struct Devices(Vec<Device>);

impl Text for Devices {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No devices registered.".into();
        }
        let rows: Vec<DeviceRow> = self
            .0
            .iter()
            .map(|d| DeviceRow {
                id: d.id,
                uuid: &d.uuid,
                user: d.user.as_deref().unwrap_or("-"),
                platform: &d.platform,
                os: &d.os_version,
                last: d.last_checkin_at.as_deref().unwrap_or("never"),
                checkins: d.checkins,
                enrollment: &d.enrollment,
            })
            .collect();
        table(&rows)
    }
}

pub fn show_devices(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let last = args.int("ENTRIES").and_then(|n| u64::try_from(n).ok()).unwrap_or(DEVICES_DEFAULT);
    Ok(Reply::show(Devices(ctx.node.core()?.devices(Some(last))?)))
}

pub fn enrollment_secret(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let hash = super::stored_secret(args, 8, || Ok(args.text("SECRET").unwrap_or_default().to_string()))?;
    ctx.node.core()?.write(|w| w.set_setting(ENROLLMENT_SECRET, hash.as_deref()))?;
    Ok(Reply::done().info(if hash.is_some() {
        "Device registration is open."
    } else {
        "Device registration is closed."
    }))
}

pub fn device_enrollment(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let uuid = args.text("UUID").unwrap_or_default().to_string();
    let retire = args.text("action") == Some("retire");
    let state = if retire { "retired" } else { "re-enroll" };
    let now = crate::store::now_text();
    ctx.node.core()?.write(|w| w.set_enrollment(&uuid, state, &now)).map_err(|e| CmdError::Failed(e.to_string()))?;
    Ok(Reply::done().info(if retire {
        format!("Device {uuid} is retired: its token no longer checks in, and it may enrol again.")
    } else {
        format!("Device {uuid} may enrol again once; its current token works until it does.")
    }))
}

pub fn atlas(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let on = args.has("enable");
    if on {
        crate::coredb::atlas::create(&ctx.node.data_dir)?;
    }
    ctx.update(|s| s.atlas = on)?;
    Ok(Reply::done().info(if on {
        "Atlas is enabled on this node; enable it on the HA peer too, or its data is not replicated."
    } else {
        "Atlas is disabled on this node; its store is kept."
    }))
}
