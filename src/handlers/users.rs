//! Local users (`username …`, `no username …`, `show users`): the operators who may log
//! in to the console. Passwords are stored only as argon2 hashes.

use serde::Serialize;
use tabled::Tabled;

use super::Ctx;
use crate::cli::Args;
use crate::coredb::users::{LocalUser, valid_name};
use crate::node::keys::{fingerprint, parse_public};
use crate::report::{CmdError, Reply, Text, table};

pub fn username(ctx: &mut Ctx, args: &Args) -> Result<Reply, CmdError> {
    let name = args.text("USERNAME").unwrap_or_default().to_string();
    if !valid_name(&name) {
        return Err(CmdError::Failed(format!(
            "Invalid user name {name:?}: use 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    if args.has("no") {
        let removed = ctx.node.core()?.write(|w| w.remove_user(&name))?;
        return if removed { Ok(Reply::done()) } else { Err(CmdError::Failed(format!("No user {name}"))) };
    }
    if let Some(key) = args.text("USER_KEY") {
        let parsed = parse_public(key).map_err(|e| CmdError::Failed(format!("Not an OpenSSH public key: {e}")))?;
        let line = key.trim().to_string();
        let added = ctx.node.core()?.write(|w| w.add_user_key(&name, &line))?;
        let print = fingerprint(&parsed);
        return Ok(Reply::done().info(if added {
            format!("Key {print} added for {name}")
        } else {
            format!("{name} already has key {print}")
        }));
    }
    let hash = super::stored_secret(args, 8, || match args.text("USER_SECRET") {
        Some(clear) => Ok(clear.to_string()),
        None => super::system::ask_twice(ctx, &format!("password for {name}")),
    })?;
    let hash = hash.ok_or_else(|| CmdError::Failed("missing password".into()))?;
    ctx.node.core()?.write(|w| w.set_user_password(&name, &hash))?;
    Ok(Reply::done())
}

#[derive(Tabled)]
struct Row {
    #[tabled(rename = "User")]
    name: String,
    #[tabled(rename = "Password")]
    password: &'static str,
    #[tabled(rename = "Keys")]
    keys: String,
    #[tabled(rename = "Created (UTC)")]
    created: String,
}

/// `show users`; JSON gives hashes no more than the table does.
#[derive(Serialize, schemars::JsonSchema)]
pub(super) struct Users(Vec<Shown>);

#[derive(Serialize, schemars::JsonSchema)]
struct Shown {
    name: String,
    password: bool,
    key_fingerprints: Vec<String>,
    created_at: String,
}

impl Text for Users {
    fn text(&self) -> String {
        if self.0.is_empty() {
            return "No local users: 'username NAME password' in configuration mode adds one.".into();
        }
        let rows: Vec<Row> = self
            .0
            .iter()
            .map(|u| Row {
                name: u.name.clone(),
                password: if u.password { "set" } else { "-" },
                keys: if u.key_fingerprints.is_empty() { "-".into() } else { u.key_fingerprints.join(", ") },
                created: u.created_at.clone(),
            })
            .collect();
        table(&rows)
    }
}

fn shown(u: LocalUser) -> Shown {
    Shown {
        key_fingerprints: u
            .public_keys
            .iter()
            .map(|k| parse_public(k).map_or_else(|_| "unreadable key".into(), |p| fingerprint(&p)))
            .collect(),
        password: u.password_hash.is_some(),
        name: u.name,
        created_at: u.created_at,
    }
}

pub fn show_users(ctx: &mut Ctx, _: &Args) -> Result<Reply, CmdError> {
    Ok(Reply::show(Users(ctx.node.core()?.local_users()?.into_iter().map(shown).collect())))
}
